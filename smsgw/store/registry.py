"""Subscriber and merchant registries: validation, upsert, removal and CSV (sync).

Records are checked by pure functions (`subscriber_record`, `merchant_record`)
that collect every bad field into one `RegistryError` ("msisdn: ...; lang:
..."); the database functions take a SQLAlchemy Connection and write an
``audit`` row for every change. A card is given as a PAN (hashed with the
card-hash key, stored as ``card_hash`` plus ``masked_pan``: the PAN itself is
never stored and no message quotes a value that could be one), a
``card_token``, or an already computed ``card_hash`` (``k1:<hex>``, as exported).

CSV import is all or nothing: every row is checked first and each bad one is
reported with its line number; nothing is written unless all are good. Export
writes ``card_token, masked_pan, card_hash`` in place of the PAN, so an export
imports again unchanged.
"""

from __future__ import annotations

import csv
import re
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal, Protocol, TextIO

import orjson
from sqlalchemy import Connection, bindparam, delete, insert, select, update

from smsgw.alerts.plan import Merchant, e164
from smsgw.alerts.templates import KINDS, TemplateError, check_template
from smsgw.intake.validate import luhn_ok, mask_pan
from smsgw.service.config_alerts import LANGUAGES
from smsgw.store import schema as S
from smsgw.store.accept import merchant_from_row
from smsgw.store.query import pairs_in

__all__ = [
    "MERCHANT_COLUMNS",
    "SUBSCRIBER_EXPORT_COLUMNS",
    "SUBSCRIBER_IMPORT_COLUMNS",
    "CsvImportError",
    "ImportCounts",
    "RegistryError",
    "SubscriberKey",
    "SubscriberRecord",
    "add_merchant",
    "add_merchants",
    "add_subscriber",
    "add_subscribers",
    "export_merchants",
    "export_subscribers",
    "import_merchants",
    "import_subscribers",
    "list_merchants",
    "list_subscribers",
    "merchant_record",
    "remove_merchant",
    "remove_subscriber",
    "resolve_issuer",
    "subscriber_key",
    "subscriber_record",
]

Outcome = Literal["added", "updated"]

SUBSCRIBER_EXPORT_COLUMNS: Final = (
    "issuer",
    "card_token",
    "masked_pan",
    "card_hash",
    "msisdn",
    "lang",
    "min_amount",
    "kinds",
    "opted_out",
    "quiet_start",
    "quiet_end",
    "timezone",
)
SUBSCRIBER_IMPORT_COLUMNS: Final = ("pan", *SUBSCRIBER_EXPORT_COLUMNS)
MERCHANT_COLUMNS: Final = (
    "issuer",
    "merchant_id",
    "name",
    "notify",
    "lang",
    "template_zh",
    "template_en",
)

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
_CHUNK: Final = 500  # keys per IN (...) query: far below SQLite's variable limit
_TRUE: Final = frozenset({"true", "yes", "1"})
_FALSE: Final = frozenset({"false", "no", "0", ""})


class RegistryError(ValueError):
    """Registry input refused; the message names each bad field, never a PAN."""


class CsvImportError(RegistryError):
    """A CSV import refused as a whole; ``errors`` has one entry per bad row."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = tuple(errors)


class Hasher(Protocol):
    """The card-hash key (smsgw.store.keys.CardHasher)."""

    def card_hash(self, pan: str) -> str:
        """Return ``<key id>:<hex>`` for ``pan``."""
        ...


@dataclass(frozen=True, slots=True)
class SubscriberKey:
    """Which subscriber: an issuer and one of card_hash or card_token."""

    issuer: str
    card_hash: str | None
    card_token: str | None


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

    @property
    def key(self) -> SubscriberKey:
        """The record's unique key."""
        return SubscriberKey(self.issuer, self.card_hash, self.card_token)

    @property
    def card(self) -> str:
        """The card as shown to operators: masked PAN, token or hash."""
        if self.masked_pan:
            return self.masked_pan
        return f"token {self.card_token}" if self.card_token else str(self.card_hash)


@dataclass(frozen=True, slots=True)
class ImportCounts:
    """How many records a batch added and how many it replaced."""

    added: int
    updated: int


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
    return SubscriberKey(name, h, token)


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


# -- database --------------------------------------------------------------


def _audit(
    now: float,
    issuer: str,
    actor: str,
    action: str,
    subject: str,
    detail: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "at": now,
        "issuer": issuer,
        "actor": actor,
        "action": action,
        "subject": subject[:100],
        "detail": orjson.dumps(detail).decode(),
    }


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    return (items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK))


