"""Delivery receipts: read a deliver_sm / data_sm into a ``Receipt``.

Pure and total: ``parse_receipt`` never raises, whatever the bytes. It prefers
the SMPP 3.4 TLVs ``receipted_message_id`` (0x001E) and ``message_state``
(0x0427) and falls back, field by field, to the informative text format of
SMPP 3.4 Appendix B::

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm
    stat:DDDDDDD err:E text:...

The text is read tolerantly, because SMSCs vary: keys in any case and order,
extra spaces, missing fields, ``submit_date``/``done_date``, ``stat:DELIVERED``
spelt out, a bare state word without ``stat:``, the text in message_payload
(0x0424) when short_message is empty. Ids are kept exactly as the SMSC wrote
them (hex vs decimal, leading zeros): normalisation belongs to the matcher.
The error is the text's ``err:`` when present, else the network_error_code TLV.

Speed: the usual Appendix B order is read by one anchored match (about 2 µs
per receipt in all); anything else goes through a key scanner that accepts any
order. Limitation: in that slower path a value ends at the next key, so a
value cannot itself contain "key:".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from smsgw.codec.constants import (
    ESM_DELIVERY_RECEIPT,
    ESM_INTERMEDIATE_NOTIFICATION,
    ESM_MESSAGE_TYPE_MASK,
    FINAL_STATS,
    RECEIPT_STAT,
    Tag,
)
from smsgw.codec.pdu import DataSm, DeliverSm

__all__ = ["FINAL_STATES", "STATES", "Receipt", "is_receipt", "parse_receipt"]

STATES = frozenset(RECEIPT_STAT)
FINAL_STATES = FINAL_STATS


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a delivery receipt says about one submitted message (or part)."""

    message_id: str  # raw, as the SMSC wrote it
    state: str  # one of STATES
    final: bool  # state in FINAL_STATES
    error: str | None  # 'err:' text, else network_error_code TLV
    submitted: str | None  # 'submit date:' raw (YYMMDDhhmm[ss])
    done: str | None  # 'done date:' raw
    delivered: bool  # state == "DELIVRD"


# SMPP 3.4 §5.2.12 esm_class bits 5-2 in a deliver_sm / data_sm from the SMSC:
# 0001 SMSC delivery receipt, 0010 SME delivery ack, 0100 SME manual/user ack,
# 1000 intermediate delivery notification (0110, conversation abort, is not one).
_RECEIPT_TYPES = frozenset(
    (ESM_DELIVERY_RECEIPT, 0x08, 0x10, ESM_INTERMEDIATE_NOTIFICATION)
)

# SMPP 3.4 §5.2.28 message_state 1..8.
_TLV_STATES: tuple[str | None, ...] = (None, *RECEIPT_STAT)  # index = state value

# Appendix B names plus the spelt-out forms some SMSCs write.
_STAT_WORDS = {s: s for s in STATES} | {
    "DELIVERED": "DELIVRD",
    "UNDELIVERABLE": "UNDELIV",
    "UNDELIVERED": "UNDELIV",
    "ACCEPTED": "ACCEPTD",
    "REJECTED": "REJECTD",
}

# Fast path: the Appendix B layout in its usual order, one anchored match.
# Values exclude NUL (message_payload is often a C-string).
_CANONICAL = re.compile(
    rb"\s*id:[ \t]*([^\s\x00]+)\s+sub:\S*\s+dlvrd:\S*"
    rb"\s+submit[ _]date:[ \t]*([^\s\x00]*)\s+done[ _]date:[ \t]*([^\s\x00]*)"
    rb"\s+stat:[ \t]*([^\s\x00]*)\s+err:[ \t]*([^\s\x00]*)",
    re.IGNORECASE,
)
# Tolerant path: find every key, in any order and case; a key's value is the
# first token between it and the next key. Named alternatives let
# ``m.lastgroup`` say which key matched.
_KEY = re.compile(
    r"(?<![0-9A-Za-z_])(?:"
    r"(?P<id>id)|(?P<sub>sub)|(?P<dlvrd>dlvrd)"
    r"|(?P<submit>submit[ _]*date)|(?P<done>done[ _]*date)"
    r"|(?P<stat>stat(?:us)?)|(?P<err>err(?:or)?)|(?P<text>text)"
    r")[ \t]*:",
    re.IGNORECASE,
)
# Only when no 'stat:' key was found: a bare state word before 'text:'
# (seen in the wild: "... done date:180903120816 DELIVRD err:000 Text:").
_BARE_STATE = re.compile(
    r"(?<![0-9A-Za-z_])(DELIVRD|EXPIRED|DELETED|UNDELIV|ACCEPTD|UNKNOWN|REJECTD"
    r"|ENROUTE|DELIVERED|UNDELIVERABLE|UNDELIVERED|ACCEPTED|REJECTED)(?![0-9A-Za-z_])",
    re.IGNORECASE,
)

_TextFields = tuple[str | None, str | None, str | None, str | None, str | None]
_NO_TEXT: _TextFields = (None, None, None, None, None)

