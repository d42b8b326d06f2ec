"""Our binds against our SMSC simulator, in memory on one Clock: submits,
receipts, throttling, an SMSC drop mid-load, MO, graceful stop."""

from __future__ import annotations

import random
from pathlib import Path

from twisted.internet.task import Clock

from smsgw.carrier.compose import compose
from smsgw.carrier.deliveries import Answer, MoEvent, ReceiptEvent
from smsgw.carrier.sender import SubmitOutcome
from smsgw.carrier.service import CarrierService
from smsgw.codec.segment import parse_udh
from smsgw.codec.text import decode_text
from smsgw.service.config import CarrierConfig, parse_config
from smsgw.smsc.factory import SmscFactory
from smsgw.smsc.settings import SmscSettings
from smsgw.testing import MemoryEndpoint


def carrier_config(**overrides: object) -> CarrierConfig:
    carrier = {
        "name": "sim",
        "connect": "tcp:host=127.0.0.1:port=2775",
        "system_id": "smsgw",
        "password": "secret",
        "source_addr": "95588",
        "profile": "smsgw-sim",
        "window": 10,
        "tps": 1000,
        "reconnect_initial": 1.0,
        **overrides,
    }
    cfg = parse_config(
        {"intake": {"listen": "tcp:7400"}, "carriers": [carrier]},
        base_dir=Path("."),
        environ={},
    )
    return cfg.carriers[0]


class Rig:
    """CarrierService <-> SmscFactory through a MemoryEndpoint."""

    def __init__(self, smsc: SmscSettings | None = None, **carrier: object) -> None:
        self.clock = Clock()
        self.clock.advance(1_764_417_605)
        self.smsc = SmscFactory(
            smsc or SmscSettings(receipt_delay=0.5), self.clock, random.Random(3)
        )
        self.smsc.doStart()
        self.endpoint = MemoryEndpoint(self.smsc, self.clock)
        self.receipts: list[ReceiptEvent] = []
        self.mo: list[MoEvent] = []
        self.service = CarrierService(
            carrier_config(**carrier),
            self.clock,
            lambda _: self.endpoint,
            self.on_receipt,
            self.on_mo,
            jitter=lambda: 0.0,
        )
        self.outcomes: list[SubmitOutcome] = []

    def on_receipt(self, event: ReceiptEvent) -> Answer:
        self.receipts.append(event)
        return 0

    def on_mo(self, event: MoEvent) -> Answer:
        self.mo.append(event)
        return 0

    def start(self) -> None:
        self.service.startService()
        self.endpoint.flush()

    def send(self, text: str, to: str = "+8613800138000", ref: int = 0) -> None:
        for pdu in compose(
            text, to, self.service.source, self.service.cfg.profile, ref=ref
        ):
            self.service.sender.submit(pdu).addCallback(self.outcomes.append)

    def run(self, seconds: float, step: float = 0.01) -> None:
        """Advance the clock in small steps, moving bytes after each."""
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            self.endpoint.flush()


def test_submit_and_receipt_per_part() -> None:
    """Each part of a 3-part alert is accepted; its receipt matches its id."""
    rig = Rig()
    rig.start()
    assert rig.service.bound == 1
    rig.send("Card *1234 used for CNY 100.00 " * 12, ref=5)
    rig.endpoint.flush()
    assert len(rig.outcomes) == 3
    assert all(o.accepted for o in rig.outcomes)
    rig.run(0.6)
    ids = {rig.service.resp_id(o.message_id or "") for o in rig.outcomes}
    assert {r.message_id for r in rig.receipts} == ids
    assert all(r.receipt.delivered for r in rig.receipts)
    received = rig.smsc.received_list(10, None)
    assert len(received) == 3


