"""Queued benchmark: 100,000 alerts queued while the SMSC is unreachable.

Runs by hand (not a test):

    .venv/bin/python bench/queued.py [--count 100000] [--json FILE]
        [--max-in-flight N] [--writer process|thread] [--commit-batch 500]
        [--settle 5] [--keep]

Issue 7's target: "Peak RSS <= 150 MB with 100,000 alerts queued (the SMSC
unreachable); the queue drains in order once it returns."

1. Starts the gateway (``twistd -n smsgw``, the config of
   ``bench/pipeline.py``: durable SQLite written by its store process) with
   one carrier whose SMPP port is reserved here (bound, never listened on:
   every connect is refused).
2. Sends ``--count`` signed transactions (one alert each) over
   ``--connections`` pipelined intake connections; every one must be acked
   ``accepted``.
3. Reports the memory of the twistd process and of its store process
   (``python -m smsgw.store.remote``), each and summed: VmHWM (peak), VmRSS
   (now) split into anonymous (heap) and file-backed (shared libraries,
   counted again in each process) pages, and PSS (shared pages divided
   among the processes using them). Taken idle before the load (the import
   baseline), right after the last ack, ``--settle`` seconds later (the
   queued state) and once drained; plus how many alerts the dispatcher
   holds in memory (``smsgw_dispatch_held`` from ``/metrics``).
4. Starts the SMSC simulator on the reserved port, waits until every alert
   is delivered (read-only polls of the SQLite file) and reports the drain
   time and rate from the bind. The order check ranks alerts by acceptance
   (rowid) and by when their first part was recorded submitted
   (``parts.submitted_at``); an alert is "overtaken" by each alert expected
   after it but submitted before it. Checked against the plain accept order
   (for information: urgent alerts, priority 1, are designed to overtake
   normal ones) and within each priority class, where the order is the
   promise: overtaking within one SMPP window (``--smpp-window``) is
   acceptable.
5. Stops the gateway (SIGTERM) and the simulator by PID and checks the
   store process ended too. Prints a summary (and ``--json``); exits 1 when
   the run itself went wrong (not every transaction accepted or alert
   delivered, a bind while the SMSC was meant to be away, a process left).

Timing figures are indicative when other work shares the cores; the RSS
figures are what this benchmark is for.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import (  # a sibling script, not a package
    BIN,
    CONFIG,
    KEY_HEX,
    add_load_arguments,
    cpu_seconds,
    db_upgrade,
    free_port,
    load,
    plugin_env,
    proc_status,
    start_simulator,
    wait_port,
)

from smsgw.pos.load import LoadStats
from smsgw.runtime import tune_gc
from smsgw.store import schema as S

TARGET_MB = 150.0

_UNFINISHED = (
    f"select 1 from alerts where status in ('{S.QUEUED}', '{S.SUBMITTED}') limit 1"
)


def kb(value: str) -> int:
    """``"123 kB"`` (a /proc status field) -> 123."""
    return int(value.split()[0])


def children(pid: int) -> list[int]:
    return [
        int(child)
        for task_dir in Path(f"/proc/{pid}/task").iterdir()
        for child in (task_dir / "children").read_text().split()
    ]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return proc_status(pid).get("State", "Z").split()[0] != "Z"
    except OSError:
        return False


def rss(pid: int) -> dict[str, int]:
    """The resident set of ``pid`` in kB: peak (VmHWM), now (VmRSS), now's
    anonymous and file-backed shares (RssAnon: the heap; RssFile: mapped
    code, mostly shared libraries, counted again in every process using
    them) and its PSS (shared pages divided among their users)."""
    if pid == 0:  # no store process (database.writer: thread)
        return dict.fromkeys(("hwm_kb", "rss_kb", "anon_kb", "file_kb", "pss_kb"), 0)
    st = proc_status(pid)
    out = {
        "hwm_kb": kb(st["VmHWM"]),
        "rss_kb": kb(st["VmRSS"]),
        "anon_kb": kb(st["RssAnon"]),
        "file_kb": kb(st["RssFile"]),
    }
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            out["pss_kb"] = kb(line.split(":", 1)[1])
    return out


def cpu(pid: int) -> float:
    return cpu_seconds(pid) if pid else 0.0


def metrics(port: int) -> dict[str, float]:
    """The gateway's /metrics: unlabelled samples by name, labelled ones as
    ``name{labels}``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def order_check(rows: list[tuple[int, float]]) -> dict[str, Any]:
    """How far submission strayed from an expected order.

    ``rows``: (expected rank, submitted_at) per alert, in any order. An alert
    is overtaken by each alert expected after it but submitted before it; its
    lateness is how many did. Returns the alerts overtaken, those overtaken by
    more than 100 and 1000, the worst lateness and the inversions (the sum).
    """
    by_submit = sorted(rows, key=lambda r: (r[1], r[0]))
    n = len(rows)
    dense = {rank: i for i, rank in enumerate(sorted(r[0] for r in rows))}
    tree = [0] * (n + 1)  # Fenwick tree: expected ranks submitted so far
    late: list[int] = []
    for seen, (rank, _) in enumerate(by_submit):
        i = dense[rank] + 1
        before = 0  # submitted so far and expected before this one
        j = i
        while j > 0:
            before += tree[j]
            j -= j & -j
        late.append(seen - before)
        while i <= n:
            tree[i] += 1
            i += i & -i
    return {
        "alerts": n,
        "overtaken": sum(1 for x in late if x > 0),
        "overtaken_gt_100": sum(1 for x in late if x > 100),
        "overtaken_gt_1000": sum(1 for x in late if x > 1000),
        "max_lateness": max(late, default=0),
        "inversions": sum(late),
    }


