"""Side by side in one run: smsgw and Kannel against the same SMSC simulator.

Runs by hand (not a test); needs Debian's ``kannel`` package (bearerbox,
smsbox) and ``wrk`` (4.x, with LuaJIT):

    .venv/bin/python bench/vs_kannel.py [--count 20000] [--scenario short]
        [--rates 1000,5000] [--seconds 5] [--kannel-concurrency 64]
    .venv/bin/python bench/vs_kannel.py --counts 10000,50000,100000 [--smsgw-only]

Scenarios (``--scenario``):

- ``short``: English alerts, one GSM-7 part each;
- ``ucs2``: Chinese alerts, UCS-2 (``coding=2`` for Kannel);
- ``throttled``: short, with 10% of submits answered ESME_RTHROTTLED by the
  simulator at random;
- ``threepart``: English alerts of 3 GSM-7 parts each (a long issuer
  template, ``bench/pipeline.py --parts 3``, checked in smsgw's store);
  Kannel splits the same texts (``concatenation = true``);
- ``conns1000``: short, with the paced latency runs over 1,000 connections
  (smsgw: 1,000 terminal connections with one request outstanding each;
  Kannel: up to 1,000 persistent HTTP connections, each answering one
  request to a path smsbox answers 404 within 3 s before the clock starts
  (the opening stops at the first that does not: smsbox 1.4.5 serves 500
  connections at once, the 501st is accepted and never answered), used in
  turn); the throughput run is unchanged;
- ``capped``: short, the simulator answering ESME_RTHROTTLED above
  ``--cap`` submits/s per bind (default 2,000); reports each side's settled
  submit rate during the drain (smsgw: SMPP parts by their sent time in the
  store; Kannel: delivery reports by arrival; per whole second after the
  last acknowledgement, the first second and the seconds that emptied the
  backlog left out; their median, and their mean) against the cap, and
  whether it is within 10% below it.
  smsgw's carrier keeps pipeline.py's ``tps: 100000`` unless ``--smsgw-tps``.

1. smsgw: ``bench/pipeline.py`` with ``--json`` (POS intake over 4
   pipelined connections, durable SQLite, receipts recorded in the store;
   then a paced run of ``--seconds`` at each of ``--rates`` for the
   acknowledgement latency). Its alerts' texts are kept.
2. Kannel: bearerbox + smsbox (SMPP transceiver, window 100 =
   ``max-pending-submits``, ``store-type = file``, delivery reports
   requested with ``dlr-mask=1`` and a ``dlr-url`` served here by
   twisted.web), sent the same texts through its HTTP sendsms:

   - throughput ("flood"): ``wrk`` (``--kannel-threads`` 1,
     ``--kannel-concurrency`` 64 persistent connections) with a Lua script
     written into Kannel's work dir, serving the pre-built sendsms request
     paths one per request, each exactly once, and stopping after the
     answers to all of them (each thread prints ``WRK-DONE``; the harness
     then ends wrk with SIGINT). Answers other than 2xx, and requests never
     answered, are failures. wrk's CPU seconds (its rusage: the only child
     that ends meanwhile) are printed, as it shares the cores, and so are
     this process's (the dlr-url server). The clock starts when wrk is
     started; "acknowledged" is the last sendsms answer (wrk done), a
     receipt is recorded when smsbox calls the dlr-url (each message counted
     once: Kannel reports a split message once);
   - latency: paced at each rate of ``--rates`` for ``--seconds`` (the
     requests due by now sent together) through twisted.web's client over
     ``--kannel-concurrency`` persistent connections (scenario
     ``conns1000``: up to 1,000), each with an Agent of its own (a pool of
     one connection), opened 8 at a time before the clock starts (smsbox
     listens with a backlog of 10), one request outstanding on each: a
     request falling due while every connection is busy waits for the first
     that frees and its latency counts from when it is sent, as in smsgw's
     load generator, so the rate achieved shows whether a side kept up. The
     CPU of this process (that client and the dlr-url server) is printed
     too: on two shared cores it may not keep up with 5,000/s.

Each side gets a simulator of its own with the same options (receipt after
50 ms). Prints alerts/s end to end (first send -> last receipt recorded),
SMSC parts/s, p50/p99 acknowledgement latency and the rate achieved at each
paced rate, CPU seconds and µs per alert and peak RSS of each gateway's
processes (smsgw: twistd + store process; Kannel: bearerbox + smsbox), and
the ratios.

Linearity (``--counts 10000,50000,100000``): only the throughput run, at
each count, each on fresh processes (smsgw always, Kannel unless
``--smsgw-only``), printing alerts/s, CPU µs per alert and peak RSS per
count so the growth of the cost can be read. ``--smsgw-only`` also skips
Kannel in a scenario run.

The simulators' counters (SMPP submits accepted and ESME_RTHROTTLED answers
during the throughput run) come from their control ports. The soft
RLIMIT_NOFILE is raised to fit the connections (Kannel's boxes inherit it).
Every process started here listens on 127.0.0.1 and is stopped by its PID
at the end (also when the run fails or is interrupted).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
import urllib.parse
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import defer, protocol, reactor, task, threads
from twisted.internet.interfaces import IProcessTransport
from twisted.python import failure
from twisted.web import resource as web_resource
from twisted.web import server
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from typing_extensions import override

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import (  # a sibling script, not a package
    ROOT,
    add_rate_arguments,
    cap_verdict,
    cpu_seconds,
    free_port,
    proc_status,
    raise_open_files,
    settled_rate,
    smsc_stats,
    start_simulator,
    wait_port,
)

# readBody warns about the pool's transports; harmless for a benchmark.
warnings.filterwarnings("ignore", category=DeprecationWarning, module="twisted")
warnings.filterwarnings(
    "ignore", message="Using readBody with a transport", category=DeprecationWarning
)


@dataclass(frozen=True, slots=True)
class Scenario:
    """What both sides are given: the alerts' language, simulator options,
    parts per alert, connections of the paced runs, a submit-rate cap."""

    lang: str
    about: str
    smsc_args: str = ""
    parts: int = 1
    latency_connections: int | None = None
    capped: bool = False


SCENARIOS = {
    "short": Scenario("en", "English alerts, 1 GSM-7 part"),
    "ucs2": Scenario("zh", "Chinese alerts, UCS-2"),
    "throttled": Scenario(
        "en",
        "10% of submits ESME_RTHROTTLED at random",
        "--throttle-fraction 0.1 --seed 7",
    ),
    "threepart": Scenario("en", "English alerts of 3 GSM-7 parts", parts=3),
    "conns1000": Scenario(
        "en", "paced runs over 1,000 connections", latency_connections=1000
    ),
    "capped": Scenario("en", "simulator capped at --cap submits/s", capped=True),
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

# wrk's Lua script (string.Template: $paths, $total, $threads). Each thread
# takes its share of the paths file, sends each path once (the first thread
# answers wrk's own check call to request() without counting it), then
# sends nothing ("" writes no bytes) and, after the answers to its share,
# prints its counts and stops its loop. wrk's main thread sleeps for -d:
# the harness ends it with SIGINT once every thread is done.
WRK_LUA = """\
-- written by bench/vs_kannel.py
local total, nthreads, started = $total, $threads, 0

