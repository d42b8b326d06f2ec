"""The intake port's Twisted glue: frames in, responses out in request order.

intake-v1 framing is a uint32 big-endian length that excludes itself, so
`Int32StringReceiver` with ``MAX_LENGTH = max_frame`` fits. Each frame takes
a slot in a FIFO; `Intake.handle` fills it at once or later (after the
commit) and slots are written from the head as soon as they are filled, so
pipelined requests are answered in the order they arrived.

A frame of length 0 (``malformed``) or over ``max_frame`` (``too_large``)
ends the connection: earlier requests are answered first, then the error,
then the close, and nothing after that frame is read. Idle connections are
closed after ``idle_timeout``. A connection with ``max_pipeline`` answers
outstanding stops reading until half of them are written (back-pressure on
a terminal that pipelines faster than the store commits).
"""

from __future__ import annotations

from collections import deque

from twisted.internet import defer
from twisted.internet.interfaces import IAddress, IReactorTime, ITransport
from twisted.internet.protocol import ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from typing_extensions import override

from smsgw.intake.decide import Intake
from smsgw.intake.envelope import IntakeError, error_body, response_frame
from smsgw.session.tcp import no_delay

__all__ = ["IntakeFactory", "IntakeProtocol"]

log = Logger()


class _Slot:
    __slots__ = ("close", "frame")

    def __init__(self) -> None:
        self.frame: bytes | None = None
        self.close = False


class IntakeProtocol(Int32StringReceiver, TimeoutMixin):
    """One terminal connection (see the module docstring)."""

    factory: IntakeFactory

    def __init__(self) -> None:
        self._slots: deque[_Slot] = deque()
        self._closing = False
        self._paused = False
        self._transport: ITransport | None = None
        self._cert: str | None = None  # "" once looked up and none presented
        self.peer = "?"

    @override
    def connectionMade(self) -> None:
        self._transport = self.transport
        no_delay(self.transport)
        self.MAX_LENGTH = self.factory.max_frame
        self.callLater = self.factory.clock.callLater  # type: ignore[assignment]
        self.setTimeout(self.factory.idle_timeout)
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        self.peer = f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"
        self.factory.connections += 1
        log.debug("intake connection peer={peer}", peer=self.peer)

    def _peer_cert(self) -> str | None:
        """The SHA-256 fingerprint of the client certificate (TLS), or None."""
        if self._cert is None:
            self._cert = ""
            get = getattr(self.transport, "getPeerCertificate", None)
            cert = get() if get is not None else None
            if cert is not None:
                from cryptography.hazmat.primitives import hashes

                self._cert = cert.to_cryptography().fingerprint(hashes.SHA256()).hex()
        return self._cert or None

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        self._closing = True
        self._slots.clear()
        self.factory.connections -= 1
        log.debug("intake connection closed peer={peer}", peer=self.peer)

    @override
    def timeoutConnection(self) -> None:
        log.info("intake idle timeout peer={peer}", peer=self.peer)
        self._closing = True
        if self._transport is not None:
            self._transport.loseConnection()

    @override
    def dataReceived(self, data: bytes) -> None:
        # After a bad frame length nothing more is read (the receiver would
        # otherwise re-parse its buffer from the start).
        if self._closing:
            return
        self.resetTimeout()
        super().dataReceived(data)

    @override
    def lengthLimitExceeded(self, length: int) -> None:
        self._fatal(
            IntakeError(
                "too_large",
                f"frame of {length} bytes is over max_frame "
                f"({self.factory.max_frame}); closing the connection",
            )
        )

    @override
    def stringReceived(self, string: bytes) -> None:
        if self._closing:
            return
        if not string:
            self._fatal(
                IntakeError("malformed", "frame length 0; closing the connection")
            )
            return
        slot = _Slot()
        self._slots.append(slot)
        answer = self.factory.intake.handle(string, self._peer_cert())
        if isinstance(answer, bytes):
            slot.frame = answer
            self._flush()
            return
        if len(self._slots) >= self.factory.max_pipeline and not self._paused:
            self._paused = True
            self.transport.pauseProducing()  # type: ignore[union-attr]
        answer.addBoth(self._filled, slot)

    def _filled(self, frame: bytes | Failure, slot: _Slot) -> None:
        if isinstance(frame, Failure):
            self._crashed(frame, slot)
            return
        slot.frame = frame
        self._flush()

    def _crashed(self, failure: Failure, slot: _Slot) -> None:
        log.failure("intake request failed", failure)
        slot.frame = response_frame(
            error_body(IntakeError("unavailable", "internal error; retry later")),
            None,
        )
        self._flush()

    def _fatal(self, error: IntakeError) -> None:
        """Answer ``error`` after everything before it, then close."""
        self.factory.intake.counts[error.code] = (
            self.factory.intake.counts.get(error.code, 0) + 1
        )
        log.info(
            "intake bad frame peer={peer} code={code}", peer=self.peer, code=error.code
        )
        self._closing = True
        slot = _Slot()
        slot.frame = response_frame(error_body(error), None)
        slot.close = True
        self._slots.append(slot)
        self._flush()

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        slots = self._slots
        out: list[bytes] = []
        close = False
        while slots and slots[0].frame is not None:
            slot = slots.popleft()
            out.append(slot.frame)  # type: ignore[arg-type]
            if slot.close:
                close = True
                break
        if out:
            transport.writeSequence(out)
        if close:
            slots.clear()
            transport.loseConnection()
        elif self._paused and len(slots) <= self.factory.max_pipeline // 2:
            self._paused = False
            transport.resumeProducing()  # type: ignore[attr-defined]


class IntakeFactory(ServerFactory[IntakeProtocol]):
    """Makes IntakeProtocols that share one `Intake`."""

    def __init__(
        self,
        intake: Intake,
        clock: IReactorTime,
        *,
        max_frame: int = 65536,
        idle_timeout: float = 300.0,
        max_pipeline: int = 1000,
    ) -> None:
        self.intake = intake
        self.clock = clock
        self.max_frame = max_frame
        self.idle_timeout = idle_timeout
        self.max_pipeline = max_pipeline
        self.connections = 0

    @override
    def buildProtocol(self, addr: IAddress | None) -> IntakeProtocol:
        proto = IntakeProtocol()
        proto.factory = self
        return proto

    def drain(self) -> defer.Deferred[None]:
        """Stop taking transactions (answered ``unavailable`` from now on)."""
        self.intake.closing = True
        return defer.succeed(None)
