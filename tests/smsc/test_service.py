"""make_smsc_service on a MemoryReactorClock: endpoints, control, start and stop."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.testing import MemoryReactorClock
from twisted.web.server import Site
from typing_extensions import override

from smsgw.smsc.factory import SmscFactory
from smsgw.smsc.service import make_smsc_service
from smsgw.smsc.settings import SmscSettings


def test_listens_on_smpp_and_control_endpoints() -> None:
    """The service listens on the SMPP and control endpoint strings while running."""
    reactor = MemoryReactorClock()
    service = make_smsc_service(
        SmscSettings(
            listen="tcp:2775:interface=127.0.0.1",
            control="tcp:8775:interface=127.0.0.1",
        ),
        reactor,
    )
    service.startService()
    (smpp_port, smpp_factory, _, smpp_iface), (http_port, site, _, http_iface) = (
        reactor.tcpServers
    )
    assert (smpp_port, smpp_iface) == (2775, "127.0.0.1")
    assert isinstance(smpp_factory, SmscFactory)
    assert smpp_factory is service.factory
    assert (http_port, http_iface) == (8775, "127.0.0.1")
    assert isinstance(site, Site)
    ports: list[IListeningPort] = []
    service.smpp.when_listening().addCallback(ports.append)
    service.listening.addCallback(ports.append)
    assert len(ports) == 2
    assert ports[0] is ports[1]
    service.stopService()
    assert service.smpp.port is None
    assert reactor.getDelayedCalls() == []


def test_without_control_only_smpp_listens() -> None:
    """With control unset, only the SMPP endpoint is opened."""
    reactor = MemoryReactorClock()
    service = make_smsc_service(SmscSettings(), reactor)
    service.startService()
    assert [server[0] for server in reactor.tcpServers] == [2775]
    assert service.control is None
    service.stopService()


def test_service_factory_uses_the_reactor_clock() -> None:
    """Receipt timers run on the reactor handed to make_smsc_service."""
    reactor = MemoryReactorClock()
    service = make_smsc_service(SmscSettings(), reactor)
    assert service.factory.clock is reactor


class _BusyReactor(MemoryReactorClock):
    @override
    def listenTCP(
        self, port: int, factory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        raise CannotListenError(interface, port, OSError("address in use"))


def test_listen_failure_raises_at_start() -> None:
    """A port that cannot be opened makes startService raise, not run deaf."""
    service = make_smsc_service(SmscSettings(), _BusyReactor())
    with pytest.raises(CannotListenError):
        service.startService()
    failures: list[Any] = []
    service.smpp.when_listening().addErrback(failures.append)
    assert len(failures) == 1


def test_bad_endpoint_string_is_value_error() -> None:
    """A malformed endpoint string is refused when the service is built."""
    with pytest.raises(ValueError, match="nope"):
        make_smsc_service(SmscSettings(listen="nope:1"), MemoryReactorClock())
