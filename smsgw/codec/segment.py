"""Split a text into SMPP submit_sm parts, and put parts back together.

Methods (how the parts are tied together):

- ``udh8``: UDH ``05 00 03 ref total seq`` (23.040 §9.2.3.24.1), esm_class UDHI.
- ``udh16``: UDH ``06 08 04 refHi refLo total seq`` (23.040 §9.2.3.24.8).
- ``sar``: no UDH; sar_msg_ref_num / sar_total_segments / sar_segment_seqnum
  TLVs (SMPP 3.4 §5.3.2.22-24); each part carries a full 160/70/140 units.
- ``payload``: one PDU, the whole text in message_payload (SMPP 3.4 §5.3.2.32).

A text that fits one SMS is always sent as one plain part, whatever the method.
Parts never split a GSM escape (ESC + char) or a UTF-16 surrogate pair: the
part is one unit shorter instead. Packed GSM-7 parts also never end with CR
exactly on an octet boundary (23.038 §6.1.2.3.1 makes that ambiguous with CR
padding); such a part is one septet shorter, and a one-part text that would end
so is sent as concatenated parts. Nothing is ever truncated: more parts than
allowed raise TooManyPartsError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from smsgw.codec.gsm7 import ESC, decode_gsm7, pack_septets, unpack_septets
from smsgw.codec.text import (
    SINGLE_LIMITS,
    Encoding,
    choose_encoding,
    decode_ucs2,
    encode_text,
)

__all__ = [
    "DEFAULT_DATA_CODINGS",
    "MAX_PAYLOAD",
    "Concat",
    "ConcatMethod",
    "MessageTooLongError",
    "PayloadTooLongError",
    "Segment",
    "SegmentPlan",
    "TooManyPartsError",
    "UdhError",
    "count_parts",
    "parse_udh",
    "reassemble",
    "segment",
    "udh_septet_fill",
]

ConcatMethod = Literal["udh8", "udh16", "sar", "payload"]

TAG_SAR_MSG_REF_NUM = 0x020C
TAG_SAR_TOTAL_SEGMENTS = 0x020E
TAG_SAR_SEGMENT_SEQNUM = 0x020F
TAG_MESSAGE_PAYLOAD = 0x0424

MAX_PAYLOAD = 0xFFFF  # a TLV length is 2 octets (SMPP 3.4 §3.2.4.1)
MAX_CONCAT_PARTS = 255  # total is one octet (UDH IE and sar_total_segments)
DEFAULT_DATA_CODINGS: Mapping[str, int] = {"gsm7": 0, "latin1": 3, "ucs2": 8}

_UDH_LEN: dict[str, int] = {"udh8": 6, "udh16": 7, "sar": 0}
_CR = 0x0D


class MessageTooLongError(ValueError):
    """A text that cannot be sent within the configured limits."""


class TooManyPartsError(MessageTooLongError):
    """The text needs ``needed`` parts but at most ``limit`` are allowed."""

    def __init__(self, needed: int, limit: int) -> None:
        super().__init__(f"text needs {needed} parts, limit is {limit}")
        self.needed = needed
        self.limit = limit


class PayloadTooLongError(MessageTooLongError):
    """The encoded text (``size`` octets) exceeds message_payload's ``limit``."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"encoded text is {size} octets, message_payload max {limit}")
        self.size = size
        self.limit = limit


class UdhError(ValueError):
    """A user data header that runs past its data or is otherwise malformed."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One submit_sm's message: set esm_class bit 0x40 when ``udhi``."""

    short_message: bytes
    udhi: bool
    tlvs: tuple[tuple[int, bytes], ...]


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """The parts of one text, its alphabet and the data_coding to send."""

    encoding: Encoding
    data_coding: int
    segments: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class Concat:
    """A concatenation IE: reference, total parts, this part's number (1-based)."""

    ref: int
    total: int
    seq: int


def udh_septet_fill(udh_len_octets: int) -> int:
    """Return the fill bits after a UDH of that many octets (UDHL included) so
    the first septet starts on a septet boundary (23.040 §9.2.3.24)."""
    if udh_len_octets < 0:
        raise ValueError(f"UDH length must be >= 0, got {udh_len_octets}")
    return -(8 * udh_len_octets) % 7


def _part_units(encoding: Encoding, method: str) -> int:
    udh = _UDH_LEN.get(method)
    if udh is None:
        raise ValueError(f"unknown concatenation method {method!r}")
    if encoding == "gsm7":
        return (8 * (140 - udh) - udh_septet_fill(udh)) // 7  # 160 / 153 / 152
    if encoding == "ucs2":
        return (140 - udh) // 2  # 70 / 67 / 66
    return 140 - udh  # 140 / 134 / 133


