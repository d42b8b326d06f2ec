"""End-to-end benchmark: terminals -> gateway -> SMSC simulator -> receipts.

Runs by hand (not a test):

    .venv/bin/python bench/pipeline.py [--count 20000] [--connections 4]

Three processes on this machine: the SMSC simulator (``smsgw smsc``), the
gateway (``twistd smsgw``, SQLite with durable commits: WAL, synchronous=FULL,
group commit) and this load generator (``smsgw.pos`` client). Reports:

1. throughput: ``--count`` transactions over ``--connections`` pipelined
   connections as fast as the gateway acknowledges them; alerts per second
   end to end = alerts / (first send -> last receipt recorded in the store);
2. latency: a steady ``--rate`` transactions per second for ``--seconds``;
   p50/p99/max acknowledgement latency;
3. the gateway's peak RSS (VmHWM) and CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint

from smsgw.intake.envelope import TerminalKey
from smsgw.pos.client import IntakeClientFactory, IntakeClientProtocol
from smsgw.pos.load import LoadStats, run_load
from smsgw.pos.txns import make_txn_body
from smsgw.runtime import tune_gc
from smsgw.store import schema as S

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KEY_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

CONFIG = """\
database:
  url: "sqlite:///data/smsgw.db"
  commit_batch: {batch}
  commit_interval: {linger}
keys_dir: data/keys
intake: {{listen: "tcp:{intake}:interface=127.0.0.1", max_skew: 3600}}
terminals:
  - {{id: T1001, key: "{key}"}}
carriers:
  - name: sim
    connect: "tcp:host=127.0.0.1:port={smpp}"
    system_id: smsgw
    password: secret
    source_addr: "95588"
    profile: smsgw-sim
    tps: 100000
    window: {window}
    binds: {binds}
    routes: ["{routes}"]
issuers:
  - name: default
    signature: {{zh: "示例银行", en: "Demo Bank"}}
