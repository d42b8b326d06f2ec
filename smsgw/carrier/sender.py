"""Submitting parts over a carrier's binds within each bind's tps and window.

``CarrierSender.submit(pdu)`` queues one submit_sm and fires with a
``SubmitOutcome`` once the SMSC has answered it for good. The sender pumps the
queue into whichever bind has a token and room in its window, in order.

- ESME_RTHROTTLED / ESME_RMSGQFUL: the part goes back to the head of the queue
  and is sent again at the next token; the bind's adaptive rate decides
  whether to slow down. The bind never pauses (unlike Kannel's one-second
  stall per throttle answer).
- Connection lost with the part in flight: it goes back to the head of the
  queue at once and is resent on the next bound session (the same bind after
  reconnect, or another bind).
- Response timeout: reported to the caller (the SMSC may have accepted it, so
  only the caller, who knows the message, may decide to resend).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from smsgw.carrier.bind import Bind
from smsgw.codec import pdu as P
from smsgw.codec.constants import Status, status_name
from smsgw.session.esme import ResponseTimeout, SessionClosed, SessionError
from smsgw.session.throttle import (
    AdaptiveRate,
    AdaptiveSettings,
    TokenBucket,
    burst_for,
)
from smsgw.stats import RESP_SECONDS, Histogram

THROTTLE_STATUSES = frozenset({Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL})


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    """How the SMSC answered one submit_sm, in the end.

    ``status`` is the SMPP command_status (0 accepted), or None when there
    is no SMPP answer; then ``error`` names why (``timeout``, ``expired``,
    ``stopped``, ``connection lost``).
    """

    status: int | None
    message_id: str | None
    bind: str | None
    attempts: int
    error: str | None = None

    @property
    def accepted(self) -> bool:
        """True when the SMSC took the part and gave it an id."""
        return self.status == Status.ESME_ROK and self.error is None


class QueueFull(Exception):
    """The sender holds as many parts as it may; the caller keeps the rest."""


class _Item:
    __slots__ = (
        "attempts",
        "d",
        "deadline",
        "order",
        "pdu",
        "resends",
        "sent_at",
        "throttles",
    )

    def __init__(
        self,
        pdu: P.SubmitSm,
        d: defer.Deferred[SubmitOutcome],
        deadline: float | None,
        order: int,
    ) -> None:
        self.pdu = pdu
        self.d = d
        self.deadline = deadline
        self.order = order
        self.attempts = 0  # times sent
        self.sent_at = 0.0  # clock time of the latest send
        self.throttles = 0  # answered ESME_RTHROTTLED / ESME_RMSGQFUL
        self.resends = 0  # lost in flight with the connection


class _Lane:
    """Flow-control state of one bind."""

    __slots__ = ("adaptive", "bind", "bucket")

    def __init__(
        self, bind: Bind, tps: float, now: float, tuning: AdaptiveSettings
    ) -> None:
        self.bind = bind
        self.bucket = TokenBucket(tps, burst_for(tps), now)
        self.adaptive = AdaptiveRate(tps, now, tuning)


class CarrierSender:
    """Queues submits for one carrier and feeds them to its binds."""

    log = Logger()

    def __init__(
        self,
        name: str,
        binds: list[Bind],
        clock: IReactorTime,
        *,
        tps: float,
        queue_limit: int = 10_000,
        max_throttle_retries: int = 20,
        max_resends: int = 3,
        adaptive: AdaptiveSettings | None = None,
    ) -> None:
        self.name = name
        self.clock = clock
        now = clock.seconds()
        tuning = adaptive or AdaptiveSettings()
        self.lanes = [_Lane(b, tps, now, tuning) for b in binds]
        self.queue: deque[_Item] = deque()
        self._returned: list[_Item] = []  # answered "try again": back to the head
        self._order = 0
        self.queue_limit = queue_limit
        self.max_throttle_retries = max_throttle_retries
        self.max_resends = max_resends
        self._timer: IDelayedCall | None = None
        self._next = 0  # round-robin start
        self._pumping = False
        self._stopped = False
        self.submitted = 0
        self.latency = Histogram(RESP_SECONDS)  # submit_sm -> its resp
        self.accepted = 0
        self.throttled = 0
        self.resent = 0
        for lane in self.lanes:
            lane.bind.ready_listeners.append(self.pump)

    # ------------------------------------------------------------------

    @property
    def bound(self) -> int:
        """How many binds can submit now."""
        return sum(1 for lane in self.lanes if lane.bind.bound)

    @property
    def room(self) -> int:
        """How many more parts ``submit`` accepts before QueueFull."""
        return max(0, self.queue_limit - len(self.queue))

    def submit(
        self, pdu: P.SubmitSm, deadline: float | None = None
    ) -> defer.Deferred[SubmitOutcome]:
        """Queue one part; fire with its outcome. Raises QueueFull.

        ``deadline`` (clock seconds): a part still unsent then is answered
        ``expired`` instead of being sent late.
        """
        if self._stopped:
            return defer.succeed(SubmitOutcome(None, None, None, 0, "stopped"))
        if len(self.queue) >= self.queue_limit:
            raise QueueFull(f"{len(self.queue)} parts queued for {self.name}")
        d: defer.Deferred[SubmitOutcome] = defer.Deferred()
        self._order += 1
        self.queue.append(_Item(pdu, d, deadline, self._order))
        self.pump()
        return d

    def stop(self) -> None:
        """Answer every queued part, and any submitted later, ``stopped``."""
        self._stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._requeue()
        queue, self.queue = self.queue, deque()
        for item in queue:
            item.d.callback(SubmitOutcome(None, None, None, item.attempts, "stopped"))

    # ------------------------------------------------------------------

    def _requeue(self) -> None:
        """Put parts answered "try again" back in their original order.

        The queue is kept sorted by submission order: returned parts are
        older than anything never sent, but may interleave with parts
        returned earlier that wait at the head.
        """
        returned, self._returned = self._returned, []
        if not returned:
            return
        queue = self.queue
        newest = max(item.order for item in returned)
        while queue and queue[0].order < newest:
            returned.append(queue.popleft())
        returned.sort(key=lambda item: item.order)
        queue.extendleft(reversed(returned))

    def pump(self) -> None:
        """Send queued parts while some bind has a token and window room."""
        if self._returned:
            self._requeue()
        if self._pumping or not self.queue:
            return
        self._pumping = True
        try:
            self._pump()
        finally:
            self._pumping = False

    def _pump(self) -> None:
        queue = self.queue
        lanes = self.lanes
        n = len(lanes)
        now = self.clock.seconds()
        wait: float | None = None
        start = self._next
        self._expire_head(now)
        progress = True
        while queue and progress:
            progress = False
            for k in range(n):
                if not queue:
                    break
                lane = lanes[(start + k) % n]
                session = lane.bind.tx
                if session is None:
                    continue
                free = session.window_free
                if free <= 0:
                    continue
                bucket = lane.bucket
                while free > 0 and queue:
                    item = queue[0]
                    if item.deadline is not None and now > item.deadline:
                        queue.popleft()
                        outcome = SubmitOutcome(
                            None, None, None, item.attempts, "expired"
                        )
                        item.d.callback(outcome)
                        continue
                    if not bucket.take(now):
                        delay = bucket.delay(now)
                        wait = delay if wait is None else min(wait, delay)
                        break
                    queue.popleft()
                    item.attempts += 1
                    item.sent_at = now
                    try:
                        d = session.send(item.pdu)
                    except SessionError:
                        queue.appendleft(item)
                        item.attempts -= 1
                        break
                    d.addCallback(self._answered, item, lane)
                    d.addErrback(self._failed, item, lane)
                    self.submitted += 1
                    free -= 1
                    progress = True
            start = (start + 1) % n
        self._next = start
        head = queue[0].deadline if queue else None
        if head is not None and (wait is None or head - now < wait):
            wait = head - now  # expire it on time even while no bind can send
        if queue and wait is not None and self._timer is None:
            # At least a millisecond: never a busy loop of wake-ups.
            self._timer = self.clock.callLater(max(wait, 0.001), self._wake)

    def _expire_head(self, now: float) -> None:
        queue = self.queue
        while queue and queue[0].deadline is not None and now > queue[0].deadline:
            item = queue.popleft()
            item.d.callback(SubmitOutcome(None, None, None, item.attempts, "expired"))

    def _wake(self) -> None:
        self._timer = None
        self.pump()

    def _answered(self, resp: P.Pdu, item: _Item, lane: _Lane) -> None:
        status = resp.command_status
        throttled = status in THROTTLE_STATUSES
        adaptive = lane.adaptive
        adaptive.record(throttled)
        now = self.clock.seconds()
        self.latency.observe(now - item.sent_at)
        rate = adaptive.update(now)
        if rate is not None:
            lane.bucket.set_rate(rate, now)
            self.log.info(
                "rate carrier={carrier} bind={bind} tps={tps:.1f}",
                carrier=self.name,
                bind=lane.bind.name,
                tps=rate,
            )
        if throttled and item.throttles < self.max_throttle_retries:
            item.throttles += 1
            self.throttled += 1
            self._returned.append(item)
            return  # the session's window listener pumps next
        if status == Status.ESME_ROK:
            self.accepted += 1
            message_id = getattr(resp, "message_id", None)
        else:
            message_id = None
            self.log.warn(
                "submit refused carrier={carrier} bind={bind} status={status}",
                carrier=self.name,
                bind=lane.bind.name,
                status=status_name(status),
            )
        item.d.callback(
            SubmitOutcome(status, message_id, lane.bind.name, item.attempts)
        )

    def _failed(self, f: Failure, item: _Item, lane: _Lane) -> None:
        if f.check(SessionClosed) and item.resends < self.max_resends:
            item.resends += 1
            self.resent += 1
            self._returned.append(item)
            self.pump()  # another bind may take it now
            return
        error = "timeout" if f.check(ResponseTimeout) else f.getErrorMessage()
        item.d.callback(SubmitOutcome(None, None, lane.bind.name, item.attempts, error))
