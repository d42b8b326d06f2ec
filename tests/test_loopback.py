"""Real reactor, 127.0.0.1, port 0: our carrier binds to our simulator over TCP,
submits a long alert and gets every part's receipt."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from smsgw.carrier.compose import compose
from smsgw.carrier.deliveries import Answer, MoEvent, ReceiptEvent
from smsgw.carrier.service import CarrierService, reactor_endpoints
from smsgw.smsc.service import make_smsc_service
from smsgw.smsc.settings import SmscSettings
from tests.test_integration import carrier_config

pytestmark = pytest.mark.loopback


def wait_until(check: Any, timeout: float = 5.0) -> defer.Deferred[None]:
    """Poll ``check()`` on the reactor until true; fail after ``timeout``."""

    @defer.inlineCallbacks
    def poll() -> Generator[Any, Any, None]:
        for _ in range(int(timeout / 0.01)):
            if check():
                return
            yield task.deferLater(reactor, 0.01, lambda: None)
        raise AssertionError(f"not true within {timeout} s: {check}")

    return poll()


@pytest_twisted.inlineCallbacks
def test_carrier_against_simulator_over_tcp() -> Generator[Any, Any, None]:
    """A 3-part alert goes out over TCP and each part's receipt comes back."""
    smsc = make_smsc_service(
        SmscSettings(listen="tcp:0:interface=127.0.0.1", receipt_delay=0.05), reactor
    )
    smsc.startService()
    port = yield smsc.listening
    receipts: list[ReceiptEvent] = []

    def on_receipt(e: ReceiptEvent) -> Answer:
        receipts.append(e)
        return 0

    def on_mo(e: MoEvent) -> Answer:
        return 0

    cfg = carrier_config(connect=f"tcp:host=127.0.0.1:port={port.getHost().port}")
    carrier = CarrierService(
        cfg, reactor, reactor_endpoints(reactor), on_receipt, on_mo
    )
    carrier.startService()
    try:
        pdus = compose(
            "€ 100.00 at STARBUCKS " * 15,
            "+8613800138000",
            carrier.source,
            cfg.profile,
            ref=42,
        )
        outcomes = yield defer.gatherResults([carrier.sender.submit(p) for p in pdus])
        assert len(outcomes) == len(pdus) == 3
        assert all(o.accepted for o in outcomes)
        yield wait_until(lambda: len(receipts) == 3)
        assert {r.message_id for r in receipts} == {
            carrier.resp_id(o.message_id) for o in outcomes
        }
    finally:
        yield carrier.stopService()
        yield smsc.stopService()
    assert carrier.bound == 0
