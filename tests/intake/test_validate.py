"""Intake v1 checks 7 (ts skew) and 8 (field validation), and the ISO 4217 table."""

from __future__ import annotations

import itertools
import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.intake.envelope import IntakeError
from smsgw.intake.iso4217 import MINOR_UNITS
from smsgw.intake.validate import (
    KINDS,
    Txn,
    check_ts,
    content_bytes,
    luhn_ok,
    mask_pan,
    validate_ping,
    validate_txn,
)
from smsgw.store.keys import CardHasher

# ../shared/spec/intake-v1.md, "Test vector" (the body string, parsed)
VECTOR = (
    '{"type":"txn","txn_id":"000123","ts":1764417605,"kind":"purchase",'
    '"amount":"128.50","currency":"CNY","pan":"6222021234567894",'
    '"merchant_id":"M001","merchant_name":"星巴克(南京西路店)",'
    '"time":"2026-11-29T20:00:05+08:00","msisdn":"+8613800138000"}'
)
PAN = "6222021234567894"
NOW = 1764417605.0


def HmacHasher(key: bytes = b"\x07" * 32) -> CardHasher:
    """The gateway's hasher (HMAC-SHA256) under a fixed test key."""
    return CardHasher("k1", key)


HASHER = HmacHasher()


def body(**changes: Any) -> dict[str, Any]:
    """The test vector's body with fields changed; a value of ... removes one."""
    value: dict[str, Any] = orjson.loads(VECTOR)
    for field, new in changes.items():
        if new is ...:
            value.pop(field, None)
        else:
            value[field] = new
    return value


def invalid(value: dict[str, Any]) -> IntakeError:
    """Run validate_txn on a body that must fail; return the `invalid` error."""
    with pytest.raises(IntakeError) as info:
        validate_txn(value, HASHER)
    assert info.value.code == "invalid"
    return info.value


def attempt(value: dict[str, Any]) -> Txn | IntakeError:
    """Run validate_txn; return the Txn or the error it raised."""
    try:
        return validate_txn(value, HASHER)
    except IntakeError as error:
        return error


def reference_luhn(digits: str) -> bool:
    """Textbook Luhn, written independently of the module under test."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def with_check_digit(stem: str) -> str:
    """Append the digit that makes ``stem`` pass Luhn."""
    return next(stem + c for c in "0123456789" if reference_luhn(stem + c))


# --- the spec's test vector -------------------------------------------------


def test_spec_vector_validates() -> None:
    """The spec's test-vector body gives CNY 12850 minor units and a masked PAN."""
    value = body()
    txn = validate_txn(value, HASHER)
    assert txn == Txn(
        txn_id="000123",
        ts=1764417605,
        kind="purchase",
        amount="128.50",
        amount_minor=12850,
        currency="CNY",
        exponent=2,
        card_token=None,
        card_hash=HASHER.card_hash(PAN),
        masked_pan="622202******7894",
        last4="7894",
        merchant_id="M001",
        merchant_name="星巴克(南京西路店)",
        location=None,
        time="2026-11-29T20:00:05+08:00",
        local_time=datetime(
            2026, 11, 29, 20, 0, 5, tzinfo=timezone(timedelta(hours=8))
        ),
        msisdn="+8613800138000",
        balance=None,
        lang=None,
        result="approved",
        rrn=None,
        stan=None,
        auth_code=None,
        orig_txn_id=None,
        issuer=None,
        content_digest=HASHER.digest(content_bytes(value)),
    )
    assert PAN not in repr(txn)
    assert PAN not in str(txn)


def test_txn_pickles_to_the_store_process_and_back_equal() -> None:
    """A Txn crosses to the store process as a tuple, its local time as the
    text it came from, and arrives equal, offset included; no PAN inside."""
    value = body(rrn="123456789012", time="2026-11-29T20:00:05.123-05:30")
    txn = validate_txn(value, HASHER)
    data = pickle.dumps(txn, protocol=pickle.HIGHEST_PROTOCOL)
    again = pickle.loads(data)
    assert again == txn
    assert again.local_time.utcoffset() == timedelta(hours=-5, minutes=-30)
    assert PAN.encode() not in data


def test_vector_content_bytes_are_sorted_without_ts() -> None:
    """The canonical content is the body minus ts, keys sorted, UTF-8 kept."""
    assert (
        content_bytes(body())
        == (
            '{"amount":"128.50","currency":"CNY","kind":"purchase",'
            '"merchant_id":"M001","merchant_name":"星巴克(南京西路店)",'
            '"msisdn":"+8613800138000","pan":"6222021234567894",'
            '"time":"2026-11-29T20:00:05+08:00","txn_id":"000123","type":"txn"}'
        ).encode()
    )


