"""Shipped fakes for tests: an endpoint whose connections the test completes.

Used by smsgw's own tests and available to anyone testing code built on it.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.test import iosim
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


@implementer(IStreamClientEndpoint)
class MemoryEndpoint:
    """Connects each client straight to ``server_factory`` in memory.

    Bytes move only when the test calls ``flush()`` (Twisted's iosim pumps);
    ``refuse`` makes the next attempts fail as refused connections;
    ``drop_all()`` closes every live connection from the server's side.
    """

    def __init__(self, server_factory: IProtocolFactory, clock: Clock) -> None:
        self.server_factory = server_factory
        self.clock = clock
        self.pumps: list[iosim.IOPump] = []
        self.refuse = False
        self.attempts = 0

    def connect(self, factory: IProtocolFactory) -> defer.Deferred[IProtocol]:
        self.attempts += 1
        if self.refuse:
            return defer.fail(ConnectionRefusedError())
        client = factory.buildProtocol(None)  # type: ignore[arg-type]
        server = self.server_factory.buildProtocol(None)  # type: ignore[arg-type]
        assert client is not None
        assert server is not None
        pump = iosim.connect(
            server,
            iosim.makeFakeServer(server),
            client,
            iosim.makeFakeClient(client),
            greet=False,
            clock=self.clock,
        )
        self.pumps.append(pump)
        return defer.succeed(client)

    def flush(self) -> None:
        """Move bytes both ways on every connection until all are quiet."""
        for _ in range(10_000):
            moved = [p.pump(advanceClock=False) for p in self.pumps]
            self.pumps = [p for p in self.pumps if not p.clientIO.disconnected]
            if not any(moved):
                return
        raise AssertionError("connections never went quiet")

    def drop_all(self) -> None:
        """Close every live connection from the server's side."""
        for p in self.pumps:
            p.serverIO.loseConnection()
        self.flush()


class ThreadCalls:
    """``callFromThread`` for tests: calls from other threads wait in a queue
    until the test thread runs them (`run_until`), so a Clock or a memory
    reactor can stand in for the reactor of a real thread such as the
    store's writer."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[Any, tuple[Any, ...], dict[str, Any]]]
        self._calls = queue.SimpleQueue()

    def callFromThread(self, f: Any, *args: Any, **kw: Any) -> None:  # noqa: N802
        self._calls.put((f, args, kw))

    def run_pending(self) -> int:
        """Run the calls queued so far; return how many ran."""
        n = 0
        while True:
            try:
                f, args, kw = self._calls.get_nowait()
            except queue.Empty:
                return n
            f(*args, **kw)
            n += 1

    def run_until(self, done: Callable[[], bool], timeout: float = 10.0) -> None:
        """Run queued calls as they come until ``done()``; AssertionError after
        ``timeout`` seconds without it (a guard, not a wait on time)."""
        while not done():
            advance = getattr(self, "advance", None)
            if advance is not None:
                advance(0)  # run callLater(0) calls (the writer's hand-over)
                if done():
                    return
            try:
                f, args, kw = self._calls.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"not done after {timeout} s") from None
            f(*args, **kw)

    def result(self, d: defer.Deferred[Any], timeout: float = 10.0) -> Any:
        """Run queued calls until ``d`` fires; return its result or raise its error."""
        box: list[Any] = []
        d.addBoth(box.append)
        self.run_until(lambda: bool(box), timeout)
        if isinstance(box[0], Failure):
            box[0].raiseException()
        return box[0]


class ThreadedClock(Clock, ThreadCalls):
    """A Clock that also takes calls from other threads (see ThreadCalls)."""

    def __init__(self) -> None:
        Clock.__init__(self)
        ThreadCalls.__init__(self)
