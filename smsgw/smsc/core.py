"""Pure decisions of the SMSC simulator: credentials, message ids, throttling,
message states, receipts and MO deliver_sm PDUs.

No Twisted and no clock here: times come in as numbers from the caller. The
simulator deliberately shares no code with the ESME side (smsgw.session), so
it stays an independent peer in tests.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from smsgw.codec.constants import (
    ESM_DELIVERY_RECEIPT,
    ESM_UDHI,
    FINAL_STATS,
    RECEIPT_STAT,
    MessageState,
    Status,
    Tag,
)
from smsgw.codec.pdu import DataSm, DeliverSm, SubmitSm, Tlv, tlv_cstr
from smsgw.codec.segment import ConcatMethod, segment
from smsgw.codec.text import Encoding, decode_text

MoEncoding = Encoding | Literal["auto"]

FINAL_STATES = frozenset(RECEIPT_STAT[stat] for stat in FINAL_STATS)


@dataclass(frozen=True, slots=True)
class Received:
    """One message the simulator accepted (submit_sm or data_sm), as logged."""

    system_id: str
    source_addr: str
    destination_addr: str
    data_coding: int
    esm_class: int
    short_message: bytes
    tlvs: tuple[Tlv, ...]
    message_id: str
    time: float
    registered_delivery: int = 0

    def as_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (short_message and TLV values as hex)."""
        return {
            "system_id": self.system_id,
            "source_addr": self.source_addr,
            "destination_addr": self.destination_addr,
            "data_coding": self.data_coding,
            "esm_class": self.esm_class,
            "registered_delivery": self.registered_delivery,
            "short_message": self.short_message.hex(),
            "tlvs": [{"tag": tag, "value": value.hex()} for tag, value in self.tlvs],
            "message_id": self.message_id,
            "time": self.time,
        }


def check_credentials(
    accounts: Iterable[tuple[str, str]], system_id: str, password: str
) -> int:
    """Return ESME_ROK, ESME_RINVSYSID (unknown system_id) or ESME_RINVPASWD."""
    for sid, pw in accounts:
        if sid == system_id:
            return Status.ESME_ROK if pw == password else Status.ESME_RINVPASWD
    return Status.ESME_RINVSYSID


class IdAllocator:
    """Message ids from a counter: decimal, or upper-case hex as many SMSCs send."""

    __slots__ = ("_hex", "_next")

    def __init__(self, id_format: str = "decimal", start: int = 1) -> None:
        self._hex = id_format == "hex"
        self._next = start

    def allocate(self) -> str:
        """Return the next message id."""
        n = self._next
        self._next = n + 1
        return f"{n:X}" if self._hex else str(n)


def random_throttle(fraction: float, rng: random.Random) -> bool:
    """Return True when this submit is to be throttled at random."""
    return fraction > 0.0 and rng.random() < fraction