def test_unknown_fields_are_ignored() -> None:
    """A field the spec does not name is accepted, whatever its type."""
    txn = validate_txn(body(terminal_model={"x": [1, 2]}, promo=5), HASHER)
    assert txn.amount_minor == 12850


# --- step 7: ts -------------------------------------------------------------


@pytest.mark.parametrize("ts", [1764417605, 1764417605 - 300, 1764417605 + 300])
def test_ts_within_skew(ts: int) -> None:
    """A ts up to max_skew seconds either side of now passes."""
    check_ts(body(ts=ts), NOW, 300)


@pytest.mark.parametrize(
    ("ts", "now", "message"),
    [
        (1764417906, NOW, "ts is 301 s ahead of the gateway's clock (limit 300 s)"),
        (1764417304, NOW, "ts is 301 s behind the gateway's clock (limit 300 s)"),
        (
            1764417605,
            NOW + 300.5,
            "ts is 301 s behind the gateway's clock (limit 300 s)",
        ),
        (0, NOW, "ts is 1764417605 s behind the gateway's clock (limit 300 s)"),
        (
            10**400,
            NOW,
            "ts is far ahead of the gateway's clock (limit 300 s)",
        ),
    ],
)
def test_ts_outside_skew_is_stale(ts: int, now: float, message: str) -> None:
    """A ts more than max_skew away is `stale`; the message gives skew and limit."""
    with pytest.raises(IntakeError) as info:
        check_ts(body(ts=ts), now, 300)
    assert (info.value.code, info.value.message) == ("stale", message)
    assert info.value.txn_id == "000123"


@pytest.mark.parametrize(
    "ts", ["1764417605", 1764417605.0, True, False, None, [1], ...]
)
def test_ts_must_be_an_integer(ts: object) -> None:
    """A ts that is not a JSON integer (booleans included) is `invalid`."""
    with pytest.raises(IntakeError) as info:
        check_ts(body(ts=ts), NOW, 300)
    assert info.value.code == "invalid"
    assert info.value.message == "ts must be an integer (Unix seconds)"


@pytest.mark.parametrize(
    ("value", "txn_id"),
    [
        (body(ts="x"), "000123"),
        (body(ts="x", txn_id=5), None),
        ({"type": "ping", "ts": "x", "nonce": "n", "txn_id": "7"}, None),
    ],
)
def test_ts_error_carries_the_txn_id(value: dict[str, Any], txn_id: str | None) -> None:
    """The step-7 error names the txn_id when a txn body holds one as a string."""
    with pytest.raises(IntakeError) as info:
        check_ts(value, NOW, 300)
    assert info.value.txn_id == txn_id