def _cuts(data: bytes, encoding: Encoding, limit: int, fill: int | None) -> list[int]:
    """Return the end offset (in octets of ``data``) of each part.

    ``limit`` is in units; ``fill`` is the septet fill of packed GSM-7 parts,
    None when the septets are not packed.
    """
    n = len(data)
    ends: list[int] = []
    start = 0
    if encoding == "ucs2":
        step = 2 * limit
        while start < n:
            end = min(start + step, n)
            if end < n and 0xD8 <= data[end - 2] <= 0xDB:  # high surrogate last
                end -= 2
            ends.append(end)
            start = end
        return ends
    if encoding == "latin1":
        return [*range(limit, n, limit), n]
    while start < n:
        end = min(start + limit, n)
        while not _gsm_end_ok(data, start, end, limit, fill):
            end -= 1
        ends.append(end)
        start = end
    return ends


def _ends_on_cr_boundary(data: bytes, start: int, end: int, fill: int) -> bool:
    return data[end - 1] == _CR and (fill + 7 * (end - start)) % 8 == 0


def _gsm_end_ok(
    data: bytes, start: int, end: int, limit: int, fill: int | None
) -> bool:
    n = len(data)
    if end < n and data[end - 1] == ESC:  # our encoder never emits ESC ESC
        return False
    if fill is None:
        return True
    if _ends_on_cr_boundary(data, start, end, fill):
        return False
    # The remainder, if it is the last part, must not end so either: it
    # could not shorten itself (a lone CR part with fill 1 would).
    return not (
        end < n and n - end <= limit and _ends_on_cr_boundary(data, end, n, fill)
    )


def _data_coding(encoding: Encoding, overrides: Mapping[str, int] | None) -> int:
    if overrides is not None and encoding in overrides:
        return overrides[encoding]
    return DEFAULT_DATA_CODINGS[encoding]


def _single_octets(encoding: Encoding) -> int:
    """Return the encoded (unpacked) length that fits one SMS without a UDH."""
    return SINGLE_LIMITS[encoding] * (2 if encoding == "ucs2" else 1)


def _fits_one(data: bytes, encoding: Encoding, packed: bool) -> bool:
    if len(data) > _single_octets(encoding):
        return False
    # 23.038 §6.1.2.3.1: packed, a final CR on an octet boundary reads as padding.
    return not (packed and data and _ends_on_cr_boundary(data, 0, len(data), 0))


def segment(
    text: str,
    *,
    encoding: Encoding | Literal["auto"] = "auto",
    method: ConcatMethod = "udh8",
    packed: bool = False,
    ref: int = 0,
    max_parts: int = 10,
    allow_latin1: bool = False,
    data_codings: Mapping[str, int] | None = None,
) -> SegmentPlan:
    """Split ``text`` into the submit_sm parts for ``method``.

    ``packed`` packs GSM-7 septets (other alphabets ignore it). ``ref`` is the
    concatenation reference (udh8 uses ref & 0xFF, udh16/sar ref & 0xFFFF).
    Returns a SegmentPlan. Raises UnencodableError when an explicit
    ``encoding`` cannot carry the text, TooManyPartsError when more than
    ``max_parts`` (at most 255) parts are needed, PayloadTooLongError when a
    payload exceeds 65535 octets, ValueError for an unknown method.
    """
    if max_parts < 1:
        raise ValueError(f"max_parts must be >= 1, got {max_parts}")
    chosen: Encoding = (
        choose_encoding(text, allow_latin1) if encoding == "auto" else encoding
    )
    data = encode_text(text, chosen)
    dc = _data_coding(chosen, data_codings)
    gsm_packed = packed and chosen == "gsm7"
    if _fits_one(data, chosen, gsm_packed):
        body = pack_septets(data) if gsm_packed else data
        return SegmentPlan(chosen, dc, (Segment(body, False, ()),))
    if method == "payload":
        body = pack_septets(data) if gsm_packed else data
        if len(body) > MAX_PAYLOAD:
            raise PayloadTooLongError(len(body), MAX_PAYLOAD)
        return SegmentPlan(
            chosen, dc, (Segment(b"", False, ((TAG_MESSAGE_PAYLOAD, body),)),)
        )
    limit = _part_units(chosen, method)
    udh_len = _UDH_LEN[method]
    fill = udh_septet_fill(udh_len)
    ends = _cuts(data, chosen, limit, fill if gsm_packed else None)
    total = len(ends)
    allowed = min(max_parts, MAX_CONCAT_PARTS)
    if total > allowed:
        raise TooManyPartsError(total, allowed)
    parts: list[Segment] = []
    start = 0
    for seq, end in enumerate(ends, 1):
        chunk = data[start:end]
        start = end
        body = pack_septets(chunk, fill) if gsm_packed else chunk
        if method == "udh8":
            parts.append(
                Segment(bytes((5, 0, 3, ref & 0xFF, total, seq)) + body, True, ())
            )
        elif method == "udh16":
            udh = bytes((6, 8, 4, (ref >> 8) & 0xFF, ref & 0xFF, total, seq))
            parts.append(Segment(udh + body, True, ()))
        else:
            tlvs = (
                (TAG_SAR_MSG_REF_NUM, (ref & 0xFFFF).to_bytes(2, "big")),
                (TAG_SAR_TOTAL_SEGMENTS, bytes((total,))),
                (TAG_SAR_SEGMENT_SEQNUM, bytes((seq,))),
            )
            parts.append(Segment(body, False, tlvs))
    return SegmentPlan(chosen, dc, tuple(parts))


