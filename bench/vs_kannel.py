"""Side by side in one run: smsgw and Kannel against the same SMSC simulator.

Runs by hand (not a test); needs Debian's ``kannel`` package (bearerbox,
smsbox):

    .venv/bin/python bench/vs_kannel.py [--count 20000] [--scenario short]

Scenarios: ``short`` (English alerts, one GSM-7 part each), ``ucs2``
(Chinese alerts, UCS-2) and ``throttled`` (short, with 10% of submits
answered ESME_RTHROTTLED by the simulator at random).

1. smsgw: ``bench/pipeline.py`` (POS intake over 4 pipelined connections,
   durable SQLite, receipts recorded in the store; a steady 1,000 txns/s
   for the acknowledgement latency). Its alerts' texts are kept.
2. Kannel: bearerbox + smsbox (SMPP transceiver, window 100 =
   ``max-pending-submits``, ``store-type = file``, delivery reports
   requested with ``dlr-mask=1`` and a ``dlr-url`` served here), driven
   through its HTTP sendsms with the same texts, 64 requests outstanding on
   persistent connections (twisted.web's client: its CPU is printed, as
   it shares the cores);
   "acknowledged" is sendsms answering 202, a receipt is recorded when
   smsbox calls the dlr-url. A steady 1,000/s run gives its acknowledgement
   latency.

Each side gets a simulator of its own with the same options (receipt after
50 ms). Prints alerts/s end to end (first send -> last receipt recorded),
SMSC parts/s, p50/p99 acknowledgement latency, CPU seconds and peak RSS of
each gateway's processes, and the ratios. Every process started here
listens on 127.0.0.1 and is stopped by its PID at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import warnings
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.python import failure
from twisted.web import resource, server
from twisted.web.client import Agent, HTTPConnectionPool, readBody

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import (  # a sibling script, not a package
    BIN,
    ROOT,
    cpu_seconds,
    free_port,
    proc_status,
    wait_port,
)

# readBody warns about the pool's transports; harmless for a benchmark.
warnings.filterwarnings("ignore", category=DeprecationWarning, module="twisted")

SCENARIOS = {
    "short": ("en", ""),
    "ucs2": ("zh", ""),
    "throttled": ("en", "--throttle-fraction 0.1 --seed 7"),
}

KANNEL_CONF = """\
group = core
admin-port = {admin}
admin-password = bench
admin-interface = 127.0.0.1
smsbox-port = {smsbox}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = "{work}/bearerbox.log"
log-level = 3
store-type = file
store-location = "{work}/kannel.store"
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = sim
host = 127.0.0.1
port = {smpp}
transceiver-mode = true
smsc-username = smsgw
smsc-password = secret
system-type = ""
max-pending-submits = 100
msg-id-type = 0x00
enquire-link-interval = 30
reconnect-delay = 1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox}
sendsms-port = {sendsms}
sendsms-interface = 127.0.0.1
global-sender = 95588
log-file = "{work}/smsbox.log"
log-level = 3