# --- step 8: good values ----------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "attr", "expected"),
    [
        ({"txn_id": "a"}, "txn_id", "a"),
        ({"txn_id": "AZaz09._:-"}, "txn_id", "AZaz09._:-"),
        ({"txn_id": "x" * 64}, "txn_id", "x" * 64),
        *[({"kind": k}, "kind", k) for k in KINDS],
        ({"amount": "128.5"}, "amount_minor", 12850),
        ({"amount": "128.5"}, "amount", "128.5"),
        ({"amount": "0.01"}, "amount_minor", 1),
        ({"amount": "0001"}, "amount_minor", 100),
        ({"amount": "999999999999.99"}, "amount_minor", 99999999999999),
        ({"amount": "1200", "currency": "JPY"}, "amount_minor", 1200),
        ({"amount": "1200", "currency": "JPY"}, "exponent", 0),
        ({"amount": "1.500", "currency": "BHD"}, "amount_minor", 1500),
        ({"amount": "1.5", "currency": "BHD"}, "amount_minor", 1500),
        ({"amount": "1.234", "currency": "IQD"}, "amount_minor", 1234),
        # The spec's amount shape allows 3 fraction digits, even for CLF's 4.
        ({"amount": "0.001", "currency": "CLF"}, "amount_minor", 10),
        ({"amount": "12", "currency": "CLF"}, "amount_minor", 120000),
        ({"amount": "0.001", "currency": "UYW"}, "amount_minor", 10),
        ({"amount": "1000.50", "currency": "IDR"}, "amount_minor", 100050),
        ({"amount": "99.99", "currency": "HUF"}, "amount_minor", 9999),
        ({"card_token": "tok_ABC 123~"}, "card_token", "tok_ABC 123~"),
        ({"card_token": "tok_ABC 123~"}, "last4", "7894"),
        ({"pan": ..., "card_token": "tok_ABC 123~"}, "last4", "123~"),
        ({"pan": ..., "card_token": "tok_ABC 123~"}, "masked_pan", None),
        ({"pan": ..., "card_token": "tok_ABC 123~"}, "card_hash", None),
        ({"pan": ..., "card_token": "abc"}, "last4", ""),
        ({"pan": ..., "card_token": "x" * 64}, "card_token", "x" * 64),
        ({"merchant_id": "M"}, "merchant_id", "M"),
        ({"merchant_id": " !~" + "x" * 29}, "merchant_id", " !~" + "x" * 29),
        ({"merchant_name": "x" * 100}, "merchant_name", "x" * 100),
        ({"merchant_name": "Café ☕ 星巴克"}, "merchant_name", "Café ☕ 星巴克"),
        ({"merchant_name": ""}, "merchant_name", ""),
        ({"merchant_name": ...}, "merchant_name", None),
        ({"location": "上海市 静安区"}, "location", "上海市 静安区"),
        ({"location": "y" * 100}, "location", "y" * 100),
        (
            {"time": "2026-11-29T12:00:05Z"},
            "local_time",
            datetime(2026, 11, 29, 12, 0, 5, tzinfo=UTC),
        ),
        (
            {"time": "2026-11-29T12:00:05-00:00"},
            "local_time",
            datetime(2026, 11, 29, 12, 0, 5, tzinfo=UTC),
        ),
        (
            {"time": "2024-02-29T23:59:59.123456789+05:30"},
            "local_time",
            datetime(
                2024,
                2,
                29,
                23,
                59,
                59,
                123456,
                tzinfo=timezone(timedelta(hours=5, minutes=30)),
            ),
        ),
        (
            {"time": "2026-11-29T20:00:05.5-03:00"},
            "local_time",
            datetime(
                2026, 11, 29, 20, 0, 5, 500000, tzinfo=timezone(timedelta(hours=-3))
            ),
        ),
        ({"time": "2026-11-29T20:00:05Z"}, "time", "2026-11-29T20:00:05Z"),
        ({"msisdn": "+1234567"}, "msisdn", "+1234567"),
        ({"msisdn": "+123456789012345"}, "msisdn", "+123456789012345"),
        ({"msisdn": ...}, "msisdn", None),
        ({"balance": "-5.00"}, "balance", "-5.00"),
        ({"balance": "0"}, "balance", "0"),
        ({"balance": "123456789012.1"}, "balance", "123456789012.1"),
        ({"balance": "100", "amount": "1", "currency": "JPY"}, "balance", "100"),
        ({"lang": "zh"}, "lang", "zh"),
        ({"lang": "EN"}, "lang", "en"),
        ({"lang": "yue"}, "lang", "yue"),
        ({"lang": "zh-Hans-CN"}, "lang", "zh-hans-cn"),
        ({"lang": "pt_BR"}, "lang", "pt_br"),
        ({"result": "declined"}, "result", "declined"),
        ({"result": "approved"}, "result", "approved"),
        ({"rrn": "123456789012"}, "rrn", "123456789012"),
        ({"rrn": "A1"}, "rrn", "A1"),
        ({"stan": "1"}, "stan", "1"),
        ({"stan": "000123"}, "stan", "000123"),
        ({"auth_code": "A1B2C3"}, "auth_code", "A1B2C3"),
        ({"kind": "refund", "orig_txn_id": "000122"}, "orig_txn_id", "000122"),
        ({"kind": "reversal", "orig_txn_id": "a:b.c_d-e"}, "orig_txn_id", "a:b.c_d-e"),
        ({"issuer": "bank-1.cn_x"}, "issuer", "bank-1.cn_x"),
        ({"issuer": "B" * 32}, "issuer", "B" * 32),
    ],
)
def test_good_values(changes: dict[str, Any], attr: str, expected: object) -> None:
    """Each field's valid forms are accepted and land in the Txn as shown."""
    assert getattr(validate_txn(body(**changes), HASHER), attr) == expected


def test_local_time_is_timezone_aware() -> None:
    """local_time keeps the sender's offset and compares correctly with UTC."""
    txn = validate_txn(body(), HASHER)
    assert txn.local_time.utcoffset() == timedelta(hours=8)
    assert txn.local_time == datetime(2026, 11, 29, 12, 0, 5, tzinfo=UTC)


# --- step 8: bad values -----------------------------------------------------

ID_SHAPE = "must be 1 to 64 characters of A-Z a-z 0-9 . _ : -"
AMOUNT_SHAPE = (
    "amount: must be a decimal string like 128.50 (at most 12 digits before the "
    "point and 3 after)"
)
BALANCE_SHAPE = (
    "balance: must be a decimal string like -5.00 (at most 12 digits before the "
    "point and 3 after)"
)
TIME_SHAPE = (
    "time: must be RFC 3339: YYYY-MM-DDThh:mm:ss[.fraction] then Z or +hh:mm or -hh:mm"
)
TIME_VALUE = "time: is not a valid date and time"
PAN_SHAPE = "pan: must be 12 to 19 digits with no separators"
LANG = "lang: must be a language tag like zh or en-GB (at most 35 characters)"