def submit_order(db: Path, held: set[int]) -> dict[str, Any]:
    """The order checks; ``held``: rowids of the alerts the dispatcher held in
    memory while the SMSC was away (the rest waited unclaimed in the store)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as c:
        rows = [
            (int(rowid), int(prio), float(at))
            for rowid, prio, at in c.execute(
                "select a.rowid, a.priority, min(p.submitted_at) from alerts a "
                "join parts p on p.alert_id = a.id group by a.id"
            )
        ]
        statuses = dict(
            c.execute("select status, count(*) from alerts group by status")
        )
    # The dispatcher's design: urgent (priority 1) alerts go before normal
    # ones that are due, so the order is promised within each class only.
    return {
        "statuses": statuses,
        "urgent": sum(1 for r in rows if r[1]),
        "held": len(held),
        "accept_order": order_check([(r[0], r[2]) for r in rows]),
        "within_normal": order_check([(r[0], r[2]) for r in rows if not r[1]]),
        "within_urgent": order_check([(r[0], r[2]) for r in rows if r[1]]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser, count=100_000)
    parser.add_argument("--commit-batch", type=int, default=500)
    parser.add_argument(
        "--writer",
        choices=("process", "thread"),
        default="process",
        help="database.writer: a store process (the default) or a thread",
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        help="dispatch.max_in_flight (default: the gateway's, 20,000)",
    )
    parser.add_argument(
        "--reconnect-max",
        type=float,
        default=5.0,
        help="the carrier's reconnect_max: the longest wait between connects "
        "(the gateway's default is 60 s; the drain is timed from the bind anyway)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="seconds to wait after the last ack before reading the queued RSS",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=1800.0, help="give up after this"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", metavar="FILE", help="also write the figures")
    ns = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="smsgw-queued-"))
    intake, admin = free_port(), free_port()
    # The SMPP port: bound (so nobody else takes it) but never listened on,
    # so the gateway's connects are refused until the simulator takes it.
    reserved = socket.socket()
    reserved.bind(("127.0.0.1", 0))
    smpp = int(reserved.getsockname()[1])
    try:
        # bench/pipeline.py's config; placeholders it no longer has are ignored.
        config = CONFIG.format(
            intake=intake,
            smpp=smpp,
            key=KEY_HEX,
            window=ns.smpp_window,
            binds=1,
            routes="+",
            linger=0.0,
            batch=ns.commit_batch,
            tps=100000,
            templates="",
        )
    except KeyError as e:
        raise SystemExit(
            f"bench/pipeline.py's CONFIG has a placeholder {e} this script "
            "does not fill: add it to the CONFIG.format call in bench/queued.py"
        ) from None
    config = config.replace(
        'admin: {listen: "tcp:0:', f'admin: {{listen: "tcp:{admin}:'
    ).replace("    routes:", f"    reconnect_max: {ns.reconnect_max}\n    routes:")
    if ns.max_in_flight is not None:
        config = config.replace(
            "dispatch: {node: bench}",
            f"dispatch: {{node: bench, max_in_flight: {ns.max_in_flight}}}",
        )
    if ns.writer != "process":
        config = config.replace("database:\n", f"database:\n  writer: {ns.writer}\n")
    assert f"tcp:{admin}:" in config
    assert "reconnect_max" in config
    (work / "smsgw.yaml").write_text(config)
    env = plugin_env()
    db_upgrade(work, env)
    db = work / "data" / "smsgw.db"
    results: dict[str, Any] = {"count": ns.count, "work": str(work)}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    store_pid = 0
    t_start = time.monotonic()
    gw = subprocess.Popen(
        [BIN / "twistd", "-n", "--pidfile=", "smsgw", "--config", "smsgw.yaml"],
        cwd=work,
        env=env,
        stdout=(work / "gateway.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    procs["gateway"] = gw
    try:
        wait_port(intake, 60)
        wait_port(admin, 30)
        results["start_s"] = time.monotonic() - t_start
        time.sleep(2.0)  # start-up done, a few connects refused
        stores = children(gw.pid)
        if len(stores) != (1 if ns.writer == "process" else 0):
            raise SystemExit(f"unexpected store processes: {stores}")
        store_pid = stores[0] if stores else 0
        results["idle"] = {"gateway": rss(gw.pid), "store": rss(store_pid)}
        m = metrics(admin)
        results["idle_binds_up"] = m.get('smsgw_binds_up{carrier="sim"}')
        results.update(drive(ns, intake, admin, db, gw.pid, store_pid, reserved, work))
        results["procs"] = {"gateway": gw.pid, "store": store_pid}
        if "smsc" in results:
            procs["smsc"] = results.pop("smsc")
    finally:
        reserved.close()
        results["stop"] = stop(procs, store_pid)
    log_text = (work / "gateway.log").read_text(errors="replace")
    results["log_problems"] = [
        line
        for line in log_text.splitlines()
        if any(w in line for w in ("Traceback", "Error", "error", "CRITICAL"))
    ][:20]
    report(ns, results)
    problems = verdicts(ns, results)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if ns.json:
        Path(ns.json).write_text(json.dumps(results, indent=1, default=str))
    if not ns.keep:
        for path in sorted(work.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        work.rmdir()
    return 1 if problems else 0


def verdicts(ns: argparse.Namespace, r: dict[str, Any]) -> list[str]:
    """What makes this run's figures unusable (not the RSS target)."""
    out = []
    acks = r.get("load", {}).get("by_status", {})
    if acks.get("accepted", 0) != ns.count:
        out.append(f"not every transaction was acked accepted: {acks}")
    statuses = r.get("order", {}).get("statuses", {})
    if statuses.get(S.DELIVERED, 0) != r.get("drain", {}).get("alerts", -1):
        out.append(f"not every alert was delivered: {statuses}")
    if r.get("idle_binds_up") or r.get("queued", {}).get("binds_up"):
        out.append("a bind was up while the SMSC was meant to be unreachable")
    if r.get("stop", {}).get("store_left_running"):
        out.append("the store process outlived the gateway (killed by its PID)")
    return out


