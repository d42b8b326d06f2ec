"""A real gateway process for integration tests, with the SMSC in the test.

The SMSC simulator runs on the test's reactor (so it outlives a killed
gateway and the test can drop its connections); the gateway runs under
twistd in a child process in ``tmp_path`` on SQLite, and logs to
``gateway.log`` there.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections import deque
from collections.abc import Generator
from pathlib import Path
from typing import Any

import orjson
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
    reconnect_max: 1.0
    routes: ["+"]
dispatch: {{node: it-node, poll_interval: 0.2, retry_initial: 0.2, retry_max: 1.0}}
admin: {{listen: "tcp:0:interface=127.0.0.1"}}
logging: {{level: {level}, format: text}}
"""


class Client(Int32StringReceiver):
    """A pipelining terminal that records which txn_ids were acknowledged."""

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


def msisdn(conn: int, i: int) -> str:
    """A distinct number per transaction, so the SMSC's log shows each alert."""
    return f"+8613{conn}{i:07d}"


def body(conn: int, i: int, now: int, pan: str = "6222021234567894") -> dict[str, Any]:
    """Transaction ``i`` of connection ``conn``."""
    return {
        "type": "txn",
        "txn_id": f"c{conn}-{i}",
        "ts": now,
        "kind": "purchase",
        "amount": f"{1 + i % 500}.{i % 100:02d}",
        "currency": "CNY",
        "pan": pan,
        "merchant_id": "M001",
        "merchant_name": "Integration Cafe",
        "time": "2026-11-29T20:00:05+08:00",
        "msisdn": msisdn(conn, i),
        "lang": "en",
    }


class Gateway:
    """The gateway under twistd in a child process, in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "gateway.log"
        self.started_at = 0

    def start(self) -> None:
        env = dict(
            os.environ, PYTHONPATH=f"{ROOT / 'twistd_plugins'}{os.pathsep}{ROOT}"
        )
        log = self.log_path.open("ab")
        self.started_at = self.log_path.stat().st_size
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

    def intake_port(self) -> int | None:
        text = self.log_path.read_bytes()[self.started_at :].decode(errors="replace")
        m = re.search(r"intake listening on 127\.0\.0\.1:(\d+)", text)
        return int(m.group(1)) if m else None

    def kill(self, sig: int) -> defer.Deferred[None]:
        """Send ``sig``; fires when the process has ended (the reactor keeps
        running meanwhile: a graceful stop talks to the in-process SMSC)."""
        proc = self.proc
        assert proc is not None
        os.kill(proc.pid, sig)
        return wait_until(lambda: proc.poll() is not None, timeout=30)

    def alerts(self) -> dict[str, int]:
        """Alert count by status, as the store has committed them."""
        db = self.folder / "data" / "smsgw.db"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            rows = conn.execute("select status, count(*) from alerts group by status")
            return dict(rows.fetchall())


@defer.inlineCallbacks
def start(
    tmp_path: Path, level: str = "info", extra: str = ""
) -> Generator[Any, Any, Any]:
    """Start the SMSC (in process) and the gateway; return (sim, gateway).

    ``extra``: YAML sections appended to the gateway's configuration."""
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
        CONFIG.format(key=KEY_HEX, port=port.getHost().port, window=WINDOW, level=level)
        + extra
    )
    subprocess.run(
        [sys.executable, "-m", "smsgw.cli", "db", "upgrade", "--config", "smsgw.yaml"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    gw = Gateway(tmp_path)
    gw.start()
    yield wait_until(lambda: gw.intake_port() is not None, timeout=30)
    return sim, gw


@defer.inlineCallbacks
def connect(gw: Gateway, accepted: set[str], n: int) -> Generator[Any, Any, Any]:
    """``n`` pipelining clients on the gateway's intake port."""
    port = gw.intake_port()
    assert port is not None
    clients = []
    for _ in range(n):
        c = yield TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(
            protocol.Factory.forProtocol(lambda: Client(accepted))
        )
        clients.append(c)
    return clients
