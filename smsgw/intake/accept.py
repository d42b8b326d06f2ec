"""The reactor-side acceptor: idempotency in flight, then the group commit.

A copy of a transaction that arrives while the first is still being
committed waits for the first's outcome and is answered against it
(``duplicate`` for the same content, ``conflict`` otherwise): it never
reaches the store, so it can never make a second alert. Copies arriving later
are caught by the store's (terminal, txn_id) lookup and unique key. When the
first copy could not be committed, a waiting copy is tried on its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from smsgw.intake.decide import AcceptResult, Unavailable
from smsgw.intake.terminals import Terminal
from smsgw.intake.validate import Txn
from smsgw.service.config_alerts import IssuerConfig
from smsgw.store.accept import Accepted, AcceptItem
from smsgw.store.rows import QueuedAlert
from smsgw.store.writer import BatchOp, Writer

__all__ = ["StoreAcceptor"]

log = Logger()


class StoreAcceptor:
    """Commits valid transactions through the writer; hands alerts on."""

    def __init__(
        self,
        writer: Writer,
        op: BatchOp[AcceptItem, Accepted],
        issuers: Sequence[IssuerConfig],
        clock: IReactorTime,
        on_queued: Callable[[Sequence[QueuedAlert]], None],
        *,
        commit_timeout: float = 10.0,
    ) -> None:
        self.writer = writer
        self.op = op
        self.issuers: Mapping[str, IssuerConfig] = {i.name: i for i in issuers}
        self.default_issuer = issuers[0]
        self.clock = clock
        self.on_queued = on_queued
        self.commit_timeout = commit_timeout
        self._waiting: deque[tuple[float, str, defer.Deferred[AcceptResult]]] = deque()
        self._timer: IDelayedCall | None = None
        # (terminal, txn_id) being committed -> copies waiting for its outcome
        self._inflight: dict[tuple[str, str], list[defer.Deferred[None]]] = {}

    def issuer_for(self, terminal: Terminal, txn: Txn) -> IssuerConfig:
        """The issuer profile: the request's, else the terminal's, else the first.

        The intake already refused (``invalid``) an issuer that is not
        configured or that the terminal may not use.
        """
        name = txn.issuer or terminal.issuer
        if name is None:
            return self.default_issuer
        return self.issuers[name]

    def accept(self, terminal: Terminal, txn: Txn) -> defer.Deferred[AcceptResult]:
        """Fires after the commit with accepted / duplicate / conflict."""
        key = (terminal.id, txn.txn_id)
        waiters = self._inflight.get(key)
        if waiters is not None:
            waiter: defer.Deferred[None] = defer.Deferred()
            waiters.append(waiter)
            # Its own deadline too: a stalled first copy must not hold the
            # retry without an answer.
            retried = waiter.addCallback(lambda _: self.accept(terminal, txn))
            answer = self._deadline(txn)
            retried.addBoth(self._settle, answer, txn)
            return answer
        self._inflight[key] = []
        item = AcceptItem(
            terminal_id=terminal.id,
            may_supply_msisdn=terminal.may_supply_msisdn,
            issuer=self.issuer_for(terminal, txn).name,
            txn=txn,
            now=self.clock.seconds(),
        )
        answer = self._deadline(txn)
        # One callback for the whole hand-over (a Deferred per step would
        # cost more than the step: this runs for every transaction).
        self.writer.submit(self.op, item).addBoth(self._done, key, answer, txn)
        return answer

    def _done(
        self,
        result: Accepted | Failure,
        key: tuple[str, str],
        answer: defer.Deferred[AcceptResult],
        txn: Txn,
    ) -> None:
        for waiter in self._inflight.pop(key):
            waiter.callback(None)  # copies that waited: answered against this
        outcome: AcceptResult | Failure
        if isinstance(result, Failure):
            outcome = result
        else:
            try:
                outcome = self._committed(result)
            except Exception:
                outcome = Failure()  # answered unavailable, as a failed commit
        self._settle(outcome, answer, txn)

    def _deadline(self, txn: Txn) -> defer.Deferred[AcceptResult]:
        """The answer to ``txn``: its commit's outcome (`_settle`), or
        ``unavailable`` when the store has not answered within
        ``commit_timeout`` (a stalled database must not leave terminals
        without an answer). A commit that lands later is kept, its alerts are
        sent, and the terminal's retry is answered ``duplicate``.

        One timer serves every waiting commit: deadlines come in submission
        order, so it fires for the oldest (a timer per transaction would cost
        more than the rest of its hand-over).
        """
        answer: defer.Deferred[AcceptResult] = defer.Deferred()
        self._waiting.append(
            (self.clock.seconds() + self.commit_timeout, txn.txn_id, answer)
        )
        if self._timer is None:
            self._timer = self.clock.callLater(self.commit_timeout, self._expire)
        return answer

    def _settle(
        self,
        result: AcceptResult | Failure,
        answer: defer.Deferred[AcceptResult],
        txn: Txn,
    ) -> None:
        if not answer.called:
            answer.callback(result)
            # Commits come back mostly in order: forget the answered ones
            # at the head now, so the queue holds only what is in flight.
            waiting = self._waiting
            while waiting and waiting[0][2].called:
                waiting.popleft()
        elif isinstance(result, Failure):
            log.warn(
                "late commit failed txn_id={txn_id}: {error}",
                txn_id=txn.txn_id,
                error=result.getErrorMessage(),
            )

    def _expire(self) -> None:
        self._timer = None
        now = self.clock.seconds()
        waiting = self._waiting
        while waiting and (waiting[0][2].called or waiting[0][0] <= now):
            _, txn_id, answer = waiting.popleft()
            if not answer.called:
                log.warn("commit timeout txn_id={txn_id}", txn_id=txn_id)
                answer.errback(Unavailable("the store did not commit in time"))
        while waiting and waiting[0][2].called:
            waiting.popleft()
        if waiting:
            self._timer = self.clock.callLater(waiting[0][0] - now, self._expire)

    def stop(self) -> None:
        """Cancel the deadline timer (the gateway is stopping)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _committed(self, accepted: Accepted) -> AcceptResult:
        if accepted.queued:
            try:
                self.on_queued(accepted.queued)
            except Exception:
                # Committed: the ack stands; the alerts wait in the store for
                # their lease to lapse and a claim to take them.
                log.failure("handing committed alerts to dispatch failed")
        return accepted.result
