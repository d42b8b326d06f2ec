"""Intake v1 request validation: steps 7 and 8 of the spec's order of checks (pure).

Step 7 (`check_ts`) rejects a request whose ``ts`` is off by more than
``max_skew``; step 8 (`validate_txn`, `validate_ping`) checks every field in the
order of the spec's ``txn`` table and raises `IntakeError` ``invalid`` naming the
first bad field. A valid transaction becomes a `Txn`, which keeps no full PAN:
only a masked form, the last 4 digits and the hasher's keyed hash
(PCI DSS v4.0.1 3.4.1, 3.5.1.1). Error messages never quote a submitted value,
so a PAN sent in the wrong field cannot leak into a response or a log.

Shapes are checked with ASCII-only regular expressions matched in full
(``str.isdigit`` and ``\\d`` accept non-ASCII digits, ``$`` accepts a trailing
newline, and ``Decimal`` accepts ``'1_000'``, ``' 1 '`` and ``'NaN'``). Amounts
are scaled to minor units with integer arithmetic after the shape check.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Final, NoReturn, Protocol

import orjson
from typing_extensions import override

from smsgw.intake.envelope import IntakeError
from smsgw.intake.iso4217 import MINOR_UNITS

KINDS: Final = ("purchase", "refund", "reversal", "preauth", "withdrawal")
_KINDS: Final = frozenset(KINDS)
_ORIG_KINDS: Final = frozenset({"reversal", "refund"})

_TXN_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_AMOUNT: Final = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,3}))?")
_BALANCE: Final = re.compile(r"-?[0-9]{1,12}(?:\.[0-9]{1,3})?")
_PAN: Final = re.compile(r"[0-9]{12,19}")
_TOKEN: Final = re.compile(r"[\x20-\x7e]{1,64}")
_MERCHANT_ID: Final = re.compile(r"[\x20-\x7e]{1,32}")
_NONCE: Final = _TOKEN
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
# RFC 3339 section 5.6 date-time; the offset is checked here because
# datetime.fromisoformat accepts "+00:60" as one hour.
_TIME: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_MSISDN: Final = re.compile(r"\+[1-9][0-9]{6,14}")
# BCP 47 tags: at most 35 characters is what RFC 5646 section 4.4.1 asks
# applications to keep (and what the store holds).
_LANG: Final = re.compile(r"(?=.{2,35}$)[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")
_ISSUER: Final = re.compile(r"[A-Za-z0-9._-]{1,32}")
_CODE: Final = re.compile(r"[A-Za-z]{3}")
_RESULT: Final = re.compile(r"approved|declined")
_ID_SHAPE: Final = "must be 1 to 64 characters of A-Z a-z 0-9 . _ : -"
_PRINTABLE: Final = "must be 1 to {n} printable ASCII characters"
_ALNUM: Final = "must be 1 to {n} letters or digits"
_ISSUER_SHAPE: Final = "must be 1 to 32 characters of A-Z a-z 0-9 . _ -"
_RRN: Final = re.compile(r"[A-Za-z0-9]{1,12}")
_STAN: Final = re.compile(r"[0-9]{1,6}")
_AUTH_CODE: Final = re.compile(r"[A-Za-z0-9]{1,6}")
_DECIMAL_SHAPE: Final = (
    "must be a decimal string like {example} (at most 12 digits before the point "
    "and 3 after)"
)
_TIME_SHAPE: Final = (
    "must be RFC 3339: YYYY-MM-DDThh:mm:ss[.fraction] then Z or +hh:mm or -hh:mm"
)

# Luhn: an ASCII digit in a doubled position counts as the digit sum of 2d.
_DOUBLED: Final = bytes.maketrans(b"0123456789", bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]))
_TEXT_MAX: Final = 100


class Hasher(Protocol):
    """Keyed hashing supplied by the caller, so no key lives in this module."""

    def card_hash(self, pan: str) -> str:
        """Return a keyed hash of the PAN for look-ups, e.g. ``"k1:<hex>"``."""
        ...

    def digest(self, data: bytes) -> bytes:
        """Return a keyed digest of ``data`` (the request's canonical content)."""
        ...

    #: True while older keys are live (a rotation): then the two methods
    #: below give the same values under each older key.
    rotating: bool

    def old_card_hashes(self, pan: str) -> tuple[str, ...]:
        """The PAN's hash under each older key (look-ups of earlier rows)."""
        ...

    def old_digests(self, data: bytes) -> tuple[bytes, ...]:
        """The content's digest under each older key (retries of earlier
        requests)."""
        ...


@dataclass(slots=True)  # not frozen: building a frozen one costs ~3 µs more
class Txn:
    """A validated transaction. Holds no full PAN, not even in its repr.

    Treat it as immutable once built."""

    txn_id: str
    ts: int
    kind: str
    amount: str
    amount_minor: int
    currency: str
    exponent: int
    card_token: str | None
    card_hash: str | None
    masked_pan: str | None
    last4: str
    merchant_id: str
    merchant_name: str | None
    location: str | None
    time: str
    local_time: datetime
    msisdn: str | None
    balance: str | None
    lang: str | None
    result: str
    rrn: str | None
    stan: str | None
    auth_code: str | None
    orig_txn_id: str | None
    issuer: str | None
    content_digest: bytes
    # During a card-hash key rotation: the card hash and content digest
    # under each older key (earlier subscribers and requests are found).
    old_card_hashes: tuple[str, ...] = ()
    old_digests: tuple[bytes, ...] = ()

    @override
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # To the store process: a plain tuple pickles several times faster
        # than the default for a slotted class, and local_time travels as
        # the `time` text it was parsed from (an aware datetime costs ~5 us
        # to pickle and as much to load again, per transaction).
        return (_txn_from_wire, (_wire_fields(self),))


_TXN_FIELDS = tuple(f.name for f in fields(Txn))
_LOCAL_TIME = _TXN_FIELDS.index("local_time")
_TIME_AT = _TXN_FIELDS.index("time")  # before local_time: the same in both tuples
_wire_fields = operator.attrgetter(
    *(name for name in _TXN_FIELDS if name != "local_time")
)


def _txn_from_wire(values: tuple[Any, ...]) -> Txn:
    """A Txn from `Txn.__reduce__`'s tuple: local_time parsed from `time`."""
    local_time = datetime.fromisoformat(values[_TIME_AT])
    args: tuple[Any, ...] = (*values[:_LOCAL_TIME], local_time, *values[_LOCAL_TIME:])
    return Txn(*args)


def json_type(value: object) -> str:
    """Return the JSON type name of a parsed JSON value (``"number"``, ...)."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _request_key(body: dict[str, Any]) -> str | None:
    # As envelope.parse_body: only a txn is keyed by its txn_id.
    value = body.get("txn_id") if body.get("type") == "txn" else None
    return value if isinstance(value, str) else None


def _fail(field: str, what: str, key: str | None) -> NoReturn:
    raise IntakeError("invalid", f"{field}: {what}", key)


def _not_a_string(body: dict[str, Any], field: str, key: str | None) -> NoReturn:
    """Raise for a field that is absent (and required) or not a string."""
    if field not in body:
        _fail(field, "is required", key)
    _fail(field, f"must be a string, got {json_type(body[field])}", key)


def _optional(
    body: dict[str, Any],
    field: str,
    pattern: re.Pattern[str],
    what: str,
    key: str | None,
) -> str:
    """Return a present field's value; it must be a string matching ``pattern``."""
    value = body[field]
    if type(value) is not str:
        _not_a_string(body, field, key)
    if pattern.fullmatch(value) is None:
        _fail(field, what, key)
    return value


def _text(body: dict[str, Any], field: str, key: str | None) -> str:
    """Return a present free-text field: at most 100 characters, no controls."""
    value = body[field]
    if type(value) is not str:
        _not_a_string(body, field, key)
    if len(value) > _TEXT_MAX:
        _fail(field, f"must be at most {_TEXT_MAX} characters, got {len(value)}", key)
    if _CONTROL.search(value) is not None:
        _fail(field, "must not contain control characters", key)
    return value


def luhn_ok(digits: str) -> bool:
    """Return whether a string of ASCII digits passes the Luhn (mod 10) check."""
    data = digits.encode("ascii")
    kept = data[-1::-2]
    # Byte sums instead of int() per character: 4x faster on CPython 3.11.
    total = sum(kept) - 0x30 * len(kept) + sum(data[-2::-2].translate(_DOUBLED))
    return total % 10 == 0


def mask_pan(pan: str) -> str:
    """Return the masked PAN: first ``min(6, len - 10)`` digits, stars, last 4.

    A 16..19 digit PAN shows its first 6 and last 4; a 12..15 digit one shows
    fewer leading digits, so at least 6 digits are always hidden.
    """
    shape = _MASKS.get(len(pan))
    head, stars = shape if shape is not None else _mask_shape(len(pan))
    return pan[:head] + stars + pan[-4:]


def _mask_shape(length: int) -> tuple[int, str]:
    head = max(0, min(6, length - 10))
    return head, "*" * max(0, length - head - 4)


_MASKS: Final = {n: _mask_shape(n) for n in range(12, 20)}


def check_ts(body: dict[str, Any], now: float, max_skew: int) -> None:
    """Step 7: check that ``ts`` is an integer within ``max_skew`` s of ``now``.

    Raises IntakeError ``invalid`` when ``ts`` is not a JSON integer (a boolean
    is not) and ``stale`` when it is off by more than ``max_skew`` seconds.
    """
    ts = body.get("ts")
    key = _request_key(body)
    if type(ts) is not int:  # a JSON true/false parses to bool, not an integer
        raise IntakeError("invalid", "ts must be an integer (Unix seconds)", key)
    try:
        skew = ts - now
    except OverflowError:
        skew = math.inf if ts > 0 else -math.inf
    if abs(skew) > max_skew:
        side = "ahead of" if skew > 0 else "behind"
        # Rounded up, so the figure shown always exceeds the limit.
        by = "far" if math.isinf(skew) else f"{math.ceil(abs(skew))} s"
        raise IntakeError(
            "stale", f"ts is {by} {side} the gateway's clock (limit {max_skew} s)", key
        )


def content_bytes(body: dict[str, Any]) -> bytes:
    """Return the request's canonical content for the idempotency comparison.

    The body without ``ts``, serialised by orjson with keys sorted at every
    level: equal bytes exactly when every field has the same JSON value
    (``"128.5"`` and ``"128.50"`` differ, as do ``1`` and ``1.0``). The result
    holds the PAN in clear: hash it, never store or log it. Raises IntakeError
    ``invalid`` for a value JSON cannot carry (an integer beyond 64 bits).
    """
    content = dict(body)
    content.pop("ts", None)
    try:
        return orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        raise IntakeError(
            "invalid",
            "body: holds a value that cannot be serialised",
            _request_key(body),
        ) from None


def validate_ping(body: dict[str, Any]) -> str:
    """Step 8 for a ping: return its nonce (1..64 printable ASCII characters).

    Raises IntakeError ``invalid`` naming ``nonce``.
    """
    nonce = body.get("nonce")
    if type(nonce) is not str:
        _not_a_string(body, "nonce", None)
    if _NONCE.fullmatch(nonce) is None:
        _fail("nonce", "must be 1 to 64 printable ASCII characters", None)
    return nonce


def validate_txn(body: dict[str, Any], hasher: Hasher) -> Txn:
    """Step 8 for a txn: check every field in the order of the spec's table.

    Returns the `Txn`. Raises IntakeError ``invalid`` whose message starts with
    the first bad field's name; its ``txn_id`` is the request's when that is
    valid, else None. Unknown fields are ignored (they still count as content).
    """
    # Required fields are read inline and optional ones only when present:
    # this runs once per transaction on the reactor thread (facts.md: ~4 us).
    txn_id = body.get("txn_id")
    valid_id = type(txn_id) is str and _TXN_ID.fullmatch(txn_id) is not None
    key = txn_id if valid_id else None

    if body.get("type") != "txn":
        _fail("type", 'must be "txn"', key)
    if type(txn_id) is not str:
        _not_a_string(body, "txn_id", None)
    if not valid_id:
        _fail("txn_id", _ID_SHAPE, None)
    ts = body.get("ts")
    if type(ts) is not int:
        if "ts" not in body:
            _fail("ts", "is required", key)
        _fail("ts", f"must be an integer (Unix seconds), got {json_type(ts)}", key)
    kind = body.get("kind")
    if type(kind) is not str:
        _not_a_string(body, "kind", key)
    if kind not in _KINDS:
        _fail("kind", "must be one of " + ", ".join(KINDS), key)

    amount = body.get("amount")
    if type(amount) is not str:
        _not_a_string(body, "amount", key)
    shape = _AMOUNT.fullmatch(amount)
    if shape is None:
        _fail("amount", _DECIMAL_SHAPE.format(example="128.50"), key)
    if not amount.strip("0."):
        _fail("amount", "must be greater than 0", key)
    currency = body.get("currency")
    if type(currency) is not str:
        _not_a_string(body, "currency", key)
    exponent = MINOR_UNITS.get(currency)
    if exponent is None:
        _fail("currency", _currency_problem(currency), key)
    # The fraction is checked once the currency is known to be valid.
    whole, fraction = shape.group(1, 2)
    if fraction is None:
        fraction = ""
    elif len(fraction) > exponent:
        _fail("amount", _too_precise(len(fraction), currency, exponent), key)

    pan = body.get("pan")
    if pan is not None or "pan" in body:
        if type(pan) is not str:
            _not_a_string(body, "pan", key)
        if _PAN.fullmatch(pan) is None:
            _fail("pan", "must be 12 to 19 digits with no separators", key)
        if not luhn_ok(pan):
            _fail("pan", "fails the Luhn check", key)
    card_token = (
        _optional(body, "card_token", _TOKEN, _PRINTABLE.format(n=64), key)
        if "card_token" in body
        else None
    )
    if card_token is not None and _PAN.fullmatch(card_token) and luhn_ok(card_token):
        # An opaque reference that is a valid card number is most likely a
        # PAN in the wrong field: refused rather than stored in clear.
        _fail("card_token", "looks like a card number; send it as pan", key)
    if pan is None and card_token is None:
        raise IntakeError("invalid", "pan or card_token is required", key)

    merchant_id = body.get("merchant_id")
    if type(merchant_id) is not str:
        _not_a_string(body, "merchant_id", key)
    if _MERCHANT_ID.fullmatch(merchant_id) is None:
        _fail("merchant_id", _PRINTABLE.format(n=32), key)
    merchant_name = (
        _text(body, "merchant_name", key) if "merchant_name" in body else None
    )
    location = _text(body, "location", key) if "location" in body else None

    time = body.get("time")
    if type(time) is not str:
        _not_a_string(body, "time", key)
    if _TIME.fullmatch(time) is None:
        _fail("time", _TIME_SHAPE, key)
    try:
        local_time = datetime.fromisoformat(time)
    except ValueError:
        _fail("time", "is not a valid date and time", key)

    msisdn = (
        _optional(body, "msisdn", _MSISDN, "must be E.164: + then 7 to 15 digits", key)
        if "msisdn" in body
        else None
    )
    balance = None
    if "balance" in body:
        balance = _optional(
            body, "balance", _BALANCE, _DECIMAL_SHAPE.format(example="-5.00"), key
        )
        places = balance.find(".")
        places = 0 if places < 0 else len(balance) - places - 1
        if places > exponent:
            _fail("balance", _too_precise(places, currency, exponent), key)
    lang = (
        _optional(
            body,
            "lang",
            _LANG,
            "must be a language tag like zh or en-GB (at most 35 characters)",
            key,
        )
        if "lang" in body
        else None
    )
    result = "approved"
    if "result" in body:
        result = _optional(body, "result", _RESULT, "must be approved or declined", key)
    rrn = (
        _optional(body, "rrn", _RRN, _ALNUM.format(n=12), key)
        if "rrn" in body
        else None
    )
    stan = (
        _optional(body, "stan", _STAN, "must be 1 to 6 digits", key)
        if "stan" in body
        else None
    )
    auth_code = (
        _optional(body, "auth_code", _AUTH_CODE, _ALNUM.format(n=6), key)
        if "auth_code" in body
        else None
    )
    orig_txn_id = (
        _optional(body, "orig_txn_id", _TXN_ID, _ID_SHAPE, key)
        if "orig_txn_id" in body
        else None
    )
    if orig_txn_id is not None and kind not in _ORIG_KINDS:
        _fail("orig_txn_id", "only allowed when kind is reversal or refund", key)
    issuer = (
        _optional(body, "issuer", _ISSUER, _ISSUER_SHAPE, key)
        if "issuer" in body
        else None
    )

    content = content_bytes(body)
    old_hashes: tuple[str, ...] = ()
    old_digests: tuple[bytes, ...] = ()
    if hasher.rotating:
        old_digests = hasher.old_digests(content)
        if pan is not None:
            old_hashes = hasher.old_card_hashes(pan)
    if pan is not None:
        card_hash: str | None = hasher.card_hash(pan)
        masked_pan: str | None = mask_pan(pan)
        last4 = pan[-4:]
    else:
        card_hash = masked_pan = None
        last4 = card_token[-4:] if card_token and len(card_token) >= 4 else ""
    return Txn(
        txn_id,
        ts,
        kind,
        amount,
        # "128" + "50" -> 12850: the digits padded to the exponent, as one int.
        int(whole + fraction.ljust(exponent, "0")),
        currency,
        exponent,
        card_token,
        card_hash,
        masked_pan,
        last4,
        merchant_id,
        merchant_name,
        location,
        time,
        local_time,
        msisdn,
        balance,
        lang.lower() if lang is not None else None,
        result,
        rrn,
        stan,
        auth_code,
        orig_txn_id,
        issuer,
        hasher.digest(content),
        old_hashes,
        old_digests,
    )


def _currency_problem(currency: str) -> str:
    # Quote the value only when it has a currency code's shape: never echo
    # arbitrary input (it could be card digits sent in the wrong field).
    if _CODE.fullmatch(currency) is None:
        return "must be an ISO 4217 alphabetic code (3 uppercase letters)"
    if currency.upper() in MINOR_UNITS:
        return f"must be uppercase ({currency.upper()}, not {currency})"
    return f"{currency} is not an active ISO 4217 currency with a minor unit"


def _too_precise(places: int, currency: str, exponent: int) -> str:
    return (
        f"has {places} fraction digits but {currency} allows at most {exponent} "
        "(ISO 4217 minor unit)"
    )