function setup(thread)
  started = started + 1
  local per = math.floor(total / nthreads)
  thread:set("index", started)
  thread:set("lo", (started - 1) * per + 1)
  thread:set("hi", started == nthreads and total or started * per)
end

local reqs, issued, answered, ok, other, probe

function init(args)
  reqs, issued, answered, ok, other = {}, 0, 0, 0, 0
  local n = 0
  for line in io.lines("$paths") do
    n = n + 1
    if n >= lo and n <= hi then
      reqs[#reqs + 1] = wrk.format("GET", line)
    end
  end
  probe = index == 1
end

function request()
  if probe then
    probe = false
    return reqs[1]
  end
  if issued >= #reqs then
    return ""
  end
  issued = issued + 1
  return reqs[issued]
end

function response(status, headers, body)
  answered = answered + 1
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    other = other + 1
  end
  if answered == #reqs then
    io.write(string.format("WRK-DONE %d %d %d\\n", index, ok, other))
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK-ERRORS connect=%d read=%d write=%d status=%d timeout=%d\\n",
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""

# What this run started and has not stopped yet (stopped at exit whatever
# happens).
_LIVE: list[subprocess.Popen[bytes]] = []
_WRK: list[IProcessTransport] = []


def start_smsc(work: Path, extra: str) -> tuple[subprocess.Popen[bytes], int, int]:
    """A simulator: (process, SMPP port, control port)."""
    port, control = free_port(), free_port()
    proc = start_simulator(work, port, control, extra.split())
    _LIVE.append(proc)
    wait_port(port)
    return proc, port, control


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
        if proc in _LIVE:
            _LIVE.remove(proc)


def _kill_wrk() -> None:
    for transport in _WRK:
        if transport.pid is not None:
            transport.signalProcess("KILL")


def run_smsgw(
    ns: argparse.Namespace, sc: Scenario, count: int, rates: list[float]
) -> dict[str, Any]:
    """bench/pipeline.py's figures (blocking: run it in a thread)."""
    out = Path(tempfile.mkdtemp(prefix="smsgw-vs-")) / "smsgw.json"
    extra: list[str] = []
    if sc.parts == 3:
        extra += ["--parts", "3"]
    if sc.latency_connections:
        extra += [
            "--latency-connections",
            str(sc.latency_connections),
            "--latency-window",
            "1",
        ]
    if sc.capped:
        extra += ["--max-tps", str(ns.cap)]
    if ns.smsgw_tps:
        extra += ["--tps", str(ns.smsgw_tps)]
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "pipeline.py"),
            "--count",
            str(count),
            "--seconds",
            str(ns.seconds),
            "--rates",
            ",".join(f"{r:g}" for r in rates) or "none",
            "--lang",
            sc.lang,
            "--smsc-args",
            sc.smsc_args,
            "--json",
            str(out),
            *extra,
        ],
        check=True,
        stdout=subprocess.DEVNULL if not ns.verbose else None,
    )
    figures: dict[str, Any] = json.loads(out.read_text())
    shutil.rmtree(out.parent, ignore_errors=True)
    return figures


