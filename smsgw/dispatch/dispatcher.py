"""The dispatcher: claimed alerts -> route -> carrier -> parts -> outcome.

Runs on the reactor thread with an injected clock. Alerts arrive from the
intake (already committed and claimed by this node) and from periodic claims
of the store's queue (start-up recovery, other nodes' expired leases, alerts
released when memory was full). For each due alert:

- past its TTL (``expires_at``): recorded ``expired``, never sent late;
- the route's carriers are tried best first; a carrier with no bind up, or
  that failed this alert ``failover_after`` times, is passed over for the next;
- the text is composed for the carrier's profile (one submit_sm per part, a
  fixed concatenation reference per alert so a resend of one part joins
  the others), only parts not yet accepted are submitted;
- every part accepted: recorded ``submitted`` with its message ids; a
  permanent refusal: ``failed`` at once; otherwise back-off and retry.

Each outcome is written through the group-commit writer; the claim lease is
renewed while alerts wait here, so another process takes them only if this
one dies.
"""

from __future__ import annotations

import heapq
import zlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from smsgw.carrier.sender import SubmitOutcome
from smsgw.codec import pdu as P
from smsgw.dispatch.policy import Router, backoff, describe, is_permanent
from smsgw.service.config_alerts import DispatchConfig
from smsgw.store import schema as S
from smsgw.store.claims import Claim, Renew, claim_op, release_op, renew_op
from smsgw.store.delivery import rematch_op, sent_op, update_op
from smsgw.store.rows import AlertUpdate, QueuedAlert, Sent, SentPart
from smsgw.store.writer import BatchOp, Writer

__all__ = ["CarrierLink", "Dispatcher"]

log = Logger()
T = TypeVar("T")


class CarrierLink(Protocol):
    """What the dispatcher needs of a carrier (CarrierService in production)."""

    @property
    def name(self) -> str: ...
    @property
    def bound(self) -> int: ...
    @property
    def room(self) -> int: ...
    def compose(
        self, text: str, destination: str, source: str | None, ref: int
    ) -> list[P.SubmitSm]: ...
    def submit(
        self, pdu: P.SubmitSm, deadline: float
    ) -> defer.Deferred[SubmitOutcome]: ...
    def resp_id(self, raw: str) -> str: ...


@dataclass(slots=True)
class _Job:
    alert: QueuedAlert
    attempts: int
    due: float
    ref: int
    # Made on first use (None until then): up to max_in_flight jobs wait in
    # memory, and three empty dicts each were ~4 MB at 20,000.
    accepted: dict[int, str] | None = None  # part number -> message id
    accepted_by: str | None = None
    failures: dict[str, int] | None = None  # carrier -> failed attempts
    pdus: dict[str, list[P.SubmitSm]] | None = None  # carrier -> its parts


