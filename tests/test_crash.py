"""Crash recovery: the gateway process is killed with SIGKILL under load.

The SMSC simulator runs in the test process (so it outlives the gateway);
the gateway runs under twistd in a child process on an SQLite store. Four
pipelined connections send transactions; after enough acks the gateway is
killed; it is started again on the same store. Every transaction that was
acknowledged ``accepted`` must have its alert reach the simulator, and
alerts sent twice are bounded by the submit window.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter, deque
from collections.abc import Generator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.protocols.basic import Int32StringReceiver

from smsgw.intake.envelope import TerminalKey, request_frame
from smsgw.smsc.service import make_smsc_service
from smsgw.smsc.settings import SmscSettings
from tests.test_loopback import wait_until

ROOT = Path(__file__).resolve().parent.parent
KEY_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
KEY = TerminalKey(bytes.fromhex(KEY_HEX))
WINDOW = 100

CONFIG = """\
database: {{url: "sqlite:///data/smsgw.db"}}
keys_dir: data/keys
intake: {{listen: "tcp:0:interface=127.0.0.1"}}
terminals:
  - {{id: T1001, key: "{key}"}}
carriers:
  - name: sim
    connect: "tcp:host=127.0.0.1:port={port}"
    system_id: smsgw
    password: secret
    source_addr: "95588"
    profile: smsgw-sim
    tps: 20000
    window: {window}
    reconnect_initial: 0.2
    routes: ["+"]
dispatch: {{node: crash-test, poll_interval: 0.2}}
logging: {{level: info, format: text}}
"""


class Client(Int32StringReceiver):
    """A pipelining terminal that records which txn_ids were accepted."""

    MAX_LENGTH = 65536

    def __init__(self, accepted: set[str]) -> None:
        self.accepted = accepted
        self.sent: deque[str] = deque()
        self.lost: defer.Deferred[None] = defer.Deferred()

    def send(self, body: dict[str, Any]) -> None:
        self.sent.append(body["txn_id"])
        self.transport.write(request_frame("T1001", body, KEY))  # type: ignore[union-attr]

    def stringReceived(self, string: bytes) -> None:
        body = orjson.loads(orjson.loads(string)["body"])
        txn_id = self.sent.popleft()
        assert body.get("txn_id") == txn_id
        if body.get("status") in ("accepted", "duplicate"):
            self.accepted.add(txn_id)

    def connectionLost(self, reason: Any = None) -> None:
        if not self.lost.called:
            self.lost.callback(None)


def body(conn: int, i: int, now: int) -> dict[str, Any]:
    return {
        "type": "txn",
        "txn_id": f"c{conn}-{i}",
        "ts": now,
        "kind": "purchase",
        "amount": f"{1 + i % 500}.{i % 100:02d}",
        "currency": "CNY",
        "pan": "6222021234567894",
        "merchant_id": "M001",
        "merchant_name": "Crash Test Cafe",
        "time": "2026-11-29T20:00:05+08:00",
        "msisdn": msisdn(conn, i),
        "lang": "en",
    }


def msisdn(conn: int, i: int) -> str:
    return f"+8613{conn}{i:07d}"


class Gateway:
    """The gateway under twistd in a child process, in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "gateway.log"

    def start(self) -> None:
        env = dict(
            os.environ, PYTHONPATH=str(ROOT / "twistd_plugins") + os.pathsep + str(ROOT)
        )
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "twistd"),
                "-n",
                "--pidfile=",
                "smsgw",
                "--config",
                "smsgw.yaml",
            ],
            cwd=self.folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started_at = self.log_path.stat().st_size

    def intake_port(self) -> int | None:
        text = self.log_path.read_bytes()[self.started_at :].decode(errors="replace")
        m = re.search(r"intake listening on 127\.0\.0\.1:(\d+)", text)
        return int(m.group(1)) if m else None

    def kill(self, sig: int = signal.SIGKILL) -> defer.Deferred[None]:
        """Send ``sig``; fires when the process has ended (the reactor keeps
        running meanwhile: a graceful stop talks to the in-process SMSC)."""
        proc = self.proc
        assert proc is not None
        os.kill(proc.pid, sig)
        return wait_until(lambda: proc.poll() is not None, timeout=30)


@pytest.mark.slow
@pytest.mark.loopback
@pytest_twisted.inlineCallbacks
def test_sigkill_under_load_loses_no_acknowledged_alert(
    tmp_path: Path,
) -> Generator[Any, Any, None]:
    """After kill -9 and a restart, every accepted transaction's alert reaches the
    SMSC; alerts sent twice are at most one window."""
    sim = make_smsc_service(
        SmscSettings(
            listen="tcp:0:interface=127.0.0.1",
            receipt_delay=0.05,
            keep_received=100_000,
        ),
        reactor,
    )
    sim.startService()
    port = yield sim.listening
    (tmp_path / "smsgw.yaml").write_text(
        CONFIG.format(key=KEY_HEX, port=port.getHost().port, window=WINDOW)
    )
    subprocess.run(
        [sys.executable, "-m", "smsgw.cli", "db", "upgrade", "--config", "smsgw.yaml"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    gw = Gateway(tmp_path)
    gw.start()
    try:
        yield wait_until(lambda: gw.intake_port() is not None, timeout=30)
        intake = gw.intake_port()
        accepted: set[str] = set()
        clients: list[Client] = []
        for _ in range(4):
            c = yield TCP4ClientEndpoint(reactor, "127.0.0.1", intake).connect(
                protocol.Factory.forProtocol(lambda: Client(accepted))
            )
            clients.append(c)
        now = int(reactor.seconds())
        per_conn = 1500
        for n, c in enumerate(clients):
            for i in range(per_conn):
                c.send(body(n, i, now))
        yield wait_until(lambda: len(accepted) >= 1000, timeout=60)
        yield gw.kill()
        yield defer.DeferredList([c.lost for c in clients])
        acked = set(accepted)
        assert 1000 <= len(acked) < 4 * per_conn  # killed mid-load

        gw.start()
        yield wait_until(lambda: gw.intake_port() is not None, timeout=30)
        wanted = {msisdn(int(t[1]), int(t.split("-")[1])) for t in acked}

        def delivered() -> set[str]:
            return {"+" + r.destination_addr for r in sim.factory.received}

        yield wait_until(lambda: wanted <= delivered(), timeout=60)
        counts = Counter("+" + r.destination_addr for r in sim.factory.received)
        twice = sum(1 for n in counts.values() if n > 1)
        assert twice <= WINDOW, f"{twice} alerts sent more than once"
    finally:
        if gw.proc is not None and gw.proc.poll() is None:
            yield gw.kill(signal.SIGTERM)
        yield sim.stopService()