class _Dlr(web_resource.Resource):
    """The dlr-url smsbox calls for every delivery report.

    A message is counted once (by its ``n``), however many reports come for
    it (one per part, or repeats); ``times`` holds when each message of the
    throughput run (``n`` below ``expect``) was first reported delivered.
    """

    isLeaf = True  # noqa: N815 (twisted.web's name)

    def __init__(self) -> None:
        super().__init__()
        self.expect = 0
        self.seen: set[int] = set()
        self.times: list[float] = []
        self.calls = 0
        self.later = 0
        self.last = 0.0
        self.waiter: defer.Deferred[None] | None = None

    @property
    def delivered(self) -> int:
        return len(self.times)

    def render_GET(self, request: Any) -> bytes:  # noqa: N802 (twisted.web's name)
        kind = request.args.get(b"t", [b""])[0]
        if kind != b"1":  # delivered (other report types are not counted)
            return b"ok"
        self.calls += 1
        try:
            n = int(request.args.get(b"n", [b"-1"])[0])
        except ValueError:
            return b"ok"
        if n in self.seen:
            return b"ok"
        self.seen.add(n)
        if n >= self.expect:
            self.later += 1  # the paced runs' messages
            return b"ok"
        self.last = time.monotonic()
        self.times.append(self.last)
        if len(self.times) >= self.expect and self.waiter is not None:
            waiter, self.waiter = self.waiter, None
            waiter.callback(None)
        return b"ok"


def sendsms_query(n: int, text: str, dlr_port: int, coding: int) -> str:
    """The sendsms query for message ``n`` (to +86138<n>): credentials, sender,
    text, delivery report to the harness."""
    query = {
        "username": "bench",
        "password": "bench",
        "from": "95588",
        "to": f"+86138{n:08d}",
        "text": text,
        "charset": "UTF-8",
        "dlr-mask": "1",
        "dlr-url": f"http://127.0.0.1:{dlr_port}/dlr?t=%d&n={n}",
    }
    if coding:
        query["coding"] = str(coding)
    return urllib.parse.urlencode(query)


