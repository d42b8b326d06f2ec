"""Shipped fakes for tests: an endpoint whose connections the test completes.

Used by smsgw's own tests and available to anyone testing code built on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from smsgw.codec import pdu as P


@dataclass
class Connection:
    """One accepted fake connection: the protocol (as the factory built it)
    and the transport it writes to."""

    protocol: IProtocol
    transport: StringTransport

    def take(self) -> list[P.Pdu]:
        """Decode and clear every PDU the protocol has written."""
        data = self.transport.value()
        self.transport.clear()
        out = []
        while len(data) >= 4:
            n = int.from_bytes(data[:4], "big")
            out.append(P.decode(data[:n]))
            data = data[n:]
        return out

    def feed(self, *pdus: P.Pdu) -> None:
        """Deliver PDUs to the protocol as if the peer had sent them."""
        self.protocol.dataReceived(b"".join(P.encode(p) for p in pdus))

    def drop(self, reason: str = "connection dropped") -> None:
        """Lose the connection from the peer's side."""
        self.transport.disconnecting = True
        self.protocol.connectionLost(Failure(ConnectionError(reason)))


@implementer(IStreamClientEndpoint)
@dataclass
class FakeEndpoint:
    """A client endpoint whose connection attempts wait for the test.

    ``accept()`` completes the oldest attempt with a StringTransport;
    ``refuse()`` fails it with ConnectionRefusedError.
    """

    attempts: list[tuple[IProtocolFactory, defer.Deferred[IProtocol]]] = field(
        default_factory=list
    )

    def connect(self, factory: IProtocolFactory) -> defer.Deferred[IProtocol]:
        d: defer.Deferred[IProtocol] = defer.Deferred()
        self.attempts.append((factory, d))
        return d

    def accept(self) -> Connection:
        """Complete the oldest pending attempt; return the connection."""
        factory, d = self.attempts.pop(0)
        protocol = factory.buildProtocol(None)  # type: ignore[arg-type]
        assert protocol is not None
        transport = StringTransport()
        protocol.makeConnection(transport)
        d.callback(protocol)
        return Connection(protocol, transport)

    def refuse(self) -> None:
        """Fail the oldest pending attempt as a refused connection."""
        _, d = self.attempts.pop(0)
        d.errback(ConnectionRefusedError())
