"""End-to-end benchmark: terminals -> gateway -> SMSC simulator -> receipts.

Runs by hand (not a test):

    .venv/bin/python bench/pipeline.py [--count 20000] [--connections 4]
        [--rates 1000,5000] [--seconds 10] [--lang en] [--parts 3]
        [--max-tps N] [--tps N] [--latency-connections 1000 --latency-window 1]

Three processes on this machine: the SMSC simulator (``smsgw smsc``), the
gateway (``twistd smsgw``, SQLite with durable commits: WAL, synchronous=FULL,
group commit) and this load generator (``smsgw.pos`` client). Reports:

1. throughput: ``--count`` transactions over ``--connections`` pipelined
   connections (``--window`` each) as fast as the gateway acknowledges them;
   alerts per second end to end = alerts / (first send -> last receipt
   recorded in the store);
2. latency: for each rate of ``--rates`` (transactions per second, comma
   separated; ``none`` skips this phase) a steady run of ``--seconds``, over
   ``--latency-connections`` connections with ``--latency-window``
   outstanding on each (default: those of the throughput run; 1,000
   terminals with one request each: ``--latency-connections 1000
   --latency-window 1``); p50/p99/max acknowledgement latency and the rate
   achieved;
3. the gateway's peak RSS (VmHWM) and CPU time.

Alert texts: ``--lang`` (en: GSM-7, zh: UCS-2, mixed), the built-in
templates; ``--parts 3`` puts a long English cardholder template in the
issuer's config (``THREE_PART_TEMPLATE``) so every alert takes 3 GSM-7
parts, and checks in the store that each did (``--template-en TEXT`` sets
any other English template); the alerts by parts and their length in units
are always printed.

``--max-tps N`` caps the simulator at N submits/s per bind (ESME_RTHROTTLED
above it) and reports the settled submit rate during the drain: SMPP parts
by their sent time in the store (``parts.submitted_at``), per whole second
after the last acknowledgement; the median (and the mean) over the seconds
that still left a backlog, the first second left out; "within 10% below the
cap" when 90-101% of N. The simulator's counters (submits
accepted, ESME_RTHROTTLED answers) are read from its control port after the
throughput run. The gateway's carrier is configured with ``tps: 100000`` (no
limit of its own; ``--tps N`` sets another: its adaptive rate stays between
1 part/s and it).

Every connection is a file descriptor here and in the gateway, which
inherits this process's limit: the soft RLIMIT_NOFILE is raised (up to the
hard limit) to fit the connections asked for. ``--json FILE`` also writes
the figures (and the throughput run's texts) for ``bench/vs_kannel.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint

from smsgw.codec.text import measure
from smsgw.intake.envelope import TerminalKey
from smsgw.pos.client import IntakeClientFactory, IntakeClientProtocol
from smsgw.pos.load import LoadStats, run_load
from smsgw.pos.txns import make_txn_body
from smsgw.runtime import tune_gc
from smsgw.store import schema as S

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KEY_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

# An English cardholder alert of 3 GSM-7 parts (307-459 septets; 402-456 for
# this load's amounts, kinds, balances, declines and merchant names, which an
# alert of several parts keeps): amount, card, merchant, time, what to do
# about fraud and how to reply.
THREE_PART_TEMPLATE = (
    "{{ signature }}: card *{{ last4 }} {{ kind }} of {{ amount }}"
    "{% if merchant %} at {{ merchant }}{% endif %}"
    "{% if location %}, {{ location }}{% endif %} on {{ date }} {{ time }}"
    "{% if result == 'declined' %} was DECLINED{% endif %}."
    "{% if balance %} Available balance {{ balance }}.{% endif %}"
    " If this was you, no action is needed. If you do NOT recognise it, reply N"
    " now: we will block the card at once and call you back, and you are not"
    " liable for confirmed fraud. Never share your PIN, CVV or one-time codes"
    " with anyone, even bank staff. Help: call 95588 (24h). Reply STOP to opt"
    " out of non-essential alerts."
)

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
    tps: {tps}
    window: {window}
    binds: {binds}
    routes: ["{routes}"]
issuers:
  - name: default
    signature: {{zh: "示例银行", en: "Demo Bank"}}
{templates}dispatch: {{node: bench}}
admin: {{listen: "tcp:0:interface=127.0.0.1"}}
logging: {{level: warn, format: text}}
"""


def plugin_env() -> dict[str, str]:
    """The environment for smsgw's processes: the checkout's twistd plugins
    and package first on PYTHONPATH (an inherited PYTHONPATH is kept after
    them, e.g. for a sitecustomize that profiles)."""
    path = [str(ROOT / "twistd_plugins"), str(ROOT)]
    if os.environ.get("PYTHONPATH"):
        path.append(os.environ["PYTHONPATH"])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path))