def drive(
    ns: argparse.Namespace,
    intake: int,
    admin: int,
    db: Path,
    gw_pid: int,
    store_pid: int,
    reserved: socket.socket,
    work: Path,
) -> dict[str, Any]:
    """The load, the queued phase and the drain, on this process's reactor."""
    out: dict[str, Any] = {}
    samples: list[tuple[float, int, int]] = []  # (t, gateway rss kB, store rss kB)

    def sample() -> None:
        with suppress(OSError):
            samples.append(
                (
                    time.monotonic() - t0,
                    rss(gw_pid)["rss_kb"],
                    rss(store_pid)["rss_kb"],
                )
            )

    t0 = time.monotonic()

    @defer.inlineCallbacks
    def run() -> Any:
        try:
            sampler = task.LoopingCall(sample)
            sampler.start(0.5)
            cpu0 = cpu(gw_pid), cpu(store_pid)
            t_load = time.monotonic()
            stats: LoadStats = yield load(
                intake, ns.count, ns.connections, ns.window, None, "queued", "mixed"
            )
            out["load"] = {
                "by_status": dict(stats.by_status),
                "failures": dict(stats.failures),
                "alerts": stats.alerts,
                "acked_s": time.monotonic() - t_load,
                "cpu_s": [
                    cpu(gw_pid) - cpu0[0],
                    cpu(store_pid) - cpu0[1],
                ],
            }
            out["after_load"] = {"gateway": rss(gw_pid), "store": rss(store_pid)}
            yield task.deferLater(reactor, ns.settle, lambda: None)
            m = metrics(admin)
            with closing(
                sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
            ) as c:
                queued = dict(
                    c.execute("select status, count(*) from alerts group by status")
                )
                held = {
                    int(rowid)
                    for (rowid,) in c.execute(
                        "select rowid from alerts where claimed_by is not null "
                        "and status = 'queued'"
                    )
                }
            out["queued"] = {
                "gateway": rss(gw_pid),
                "store": rss(store_pid),
                "held": m.get("smsgw_dispatch_held"),
                "unconfirmed": m.get("smsgw_dispatch_unconfirmed"),
                "store_pending": m.get("smsgw_store_pending"),
                "carrier_queued": m.get('smsgw_carrier_queued{carrier="sim"}'),
                "binds_up": m.get('smsgw_binds_up{carrier="sim"}'),
                "db_statuses": queued,
                "db_claimed": len(held),
                "db_bytes": sum(
                    p.stat().st_size for p in db.parent.glob(db.name + "*")
                ),
            }
            # The SMSC comes back on the reserved port.
            smpp = int(reserved.getsockname()[1])
            reserved.close()
            t_smsc = time.monotonic()
            smsc = start_simulator(work, smpp)
            out["smsc"] = smsc
            cpu1 = cpu(gw_pid), cpu(store_pid)
            while metrics(admin).get('smsgw_binds_up{carrier="sim"}', 0) < 1:
                if time.monotonic() - t_smsc > 120:
                    raise RuntimeError("no bind 120 s after the simulator started")
                yield task.deferLater(reactor, 0.05, lambda: None)
            t_bind = time.monotonic()
            held_max = 0.0
            last_probe = 0.0
            with closing(
                sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
            ) as c:
                while c.execute(_UNFINISHED).fetchone():
                    if time.monotonic() - t_bind > ns.drain_timeout:
                        raise RuntimeError("the queue did not drain in time")
                    if time.monotonic() - last_probe > 1.0:
                        last_probe = time.monotonic()
                        held_max = max(
                            held_max, metrics(admin).get("smsgw_dispatch_held", 0)
                        )
                    yield task.deferLater(reactor, 0.05, lambda: None)
            t_done = time.monotonic()
            with closing(
                sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
            ) as c:
                alerts = int(c.execute("select count(*) from alerts").fetchone()[0])
            sampler.stop()
            out["drain"] = {
                "bind_after_s": t_bind - t_smsc,
                "drain_s": t_done - t_bind,
                "from_smsc_s": t_done - t_smsc,
                "alerts": alerts,
                "alerts_per_s": alerts / (t_done - t_bind),
                "held_max_sampled": held_max,
                "cpu_s": [
                    cpu(gw_pid) - cpu1[0],
                    cpu(store_pid) - cpu1[1],
                ],
            }
            out["end"] = {"gateway": rss(gw_pid), "store": rss(store_pid)}
            out["order"] = submit_order(db, held)
            out["samples"] = samples
        finally:
            reactor.stop()

    errors: list[Any] = []
    reactor.callWhenRunning(lambda: run().addErrback(errors.append))
    tune_gc()  # the load generator: as `smsgw pos` does
    reactor.run()
    if errors:
        smsc = out.get("smsc")
        if smsc is not None:
            smsc.terminate()
            smsc.wait(30)
        errors[0].raiseException()
    return out


