"""A cardholder's reply (MO) as parts, and the parts put back into one text.

Carriers deliver an MO in deliver_sm or data_sm. A long reply arrives in parts
tied together one of three ways:

- ``udh``: a concatenation IE in the user data header, 8-bit or 16-bit
  reference (23.040 §9.2.3.24.1 / .8), esm_class UDHI (0x40) set;
- ``sar``: sar_msg_ref_num / sar_total_segments / sar_segment_seqnum TLVs
  (SMPP 3.4 §5.3.2.22-24), no UDH;
- ``payload``: the whole text in message_payload (SMPP 3.4 §5.3.2.32), which
  may itself start with a UDH (UDHI set) carrying a concatenation IE.

Parts may come in any order and some may never come. ``mo_part`` reads one
PDU into a ``MoPart`` (plain data the store can keep until the rest arrives),
``group_key`` says which parts belong together, and ``assemble`` joins the
user data of consecutive parts before decoding it, so a GSM-7 escape or a
UTF-16 surrogate pair split across two parts still decodes.

GSM-7 (data_coding 0) is taken as unpacked, one septet per octet, which is
what SMPP carries; every data_coding goes through ``decode_text``, which never
raises. Pure: no Twisted, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from smsgw.codec import pdu as P
from smsgw.codec.constants import ESM_UDHI, Tag
from smsgw.codec.segment import Concat, UdhError, parse_udh
from smsgw.codec.text import decode_text

__all__ = [
    "GAP",
    "MAX_PARTS",
    "MAX_REF",
    "Assembled",
    "GroupKey",
    "MoError",
    "MoMethod",
    "MoPart",
    "Row",
    "assemble",
    "decode_single",
    "group_key",
    "mo_part",
]

MoMethod = Literal["single", "udh", "sar", "payload"]
_METHODS: dict[str, MoMethod] = {m: m for m in get_args(MoMethod)}

# Shown where parts are missing between two runs of parts that did arrive.
GAP = " \u2026 "

MAX_PARTS = 255  # total is one octet in the UDH IE and in sar_total_segments
MAX_REF = 0xFFFF  # 16-bit UDH reference and sar_msg_ref_num are two octets

Row = dict[str, str | int | bytes | None]
GroupKey = tuple[str, str, int | None, int, str]


class MoError(ValueError):
    """An MO PDU that cannot be read (a malformed user data header)."""


@dataclass(frozen=True, slots=True)
class MoPart:
    """One received part of a reply.

    ``data`` is the user data with any UDH removed. ``ref`` is None and
    ``total`` and ``seq`` are 1 for a message that came whole. Raises
    ValueError for an unknown ``method``, a ``seq`` outside 1..``total``, a
    ``total`` above 255 or a ``ref`` outside 0..65535.
    """

    source: str
    destination: str
    data_coding: int
    ref: int | None
    total: int
    seq: int
    data: bytes
    method: MoMethod

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ValueError(f"unknown MO method {self.method!r}")
        if not 1 <= self.seq <= self.total:
            raise ValueError(f"part {self.seq} is outside 1..{self.total}")
        if self.total > MAX_PARTS:
            raise ValueError(f"total {self.total} is above {MAX_PARTS}")
        if self.ref is not None and not 0 <= self.ref <= MAX_REF:
            raise ValueError(f"ref {self.ref} is outside 0..{MAX_REF}")

    def to_row(self) -> Row:
        """Return the part as a dict of plain values (str, int, bytes, None)."""
        return {
            "source": self.source,
            "destination": self.destination,
            "data_coding": self.data_coding,
            "ref": self.ref,
            "total": self.total,
            "seq": self.seq,
            "data": self.data,
            "method": self.method,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> MoPart:
        """Rebuild a part from ``to_row``'s dict (or a database row mapping).

        ``data`` may be bytes, bytearray or memoryview (what drivers return
        for a blob). Raises ValueError naming the field that is missing or of
        the wrong type.
        """
        name = _row_str(row, "method")
        method = _METHODS.get(name)
        if method is None:
            raise ValueError(f"row field 'method': unknown MO method {name!r}")
        ref = row.get("ref")
        if ref is not None and (not isinstance(ref, int) or isinstance(ref, bool)):
            raise ValueError(f"row field 'ref': expected int or None, got {ref!r}")
        data = row.get("data")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValueError(f"row field 'data': expected bytes, got {data!r}")
        return cls(
            source=_row_str(row, "source"),
            destination=_row_str(row, "destination"),
            data_coding=_row_int(row, "data_coding"),
            ref=ref,
            total=_row_int(row, "total"),
            seq=_row_int(row, "seq"),
            data=bytes(data),
            method=method,
        )


def _row_str(row: Mapping[str, object], name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        raise ValueError(f"row field {name!r}: expected str, got {value!r}")
    return value


def _row_int(row: Mapping[str, object], name: str) -> int:
    value = row.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"row field {name!r}: expected int, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Assembled:
    """A reply put back together.

    ``parts`` counts the distinct parts used; ``missing`` lists the part
    numbers that did not arrive (empty when ``complete``).
    """

    text: str
    complete: bool
    parts: int
    missing: tuple[int, ...]


def _strip_udh(user_data: bytes, where: str) -> tuple[Concat | None, bytes]:
    try:
        return parse_udh(user_data)
    except UdhError as exc:
        raise MoError(f"malformed UDH in {where}: {exc}") from None


def _sar(pdu: P.DeliverSm | P.DataSm) -> Concat | None:
    """Return the SAR TLVs as a Concat, or None when one is absent or invalid.

    The values are read as big-endian integers whatever their TLV length
    (SMSCs do not always keep the spec's 2, 1, 1 octets) but must fit them.
    """
    ref = pdu.tlv_int(Tag.SAR_MSG_REF_NUM)
    total = pdu.tlv_int(Tag.SAR_TOTAL_SEGMENTS)
    seq = pdu.tlv_int(Tag.SAR_SEGMENT_SEQNUM)
    if ref is None or total is None or seq is None:
        return None
    if not 1 <= seq <= total <= MAX_PARTS or ref > MAX_REF:
        return None  # seq 0, beyond total, or wider than the spec's octets
    return Concat(ref, total, seq)


def mo_part(pdu: P.DeliverSm | P.DataSm) -> MoPart:
    """Read one MO PDU into a MoPart.

    message_payload wins when present: method "payload", one part, unless
    UDHI is set and its UDH holds a concatenation IE (then ref/total/seq come
    from it); the UDH is removed either way. Otherwise with UDHI the UDH of
    short_message is parsed: a concatenation IE makes a "udh" part; without
    one the UDH is still removed and the SAR TLVs, if valid, make a "sar"
    part, else it is "single". Without UDHI, valid SAR TLVs (all three,
    1 <= seq <= total) make a "sar" part, anything else a "single" one.
    Raises MoError for a malformed UDH.
    """
    udhi = bool(pdu.esm_class & ESM_UDHI)
    payload = pdu.tlv(Tag.MESSAGE_PAYLOAD)
    concat: Concat | None = None
    method: MoMethod
    if payload is not None:
        method = "payload"
        data = payload
        if udhi:
            concat, data = _strip_udh(payload, "message_payload")
    else:
        data = pdu.short_message if isinstance(pdu, P.DeliverSm) else b""
        if udhi:
            concat, data = _strip_udh(data, "short_message")
        method = "udh" if concat is not None else "single"
        if concat is None:
            concat = _sar(pdu)
            if concat is not None:
                method = "sar"
    return MoPart(
        source=pdu.source_addr,
        destination=pdu.destination_addr,
        data_coding=pdu.data_coding,
        ref=None if concat is None else concat.ref,
        total=1 if concat is None else concat.total,
        seq=1 if concat is None else concat.seq,
        data=data,
        method=method,
    )


def group_key(part: MoPart) -> GroupKey:
    """Return (source, destination, ref, total, family) naming one message.

    Parts with equal keys are parts of one reply. The family is "sar" for SAR
    parts and "udh" for parts tied by a UDH concatenation IE (in short_message
    or in message_payload), so a SAR reference never joins a UDH one. A part
    with no reference (ref None, total 1) is a whole message, family
    "single": it needs no grouping, and two such replies from one sender share
    a key, so decode them at once rather than keep them to wait for others.
    """
    if part.method == "sar":
        family = "sar"
    elif part.ref is None:
        family = "single"
    else:
        family = "udh"
    return (part.source, part.destination, part.ref, part.total, family)


def assemble(parts: Sequence[MoPart]) -> Assembled:
    """Put the parts of one reply (one ``group_key``) back into text.

    Parts are ordered by ``seq`` whatever their arrival order; of duplicate
    numbers the first to arrive is kept. The data_coding of the first part is
    used for all (parts of one message share it) and the expected count is
    the largest ``total`` among them. The user data of consecutive parts is
    joined before decoding; where parts are missing each run of consecutive
    parts is decoded on its own and the runs are joined with " … " (parts
    missing at either end add no marker; ``complete`` is then False and
    ``missing`` lists the absent numbers).
    Raises ValueError when ``parts`` is empty.
    """
    if not parts:
        raise ValueError("assemble needs at least one part")
    data_coding = parts[0].data_coding
    total = max(p.total for p in parts)
    by_seq: dict[int, bytes] = {}
    for part in parts:
        by_seq.setdefault(part.seq, part.data)
    runs: list[bytes] = []
    run: list[bytes] = []
    missing: list[int] = []
    for seq in range(1, total + 1):
        data = by_seq.get(seq)
        if data is None:
            missing.append(seq)
            if run:
                runs.append(b"".join(run))
                run = []
        else:
            run.append(data)
    if run:
        runs.append(b"".join(run))
    text = GAP.join(decode_text(r, data_coding) for r in runs)
    return Assembled(
        text=text, complete=not missing, parts=len(by_seq), missing=tuple(missing)
    )


def decode_single(part: MoPart) -> str:
    """Return the text of one part on its own (``assemble([part]).text``)."""
    return assemble([part]).text