BAD: list[tuple[str, object, str]] = [
    ("type", "ping", 'type: must be "txn"'),
    ("type", ..., 'type: must be "txn"'),
    *[
        ("txn_id", v, "txn_id: " + ID_SHAPE)
        for v in ["", "x" * 65, "a b", "ü", "id\n", "a/b", "a#b"]
    ],
    *[
        (
            "kind",
            v,
            "kind: must be one of purchase, refund, reversal, preauth, withdrawal",
        )
        for v in ["Purchase", "", "sale", "purchase "]
    ],
    *[
        ("amount", v, AMOUNT_SHAPE)
        for v in [
            "",
            "12,50",
            "1_000",
            " 1",
            "1 ",
            "NaN",
            "Infinity",
            "1e2",
            "-1",
            "+1",
            "1.",
            ".5",
            "1.2345",
            "1234567890123",
            "\u0661\u0662\u0663",
            "\uff11\uff12\uff18",
            "128.50\n",
            "0x10",
        ]
    ],
    *[
        ("amount", v, "amount: must be greater than 0")
        for v in ["0", "0.00", "000.000"]
    ],
    (
        "amount",
        "1.123",
        "amount: has 3 fraction digits but CNY allows at most 2 (ISO 4217 minor unit)",
    ),
    ("currency", "cny", "currency: must be uppercase (CNY, not cny)"),
    ("currency", "Jpy", "currency: must be uppercase (JPY, not Jpy)"),
    *[
        (
            "currency",
            v,
            f"currency: {v} is not an active ISO 4217 currency with a minor unit",
        )
        for v in ["XAU", "XAG", "XDR", "XTS", "XXX", "ABC", "ANG", "HRK", "ZWL"]
    ],
    *[
        (
            "currency",
            v,
            "currency: must be an ISO 4217 alphabetic code (3 uppercase letters)",
        )
        for v in ["", "CN", "CNY ", "156", "CNYY", "ÇNY"]
    ],
    *[
        ("pan", v, PAN_SHAPE)
        for v in [
            "",
            "12345678903",
            "4" * 20,
            "6222 0212 3456 7894",
            "6222-0212-3456-7894",
            "\uff16\uff12\uff12\uff12\uff10\uff12\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff14",
            "6222021234567894\n",
            "622202123456789a",
        ]
    ],
    ("pan", "6222021234567895", "pan: fails the Luhn check"),
    ("pan", "4111111111111112", "pan: fails the Luhn check"),
    *[
        ("card_token", v, "card_token: must be 1 to 64 printable ASCII characters")
        for v in ["", "x" * 65, "tok\n", "tök", "tok\x7f"]
    ],
    *[
        ("merchant_id", v, "merchant_id: must be 1 to 32 printable ASCII characters")
        for v in ["", "x" * 33, "M\t1", "Mé"]
    ],
    (
        "merchant_name",
        "x" * 101,
        "merchant_name: must be at most 100 characters, got 101",
    ),
    *[
        ("merchant_name", v, "merchant_name: must not contain control characters")
        for v in ["a\x00b", "a\nb", "a\x1fb", "a\x7fb", "\t"]
    ],
    ("location", "é" * 101, "location: must be at most 100 characters, got 101"),
    ("location", "Line 1\r\nLine 2", "location: must not contain control characters"),
    *[
        ("time", v, TIME_SHAPE)
        for v in [
            "2026-11-29 20:00:05+08:00",
            "2026-11-29T20:00:05",
            "2026-11-29t20:00:05Z",
            "2026-11-29T20:00:05z",
            "2026-11-29T20:00:05+0800",
            "2026-11-29T20:00+08:00",
            "2026-11-29T20:00:05+00:60",
            "2026-11-29T20:00:05+24:00",
            "26-11-29T20:00:05Z",
            "2026-11-29T20:00:05.Z",
            "1764417605",
            "",
            "2026-11-29T20:00:05+08:00\n",
            "\uff12026-11-29T20:00:05Z",
            "2026-11-29T20:00:05,5Z",
        ]
    ],
    *[
        ("time", v, TIME_VALUE)
        for v in [
            "2026-13-29T20:00:05Z",
            "2026-00-10T20:00:05Z",
            "2026-02-29T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T20:60:00Z",
            "2026-11-29T20:00:60Z",
            "0000-01-01T00:00:00Z",
        ]
    ],
    *[
        ("msisdn", v, "msisdn: must be E.164: + then 7 to 15 digits")
        for v in [
            "8613800138000",
            "+0123456",
            "+123456",
            "+1234567890123456",
            "+86 138001380",
            "+86138001380\uff10\uff10",
            "+8613800138000\n",
            "",
        ]
    ],
    *[
        ("balance", v, BALANCE_SHAPE)
        for v in ["1,000", "--1", "+5", "1e3", "NaN", "1.2345", "", "- 1"]
    ],
    (
        "balance",
        "1.123",
        "balance: has 3 fraction digits but CNY allows at most 2 (ISO 4217 minor unit)",
    ),
    *[
        ("lang", v, LANG)
        for v in ["e", "engl", "zh-", "zh--CN", "中文", "zh-abcdefghi", "zh CN", "1a"]
    ],
    *[
        ("result", v, "result: must be approved or declined")
        for v in ["APPROVED", "ok", "", "approved "]
    ],
    *[
        ("rrn", v, "rrn: must be 1 to 12 letters or digits")
        for v in ["", "1234567890123", "12-34", "\uff11"]
    ],
    *[
        ("stan", v, "stan: must be 1 to 6 digits")
        for v in ["", "1234567", "12a", "\u0661"]
    ],
    *[
        ("auth_code", v, "auth_code: must be 1 to 6 letters or digits")
        for v in ["", "1234567", "AB 12"]
    ],
    *[("orig_txn_id", v, "orig_txn_id: " + ID_SHAPE) for v in ["", "a b", "x" * 65]],
    (
        "orig_txn_id",
        "000122",
        "orig_txn_id: only allowed when kind is reversal or refund",
    ),
    *[
        ("issuer", v, "issuer: must be 1 to 32 characters of A-Z a-z 0-9 . _ -")
        for v in ["", "x" * 33, "bank one", "bank:1"]
    ],
]