class TokenBucket:
    """A per-bind submit rate limit: ``rate`` tokens/s, ``max(1, rate/10)`` deep."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.burst = max(1.0, rate / 10.0)
        self._tokens = self.burst
        self._last = now

    def take(self, now: float) -> bool:
        """Take one token; return False (throttle) when the bucket is empty."""
        elapsed = now - self._last
        if elapsed > 0:
            tokens = self._tokens + elapsed * self.rate
            self._tokens = tokens if tokens < self.burst else self.burst
            self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class MessageStore:
    """Message states by id for query_sm/cancel_sm/replace_sm, oldest forgotten.

    Each entry is (message_state, final_time or None).
    """

    __slots__ = ("_capacity", "_order", "_states")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._states: dict[str, tuple[int, float | None]] = {}
        self._order: deque[str] = deque()

    def add(self, message_id: str) -> None:
        """Record a new message in state ENROUTE."""
        if self._capacity <= 0:
            return
        self._states[message_id] = (MessageState.ENROUTE, None)
        self._order.append(message_id)
        if len(self._order) > self._capacity:
            self._states.pop(self._order.popleft(), None)

    def get(self, message_id: str) -> tuple[int, float | None] | None:
        """Return (state, final_time), or None for an unknown id."""
        return self._states.get(message_id)

    def is_open(self, message_id: str) -> bool:
        """True when the id is known and its state is not final."""
        entry = self._states.get(message_id)
        return entry is not None and entry[0] not in FINAL_STATES

    def finish(self, message_id: str, state: int, now: float) -> bool:
        """Move an open message to ``state``; False if unknown or already final."""
        entry = self._states.get(message_id)
        if entry is None or entry[0] in FINAL_STATES:
            return False
        self._states[message_id] = (state, now if state in FINAL_STATES else None)
        return True

    def __len__(self) -> int:
        return len(self._states)


# --------------------------------------------------------------------------
# Dates (UTC; SMPP 3.4 Appendix B uses YYMMDDhhmm in receipts)
# --------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _minute_text(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, tz=UTC).strftime("%y%m%d%H%M")


def receipt_date(t: float) -> str:
    """Return ``YYMMDDhhmm`` (UTC) for epoch seconds ``t``; cached per minute."""
    return _minute_text(int(t // 60))


def absolute_time(t: float) -> str:
    """Return an SMPP 3.4 §7.1.1 absolute time ``YYMMDDhhmmss000+`` (UTC)."""
    whole = int(t)
    return f"{_minute_text(whole // 60)}{whole % 60:02d}000+"


# --------------------------------------------------------------------------
# Receipts
# --------------------------------------------------------------------------


_CONTROLS = {c: "?" for c in (*range(0x20), 0x7F)}


def message_preview(
    short_message: bytes, data_coding: int, esm_class: int, tlvs: tuple[Tlv, ...]
) -> str:
    """Return the first 20 characters of a message as printable ASCII.

    The UDH is skipped; message_payload is read when short_message is empty;
    characters outside printable ASCII become '?'.
    """
    payload = short_message
    if not payload:
        for tag, value in tlvs:
            if tag == Tag.MESSAGE_PAYLOAD:
                payload = value
                break
    if esm_class & ESM_UDHI and payload:
        payload = payload[1 + payload[0] :]
    text = decode_text(payload[:40], data_coding)[:20]
    if text.isascii() and text.isprintable():
        return text
    # In C: controls to '?' by table, everything past '~' to '?' by the codec.
    return text.translate(_CONTROLS).encode("ascii", "replace").decode("ascii")


def receipt_text(
    message_id: str, submit_time: float, done_time: float, stat: str, preview: str
) -> str:
    """Return the SMPP 3.4 Appendix B receipt text.

    ``dlvrd`` is 001 and ``err`` 000 for DELIVRD; otherwise 000 and 001.
    """
    delivered = stat == "DELIVRD"
    return (
        f"id:{message_id} sub:001 dlvrd:{'001' if delivered else '000'} "
        f"submit date:{receipt_date(submit_time)} done date:{receipt_date(done_time)} "
        f"stat:{stat} err:{'000' if delivered else '001'} text:{preview}"
    )


def build_receipt(
    request: SubmitSm | DataSm,
    message_id: str,
    *,
    submit_time: float,
    done_time: float,
    stat: str,
    state: int,
    with_tlvs: bool = True,
) -> DeliverSm:
    """Return the receipt deliver_sm for ``request`` (addresses swapped).

    Sequence number 0: the sender sets it when the receipt goes out.
    """
    if isinstance(request, SubmitSm):
        sm, tlvs = request.short_message, request.tlvs
    else:
        sm, tlvs = b"", request.tlvs
    preview = message_preview(sm, request.data_coding, request.esm_class, tlvs)
    body = receipt_text(message_id, submit_time, done_time, stat, preview)
    receipt_tlvs: tuple[Tlv, ...] = ()
    if with_tlvs:
        receipt_tlvs = (
            tlv_cstr(Tag.RECEIPTED_MESSAGE_ID, message_id),
            (Tag.MESSAGE_STATE, bytes((state,))),
        )
    return DeliverSm(
        source_addr_ton=request.dest_addr_ton,
        source_addr_npi=request.dest_addr_npi,
        source_addr=request.destination_addr,
        dest_addr_ton=request.source_addr_ton,
        dest_addr_npi=request.source_addr_npi,
        destination_addr=request.source_addr,
        esm_class=ESM_DELIVERY_RECEIPT,
        short_message=body.encode("ascii"),
        tlvs=receipt_tlvs,
    )


# --------------------------------------------------------------------------
# MO messages
# --------------------------------------------------------------------------


def address(addr: str) -> tuple[int, int, str]:
    """Return (ton, npi, digits) for an address: '+' means international/ISDN,
    digits unknown/ISDN, anything else alphanumeric (SMPP 3.4 §5.2.5-6)."""
    if addr.startswith("+"):
        return 1, 1, addr[1:]
    if addr.isdigit():
        return 0, 1, addr
    return 5, 0, addr


def build_mo_pdus(
    source: str,
    destination: str,
    text: str,
    *,
    encoding: MoEncoding = "auto",
    method: ConcatMethod = "udh8",
    data_coding: int | None = None,
    ref: int = 0,
) -> list[DeliverSm]:
    """Return the deliver_sm PDUs of a mobile-originated message, in order.

    Segments with smsgw.codec.segment; multi-part messages carry a UDH (esm_class
    0x40), SAR TLVs or one message_payload per ``method``. Raises ValueError
    (UnencodableError, TooManyPartsError) for text the chosen encoding cannot
    carry or that needs more than 10 parts.
    """
    plan = segment(text, encoding=encoding, method=method, ref=ref)
    dc = plan.data_coding if data_coding is None else data_coding
    src_ton, src_npi, src = address(source)
    dst_ton, dst_npi, dst = address(destination)
    return [
        DeliverSm(
            source_addr_ton=src_ton,
            source_addr_npi=src_npi,
            source_addr=src,
            dest_addr_ton=dst_ton,
            dest_addr_npi=dst_npi,
            destination_addr=dst,
            esm_class=ESM_UDHI if seg.udhi else 0,
            data_coding=dc,
            short_message=seg.short_message,
            tlvs=tuple(seg.tlvs),
        )
        for seg in plan.segments
    ]