def test_random_throttling_never_stops_the_bind() -> None:
    """With 30% of submits throttled, every message still goes through."""
    rig = Rig(SmscSettings(receipts=False, throttle_fraction=0.3, seed=1))
    rig.start()
    for i in range(200):
        rig.send(f"alert {i}", to=f"+86138{i:08d}")
    rig.run(2.0)
    assert len(rig.outcomes) == 200
    assert all(o.accepted for o in rig.outcomes)
    assert rig.smsc.throttled > 30
    assert rig.service.sender.throttled == rig.smsc.throttled


def test_smsc_drop_mid_load_loses_nothing() -> None:
    """An SMSC drop with submits in flight: after reconnect every message is
    accepted, and duplicates at the SMSC are bounded by the window."""
    rig = Rig(SmscSettings(receipts=False), tps=100)
    rig.start()
    for i in range(100):
        rig.send(f"alert {i}", to=f"+86138{i:08d}")
    rig.run(0.3)
    accepted_before = len(rig.outcomes)
    assert 0 < accepted_before < 100
    rig.endpoint.drop_all()
    assert rig.service.bound == 0
    rig.run(3.0)  # back-off 1 s, rebind, then the rest at 100/s
    assert rig.service.bound == 1
    rig.run(1.5)
    assert len(rig.outcomes) == 100
    assert all(o.accepted for o in rig.outcomes)
    assert 100 <= rig.smsc.submits <= 100 + 10
    assert rig.service.binds[0].binds == 2


def test_mo_reaches_the_mo_callback_in_ucs2() -> None:
    """A Chinese reply injected at the SMSC arrives as an MO, decodable as UCS-2."""
    rig = Rig()
    rig.start()
    rig.smsc.inject_mo("8613800138000", "95588", "不是我")
    rig.endpoint.flush()
    (event,) = rig.mo
    assert event.pdu.source_addr == "8613800138000"
    _, payload = (
        parse_udh(event.pdu.short_message)
        if event.pdu.esm_class & 0x40
        else (
            None,
            event.pdu.short_message,
        )
    )
    assert decode_text(payload, event.pdu.data_coding) == "不是我"
    assert rig.receipts == []


def test_stop_unbinds_and_leaves_no_timers() -> None:
    """Stopping the carrier unbinds cleanly; no reconnect or timer remains."""
    rig = Rig(SmscSettings(receipts=False))
    rig.start()
    rig.send("bye")
    rig.endpoint.flush()
    stopped = rig.service.stopService()
    rig.endpoint.flush()
    assert stopped.called
    assert rig.service.bound == 0
    rig.smsc.doStop()
    assert rig.clock.getDelayedCalls() == []


def test_rate_settles_under_the_smsc_rate_limit() -> None:
    """Against a simulator throttling above 600/s, a 1000 tps bind settles
    within 10% below 600/s and every part is accepted in the end."""
    rig = Rig(SmscSettings(receipts=False, max_tps=600), tps=1000, window=50)
    rig.start()
    sent = 0
    accepted_at: list[float] = []

    def top_up() -> None:
        nonlocal sent
        while rig.service.sender.room > 8_000:
            pdu = compose(
                f"alert {sent}",
                "+8613800138000",
                rig.service.source,
                rig.service.cfg.profile,
            )[0]
            rig.service.sender.submit(pdu).addCallback(
                lambda o: (
                    accepted_at.append(rig.clock.seconds()) if o.accepted else None
                )
            )
            sent += 1

    start = rig.clock.seconds()
    submits_at_20 = 0
    for step in range(3000):  # 30 simulated seconds
        top_up()
        rig.clock.advance(0.01)
        rig.endpoint.flush()
        if step == 1999:
            submits_at_20 = rig.smsc.submits
    submit_rate = (rig.smsc.submits - submits_at_20) / 10
    accept_rate = len([t for t in accepted_at if t > start + 20]) / 10
    # The SMSC's own bucket lets a burst of 60 through, hence 2% of slack.
    assert 540 <= submit_rate <= 612
    assert accept_rate >= 540
    assert rig.smsc.throttled < 0.05 * rig.smsc.submits