def _existing(
    conn: Connection, keys: Iterable[SubscriberKey]
) -> dict[SubscriberKey, Any]:
    """The stored rows of ``keys`` (those that exist), by key."""
    t = S.subscribers
    keys = list(keys)
    hashes = [(k.issuer, k.card_hash) for k in keys if k.card_hash is not None]
    tokens = [(k.issuer, k.card_token) for k in keys if k.card_token is not None]
    found: dict[SubscriberKey, Any] = {}
    for chunk in _chunks(hashes):
        q = select(t).where(pairs_in(t.c.issuer, t.c.card_hash, chunk))
        for row in conn.execute(q):
            if (row.issuer, row.card_hash) in chunk:
                found[SubscriberKey(row.issuer, row.card_hash, None)] = row
    for chunk in _chunks(tokens):
        q = select(t).where(pairs_in(t.c.issuer, t.c.card_token, chunk))
        for row in conn.execute(q):
            if (row.issuer, row.card_token) in chunk:
                found[SubscriberKey(row.issuer, None, row.card_token)] = row
    return found


def _record_from_row(row: Any) -> SubscriberRecord:
    return SubscriberRecord(
        issuer=row.issuer,
        card_hash=row.card_hash,
        card_token=row.card_token,
        masked_pan=row.masked_pan,
        msisdn=row.msisdn,
        lang=row.lang,
        min_amount=row.min_amount,
        kinds=row.kinds,
        opted_out=bool(row.opted_out),
        quiet_start=row.quiet_start,
        quiet_end=row.quiet_end,
        timezone=row.timezone,
    )


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    return {k: [old[k], v] for k, v in new.items() if old[k] != v}


def add_subscribers(
    conn: Connection,
    records: Sequence[SubscriberRecord],
    *,
    now: float,
    actor: str = "cli",
    via: str = "cli",
) -> ImportCounts:
    """Insert or replace each record (keys must be distinct), with audit rows.

    A record given by card_hash without masked_pan keeps the stored mask.
    Returns the counts added and updated.
    """
    t = S.subscribers
    existing = _existing(conn, (r.key for r in records))
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    for record in records:
        row = existing.get(record.key)
        values = asdict(record)
        if row is None:
            inserts.append({**values, "created_at": now, "updated_at": now})
            audits.append(
                _audit(
                    now,
                    record.issuer,
                    actor,
                    "subscriber.add",
                    record.card,
                    {"via": via, **values},
                )
            )
        else:
            values["masked_pan"] = record.masked_pan or row.masked_pan
            old = asdict(_record_from_row(row))
            updates.append({**values, "row_id": row.id, "updated_at": now})
            detail = {"via": via, "changed": _changes(old, values)}
            audits.append(
                _audit(
                    now, record.issuer, actor, "subscriber.update", record.card, detail
                )
            )
    if inserts:
        conn.execute(insert(t), inserts)
    if updates:
        conn.execute(update(t).where(t.c.id == bindparam("row_id")), updates)
    if audits:
        conn.execute(insert(S.audit), audits)
    return ImportCounts(len(inserts), len(updates))


def add_subscriber(
    conn: Connection, record: SubscriberRecord, *, now: float, actor: str = "cli"
) -> Outcome:
    """Insert or replace one subscriber; returns "added" or "updated"."""
    counts = add_subscribers(conn, [record], now=now, actor=actor)
    return "added" if counts.added else "updated"


def remove_subscriber(
    conn: Connection, key: SubscriberKey, *, now: float, actor: str = "cli"
) -> bool:
    """Delete the subscriber with ``key``; returns whether there was one."""
    row = _existing(conn, [key]).get(key)
    if row is None:
        return False
    conn.execute(delete(S.subscribers).where(S.subscribers.c.id == row.id))
    record = _record_from_row(row)
    conn.execute(
        insert(S.audit),
        _audit(
            now, key.issuer, actor, "subscriber.remove", record.card, asdict(record)
        ),
    )
    return True


def list_subscribers(
    conn: Connection, *, issuer: str | None = None, msisdn: str | None = None
) -> list[SubscriberRecord]:
    """The subscribers (masked cards only), optionally of one issuer or number.

    Raises RegistryError when ``msisdn`` is not a possible number.
    """
    t = S.subscribers
    q = select(t).order_by(t.c.issuer, t.c.id)
    if issuer is not None:
        q = q.where(t.c.issuer == issuer)
    if msisdn is not None:
        errors = _Errors()
        number = _msisdn(errors, "msisdn", msisdn)
        errors.check()
        q = q.where(t.c.msisdn == number)
    return [_record_from_row(row) for row in conn.execute(q)]


