"""SMPP 3.4 PDUs as frozen dataclasses, encoded and decoded with ``struct``.

``encode(pdu) -> bytes`` and ``decode(frame) -> Pdu``. Every PDU an ESME and an
SMSC exchange is here (submit_multi excepted: one recipient per submit_sm, see
facts.md). Optional parameters (TLVs) are read by their own length, so unknown
and vendor tags are kept, in order, and re-encoded unchanged. Error responses
are accepted with or without a body (SMPP 3.4 §4.4.2 omits the body when
command_status is not 0; some SMSCs send it anyway).

The message PDUs on the hot path (submit_sm, deliver_sm, their responses,
enquire_link) have hand-written encoders and decoders; the others go through a
small field-table interpreter.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from smsgw.codec.constants import HEADER_LENGTH, CommandId, Status

Tlv = tuple[int, bytes]

_HEADER = struct.Struct(">IIII")
_TLV_HEAD = struct.Struct(">HH")
_B2 = struct.Struct(">BB")
_B3 = struct.Struct(">BBB")
_B5 = struct.Struct(">BBBBB")
_NUL = b"\x00"


class DecodeError(ValueError):
    """A frame that is not a valid PDU.

    ``status`` is the command_status to answer it with (in a generic_nack or the
    matching response), ``command_id`` and ``sequence_number`` are what the header
    said, so the peer can correlate the refusal.
    """

    def __init__(
        self, message: str, *, status: int, command_id: int, sequence_number: int
    ) -> None:
        super().__init__(message)
        self.status = status
        self.command_id = command_id
        self.sequence_number = sequence_number


class EncodeError(ValueError):
    """A PDU whose fields cannot be put on the wire (too long, not Latin-1)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Pdu:
    """Fields every PDU has: the header's status and sequence, and TLVs."""

    command_id: ClassVar[int] = 0
    # Mandatory body fields: (name, kind, maximum length including the NUL).
    # kind: "c" C-octet string, "B" one octet, "sm" sm_length + short_message.
    FIELDS: ClassVar[tuple[tuple[str, str, int], ...]] = ()

    sequence_number: int = 0
    command_status: int = 0
    tlvs: tuple[Tlv, ...] = ()

    def tlv(self, tag: int) -> bytes | None:
        """Return the value of the first TLV with ``tag``, or None."""
        for t, v in self.tlvs:
            if t == tag:
                return v
        return None

    def tlv_int(self, tag: int) -> int | None:
        """Return a TLV read as a big-endian unsigned integer, or None."""
        v = self.tlv(tag)
        return None if v is None else int.from_bytes(v, "big")

    def tlv_str(self, tag: int) -> str | None:
        """Return a C-octet-string TLV without its NUL terminator, or None."""
        v = self.tlv(tag)
        if v is None:
            return None
        end = v.find(0)
        return (v if end < 0 else v[:end]).decode("latin-1")

    @property
    def is_response(self) -> bool:
        """True for the *_resp PDUs and generic_nack."""
        return bool(self.command_id & 0x80000000)


def tlv_uint(tag: int, value: int, size: int) -> Tlv:
    """Build an integer TLV of ``size`` octets.

    Raises EncodeError when ``value`` does not fit.
    """
    try:
        return (tag, value.to_bytes(size, "big"))
    except OverflowError as e:
        raise EncodeError(f"TLV 0x{tag:04X}: {value} does not fit {size} octets") from e


def tlv_cstr(tag: int, value: str) -> Tlv:
    """Build a C-octet-string TLV (NUL-terminated).

    Raises EncodeError when ``value`` is not Latin-1 or holds a NUL.
    """
    return (tag, _cstr(value, 0x10000, f"TLV 0x{tag:04X}") + _NUL)


# --------------------------------------------------------------------------
# PDU types
# --------------------------------------------------------------------------