class _WrkProtocol(protocol.ProcessProtocol):
    """wrk's output: ``WRK-DONE <thread> <2xx> <other>`` per thread, then
    SIGINT to end it (its main thread sleeps until -d otherwise)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.buffer = b""
        self.lines: list[str] = []
        self.done: list[tuple[int, int]] = []
        self.finished_at: float | None = None
        self.ended: defer.Deferred[None] = defer.Deferred()

    @override
    def outReceived(self, data: bytes) -> None:
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            if not line.startswith("WRK-DONE "):
                continue
            _, _, ok, other = line.split()
            self.done.append((int(ok), int(other)))
            if len(self.done) == self.threads and self.finished_at is None:
                self.finished_at = time.monotonic()
                assert self.transport is not None
                self.transport.signalProcess("INT")

    @override
    def errReceived(self, data: bytes) -> None:
        self.lines.append(data.decode(errors="replace").rstrip())

    @override
    def processEnded(self, reason: failure.Failure) -> None:
        if self.finished_at is None:
            self.finished_at = time.monotonic()
        self.ended.callback(None)


@defer.inlineCallbacks
def run_wrk(ns: argparse.Namespace, work: Path, port: int, paths: list[str]) -> Any:
    """Send each sendsms path once with wrk; return its figures when done."""
    count = len(paths)
    nthreads = max(1, min(ns.kannel_threads, count))
    (work / "paths.txt").write_text("".join(f"{p}\n" for p in paths))
    script = work / "sendsms.lua"
    script.write_text(
        string.Template(WRK_LUA).substitute(
            paths=work / "paths.txt", total=count, threads=nthreads
        )
    )
    proto = _WrkProtocol(nthreads)
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    transport = reactor.spawnProcess(
        proto,
        shutil.which("wrk") or "/usr/bin/wrk",
        [
            "wrk",
            "-t",
            str(nthreads),
            "-c",
            str(max(ns.kannel_concurrency, nthreads)),
            "-d",
            f"{math.ceil(ns.timeout)}s",
            "--timeout",
            "60s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/",
        ],
        env=dict(os.environ),
        path=str(work),
    )
    _WRK.append(transport)
    yield proto.ended
    _WRK.remove(transport)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    ok = sum(n for n, _ in proto.done)
    assert proto.finished_at is not None
    return {
        "started": t0,
        "acked_s": proto.finished_at - t0,
        "ok": ok,
        "failed": count - ok,
        "finished": len(proto.done) == nthreads,
        "cpu_s": usage.ru_utime - usage0.ru_utime + usage.ru_stime - usage0.ru_stime,
        "output": proto.lines,
        "threads": nthreads,
    }


def _percentile(values: list[float], p: float) -> float:
    """Nearest rank, as LoadStats does (0.0 for none)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[max(math.ceil(p * len(ordered)), 1) - 1]


class _Driver:
    """Paced sendsms requests through twisted.web's client (the latency runs).

    Over the persistent connections `open_connections` opened, one Agent
    (with a pool of one connection) each, one request outstanding on each:
    a request falling due while every connection is busy waits for the
    first that frees, as in smsgw's load generator, and its latency counts
    from when it is sent (as there).
    """

    def __init__(self, root: str, dlr_port: int, coding: int) -> None:
        self.root = root
        self.dlr_port = dlr_port
        self.coding = coding
        self.pools: list[HTTPConnectionPool] = []
        self.idle: deque[Agent] = deque()
        self.waiting: deque[tuple[int, str]] = deque()
        self.busy = 0
        self.latencies: list[float] = []
        self.failed = 0
        self.refused: list[str] = []
        self.drained: defer.Deferred[None] | None = None

    @defer.inlineCallbacks
    def open_connections(
        self, connections: int, parallel: int = 8, patience: float = 3.0
    ) -> Any:
        """Open up to ``connections`` persistent connections, ``parallel`` at
        a time (smsbox listens with a backlog of 10: a thousand at once
        mostly wait for SYN retransmits); each must answer one request (to a
        path smsbox answers 404 without sending anything) within
        ``patience`` s, and the first that does not stops the opening.
        Returns how many were opened."""
        url = f"{self.root}/bench-warm-up".encode()
        left = iter(range(connections))

        @defer.inlineCallbacks
        def worker() -> Any:
            for _ in left:
                if self.refused:
                    return
                pool = HTTPConnectionPool(reactor, persistent=True)
                pool.maxPersistentPerHost = 1
                agent = Agent(reactor, pool=pool)
                d = agent.request(b"GET", url).addCallback(readBody)
                d.addTimeout(patience, reactor)
                try:
                    yield d
                except Exception as e:
                    self.refused.append(f"{type(e).__name__} after {len(self.idle)}")
                    yield pool.closeCachedConnections()
                else:
                    self.pools.append(pool)
                    self.idle.append(agent)

        yield defer.DeferredList([worker() for _ in range(parallel)])
        return len(self.idle)

    def _pump(self) -> None:
        while self.waiting and self.idle:
            n, text = self.waiting.popleft()
            self._send(self.idle.popleft(), n, text)
        if not self.busy and not self.waiting and self.drained is not None:
            drained, self.drained = self.drained, None
            drained.callback(None)

    @defer.inlineCallbacks
    def _send(self, agent: Agent, n: int, text: str) -> Any:
        url = f"{self.root}/cgi-bin/sendsms?" + sendsms_query(
            n, text, self.dlr_port, self.coding
        )
        self.busy += 1
        t = time.monotonic()
        try:
            response = yield agent.request(b"GET", url.encode())
            yield readBody(response)
            if response.code not in (200, 202):
                self.failed += 1
        except Exception:
            self.failed += 1
        self.latencies.append(time.monotonic() - t)
        self.busy -= 1
        self.idle.append(agent)
        self._pump()

    @defer.inlineCallbacks
    def paced(self, texts: list[str], rate: float, first: int, count: int) -> Any:
        """``count`` requests, the k-th due k/rate s after the start (those
        due by now go together, as smsgw's load generator sends them);
        fires when all are answered."""
        start = time.monotonic()
        sent = 0
        while sent < count:
            due = min(count, math.floor((time.monotonic() - start) * rate) + 1)
            while sent < due:
                self.waiting.append((first + sent, texts[sent % len(texts)]))
                sent += 1
            self._pump()
            if sent < count:
                delay = start + sent / rate - time.monotonic()
                yield task.deferLater(reactor, max(0.0, delay), lambda: None)
        if self.busy or self.waiting:
            self.drained = defer.Deferred()
            yield self.drained

    @defer.inlineCallbacks
    def close(self) -> Any:
        for pool in self.pools:
            yield pool.closeCachedConnections()