def stop(procs: dict[str, subprocess.Popen[bytes]], store_pid: int) -> dict[str, Any]:
    """SIGTERM the gateway, then the simulator; check nothing is left."""
    out: dict[str, Any] = {}
    gw = procs.get("gateway")
    if gw is not None and gw.poll() is None:
        t = time.monotonic()
        gw.send_signal(signal.SIGTERM)
        try:
            out["gateway_rc"] = gw.wait(60)
        except subprocess.TimeoutExpired:
            gw.kill()
            out["gateway_rc"] = f"killed after 60 s: {gw.wait(10)}"
        out["gateway_stop_s"] = time.monotonic() - t
    smsc = procs.get("smsc")
    if smsc is not None and smsc.poll() is None:
        smsc.terminate()
        try:
            out["smsc_rc"] = smsc.wait(30)
        except subprocess.TimeoutExpired:
            smsc.kill()
            out["smsc_rc"] = f"killed: {smsc.wait(10)}"
    if store_pid:
        end = time.monotonic() + 10
        while alive(store_pid) and time.monotonic() < end:
            time.sleep(0.1)
        out["store_left_running"] = alive(store_pid)
        if out["store_left_running"]:
            os.kill(store_pid, signal.SIGTERM)
    return out


def report(ns: argparse.Namespace, r: dict[str, Any]) -> None:
    print(
        f"queued: {ns.count:,} txns over {ns.connections} connections "
        f"(window {ns.window} each), SMSC unreachable, SQLite WAL synchronous=FULL, "
        f"database.writer {ns.writer}, dispatch.max_in_flight "
        f"{ns.max_in_flight or 'default (20000)'}"
    )
    print(f"  gateway up after {r.get('start_s', 0):.1f} s")
    load_ = r.get("load")
    if load_:
        print(
            f"  acks: {load_['by_status']} failures: {load_['failures']} "
            f"alerts: {load_['alerts']:,} in {load_['acked_s']:.1f} s "
            f"({ns.count / load_['acked_s']:,.0f} txns/s); CPU gateway "
            f"{load_['cpu_s'][0]:.1f} s, store {load_['cpu_s'][1]:.1f} s"
        )
    print(
        "RSS in MB (peak: VmHWM so far; now: VmRSS = anon (heap) + file "
        "(mapped code, shared); PSS: shared pages divided among processes):"
    )
    fields = ("hwm_kb", "rss_kb", "anon_kb", "file_kb", "pss_kb")
    print(f"  {'':26} {'':8} {'peak':>7} {'now':>7} {'anon':>7} {'file':>7} {'PSS':>7}")
    for key, label in (
        ("idle", "idle, before the load"),
        ("after_load", "right after the last ack"),
        ("queued", f"queued, {ns.settle:g} s later"),
        ("end", "drained"),
    ):
        snap = r.get(key)
        if not snap:
            continue
        rows = [
            ("gateway", [snap["gateway"].get(f, 0) for f in fields]),
            ("store", [snap["store"].get(f, 0) for f in fields]),
        ]
        rows.append(
            ("sum", [a + b for a, b in zip(rows[0][1], rows[1][1], strict=True)])
        )
        for n, (who, values) in enumerate(rows):
            cells = " ".join(f"{v / 1024:7.1f}" for v in values)
            print(f"  {label if n == 0 else '':26} {who:8} {cells}")
    q = r.get("queued")
    if q:
        peak = q["gateway"]["hwm_kb"] + q["store"]["hwm_kb"]
        verdict = "met" if peak / 1024 <= TARGET_MB else "NOT met"
        print(
            f"  peak RSS with {ns.count:,} queued (gateway + store process): "
            f"{peak / 1024:.1f} MB (target <= {TARGET_MB:.0f} MB: {verdict}); "
            f"PSS now {(q['gateway']['pss_kb'] + q['store']['pss_kb']) / 1024:.1f} MB"
        )
        end = r.get("end")
        if end:
            whole = end["gateway"]["hwm_kb"] + end["store"]["hwm_kb"]
            print(
                f"  peak RSS over the whole run, drain included: {whole / 1024:.1f} MB"
            )
        print(
            f"  dispatcher holds {q['held']:,.0f} alerts in memory; unconfirmed "
            f"{q['unconfirmed']:.0f}, store pending {q['store_pending']:.0f}, "
            f"carrier queue {q['carrier_queued']:.0f}, binds up {q['binds_up']:.0f}"
        )
        print(
            f"  store: {q['db_statuses']}, claimed {q['db_claimed']:,}, "
            f"files {q['db_bytes'] / 1e6:.1f} MB"
        )
    d = r.get("drain")
    if d:
        print(
            f"drain: bind {d['bind_after_s']:.1f} s after the simulator started; "
            f"all delivered {d['drain_s']:.1f} s after the bind = "
            f"{d['alerts_per_s']:,.0f} alerts/s; CPU gateway {d['cpu_s'][0]:.1f} s, "
            f"store {d['cpu_s'][1]:.1f} s; held at most {d['held_max_sampled']:,.0f} "
            "(sampled each second)"
        )
    o = r.get("order")
    if o:
        print(
            f"order (statuses {o['statuses']}; urgent alerts {o['urgent']:,}; "
            "overtaken: an alert accepted later was submitted first; urgent "
            "alerts go before normal ones by design, so the order is promised "
            "within each class):"
        )
        for key, label in (
            ("accept_order", "vs accept order"),
            ("within_normal", "normal alerts among themselves"),
            ("within_urgent", "urgent alerts among themselves"),
        ):
            c = o[key]
            within = (
                "all within one SMPP window"
                if c["max_lateness"] <= ns.smpp_window
                else "BEYOND one SMPP window"
            )
            print(
                f"  {label:32} {c['overtaken']:>7,} of {c['alerts']:,} overtaken, "
                f"{c['overtaken_gt_100']:,} by > 100, {c['overtaken_gt_1000']:,} "
                f"by > 1000; worst by {c['max_lateness']:,} ({within}); "
                f"{c['inversions']:,} inversions"
            )
    st = r.get("stop", {})
    print(
        f"stop: gateway rc {st.get('gateway_rc')} in {st.get('gateway_stop_s', 0):.1f}"
        f" s (-15: twistd re-raises SIGTERM after an orderly stop), simulator rc "
        f"{st.get('smsc_rc')}, store process left running: "
        f"{st.get('store_left_running', 'n/a')}"
    )
    if r.get("log_problems"):
        print("gateway log lines that look like problems (first 20):")
        for line in r["log_problems"]:
            print(f"  {line[:200]}")


if __name__ == "__main__":
    sys.exit(main())
