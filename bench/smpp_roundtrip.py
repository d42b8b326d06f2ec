"""submit_sm -> submit_sm_resp round trips per second through our ESME session
against our SMSC simulator, in separate processes on loopback.

    .venv/bin/python bench/smpp_roundtrip.py [--windows 1,10,100] [--seconds 5]
        [--via session|sender]

For each window the simulator is started as its own process
(``smsgw smsc --listen tcp:0:interface=127.0.0.1 --port-file F --no-receipts``),
this process binds one transceiver to it and keeps the window full for the
given time. It prints round trips/s and the CPU seconds each process used, and
stops the simulator by its PID. A benchmark, run by hand; not a test.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from smsgw.codec import pdu as P
from smsgw.session.esme import EsmeSession, SessionSettings

ROOT = Path(__file__).resolve().parents[1]


def start_simulator(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port_file = tmp / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smsgw.cli",
            "smsc",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--port-file",
            str(port_file),
            "--no-receipts",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return proc, int(port_file.read_text())
        if proc.poll() is not None:
            raise SystemExit(f"simulator exited with {proc.returncode}")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("simulator did not start within 20 s")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@defer.inlineCallbacks
def run_window(port: int, window: int, seconds: float, via: str):  # type: ignore[no-untyped-def]
    settings = SessionSettings(
        system_id="smsgw",
        password="secret",
        window=window,
        response_timeout=30,
        enquire_interval=300,
        name="bench",
    )
    session = EsmeSession(settings, reactor)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    yield connectProtocol(endpoint, session)
    yield session.bind()
    pdu = P.SubmitSm(
        source_addr="95588",
        destination_addr="8613800138000",
        registered_delivery=0,
        short_message=b"Card *1234 used for CNY 100.00 at STARBUCKS on 29Nov 12:00",
    )
    done = {"n": 0, "running": True}

    if via == "sender":
        from smsgw.carrier.sender import CarrierSender

        class _OneBind:
            """Stands in for a Bind: the one bound session of this benchmark."""

            def __init__(self) -> None:
                self.name = "bench"
                self.tx = session
                self.bound = True
                self.ready_listeners: list[object] = []

        sender = CarrierSender(
            "bench",
            [_OneBind()],  # type: ignore[list-item]
            reactor,
            tps=1e9,
            queue_limit=window * 4,
        )
        session.window_listeners.append(sender.pump)

        def answered(_: object) -> None:
            done["n"] += 1
            if done["running"]:
                sender.submit(pdu).addCallback(answered)

        for _ in range(window * 2):
            sender.submit(pdu).addCallback(answered)
    else:

        def answered(_: object) -> None:
            done["n"] += 1

        def fill() -> None:
            while done["running"] and session.window_free > 0:
                session.send(pdu).addCallback(answered)

        session.window_listeners.append(fill)
        fill()

    start_n, start = done["n"], time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    yield task.deferLater(reactor, seconds, lambda: None)
    elapsed = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    n = done["n"] - start_n
    done["running"] = False
    yield task.deferLater(reactor, 0.5, lambda: None)
    yield session.unbind(timeout=5)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return n / elapsed, cpu / elapsed


@defer.inlineCallbacks
def main(argv: list[str]):  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", default="1,10,100")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--via", choices=("session", "sender"), default="session")
    args = parser.parse_args(argv)
    print(f"{'window':>6} {'round trips/s':>14} {'ESME CPU':>9} {'SMSC CPU':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for w in (int(x) for x in args.windows.split(",")):
            proc, port = start_simulator(Path(tmp))
            try:
                sim_cpu0 = process_cpu(proc.pid)
                t0 = time.perf_counter()
                rate, cpu = yield run_window(port, w, args.seconds, args.via)
                sim_cpu = (process_cpu(proc.pid) - sim_cpu0) / (
                    time.perf_counter() - t0
                )
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
                (Path(tmp) / "port").unlink(missing_ok=True)
            print(f"{w:>6} {rate:>14,.0f} {cpu:>8.0%} {sim_cpu:>9.0%}")


if __name__ == "__main__":

    def _run() -> None:
        d = main(sys.argv[1:])
        d.addErrback(lambda f: (f.printTraceback(), None))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(_run)
    reactor.run()
