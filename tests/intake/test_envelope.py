"""Intake v1 envelope: the spec's test vector and checks 2, 4 and 5."""

from __future__ import annotations

import json

import orjson
import pytest

from smsgw.intake.envelope import (
    IntakeError,
    TerminalKey,
    error_body,
    parse_body,
    parse_envelope,
    request_frame,
    response_frame,
    verify,
)

# ../shared/spec/intake-v1.md, "Test vector"
KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
BODY = (
    '{"type":"txn","txn_id":"000123","ts":1764417605,"kind":"purchase",'
    '"amount":"128.50","currency":"CNY","pan":"6222021234567894",'
    '"merchant_id":"M001","merchant_name":"星巴克(南京西路店)",'
    '"time":"2026-11-29T20:00:05+08:00","msisdn":"+8613800138000"}'
)
MAC = "d83bd5061bda363b67d9119141c903863fc6654bf596ddf0706e4c56ca6178be"


def envelope_bytes(**fields: object) -> bytes:
    return json.dumps(
        {"terminal": "T1001", "body": BODY, "mac": MAC, **fields}
    ).encode()


def test_spec_test_vector() -> None:
    """The spec's key and body give its MAC, a 398-byte envelope, frame 0000018e."""
    key = TerminalKey(KEY)
    assert key.sign(BODY.encode("utf-8")) == MAC
    frame = request_frame("T1001", BODY, key)
    assert frame[:4].hex() == "0000018e"
    assert len(frame) - 4 == 398
    env = parse_envelope(frame[4:])
    assert verify(env, [key]) is key
    assert parse_body(env)["merchant_name"] == "星巴克(南京西路店)"


def test_envelope_formatting_does_not_matter() -> None:
    """Spaces, key order and escapes in the envelope leave the body and MAC valid."""
    escaped = json.dumps(
        {"mac": MAC, "body": BODY, "terminal": "T1001"}, ensure_ascii=True, indent=2
    ).encode()
    env = parse_envelope(escaped)
    assert env.body == BODY
    assert verify(env, [TerminalKey(KEY)])


def test_either_key_verifies_during_rotation() -> None:
    """With two keys, the one that matches is returned to sign the answer."""
    old, new = TerminalKey(KEY), TerminalKey(b"\x01" * 32)
    env = parse_envelope(envelope_bytes())
    assert verify(env, [new, old]) is old


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (json.dumps({"body": BODY, "mac": MAC}).encode(), "'terminal'"),
        (json.dumps({"terminal": "T1001", "body": 5, "mac": MAC}).encode(), "'body'"),
        (json.dumps({"terminal": "T1001", "body": BODY}).encode(), "'mac'"),
        (b'{"terminal":"T1001","body":"\\ud800","mac":"00"}', "not valid JSON"),
        (b'{"terminal":"T1001","body":"x","mac":"00"}\xff', "not valid JSON"),
    ],
)
def test_malformed_envelopes(raw: bytes, why: str) -> None:
    """Step 2: a bad envelope is `malformed`, with a message naming the cause."""
    with pytest.raises(IntakeError) as info:
        parse_envelope(raw)
    assert info.value.code == "malformed"
    assert why in info.value.message


@pytest.mark.parametrize(
    "mac", [MAC.upper(), MAC[:-1] + "f", "", "zz" * 32, MAC + "00", "é" * 64]
)
def test_bad_mac(mac: str) -> None:
    """Step 4: anything but the exact lowercase hex MAC is `bad_mac`."""
    env = parse_envelope(envelope_bytes(mac=mac))
    with pytest.raises(IntakeError) as info:
        verify(env, [TerminalKey(KEY)])
    assert info.value.code == "bad_mac"


@pytest.mark.parametrize(
    ("body", "txn_id", "why"),
    [
        ("nope", None, "not valid JSON"),
        ('["txn"]', None, "must be a JSON object"),
        (
            '{"type":"refund_all","txn_id":"7"}',
            None,
            "unknown request type 'refund_all'",
        ),
        ('{"txn_id":"7"}', None, "unknown request type (a NoneType)"),
    ],
)
def test_malformed_bodies(body: str, txn_id: str | None, why: str) -> None:
    """Step 5: a body that is not an object with a known type is `malformed`."""
    key = TerminalKey(KEY)
    env = parse_envelope(request_frame("T1001", body, key)[4:])
    verify(env, [key])
    with pytest.raises(IntakeError) as info:
        parse_body(env)
    assert info.value.code == "malformed"
    assert info.value.txn_id == txn_id
    assert why in info.value.message


def test_response_frames_are_signed_or_null() -> None:
    """A response carries its body as a string and its MAC, or null unsigned."""
    key = TerminalKey(KEY)
    body = {"type": "pong", "nonce": "abc"}
    frame = response_frame(body, key)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    outer = orjson.loads(frame[4:])
    assert orjson.loads(outer["body"]) == body
    assert outer["mac"] == key.sign(outer["body"].encode())
    unsigned = orjson.loads(response_frame(body, None)[4:])
    assert unsigned["mac"] is None


def test_error_body_shape() -> None:
    """Error responses follow the spec: type, txn_id, code, message."""
    err = IntakeError("invalid", "amount: too many fraction digits for JPY", "9")
    assert error_body(err) == {
        "type": "error",
        "txn_id": "9",
        "code": "invalid",
        "message": "amount: too many fraction digits for JPY",
    }


def test_keys_never_show_in_repr() -> None:
    """A terminal key's repr hides the secret."""
    assert KEY.hex() not in repr(TerminalKey(KEY))
    assert repr(TerminalKey(KEY)) == "TerminalKey(****)"
