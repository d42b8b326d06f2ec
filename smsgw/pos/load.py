"""Load generator for the intake port: paced, windowed, pipelined requests.

`run_load` spreads ``count`` requests over ``connections`` connections, with
at most ``window`` outstanding on each. With a ``rate`` the i-th request (from
0) is due ``i / rate`` seconds after the start, so the first goes at once and
a rate of 100/s sends exactly 100 in the first second; requests that fall due
while every window is full go as soon as a slot frees. Pacing uses only the
injected clock's ``callLater``: no sleeps, no wall clock.

`smsgw.pos.txns.make_txn_body` makes realistic transaction bodies for it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from smsgw.intake.envelope import TerminalKey
from smsgw.pos.client import (
    IntakeClientProtocol,
    RequestLost,
    Response,
    ResponseError,
    ResponseTimeout,
)

__all__ = [
    "LoadStats",
    "run_load",
]

# A request due at t0 + i/rate is sent when the clock reads that time; this
# slack (in requests) absorbs float rounding in the timer's arithmetic.
_SLACK = 1e-6


@dataclass(slots=True, eq=False)
class LoadStats:
    """What a load run did so far (live while it runs, final when it fires).

    ``by_status`` counts responses by `Response.outcome` (``accepted``,
    ``duplicate``, error codes, ``pong``, ``untrusted_ack``); ``failures``
    counts requests without a usable response (``response_error``,
    ``timeout``, ``connection_lost``). ``alerts`` sums the ``alerts`` of
    ``accepted`` acks (a duplicate sends none). ``latencies`` holds seconds
    from write to response, in arrival order. ``elapsed`` is seconds since
    the first request could be sent.
    """

    count: int = 0
    sent: int = 0
    answered: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    alerts: int = 0
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    _sorted: list[float] = field(default_factory=list, init=False, repr=False)

    @property
    def failed(self) -> int:
        """Requests that ended without a usable response."""
        return sum(self.failures.values())

    @property
    def outstanding(self) -> int:
        """Requests sent and not yet answered or failed."""
        return self.sent - self.answered - self.failed

    @property
    def rate(self) -> float:
        """Responses per second of ``elapsed`` (0.0 before any time passed)."""
        return self.answered / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, p: float) -> float:
        """The nearest-rank ``p``-th percentile of ``latencies`` in seconds.

        Returns the smallest latency with at least ``p`` percent of them at or
        below it (an observed value, so exact), or 0.0 when there are none.
        Raises ValueError unless 0 < p <= 100.
        """
        if not 0 < p <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {p}")
        if not self.latencies:
            return 0.0
        if len(self._sorted) != len(self.latencies):
            self._sorted = sorted(self.latencies)
        rank = math.ceil(p / 100 * len(self._sorted))
        return self._sorted[max(rank, 1) - 1]

    @property
    def p50(self) -> float:
        """Median latency in seconds (nearest rank; 0.0 when none)."""
        return self.percentile(50)

    @property
    def p90(self) -> float:
        """90th percentile latency in seconds (nearest rank; 0.0 when none)."""
        return self.percentile(90)

    @property
    def p99(self) -> float:
        """99th percentile latency in seconds (nearest rank; 0.0 when none)."""
        return self.percentile(99)

    @property
    def max(self) -> float:
        """Largest latency in seconds (0.0 when none)."""
        return self.percentile(100)


def run_load(
    clock: IReactorTime,
    connect: Callable[[], Deferred[IntakeClientProtocol]],
    *,
    count: int,
    rate: float | None = None,
    connections: int = 1,
    window: int = 10,
    terminal: str,
    key: TerminalKey,
    make_body: Callable[[int], dict[str, Any]],
    progress: Callable[[LoadStats], None] | None = None,
    progress_interval: float = 0.2,
) -> Deferred[LoadStats]:
    """Send ``count`` requests ``make_body(0..count-1)`` as ``terminal``.

    Opens ``connections`` connections with ``connect``, keeps at most
    ``window`` requests outstanding on each, paces them at ``rate`` per second
    (None: as fast as the windows allow), calls ``progress`` with the live
    stats every ``progress_interval`` seconds and once at the end, then
    closes the connections. Returns a Deferred firing with the final
    `LoadStats` (fewer sent than ``count`` when every connection was lost),
    or failing with the first connect error (other connections are closed)
    or an exception raised by ``make_body``. Raises ValueError for a count,
    rate, connections, window or progress_interval out of range.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be > 0 or None, got {rate}")
    if connections < 1:
        raise ValueError(f"connections must be >= 1, got {connections}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not progress_interval > 0:
        raise ValueError(f"progress_interval must be > 0, got {progress_interval}")
    run = _LoadRun(
        clock,
        count,
        rate,
        window,
        terminal,
        key,
        make_body,
        progress,
        progress_interval,
    )
    return run.start(connect, connections)


class _LoadRun:
    """One run's state: the connections, the pacing timer and the stats."""

    def __init__(
        self,
        clock: IReactorTime,
        count: int,
        rate: float | None,
        window: int,
        terminal: str,
        key: TerminalKey,
        make_body: Callable[[int], dict[str, Any]],
        progress: Callable[[LoadStats], None] | None,
        progress_interval: float,
    ) -> None:
        self.clock = clock
        self.rate = rate
        self.window = window
        self.terminal = terminal
        self.key = key
        self.make_body = make_body
        self.progress = progress
        self.progress_interval = progress_interval
        self.stats = LoadStats(count=count)
        self.result: Deferred[LoadStats] = Deferred()
        self.conns: list[IntakeClientProtocol] = []
        self.t0 = 0.0
        self.due = count if rate is None else 0
        self.next_conn = 0
        self.pumping = False
        self.again = False
        self.done = False
        self.timer: IDelayedCall | None = None
        self.reporter: LoopingCall | None = None

    def start(
        self,
        connect: Callable[[], Deferred[IntakeClientProtocol]],
        connections: int,
    ) -> Deferred[LoadStats]:
        attempts = [connect() for _ in range(connections)]
        DeferredList(attempts, consumeErrors=True).addCallback(self._connected)
        return self.result

    def _connected(
        self,
        outcomes: list[tuple[bool, Any]],  # (True, protocol) or (False, Failure)
    ) -> None:
        protos = [p for ok, p in outcomes if ok and isinstance(p, IntakeClientProtocol)]
        errors = [f for ok, f in outcomes if not ok and isinstance(f, Failure)]
        if errors:
            for proto in protos:
                proto.close()
            self.done = True
            self.result.errback(errors[0])
            return
        self.conns = protos
        self.t0 = self.clock.seconds()
        if self.progress is not None:
            self.reporter = LoopingCall(self._report)
            self.reporter.clock = self.clock
            self.reporter.start(self.progress_interval, now=False)
        if self.rate is not None:
            self._tick()
        else:
            self._pump()

    def _tick(self) -> None:
        """Release every request due by now and wake up for the next one."""
        self.timer = None
        rate = self.rate
        assert rate is not None
        count = self.stats.count
        now = self.clock.seconds()
        self.due = min(count, math.floor((now - self.t0) * rate + _SLACK) + 1)
        self._pump()
        if self.due < count and not self.done:
            delay = max(0.0, self.t0 + self.due / rate - now)
            self.timer = self.clock.callLater(delay, self._tick)

    def _pump(self) -> None:
        """Send while requests are due and a window has room (not re-entrant:
        a response arriving inside a send is handled by the loop)."""
        if self.done:
            return
        if self.pumping:
            self.again = True
            return
        self.pumping = True
        try:
            stats = self.stats
            while True:
                self.again = False
                while stats.sent < self.due and not self.done:
                    conn = self._free_connection()
                    if conn is None:
                        break
                    self._send(conn)
                if not self.again:
                    break
        finally:
            self.pumping = False
        self._check_done()

    def _free_connection(self) -> IntakeClientProtocol | None:
        conns = self.conns
        n = len(conns)
        for k in range(n):
            i = (self.next_conn + k) % n
            conn = conns[i]
            if conn.open and conn.outstanding < self.window:
                self.next_conn = i + 1
                return conn
        return None

    def _send(self, conn: IntakeClientProtocol) -> None:
        stats = self.stats
        try:
            body = self.make_body(stats.sent)
        except Exception:
            self._finish(Failure())
            return
        stats.sent += 1
        d = conn.send(body, terminal=self.terminal, key=self.key)
        d.addCallbacks(self._answered, self._failed)

    def _answered(self, response: Response) -> None:
        stats = self.stats
        stats.answered += 1
        outcome = response.outcome
        stats.by_status[outcome] += 1
        if outcome == "accepted":
            alerts = response.body.get("alerts")
            if isinstance(alerts, int):
                stats.alerts += alerts
        stats.latencies.append(response.latency)
        self._pump()

    def _failed(self, failure: Failure) -> None:
        if failure.check(ResponseTimeout):
            reason = "timeout"
        elif failure.check(RequestLost):
            reason = "connection_lost"
        elif failure.check(ResponseError):
            reason = "response_error"
        else:
            reason = failure.type.__name__ if failure.type else "error"
        self.stats.failures[reason] += 1
        self._pump()

    def _check_done(self) -> None:
        stats = self.stats
        if self.done or stats.outstanding:
            return
        if stats.sent >= stats.count or not any(c.open for c in self.conns):
            self._finish(None)

    def _report(self) -> None:
        assert self.progress is not None
        self.stats.elapsed = self.clock.seconds() - self.t0
        self.progress(self.stats)

    def _finish(self, failure: Failure | None) -> None:
        if self.done:
            return
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.reporter is not None and self.reporter.running:
            self.reporter.stop()
        self.stats.elapsed = self.clock.seconds() - self.t0
        if failure is None and self.progress is not None:
            self.progress(self.stats)
        for conn in self.conns:
            conn.close()
        if failure is None:
            self.result.callback(self.stats)
        else:
            self.result.errback(failure)
