"""GSM 03.38 / 3GPP TS 23.038 default alphabet, extension table and septet packing.

``encode_gsm7`` and ``decode_gsm7`` work on *unpacked* septets (one septet per
octet, the usual SMPP form for data_coding 0); ``pack_septets`` and
``unpack_septets`` convert to and from the packed form of 23.038 §6.1.2.1.1.

Decoding choices (23.038 §6.2.1.1 and its notes), applied by ``decode_gsm7``:

- ESC followed by a code with no extension character decodes as the default
  alphabet character of that code (23.038: "the MS shall display the character
  shown in the main GSM 7 bit default alphabet table").
- ESC ESC (reserved for a further extension table) decodes as one space
  (23.038: "display a space until another extension table is defined"); both
  septets are consumed.
- A lone ESC at the end is dropped. Octets above 0x7F (not septets) decode as
  U+FFFD, so carrier input never raises.

Nothing here does I/O; the tables are built once at import.
"""

from __future__ import annotations

import codecs
import re
from functools import lru_cache

__all__ = [
    "ESC",
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "UnencodableError",
    "decode_gsm7",
    "encode_gsm7",
    "gsm7_septets",
    "is_gsm7",
    "pack_septets",
    "unpack_septets",
]

ESC = 0x1B
_CR = 0x0D
_LOW7 = bytes(i & 0x7F for i in range(256))

# 23.038 §6.2.1: the default alphabet, indexed by septet. 0x1B is the escape to
# the extension table, not a character; it is kept here as "\x1b" only so the
# index stays aligned (and it is excluded from the encoder).
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"  # 0x5F is '§' (smpplib wrongly has '`')
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
assert len(GSM7_BASIC) == 128

# 23.038 §6.2.1.1: the extension table, reached with ESC (two septets each).
GSM7_EXTENSION: dict[int, str] = {
    0x0A: "\x0c",  # form feed (page break)
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}


class UnencodableError(ValueError):
    """A character that the chosen alphabet cannot represent.

    ``char`` is the first such character and ``index`` its position in the text.
    """

    def __init__(self, char: str, index: int, alphabet: str = "GSM-7") -> None:
        super().__init__(
            f"character {char!r} (U+{ord(char):04X}) at index {index} "
            f"is not in the {alphabet} alphabet"
        )
        self.char = char
        self.index = index
        self.alphabet = alphabet


def _build_tables() -> tuple[dict[int, str], dict[int, bytes], str]:
    to_septets: dict[int, str] = {}
    for code, char in enumerate(GSM7_BASIC):
        if code != ESC:
            to_septets[ord(char)] = chr(code)
    for code, char in GSM7_EXTENSION.items():
        to_septets[ord(char)] = chr(ESC) + chr(code)
    as_bytes = {k: v.encode("latin-1") for k, v in to_septets.items()}
    # ASCII characters outside GSM-7 ('`', most controls) become a non-ASCII
    # sentinel so one ``isascii()`` on the translated text detects them.
    for code in range(128):
        to_septets.setdefault(code, "\x80")
    # Octets 0x80..0xFF are not septets: U+FFFD. ESC stays "\x1b" for the
    # escape pass in decode_gsm7.
    decoding = GSM7_BASIC + "\ufffd" * 128
    return to_septets, as_bytes, decoding


_TO_SEPTETS, _TO_SEPTET_BYTES, _DECODING_TABLE = _build_tables()
_GSM7_CHARS = frozenset(chr(k) for k in _TO_SEPTET_BYTES)
_CHAR_CLASS = "".join(re.escape(c) for c in sorted(_GSM7_CHARS))
_GSM7_RUN = re.compile(f"[{_CHAR_CLASS}]*")
_EXT_CHARS = re.compile("[" + re.escape("".join(GSM7_EXTENSION.values())) + "]")
# After the default-table decode, ESC + the default char of the next septet.
_ESCAPED = re.compile("\x1b(.?)", re.DOTALL)
_EXT_BY_BASE_CHAR: dict[str, str] = {
    GSM7_BASIC[code]: char for code, char in GSM7_EXTENSION.items()
}
_EXT_BY_BASE_CHAR["\x1b"] = " "  # ESC ESC: reserved, shown as a space
_EXT_BY_BASE_CHAR[""] = ""  # a lone trailing ESC is dropped


def is_gsm7(text: str) -> bool:
    """Return whether every character of ``text`` is in the GSM-7 alphabet."""
    return _GSM7_RUN.fullmatch(text) is not None


def _first_bad(text: str) -> UnencodableError:
    end = _GSM7_RUN.match(text)
    index = end.end() if end is not None else 0
    return UnencodableError(text[index], index)


def gsm7_septets(text: str) -> int:
    """Return the number of septets ``text`` needs (extension characters count 2).

    Raises UnencodableError if a character is not in GSM-7.
    """
    if _GSM7_RUN.fullmatch(text) is None:
        raise _first_bad(text)
    return len(text) + len(_EXT_CHARS.findall(text))


def encode_gsm7(text: str) -> bytes:
    """Encode ``text`` as unpacked septets, one per octet (escapes as 0x1B, x).

    Raises UnencodableError naming the first character outside GSM-7.
    """
    if text.isascii():
        # str.translate has a C fast path for ASCII in, ASCII out.
        septets = text.translate(_TO_SEPTETS)
        if septets.isascii():
            return septets.encode("ascii")
        raise _first_bad(text)
    try:
        return codecs.charmap_encode(text, "strict", _TO_SEPTET_BYTES)[0]
    except UnicodeEncodeError as exc:
        raise UnencodableError(text[exc.start], exc.start) from None


