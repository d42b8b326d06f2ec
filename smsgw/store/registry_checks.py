"""Pure checks of registry input: subscribers, merchants, issuers and cards.

Records are checked by pure functions (`subscriber_record`, `merchant_record`)
that collect every bad field into one `RegistryError` ("msisdn: ...; lang:
..."). A card is given as a PAN (hashed with the card-hash key, kept as
``card_hash`` plus ``masked_pan``: the PAN itself is never kept and no message
quotes a value that could be one), a ``card_token``, or an already computed
``card_hash`` (``k1:<hex>``, as exported).
"""

from __future__ import annotations

import dataclasses
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Final, Protocol

from smsgw.alerts.plan import Merchant, e164
from smsgw.alerts.templates import KINDS, TemplateError, check_template
from smsgw.intake.validate import luhn_ok, mask_pan
from smsgw.service.config_alerts import LANGUAGES

__all__ = [
    "Hasher",
    "RegistryError",
    "SubscriberKey",
    "SubscriberRecord",
    "check_msisdn",
    "could_be_pan",
    "merchant_record",
    "resolve_issuer",
    "subscriber_key",
    "subscriber_record",
]

_PAN: Final = re.compile(r"[0-9]{12,19}")
_TOKEN: Final = re.compile(r"[\x20-\x7e]{1,64}")  # as intake-v1's card_token
_CARD_HASH: Final = re.compile(r"k[0-9]{1,6}:[0-9a-f]{64}")
# mask_pan's shapes: at most 6 leading digits, at least 6 hidden, last 4.
_MASKED: Final = re.compile(r"[0-9]{0,6}\*{6,9}[0-9]{4}")
_AMOUNT: Final = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,3})?")
_HHMM: Final = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")
_MERCHANT_ID: Final = re.compile(r"[\x20-\x7e]{1,32}")  # as intake-v1's merchant_id
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_LIST_SEP: Final = re.compile(r"[\s,]+")
_DIGIT_RUN: Final = re.compile(r"[0-9](?:[ .-]?[0-9])*")
_TRUE: Final = frozenset({"true", "yes", "1"})
_FALSE: Final = frozenset({"false", "no", "0", ""})


class RegistryError(ValueError):
    """Registry input refused; the message names each bad field, never a PAN."""


class Hasher(Protocol):
    """The card-hash key (smsgw.store.keys.CardHasher)."""

    def card_hash(self, pan: str) -> str:
        """Return ``<key id>:<hex>`` for ``pan``."""
        ...

    def old_card_hashes(self, pan: str) -> tuple[str, ...]:
        """``pan``'s hash under each older card-hash key (a rotation)."""
        ...


@dataclass(frozen=True, slots=True)
class SubscriberKey:
    """Which subscriber: an issuer and one of card_hash or card_token.

    ``old_hashes``: given a PAN during a card-hash key rotation, its hash
    under each older key (a subscriber enrolled before the rotation is found
    by them); not part of the key's identity.
    """

    issuer: str
    card_hash: str | None
    card_token: str | None
    old_hashes: tuple[str, ...] = dataclasses.field(
        default=(), compare=False, repr=False
    )


@dataclass(frozen=True, slots=True)
class SubscriberRecord:
    """A checked subscriber as stored (no PAN): kinds space separated."""

    issuer: str
    card_hash: str | None
    card_token: str | None
    masked_pan: str | None
    msisdn: str
    lang: str | None = None
    min_amount: str | None = None
    kinds: str | None = None
    opted_out: bool = False
    quiet_start: str | None = None
    quiet_end: str | None = None
    timezone: str | None = None
    # as SubscriberKey.old_hashes: looked up, never stored
    old_hashes: tuple[str, ...] = dataclasses.field(
        default=(), compare=False, repr=False
    )

    @property
    def key(self) -> SubscriberKey:
        """The record's unique key."""
        return SubscriberKey(
            self.issuer, self.card_hash, self.card_token, self.old_hashes
        )

    def columns(self) -> dict[str, Any]:
        """The record's values by column (what a row stores)."""
        values = asdict(self)
        del values["old_hashes"]
        return values

    @property
    def card(self) -> str:
        """The card as shown to operators: masked PAN, token or hash."""
        if self.masked_pan:
            return self.masked_pan
        return f"token {self.card_token}" if self.card_token else str(self.card_hash)


def could_be_pan(value: str) -> bool:
    """Whether ``value`` holds a run of 12 to 19 digits passing Luhn (or longer).

    Digits separated by single spaces, dots or hyphens count as one run.
    """
    for m in _DIGIT_RUN.finditer(value):
        digits = re.sub(r"[^0-9]", "", m.group())
        if len(digits) > 19 or (len(digits) >= 12 and luhn_ok(digits)):
            return True
    return False


def _shown(value: str) -> str:
    """``value`` quoted for an error message, unless it could be a card number."""
    if could_be_pan(value):
        return "a value that could be a card number (not shown)"
    return repr(value if len(value) <= 60 else value[:57] + "...")