@pytest.mark.parametrize(("field", "value", "message"), BAD)
def test_bad_values(field: str, value: object, message: str) -> None:
    """Each field's bad forms are `invalid` with a message naming the field."""
    error = invalid(body(**{field: value}))
    assert error.message == message
    assert error.txn_id == (None if field == "txn_id" else "000123")


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        ("1.5", "JPY", "amount: has 1 fraction digits but JPY allows at most 0"),
        ("1.50", "KRW", "amount: has 2 fraction digits but KRW allows at most 0"),
        ("1.5", "XOF", "amount: has 1 fraction digits but XOF allows at most 0"),
        ("1.001", "USD", "amount: has 3 fraction digits but USD allows at most 2"),
    ],
)
def test_fraction_digits_follow_iso_4217(
    amount: str, currency: str, message: str
) -> None:
    """An amount with more fraction digits than the ISO 4217 minor unit is invalid."""
    error = invalid(body(amount=amount, currency=currency))
    assert error.message == message + " (ISO 4217 minor unit)"


def test_four_fraction_digits_never_fit_the_amount_shape() -> None:
    """The spec's amount shape stops at 3 fraction digits, even for CLF (minor 4)."""
    assert invalid(body(amount="0.0001", currency="CLF")).message == AMOUNT_SHAPE


def test_balance_fraction_digits_follow_the_currency() -> None:
    """A JPY balance may have no fraction digits at all."""
    error = invalid(body(amount="1200", currency="JPY", balance="10.5"))
    assert error.message == (
        "balance: has 1 fraction digits but JPY allows at most 0 (ISO 4217 minor unit)"
    )


STRING_FIELDS = [
    "txn_id", "kind", "amount", "currency", "pan", "card_token", "merchant_id",
    "merchant_name", "location", "time", "msisdn", "balance", "lang", "result",
    "rrn", "stan", "auth_code", "orig_txn_id", "issuer",
]  # fmt: skip
WRONG_TYPES = [
    (128, "number"),
    (128.5, "number"),
    (True, "boolean"),
    (None, "null"),
    (["128.50"], "array"),
    ({"v": "128.50"}, "object"),
]


@pytest.mark.parametrize("field", STRING_FIELDS)
@pytest.mark.parametrize(("value", "name"), WRONG_TYPES)
def test_string_fields_reject_other_json_types(
    field: str, value: object, name: str
) -> None:
    """A string field holding another JSON type is invalid and says which type."""
    changes: dict[str, Any] = {field: value}
    if field == "orig_txn_id":
        changes["kind"] = "refund"
    error = invalid(body(**changes))
    assert error.message == f"{field}: must be a string, got {name}"


@pytest.mark.parametrize(
    ("value", "name"),
    [("1764417605", "string"), (1.5, "number"), (True, "boolean"), (None, "null")],
)
def test_ts_type_is_checked_again_in_step_8(value: object, name: str) -> None:
    """validate_txn also refuses a ts that is not an integer."""
    error = invalid(body(ts=value))
    assert error.message == f"ts: must be an integer (Unix seconds), got {name}"


