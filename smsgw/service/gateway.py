"""Assemble the gateway's services from a validated Config.

The only place (with tap.py and the CLI) that is handed the real reactor.
Start order: store writer, simulator, carriers, dispatcher, intake listener.
Stop order is the reverse: the intake stops taking transactions (answers
``unavailable``) and stops listening, the dispatcher stops (alerts it held
stay claimed in the store for the next start), carriers unbind, and the
writer commits what is queued before it ends (its store process or thread).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection
from twisted.application.internet import TimerService
from twisted.application.service import MultiService, Service
from twisted.internet import defer, threads
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.web.server import Site
from typing_extensions import override

from smsgw.carrier.compose import Address, compose, source_address
from smsgw.carrier.deliveries import Answer, ReceiptEvent
from smsgw.carrier.sender import SubmitOutcome
from smsgw.carrier.service import CarrierService, reactor_endpoints
from smsgw.codec import pdu as P
from smsgw.codec.constants import Status
from smsgw.dispatch.dispatcher import Dispatcher
from smsgw.dispatch.policy import Route, Router
from smsgw.intake.accept import StoreAcceptor
from smsgw.intake.decide import Intake
from smsgw.intake.protocol import IntakeFactory
from smsgw.intake.terminals import terminals_from_config
from smsgw.intake.tls import intake_endpoint
from smsgw.service.admin import AdminApi, access_log
from smsgw.service.admin_actions import GatewayActions
from smsgw.service.config import Config, SimulatorConfig
from smsgw.service.replies import ReplyService, public_issuers
from smsgw.service.status import RecentProblems, StatusHistory
from smsgw.smsc.service import ListeningService, make_smsc_service
from smsgw.smsc.settings import SmscSettings
from smsgw.store.accept import make_accept_op
from smsgw.store.chain import load_audit_signer
from smsgw.store.db import check_schema, make_engine
from smsgw.store.delivery import receipt_op
from smsgw.store.keyring import attach_keyring
from smsgw.store.procwriter import StoreProcessWriter, spawn_store_process
from smsgw.store.rows import QueuedAlert, ReceiptRecord
from smsgw.store.writer import DbWriter, Writer

log = Logger()


def simulator_settings(sim: SimulatorConfig) -> SmscSettings:
    """SmscSettings for the simulator section of the gateway's config."""
    return SmscSettings(
        listen=sim.listen,
        control=sim.control,
        accounts=((sim.system_id, sim.password.reveal()),),
        id_format=sim.id_format,
        receipt_delay=sim.receipt_delay,
        receipt_state=sim.receipt_state,
        throttle_fraction=sim.throttle_fraction,
        max_tps=sim.max_tps,
    )


class CarrierLinkAdapter:
    """A CarrierService as the dispatcher's CarrierLink."""

    def __init__(self, service: CarrierService) -> None:
        self.service = service
        self.name = service.cfg.name
        self.paused = False  # by an operator (admin API): looks down to dispatch
        self._sources: dict[str | None, Address] = {None: service.source}

    @property
    def bound(self) -> int:
        return 0 if self.paused else self.service.bound

    @property
    def room(self) -> int:
        return self.service.sender.room

    def compose(
        self, text: str, destination: str, source: str | None, ref: int
    ) -> list[P.SubmitSm]:
        cfg = self.service.cfg
        address = self._sources.get(source)
        if address is None:
            address = source_address(source or cfg.source_addr, cfg.profile)
            self._sources[source] = address
        return compose(
            text, destination, address, cfg.profile, ref=ref, max_parts=cfg.max_parts
        )

    def submit(self, pdu: P.SubmitSm, deadline: float) -> defer.Deferred[SubmitOutcome]:
        return self.service.sender.submit(pdu, deadline)

    def resp_id(self, raw: str) -> str:
        return self.service.resp_id(raw)