class _Errors:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, field: str, message: str) -> None:
        self.items.append(f"{field}: {message}")

    def check(self) -> None:
        if self.items:
            raise RegistryError("; ".join(self.items))


def resolve_issuer(issuer: str | None, issuers: Sequence[str]) -> str:
    """The configured profile named ``issuer``; None or "" means the first.

    Raises RegistryError for a name that is not configured.
    """
    errors = _Errors()
    name = _issuer(issuer, issuers, errors)
    errors.check()
    return name


def _issuer(value: str | None, issuers: Sequence[str], errors: _Errors) -> str:
    if not value:
        return issuers[0]
    if value not in issuers:
        errors.add(
            "issuer",
            f"no issuer profile {_shown(value)} (issuers: {', '.join(issuers)})",
        )
    return value


def _card(
    errors: _Errors,
    hasher: Hasher | None,
    pan: str | None,
    card_token: str | None,
    card_hash: str | None,
    masked_pan: str | None = None,
) -> tuple[str | None, str | None, str | None]:
    """Check the card identity; returns (card_hash, card_token, masked_pan)."""
    cards = (("pan", pan), ("card_token", card_token), ("card_hash", card_hash))
    given = [n for n, v in cards if v]
    if len(given) != 1:
        got = f" (got {' and '.join(given)})" if given else ""
        errors.add("card", f"give exactly one of pan, card_token, card_hash{got}")
        return None, None, None
    if masked_pan and not card_hash:
        errors.add("masked_pan", "only with card_hash (from pan it is computed)")
    if pan:
        digits = re.sub(r"[ -]", "", pan)
        if not _PAN.fullmatch(digits):
            errors.add("pan", "must be 12 to 19 digits")
        elif not luhn_ok(digits):
            errors.add("pan", "fails the Luhn check")
        elif hasher is None:
            errors.add("pan", "no card-hash key to hash it with")
        else:
            return hasher.card_hash(digits), None, mask_pan(digits)
        return None, None, None
    if card_token:
        if not _TOKEN.fullmatch(card_token):
            errors.add("card_token", "must be 1 to 64 printable ASCII characters")
        elif could_be_pan(card_token):
            errors.add(
                "card_token",
                "looks like a card number: give it as pan, so that only its "
                "keyed hash and masked form are stored",
            )
        return None, card_token, None
    assert card_hash is not None
    if not _CARD_HASH.fullmatch(card_hash):
        errors.add("card_hash", "must be a key id and 64 hex digits, like k1:0a1b...")
    if masked_pan and not _MASKED.fullmatch(masked_pan):
        errors.add("masked_pan", "must be up to 6 digits, 6 to 9 '*', then 4 digits")
    return card_hash, None, masked_pan or None


def subscriber_key(
    *,
    issuers: Sequence[str],
    hasher: Hasher | None,
    issuer: str | None = None,
    pan: str | None = None,
    card_token: str | None = None,
    card_hash: str | None = None,
) -> SubscriberKey:
    """The key of a subscriber given by exactly one of pan, card_token, card_hash.

    Raises RegistryError naming each bad field.
    """
    errors = _Errors()
    name = _issuer(issuer, issuers, errors)
    h, token, _ = _card(errors, hasher, pan, card_token, card_hash)
    errors.check()
    return SubscriberKey(name, h, token, _old_hashes(hasher, pan))


def _old_hashes(hasher: Hasher | None, pan: str | None) -> tuple[str, ...]:
    """A checked PAN's hash under each older card-hash key."""
    if not pan or hasher is None:
        return ()
    return hasher.old_card_hashes(re.sub(r"[ -]", "", pan))


def _choice(
    errors: _Errors, field: str, value: str | None, allowed: Sequence[str]
) -> str | None:
    if value and value not in allowed:
        errors.add(field, f"must be one of {', '.join(allowed)}, got {_shown(value)}")
    return value or None


def _split(value: str | Iterable[str] | None) -> list[str]:
    """Items of a string separated by spaces or commas (a CSV cell), or of a
    list whose items may hold several separated by commas (CLI options)."""
    if isinstance(value, str):
        return [i for i in _LIST_SEP.split(value) if i]
    return [i.strip() for part in value or () for i in part.split(",") if i.strip()]


def _kinds(errors: _Errors, value: str | Iterable[str] | None) -> str | None:
    items = _split(value)
    for bad in (i for i in items if i not in KINDS):
        errors.add("kinds", f"unknown kind {_shown(bad)} (kinds: {' '.join(KINDS)})")
    return " ".join(k for k in KINDS if k in items) or None


def _opted_out(errors: _Errors, value: bool | str) -> bool:
    if isinstance(value, bool):
        return value
    if value.strip().lower() not in _TRUE | _FALSE:
        errors.add("opted_out", f"must be true or false, got {_shown(value)}")
    return value.strip().lower() in _TRUE


