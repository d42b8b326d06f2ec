"""Loopback on a real reactor: smpplib's blocking client, a peer we did not write,
binds, submits, gets a receipt and unbinds; and the HTTP control over TCP."""

from __future__ import annotations

import json
from collections.abc import Generator
from io import BytesIO
from typing import Any

import pytest
import pytest_twisted  # type: ignore[import-untyped]
import smpplib.client
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.web.client import Agent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers

from smsgw.smsc.service import SmscService, make_smsc_service
from smsgw.smsc.settings import SmscSettings

pytestmark = pytest.mark.loopback


def esme_session(port: int) -> dict[str, Any]:
    """Run one blocking smpplib session; return what it saw (runs in a thread)."""
    seen: dict[str, Any] = {"sent": [], "received": []}
    client = smpplib.client.Client(
        "127.0.0.1", port, timeout=2, allow_unknown_opt_params=True
    )
    client.set_message_sent_handler(lambda pdu: seen["sent"].append(pdu))
    client.set_message_received_handler(lambda pdu: seen["received"].append(pdu))
    client.connect()
    try:
        bind = client.bind_transceiver(system_id="smsgw", password="secret")
        seen["bind_status"] = bind.status
        client.send_message(
            source_addr_ton=0,
            source_addr="95588",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="8613800138000",
            short_message=b"Card *1234 used",
            registered_delivery=1,
        )
        client.read_once()  # submit_sm_resp
        client.read_once()  # the receipt deliver_sm (answered by smpplib)
        seen["unbind_status"] = client.unbind().status
    finally:
        client.disconnect()
    return seen


def start(settings: SmscSettings) -> SmscService:
    service = make_smsc_service(settings, reactor)
    service.startService()
    return service


@pytest_twisted.inlineCallbacks  # type: ignore[untyped-decorator]
def test_smpplib_client_round_trip() -> Generator[Deferred[Any], Any, None]:
    """smpplib binds, submits, gets the id and the receipt with its TLVs, unbinds."""
    service = start(
        SmscSettings(listen="tcp:0:interface=127.0.0.1", receipt_delay=0.05)
    )
    try:
        port = yield service.smpp.when_listening()
        seen = yield deferToThread(esme_session, port.getHost().port)
    finally:
        yield service.stopService()
    assert seen["bind_status"] == 0
    [resp] = seen["sent"]
    assert resp.message_id == b"1"
    [receipt] = seen["received"]
    assert receipt.esm_class == 0x04
    assert receipt.receipted_message_id == b"1"
    assert receipt.message_state == 2
    assert receipt.short_message.startswith(b"id:1 sub:001 dlvrd:001 submit date:")
    assert receipt.short_message.endswith(b"stat:DELIVRD err:000 text:Card *1234 used")
    assert seen["unbind_status"] == 0
    assert service.factory.submits == 1
    assert service.factory.stats()["deliver_sm_unanswered"] == 0


# Twisted's Agent hands readBody a transport proxy without abortConnection.
@pytest.mark.filterwarnings("ignore:Using readBody with a transport:DeprecationWarning")
@pytest_twisted.inlineCallbacks  # type: ignore[untyped-decorator]
def test_http_control_over_tcp() -> Generator[Deferred[Any], Any, None]:
    """POST /mo and GET /stats answer over a real TCP connection."""
    service = start(
        SmscSettings(
            listen="tcp:0:interface=127.0.0.1", control="tcp:0:interface=127.0.0.1"
        )
    )
    try:
        assert service.control is not None
        port = yield service.control.when_listening()
        base = f"http://127.0.0.1:{port.getHost().port}".encode()
        agent = Agent(reactor)
        body = json.dumps({"from": "+1", "to": "2", "text": "N"}).encode()
        response = yield agent.request(
            b"POST",
            base + b"/mo",
            Headers({b"content-type": [b"application/json"]}),
            FileBodyProducer(BytesIO(body)),
        )
        posted = json.loads((yield readBody(response)))
        assert (response.code, posted) == (202, {"queued": 1})
        response = yield agent.request(b"GET", base + b"/stats")
        stats = json.loads((yield readBody(response)))
        assert response.code == 200
        assert stats["mo_held"] == 1
    finally:
        yield service.stopService()