class Dispatcher:
    """Sends claimed alerts (see the module docstring)."""

    def __init__(
        self,
        links: Mapping[str, CarrierLink],
        router: Router,
        writer: Writer,
        clock: IReactorTime,
        cfg: DispatchConfig,
        *,
        reclaim_own: bool = True,
        reclaim_any: bool = False,
        submit_wait: float = 30.0,
        max_unconfirmed: int = 100,
    ) -> None:
        self.links = links
        self.router = router
        self.writer = writer
        self.clock = clock
        self.cfg = cfg
        self.submit_wait = submit_wait
        self.max_unconfirmed = max_unconfirmed
        self.unconfirmed = 0
        self._reclaim_own = reclaim_own
        self._reclaim_any = reclaim_any
        # Due alerts, urgent ones (declines, reversals, large amounts) in a
        # queue of their own: after an outage they go before a backlog of
        # older normal ones, as claims from the store order them too.
        self._urgent: deque[_Job] = deque()
        self._ready: deque[_Job] = deque()
        self._blocked: deque[_Job] = deque()
        self._later: list[tuple[float, int, int, _Job]] = []
        self._seq = 0
        self._held: set[str] = set()
        self._overflow: list[str] = []  # alerts to give back (memory full)
        # The store's queue may hold alerts for us (we gave some back, or the
        # last claim came back full): claim again as soon as half the room
        # is free, not only on the poll timer.
        self._store_has_more = False
        self._timer: IDelayedCall | None = None
        self._poll: IDelayedCall | None = None
        self._renew: IDelayedCall | None = None
        self._claim_timer: IDelayedCall | None = None
        self._sweep: IDelayedCall | None = None
        self._pumping = False
        self._claiming = False
        self._stopped = True
        self.sending = 0
        self.counts: dict[str, int] = {}

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Claim what the store holds for this node and start the timers."""
        self._stopped = False
        self._claim()
        self._renew = self.clock.callLater(self.cfg.lease / 3, self._renew_leases)
        self._sweep = self.clock.callLater(self.cfg.lease, self._sweep_receipts)

    def stop(self) -> None:
        """Stop sending; held alerts stay claimed in the store for the restart."""
        self._stopped = True
        self._release_overflow()  # before the writer stops
        for call in (
            self._timer,
            self._poll,
            self._renew,
            self._claim_timer,
            self._sweep,
        ):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._poll = self._renew = self._claim_timer = self._sweep = None

    @property
    def held(self) -> int:
        """Alerts held in memory (waiting, due or being sent)."""
        return len(self._held)

    # -- intake side ---------------------------------------------------------

    def add(self, alerts: Sequence[QueuedAlert]) -> None:
        """Take alerts this node committed or claimed."""
        now = self.clock.seconds()
        overflow: list[str] = []
        for alert in alerts:
            if alert.id in self._held:
                continue
            if len(self._held) >= self.cfg.max_in_flight:
                overflow.append(alert.id)
                continue
            self._held.add(alert.id)
            job = _Job(
                alert,
                alert.attempts,
                alert.not_before,
                zlib.crc32(alert.id.encode()) & 0xFF,
            )
            self._schedule(job, alert.not_before, now)
        if overflow:
            # Left in the store, unclaimed: a later claim takes them. One
            # release per reactor turn, not one per transaction accepted.
            if not self._overflow:
                self.clock.callLater(0, self._release_overflow)
            self._overflow.extend(overflow)
        self._pump()

    def _release_overflow(self) -> None:
        ids, self._overflow = tuple(self._overflow), []
        if ids:
            self._write(release_op, ids).addCallback(self._released)

    def _released(self, _: object) -> None:
        self._store_has_more = True  # claimable now that the release is committed

    def _schedule(self, job: _Job, due: float, now: float) -> None:
        job.due = due
        if due <= now:
            self._due_queue(job).append(job)
        else:
            self._seq += 1
            heapq.heappush(self._later, (due, -job.alert.priority, self._seq, job))
            self._arm(now)

    def _due_queue(self, job: _Job) -> deque[_Job]:
        """Where a due job waits: urgent alerts in a queue of their own."""
        return self._urgent if job.alert.priority > 0 else self._ready

    def _arm(self, now: float) -> None:
        if not self._later or self._stopped:
            return
        due = self._later[0][0]
        if self._timer is not None and self._timer.active():
            if self._timer.getTime() <= due:
                return
            self._timer.cancel()
        self._timer = self.clock.callLater(max(0.0, due - now), self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._pump()

    # -- sending -------------------------------------------------------------

    def _pump(self) -> None:
        if self._pumping or self._stopped:
            return
        self._pumping = True
        try:
            now = self.clock.seconds()
            while self._later and self._later[0][0] <= now:
                job = heapq.heappop(self._later)[3]
                self._due_queue(job).append(job)
            full = down = False  # some alert waits for room / for a bind
            while self._urgent or self._ready:
                if self.unconfirmed >= self.max_unconfirmed:
                    break  # _confirmed pumps again when a record is committed
                job = (self._urgent or self._ready).popleft()
                if now >= job.alert.expires_at:
                    self._finish(
                        job, S.EXPIRED, "ttl passed before the alert could be sent", now
                    )
                    continue
                link = self._pick(job)
                if link is None:
                    if not self.router.candidates(job.alert.destination):
                        self._finish(
                            job, S.FAILED, "no carrier routes this number", now
                        )
                        continue
                    self._blocked.append(job)  # its carriers are down: others go on
                    down = True
                    if not any(other.bound for other in self.links.values()):
                        self._set_aside(now)  # nothing can be sent: don't scan
                        break
                    continue
                pdus = job.pdus.get(link.name) if job.pdus else None
                if pdus is None:
                    try:
                        pdus = link.compose(
                            job.alert.text,
                            job.alert.destination,
                            job.alert.source_addr,
                            job.ref,
                        )
                    except Exception as e:
                        self._finish(job, S.FAILED, f"cannot compose: {e}", now)
                        continue
                    if job.pdus is None:
                        job.pdus = {}
                    job.pdus[link.name] = pdus
                accepted = job.accepted
                if accepted and job.accepted_by != link.name:
                    accepted.clear()  # another carrier: send every part again
                missing = [
                    (n, pdu)
                    for n, pdu in enumerate(pdus, 1)
                    if not accepted or n not in accepted
                ]
                if link.room < len(missing):
                    self._blocked.append(job)  # that carrier is full: others go on
                    full = True
                    continue
                self._send(job, link, missing, now)
            self._arm(now)
            if full:
                self._poll_soon(0.05)  # room comes back within milliseconds
            elif down:
                self._poll_soon(self.cfg.poll_interval)  # a bind takes seconds
        finally:
            self._pumping = False

    def _set_aside(self, now: float) -> None:
        """Every bind is down: expire what is due, set the rest aside."""
        while self._urgent or self._ready:
            job = (self._urgent or self._ready).popleft()
            if now >= job.alert.expires_at:
                self._finish(
                    job, S.EXPIRED, "ttl passed while no carrier was bound", now
                )
            else:
                self._blocked.append(job)

    def _pick(self, job: _Job) -> CarrierLink | None:
        best: CarrierLink | None = None
        failures = job.failures or {}
        for name in self.router.candidates(job.alert.destination):
            link = self.links.get(name)
            if link is None or not link.bound:
                continue
            if failures.get(name, 0) < self.cfg.failover_after:
                return link
            if best is None or failures.get(name, 0) < failures.get(best.name, 0):
                best = link
        return best

    def _send(
        self,
        job: _Job,
        link: CarrierLink,
        parts: list[tuple[int, P.SubmitSm]],
        now: float,
    ) -> None:
        job.attempts += 1
        self.sending += 1
        self.unconfirmed += 1
        deadline = min(job.alert.expires_at, now + self.submit_wait)
        ds = [link.submit(pdu, deadline) for _, pdu in parts]
        numbers = [n for n, _ in parts]
        if len(ds) == 1:  # most alerts: skip gatherResults' bookkeeping
            answered = ds[0].addCallback(self._answered_one, job, link, numbers)
        else:
            gathered = defer.gatherResults(ds, consumeErrors=True)
            answered = gathered.addCallback(self._answered, job, link, numbers)
        answered.addErrback(lambda f: log.failure("dispatch failed", f))

    def _answered_one(
        self,
        outcome: SubmitOutcome,
        job: _Job,
        link: CarrierLink,
        numbers: list[int],
    ) -> None:
        self._answered([outcome], job, link, numbers)

    def _answered(
        self,
        outcomes: list[SubmitOutcome],
        job: _Job,
        link: CarrierLink,
        numbers: list[int],
    ) -> None:
        self.sending -= 1
        now = self.clock.seconds()
        worst: SubmitOutcome | None = None
        for n, outcome in zip(numbers, outcomes, strict=True):
            if outcome.accepted and outcome.message_id is not None:
                if job.accepted is None:
                    job.accepted = {}
                job.accepted[n] = link.resp_id(outcome.message_id)
                job.accepted_by = link.name
            elif worst is None or is_permanent(outcome):
                worst = outcome
        assert job.pdus is not None  # composed before it was sent
        total = len(job.pdus[link.name])
        if worst is None and job.accepted and len(job.accepted) == total:
            self._held.discard(job.alert.id)
            self._count("submitted")
            parts = tuple(SentPart(n, m) for n, m in sorted(job.accepted.items()))
            d = self._write(
                sent_op, Sent(job.alert.id, link.name, parts, job.attempts, now)
            )
        elif worst is not None and is_permanent(worst):
            d = self._finish(job, S.FAILED, describe(worst), now, link.name)
        else:
            reason = describe(worst) if worst is not None else "incomplete"
            if job.failures is None:
                job.failures = {}
            job.failures[link.name] = job.failures.get(link.name, 0) + 1
            due = now + backoff(
                job.attempts, self.cfg.retry_initial, self.cfg.retry_max
            )
            if due >= job.alert.expires_at:
                d = self._finish(
                    job, S.EXPIRED, f"ttl passed; last error: {reason}", now, link.name
                )
            else:
                log.warn(
                    "retry ref={ref} alert={alert} carrier={carrier} "
                    "reason={reason} attempt={attempt}",
                    ref=job.alert.ref,
                    alert=job.alert.id,
                    carrier=link.name,
                    reason=reason,
                    attempt=job.attempts,
                )
                self._count("retried")
                d = self._record(job, S.QUEUED, reason, due, now, link.name)
                self._schedule(job, due, now)
        # Alerts the SMSC may have but the store does not know as sent are
        # what a crash would send twice: at most max_unconfirmed of them.
        d.addBoth(self._confirmed)
        self._pump()

    def _confirmed(self, _: object) -> None:
        self.unconfirmed -= 1
        if (
            self._store_has_more
            and not self._claiming
            and len(self._held) < self.cfg.max_in_flight // 2
        ):
            self._claim()
        self._pump()

    def _finish(
        self,
        job: _Job,
        status: str,
        reason: str,
        now: float,
        carrier: str | None = None,
    ) -> defer.Deferred[None]:
        self._held.discard(job.alert.id)
        self._count(status)
        log.info(
            "alert {status} ref={ref} alert={alert} reason={reason}",
            status=status,
            ref=job.alert.ref,
            alert=job.alert.id,
            reason=reason,
        )
        return self._record(job, status, reason, job.due, now, carrier)

    def _record(
        self,
        job: _Job,
        status: str,
        reason: str,
        not_before: float,
        now: float,
        carrier: str | None,
    ) -> defer.Deferred[None]:
        parts = tuple(SentPart(n, m) for n, m in sorted((job.accepted or {}).items()))
        return self._write(
            update_op,
            AlertUpdate(
                job.alert.id,
                status,
                job.attempts,
                reason,
                not_before,
                now,
                job.accepted_by if parts else carrier,
                parts if job.accepted_by else (),
            ),
        )

    def _write(self, op: BatchOp[T, Any], item: T) -> defer.Deferred[None]:
        """Record an outcome; a failed write leaves the alert to recovery."""
        return self.writer.submit(op, item).addCallbacks(
            lambda _: None,
            lambda f: log.error(
                "store write failed op={op}: {error}",
                op=op.name,
                error=f.getErrorMessage(),
            ),
        )

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    # -- timers: polling, claims, leases ------------------------------------

    def poke(self) -> None:
        """Try the alerts set aside now (a carrier came back)."""
        if not self._stopped:
            self._poll_soon(0.0)

    def _poll_soon(self, delay: float) -> None:
        if self._poll is not None and self._poll.active():
            if self._poll.getTime() <= self.clock.seconds() + delay:
                return
            self._poll.cancel()
        self._poll = self.clock.callLater(delay, self._polled)

    def _polled(self) -> None:
        self._poll = None
        # Alerts set aside go first again (of their priority), in their order.
        blocked, self._blocked = self._blocked, deque()
        for job in reversed(blocked):
            self._due_queue(job).appendleft(job)
        self._pump()

    def _claim(self) -> None:
        if self._stopped or self._claiming:
            return
        if self._claim_timer is not None and self._claim_timer.active():
            self._claim_timer.cancel()  # claimed early: the timer starts again
        self._claim_timer = None
        room = self.cfg.max_in_flight - len(self._held)
        if room < self.cfg.max_in_flight // 2:
            self._next_claim()
            return
        self._claiming = True
        now = self.clock.seconds()
        claim = Claim(
            self.cfg.node,
            now,
            self.cfg.lease,
            room,
            reclaim_own=self._reclaim_own,
            reclaim_any=self._reclaim_any,
        )
        self._reclaim_own = self._reclaim_any = False
        d = self.writer.submit(claim_op, claim)

        def claimed(alerts: list[QueuedAlert]) -> None:
            self._claiming = False
            self._store_has_more = len(alerts) >= room
            if alerts:
                log.info(
                    "claimed alerts={count} node={node}",
                    count=len(alerts),
                    node=self.cfg.node,
                )
                self.add(alerts)
            self._next_claim()

        def failed(f: object) -> None:
            self._claiming = False
            log.warn(
                "claim failed: {error}",
                error=getattr(f, "getErrorMessage", lambda: f)(),
            )
            self._next_claim()

        d.addCallbacks(claimed, failed)

    def _next_claim(self) -> None:
        if not self._stopped:
            self._claim_timer = self.clock.callLater(
                self.cfg.poll_interval, self._claimed_timer
            )

    def _claimed_timer(self) -> None:
        self._claim_timer = None
        self._claim()

    def _sweep_receipts(self) -> None:
        """Match receipts that beat their part from another process (rare)."""
        self._sweep = None
        if self._stopped:
            return
        self._write(rematch_op, 1000)
        self._sweep = self.clock.callLater(self.cfg.lease, self._sweep_receipts)

    def _renew_leases(self) -> None:
        self._renew = None
        if self._stopped:
            return
        until = self.clock.seconds() + self.cfg.lease
        held = tuple(self._held)
        self.writer.submit(renew_op, Renew(self.cfg.node, until, held)).addErrback(
            lambda f: log.warn(
                "lease renewal failed: {error}", error=f.getErrorMessage()
            )
        )
        self._renew = self.clock.callLater(self.cfg.lease / 3, self._renew_leases)