@defer.inlineCallbacks
def run_kannel(
    ns: argparse.Namespace,
    sc: Scenario,
    texts: list[str],
    parts: int,
    rates: list[float],
) -> Any:
    """Kannel's figures for ``texts`` (throughput), then the paced runs."""
    count = len(texts)
    lang = sc.lang
    smsc_args = sc.smsc_args + (f" --max-tps {ns.cap}" if sc.capped else "")
    work = Path(tempfile.mkdtemp(prefix="kannel-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    site = None
    results: dict[str, Any] = {}
    try:
        smsc, smpp, control = start_smsc(work, smsc_args)
        procs.append(smsc)
        ports = {k: free_port() for k in ("admin", "smsbox", "sendsms")}
        conf = work / "kannel.conf"
        conf.write_text(KANNEL_CONF.format(work=work, smpp=smpp, **ports))

        def box(name: str) -> subprocess.Popen[bytes]:
            proc = subprocess.Popen(
                [shutil.which(name) or f"/usr/sbin/{name}", str(conf)],
                cwd=work,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            _LIVE.append(proc)
            procs.insert(0, proc)
            return proc

        bearerbox = box("bearerbox")
        wait_port(ports["smsbox"])
        smsbox = box("smsbox")
        wait_port(ports["sendsms"])
        yield task.deferLater(reactor, 1.5, lambda: None)  # the bind
        kannel = [bearerbox, smsbox]
        dlr = _Dlr()
        site = reactor.listenTCP(
            0,
            server.Site(dlr),  # type: ignore[arg-type]
            interface="127.0.0.1",
        )
        dlr_port: int = site.getHost().port  # type: ignore[attr-defined]
        coding = 2 if lang == "zh" else 0
        root = f"http://127.0.0.1:{ports['sendsms']}"
        paths = [
            "/cgi-bin/sendsms?" + sendsms_query(n, text, dlr_port, coding)
            for n, text in enumerate(texts)
        ]
        me = os.getpid()
        harness0 = cpu_seconds(me)
        cpu0 = sum(cpu_seconds(p.pid) for p in kannel)
        dlr.expect = count
        done: defer.Deferred[None] = defer.Deferred()
        dlr.waiter = done
        flood = yield run_wrk(ns, work, ports["sendsms"], paths)
        t0 = flood["started"]  # wrk started: the first send
        t_acked = t0 + flood["acked_s"]
        if not flood["finished"]:
            print("wrk did not finish:\n  " + "\n  ".join(flood["output"][-8:]))
        if dlr.delivered < count:
            timeout = reactor.callLater(ns.timeout, done.cancel)
            try:
                yield done
            except defer.CancelledError:
                pass
            else:
                timeout.cancel()
        done_s = (dlr.last or time.monotonic()) - t0
        results.update(
            acked_s=flood["acked_s"],
            done_s=done_s,
            delivered=dlr.delivered,
            cpu_s=sum(cpu_seconds(p.pid) for p in kannel) - cpu0,
            driver_cpu_s=flood["cpu_s"],
            harness_cpu_s=cpu_seconds(me) - harness0,
            failed=flood["failed"],
            wrk_errors=[x for x in flood["output"] if x.startswith("WRK-ERRORS")],
            wrk_threads=flood["threads"],
            settled=settled_rate(dlr.times, t_acked, count),
            dlr_calls=dlr.calls,
        )
        stats = smsc_stats(control)
        results["submits"] = stats.get("submits")
        results["throttled"] = stats.get("throttled")
        latency = []
        if rates:
            driver = _Driver(root, dlr_port, coding)
            want = sc.latency_connections or ns.kannel_concurrency
            t_open = time.monotonic()
            opened = yield driver.open_connections(want)
            results["opened"] = (
                opened,
                time.monotonic() - t_open,
                driver.refused[:1],
                want,
            )
            if not opened:
                raise RuntimeError(f"no sendsms connection opened: {driver.refused}")
            first = count
            for rate in rates:
                n = max(1, int(rate * ns.seconds))
                driver.latencies = []
                failed0 = driver.failed
                cpu_before = cpu_seconds(me)
                t_start = time.monotonic()
                yield driver.paced(texts, rate, first, n)
                elapsed = time.monotonic() - t_start
                first += n
                lat = driver.latencies
                latency.append(
                    {
                        "rate": rate,
                        "achieved": n / elapsed,
                        "answered": n - (driver.failed - failed0),
                        "failed": driver.failed - failed0,
                        "p50_ms": _percentile(lat, 0.50) * 1000,
                        "p99_ms": _percentile(lat, 0.99) * 1000,
                        "max_ms": _percentile(lat, 1.0) * 1000,
                        "driver_cpu_s": cpu_seconds(me) - cpu_before,
                    }
                )
            yield driver.close()
        results["latency"] = latency
        results["rss_kb"] = sum(
            int(proc_status(p.pid)["VmHWM"].split()[0]) for p in kannel
        )
    finally:
        if site is not None:
            yield site.stopListening()
        stop(procs)
        if not ns.keep:
            shutil.rmtree(work, ignore_errors=True)
    done_s = results["done_s"]
    delivered = results.pop("delivered")
    return results | {
        "alerts": delivered,
        "parts": parts,
        "alerts_per_s": delivered / done_s,
        "parts_per_s": parts * delivered / max(count, 1) / done_s,
        "cpu_us_per_alert": results["cpu_s"] / max(delivered, 1) * 1e6,
    }


def _ratio(a: float | None, b: float | None, higher: bool | None) -> str:
    if higher is None or not a or not b or math.isnan(a) or math.isnan(b):
        return "-"
    return f"{(a / b if higher else b / a):.2f}x"


def _fmt(fmt: str, value: float | None) -> str:
    return "-" if value is None else fmt.format(value)


def print_table(
    ns: argparse.Namespace,
    name: str,
    ours: dict[str, Any],
    kannel: dict[str, Any] | None,
    rates: list[float],
) -> None:
    sc = SCENARIOS[name]
    print(
        f"scenario {name} ({sc.about}): {ns.count} alerts, same texts, "
        "same simulator options"
    )
    theirs = kannel or {}

    def lat(side: dict[str, Any], rate: float, key: str) -> float | None:
        for row in side.get("latency", []):
            if row["rate"] == rate:
                return float(row[key])
        return None

    rows: list[tuple[str, float | None, float | None, str, bool | None]] = [
        (
            "alerts/s end to end",
            ours["alerts_per_s"],
            theirs.get("alerts_per_s"),
            "{:,.0f}",
            True,
        ),
        (
            "SMSC parts/s",
            ours["parts_per_s"],
            theirs.get("parts_per_s"),
            "{:,.0f}",
            True,
        ),
        (
            "all acknowledged after (s)",
            ours["acked_s"],
            theirs.get("acked_s"),
            "{:.2f}",
            False,
        ),
        (
            "last receipt after (s)",
            ours["done_s"],
            theirs.get("done_s"),
            "{:.2f}",
            False,
        ),
    ]
    lagging = []
    for rate in rates:
        # A side that did not keep up queued requests (smsgw's in its
        # windows, counted in the latency; Kannel's in this client, not
        # counted): its latency is no longer comparable.
        kept_up = all(
            (lat(side, rate, "achieved") or rate) >= 0.95 * rate
            for side in (ours, theirs)
        )
        if not kept_up:
            lagging.append(f"{rate:,.0f}/s")
        for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
            rows.append(
                (
                    f"ack {label} at {rate:,.0f}/s (ms)",
                    lat(ours, rate, key),
                    lat(theirs, rate, key),
                    "{:.2f}",
                    False if kept_up else None,
                )
            )
        rows.append(
            (
                f"  rate achieved at {rate:,.0f}/s",
                lat(ours, rate, "achieved"),
                lat(theirs, rate, "achieved"),
                "{:,.0f}",
                None,
            )
        )
    if sc.capped:
        rows.append(
            (
                f"settled submits/s (cap {ns.cap:,.0f})",
                ours["settled"]["rate"],
                theirs.get("settled", {}).get("rate"),
                "{:,.0f}",
                True,
            )
        )
    rows += [
        (
            "SMPP submits accepted (tput run)",
            ours.get("submits"),
            theirs.get("submits"),
            "{:,.0f}",
            None,
        ),
        (
            "ESME_RTHROTTLED answers",
            ours.get("throttled"),
            theirs.get("throttled"),
            "{:,.0f}",
            None,
        ),
        (
            "CPU seconds (throughput run)",
            ours["cpu_s"],
            theirs.get("cpu_s"),
            "{:.1f}",
            False,
        ),
        (
            "CPU µs per alert",
            ours["cpu_us_per_alert"],
            theirs.get("cpu_us_per_alert"),
            "{:,.0f}",
            False,
        ),
        (
            "peak RSS (MB)",
            ours["rss_kb"] / 1024,
            theirs["rss_kb"] / 1024 if kannel else None,
            "{:.0f}",
            False,
        ),
    ]
    print(f"  {'':34} {'smsgw':>10} {'Kannel':>10} {'ratio':>7}")
    for label, a, b, fmt, higher in rows:
        print(
            f"  {label:34} {_fmt(fmt, a):>10} {_fmt(fmt, b):>10} "
            f"{_ratio(a, b, higher):>7}"
        )
    print(
        "  ratio: how many times better smsgw is (higher rates, lower times, "
        "less CPU and memory)"
    )
    if lagging:
        print(
            f"  no latency ratio at {', '.join(lagging)}: a side achieved less "
            "than 95% of the rate, so requests queued (smsgw: in its pipelined "
            "windows, counted in its latency; Kannel: in this client, not counted)"
        )
    by_parts = {int(k): v for k, v in ours.get("by_parts", {}).items()}
    units = ours.get("units", [0, 0])
    print(
        f"  smsgw: delivered {ours['alerts']}/{ns.count}; alerts by parts "
        f"{dict(sorted(by_parts.items()))} ({units[0]}-{units[1]} units)"
        + (
            f"; every alert {sc.parts} parts: "
            f"{'yes' if set(by_parts) == {sc.parts} else 'NO'}"
            if sc.parts > 1
            else ""
        )
    )
    if rates:
        paced = (
            f"  paced runs: smsgw over {ours.get('latency_connections')} "
            f"connections (window {ours.get('latency_window')})"
        )
        if kannel and "opened" in kannel:
            opened, took, refused, want = kannel["opened"]
            paced += (
                f", Kannel over {opened} persistent connections of {want} asked "
                f"(one request each at most; opened in {took:.1f} s"
                + (f"; the next was not answered: {refused[0]}" if refused else "")
                + ")"
            )
        print(paced)
    if sc.capped:
        for side, fig in (("smsgw", ours), ("Kannel", kannel)):
            if fig is not None:
                what = "SMPP parts" if side == "smsgw" else "delivery reports"
                print(f"  {side} {what} {cap_verdict(fig['settled'], ns.cap)}")
    if kannel:
        print(
            f"  Kannel: delivered {kannel['alerts']}/{ns.count} "
            f"(delivery reports {kannel['dlr_calls']}), sendsms failures "
            f"{kannel['failed']}; the flood driver (wrk -t{kannel['wrk_threads']} "
            f"-c{ns.kannel_concurrency}) used {kannel['driver_cpu_s']:.2f} CPU s, "
            f"this harness (dlr-url server) {kannel['harness_cpu_s']:.2f} CPU s"
        )
        for row in kannel["latency"]:
            print(
                f"  Kannel paced at {row['rate']:,.0f}/s: {row['answered']} "
                f"answered, {row['failed']} failed, max {row['max_ms']:.1f} ms; "
                f"this process (twisted.web client, dlr-url server) "
                f"{row['driver_cpu_s']:.1f} CPU s"
            )
        for line in kannel["wrk_errors"]:
            print(f"  wrk: {line}")


def print_linearity(
    ns: argparse.Namespace,
    rows: list[tuple[int, dict[str, Any], dict[str, Any] | None]],
) -> None:
    print(
        f"linearity, scenario {ns.scenario}: the throughput run at each count, "
        "fresh processes each"
    )
    print(
        f"  {'count':>8}  {'smsgw alerts/s':>14} {'µs/alert':>9} {'RSS MB':>7}"
        f"  {'Kannel alerts/s':>15} {'µs/alert':>9} {'RSS MB':>7}"
    )
    for count, ours, kannel in rows:
        k = kannel or {}
        rss = k["rss_kb"] / 1024 if kannel else None
        print(
            f"  {count:>8,}  {ours['alerts_per_s']:>14,.0f} "
            f"{ours['cpu_us_per_alert']:>9,.0f} {ours['rss_kb'] / 1024:>7.0f}"
            f"  {_fmt('{:,.0f}', k.get('alerts_per_s')):>15} "
            f"{_fmt('{:,.0f}', k.get('cpu_us_per_alert')):>9} "
            f"{_fmt('{:.0f}', rss):>7}"
        )
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        growth = [
            f"smsgw {last[1]['cpu_us_per_alert'] / first[1]['cpu_us_per_alert']:.2f}x"
        ]
        if first[2] and last[2]:
            growth.append(
                "Kannel "
                f"{last[2]['cpu_us_per_alert'] / first[2]['cpu_us_per_alert']:.2f}x"
            )
        print(f"  µs per alert at {last[0]:,} / at {first[0]:,}: " + ", ".join(growth))
    for count, ours, kannel in rows:
        short = [
            f"smsgw {ours['alerts']}/{count}",
            *(
                [f"Kannel {kannel['alerts']}/{count} (failures {kannel['failed']})"]
                if kannel
                else []
            ),
        ]
        print(f"  delivered at {count:,}: " + ", ".join(short))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="short")
    add_rate_arguments(parser, seconds=5.0)
    parser.add_argument(
        "--counts",
        help="linearity: only the throughput run, at each of these counts "
        "(e.g. 10000,50000,100000)",
    )
    parser.add_argument("--smsgw-only", action="store_true", help="leave Kannel out")
    parser.add_argument(
        "--cap",
        type=float,
        default=2000.0,
        help="scenario capped: the simulator's submits/s per bind",
    )
    parser.add_argument(
        "--smsgw-tps",
        type=float,
        help="smsgw's configured carrier tps (default: pipeline.py's, 100000)",
    )
    parser.add_argument(
        "--kannel-concurrency",
        type=int,
        default=64,
        help="wrk's connections (requests outstanding) for the flood; the "
        "latency runs' most connections",
    )
    parser.add_argument(
        "--kannel-threads", type=int, default=1, help="wrk's threads (-t)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for wrk, and then for Kannel's last receipt",
    )
    parser.add_argument("--keep", action="store_true", help="keep Kannel's work dir")
    parser.add_argument("--verbose", action="store_true")
    ns = parser.parse_args()
    counts = [int(c) for c in ns.counts.split(",") if c.strip()] if ns.counts else []
    if not ns.smsgw_only:
        if (
            shutil.which("bearerbox") is None
            and not Path("/usr/sbin/bearerbox").exists()
        ):
            print("Kannel is not installed (apt-get install kannel)", file=sys.stderr)
            return 2
        if shutil.which("wrk") is None:
            print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
            return 2
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    sc = SCENARIOS[ns.scenario]
    # Kannel's boxes inherit the limit: 1,000 sendsms connections each way.
    raise_open_files(2 * max(sc.latency_connections or 0, ns.kannel_concurrency) + 512)
    outcome: dict[str, Any] = {}

    @defer.inlineCallbacks
    def flow() -> Any:
        try:
            if counts:
                rows = []
                for count in counts:
                    ours = yield threads.deferToThread(run_smsgw, ns, sc, count, [])
                    texts = ours.pop("texts")
                    kannel = None
                    if not ns.smsgw_only:
                        kannel = yield run_kannel(ns, sc, texts, ours["parts"], [])
                    rows.append((count, ours, kannel))
                print_linearity(ns, rows)
            else:
                ours = yield threads.deferToThread(
                    run_smsgw, ns, sc, ns.count, ns.rates
                )
                texts = ours.pop("texts")
                kannel = None
                if not ns.smsgw_only:
                    kannel = yield run_kannel(ns, sc, texts, ours["parts"], ns.rates)
                print_table(ns, ns.scenario, ours, kannel, ns.rates)
            outcome["ok"] = True
        except Exception:
            failure.Failure().printTraceback()
        finally:
            reactor.stop()

    reactor.callWhenRunning(flow)
    reactor.addSystemEventTrigger("before", "shutdown", _kill_wrk)
    reactor.run()
    stop(list(_LIVE))
    return 0 if outcome.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