@pytest.mark.parametrize(
    "field", ["txn_id", "ts", "kind", "amount", "currency", "merchant_id", "time"]
)
def test_required_fields(field: str) -> None:
    """A missing required field is invalid: '<field>: is required'."""
    assert invalid(body(**{field: ...})).message == f"{field}: is required"


def test_pan_or_card_token_is_required() -> None:
    """Without pan and card_token the message names both."""
    assert invalid(body(pan=...)).message == "pan or card_token is required"


def test_valid_txn_id_is_echoed_in_errors() -> None:
    """A valid txn_id keys the error response; an invalid one does not."""
    assert invalid(body(kind="x")).txn_id == "000123"
    assert invalid(body(kind="x", txn_id="bad id")).txn_id is None
    assert invalid(body(txn_id="bad id")).txn_id is None


# --- order of checks ----------------------------------------------------------

# One bad value per field, in the order of the spec's txn table.
ORDER: list[tuple[str, object, str]] = [
    ("type", "ping", "type:"),
    ("txn_id", "bad id!", "txn_id:"),
    ("ts", "1764417605", "ts:"),
    ("kind", "buy", "kind:"),
    ("amount", "12,50", "amount:"),
    ("currency", "ABC", "currency:"),
    ("pan", "6222021234567895", "pan:"),
    ("card_token", "", "card_token:"),
    ("merchant_id", "", "merchant_id:"),
    ("merchant_name", "x" * 101, "merchant_name:"),
    ("location", "a\nb", "location:"),
    ("time", "2026-11-29 20:00:05", "time:"),
    ("msisdn", "8613800138000", "msisdn:"),
    ("balance", "1,000", "balance:"),
    ("lang", "english!", "lang:"),
    ("result", "ok", "result:"),
    ("rrn", "1234567890123", "rrn:"),
    ("stan", "1234567", "stan:"),
    ("auth_code", "AB-12", "auth_code:"),
    ("orig_txn_id", "x y", "orig_txn_id:"),
    ("issuer", "bank one", "issuer:"),
]


@pytest.mark.parametrize(
    ("first", "second"),
    list(itertools.combinations(ORDER, 2)),
    ids=lambda pair: pair[0],
)
def test_first_bad_field_wins(
    first: tuple[str, object, str], second: tuple[str, object, str]
) -> None:
    """With two bad fields, the error names the one earlier in the spec's table."""
    error = invalid(body(**{first[0]: first[1], second[0]: second[1]}))
    assert error.message.startswith(first[2])


def test_currency_is_checked_before_the_amounts_fraction() -> None:
    """Too many fraction digits cannot be judged without a valid currency."""
    error = invalid(body(amount="1.2345", currency="ABC"))
    assert error.message.startswith("amount:")
    error = invalid(body(amount="1.234", currency="ABC"))
    assert error.message.startswith("currency:")
    error = invalid(body(amount="1.234", pan="1"))
    assert error.message.startswith("amount:")


def test_missing_card_comes_after_card_token_and_before_merchant() -> None:
    """Missing card data is reported after the pan checks and before merchant_id."""
    assert (
        invalid(body(pan=..., merchant_id="")).message
        == "pan or card_token is required"
    )
    assert invalid(body(pan=..., amount="x")).message.startswith("amount:")


def test_orig_txn_id_kind_rule_comes_before_issuer() -> None:
    """orig_txn_id with a purchase fails before a bad issuer is looked at."""
    error = invalid(body(orig_txn_id="000122", issuer="bank one"))
    assert error.message.startswith("orig_txn_id:")


# --- Luhn and masking ---------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111111", "5555555555554444", "378282246310005", "6011111111111117",
        "4222222222222", "6222021234567894", "79927398713", "0000000000000",
        "6250941006528599", "3530111333300000", "4000056655665556",
        "4444444444444444442",
    ],
)  # fmt: skip
def test_luhn_accepts_valid_numbers(number: str) -> None:
    """Known-good card numbers pass the Luhn check."""
    assert reference_luhn(number)
    assert luhn_ok(number)


def test_luhn_catches_every_single_digit_error() -> None:
    """Changing any one digit of a valid PAN makes it fail the Luhn check."""
    for i, ch in enumerate(PAN):
        for d in "0123456789":
            if d != ch:
                assert not luhn_ok(PAN[:i] + d + PAN[i + 1 :])


@given(st.text(alphabet="0123456789", min_size=1, max_size=25))
def test_luhn_matches_the_textbook_algorithm(digits: str) -> None:
    """luhn_ok agrees with a plain per-digit implementation on any digit string."""
    assert luhn_ok(digits) == reference_luhn(digits)