def count_parts(text: str, encoding: Encoding, method: str = "udh8") -> int:
    """Return how many parts ``text`` needs in ``encoding`` with ``method``
    (unpacked GSM-7). Raises UnencodableError, or ValueError for a bad method."""
    data = encode_text(text, encoding)
    if len(data) <= _single_octets(encoding) or method == "payload":
        return 1
    return len(_cuts(data, encoding, _part_units(encoding, method), None))


def parse_udh(short_message: bytes) -> tuple[Concat | None, bytes]:
    """Read the UDH at the start of ``short_message`` (first octet = UDHL).

    Returns the concatenation IE (0x00 or 0x08; the last one wins, and one
    with total 0, seq 0 or seq > total is ignored per 23.040 §9.2.3.24.1) or
    None, and the octets after the UDH. Raises UdhError, and only UdhError,
    when the UDH runs past the data or an IE runs past the UDH.
    """
    if not short_message:
        raise UdhError("UDHI set but short_message is empty")
    end = 1 + short_message[0]
    if end > len(short_message):
        raise UdhError(f"UDHL {short_message[0]} runs past {len(short_message)} octets")
    concat: Concat | None = None
    pos = 1
    while pos < end:
        if pos + 2 > end:
            raise UdhError(f"IE header at offset {pos} runs past the UDH")
        iei, iel = short_message[pos], short_message[pos + 1]
        value = short_message[pos + 2 : pos + 2 + iel]
        if pos + 2 + iel > end:
            raise UdhError(f"IE 0x{iei:02X} at offset {pos} runs past the UDH")
        if iei == 0x00 or iei == 0x08:
            if len(value) != (3 if iei == 0x00 else 4):
                raise UdhError(f"concatenation IE 0x{iei:02X} has length {iel}")
            ref = value[0] if iei == 0x00 else (value[0] << 8) | value[1]
            total, seq = value[-2], value[-1]
            concat = Concat(ref, total, seq) if 0 < seq <= total else None
        pos += 2 + iel
    return concat, short_message[end:]


def _tlv(seg: Segment, tag: int) -> bytes | None:
    for t, value in seg.tlvs:
        if t == tag:
            return value
    return None


def _part_payload(seg: Segment, index: int) -> tuple[int, bytes, int]:
    """Return (sort key, user data, fill bits) of one part."""
    payload = _tlv(seg, TAG_MESSAGE_PAYLOAD)
    if payload is not None and not seg.short_message:
        return index, payload, 0
    if seg.udhi:
        concat, body = parse_udh(seg.short_message)
        key = concat.seq if concat is not None else index
        fill = udh_septet_fill(len(seg.short_message) - len(body))
        return key, body, fill
    seqnum = _tlv(seg, TAG_SAR_SEGMENT_SEQNUM)
    key = seqnum[0] if seqnum else index
    return key, seg.short_message, 0


def reassemble(
    segments: Sequence[Segment], plan_encoding: Encoding, packed: bool = False
) -> str:
    """Decode each part (UDH stripped, septets unpacked with the right fill)
    and join them in sequence order. Units are joined before decoding, so an
    escape or surrogate pair split by another sender still decodes. Raises
    UdhError for a malformed UDH."""
    parts = sorted(
        (_part_payload(seg, i) for i, seg in enumerate(segments)),
        key=lambda p: p[0],
    )
    if plan_encoding == "gsm7":
        if packed:
            return decode_gsm7(
                b"".join(unpack_septets(b, fill_bits=f) for _, b, f in parts)
            )
        return decode_gsm7(b"".join(b for _, b, _ in parts))
    joined = b"".join(b for _, b, _ in parts)
    if plan_encoding == "ucs2":
        return decode_ucs2(joined)
    return joined.decode("latin-1")
