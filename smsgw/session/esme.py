"""The ESME side of an SMPP 3.4 session as a Twisted protocol.

Parse (framer + codec) -> decide (what the PDU means for the session) -> act
(write, fire a Deferred, call a handler). Requests are correlated like AMP's
BoxDispatcher: ``sequence_number -> Deferred``. Every request has a response
deadline on the injected clock; deadlines are kept in one ordered deque with a
single timer, because the timeout is the same for every request and a timer per
submit would cost more than the submit itself at tens of thousands per second.

When the connection drops, every outstanding request fails at once with
``SessionClosed`` so the caller can resend it right away (Jasmin waited out a
120 s timer here; see facts.md).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

from smsgw.codec import pdu as P
from smsgw.codec.constants import (
    ESM_MESSAGE_TYPE_MASK,
    CommandId,
    Status,
    command_name,
    status_name,
)
from smsgw.codec.framing import DEFAULT_MAX_PDU, FrameSplitter
from smsgw.session.tcp import no_delay

MAX_SEQUENCE = 0x7FFFFFFF  # SMPP 3.4 §3.2: sequence numbers 0x00000001..0x7FFFFFFF
_BIND_TYPES: dict[str, Callable[..., P.Pdu]] = {
    "transceiver": P.BindTransceiver,
    "transmitter": P.BindTransmitter,
    "receiver": P.BindReceiver,
}


class SessionState(enum.Enum):
    """Where a session is in its life."""

    OPEN = "open"  # connected, not bound
    BINDING = "binding"
    BOUND = "bound"
    UNBINDING = "unbinding"
    CLOSED = "closed"


class SessionError(Exception):
    """Base for request failures that carry no SMPP response."""


class SessionClosed(SessionError):
    """The connection went away before the response arrived."""


class ResponseTimeout(SessionError):
    """No response within the session's response timeout."""


class NotBound(SessionError):
    """A message request on a session that is not bound (or is unbinding)."""


class WindowFull(SessionError):
    """No room in the window: the caller must wait for ``window_free > 0``."""