class _Lifecycle(Service):
    """Starts the dispatcher after the carriers; stops intake first."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @override
    def startService(self) -> None:
        super().startService()
        self.gateway.dispatcher.start()

    @override
    def stopService(self) -> None:
        super().stopService()
        self.gateway.intake.closing = True
        self.gateway.acceptor.stop()
        self.gateway.dispatcher.stop()


class _WriterService(Service):
    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    @override
    def startService(self) -> None:
        super().startService()
        self.writer.start()

    @override
    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        return self.writer.stop()


class Gateway(MultiService):
    """The running gateway (see the module docstring).

    Raises SchemaError when the database is not at the current schema
    revision, and KeyFileError for an unusable key folder.
    """

    def __init__(self, cfg: Config, reactor: Any, *, check: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.reactor = reactor
        self.engine = make_engine(cfg.database.url, hide_parameters=True)
        if check:
            check_schema(self.engine)
        # Keys generated on first start; checked against the database.
        keyring = attach_keyring(self.engine, cfg.keys_dir)
        self.vault = keyring.vault()
        self.hasher = keyring.card_hasher()
        self.signer = load_audit_signer(cfg.keys_dir)  # generated on first start
        self.writer: Writer
        if cfg.database.writer == "process":
            self.writer = StoreProcessWriter(
                spawn_store_process(reactor, cfg.database.url, cfg.keys_dir),
                reactor,
                max_batch=cfg.database.commit_batch,
                linger=cfg.database.commit_interval,
            )
        else:
            self.writer = DbWriter(
                self.engine,
                reactor,
                max_batch=cfg.database.commit_batch,
                linger=cfg.database.commit_interval,
                signer=self.signer,
            )
        _WriterService(self.writer).setServiceParent(self)
        if cfg.simulator.enabled:
            self.smsc = make_smsc_service(simulator_settings(cfg.simulator), reactor)
            self.smsc.setServiceParent(self)
        endpoints = reactor_endpoints(reactor)
        self.replies = ReplyService(
            self.writer,
            reactor,
            cfg.feedback,
            cfg.issuers,
            self.alerts_queued,
            node=cfg.dispatch.node,
            lease=cfg.dispatch.lease,
            ttl=cfg.dispatch.ttl,
            agent=_agent(reactor),
        )
        self.carriers: dict[str, CarrierService] = {}
        routes: list[Route] = []
        for order, carrier in enumerate(cfg.carriers):
            if not carrier.enabled:
                continue
            service = CarrierService(
                carrier,
                reactor,
                endpoints,
                self.receipt_received,
                self.replies.mo_received,
            )
            service.setServiceParent(self)
            self.carriers[carrier.name] = service
            routes += [
                Route(prefix, carrier.priority, order, carrier.name)
                for prefix in carrier.routes
            ]
        self.dispatcher = Dispatcher(
            {name: CarrierLinkAdapter(s) for name, s in self.carriers.items()},
            Router(routes),
            self.writer,
            reactor,
            cfg.dispatch,
            max_unconfirmed=sum(c.window * c.binds for c in cfg.carriers if c.enabled),
        )
        self.acceptor = StoreAcceptor(
            self.writer,
            make_accept_op(
                node=cfg.dispatch.node,
                lease=cfg.dispatch.lease,
                ttl=cfg.dispatch.ttl,
                issuers=public_issuers(cfg.issuers),
                reply_window=cfg.feedback.reply_window,
            ),
            cfg.issuers,
            reactor,
            self.alerts_queued,
        )
        self.intake = Intake(
            terminals_from_config(cfg.terminals),
            self.acceptor,
            self.hasher,
            reactor,
            max_skew=cfg.intake.max_skew,
            issuers=frozenset(i.name for i in cfg.issuers),
        )
        self.intake_factory = IntakeFactory(
            self.intake,
            reactor,
            max_frame=cfg.intake.max_frame,
            idle_timeout=cfg.intake.idle_timeout,
        )
        self.history = StatusHistory(reactor, self._sample)
        self.history.setServiceParent(self)
        self.alert_statuses: dict[str, int] = {}
        counter = TimerService(30.0, self.count_statuses)
        counter.clock = reactor  # the injected clock, not the global reactor
        counter.setServiceParent(self)
        self.problems = RecentProblems()
        self.problems.setServiceParent(self)
        _Lifecycle(self).setServiceParent(self)
        # After the dispatcher (its replies go there), stopped before it.
        self.replies.setServiceParent(self)
        self.listener = ListeningService(
            intake_endpoint(reactor, cfg.intake.listen, cfg.intake.client_ca),
            self.intake_factory,
            "intake",
        )
        self.listener.setServiceParent(self)
        self.admin = ListeningService(
            serverFromString(reactor, cfg.admin.listen),
            Site(
                AdminApi(
                    cfg.admin,
                    self._read,
                    cfg.issuers,
                    reactor.seconds,
                    GatewayActions(self),
                ),
                logFormatter=access_log,
            ),
            "admin API",
        )
        self.admin.setServiceParent(self)

    def count_statuses(self) -> defer.Deferred[None]:
        """Alerts in the store by status, for /metrics (on the thread pool)."""
        from sqlalchemy import text

        def query(conn: Connection) -> dict[str, int]:
            rows = conn.execute(
                text("SELECT status, COUNT(*) FROM alerts GROUP BY status")
            )
            return {str(status): int(n) for status, n in rows}

        def keep(counts: dict[str, int]) -> None:
            self.alert_statuses = counts

        return defer.maybeDeferred(self._read, query).addCallbacks(
            keep,
            lambda f: log.warn("counting alerts failed: {e}", e=f.getErrorMessage()),
        )

    def _sample(self) -> dict[str, int]:
        """The counters the status page charts."""
        return {
            "accepted": self.intake.counts.get("accepted", 0),
            "submitted": self.dispatcher.counts.get("submitted", 0),
            "receipts": sum(s.deliveries.receipts for s in self.carriers.values()),
        }

    def _read(self, query: Callable[[Connection], Any]) -> defer.Deferred[Any]:
        """Run a read-only query on the reactor's thread pool (admin API)."""

        def work() -> Any:
            with self.engine.connect() as conn:
                return query(conn)

        pool = self.reactor.getThreadPool()
        return threads.deferToThreadPool(self.reactor, pool, work)

    @override
    def stopService(self) -> defer.Deferred[None]:
        """Stop children one by one, newest first, each after the previous.

        (MultiService stops them all at once: the writer would end while the
        carriers still answer outstanding submits, losing their records.)
        """
        Service.stopService(self)

        @defer.inlineCallbacks
        def run() -> Any:
            for service in reversed(list(self)):
                yield defer.maybeDeferred(service.stopService)

        d: defer.Deferred[None] = run()
        return d

    def alerts_queued(self, alerts: Sequence[QueuedAlert]) -> None:
        """Committed alerts go straight to the dispatcher."""
        self.dispatcher.add(alerts)

    def receipt_received(self, event: ReceiptEvent) -> Answer:
        """Store a receipt; answer the SMSC only once it is committed."""
        r = event.receipt
        # SMSCs write what they like in id: and err:; the store keeps the
        # lengths SMPP allows (message_id 64) and 32 characters of error.
        record = ReceiptRecord(
            event.carrier,
            event.message_id[:64],
            r.state,
            r.error[:32] if r.error else None,
            self.reactor.seconds(),
        )
        d = self.writer.submit(receipt_op, record)
        # Not committed: a temporary error makes the SMSC deliver it again.
        return d.addCallbacks(
            lambda _: int(Status.ESME_ROK), lambda _: int(Status.ESME_RX_T_APPN)
        )


def _agent(reactor: Any) -> Any:
    """An HTTP(S) client for fraud webhooks, with persistent connections."""
    from twisted.web.client import Agent, HTTPConnectionPool

    return Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=True))