def db_upgrade(work: Path, env: dict[str, str]) -> None:
    """``smsgw db upgrade`` for the config in ``work`` (its first start)."""
    subprocess.run(
        [BIN / "smsgw", "db", "upgrade", "--config", "smsgw.yaml"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
    )


def start_simulator(
    work: Path,
    smpp: int,
    control: int | None = None,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``smsgw smsc`` on 127.0.0.1:``smpp`` (receipts after 50 ms), with its
    HTTP control port when ``control`` is given; ``extra``: more options."""
    listen = ["--control", f"tcp:{control}:interface=127.0.0.1"] if control else []
    return subprocess.Popen(
        [
            BIN / "smsgw",
            "smsc",
            "--listen",
            f"tcp:{smpp}:interface=127.0.0.1",
            *listen,
            "--receipt-delay",
            "0.05",
            "--log-level",
            "warn",
            *(extra or []),
        ],
        cwd=work,
        env=env if env is not None else plugin_env(),
        stdout=subprocess.DEVNULL,
    )


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


def raise_open_files(need: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to ``need`` (at most the hard
    limit); children started afterwards inherit it. Returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return soft
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def parse_rates(value: str) -> list[float]:
    """``--rates``: "1000,5000" -> [1000.0, 5000.0]; "none" or "" -> []."""
    if value.strip().lower() in ("", "none", "0"):
        return []
    rates = [float(v) for v in value.split(",") if v.strip()]
    if any(not r > 0 for r in rates):
        raise argparse.ArgumentTypeError(f"rates must be > 0, got {value!r}")
    return rates


def settled_rate(times: list[float], start: float, total: int) -> dict[str, Any]:
    """The settled rate of ``total`` events (SMPP parts sent) at ``times``.

    Counts the events in each whole second from ``start`` (the end of
    intake: the drain; the last, partial second is cut) and keeps the
    seconds that still left a backlog behind them (the sender had work for
    all of it), the first one left out (the sender settling). ``rate`` is
    their median (the level the sender settled at), ``mean`` their mean
    (lower when, say, a tail of retries waits out a backoff); both NaN when
    no second is kept. ``per_second`` holds every whole second's count.
    """
    before = sum(1 for t in times if t < start)
    later = [t for t in times if t >= start]
    full = int(max(later) - start) if later else 0
    bins = [0] * full
    for t in later:
        k = int(t - start)
        if k < full:
            bins[k] += 1
    kept = []
    sent = before
    for k, n in enumerate(bins):
        sent += n
        if sent >= total:
            break
        if k:
            kept.append(n)
    return {
        "rate": float(statistics.median(kept)) if kept else float("nan"),
        "mean": sum(kept) / len(kept) if kept else float("nan"),
        "seconds": len(kept),
        "per_second": bins,
    }


def cap_verdict(settled: dict[str, Any], cap: float) -> str:
    """``settled_rate``'s figures against ``cap``, and whether each (median,
    mean) is within 10% below it (90-101% of the cap)."""
    if not settled["seconds"]:
        return "the drain was too short to tell (use a larger --count)"
    rate, mean = settled["rate"], settled["mean"]

    def within(x: float) -> str:
        return "yes" if 0.9 * cap <= x <= 1.01 * cap else "NO"

    return (
        f"settled at {rate:,.0f}/s = {rate / cap:.0%} of the cap of {cap:,.0f} "
        f"(median of {settled['seconds']} s of the drain; mean {mean:,.0f}/s = "
        f"{mean / cap:.0%}); within 10% below the cap: median {within(rate)}, "
        f"mean {within(mean)}; per second from the last ack: "
        f"{settled['per_second'][:24]}"
    )


def smsc_stats(port: int) -> dict[str, Any]:
    """The simulator's counters from its control port ({} when unavailable)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as r:
            stats: dict[str, Any] = json.loads(r.read())
    except (OSError, ValueError):
        return {}
    return stats


_UNFINISHED = (
    f"select 1 from alerts where status in ('{S.QUEUED}', '{S.SUBMITTED}') limit 1"
)


def parts_sent(db: Path) -> tuple[int, list[str]]:
    """(SMPP parts the alerts took, the alerts' texts in order)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        parts = c.execute("select coalesce(sum(parts), 0) from alerts").fetchone()[0]
        texts = [r[0] for r in c.execute("select text from alerts order by rowid")]
    return int(parts), texts


def parts_by_alert(db: Path) -> dict[int, int]:
    """{parts an alert took: alerts that took that many}."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        rows = c.execute("select parts, count(*) from alerts group by parts")
        return {int(parts): int(n) for parts, n in rows}


def submit_times(db: Path) -> list[float]:
    """When each SMPP part was accepted by the SMSC (Unix seconds)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        return [float(r[0]) for r in c.execute("select submitted_at from parts")]


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


def add_load_arguments(parser: argparse.ArgumentParser, count: int) -> None:
    """The load's options, shared by the benchmarks that drive the intake."""
    parser.add_argument("--count", type=int, default=count)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--window", type=int, default=500, help="pipelined per connection"
    )
    parser.add_argument("--smpp-window", type=int, default=100)


