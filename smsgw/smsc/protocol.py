"""The SMSC simulator's protocol: one SmscProtocol per ESME connection.

parse (FrameSplitter, codec) -> decide (smsgw.smsc.core) -> act (write one
encoded PDU per request). The shared state (ids, message states, receipts,
held deliveries, counters) lives in ``smsgw.smsc.factory.SmscFactory``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import ITransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

from smsgw.codec import pdu as P
from smsgw.codec.constants import (
    INTERFACE_VERSION,
    CommandId,
    MessageState,
    Status,
    Tag,
    command_name,
    status_name,
)
from smsgw.codec.framing import FrameSplitter
from smsgw.session.tcp import no_delay
from smsgw.smsc.core import (
    FINAL_STATES,
    TokenBucket,
    absolute_time,
    check_credentials,
    random_throttle,
)

if TYPE_CHECKING:
    from smsgw.smsc.factory import SmscFactory

SMSC_SYSTEM_ID = "SMSCSIM"
_SEQ = struct.Struct(">I")
_BIND_KINDS: dict[int, tuple[str, bool, bool]] = {
    # command_id -> (bind type, can submit, can receive deliver_sm)
    CommandId.BIND_TRANSMITTER: ("transmitter", True, False),
    CommandId.BIND_RECEIVER: ("receiver", False, True),
    CommandId.BIND_TRANSCEIVER: ("transceiver", True, True),
}


@dataclass(slots=True)
class BindStats:
    """Counters of one connection."""

    peer: str
    system_id: str = ""
    bind_type: str = ""
    submits: int = 0
    throttled: int = 0
    receipts_sent: int = 0
    mo_sent: int = 0
    deliver_sm_unanswered: int = 0


class SmscProtocol(Protocol):
    """One ESME connection: bind, answer requests, carry receipts and MOs."""

    log = Logger()

    def __init__(self, factory: SmscFactory, peer: str) -> None:
        self.smsc = factory
        self._splitter = FrameSplitter(factory.settings.max_pdu)
        self._transport: ITransport | None = None
        self._closing = False
        self._seq = 0
        self._outstanding: set[int] = set()
        self._bucket: TokenBucket | None = None
        self.bound = False
        self.can_submit = False
        self.can_receive = False
        self.stats = BindStats(peer=peer)

    @property
    def system_id(self) -> str:
        """The bound system_id ('' before bind)."""
        return self.stats.system_id

    @property
    def unanswered(self) -> int:
        """deliver_sm sent on this session and not answered yet."""
        return len(self._outstanding)

    @override
    def connectionMade(self) -> None:
        self._transport = self.transport
        no_delay(self.transport)
        self.smsc.connection_made(self)

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.stats.deliver_sm_unanswered = len(self._outstanding)
        self.smsc.connection_lost(self)
        self._transport = None
        if self.bound:
            self.log.info(
                "session closed system_id={system_id} peer={peer} submits={submits}",
                system_id=self.system_id,
                peer=self.stats.peer,
                submits=self.stats.submits,
            )

    @override
    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        for frame in self._splitter.feed(data):
            self._frame_received(frame)
            if self._closing:
                return
        error = self._splitter.error
        if error is not None:
            header = error.header
            seq = P.decode_header(header)[3] if len(header) >= 16 else 0
            self.log.info(
                "framing error peer={peer}: {error}", peer=self.stats.peer, error=error
            )
            self._send(
                P.GenericNack(
                    sequence_number=seq, command_status=Status.ESME_RINVCMDLEN
                )
            )
            self._close()

    def _frame_received(self, frame: bytes) -> None:
        try:
            pdu = P.decode(frame)
        except P.DecodeError as e:
            self.log.info(
                "undecodable PDU peer={peer}: {error}", peer=self.stats.peer, error=e
            )
            self._send(
                P.GenericNack(
                    sequence_number=e.sequence_number, command_status=e.status
                )
            )
            return
        if self.smsc.log_received:
            self._log_pdu(pdu)
        handler = _HANDLERS.get(type(pdu))
        if handler is not None:
            handler(self, pdu)
        elif not pdu.is_response:  # outbind, alert_notification: not for an SMSC
            self._send(
                P.GenericNack(
                    sequence_number=pdu.sequence_number,
                    command_status=Status.ESME_RINVCMDID,
                )
            )

    def _log_pdu(self, pdu: P.Pdu) -> None:
        if isinstance(pdu, P.SubmitSm | P.DataSm):
            return  # logged with its message_id once accepted
        self.log.debug(
            "received {command} seq={seq} status={status} system_id={system_id}",
            command=command_name(pdu.command_id),
            seq=pdu.sequence_number,
            status=status_name(pdu.command_status),
            system_id=self.system_id,
        )

    # -- acting ---------------------------------------------------------------

    def _send(self, pdu: P.Pdu) -> None:
        if self._transport is not None:
            self._transport.write(P.encode(pdu))

    def _close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.loseConnection()

    def send_deliver(self, frame: bytes) -> None:
        """Send an encoded deliver_sm (sequence 0) with this session's next sequence."""
        seq = self._seq = self._seq + 1 if self._seq < 0x7FFFFFFF else 1
        self._outstanding.add(seq)
        if self._transport is not None:
            self._transport.write(frame[:12] + _SEQ.pack(seq) + frame[16:])

    # -- handlers ---------------------------------------------------------------

    def _on_bind(
        self, pdu: P.BindTransmitter | P.BindReceiver | P.BindTransceiver
    ) -> None:
        if self.bound:
            self._send(
                P.response_for(pdu, Status.ESME_RALYBND, system_id=SMSC_SYSTEM_ID)
            )
            return
        status = check_credentials(
            self.smsc.settings.accounts, pdu.system_id, pdu.password
        )
        if status != Status.ESME_ROK:
            self.log.info(
                "bind refused system_id={system_id} peer={peer} status={status}",
                system_id=pdu.system_id,
                peer=self.stats.peer,
                status=status_name(status),
            )
            self._send(P.response_for(pdu, status, system_id=SMSC_SYSTEM_ID))
            return
        kind, self.can_submit, self.can_receive = _BIND_KINDS[pdu.command_id]
        self.bound = True
        self.stats.system_id = pdu.system_id
        self.stats.bind_type = kind
        max_tps = self.smsc.settings.max_tps
        if max_tps is not None:
            self._bucket = TokenBucket(max_tps, self.smsc.clock.seconds())
        self.log.info(
            "bound {bind_type} system_id={system_id} peer={peer}",
            bind_type=kind,
            system_id=pdu.system_id,
            peer=self.stats.peer,
        )
        # SMPP 3.4 §5.3.2.25: tell the ESME which version we speak.
        version = ((Tag.SC_INTERFACE_VERSION, bytes((INTERFACE_VERSION,))),)
        self._send(P.response_for(pdu, system_id=SMSC_SYSTEM_ID, tlvs=version))
        self.smsc.session_bound(self)

    def _admit(self) -> int:
        smsc = self.smsc
        stats = self.stats
        stats.submits += 1
        if random_throttle(smsc.settings.throttle_fraction, smsc.rng) or (
            self._bucket is not None and not self._bucket.take(smsc.clock.seconds())
        ):
            stats.throttled += 1
            smsc.throttled += 1
            return Status.ESME_RTHROTTLED
        return Status.ESME_ROK

    def _on_submit(self, pdu: P.SubmitSm) -> None:
        self._take_message(pdu, pdu.short_message)

    def _on_data_sm(self, pdu: P.DataSm) -> None:
        self._take_message(pdu, pdu.tlv(Tag.MESSAGE_PAYLOAD) or b"")

    def _take_message(self, pdu: P.SubmitSm | P.DataSm, payload: bytes) -> None:
        """Answer a submit_sm or data_sm: refused, throttled, or accepted with an id."""
        if not self.can_submit:
            self._send(P.response_for(pdu, Status.ESME_RINVBNDSTS))
            return
        status = self._admit()
        if status:
            self._send(P.response_for(pdu, status))
            return
        message_id = self.smsc.accept(self, pdu, payload)
        self._send(P.response_for(pdu, Status.ESME_ROK, message_id=message_id))

    def _on_query(self, pdu: P.QuerySm) -> None:
        entry = self.smsc.query(pdu.message_id)
        if entry is None:
            self._send(P.response_for(pdu, Status.ESME_RQUERYFAIL))
            return
        state, final_time = entry
        self._send(
            P.QuerySmResp(
                sequence_number=pdu.sequence_number,
                message_id=pdu.message_id,
                final_date="" if final_time is None else absolute_time(final_time),
                message_state=state,
                error_code=0
                if state == MessageState.DELIVERED or state not in FINAL_STATES
                else 1,
            )
        )

    def _on_cancel(self, pdu: P.CancelSm) -> None:
        ok = self.smsc.cancel(pdu.message_id)
        self._send(
            P.response_for(pdu, Status.ESME_ROK if ok else Status.ESME_RCANCELFAIL)
        )

    def _on_replace(self, pdu: P.ReplaceSm) -> None:
        ok = self.smsc.is_open(pdu.message_id)
        self._send(
            P.response_for(pdu, Status.ESME_ROK if ok else Status.ESME_RREPLACEFAIL)
        )

    def _on_enquire_link(self, pdu: P.EnquireLink) -> None:
        self._send(P.EnquireLinkResp(sequence_number=pdu.sequence_number))

    def _on_unbind(self, pdu: P.Unbind) -> None:
        self.log.info(
            "unbind system_id={system_id} peer={peer}",
            system_id=self.system_id,
            peer=self.stats.peer,
        )
        self._send(P.UnbindResp(sequence_number=pdu.sequence_number))
        self.smsc.session_unbound(self)
        self._close()

    def _on_deliver_sm_resp(self, pdu: P.DeliverSmResp) -> None:
        self._outstanding.discard(pdu.sequence_number)
        if pdu.command_status:
            self.smsc.deliver_sm_errors += 1

    def _ignore(self, pdu: P.Pdu) -> None:
        pass


def _requires_bind(handler: Any) -> Any:
    def guarded(self: SmscProtocol, pdu: P.Pdu) -> None:
        if not self.bound:
            self._send(P.response_for(pdu, Status.ESME_RINVBNDSTS))
        else:
            handler(self, pdu)

    return guarded


_HANDLERS: dict[type[P.Pdu], Any] = {
    P.BindTransmitter: SmscProtocol._on_bind,
    P.BindReceiver: SmscProtocol._on_bind,
    P.BindTransceiver: SmscProtocol._on_bind,
    P.SubmitSm: SmscProtocol._on_submit,  # can_submit implies bound
    P.DataSm: SmscProtocol._on_data_sm,
    P.QuerySm: _requires_bind(SmscProtocol._on_query),
    P.CancelSm: _requires_bind(SmscProtocol._on_cancel),
    P.ReplaceSm: _requires_bind(SmscProtocol._on_replace),
    P.Unbind: _requires_bind(SmscProtocol._on_unbind),
    P.EnquireLink: SmscProtocol._on_enquire_link,
    P.DeliverSmResp: SmscProtocol._on_deliver_sm_resp,
    P.EnquireLinkResp: SmscProtocol._ignore,
    P.GenericNack: SmscProtocol._ignore,
}
