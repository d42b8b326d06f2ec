"""One logical SMPP bind kept up by Twisted's ClientService.

A bind is a transceiver session, or a transmitter + receiver pair; each
connection has its own ``ClientService`` with exponential back-off. The SMPP
bind happens in ``prepareConnection``, so a refused bind backs off exactly
like a refused connection (no hand-written reconnect logic). ``stopService``
unbinds before it disconnects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from twisted.application.internet import ClientService
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.interfaces import IAddress, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

from smsgw.session.esme import DeliveryHandler, EsmeSession, SessionSettings

RetryPolicy = Callable[[int], float]


class SessionFactory(Factory):
    """Builds one EsmeSession per connection, sharing settings and clock."""

    def __init__(
        self,
        settings: SessionSettings,
        clock: IReactorTime,
        handler: DeliveryHandler | None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.handler = handler

    @override
    def buildProtocol(self, addr: IAddress | None) -> EsmeSession:
        session = EsmeSession(self.settings, self.clock, self.handler)
        session.factory = self
        return session


class Bind(MultiService):
    """A transceiver, or a transmitter + receiver pair, kept bound.

    ``tx`` is the bound session that submits (None while down); ``rx`` the one
    that receives (the same object for a transceiver). ``ready_listeners`` are
    called when a session binds or its window frees, so a sender can pump.
    """

    log = Logger()

    def __init__(
        self,
        *,
        name: str,
        settings: SessionSettings,
        endpoint: IStreamClientEndpoint,
        clock: IReactorTime,
        retry_policy: RetryPolicy,
        handler: DeliveryHandler | None = None,
        rx_endpoint: IStreamClientEndpoint | None = None,
        pair: bool = False,
    ) -> None:
        super().__init__()
        self.name = name
        self.clock = clock
        self.tx: EsmeSession | None = None
        self.rx: EsmeSession | None = None
        self.ready_listeners: list[Callable[[], None]] = []
        self.binds = 0  # successful binds so far (reconnects included)
        self.refusals = 0
        self._stopping = False
        roles: list[tuple[str, IStreamClientEndpoint]]
        if pair:
            roles = [("transmitter", endpoint), ("receiver", rx_endpoint or endpoint)]
        else:
            roles = [(settings.bind_mode, endpoint)]
        self.services: list[ClientService] = []
        for mode, ep in roles:
            role_settings = replace(settings, bind_mode=mode, name=name)
            service = ClientService(
                ep,
                SessionFactory(role_settings, clock, handler),
                retryPolicy=retry_policy,
                clock=clock,
                prepareConnection=self._bind_session,
            )
            service.setServiceParent(self)
            self.services.append(service)

    @property
    def bound(self) -> bool:
        """True when this bind can submit (its transmitting session is bound)."""
        return self.tx is not None

    @property
    def state(self) -> str:
        """`bound`, `partial` (one half of a pair), or `down`."""
        if self.tx is not None and self.rx is not None:
            return "bound"
        if self.tx is not None or self.rx is not None:
            return "partial" if len(self.services) > 1 else "bound"
        return "down"

    def _bind_session(self, proxy: object) -> defer.Deferred[None]:
        session: EsmeSession = proxy._protocol  # type: ignore[attr-defined]
        d = session.bind()

        def bound(_: object) -> None:
            self.binds += 1
            mode = session.settings.bind_mode
            if mode in ("transceiver", "transmitter"):
                self.tx = session
                session.window_listeners.append(self._notify_ready)
            if mode in ("transceiver", "receiver"):
                self.rx = session
            session.closed_listeners.append(self._session_closed)
            self._notify_ready()

        def failed(f: Failure) -> Failure:
            self.refusals += 1
            return f

        return d.addCallbacks(bound, failed)

    def _session_closed(self, session: EsmeSession) -> None:
        if self.tx is session:
            self.tx = None
        if self.rx is session:
            self.rx = None
        if not self._stopping:
            self.log.warn(
                "bind lost carrier={carrier} mode={mode}",
                carrier=self.name,
                mode=session.settings.bind_mode,
            )

    def _notify_ready(self) -> None:
        for listener in self.ready_listeners:
            listener()

    @override
    def stopService(self) -> defer.Deferred[None]:
        """Unbind every bound session (waiting for outstanding requests), then
        stop reconnecting."""
        self._stopping = True
        sessions = {s for s in (self.tx, self.rx) if s is not None}
        unbinds = [s.unbind() for s in sessions]
        done: defer.Deferred[None] = defer.Deferred()
        gathered = defer.gatherResults(unbinds, consumeErrors=True)
        gathered.addBoth(lambda _: MultiService.stopService(self))
        gathered.addBoth(lambda _: done.callback(None))
        return done