_BIND_FIELDS = (
    ("system_id", "c", 16),
    ("password", "c", 9),
    ("system_type", "c", 13),
    ("interface_version", "B", 1),
    ("addr_ton", "B", 1),
    ("addr_npi", "B", 1),
    ("address_range", "c", 41),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bind(Pdu):
    FIELDS = _BIND_FIELDS
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitter(_Bind):
    command_id = CommandId.BIND_TRANSMITTER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiver(_Bind):
    command_id = CommandId.BIND_RECEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiver(_Bind):
    command_id = CommandId.BIND_TRANSCEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class _BindResp(Pdu):
    FIELDS = (("system_id", "c", 16),)
    system_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitterResp(_BindResp):
    command_id = CommandId.BIND_TRANSMITTER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiverResp(_BindResp):
    command_id = CommandId.BIND_RECEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiverResp(_BindResp):
    command_id = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class Outbind(Pdu):
    command_id = CommandId.OUTBIND
    FIELDS = (("system_id", "c", 16), ("password", "c", 9))
    system_id: str = ""
    password: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Unbind(Pdu):
    command_id = CommandId.UNBIND


@dataclass(frozen=True, slots=True, kw_only=True)
class UnbindResp(Pdu):
    command_id = CommandId.UNBIND_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLink(Pdu):
    command_id = CommandId.ENQUIRE_LINK


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLinkResp(Pdu):
    command_id = CommandId.ENQUIRE_LINK_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericNack(Pdu):
    command_id = CommandId.GENERIC_NACK


_SM_FIELDS = (
    ("service_type", "c", 6),
    ("source_addr_ton", "B", 1),
    ("source_addr_npi", "B", 1),
    ("source_addr", "c", 21),
    ("dest_addr_ton", "B", 1),
    ("dest_addr_npi", "B", 1),
    ("destination_addr", "c", 21),
    ("esm_class", "B", 1),
    ("protocol_id", "B", 1),
    ("priority_flag", "B", 1),
    ("schedule_delivery_time", "c", 17),
    ("validity_period", "c", 17),
    ("registered_delivery", "B", 1),
    ("replace_if_present_flag", "B", 1),
    ("data_coding", "B", 1),
    ("sm_default_msg_id", "B", 1),
    ("short_message", "sm", 255),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _ShortMessage(Pdu):
    FIELDS = _SM_FIELDS
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSm(_ShortMessage):
    command_id = CommandId.SUBMIT_SM


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSm(_ShortMessage):
    command_id = CommandId.DELIVER_SM


@dataclass(frozen=True, slots=True, kw_only=True)
class _MessageIdResp(Pdu):
    FIELDS = (("message_id", "c", 65),)
    message_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSmResp(_MessageIdResp):
    command_id = CommandId.SUBMIT_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSmResp(_MessageIdResp):
    command_id = CommandId.DELIVER_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class DataSmResp(_MessageIdResp):
    command_id = CommandId.DATA_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class DataSm(Pdu):
    command_id = CommandId.DATA_SM
    FIELDS = (
        ("service_type", "c", 6),
        ("source_addr_ton", "B", 1),
        ("source_addr_npi", "B", 1),
        ("source_addr", "c", 65),
        ("dest_addr_ton", "B", 1),
        ("dest_addr_npi", "B", 1),
        ("destination_addr", "c", 65),
        ("esm_class", "B", 1),
        ("registered_delivery", "B", 1),
        ("data_coding", "B", 1),
    )
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySm(Pdu):
    command_id = CommandId.QUERY_SM
    FIELDS = (
        ("message_id", "c", 65),
        ("source_addr_ton", "B", 1),
        ("source_addr_npi", "B", 1),
        ("source_addr", "c", 21),
    )
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySmResp(Pdu):
    command_id = CommandId.QUERY_SM_RESP
    FIELDS = (
        ("message_id", "c", 65),
        ("final_date", "c", 17),
        ("message_state", "B", 1),
        ("error_code", "B", 1),
    )
    message_id: str = ""
    final_date: str = ""
    message_state: int = 0
    error_code: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelSm(Pdu):
    command_id = CommandId.CANCEL_SM
    FIELDS = (
        ("service_type", "c", 6),
        ("message_id", "c", 65),
        ("source_addr_ton", "B", 1),
        ("source_addr_npi", "B", 1),
        ("source_addr", "c", 21),
        ("dest_addr_ton", "B", 1),
        ("dest_addr_npi", "B", 1),
        ("destination_addr", "c", 21),
    )
    service_type: str = ""
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelSmResp(Pdu):
    command_id = CommandId.CANCEL_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaceSm(Pdu):
    command_id = CommandId.REPLACE_SM
    FIELDS = (
        ("message_id", "c", 65),
        ("source_addr_ton", "B", 1),
        ("source_addr_npi", "B", 1),
        ("source_addr", "c", 21),
        ("schedule_delivery_time", "c", 17),
        ("validity_period", "c", 17),
        ("registered_delivery", "B", 1),
        ("sm_default_msg_id", "B", 1),
        ("short_message", "sm", 255),
    )
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaceSmResp(Pdu):
    command_id = CommandId.REPLACE_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertNotification(Pdu):
    command_id = CommandId.ALERT_NOTIFICATION
    FIELDS = (
        ("source_addr_ton", "B", 1),
        ("source_addr_npi", "B", 1),
        ("source_addr", "c", 65),
        ("esme_addr_ton", "B", 1),
        ("esme_addr_npi", "B", 1),
        ("esme_addr", "c", 65),
    )
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    esme_addr_ton: int = 0
    esme_addr_npi: int = 0
    esme_addr: str = ""


PDU_TYPES: dict[int, type[Pdu]] = {
    cls.command_id: cls
    for cls in (
        BindTransmitter,
        BindTransmitterResp,
        BindReceiver,
        BindReceiverResp,
        BindTransceiver,
        BindTransceiverResp,
        Outbind,
        Unbind,
        UnbindResp,
        EnquireLink,
        EnquireLinkResp,
        GenericNack,
        SubmitSm,
        SubmitSmResp,
        DeliverSm,
        DeliverSmResp,
        DataSm,
        DataSmResp,
        QuerySm,
        QuerySmResp,
        CancelSm,
        CancelSmResp,
        ReplaceSm,
        ReplaceSmResp,
        AlertNotification,
    )
}

RESPONSE_TYPE: dict[int, type[Pdu]] = {
    cid: PDU_TYPES[cid | 0x80000000]
    for cid in PDU_TYPES
    if not cid & 0x80000000 and cid | 0x80000000 in PDU_TYPES
}


# --------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------


def _cstr(value: str, limit: int, name: str) -> bytes:
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError as e:
        raise EncodeError(f"{name}: not Latin-1: {value!r}") from e
    if 0 in raw:  # int membership is a memchr; `b"\x00" in raw` is 10x slower
        # A NUL inside a C-octet string would end it early and shift every
        # later field on the wire (SMPP 3.4 §3.1: NUL-terminated).
        raise EncodeError(f"{name}: contains a NUL octet")
    if len(raw) >= limit:
        raise EncodeError(f"{name}: at most {limit - 1} octets, got {len(raw)}")
    return raw


def encode_tlvs(tlvs: Iterable[Tlv]) -> bytes:
    """Encode TLVs in the order given."""
    out = []
    for tag, value in tlvs:
        if not 0 <= tag <= 0xFFFF:
            raise EncodeError(f"TLV tag {tag}: must fit two octets")
        if len(value) > 0xFFFF:
            raise EncodeError(f"TLV 0x{tag:04X}: value over 65535 octets")
        out.append(_TLV_HEAD.pack(tag, len(value)))
        out.append(value)
    return b"".join(out)


def _encode_generic(pdu: Pdu) -> bytes:
    parts: list[bytes] = []
    for name, kind, limit in pdu.FIELDS:
        value = getattr(pdu, name)
        if kind == "c":
            parts.append(_cstr(value, limit, name))
            parts.append(_NUL)
        elif kind == "B":
            if not 0 <= value <= 0xFF:
                raise EncodeError(f"{name}: must fit one octet, got {value}")
            parts.append(bytes((value,)))
        else:  # "sm"
            if len(value) > limit:
                raise EncodeError(f"{name}: at most {limit} octets, got {len(value)}")
            parts.append(bytes((len(value),)))
            parts.append(value)
    if pdu.tlvs:
        parts.append(encode_tlvs(pdu.tlvs))
    return b"".join(parts)


def _encode_sm(p: _ShortMessage) -> bytes:
    sm = p.short_message
    if len(sm) > 255:
        raise EncodeError(f"short_message: at most 255 octets, got {len(sm)}")
    try:
        body = b"".join(
            (
                _cstr(p.service_type, 6, "service_type"),
                _NUL,
                _B2.pack(p.source_addr_ton, p.source_addr_npi),
                _cstr(p.source_addr, 21, "source_addr"),
                _NUL,
                _B2.pack(p.dest_addr_ton, p.dest_addr_npi),
                _cstr(p.destination_addr, 21, "destination_addr"),
                _NUL,
                _B3.pack(p.esm_class, p.protocol_id, p.priority_flag),
                _cstr(p.schedule_delivery_time, 17, "schedule_delivery_time"),
                _NUL,
                _cstr(p.validity_period, 17, "validity_period"),
                _NUL,
                _B5.pack(
                    p.registered_delivery,
                    p.replace_if_present_flag,
                    p.data_coding,
                    p.sm_default_msg_id,
                    len(sm),
                ),
                sm,
                encode_tlvs(p.tlvs) if p.tlvs else b"",
            )
        )
    except struct.error as e:
        raise EncodeError(f"{p.command_id:#x}: integer field out of range: {e}") from e
    return body


def _encode_message_id(p: _MessageIdResp) -> bytes:
    body = _cstr(p.message_id, 65, "message_id") + _NUL
    return body + encode_tlvs(p.tlvs) if p.tlvs else body


def _encode_empty(p: Pdu) -> bytes:
    return encode_tlvs(p.tlvs) if p.tlvs else b""


_BODY_ENCODERS: dict[type[Pdu], Callable[[Pdu], bytes]] = {}
for _cls in PDU_TYPES.values():
    _BODY_ENCODERS[_cls] = _encode_empty if not _cls.FIELDS else _encode_generic
for _cls in (SubmitSm, DeliverSm):
    _BODY_ENCODERS[_cls] = _encode_sm  # type: ignore[assignment]
for _cls in (SubmitSmResp, DeliverSmResp, DataSmResp):
    _BODY_ENCODERS[_cls] = _encode_message_id  # type: ignore[assignment]


def encode(pdu: Pdu, sequence_number: int | None = None) -> bytes:
    """Encode a PDU into one frame, header included.

    ``sequence_number`` overrides the PDU's own (a session numbers requests
    as it sends them). Raises EncodeError when a field cannot be represented.
    """
    body = _BODY_ENCODERS[type(pdu)](pdu)
    try:
        header = _HEADER.pack(
            HEADER_LENGTH + len(body),
            pdu.command_id,
            pdu.command_status,
            pdu.sequence_number if sequence_number is None else sequence_number,
        )
    except struct.error as e:
        raise EncodeError(f"header field out of range: {e}") from e
    return header + body


# --------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------


def decode_tlvs(frame: bytes, pos: int) -> tuple[Tlv, ...]:
    """Read TLVs from ``pos`` to the end of ``frame``, each by its own length.

    Raises ValueError when a TLV runs past the end of the frame.
    """
    end = len(frame)
    if pos == end:
        return ()
    out = []
    while pos < end:
        if pos + 4 > end:
            raise ValueError(f"truncated TLV header at offset {pos}")
        tag, length = _TLV_HEAD.unpack_from(frame, pos)
        pos += 4
        if pos + length > end:
            raise ValueError(f"TLV 0x{tag:04X} length {length} runs past the PDU")
        out.append((tag, frame[pos : pos + length]))
        pos += length
    return tuple(out)


_P = TypeVar("_P", bound=Pdu)


def _decode_generic(cls: type[_P], frame: bytes, status: int, seq: int) -> _P:
    pos = HEADER_LENGTH
    end = len(frame)
    values: dict[str, object] = {}
    if pos == end and cls.FIELDS and cls.command_id & 0x80000000:
        # SMPP 3.4 §4.4.2 and others: an error response may carry no body.
        return cls(sequence_number=seq, command_status=status)
    for name, kind, _limit in cls.FIELDS:
        if kind == "c":
            nul = frame.find(0, pos)
            if nul < 0:
                raise ValueError(f"{name}: no NUL terminator")
            values[name] = frame[pos:nul].decode("latin-1")
            pos = nul + 1
        elif kind == "B":
            if pos >= end:
                raise ValueError(f"{name}: PDU ends early")
            values[name] = frame[pos]
            pos += 1
        else:
            if pos >= end:
                raise ValueError("sm_length: PDU ends early")
            n = frame[pos]
            pos += 1
            if pos + n > end:
                raise ValueError(f"sm_length {n} runs past the PDU")
            values[name] = frame[pos : pos + n]
            pos += n
    tlvs = decode_tlvs(frame, pos)
    return cls(sequence_number=seq, command_status=status, tlvs=tlvs, **values)


def _slot_builder(cls: type[Pdu]) -> Callable[..., Pdu]:
    """A constructor taking every field positionally, in declaration order.

    It sets the slots through their descriptors, skipping the frozen
    dataclass ``__init__`` (one ``object.__setattr__`` per field): decoding a
    deliver_sm is on the hot path of every receipt and costs ~1 µs less this
    way. The result is an ordinary instance (equal, hashable, frozen).
    """
    names = [f.name for f in dataclasses.fields(cls)]
    namespace: dict[str, object] = {"new": object.__new__, "cls": cls}
    for i, name in enumerate(names):
        namespace[f"set{i}"] = getattr(cls, name).__set__
    body = "".join(f"    set{i}(o, {name})\n" for i, name in enumerate(names))
    exec(
        f"def build({', '.join(names)}):\n    o = new(cls)\n{body}    return o\n",
        namespace,
    )
    return namespace["build"]  # type: ignore[return-value]


_SM_BUILDERS: dict[type[Pdu], Callable[..., Pdu]] = {
    cls: _slot_builder(cls) for cls in (SubmitSm, DeliverSm)
}


def _decode_sm(cls: type[_P], frame: bytes, status: int, seq: int) -> _P:
    f = frame.index  # raises ValueError when a C-octet string has no NUL
    p = HEADER_LENGTH
    n = f(0, p)
    service_type = frame[p:n].decode("latin-1")
    p = n + 3
    src_ton, src_npi = frame[n + 1], frame[n + 2]
    n = f(0, p)
    source_addr = frame[p:n].decode("latin-1")
    dst_ton, dst_npi = frame[n + 1], frame[n + 2]
    p = n + 3
    n = f(0, p)
    destination_addr = frame[p:n].decode("latin-1")
    esm_class, protocol_id, priority = frame[n + 1], frame[n + 2], frame[n + 3]
    p = n + 4
    n = f(0, p)
    sdt = frame[p:n].decode("latin-1")
    p = n + 1
    n = f(0, p)
    vp = frame[p:n].decode("latin-1")
    rd, rip, dc, dflt, smlen = _B5.unpack_from(frame, n + 1)
    p = n + 6
    if p + smlen > len(frame):
        raise ValueError("truncated short message PDU")
    sm = frame[p : p + smlen]
    return _SM_BUILDERS[cls](  # type: ignore[return-value]
        seq,
        status,
        decode_tlvs(frame, p + smlen),
        service_type,
        src_ton,
        src_npi,
        source_addr,
        dst_ton,
        dst_npi,
        destination_addr,
        esm_class,
        protocol_id,
        priority,
        sdt,
        vp,
        rd,
        rip,
        dc,
        dflt,
        sm,
    )


def _decode_message_id(cls: type[_P], frame: bytes, status: int, seq: int) -> _P:
    if len(frame) == HEADER_LENGTH:
        return cls(sequence_number=seq, command_status=status)
    n = frame.find(0, HEADER_LENGTH)
    if n < 0:
        raise ValueError("message_id: no NUL terminator")
    return cls(  # type: ignore[call-arg]
        sequence_number=seq,
        command_status=status,
        message_id=frame[HEADER_LENGTH:n].decode("latin-1"),
        tlvs=decode_tlvs(frame, n + 1),
    )


_Decoder = Callable[[type[Pdu], bytes, int, int], Pdu]
_DECODERS: dict[int, tuple[type[Pdu], _Decoder]] = {
    cid: (cls, _decode_generic) for cid, cls in PDU_TYPES.items()
}
for _cls in (SubmitSm, DeliverSm):
    _DECODERS[_cls.command_id] = (_cls, _decode_sm)
for _cls in (SubmitSmResp, DeliverSmResp, DataSmResp):
    _DECODERS[_cls.command_id] = (_cls, _decode_message_id)


def decode_header(frame: bytes) -> tuple[int, int, int, int]:
    """Return (command_length, command_id, command_status, sequence_number)."""
    return _HEADER.unpack_from(frame)


def decode(frame: bytes) -> Pdu:
    """Decode one whole frame (as cut by the framer) into a PDU.

    Raises DecodeError with the status to answer: ESME_RINVCMDLEN when the
    length field disagrees with the frame, ESME_RINVCMDID for an unknown
    command, ESME_RINVMSGLEN or ESME_RINVOPTPARSTREAM for a bad body.
    """
    if len(frame) < HEADER_LENGTH:
        raise DecodeError(
            f"frame of {len(frame)} octets is shorter than a header",
            status=Status.ESME_RINVCMDLEN,
            command_id=0,
            sequence_number=0,
        )
    length, cid, status, seq = _HEADER.unpack_from(frame)
    if length != len(frame):
        raise DecodeError(
            f"command_length {length} but frame has {len(frame)} octets",
            status=Status.ESME_RINVCMDLEN,
            command_id=cid,
            sequence_number=seq,
        )
    entry = _DECODERS.get(cid)
    if entry is None:
        raise DecodeError(
            f"unknown command_id 0x{cid:08X}",
            status=Status.ESME_RINVCMDID,
            command_id=cid,
            sequence_number=seq,
        )
    cls, decoder = entry
    try:
        return decoder(cls, frame, status, seq)
    except (ValueError, IndexError, struct.error) as e:
        bad_tlv = "TLV" in str(e)
        raise DecodeError(
            f"{cls.__name__}: {e}",
            status=Status.ESME_RINVOPTPARSTREAM if bad_tlv else Status.ESME_RINVMSGLEN,
            command_id=cid,
            sequence_number=seq,
        ) from e


def response_for(request: Pdu, status: int = 0, **fields: object) -> Pdu:
    """Build the response PDU that answers ``request`` (same sequence number)."""
    cls = RESPONSE_TYPE[request.command_id]
    return cls(
        sequence_number=request.sequence_number,
        command_status=status,
        **fields,  # type: ignore[arg-type]
    )