class BindRefused(SessionError):
    """The SMSC answered the bind with an error status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused: {status_name(status)}")
        self.status = status


class DeliveryHandler(TypingProtocol):
    """Receives what the SMSC delivers; returns the command_status to answer.

    A Deferred result delays the deliver_sm_resp until it fires (so a receipt
    or MO can be committed before it is acknowledged); a failure is answered
    ESME_RX_T_APPN so the SMSC delivers it again.
    """

    def deliver(self, pdu: P.DeliverSm | P.DataSm) -> int | defer.Deferred[int]: ...


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """What a session needs to know; built from the carrier configuration."""

    system_id: str
    password: str
    system_type: str = ""
    bind_mode: str = "transceiver"  # transceiver | transmitter | receiver
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""
    window: int = 10
    response_timeout: float = 10.0
    enquire_interval: float = 30.0
    max_pdu: int = DEFAULT_MAX_PDU
    name: str = "smpp"  # for logs: carrier/bind name


class _Pending:
    __slots__ = ("command_id", "d", "deadline", "windowed")

    def __init__(
        self, d: defer.Deferred[P.Pdu], deadline: float, command_id: int, windowed: bool
    ) -> None:
        self.d = d
        self.deadline = deadline
        self.command_id = command_id
        self.windowed = windowed


class EsmeSession(Protocol):
    """One SMPP connection from the gateway to an SMSC."""

    log = Logger()

    def __init__(
        self,
        settings: SessionSettings,
        clock: IReactorTime,
        handler: DeliveryHandler | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.handler = handler
        self.state = SessionState.OPEN
        self._transport: ITransport | None = None
        self._splitter = FrameSplitter(settings.max_pdu)
        self._pending: dict[int, _Pending] = {}
        self._deadlines: deque[tuple[float, int]] = deque()
        self._deadline_timer: IDelayedCall | None = None
        self._enquire_timer: IDelayedCall | None = None
        self._last_rx = 0.0
        self._seq = 0
        self.in_window = 0
        self._closing = False
        self._close_waiters: list[defer.Deferred[None]] = []
        self._drained: list[defer.Deferred[None]] = []
        self.window_listeners: list[Callable[[], None]] = []
        self.closed_listeners: list[Callable[[EsmeSession], None]] = []
        self.trace = False  # debug-log each PDU (off on the hot path)
        self.sent = 0
        self.received = 0

    # ------------------------------------------------------------------
    # Twisted callbacks
    # ------------------------------------------------------------------

    @override
    def connectionMade(self) -> None:
        self._transport = self.transport
        no_delay(self.transport)
        self._last_rx = self.clock.seconds()

    @override
    def dataReceived(self, data: bytes) -> None:
        frames = self._splitter.feed(data)
        for frame in frames:
            if self._closing:
                return
            self._frame_received(frame)
        err = self._splitter.error
        if err is not None and not self._closing:
            # SMPP 3.4 §3.2: a length we cannot trust loses the stream.
            seq = (
                int.from_bytes(err.header[12:16], "big") if len(err.header) >= 16 else 0
            )
            self.log.warn(
                "bad command_length carrier={carrier} length={length}; closing",
                carrier=self.settings.name,
                length=err.length,
            )
            self._write(
                P.GenericNack(
                    sequence_number=seq, command_status=Status.ESME_RINVCMDLEN
                )
            )
            self._close()

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.state = SessionState.CLOSED
        self._closing = True
        for timer in (self._deadline_timer, self._enquire_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._deadline_timer = self._enquire_timer = None
        pending, self._pending = self._pending, {}
        self._deadlines.clear()
        self.in_window = 0
        for entry in pending.values():
            entry.d.errback(
                SessionClosed(f"connection lost: {reason.getErrorMessage()}")
            )
        waiters, self._close_waiters = self._close_waiters, []
        for d in waiters:
            d.callback(None)
        self._fire_drained()
        for listener in list(self.closed_listeners):
            listener(self)

    # ------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------

    @property
    def window_free(self) -> int:
        """How many more windowed requests may be sent now (0 when not bound)."""
        if self.state is not SessionState.BOUND:
            return 0
        return self.settings.window - self.in_window

    @property
    def can_receive(self) -> bool:
        """True when the SMSC may deliver on this session."""
        return self.settings.bind_mode in ("transceiver", "receiver")

    def bind(self) -> defer.Deferred[P.Pdu]:
        """Send the bind request; the Deferred fires with the bind response.

        Fails with BindRefused (and the connection is closed) when the SMSC
        answers with an error status.
        """
        s = self.settings
        cls = _BIND_TYPES[s.bind_mode]
        self.state = SessionState.BINDING
        request = cls(
            system_id=s.system_id,
            password=s.password,
            system_type=s.system_type,
            addr_ton=s.addr_ton,
            addr_npi=s.addr_npi,
            address_range=s.address_range,
        )
        d = self._request(request, windowed=False)

        def bound(resp: P.Pdu) -> P.Pdu:
            if resp.command_status != Status.ESME_ROK:
                raise BindRefused(resp.command_status)
            self.state = SessionState.BOUND
            self.log.info(
                "bound carrier={carrier} mode={mode} system_id={system_id}",
                carrier=s.name,
                mode=s.bind_mode,
                system_id=s.system_id,
            )
            self._schedule_enquire(s.enquire_interval)
            self._notify_window()
            return resp

        def failed(f: Failure) -> Failure:
            self._close()  # a bind that timed out or was refused loses the link
            return f

        d.addCallback(bound).addErrback(failed)
        return d

    def send(self, request: P.Pdu) -> defer.Deferred[P.Pdu]:
        """Send a message request; fire with its response PDU (any status).

        A generic_nack answering it is the response too. Raises NotBound or
        WindowFull synchronously; the Deferred fails with ResponseTimeout or
        SessionClosed.
        """
        if self.state is not SessionState.BOUND:
            raise NotBound(f"session is {self.state.value}")
        if self.in_window >= self.settings.window:
            raise WindowFull(f"{self.in_window} requests outstanding")
        return self._request(request, windowed=True)

    def unbind(self, timeout: float | None = None) -> defer.Deferred[None]:
        """Stop taking requests, wait for outstanding ones, unbind, close.

        Fires when the connection is closed. Outstanding requests get up to
        ``timeout`` (default: the response timeout) to be answered.
        """
        if self.state is SessionState.CLOSED:
            return defer.succeed(None)
        closed: defer.Deferred[None] = defer.Deferred()
        self._close_waiters.append(closed)
        if self.state is SessionState.UNBINDING:
            return closed
        was_bound = self.state is SessionState.BOUND
        self.state = SessionState.UNBINDING
        wait = self.settings.response_timeout if timeout is None else timeout

        def send_unbind(_: object = None) -> None:
            if self._closing:
                return
            if not was_bound:
                self._close()
                return
            d = self._request(P.Unbind(), windowed=False)
            d.addBoth(lambda _: self._close())

        if self.in_window:
            drained: defer.Deferred[None] = defer.Deferred()
            self._drained.append(drained)
            drained.addTimeout(wait, self.clock, onTimeoutCancel=lambda *_: None)
            drained.addBoth(send_unbind)
        else:
            send_unbind()
        return closed

    # ------------------------------------------------------------------
    # Inbound
    # ------------------------------------------------------------------

    def _frame_received(self, frame: bytes) -> None:
        self._last_rx = self.clock.seconds()
        self.received += 1
        try:
            pdu = P.decode(frame)
        except P.DecodeError as e:
            self._bad_pdu(e)
            return
        if self.trace:
            self.log.debug(
                "rx carrier={carrier} pdu={pdu} seq={seq} status={status}",
                carrier=self.settings.name,
                pdu=command_name(pdu.command_id),
                seq=pdu.sequence_number,
                status=status_name(pdu.command_status),
            )
        if pdu.command_id & 0x80000000:
            self._response_received(pdu)
        else:
            self._request_received(pdu)

    def _response_received(self, resp: P.Pdu) -> None:
        entry = self._pending.pop(resp.sequence_number, None)
        if entry is None:
            if resp.command_id != CommandId.GENERIC_NACK or resp.sequence_number:
                self.log.warn(
                    "unexpected {pdu} carrier={carrier} seq={seq} status={status}",
                    pdu=command_name(resp.command_id),
                    carrier=self.settings.name,
                    seq=resp.sequence_number,
                    status=status_name(resp.command_status),
                )
            else:
                self.log.warn(
                    "generic_nack without sequence carrier={carrier} status={status}",
                    carrier=self.settings.name,
                    status=status_name(resp.command_status),
                )
            return
        if entry.windowed:
            self.in_window -= 1
        entry.d.callback(resp)
        if entry.windowed:
            self._window_freed()

    def _request_received(self, req: P.Pdu) -> None:
        cid = req.command_id
        if cid == CommandId.DELIVER_SM or cid == CommandId.DATA_SM:
            self._deliver(req)  # type: ignore[arg-type]
        elif cid == CommandId.ENQUIRE_LINK:
            self._write(P.EnquireLinkResp(sequence_number=req.sequence_number))
        elif cid == CommandId.UNBIND:
            self.log.info("SMSC unbound carrier={carrier}", carrier=self.settings.name)
            self.state = SessionState.UNBINDING
            self._write(P.UnbindResp(sequence_number=req.sequence_number))
            self._close()
        elif cid == CommandId.ALERT_NOTIFICATION:
            pass  # SMPP 3.4 §4.12: no response
        else:
            self._write(
                P.GenericNack(
                    sequence_number=req.sequence_number,
                    command_status=Status.ESME_RINVCMDID,
                )
            )

    def _deliver(self, req: P.DeliverSm | P.DataSm) -> None:
        handler = self.handler
        if not self.can_receive:
            self._answer(req, Status.ESME_RINVBNDSTS)  # a transmitter bind
            return
        if handler is None:
            # Nobody would keep it: a temporary error makes the SMSC retry
            # rather than drop a receipt or a cardholder's reply.
            self._answer(req, Status.ESME_RX_T_APPN)
            return
        try:
            status = handler.deliver(req)
        except Exception:
            self.log.failure(
                "delivery handler failed carrier={carrier} seq={seq}",
                carrier=self.settings.name,
                seq=req.sequence_number,
            )
            status = Status.ESME_RX_T_APPN
        if isinstance(status, defer.Deferred):

            def failed(f: Failure) -> int:
                self.log.failure(
                    "delivery handler failed carrier={carrier} seq={seq}",
                    f,
                    carrier=self.settings.name,
                    seq=req.sequence_number,
                )
                return int(Status.ESME_RX_T_APPN)

            status.addErrback(failed).addCallback(lambda st: self._answer(req, st))
        else:
            self._answer(req, status)

    def _answer(self, req: P.Pdu, status: int) -> None:
        if not self._closing:
            self._write(P.response_for(req, status))

    def _bad_pdu(self, e: P.DecodeError) -> None:
        self.log.warn(
            "undecodable PDU carrier={carrier} seq={seq} error={error}",
            carrier=self.settings.name,
            seq=e.sequence_number,
            error=str(e),
        )
        if e.command_id & 0x80000000:
            entry = self._pending.pop(e.sequence_number, None)
            if entry is not None:
                if entry.windowed:
                    self.in_window -= 1
                entry.d.errback(e)
                if entry.windowed:
                    self._window_freed()
            return
        self._write(
            P.GenericNack(sequence_number=e.sequence_number, command_status=e.status)
        )

    # ------------------------------------------------------------------
    # Outbound
    # ------------------------------------------------------------------

    def _next_sequence(self) -> int:
        seq = self._seq
        while True:
            seq = seq + 1 if seq < MAX_SEQUENCE else 1
            if seq not in self._pending:
                self._seq = seq
                return seq

    def _request(self, request: P.Pdu, *, windowed: bool) -> defer.Deferred[P.Pdu]:
        seq = self._next_sequence()
        frame = P.encode(request, seq)
        d: defer.Deferred[P.Pdu] = defer.Deferred()
        deadline = self.clock.seconds() + self.settings.response_timeout
        self._pending[seq] = _Pending(d, deadline, request.command_id, windowed)
        if windowed:
            self.in_window += 1
        self._deadlines.append((deadline, seq))
        if self._deadline_timer is None:
            self._deadline_timer = self.clock.callLater(
                self.settings.response_timeout, self._expire
            )
        self.sent += 1
        if self.trace:
            self.log.debug(
                "tx carrier={carrier} pdu={pdu} seq={seq}",
                carrier=self.settings.name,
                pdu=command_name(request.command_id),
                seq=seq,
            )
        assert self._transport is not None
        self._transport.write(frame)
        return d

    def _write(self, pdu: P.Pdu) -> None:
        if self._transport is not None and not self._closing:
            self._transport.write(P.encode(pdu))

    def close(self) -> None:
        """Drop the connection now (outstanding requests fail)."""
        self._close()

    def _close(self) -> None:
        if not self._closing:
            self._closing = True
            if self._transport is not None:
                self._transport.loseConnection()

    def _window_freed(self) -> None:
        """A windowed request ended: wake an unbind waiting for an empty
        window, and whoever sends into the window."""
        if not self.in_window and self._drained:
            self._fire_drained()
        self._notify_window()

    def _fire_drained(self) -> None:
        drained, self._drained = self._drained, []
        for d in drained:
            if not d.called:
                d.callback(None)

    def _notify_window(self) -> None:
        for listener in self.window_listeners:
            listener()

    # ------------------------------------------------------------------
    # Timers
    # ------------------------------------------------------------------

    def _expire(self) -> None:
        now = self.clock.seconds()
        deadlines = self._deadlines
        pending = self._pending
        expired: list[tuple[int, _Pending]] = []
        while deadlines and deadlines[0][0] <= now:
            deadline, seq = deadlines.popleft()
            entry = pending.get(seq)
            if entry is None or entry.deadline != deadline:
                continue  # answered, or the sequence number was reused
            del pending[seq]
            if entry.windowed:
                self.in_window -= 1
            expired.append((seq, entry))
        # Skip entries already answered so the timer is set for a live one.
        while deadlines and deadlines[0][1] not in pending:
            deadlines.popleft()
        # Re-arm before failing anything: a caller that resends from its
        # errback must find the timer set, not start a second one.
        self._deadline_timer = None
        if deadlines and not self._closing:
            self._deadline_timer = self.clock.callLater(
                max(0.0, deadlines[0][0] - now), self._expire
            )
        for seq, entry in expired:
            self.log.warn(
                "no response carrier={carrier} pdu={pdu} seq={seq}",
                carrier=self.settings.name,
                pdu=command_name(entry.command_id),
                seq=seq,
            )
            entry.d.errback(
                ResponseTimeout(f"{command_name(entry.command_id)} seq={seq}")
            )
            if entry.command_id == CommandId.ENQUIRE_LINK:
                # The link is dead: drop it so the bind reconnects.
                self._close()
        if any(entry.windowed for _, entry in expired):
            self._window_freed()

    def _schedule_enquire(self, delay: float) -> None:
        self._enquire_timer = self.clock.callLater(delay, self._enquire_due)

    def _enquire_due(self) -> None:
        self._enquire_timer = None
        if self._closing or self.state not in (
            SessionState.BOUND,
            SessionState.UNBINDING,
        ):
            return
        interval = self.settings.enquire_interval
        idle = self.clock.seconds() - self._last_rx
        if idle >= interval:
            d = self._request(P.EnquireLink(), windowed=False)
            d.addErrback(lambda f: f.trap(SessionError))
            self._schedule_enquire(interval)
        else:
            self._schedule_enquire(interval - idle)


def message_type(pdu: P.DeliverSm | P.DataSm) -> int:
    """Return the esm_class message-type bits (0 = MO, 0x04 = receipt, ...)."""
    return pdu.esm_class & ESM_MESSAGE_TYPE_MASK