_TAG_RECEIPTED_ID = int(Tag.RECEIPTED_MESSAGE_ID)
_TAG_MESSAGE_STATE = int(Tag.MESSAGE_STATE)
_TAG_NETWORK_ERROR = int(Tag.NETWORK_ERROR_CODE)
_TAG_PAYLOAD = int(Tag.MESSAGE_PAYLOAD)


def is_receipt(pdu: DeliverSm | DataSm) -> bool:
    """True when esm_class marks the PDU as a receipt or acknowledgement.

    That is message type 0x04 (SMSC delivery receipt), 0x20 (intermediate
    notification), 0x08 or 0x10 (SME acknowledgements); an MO (0) is not.
    """
    return (pdu.esm_class & ESM_MESSAGE_TYPE_MASK) in _RECEIPT_TYPES


def _first_token(s: str, start: int, end: int) -> str | None:
    """Return the first whitespace-separated token of s[start:end], or None."""
    value = s[start:end].split(None, 1)
    if not value:
        return None
    token = value[0]
    if "\x00" in token:  # a C-string payload's terminator ends the token
        token = token.split("\x00", 1)[0]
    return token or None


def _network_error(value: bytes) -> str:
    """Render a network_error_code TLV as text.

    SMPP 3.4 §5.3.2.31: one octet network type, two octets error code, shown as
    "type:code" (e.g. "3:21" for GSM error 21). Some SMSCs put ASCII digits
    there instead (Jasmin test "000"), which are kept as they are.
    """
    if value and value.isdigit():
        return value.decode("ascii")
    if len(value) == 3:
        return f"{value[0]}:{(value[1] << 8) | value[2]}"
    return value.hex()


def _opt(value: bytes) -> str | None:
    return value.decode("latin-1") if value else None


def _parse_text(raw: bytes) -> _TextFields:
    """Return (id, stat, err, submit date, done date) read from a receipt text."""
    m = _CANONICAL.match(raw)
    if m is not None:
        rid, submitted, done, stat, err = m.groups()
        return (
            rid.decode("latin-1"),
            _opt(stat),
            _opt(err),
            _opt(submitted),
            _opt(done),
        )
    return _parse_text_tolerant(raw.decode("latin-1"))


def _parse_text_tolerant(text: str) -> _TextFields:
    """The slow path: keys in any order or case, missing, or a bare state word."""
    text_id = stat = err = submitted = done = None
    search = _KEY.search
    m = search(text)
    text_start = len(text)
    while m is not None:
        key = m.lastgroup
        if key == "text":
            text_start = m.start()
            break
        nxt = search(text, m.end())
        token = _first_token(text, m.end(), nxt.start() if nxt else len(text))
        if token is not None:
            if key == "id":
                text_id = text_id or token
            elif key == "stat":
                stat = stat or token
            elif key == "err":
                err = err or token
            elif key == "submit":
                submitted = submitted or token
            elif key == "done":
                done = done or token
        m = nxt
    if stat is None:
        bare = _BARE_STATE.search(text, 0, text_start)
        if bare is not None:
            stat = bare.group(1)
    return text_id, stat, err, submitted, done


def parse_receipt(pdu: DeliverSm | DataSm) -> Receipt | None:
    """Read a delivery receipt; None when it is not one or carries no id.

    TLVs win over the text for the id and the state; the rest comes from the
    text. Never raises.
    """
    if (pdu.esm_class & ESM_MESSAGE_TYPE_MASK) not in _RECEIPT_TYPES:
        return None

    message_id: str | None = None
    state: str | None = None
    net_error: bytes | None = None
    payload: bytes | None = None
    for tag, value in pdu.tlvs:
        if tag == _TAG_RECEIPTED_ID:
            if message_id is None:
                end = value.find(0)
                raw = (value if end < 0 else value[:end]).decode("latin-1").strip()
                if raw:
                    message_id = raw
        elif tag == _TAG_MESSAGE_STATE:
            if state is None and value:
                n = int.from_bytes(value, "big")
                if 1 <= n <= 8:
                    state = _TLV_STATES[n]
        elif tag == _TAG_NETWORK_ERROR:
            if net_error is None:
                net_error = value
        elif tag == _TAG_PAYLOAD and payload is None:
            payload = value

    raw_text = pdu.short_message if isinstance(pdu, DeliverSm) else b""
    if not raw_text and payload:
        raw_text = payload

    text_id, text_stat, error, submitted, done = (
        _parse_text(raw_text) if raw_text else _NO_TEXT
    )
    if message_id is None:
        message_id = text_id
    if state is None and text_stat is not None:
        state = _STAT_WORDS.get(text_stat.upper(), "UNKNOWN")

    if message_id is None:
        return None
    if state is None:
        state = "UNKNOWN"
    if error is None and net_error is not None:
        error = _network_error(net_error)
    # Positional: measurably cheaper than keywords for a frozen dataclass.
    return Receipt(
        message_id,
        state,
        state in FINAL_STATES,
        error,
        submitted,
        done,
        state == "DELIVRD",
    )