def _merchant_values(m: Merchant) -> dict[str, Any]:
    return {
        "name": m.name,
        "notify": " ".join(m.notify),
        "lang": m.lang,
        "templates": orjson.dumps(dict(m.templates or {})).decode(),
    }


def add_merchants(
    conn: Connection,
    merchants: Sequence[Merchant],
    *,
    now: float,
    actor: str = "cli",
    via: str = "cli",
) -> ImportCounts:
    """Insert or replace each merchant (keys must be distinct), with audit rows.

    Returns the counts added and updated.
    """
    t = S.merchants
    existing: dict[tuple[str, str], Any] = {}
    for chunk in _chunks([(m.issuer, m.merchant_id) for m in merchants]):
        q = select(t).where(pairs_in(t.c.issuer, t.c.merchant_id, chunk))
        existing.update(
            {
                (r.issuer, r.merchant_id): r
                for r in conn.execute(q)
                if (r.issuer, r.merchant_id) in chunk
            }
        )
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    for m in merchants:
        values = _merchant_values(m)
        row = existing.get((m.issuer, m.merchant_id))
        key = {"issuer": m.issuer, "merchant_id": m.merchant_id}
        if row is None:
            inserts.append({**key, **values, "created_at": now, "updated_at": now})
            detail = {"via": via, **values}
            action = "merchant.add"
        else:
            updates.append(
                {
                    "k_issuer": m.issuer,
                    "k_id": m.merchant_id,
                    **values,
                    "updated_at": now,
                }
            )
            detail = {"via": via, "changed": _changes(row._mapping, values)}
            action = "merchant.update"
        audits.append(_audit(now, m.issuer, actor, action, m.merchant_id, detail))
    if inserts:
        conn.execute(insert(t), inserts)
    if updates:
        where = (t.c.issuer == bindparam("k_issuer")) & (
            t.c.merchant_id == bindparam("k_id")
        )
        conn.execute(update(t).where(where), updates)
    if audits:
        conn.execute(insert(S.audit), audits)
    return ImportCounts(len(inserts), len(updates))


def add_merchant(
    conn: Connection, merchant: Merchant, *, now: float, actor: str = "cli"
) -> Outcome:
    """Insert or replace one merchant; returns "added" or "updated"."""
    counts = add_merchants(conn, [merchant], now=now, actor=actor)
    return "added" if counts.added else "updated"


def remove_merchant(
    conn: Connection, *, issuer: str, merchant_id: str, now: float, actor: str = "cli"
) -> bool:
    """Delete one merchant; returns whether there was one."""
    t = S.merchants
    where = (t.c.issuer == issuer) & (t.c.merchant_id == merchant_id)
    row = conn.execute(select(t).where(where)).first()
    if row is None:
        return False
    conn.execute(delete(t).where(where))
    detail = {k: row._mapping[k] for k in ("name", "notify", "lang", "templates")}
    conn.execute(
        insert(S.audit),
        _audit(now, issuer, actor, "merchant.remove", merchant_id, detail),
    )
    return True


def list_merchants(conn: Connection, *, issuer: str | None = None) -> list[Merchant]:
    """The merchants, optionally of one issuer, ordered by issuer and id."""
    t = S.merchants
    q = select(t).order_by(t.c.issuer, t.c.merchant_id)
    if issuer is not None:
        q = q.where(t.c.issuer == issuer)
    return [merchant_from_row(row) for row in conn.execute(q)]


# -- CSV --------------------------------------------------------------------