def add_rate_arguments(parser: argparse.ArgumentParser, seconds: float) -> None:
    """The paced latency runs' options (pipeline.py and vs_kannel.py)."""
    parser.add_argument(
        "--rates",
        type=parse_rates,
        default=[1000.0, 5000.0],
        help="paced latency runs, requests/s, comma separated ('none': skip); "
        "default 1000,5000",
    )
    parser.add_argument(
        "--rate", type=float, help="one paced rate (the same as --rates RATE)"
    )
    parser.add_argument(
        "--seconds", type=float, default=seconds, help="length of each paced run"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser, count=20000)
    parser.add_argument(
        "--binds", type=int, default=1, help="SMPP binds to the simulator"
    )
    add_rate_arguments(parser, seconds=10.0)
    parser.add_argument(
        "--latency-connections",
        type=int,
        help="connections of the paced runs (default: --connections)",
    )
    parser.add_argument(
        "--latency-window",
        type=int,
        help="outstanding per connection in the paced runs (default: --window)",
    )
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
        "--parts",
        type=int,
        choices=(1, 3),
        default=1,
        help="3: English alerts of 3 GSM-7 parts (THREE_PART_TEMPLATE), checked "
        "in the store",
    )
    parser.add_argument(
        "--template-en",
        metavar="TEXT",
        help="the issuer's English cardholder template (jinja, as in the config)",
    )
    parser.add_argument(
        "--max-tps",
        type=float,
        help="cap the simulator at this many submits/s per bind and report the "
        "settled submit rate against it",
    )
    parser.add_argument(
        "--tps",
        type=float,
        default=100000.0,
        help="the carrier's configured tps (its adaptive rate stays within "
        "5%%-100%% of it); default %(default).0f: no limit of its own",
    )
    parser.add_argument(
        "--smsc-args",
        default="",
        help="more options for the simulator, e.g. '--throttle-fraction 0.1'",
    )
    parser.add_argument(
        "--json", metavar="FILE", help="also write the figures (and texts) as JSON"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work folder (database, config, gateway log); a run that "
        "did not finish always keeps it",
    )
    ns = parser.parse_args()
    rates: list[float] = [ns.rate] if ns.rate is not None else ns.rates
    lat_conns = ns.latency_connections or ns.connections
    lat_window = ns.latency_window or ns.window
    template = ns.template_en
    if ns.parts == 3:
        template = template or THREE_PART_TEMPLATE
        if ns.lang != "en":
            parser.error("--parts 3 needs --lang en (the template is English)")
    # Every connection is a file descriptor here and in the gateway (which
    # inherits the limit): 1,000 terminals need more than a default 1,024.
    raise_open_files(2 * max(lat_conns, ns.connections) + 512)

    work = Path(tempfile.mkdtemp(prefix="smsgw-bench-"))
    smpp, intake, control = free_port(), free_port(), free_port()
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
            tps=ns.tps,
            # JSON strings are YAML double-quoted scalars.
            templates=f"    templates: {{en: {json.dumps(template)}}}\n"
            if template
            else "",
        )
    )
    env = plugin_env()
    db_upgrade(work, env)
    cap = ["--max-tps", str(ns.max_tps)] if ns.max_tps else []
    smsc = start_simulator(work, smpp, control, [*cap, *ns.smsc_args.split()], env)
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
            acked_wall = time.time()  # the store's clock: Unix seconds
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
            results["smsc"] = smsc_stats(control)
            results["by_parts"] = parts_by_alert(db)
            results["parts"] = parts_sent(db)
            results["settled"] = settled_rate(
                submit_times(db), acked_wall, results["parts"][0]
            )
            steady: list[tuple[float, LoadStats]] = []
            for k, rate in enumerate(rates):
                n = max(1, int(rate * ns.seconds))
                st = yield load(
                    intake, n, lat_conns, lat_window, rate, f"steady{k}", ns.lang
                )
                steady.append((rate, st))
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
    if "status" not in results:
        print(f"the run did not finish (gateway log: {work / 'gateway.log'})")
        return 1

    stats, acked_s, done_s, total, done, cpu = results["throughput"]
    if results["timeline"]:
        print("alerts by status every 0.25 s (first send = 0):")
        print("\n".join(results["timeline"]))
    print(
        f"throughput: {ns.count} txns over {ns.connections} connections "
        f"(window {ns.window} each), SQLite WAL synchronous=FULL, group commit"
    )
    print(f"  acks: {dict(stats.by_status)}  alerts: {stats.alerts}")
    print(
        f"  all acked in {acked_s:.2f} s = {stats.answered / acked_s:,.0f} txns/s "
        f"(first ack after {min(stats.latencies, default=0) * 1000:.0f} ms)"
    )
    parts, texts = results["parts"]
    print(
        f"  last receipt recorded after {done_s:.2f} s: "
        f"{done / done_s:,.0f} alerts/s end to end ({done}/{total} delivered), "
        f"{parts / done_s:,.0f} SMPP parts/s"
    )
    by_parts: dict[int, int] = results["by_parts"]
    sizes = [measure(t) for t in texts]
    units = [m.units for m in sizes]
    print(
        f"  alerts by parts: {dict(sorted(by_parts.items()))}; "
        f"{', '.join(sorted({m.encoding for m in sizes}))} "
        f"{min(units, default=0)}-{max(units, default=0)} units"
    )
    if ns.parts > 1:
        ok = set(by_parts) == {ns.parts}
        print(
            f"  every alert {ns.parts} parts: {'yes' if ok else 'NO'} "
            f"({by_parts.get(ns.parts, 0)}/{sum(by_parts.values())})"
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
    smsc_counts: dict[str, Any] = results["smsc"]
    print(
        f"  simulator: {smsc_counts.get('submits', '?')} submits accepted, "
        f"{smsc_counts.get('throttled', '?')} answered ESME_RTHROTTLED"
    )
    settled: dict[str, Any] = results["settled"]
    if ns.max_tps:
        print(
            f"  simulator capped at {ns.max_tps:,.0f} submits/s per bind: SMPP "
            f"parts {cap_verdict(settled, ns.max_tps)}"
        )
    steady: list[tuple[float, LoadStats]] = results["steady"]
    for rate, st in steady:
        print(
            f"steady {rate:,.0f} txns/s for {ns.seconds:.0f} s over {lat_conns} "
            f"connections (window {lat_window}): {dict(st.by_status)} "
            f"{'failed ' + str(dict(st.failures)) + ' ' if st.failed else ''}"
            f"rate {st.rate:,.0f}/s"
        )
        print(
            f"  ack latency p50 {st.p50 * 1000:.2f} ms  "
            f"p99 {st.p99 * 1000:.2f} ms  max {st.max * 1000:.2f} ms"
        )
    status = results["status"]
    print(f"gateway peak RSS {status['VmHWM']} (now {status['VmRSS']})")
    store_rss = [int(st["VmHWM"].split()[0]) for st in results["store_status"]]
    if ns.json:
        latency = [
            {
                "rate": rate,
                "achieved": st.rate,
                "answered": st.answered,
                "failed": st.failed,
                "p50_ms": st.p50 * 1000,
                "p99_ms": st.p99 * 1000,
                "max_ms": st.max * 1000,
            }
            for rate, st in steady
        ]
        cpu_all = cpu + sum(
            v for k, v in results["others"].items() if k.startswith("store process")
        )
        figures = {
            "count": ns.count,
            "alerts": done,
            "parts": parts,
            "acked_s": acked_s,
            "done_s": done_s,
            "alerts_per_s": done / done_s,
            "parts_per_s": parts / done_s,
            "latency": latency,
            "latency_connections": lat_conns,
            "latency_window": lat_window,
            # the first rate's, as before --rates
            "p50_ms": latency[0]["p50_ms"] if latency else None,
            "p99_ms": latency[0]["p99_ms"] if latency else None,
            "cpu_s": cpu_all,
            "cpu_us_per_alert": cpu_all / max(done, 1) * 1e6,
            "rss_kb": int(status["VmHWM"].split()[0]) + sum(store_rss),
            "by_parts": by_parts,
            "units": [min(units, default=0), max(units, default=0)],
            "max_tps": ns.max_tps,
            "settled": settled,
            "throttled": smsc_counts.get("throttled"),
            "submits": smsc_counts.get("submits"),
            "texts": texts,
        }
        Path(ns.json).write_text(json.dumps(figures))
    if ns.keep:
        print(f"work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
