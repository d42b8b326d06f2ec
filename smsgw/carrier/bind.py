"""One logical SMPP bind kept up by Twisted's ClientService.

A bind is a transceiver session, or a transmitter + receiver pair; each
connection has its own ``ClientService`` with exponential back-off (no
hand-written reconnect logic). ``stopService`` unbinds before it disconnects.

The SMPP bind happens inside the endpoint (``BindingEndpoint``): ClientService
sees a connection only once it is bound, so a refused or timed-out bind is a
failed connection attempt and backs off exactly like a refused connection.
(Binding in ``prepareConnection`` would do the same on paper, but in Twisted
26.10 closing the link after a failed prepareConnection reaches ClientService's
state machine as ``_clientDisconnected`` in state Waiting, which raises
NoTransition; the gate below keeps that notification for bound links only.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from twisted.application.internet import ClientService
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.interfaces import (
    IAddress,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
    ITransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override
from zope.interface import implementer

from smsgw.session.esme import DeliveryHandler, EsmeSession, SessionSettings

RetryPolicy = Callable[[int], float]


class SessionFactory(Factory):
    """Builds one EsmeSession per connection, sharing settings and clock."""

    noisy = False

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


class _Gate(Protocol):
    """Wraps ClientService's protocol proxy until the SMPP bind succeeds.

    Before the bind, a lost connection goes straight to the session (and
    fails the attempt); after it, through the proxy so ClientService notices.
    """

    def __init__(self, proxy: IProtocol) -> None:
        self.proxy = proxy
        self.session: EsmeSession = proxy._protocol  # type: ignore[attr-defined]
        self.bound = False

    @override
    def makeConnection(self, transport: ITransport) -> None:
        Protocol.makeConnection(self, transport)
        self.proxy.makeConnection(transport)

    @override
    def dataReceived(self, data: bytes) -> None:
        self.proxy.dataReceived(data)

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.bound:
            self.proxy.connectionLost(reason)
        else:
            self.session.connectionLost(reason)


class _GateFactory(Factory):
    noisy = False  # ClientService makes one per attempt; don't log each

    def __init__(self, inner: IProtocolFactory) -> None:
        self.inner = inner
        self.gate: _Gate | None = None

    @override
    def buildProtocol(self, addr: IAddress | None) -> _Gate | None:
        proxy = self.inner.buildProtocol(addr)  # type: ignore[arg-type]
        if proxy is None:
            return None
        self.gate = _Gate(proxy)
        return self.gate


@implementer(IStreamClientEndpoint)
class BindingEndpoint:
    """Connects, then binds; fires with the protocol only once bound.

    ``on_bound(session)`` runs when the bind succeeds; ``on_refused(f)`` when
    a connected link fails to bind (refused, timed out, dropped meanwhile).
    """

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        on_bound: Callable[[EsmeSession], None],
        on_refused: Callable[[Failure], None],
    ) -> None:
        self.endpoint = endpoint
        self.on_bound = on_bound
        self.on_refused = on_refused

    def connect(self, factory: IProtocolFactory) -> defer.Deferred[IProtocol]:
        gates = _GateFactory(factory)

        def cancel(_: defer.Deferred[IProtocol]) -> None:
            connecting.cancel()
            if gates.gate is not None:
                gates.gate.session.close()

        result: defer.Deferred[IProtocol] = defer.Deferred(cancel)
        connecting = self.endpoint.connect(gates)

        def connected(protocol: IProtocol) -> defer.Deferred[None]:
            gate = gates.gate
            assert gate is protocol and gate is not None  # noqa: PT018
            d = gate.session.bind()

            def bound(_: object) -> None:
                gate.bound = True
                self.on_bound(gate.session)
                if not result.called:
                    result.callback(gate.proxy)

            return d.addCallback(bound)

        def failed(f: Failure) -> None:
            if f.check(defer.CancelledError) and result.called:
                return
            if gates.gate is not None:
                # Connected, but the bind failed (a refused connection is
                # ClientService's to log and count).
                self.on_refused(f)
            if not result.called:
                result.errback(f)

        connecting.addCallback(connected).addErrback(failed)
        return result


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
        self.clients: list[ClientService] = []
        for mode, ep in roles:
            role_settings = replace(settings, bind_mode=mode, name=name)
            service = ClientService(
                BindingEndpoint(ep, self._bound, self._refused),
                SessionFactory(role_settings, clock, handler),
                retryPolicy=retry_policy,
                clock=clock,
            )
            service.setServiceParent(self)
            self.clients.append(service)

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
            return "partial" if len(self.clients) > 1 else "bound"
        return "down"

    def _bound(self, session: EsmeSession) -> None:
        self.binds += 1
        mode = session.settings.bind_mode
        if mode in ("transceiver", "transmitter"):
            self.tx = session
            session.window_listeners.append(self._notify_ready)
        if mode in ("transceiver", "receiver"):
            self.rx = session
        session.closed_listeners.append(self._session_closed)
        self._notify_ready()

    def _refused(self, f: Failure) -> None:
        self.refusals += 1
        self.log.warn(
            "bind failed carrier={carrier} error={error}",
            carrier=self.name,
            error=f.getErrorMessage(),
        )

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