@pytest.mark.parametrize(
    ("pan", "masked"),
    [
        ("123456789012", "12******9012"),
        ("1234567890123", "123******0123"),
        ("12345678901234", "1234******1234"),
        ("123456789012345", "12345******2345"),
        ("1234567890123456", "123456******3456"),
        ("12345678901234567", "123456*******4567"),
        ("123456789012345678", "123456********5678"),
        ("1234567890123456789", "123456*********6789"),
    ],
)
def test_mask_for_each_length(pan: str, masked: str) -> None:
    """Masks keep the last 4 and first min(6, len-10) digits, stars between."""
    assert mask_pan(pan) == masked
    assert len(masked) == len(pan)


@pytest.mark.parametrize("length", range(12, 20))
def test_mask_never_shows_more_than_first6_last4(length: int) -> None:
    """At most 10 digits are visible and at least 6 are hidden, for every length."""
    stem = "".join(str(i % 10) for i in range(length - 1))
    pan = with_check_digit(stem)
    txn = validate_txn(body(pan=pan), HASHER)
    assert txn.masked_pan is not None
    visible = sum(c.isdigit() for c in txn.masked_pan)
    assert visible <= 10
    assert txn.masked_pan.count("*") >= 6
    assert txn.masked_pan.endswith(pan[-4:])
    assert txn.last4 == pan[-4:]


def test_card_hash_comes_from_the_hasher() -> None:
    """card_hash is the hasher's keyed hash of the PAN; other keys give others."""
    assert validate_txn(body(), HASHER).card_hash == HASHER.card_hash(PAN)
    other = validate_txn(body(), HmacHasher(b"\x08" * 32))
    assert other.card_hash != HASHER.card_hash(PAN)


# --- content bytes (idempotency) ----------------------------------------------


def test_content_ignores_key_order_spacing_and_ts() -> None:
    """Key order, whitespace and ts do not change the content."""
    spaced = orjson.loads(
        b'{ "msisdn" : "+8613800138000", "time":"2026-11-29T20:00:05+08:00",\n'
        b' "merchant_name":"\\u661f\\u5df4\\u514b'
        b'(\\u5357\\u4eac\\u897f\\u8def\\u5e97)",'
        b' "merchant_id":"M001","pan":"6222021234567894","currency":"CNY",'
        b' "amount":"128.50","kind":"purchase","ts":1764417999,"txn_id":"000123",'
        b' "type":"txn"}'
    )
    assert content_bytes(spaced) == content_bytes(body())
    assert content_bytes(body(ts=1)) == content_bytes(body(ts=...))
    assert validate_txn(spaced, HASHER).content_digest == (
        validate_txn(body(), HASHER).content_digest
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": "128.5"},
        {"location": "Shanghai"},
        {"msisdn": ...},
        {"extra": 1},
        {"extra": None},
        {"merchant_name": "星巴克(南京西路店) "},
    ],
)
def test_content_differs_for_any_field_change(changes: dict[str, Any]) -> None:
    """A field changed ("128.5" vs "128.50"), added or removed changes the content."""
    assert content_bytes(body(**changes)) != content_bytes(body())
    assert validate_txn(body(**changes), HASHER).content_digest != (
        validate_txn(body(), HASHER).content_digest
    )


def test_content_distinguishes_json_types() -> None:
    """1 and 1.0, 1 and "1", false and 0 are different content."""
    assert content_bytes(body(extra=1)) != content_bytes(body(extra=1.0))
    assert content_bytes(body(extra=1)) != content_bytes(body(extra="1"))
    assert content_bytes(body(extra=False)) != content_bytes(body(extra=0))


def test_content_sorts_nested_objects() -> None:
    """Nested objects compare regardless of their key order."""
    a = body(extra={"b": 1, "a": {"y": 2, "x": 3}})
    b = body(extra={"a": {"x": 3, "y": 2}, "b": 1})
    assert content_bytes(a) == content_bytes(b)
    assert b'"extra":{"a":{"x":3,"y":2},"b":1}' in content_bytes(a)


def test_content_refuses_unserialisable_values() -> None:
    """An integer beyond 64 bits (never produced by orjson.loads) is invalid."""
    with pytest.raises(IntakeError) as info:
        content_bytes(body(extra=2**70))
    assert info.value.message == "body: holds a value that cannot be serialised"


# --- ping ---------------------------------------------------------------------


@pytest.mark.parametrize("nonce", ["abc", "x" * 64, " ~!"])
def test_ping_nonce(nonce: str) -> None:
    """A ping's nonce of 1..64 printable ASCII characters is returned."""
    assert validate_ping({"type": "ping", "ts": 1, "nonce": nonce}) == nonce