def _unescape(match: re.Match[str]) -> str:
    following = match.group(1)
    return _EXT_BY_BASE_CHAR.get(following, following)


def decode_gsm7(septets: bytes) -> str:
    """Decode unpacked septets to text; never raises.

    Unknown escapes give the default character, ESC ESC a space, a trailing lone
    ESC nothing, octets above 0x7F U+FFFD (see the module docstring).
    """
    text: str = codecs.charmap_decode(septets, "strict", _DECODING_TABLE)[0]
    if "\x1b" in text:
        return _ESCAPED.sub(_unescape, text)
    return text


def _lane_mask(pattern: bytes, lanes: int) -> int:
    return int.from_bytes(pattern * lanes, "little")


@lru_cache(maxsize=64)
def _masks(lanes: int) -> tuple[int, int, int]:
    """Masks over ``lanes`` 64-bit lanes: the low 7 bits of every 16-bit lane,
    the low 14 of every 32-bit lane, the low 28 of every 64-bit lane."""
    return (
        _lane_mask(bytes.fromhex("7f007f007f007f00"), lanes),
        _lane_mask(bytes.fromhex("ff3f0000ff3f0000"), lanes),
        _lane_mask(bytes.fromhex("ffffff0f00000000"), lanes),
    )


def _masks_for(octets: int) -> tuple[int, int, int]:
    lanes = (octets + 7) // 8
    if lanes <= 64:
        return _masks((lanes + 7) // 8 * 8)  # few distinct sizes in the cache
    return _masks.__wrapped__(lanes)


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets LSB first (23.038 §6.1.2.1.1) after ``fill_bits`` zero bits.

    ``fill_bits`` (0..6) aligns the first septet to a septet boundary after a
    UDH. Per 23.038 §6.1.2.3.1, when the last octet has 7 spare bits they carry
    CR (so a reader does not see a trailing '@'), and when the text itself ends
    with CR exactly on an octet boundary another CR is appended (the reader
    then sees CR twice, which 23.038 accepts). Only the low 7 bits of each
    septet are used. Returns the packed octets.
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, got {fill_bits}")
    count = len(septets)
    if count and septets[-1] == _CR and (fill_bits + 7 * count) % 8 == 0:
        septets += b"\r"
        count += 1
    total_bits = fill_bits + 7 * count
    # One septet per octet as a big int; squeeze out the eighth bits in three
    # lane steps (16-, 32-, 64-bit lanes: 7+7, 14+14, 28+28 bits), then drop
    # the empty eighth octet of every 64-bit lane. All C-level, linear time.
    padded = septets.translate(_LOW7) + bytes(-count % 8)
    m7, m14, m28 = _masks_for(len(padded))
    x = int.from_bytes(padded, "little")
    x = (x & m7) | ((x & (m7 << 8)) >> 1)
    x = (x & m14) | ((x & (m14 << 16)) >> 2)
    x = (x & m28) | ((x & (m28 << 32)) >> 4)
    lanes = bytearray(x.to_bytes(len(padded), "little"))
    del lanes[7::8]
    value = int.from_bytes(lanes, "little")
    if -total_bits % 8 == 7:
        value |= _CR << (7 * count)
    return (value << fill_bits).to_bytes((total_bits + 7) // 8, "little")


def unpack_septets(data: bytes, count: int | None = None, fill_bits: int = 0) -> bytes:
    """Unpack packed septets (23.038 §6.1.2.1.1), skipping ``fill_bits`` first.

    With ``count`` the first ``count`` septets are returned (fewer if the data
    is short). Without it every whole septet is returned, except that when the
    data ends with exactly 7 spare bits holding CR (0x0D) that CR is padding
    per 23.038 §6.1.2.3.1 and is dropped. A trailing 0x00 from encoders that
    pad with zeros is kept ('@'): without a count it cannot be told from text.
    Never raises on any bytes.
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, got {fill_bits}")
    available_bits = 8 * len(data) - fill_bits
    available = max(available_bits, 0) // 7
    if count is None:
        count = available
        if (
            count
            and available_bits % 7 == 0
            and (data[-1] >> 1) == _CR  # the last septet is the top 7 bits
        ):
            count -= 1
    else:
        count = min(max(count, 0), available)
    if count == 0:
        return b""
    # The reverse of pack_septets: 7-octet groups into 64-bit lanes, then
    # spread 28+28, 14+14, 7+7 bits apart.
    groups = (count + 7) // 8
    aligned = (int.from_bytes(data, "little") >> fill_bits).to_bytes(
        max(len(data), 7 * groups), "little"
    )
    lanes = bytearray(8 * groups)
    for i in range(7):
        lanes[i::8] = aligned[i : 7 * groups : 7]
    m7, m14, m28 = _masks_for(len(lanes))
    x = int.from_bytes(lanes, "little")
    x = (x & m28) | ((x << 4) & (m28 << 32))
    x = (x & m14) | ((x << 2) & (m14 << 16))
    x = (x & m7) | ((x << 1) & (m7 << 8))
    return x.to_bytes(len(lanes), "little")[:count]