dispatch: {{node: bench}}
admin: {{listen: "tcp:0:interface=127.0.0.1"}}
logging: {{level: warn, format: text}}
"""


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (a benchmark may race for it; tests never do)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port} after {timeout} s")


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread (name/tid) of process ``pid``."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task_dir in Path(f"/proc/{pid}/task").iterdir():
        name = f"{(task_dir / 'comm').read_text().strip()}/{task_dir.name}"
        fields = (task_dir / "stat").read_text().rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_UNFINISHED = (
    f"select 1 from alerts where status in ('{S.QUEUED}', '{S.SUBMITTED}') limit 1"
)


def parts_sent(db: Path) -> tuple[int, list[str]]:
    """(SMPP parts the alerts took, the alerts' texts in order)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        parts = c.execute("select coalesce(sum(parts), 0) from alerts").fetchone()[0]
        texts = [r[0] for r in c.execute("select text from alerts order by rowid")]
    return int(parts), texts


def delivered(db: Path) -> tuple[int, int]:
    """(alerts, delivered alerts) as the store has committed them."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        total = conn.execute("select count(*) from alerts").fetchone()[0]
        done = conn.execute(
            "select count(*) from alerts where status = 'delivered'"
        ).fetchone()[0]
    return int(total), int(done)


@defer.inlineCallbacks
def load(
    port: int,
    count: int,
    connections: int,
    window: int,
    rate: float | None,
    run_id: str,
    lang: str = "mixed",
) -> Any:
    key = TerminalKey(bytes.fromhex(KEY_HEX))
    rng = random.Random(7)
    now = time.time()
    msisdns = [f"+86138{n:08d}" for n in range(count)]  # one alert per txn

    def connect() -> defer.Deferred[IntakeClientProtocol]:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        d = endpoint.connect(IntakeClientFactory("T1001", key, reactor, timeout=60))
        return d  # type: ignore[return-value]

    def body(i: int) -> dict[str, Any]:
        b = make_txn_body(
            i, rng, terminal="T1001", now=now, run_id=run_id, msisdns=msisdns
        )
        b["msisdn"] = msisdns[i]
        b.pop("orig_txn_id", None)
        if b["kind"] in ("refund", "reversal"):
            b["kind"] = "purchase"
        if lang != "mixed":
            b["lang"] = lang  # en: GSM-7 alerts, zh: UCS-2
        return b

    # Bodies are made before the clock starts: the load generator shares the
    # two cores with the gateway, and drawing random transactions is its own
    # cost, not the gateway's (signing and framing still happen per send).
    bodies = [body(i) for i in range(count)]
    stats: LoadStats = yield run_load(
        reactor,
        connect,
        count=count,
        rate=rate,
        connections=connections,
        window=window,
        terminal="T1001",
        key=key,
        make_body=bodies.__getitem__,
    )
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--window", type=int, default=500, help="pipelined per connection"
    )
    parser.add_argument("--smpp-window", type=int, default=100)
    parser.add_argument(
        "--binds", type=int, default=1, help="SMPP binds to the simulator"
    )
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile the gateway's reactor thread"
    )
    parser.add_argument(
        "--commit-interval",
        type=float,
        default=0.0,
        help="database.commit_interval: how long delivery records wait to fill a batch",
    )
    parser.add_argument(
        "--commit-batch",
        type=int,
        default=500,
        help="database.commit_batch: most writes per store request",
    )
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="print the alerts by status every 0.25 s of the throughput run",
    )
    parser.add_argument(
        "--intake-only",
        action="store_true",
        help="route nothing (alerts stay queued): measure intake and commit alone",
    )
    parser.add_argument(
        "--lang",
        choices=("mixed", "en", "zh"),
        default="mixed",
        help="alert language: en gives GSM-7 alerts, zh UCS-2 (mixed: 10%% en)",
    )
    parser.add_argument(
        "--smsc-args",
        default="",
        help="more options for the simulator, e.g. '--throttle-fraction 0.1'",
    )
    parser.add_argument(
        "--json", metavar="FILE", help="also write the figures (and texts) as JSON"
    )
    ns = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="smsgw-bench-"))
    smpp, intake = free_port(), free_port()
    (work / "smsgw.yaml").write_text(
        CONFIG.format(
            intake=intake,
            smpp=smpp,
            key=KEY_HEX,
            window=ns.smpp_window,
            binds=ns.binds,
            routes="+999" if ns.intake_only else "+",
            linger=ns.commit_interval,
            batch=ns.commit_batch,
        )
    )
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'twistd_plugins'}{os.pathsep}{ROOT}")
    subprocess.run(
        [BIN / "smsgw", "db", "upgrade", "--config", "smsgw.yaml"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
    )
    smsc = subprocess.Popen(
        [
            BIN / "smsgw",
            "smsc",
            "--listen",
            f"tcp:{smpp}:interface=127.0.0.1",
            "--receipt-delay",
            "0.05",
            "--log-level",
            "warn",
            *ns.smsc_args.split(),
        ],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    wait_port(smpp)
    profile = (
        ["--profile", ns.profile, "--profiler", "cprofile", "--savestats"]
        if ns.profile
        else []
    )
    gw = subprocess.Popen(
        [
            BIN / "twistd",
            "-n",
            "--pidfile=",
            *profile,
            "smsgw",
            "--config",
            "smsgw.yaml",
        ],
        cwd=work,
        env=env,
        stdout=(work / "gateway.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_port(intake)
    time.sleep(1.0)  # the bind to the simulator
    db = work / "data" / "smsgw.db"
    results: dict[str, Any] = {}

    def others() -> dict[str, int]:
        found = {"smsc": smsc.pid, "load generator": os.getpid()}
        children = [
            pid
            for task_dir in Path(f"/proc/{gw.pid}/task").iterdir()
            for pid in (task_dir / "children").read_text().split()
        ]
        for n, pid in enumerate(children):
            found[f"store process {n + 1}"] = int(pid)
        return found

    @defer.inlineCallbacks
    def run() -> Any:
        try:
            cpu0 = cpu_seconds(gw.pid)
            threads0 = thread_cpu(gw.pid)
            others0 = {name: cpu_seconds(pid) for name, pid in others().items()}
            t0 = time.monotonic()
            timeline: list[str] = []

            def sample() -> None:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
                    rows = c.execute(
                        "select status, count(*) from alerts group by status"
                    ).fetchall()
                timeline.append(f"  {time.monotonic() - t0:5.2f} s  {dict(rows)}")

            sampler = task.LoopingCall(sample)
            if ns.timeline:
                sampler.start(0.25)
            results["timeline"] = timeline
            stats = yield load(
                intake, ns.count, ns.connections, ns.window, None, "tput", ns.lang
            )
            t_acked = time.monotonic()
            # Wait for the last receipt with a query that costs next to
            # nothing (an index seek for any alert not yet final): this
            # process shares the cores with the gateway while it drains.
            with closing(
                sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            ) as c:
                while not ns.intake_only and c.execute(_UNFINISHED).fetchone():
                    yield task.deferLater(reactor, 0.01, lambda: None)
            t_done = time.monotonic()
            if not ns.intake_only:
                total, done = delivered(db)
            if sampler.running:
                sampler.stop()
            if ns.intake_only:
                total = done = stats.alerts
            results["throughput"] = (
                stats,
                t_acked - t0,
                t_done - t0,
                total,
                done,
                cpu_seconds(gw.pid) - cpu0,
            )
            results["others"] = {
                name: cpu_seconds(pid) - others0.get(name, 0.0)
                for name, pid in others().items()
            }
            threads = thread_cpu(gw.pid)
            results["threads"] = {
                k: v - threads0.get(k, 0.0) for k, v in threads.items()
            }
            n = int(ns.rate * ns.seconds)
            if ns.json:
                results["parts"] = parts_sent(db)
            steady = yield load(
                intake, n, ns.connections, ns.window, ns.rate, "steady", ns.lang
            )
            results["steady"] = steady
            results["status"] = proc_status(gw.pid)
            results["store_status"] = [
                proc_status(pid)
                for name, pid in others().items()
                if name.startswith("store process")
            ]
        finally:
            reactor.stop()

    reactor.callWhenRunning(run)
    tune_gc()  # the load generator: as `smsgw pos` does
    reactor.run()
    gw.terminate()
    smsc.terminate()
    gw.wait(30)
    smsc.wait(30)

    stats, acked_s, done_s, total, done, cpu = results["throughput"]
    if results["timeline"]:
        print("alerts by status every 0.25 s (first send = 0):")
        print("\n".join(results["timeline"]))
    print(
        f"throughput: {ns.count} txns over {ns.connections} connections "
        f"(window {ns.window} each), SQLite WAL synchronous=FULL, group commit"
    )
    print(f"  acks: {dict(stats.by_status)}  alerts: {stats.alerts}")
    print(f"  all acked in {acked_s:.2f} s = {stats.answered / acked_s:,.0f} txns/s")
    print(
        f"  last receipt recorded after {done_s:.2f} s: "
        f"{done / done_s:,.0f} alerts/s end to end ({done}/{total} delivered)"
    )
    print(
        f"  gateway CPU {cpu:.1f} s = {cpu / done_s * 100:.0f}% of a core, "
        f"{cpu / max(done, 1) * 1e6:.0f} µs per alert"
    )
    per_thread = ", ".join(
        f"{name} {seconds / max(done, 1) * 1e6:.0f}"
        for name, seconds in sorted(results["threads"].items())
        if seconds > 0.05
    )
    print(f"  µs per alert by thread: {per_thread}")
    rest = ", ".join(
        f"{name} {seconds / max(done, 1) * 1e6:.0f}"
        for name, seconds in results["others"].items()
    )
    print(f"  µs per alert in the other processes: {rest}")
    steady: LoadStats = results["steady"]
    print(
        f"steady {ns.rate:.0f} txns/s for {ns.seconds:.0f} s: "
        f"{dict(steady.by_status)} rate {steady.rate:,.0f}/s"
    )
    print(
        f"  ack latency p50 {steady.p50 * 1000:.2f} ms  "
        f"p99 {steady.p99 * 1000:.2f} ms  max {steady.max * 1000:.2f} ms"
    )
    status = results["status"]
    print(f"gateway peak RSS {status['VmHWM']} (now {status['VmRSS']})")
    store_rss = [int(st["VmHWM"].split()[0]) for st in results["store_status"]]
    if ns.json:
        parts, texts = results["parts"]
        figures = {
            "count": ns.count,
            "alerts": done,
            "parts": parts,
            "acked_s": acked_s,
            "done_s": done_s,
            "alerts_per_s": done / done_s,
            "parts_per_s": parts / done_s,
            "p50_ms": steady.p50 * 1000,
            "p99_ms": steady.p99 * 1000,
            "cpu_s": cpu
            + sum(
                v for k, v in results["others"].items() if k.startswith("store process")
            ),
            "rss_kb": int(status["VmHWM"].split()[0]) + sum(store_rss),
            "texts": texts,
        }
        Path(ns.json).write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