def _quiet(
    errors: _Errors, start: str | None, end: str | None
) -> tuple[str | None, str | None]:
    if not start and not end:
        return None, None
    if not start or not end:
        errors.add("quiet", "give both quiet_start and quiet_end, or neither")
    for field, value in (("quiet_start", start), ("quiet_end", end)):
        if value and not _HHMM.fullmatch(value):
            errors.add(field, f"must be HH:MM (00:00 to 23:59), got {_shown(value)}")
    if start and start == end:
        errors.add("quiet", "start and end must differ")
    return start or None, end or None


def _timezone(errors: _Errors, value: str | None) -> str | None:
    if not value:
        return None
    try:
        if len(value) > 40:
            raise ValueError(value)
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        errors.add(
            "timezone",
            f"unknown time zone {_shown(value)} (IANA names like Asia/Shanghai)",
        )
    return value


def _msisdn(errors: _Errors, field: str, value: str | None) -> str:
    number = e164(value) if value else None
    if number is None:
        got = f", got {_shown(value)}" if value else ""
        errors.add(
            field,
            f"must be a possible phone number in international form, "
            f"like +86 138 0013 8000{got}",
        )
    return number or ""


def check_msisdn(value: str) -> str:
    """``value`` normalised to E.164.

    Raises RegistryError when it is not a possible number.
    """
    errors = _Errors()
    number = _msisdn(errors, "msisdn", value)
    errors.check()
    return number


def subscriber_record(
    *,
    issuers: Sequence[str],
    hasher: Hasher | None,
    msisdn: str | None,
    issuer: str | None = None,
    pan: str | None = None,
    card_token: str | None = None,
    card_hash: str | None = None,
    masked_pan: str | None = None,
    lang: str | None = None,
    min_amount: str | None = None,
    kinds: str | Iterable[str] | None = None,
    opted_out: bool | str = False,
    quiet_start: str | None = None,
    quiet_end: str | None = None,
    timezone: str | None = None,
) -> SubscriberRecord:
    """Check and normalise one subscriber; "" counts as absent (CSV cells).

    ``kinds`` is a list or a string separated by spaces or commas (none: every
    kind); ``opted_out`` a bool or true/false/yes/no/1/0. Returns the record
    to store; raises RegistryError naming every bad field.
    """
    errors = _Errors()
    name = _issuer(issuer, issuers, errors)
    h, token, masked = _card(errors, hasher, pan, card_token, card_hash, masked_pan)
    number = _msisdn(errors, "msisdn", msisdn)
    lang = _choice(errors, "lang", lang, LANGUAGES)
    if min_amount and not _AMOUNT.fullmatch(min_amount):
        errors.add(
            "min_amount", f"must be a decimal like 100.00, got {_shown(min_amount)}"
        )
    wanted = _kinds(errors, kinds)
    opted = _opted_out(errors, opted_out)
    start, end = _quiet(errors, quiet_start, quiet_end)
    record = SubscriberRecord(
        issuer=name,
        card_hash=h,
        card_token=token,
        masked_pan=masked,
        msisdn=number,
        lang=lang,
        min_amount=min_amount or None,
        kinds=wanted,
        opted_out=opted,
        quiet_start=start,
        quiet_end=end,
        timezone=_timezone(errors, timezone),
    )
    errors.check()
    if pan:
        record = replace(record, old_hashes=_old_hashes(hasher, pan))
    return record


def merchant_record(
    *,
    issuers: Sequence[str],
    merchant_id: str | None,
    name: str | None,
    issuer: str | None = None,
    notify: str | Iterable[str] | None = (),
    lang: str | None = None,
    templates: Mapping[str, str | None] | None = None,
) -> Merchant:
    """Check and normalise one merchant; "" counts as absent (CSV cells).

    ``notify`` is a list or a string separated by spaces or commas; each
    number is normalised to E.164. ``templates`` maps a language to a template
    checked with check_template. Returns the Merchant; raises RegistryError
    naming every bad field.
    """
    errors = _Errors()
    issuer_name = _issuer(issuer, issuers, errors)
    if not merchant_id or not _MERCHANT_ID.fullmatch(merchant_id):
        errors.add("merchant_id", "must be 1 to 32 printable ASCII characters")
    if not name or len(name) > 100 or _CONTROL.search(name):
        errors.add("name", "must be 1 to 100 characters without control characters")
    numbers = [_msisdn(errors, "notify", n) for n in _split(notify)]
    checked: dict[str, str] = {}
    for tlang, source in (templates or {}).items():
        if tlang not in LANGUAGES:
            errors.add(
                "templates",
                f"unknown language {_shown(tlang)} (languages: {', '.join(LANGUAGES)})",
            )
        elif source:
            try:
                check_template(source)
            except TemplateError as exc:
                errors.add(f"template_{tlang}", str(exc))
            checked[tlang] = source
    merchant = Merchant(
        issuer=issuer_name,
        merchant_id=merchant_id or "",
        name=name or "",
        notify=tuple(dict.fromkeys(n for n in numbers if n)),
        lang=_choice(errors, "lang", lang, LANGUAGES),
        templates=checked,
    )
    errors.check()
    return merchant
