"""The simulator's HTTP control, rendered with twisted.web's DummyRequest."""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

import pytest
from twisted.web.error import UnsupportedMethod
from twisted.web.resource import getChildForRequest
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from smsgw.codec import pdu as P
from smsgw.smsc.control import control_resource, parse_mo
from smsgw.smsc.factory import SmscFactory
from tests.smsc.support import Conn, bound, finish, make_smsc


def call(
    factory: SmscFactory,
    method: bytes,
    path: bytes,
    body: bytes = b"",
    args: dict[bytes, list[bytes]] | None = None,
) -> tuple[int, Any]:
    """Render ``method path`` against the control root; return (code, JSON body)."""
    request = DummyRequest(path.strip(b"/").split(b"/"))
    request.method = method
    request.content = BytesIO(body)  # type: ignore[attr-defined]
    request.args = args or {}
    resource = getChildForRequest(control_resource(factory), request)
    result = resource.render(request)
    if result == NOT_DONE_YET:
        result = b"".join(request.written)
    assert isinstance(result, bytes)
    if request.responseCode == 404:
        return 404, None
    assert request.responseHeaders.getRawHeaders(b"content-type") == [
        b"application/json"
    ]
    return request.responseCode or 200, json.loads(result)


def test_post_mo_queues_deliver_sm() -> None:
    """POST /mo sends the MO to the bound receiver and answers 202 with the count."""
    factory, clock, conn = bound()
    body = json.dumps({"from": "+8613800138000", "to": "95588", "text": "N"}).encode()
    assert call(factory, b"POST", b"/mo", body) == (202, {"queued": 1})
    [mo] = conn.read()
    assert isinstance(mo, P.DeliverSm)
    assert (mo.source_addr, mo.destination_addr, mo.short_message) == (
        "8613800138000",
        "95588",
        b"N",
    )
    finish(factory, clock, conn)


def test_post_mo_with_encoding_and_method() -> None:
    """POST /mo honours encoding and method (UCS-2 over SAR parts here)."""
    factory, clock, conn = bound()
    body = json.dumps(
        {
            "from": "+1",
            "to": "2",
            "text": "好" * 80,
            "encoding": "ucs2",
            "method": "sar",
        }
    ).encode()
    assert call(factory, b"POST", b"/mo", body) == (202, {"queued": 2})
    parts = conn.read()
    assert [p.data_coding for p in parts] == [8, 8]  # type: ignore[attr-defined]
    assert all(p.tlv(0x020C) is not None for p in parts)
    finish(factory, clock, conn)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"to": "2", "text": "x"}', "from"),
        (b'{"from": "+1", "text": "x"}', "to"),
        (b'{"from": "+1", "to": "2"}', "text"),
        (b'{"from": "+1", "to": "2", "text": "x", "encoding": "utf8"}', "encoding"),
        (b'{"from": "+1", "to": "2", "text": "x", "method": "udh7"}', "method"),
        (b'{"from": "+1", "to": "2", "text": "x", "data_coding": 300}', "data_coding"),
        (b'{"from": "+1", "to": "2", "text": "x", "colour": 1}', "colour"),
        (b'{"from": "+1", "to": "2", "text": "\\u597d", "encoding": "gsm7"}', "GSM"),
    ],
)
def test_post_mo_bad_request(body: bytes, error: str) -> None:
    """Bad JSON, a missing or invalid field, or unencodable text is a 400 JSON error."""
    factory, clock = make_smsc()
    code, doc = call(factory, b"POST", b"/mo", body)
    assert code == 400
    assert error in doc["error"]
    assert factory.stats()["mo_held"] == 0
    finish(factory, clock)


def test_parse_mo_defaults() -> None:
    """Optional fields default to auto encoding, udh8, no data_coding override."""
    assert parse_mo(b'{"from": "+1", "to": "2", "text": ""}') == {
        "source": "+1",
        "destination": "2",
        "text": "",
        "encoding": "auto",
        "method": "udh8",
        "data_coding": None,
        "system_id": None,
    }


def test_get_mo_not_allowed() -> None:
    """GET /mo is refused with 405."""
    factory, clock = make_smsc()
    with pytest.raises(UnsupportedMethod) as info:
        call(factory, b"GET", b"/mo")
    assert list(info.value.allowedMethods) == [b"HEAD", b"POST"]  # Site answers 405
    finish(factory, clock)


def test_get_stats() -> None:
    """GET /stats reports binds, submits, throttled, receipts and per-bind counters."""
    factory, clock, conn = bound(receipt_delay=1.0)
    conn.submit()
    conn.submit()
    code, doc = call(factory, b"GET", b"/stats")
    assert code == 200
    assert doc["binds"] == 1
    assert doc["submits"] == 2
    assert doc["throttled"] == 0
    assert doc["receipts_pending"] == 2
    assert doc["receipts_sent"] == 0
    assert doc["mo_sent"] == 0
    [per_bind] = doc["per_bind"]
    assert per_bind["system_id"] == "smsgw"
    assert per_bind["bind_type"] == "transceiver"
    assert per_bind["submits"] == 2
    clock.advance(1.0)
    assert call(factory, b"GET", b"/stats")[1]["receipts_sent"] == 2
    finish(factory, clock, conn)


def test_get_received_filters_and_limits() -> None:
    """GET /received returns the last N submits, optionally to one destination."""
    factory, clock, conn = bound()
    for dest in ("111", "222", "111", "111"):
        conn.submit(b"hi", destination_addr=dest, registered_delivery=0)
    code, doc = call(
        factory,
        b"GET",
        b"/received",
        args={b"limit": [b"2"], b"destination": [b"111"]},
    )
    assert code == 200
    assert doc["total"] == 4
    assert [r["message_id"] for r in doc["received"]] == ["3", "4"]
    assert doc["received"][0]["short_message"] == "6869"
    assert doc["received"][0]["destination_addr"] == "111"
    finish(factory, clock, conn)


def test_get_received_bad_limit() -> None:
    """A limit that is not a non-negative integer is a 400."""
    factory, clock = make_smsc()
    code, doc = call(factory, b"GET", b"/received", args={b"limit": [b"-1"]})
    assert code == 400
    assert "limit" in doc["error"]
    finish(factory, clock)


def test_unknown_path_is_404() -> None:
    """Paths other than /mo, /stats and /received are 404."""
    factory, clock = make_smsc()
    assert call(factory, b"GET", b"/nope")[0] == 404
    assert call(factory, b"GET", b"/stats/more")[0] == 404
    finish(factory, clock)


def test_mo_via_control_held_for_receiver() -> None:
    """An MO posted while no receiver is bound is delivered when one binds."""
    factory, clock = make_smsc()
    body = b'{"from": "+1", "to": "2", "text": "Y"}'
    assert call(factory, b"POST", b"/mo", body) == (202, {"queued": 1})
    conn = Conn(factory)
    conn.bind(P.BindReceiver)
    assert [p.short_message for p in conn.read()] == [b"Y"]  # type: ignore[attr-defined]
    finish(factory, clock, conn)
