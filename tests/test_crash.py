"""End to end with a real gateway process: crash, SMSC outage, card data.

See tests/gateway_harness.py for the set-up (SMSC in the test process,
gateway under twistd in a child process on SQLite).
"""

from __future__ import annotations

import random
import signal
from collections import Counter
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from smsgw.pos import cards
from tests.gateway_harness import WINDOW, body, connect, msisdn, start
from tests.test_loopback import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.loopback]


def _destinations(sim: Any) -> Counter[str]:
    return Counter("+" + r.destination_addr for r in sim.factory.received)


def _wanted(acked: set[str]) -> set[str]:
    return {msisdn(int(t[1]), int(t.split("-")[1])) for t in acked}


@pytest_twisted.inlineCallbacks
def test_sigkill_under_load_loses_no_acknowledged_alert(
    tmp_path: Path,
) -> Generator[Any, Any, None]:
    """After kill -9 and a restart, every accepted transaction's alert reaches the
    SMSC; alerts sent twice are at most one window."""
    sim, gw = yield start(tmp_path)
    try:
        accepted: set[str] = set()
        clients = yield connect(gw, accepted, 4)
        now = int(reactor.seconds())
        per_conn = 1500
        for n, c in enumerate(clients):
            for i in range(per_conn):
                c.send(body(n, i, now))
        yield wait_until(lambda: len(accepted) >= 1000, timeout=60)
        yield gw.kill(signal.SIGKILL)
        yield defer.DeferredList([c.lost for c in clients])
        acked = set(accepted)
        assert 1000 <= len(acked) < 4 * per_conn  # killed mid-load

        gw.start()
        yield wait_until(lambda: gw.intake_port() is not None, timeout=30)
        wanted = _wanted(acked)
        yield wait_until(lambda: wanted <= set(_destinations(sim)), timeout=60)
        twice = sum(1 for n in _destinations(sim).values() if n > 1)
        assert twice <= WINDOW, f"{twice} alerts sent more than once"
    finally:
        if gw.proc is not None and gw.proc.poll() is None:
            yield gw.kill(signal.SIGTERM)
        yield sim.stopService()


@pytest_twisted.inlineCallbacks
def test_smsc_dropped_mid_load_everything_delivered_after_reconnect(
    tmp_path: Path,
) -> Generator[Any, Any, None]:
    """The SMSC drops every connection mid-load; after the gateway re-binds every
    accepted alert is submitted and its receipt recorded (delivered)."""
    sim, gw = yield start(tmp_path)
    try:
        accepted: set[str] = set()
        clients = yield connect(gw, accepted, 2)
        now = int(reactor.seconds())
        for n, c in enumerate(clients):
            for i in range(1000):
                c.send(body(n, i, now))
        yield wait_until(lambda: len(sim.factory.received) >= 300, timeout=60)
        for session in list(sim.factory.connections):
            session.transport.abortConnection()
        yield wait_until(lambda: len(accepted) == 2000, timeout=60)
        yield wait_until(lambda: gw.alerts().get("delivered", 0) == 2000, timeout=60)
        assert _wanted(accepted) <= set(_destinations(sim))
        assert sim.factory.binds_total >= 2  # it did bind again
        for c in clients:
            c.transport.loseConnection()
    finally:
        if gw.proc is not None and gw.proc.poll() is None:
            yield gw.kill(signal.SIGTERM)
        yield sim.stopService()


@pytest_twisted.inlineCallbacks
def test_no_full_pan_in_the_store_the_logs_or_the_pdus(
    tmp_path: Path,
) -> Generator[Any, Any, None]:
    """After a run with realistic card numbers (12 to 19 digits, debug logging),
    no PAN appears in the database files, the gateway's log or any PDU the
    SMSC received (as ASCII, GSM-7 or UCS-2)."""
    sim, gw = yield start(tmp_path, level="debug")
    try:
        rng = random.Random(1)
        pans = [
            cards.test_pan(
                rng,
                bin=rng.choice(["622202", "458123", "356999"]),
                length=rng.choice([12, 15, 16, 19]),
            )
            for _ in range(200)
        ]
        accepted: set[str] = set()
        [client] = yield connect(gw, accepted, 1)
        now = int(reactor.seconds())
        for i, pan in enumerate(pans):
            client.send(body(0, i, now, pan=pan))
        yield wait_until(lambda: len(accepted) == len(pans), timeout=60)
        yield wait_until(
            lambda: gw.alerts().get("delivered", 0) == len(pans), timeout=60
        )
        client.transport.loseConnection()
        yield gw.kill(signal.SIGTERM)
        blobs = {
            path.name: path.read_bytes()
            for path in [*(tmp_path / "data").glob("smsgw.db*"), gw.log_path]
        }
        for r in sim.factory.received:
            blobs[f"pdu {r.message_id}"] = b"|".join(
                [r.source_addr.encode(), r.destination_addr.encode(), r.short_message]
                + [t.value for t in r.tlvs]
            )
        assert len(blobs) > len(pans)
        assert all(blobs.values())
        for pan in pans:
            forms = (pan.encode(), pan.encode("utf-16-be"))
            for name, data in blobs.items():
                for form in forms:
                    assert form not in data, f"a PAN is in {name}"
        # ... while each alert does show its card's last 4 digits.
        first = [
            r for r in sim.factory.received if "+" + r.destination_addr == msisdn(0, 0)
        ]
        assert pans[0][-4:].encode() in first[0].short_message
    finally:
        if gw.proc is not None and gw.proc.poll() is None:
            yield gw.kill(signal.SIGTERM)
        yield sim.stopService()
