"""Assemble the SMSC simulator: the SMPP listener and the optional HTTP control.

``make_smsc_service(settings, reactor)`` is what ``smsgw smsc`` and the
``smsgw-smsc`` twistd plugin run. Endpoints are Twisted endpoint strings.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

from smsgw.smsc.control import make_control_site
from smsgw.smsc.factory import SmscFactory
from smsgw.smsc.settings import SmscSettings


class ListeningService(Service):
    """Listen on an endpoint while running.

    ``startService`` raises at once when the endpoint fails synchronously (a
    port in use), so the command exits instead of running deaf.
    """

    log = Logger()

    def __init__(
        self, endpoint: IStreamServerEndpoint, factory: IProtocolFactory, what: str
    ) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self.what = what
        self.port: IListeningPort | None = None
        self._failure: Failure | None = None
        self._starting = False
        self._waiters: list[Deferred[IListeningPort]] = []

    @override
    def startService(self) -> None:
        super().startService()
        self._starting = True
        try:
            d = self.endpoint.listen(self.factory)
            d.addCallbacks(self._listening, self._failed)
        finally:
            self._starting = False
        if self._failure is not None:
            self.running = False
            self._failure.raiseException()

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        host = port.getHost()
        address = f"{getattr(host, 'host', host)}:{getattr(host, 'port', '')}"
        self.log.info("{what} listening on {address}", what=self.what, address=address)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(port)

    def _failed(self, failure: Failure) -> None:
        self._failure = failure
        if not self._starting:
            self.log.failure("{what} could not listen", failure, what=self.what)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(failure)

    def when_listening(self) -> Deferred[IListeningPort]:
        """Return a Deferred that fires with the listening port."""
        if self.port is not None:
            return succeed(self.port)
        if self._failure is not None:
            return fail(self._failure)
        waiter: Deferred[IListeningPort] = Deferred()
        self._waiters.append(waiter)
        return waiter

    @override
    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        port, self.port = self.port, None
        if port is None:
            return None
        result: Deferred[None] | None = port.stopListening()
        return result


class SmscService(MultiService):
    """The simulator: ``factory`` (state and counters), ``smpp`` and ``control``."""

    def __init__(
        self,
        factory: SmscFactory,
        smpp: ListeningService,
        control: ListeningService | None,
    ) -> None:
        super().__init__()
        self.factory = factory
        self.smpp = smpp
        self.control = control
        smpp.setServiceParent(self)
        if control is not None:
            control.setServiceParent(self)

    @property
    def listening(self) -> Deferred[IListeningPort]:
        """A Deferred that fires with the SMPP listening port (e.g. for port 0)."""
        return self.smpp.when_listening()


def make_smsc_service(
    settings: SmscSettings, reactor: Any, *, rng: random.Random | None = None
) -> SmscService:
    """Return the simulator service: SMPP on ``settings.listen``, HTTP control
    on ``settings.control`` when set. ``reactor`` provides time and listening.

    Raises ValueError for a malformed endpoint string.
    """
    clock: IReactorTime = reactor
    factory = SmscFactory(settings, clock, rng)
    smpp = ListeningService(serverFromString(reactor, settings.listen), factory, "SMSC")
    control = None
    if settings.control is not None:
        site = make_control_site(factory, clock)
        control = ListeningService(
            serverFromString(reactor, settings.control), site, "SMSC control"
        )
    return SmscService(factory, smpp, control)