def _csv_rows(
    lines: Iterable[str],
    allowed: Sequence[str],
    required: Sequence[str],
    errors: list[str],
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield the data rows with their first line numbers; problems go to
    ``errors`` as they are met, so all errors come in line order."""
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    line = 1
    try:
        for cells in reader:
            if header is None:
                header = [c.strip() for c in cells]
                bad = [c for c in header if c not in allowed or header.count(c) > 1]
                missing = [c for c in required if c not in header]
                if bad or missing or not header:
                    errors.append(
                        f"line {line}: the header must name each column at most "
                        f"once, among {','.join(allowed)}, including "
                        f"{','.join(required)}"
                    )
                    return
            elif not cells:
                pass
            elif len(cells) != len(header):
                errors.append(
                    f"line {line}: {len(cells)} fields, the header has {len(header)}"
                )
            else:
                yield line, dict(zip(header, cells, strict=True))
            line = reader.line_num + 1
    except csv.Error as exc:
        errors.append(f"line {reader.line_num}: not valid CSV ({exc})")
    if header is None:
        errors.append("line 1: the header row is missing")


def import_subscribers(
    conn: Connection,
    lines: Iterable[str],
    *,
    issuers: Sequence[str],
    hasher: Hasher | None,
    now: float,
    actor: str = "cli",
) -> ImportCounts:
    """Import subscribers from CSV (SUBSCRIBER_IMPORT_COLUMNS), all or nothing.

    Returns the counts; raises CsvImportError listing every bad row by line.
    """
    errors: list[str] = []
    records: list[SubscriberRecord] = []
    seen: dict[SubscriberKey, int] = {}
    for line, row in _csv_rows(lines, SUBSCRIBER_IMPORT_COLUMNS, ("msisdn",), errors):
        try:
            record = subscriber_record(
                issuers=issuers,
                hasher=hasher,
                issuer=row.get("issuer"),
                pan=row.get("pan"),
                card_token=row.get("card_token"),
                card_hash=row.get("card_hash"),
                masked_pan=row.get("masked_pan"),
                msisdn=row.get("msisdn"),
                lang=row.get("lang"),
                min_amount=row.get("min_amount"),
                kinds=row.get("kinds"),
                opted_out=row.get("opted_out", ""),
                quiet_start=row.get("quiet_start"),
                quiet_end=row.get("quiet_end"),
                timezone=row.get("timezone"),
            )
        except RegistryError as exc:
            errors.append(f"line {line}: {exc}")
            continue
        first = seen.setdefault(record.key, line)
        if first != line:
            errors.append(f"line {line}: card: the same card as line {first}")
        records.append(record)
    if errors:
        raise CsvImportError(errors)
    return add_subscribers(conn, records, now=now, actor=actor, via="import")


def export_subscribers(
    conn: Connection, out: TextIO, *, issuer: str | None = None
) -> int:
    """Write subscribers as CSV (SUBSCRIBER_EXPORT_COLUMNS, no PAN); returns rows."""
    writer = csv.writer(out)
    writer.writerow(SUBSCRIBER_EXPORT_COLUMNS)
    records = list_subscribers(conn, issuer=issuer)
    for r in records:
        values = asdict(r)
        values["opted_out"] = "true" if r.opted_out else "false"
        writer.writerow([values[c] or "" for c in SUBSCRIBER_EXPORT_COLUMNS])
    return len(records)


def import_merchants(
    conn: Connection,
    lines: Iterable[str],
    *,
    issuers: Sequence[str],
    now: float,
    actor: str = "cli",
) -> ImportCounts:
    """Import merchants from CSV (MERCHANT_COLUMNS), all or nothing.

    Returns the counts; raises CsvImportError listing every bad row by line.
    """
    errors: list[str] = []
    merchants: list[Merchant] = []
    seen: dict[tuple[str, str], int] = {}
    for line, row in _csv_rows(
        lines, MERCHANT_COLUMNS, ("merchant_id", "name"), errors
    ):
        templates = {lang: row.get(f"template_{lang}") for lang in LANGUAGES}
        try:
            merchant = merchant_record(
                issuers=issuers,
                issuer=row.get("issuer"),
                merchant_id=row.get("merchant_id"),
                name=row.get("name"),
                notify=row.get("notify"),
                lang=row.get("lang"),
                templates=templates,
            )
        except RegistryError as exc:
            errors.append(f"line {line}: {exc}")
            continue
        first = seen.setdefault((merchant.issuer, merchant.merchant_id), line)
        if first != line:
            errors.append(
                f"line {line}: merchant_id: the same merchant as line {first}"
            )
        merchants.append(merchant)
    if errors:
        raise CsvImportError(errors)
    return add_merchants(conn, merchants, now=now, actor=actor, via="import")


def export_merchants(
    conn: Connection, out: TextIO, *, issuer: str | None = None
) -> int:
    """Write merchants as CSV (MERCHANT_COLUMNS); returns the number of rows."""
    writer = csv.writer(out)
    writer.writerow(MERCHANT_COLUMNS)
    merchants = list_merchants(conn, issuer=issuer)
    for m in merchants:
        templates = m.templates or {}
        writer.writerow(
            [m.issuer, m.merchant_id, m.name, " ".join(m.notify), m.lang or ""]
            + [templates.get(lang, "") for lang in LANGUAGES]
        )
    return len(merchants)
