"""The reactor-side acceptor: idempotency in flight, then the group commit.

A copy of a transaction that arrives while the first is still being
committed waits for the first's outcome and is answered against it
(``duplicate`` for the same content, ``conflict`` otherwise): it never
reaches the store, so it can never make a second alert. Copies arriving later
are caught by the store's (terminal, txn_id) lookup and unique key. When the
first copy could not be committed, a waiting copy is tried on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from smsgw.intake.decide import AcceptResult
from smsgw.intake.terminals import Terminal
from smsgw.intake.validate import Txn
from smsgw.service.config_alerts import IssuerConfig
from smsgw.store.accept import Accepted, AcceptItem
from smsgw.store.rows import QueuedAlert
from smsgw.store.writer import BatchOp, DbWriter

__all__ = ["StoreAcceptor"]

log = Logger()


class StoreAcceptor:
    """Commits valid transactions through the writer; hands alerts on."""

    def __init__(
        self,
        writer: DbWriter,
        op: BatchOp[AcceptItem, Accepted],
        issuers: Sequence[IssuerConfig],
        clock: IReactorTime,
        on_queued: Callable[[Sequence[QueuedAlert]], None],
    ) -> None:
        self.writer = writer
        self.op = op
        self.issuers: Mapping[str, IssuerConfig] = {i.name: i for i in issuers}
        self.default_issuer = issuers[0]
        self.clock = clock
        self.on_queued = on_queued
        self._inflight: dict[tuple[str, str], defer.Deferred[None]] = {}

    def issuer_for(self, terminal: Terminal, txn: Txn) -> IssuerConfig:
        """The issuer profile: the request's, else the terminal's, else the first.

        Validation already refused an issuer the terminal may not use; an
        unknown issuer name is refused here with ValueError (``invalid``).
        """
        name = txn.issuer or terminal.issuer
        if name is None:
            return self.default_issuer
        return self.issuers[name]

    def accept(self, terminal: Terminal, txn: Txn) -> defer.Deferred[AcceptResult]:
        """Fires after the commit with accepted / duplicate / conflict."""
        key = (terminal.id, txn.txn_id)
        first = self._inflight.get(key)
        if first is not None:
            waiter: defer.Deferred[None] = defer.Deferred()

            def again(result: object) -> object:
                waiter.callback(None)
                return result

            first.addBoth(again)
            return waiter.addCallback(lambda _: self.accept(terminal, txn))
        done: defer.Deferred[None] = defer.Deferred()
        self._inflight[key] = done
        item = AcceptItem(
            terminal_id=terminal.id,
            may_supply_msisdn=terminal.may_supply_msisdn,
            issuer=self.issuer_for(terminal, txn).name,
            txn=txn,
            now=self.clock.seconds(),
        )
        d = self.writer.submit(self.op, item)

        def finished(result: object) -> object:
            del self._inflight[key]
            done.callback(None)
            return result

        d.addBoth(finished)
        return d.addCallback(self._committed)

    def _committed(self, accepted: Accepted) -> AcceptResult:
        if accepted.queued:
            try:
                self.on_queued(accepted.queued)
            except Exception:
                # Committed: the ack stands; the alerts wait in the store for
                # their lease to lapse and a claim to take them.
                log.failure("handing committed alerts to dispatch failed")
        return accepted.result
