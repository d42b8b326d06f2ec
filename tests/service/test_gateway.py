"""The gateway assembled from conf/smsgw.yaml on a memory reactor."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs

from smsgw.carrier.deliveries import MoEvent, ReceiptEvent
from smsgw.codec import pdu as P
from smsgw.codec.receipt import Receipt
from smsgw.service.config import load_config
from smsgw.service.gateway import Gateway


def test_default_config_runs_simulator_and_binds_to_it() -> None:
    """The first-run config listens on 2775 and its carrier connects there."""
    reactor = MemoryReactorClock()
    gateway = Gateway(load_config("conf/smsgw.yaml"), reactor)
    gateway.privilegedStartService()
    gateway.startService()
    assert [(port, iface) for port, _, _, iface in reactor.tcpServers] == [
        (2775, "127.0.0.1")
    ]
    assert [(host, port) for host, port, *_ in reactor.tcpClients] == [
        ("127.0.0.1", 2775)
    ]
    assert set(gateway.carriers) == {"sim"}
    gateway.stopService()


def test_receipts_and_mo_are_logged_with_fields() -> None:
    """Receipts and MO reaching the gateway are acknowledged and logged."""
    gateway = Gateway(load_config("conf/smsgw.yaml"), MemoryReactorClock())
    receipt = Receipt("1a", "DELIVRD", True, "000", None, None, True)
    with capturedLogs() as events:
        assert gateway.receipt_received(ReceiptEvent("sim", "1a", receipt)) == 0
        mo = P.DeliverSm(source_addr="8613800138000", short_message=b"N")
        assert gateway.mo_received(MoEvent("sim", mo)) == 0
    first = events[0]
    assert (first["carrier"], first["message_id"], first["state"]) == (
        "sim",
        "1a",
        "DELIVRD",
    )
    assert events[1]["source"] == "8613800138000"
