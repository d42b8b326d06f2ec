"""Choose an SMS alphabet, encode text for it, and decode by SMPP data_coding.

GSM-7 is always preferred; Latin-1 only when the carrier profile allows it;
otherwise UCS-2 (UTF-16-BE on the wire, so characters outside the BMP take two
code units as a surrogate pair). ``decode_text`` reads carrier input and never
raises, whatever the bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from smsgw.codec.gsm7 import (
    UnencodableError,
    decode_gsm7,
    encode_gsm7,
    gsm7_septets,
    is_gsm7,
    unpack_septets,
)

__all__ = [
    "SINGLE_LIMITS",
    "Encoding",
    "Measure",
    "choose_encoding",
    "decode_text",
    "decode_ucs2",
    "encode_text",
    "measure",
    "units",
]

Encoding = Literal["gsm7", "ucs2", "latin1"]

# Units that fit one SMS without a UDH (140 octets of user data, 23.040 §9.2.3.16).
SINGLE_LIMITS: dict[Encoding, int] = {"gsm7": 160, "ucs2": 70, "latin1": 140}

_NOT_LATIN1 = re.compile("[^\x00-\xff]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def choose_encoding(text: str, allow_latin1: bool = False) -> Encoding:
    """Return "gsm7" if every character maps to GSM-7, else "latin1" (when
    allowed and every character is Latin-1), else "ucs2"."""
    if is_gsm7(text):
        return "gsm7"
    if allow_latin1 and _NOT_LATIN1.search(text) is None:
        return "latin1"
    return "ucs2"


def encode_text(text: str, encoding: Encoding) -> bytes:
    """Encode ``text``: gsm7 as unpacked septets, ucs2 as UTF-16-BE, or latin1.

    Raises UnencodableError for a character the encoding cannot carry (for
    ucs2, only a lone surrogate).
    """
    if encoding == "gsm7":
        return encode_gsm7(text)
    try:
        if encoding == "ucs2":
            return text.encode("utf-16-be")
        if encoding == "latin1":
            return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        alphabet = "UCS-2" if encoding == "ucs2" else "Latin-1"
        raise UnencodableError(text[exc.start], exc.start, alphabet) from None
    raise ValueError(f"unknown encoding {encoding!r}")


def units(text: str, encoding: Encoding) -> int:
    """Return the length of ``text`` in ``encoding`` units: septets, UTF-16
    code units or octets. Raises UnencodableError if it cannot be encoded."""
    if encoding == "gsm7":
        return gsm7_septets(text)
    if encoding == "ucs2":
        if text.isascii():
            return len(text)
        return len(text) + len(_ASTRAL.findall(text))
    if encoding == "latin1":
        bad = _NOT_LATIN1.search(text)
        if bad is not None:
            raise UnencodableError(bad.group(), bad.start(), "Latin-1")
        return len(text)
    raise ValueError(f"unknown encoding {encoding!r}")


def decode_ucs2(data: bytes) -> str:
    """Decode UTF-16-BE; lone surrogates and an odd trailing octet become U+FFFD."""
    try:
        return data.decode("utf-16-be")
    except UnicodeDecodeError:
        # The utf-16 codec's "replace" turns each lone surrogate and a final
        # odd octet into U+FFFD and keeps valid pairs.
        return data.decode("utf-16-be", "replace")


def _decode_gsm(data: bytes, packed: bool) -> str:
    return decode_gsm7(unpack_septets(data) if packed else data)


def _decode_ascii(data: bytes) -> str:
    return data.decode("ascii", "replace")


def _decode_latin1(data: bytes) -> str:
    return data.decode("latin-1")


def _decode_dcs_alphabet(data: bytes, alphabet: int, packed: bool) -> str:
    # 23.038 §4 alphabet bits: 00 GSM-7, 01 8-bit data, 10 UCS-2, 11 reserved.
    if alphabet == 0:
        return _decode_gsm(data, packed)
    if alphabet == 2:
        return decode_ucs2(data)
    return _decode_latin1(data)


_SMPP_CODECS = {6: "iso8859_5", 7: "iso8859_8"}  # SMPP 3.4 §5.2.19


def decode_text(data: bytes, data_coding: int, *, packed: bool = False) -> str:
    """Decode an MO or receipt short_message by its SMPP data_coding.

    0 SMSC default (GSM-7; unpacked unless ``packed``), 1 IA5/ASCII, 3 Latin-1,
    6 ISO-8859-5, 7 ISO-8859-8, 8 UCS-2, 2/4 octets (as Latin-1); 23.038
    groups: 0x00-0x3F general / 0x40-0x7F auto-deletion (alphabet in bits 2-3;
    compressed text, bit 5, cannot be decoded and is returned as Latin-1),
    0xC0-0xDF message waiting (GSM-7), 0xE0-0xEF message waiting (UCS-2),
    0xF0-0xFF data coding/class (bit 2: 8-bit, else GSM-7). Anything else is
    decoded as Latin-1. Never raises on any bytes.
    """
    dc = data_coding & 0xFF
    if dc < 0x10:  # SMPP 3.4 §5.2.19 values, not the 23.038 DCS
        if dc == 0:
            return _decode_gsm(data, packed)
        if dc == 8:
            return decode_ucs2(data)
        if dc == 1:
            return _decode_ascii(data)
        codec = _SMPP_CODECS.get(dc)
        if codec is not None:
            return data.decode(codec, "replace")
        return _decode_latin1(data)
    group = dc >> 4
    if group <= 0x7:  # 00xx xxxx general, 01xx xxxx marked for auto-deletion
        if dc & 0x20:
            return _decode_latin1(data)
        return _decode_dcs_alphabet(data, (dc >> 2) & 0x3, packed)
    if group in (0xC, 0xD):
        return _decode_gsm(data, packed)
    if group == 0xE:
        return decode_ucs2(data)
    if group == 0xF:
        return _decode_latin1(data) if dc & 0x04 else _decode_gsm(data, packed)
    return _decode_latin1(data)  # 0x80-0xBF: reserved coding groups


@dataclass(frozen=True, slots=True)
class Measure:
    """How a text would be sent: alphabet, length in its units, SMS parts."""

    encoding: Encoding
    units: int
    parts: int
    fits_one: bool


def measure(text: str, allow_latin1: bool = False, method: str = "udh8") -> Measure:
    """Return the encoding, unit count and number of parts ``text`` needs.

    Cheap when the text fits one SMS (160 GSM-7 / 70 UCS-2 / 140 Latin-1
    units). Otherwise the part count is exact for ``method`` ("udh8", "udh16",
    "sar", "payload"), never splitting a GSM escape or a surrogate pair
    (unpacked GSM-7). Raises ValueError for an unknown method.
    """
    encoding = choose_encoding(text, allow_latin1)
    count = units(text, encoding)
    if count <= SINGLE_LIMITS[encoding]:
        return Measure(encoding, count, 1, True)
    # Imported here: segment imports this module.
    from smsgw.codec.segment import count_parts

    return Measure(encoding, count, count_parts(text, encoding, method), False)