group = sendsms-user
username = bench
password = bench
max-messages = 10
concatenation = true
"""


def start_smsc(work: Path, extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            BIN / "smsgw",
            "smsc",
            "--listen",
            f"tcp:{port}:interface=127.0.0.1",
            "--receipt-delay",
            "0.05",
            "--log-level",
            "warn",
            *extra.split(),
        ],
        cwd=work,
        stdout=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc, port


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run_smsgw(ns: argparse.Namespace, lang: str, smsc_args: str) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="smsgw-vs-")) / "smsgw.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "pipeline.py"),
            "--count",
            str(ns.count),
            "--seconds",
            str(ns.seconds),
            "--lang",
            lang,
            "--smsc-args",
            smsc_args,
            "--json",
            str(out),
        ],
        check=True,
        stdout=subprocess.DEVNULL if not ns.verbose else None,
    )
    figures: dict[str, Any] = json.loads(out.read_text())
    shutil.rmtree(out.parent, ignore_errors=True)
    return figures


class _Dlr(resource.Resource):
    """The dlr-url smsbox calls for every delivery report."""

    isLeaf = True  # noqa: N815 (twisted.web's name)

    def __init__(self) -> None:
        super().__init__()
        self.delivered = 0
        self.last = 0.0
        self.waiter: defer.Deferred[None] | None = None
        self.expect = 0

    def render_GET(self, request: Any) -> bytes:  # noqa: N802 (twisted.web's name)
        kind = request.args.get(b"t", [b""])[0]
        if kind == b"1":  # delivered (other report types are not counted)
            self.delivered += 1
            self.last = time.monotonic()
            if self.delivered >= self.expect and self.waiter is not None:
                waiter, self.waiter = self.waiter, None
                waiter.callback(None)
        return b"ok"


class _Driver:
    """sendsms requests: ``concurrency`` outstanding, or paced at ``rate``."""

    def __init__(self, agent: Agent, base: str, dlr_port: int, coding: int) -> None:
        self.agent = agent
        self.base = base
        self.dlr_port = dlr_port
        self.coding = coding
        self.latencies: list[float] = []
        self.failed = 0

    def url(self, n: int, text: str) -> bytes:
        query = {
            "username": "bench",
            "password": "bench",
            "from": "95588",
            "to": f"+86138{n:08d}",
            "text": text,
            "charset": "UTF-8",
            "dlr-mask": "1",
            "dlr-url": f"http://127.0.0.1:{self.dlr_port}/dlr?t=%d&n={n}",
        }
        if self.coding:
            query["coding"] = str(self.coding)
        return f"{self.base}?{urllib.parse.urlencode(query)}".encode()

    @defer.inlineCallbacks
    def one(self, n: int, text: str) -> Any:
        t = time.monotonic()
        try:
            response = yield self.agent.request(b"GET", self.url(n, text))
            yield readBody(response)
            if response.code not in (200, 202):
                self.failed += 1
        except Exception:
            self.failed += 1
        self.latencies.append(time.monotonic() - t)

    @defer.inlineCallbacks
    def flood(self, texts: list[str], concurrency: int, first: int) -> Any:
        items = iter(enumerate(texts, first))

        @defer.inlineCallbacks
        def worker() -> Any:
            for n, text in items:
                yield self.one(n, text)

        yield defer.DeferredList([worker() for _ in range(concurrency)])

    @defer.inlineCallbacks
    def paced(self, texts: list[str], rate: float, first: int) -> Any:
        start = time.monotonic()
        pending = []
        for k, text in enumerate(texts):
            delay = start + k / rate - time.monotonic()
            if delay > 0:
                yield task.deferLater(reactor, delay, lambda: None)
            pending.append(self.one(first + k, text))
        yield defer.DeferredList(pending)


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else 0.0


def run_kannel(
    ns: argparse.Namespace, texts: list[str], parts: int, lang: str, smsc_args: str
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="kannel-bench-"))
    smsc, smpp = start_smsc(work, smsc_args)
    ports = {k: free_port() for k in ("admin", "smsbox", "sendsms")}
    conf = work / "kannel.conf"
    conf.write_text(KANNEL_CONF.format(work=work, smpp=smpp, **ports))

    def box(name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [shutil.which(name) or f"/usr/sbin/{name}", str(conf)],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    bearerbox = box("bearerbox")
    wait_port(ports["smsbox"])
    smsbox = box("smsbox")
    wait_port(ports["sendsms"])
    time.sleep(1.5)  # the bind to the simulator
    procs = [bearerbox, smsbox]
    dlr = _Dlr()
    site = reactor.listenTCP(
        0,
        server.Site(dlr),  # type: ignore[arg-type]
        interface="127.0.0.1",
    )
    dlr_port: int = site.getHost().port  # type: ignore[attr-defined]
    results: dict[str, Any] = {}

    @defer.inlineCallbacks
    def run() -> Any:
        try:
            pool = HTTPConnectionPool(reactor, persistent=True)
            pool.maxPersistentPerHost = ns.kannel_concurrency
            driver = _Driver(
                Agent(reactor, pool=pool),
                f"http://127.0.0.1:{ports['sendsms']}/cgi-bin/sendsms",
                dlr_port,
                2 if lang == "zh" else 0,
            )
            me = os.getpid()
            driver_cpu0 = cpu_seconds(me)
            cpu0 = sum(cpu_seconds(p.pid) for p in procs)
            dlr.expect = len(texts)
            done: defer.Deferred[None] = defer.Deferred()
            dlr.waiter = done
            t0 = time.monotonic()
            yield driver.flood(texts, ns.kannel_concurrency, 0)
            results["acked_s"] = time.monotonic() - t0
            timeout = reactor.callLater(ns.timeout, done.cancel)
            try:
                yield done
            except defer.CancelledError:
                pass
            else:
                timeout.cancel()
            results["done_s"] = (dlr.last or time.monotonic()) - t0
            results["delivered"] = dlr.delivered
            results["cpu_s"] = sum(cpu_seconds(p.pid) for p in procs) - cpu0
            results["driver_cpu_s"] = cpu_seconds(me) - driver_cpu0
            results["failed"] = driver.failed
            driver.latencies = []
            steady = texts[: int(ns.rate * ns.seconds)]
            yield driver.paced(steady, ns.rate, len(texts))
            results["p50_ms"] = _percentile(driver.latencies, 0.50) * 1000
            results["p99_ms"] = _percentile(driver.latencies, 0.99) * 1000
            results["rss_kb"] = sum(
                int(proc_status(p.pid)["VmHWM"].split()[0]) for p in procs
            )
            yield pool.closeCachedConnections()
        except Exception:
            failure.Failure().printTraceback()
        finally:
            reactor.stop()

    reactor.callWhenRunning(run)
    reactor.run()
    stop([smsbox, bearerbox, smsc])
    if not ns.keep:
        shutil.rmtree(work, ignore_errors=True)
    if "rss_kb" not in results:
        raise SystemExit("the Kannel run did not finish (traceback above)")
    done_s = results["done_s"]
    delivered = results["delivered"]
    return {
        "alerts": delivered,
        "parts": parts,
        "acked_s": results["acked_s"],
        "done_s": done_s,
        "alerts_per_s": delivered / done_s,
        "parts_per_s": parts * delivered / max(len(texts), 1) / done_s,
        "p50_ms": results["p50_ms"],
        "p99_ms": results["p99_ms"],
        "cpu_s": results["cpu_s"],
        "rss_kb": results["rss_kb"],
        "failed": results["failed"],
        "driver_cpu_s": results["driver_cpu_s"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="short")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--kannel-concurrency",
        type=int,
        default=64,
        help="sendsms requests outstanding",
    )
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--keep", action="store_true", help="keep Kannel's work dir")
    parser.add_argument("--verbose", action="store_true")
    ns = parser.parse_args()
    if shutil.which("bearerbox") is None and not Path("/usr/sbin/bearerbox").exists():
        print("Kannel is not installed (apt-get install kannel)", file=sys.stderr)
        return 2
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    lang, smsc_args = SCENARIOS[ns.scenario]
    ours = run_smsgw(ns, lang, smsc_args)
    texts = ours.pop("texts")
    kannel = run_kannel(ns, texts, ours["parts"], lang, smsc_args)
    print(f"scenario {ns.scenario}: {ns.count} alerts, same texts, same simulator")
    rows = [
        ("alerts/s end to end", "alerts_per_s", "{:,.0f}", True),
        ("SMSC parts/s", "parts_per_s", "{:,.0f}", True),
        ("all acknowledged after (s)", "acked_s", "{:.2f}", False),
        ("last receipt after (s)", "done_s", "{:.2f}", False),
        (f"ack p50 at {ns.rate:.0f}/s (ms)", "p50_ms", "{:.2f}", False),
        (f"ack p99 at {ns.rate:.0f}/s (ms)", "p99_ms", "{:.2f}", False),
        ("CPU seconds (throughput run)", "cpu_s", "{:.1f}", False),
        ("peak RSS (MB)", "rss_kb", "{:.0f}", False),
    ]
    print(f"  {'':32} {'smsgw':>10} {'Kannel':>10} {'ratio':>7}")
    for label, key, fmt, higher in rows:
        a, b = ours[key], kannel[key]
        if key == "rss_kb":
            a, b = a / 1024, b / 1024
        ratio = (a / b if higher else b / a) if a and b else float("nan")
        print(f"  {label:32} {fmt.format(a):>10} {fmt.format(b):>10} {ratio:>6.2f}x")
    print(
        f"  delivered: smsgw {ours['alerts']}/{ns.count}, "
        f"Kannel {kannel['alerts']}/{ns.count} (sendsms failures {kannel['failed']}); "
        f"the sendsms driver itself used {kannel['driver_cpu_s']:.1f} CPU s"
    )
    print("  ratio: how many times better smsgw is (higher rates, lower times)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