@pytest.mark.parametrize(
    ("nonce", "message"),
    [
        ("", "nonce: must be 1 to 64 printable ASCII characters"),
        ("x" * 65, "nonce: must be 1 to 64 printable ASCII characters"),
        ("a\nb", "nonce: must be 1 to 64 printable ASCII characters"),
        ("ü", "nonce: must be 1 to 64 printable ASCII characters"),
        (5, "nonce: must be a string, got number"),
        (None, "nonce: must be a string, got null"),
        (..., "nonce: is required"),
    ],
)
def test_bad_ping_nonce(nonce: object, message: str) -> None:
    """A missing, mistyped or malformed nonce is invalid, with no txn_id."""
    ping: dict[str, Any] = {"type": "ping", "ts": 1}
    if nonce is not ...:
        ping["nonce"] = nonce
    with pytest.raises(IntakeError) as info:
        validate_ping(ping)
    assert (info.value.code, info.value.message, info.value.txn_id) == (
        "invalid",
        message,
        None,
    )


# --- ISO 4217 -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "digits"),
    [
        ("CNY", 2), ("JPY", 0), ("BHD", 3), ("IDR", 2), ("HUF", 2), ("IQD", 3),
        ("CLF", 4), ("UYW", 4), ("KWD", 3), ("KRW", 0), ("USD", 2), ("EUR", 2),
        ("TND", 3), ("VND", 0), ("XOF", 0), ("ISK", 0), ("XCG", 2), ("ZWG", 2),
    ],
)  # fmt: skip
def test_iso_4217_minor_units(code: str, digits: int) -> None:
    """The table holds ISO 4217's minor units, not CLDR's display digits."""
    assert MINOR_UNITS[code] == digits


def test_iso_4217_table_shape() -> None:
    """Every key is 3 uppercase letters; N.A. and withdrawn codes are absent."""
    assert len(MINOR_UNITS) == 165
    assert all(len(c) == 3 and c.isascii() and c.isupper() for c in MINOR_UNITS)
    assert set(MINOR_UNITS.values()) == {0, 2, 3, 4}
    for code in ["XAU", "XAG", "XPD", "XPT", "XBA", "XDR", "XSU", "XUA", "XTS", "XXX"]:
        assert code not in MINOR_UNITS
    for code in ["ANG", "BGN", "CUC", "HRK", "SLL", "ZWL"]:
        assert code not in MINOR_UNITS


def test_iso_4217_table_is_read_only() -> None:
    """The table cannot be changed at run time."""
    with pytest.raises(TypeError):
        MINOR_UNITS["XAU"] = 0  # type: ignore[index]


# --- no PAN anywhere ----------------------------------------------------------

# Fields to break, each with a bad value built from the PAN itself (so that an
# error message quoting its input would leak the digits).
PAN_MISUSE: list[tuple[str, str]] = [
    ("txn_id", "{pan}!"),
    ("kind", "{pan}"),
    ("amount", "{pan}.00x"),
    ("currency", "{pan}"),
    ("pan", "{pan}0"),
    ("pan", "{pan} "),
    ("pan", "{bad}"),
    ("card_token", "{pan}\n"),
    ("merchant_id", "{pan}{pan}{pan}"),
    ("merchant_name", "{pan}\x00"),
    ("location", "{pan}" * 9),
    ("time", "{pan}"),
    ("msisdn", "{pan}x"),
    ("balance", "{pan}{pan}"),
    ("lang", "{pan}"),
    ("result", "{pan}"),
    ("rrn", "{pan}{pan}"),
    ("stan", "{pan}"),
    ("auth_code", "{pan}"),
    ("orig_txn_id", "{pan}"),
    ("issuer", "{pan}{pan}{pan}"),
    ("currency", "xxx"),
]


@st.composite
def pans(draw: st.DrawFn) -> str:
    """Luhn-valid PANs of 12 to 19 digits."""
    stem = draw(st.text(alphabet="0123456789", min_size=11, max_size=18))
    return with_check_digit(stem)


@settings(deadline=None)
@given(pan=pans(), misuse=st.none() | st.sampled_from(PAN_MISUSE))
def test_pan_never_appears_in_txn_or_errors(
    pan: str, misuse: tuple[str, str] | None
) -> None:
    """Neither a Txn's repr/str nor any error message contains the PAN's digits."""
    bad = pan[:-1] + str((int(pan[-1]) + 1) % 10)
    changes: dict[str, Any] = {"pan": pan}
    if misuse is not None:
        changes[misuse[0]] = misuse[1].format(pan=pan, bad=bad)
    outcome = attempt(body(**changes))
    if isinstance(outcome, IntakeError):
        assert pan not in outcome.message
        assert pan not in str(outcome)
        assert bad not in outcome.message
    else:
        assert pan not in repr(outcome)
        assert pan not in str(outcome)
        if misuse is None:
            assert outcome.masked_pan == mask_pan(pan)
