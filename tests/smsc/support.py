"""Helpers for the SMSC simulator tests: a factory on a Clock, connections
over StringTransport, binding, and reading what the simulator wrote."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from smsgw.codec import pdu as P
from smsgw.codec.framing import split_frames
from smsgw.smsc.factory import SmscFactory
from smsgw.smsc.protocol import SmscProtocol
from smsgw.smsc.settings import SmscSettings

# 2024-11-29 06:00:00 UTC
T0 = 1_732_860_000.0


def make_smsc(
    rng: random.Random | None = None, **overrides: Any
) -> tuple[SmscFactory, Clock]:
    """Return a started factory with settings ``overrides`` on a Clock at T0."""
    clock = Clock()
    clock.advance(T0)
    factory = SmscFactory(SmscSettings(**overrides), clock, rng)
    factory.doStart()
    return factory, clock


class Conn:
    """One ESME connection to the simulator over a StringTransport."""

    def __init__(self, factory: SmscFactory) -> None:
        self.factory = factory
        self.transport = StringTransport()
        proto = factory.buildProtocol(None)
        assert isinstance(proto, SmscProtocol)
        self.proto = proto
        proto.makeConnection(self.transport)
        self._seq = 0
        self._pending: list[P.Pdu] = []

    def next_seq(self) -> int:
        """Return the next ESME sequence number."""
        self._seq += 1
        return self._seq

    def send(self, pdu: P.Pdu) -> None:
        """Feed an encoded PDU to the simulator."""
        self.proto.dataReceived(P.encode(pdu))

    def read(self) -> list[P.Pdu]:
        """Return (and clear) the PDUs the simulator wrote since the last read."""
        frames, rest = split_frames(self.transport.value())
        assert rest == b""
        self.transport.clear()
        out, self._pending = self._pending + [P.decode(f) for f in frames], []
        return out

    def request(self, pdu: P.Pdu) -> P.Pdu:
        """Send a request and return the single PDU written in answer."""
        self.send(pdu)
        out = self.read()
        assert len(out) == 1, out
        return out[0]

    def bind(
        self,
        cls: type[P.Pdu] = P.BindTransceiver,
        system_id: str = "smsgw",
        password: str = "secret",
    ) -> P.Pdu:
        """Bind and return the bind response; held deliver_sm that followed it
        are returned by the next ``read``."""
        self.send(
            cls(  # type: ignore[call-arg]
                sequence_number=self.next_seq(), system_id=system_id, password=password
            )
        )
        resp, *self._pending = self.read()
        return resp

    def submit(self, text: bytes = b"Hello", **fields: Any) -> P.Pdu:
        """Submit a message and return the response."""
        values: dict[str, Any] = {
            "source_addr": "95588",
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "destination_addr": "8613800138000",
            "registered_delivery": 1,
            "short_message": text,
        }
        values.update(fields)
        return self.request(P.SubmitSm(sequence_number=self.next_seq(), **values))

    def close(self) -> None:
        """Drop the connection as the transport would."""
        self.proto.connectionLost(Failure(ConnectionDone()))


def bound(**overrides: Any) -> tuple[SmscFactory, Clock, Conn]:
    """Return a factory, its clock and a transceiver connection bound to it."""
    factory, clock = make_smsc(**overrides)
    conn = Conn(factory)
    resp = conn.bind()
    assert resp.command_status == 0
    return factory, clock, conn


def finish(factory: SmscFactory, clock: Clock, *conns: Conn) -> None:
    """Close connections, stop the factory, and check no timer is left."""
    for conn in conns:
        conn.close()
    factory.doStop()
    assert clock.getDelayedCalls() == []
