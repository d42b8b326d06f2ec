"""GSM 03.38 / 23.038 alphabet, extension table and septet packing."""

from __future__ import annotations

import pytest
import smpplib.gsm
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.codec.gsm7 import (
    ESC,
    GSM7_BASIC,
    GSM7_EXTENSION,
    UnencodableError,
    decode_gsm7,
    encode_gsm7,
    gsm7_septets,
    is_gsm7,
    pack_septets,
    unpack_septets,
)

GSM_CHARS = "".join(c for i, c in enumerate(GSM7_BASIC) if i != ESC) + "".join(
    GSM7_EXTENSION.values()
)
gsm_text = st.text(alphabet=GSM_CHARS + "\r\r\r")  # CR often: packing corner cases
septet_strings = st.binary().map(lambda b: bytes(x & 0x7F for x in b))


# --- tables -----------------------------------------------------------------


def test_default_table_round_trips_every_character() -> None:
    """Each of the 127 default characters encodes to its own septet and back."""
    for code, char in enumerate(GSM7_BASIC):
        if code == ESC:
            continue
        assert encode_gsm7(char) == bytes([code])
        assert decode_gsm7(bytes([code])) == char


def test_whole_default_table_in_one_string_round_trips() -> None:
    """The full default table as one text encodes to septets 0..127 without 0x1B."""
    text = GSM7_BASIC.replace("\x1b", "")
    expected = bytes(c for c in range(128) if c != ESC)
    assert encode_gsm7(text) == expected
    assert decode_gsm7(expected) == text


def test_selected_default_positions() -> None:
    """23.038 positions naive tables get wrong: '$' 02, '¤' 24, '§' 5F."""
    assert encode_gsm7("@£$¥") == b"\x00\x01\x02\x03"
    assert encode_gsm7("¤") == b"\x24"
    assert encode_gsm7("¡§¿à") == b"\x40\x5f\x60\x7f"
    assert encode_gsm7("_ΔΩ") == b"\x11\x10\x15"
    assert encode_gsm7("\n\r") == b"\x0a\x0d"


@pytest.mark.parametrize(
    ("char", "code"),
    [
        ("\x0c", 0x0A),
        ("^", 0x14),
        ("{", 0x28),
        ("}", 0x29),
        ("\\", 0x2F),
        ("[", 0x3C),
        ("~", 0x3D),
        ("]", 0x3E),
        ("|", 0x40),
        ("€", 0x65),
    ],
)
def test_extension_characters_escape(char: str, code: int) -> None:
    """Each extension character encodes as 1B x, counts two septets and decodes back."""
    assert encode_gsm7(char) == bytes([0x1B, code])
    assert gsm7_septets(char) == 2
    assert decode_gsm7(bytes([0x1B, code])) == char


def test_euro_is_1b_65() -> None:
    """'€' is ESC 0x65 inside a text, between plain septets."""
    assert encode_gsm7("a€b") == b"a\x1b\x65b"


def test_septet_count_counts_extension_twice() -> None:
    """gsm7_septets adds one per extension character to the character count."""
    assert gsm7_septets("") == 0
    assert gsm7_septets("abc") == 3
    assert gsm7_septets("{a}€") == 7


def test_is_gsm7() -> None:
    """is_gsm7 accepts default and extension characters and rejects anything else."""
    assert is_gsm7("")
    assert is_gsm7(GSM_CHARS)
    for char in "`ç中😀\x1b\t\x00":
        assert not is_gsm7("abc" + char), char


@pytest.mark.parametrize(
    ("text", "char", "index"),
    [("ab`c", "`", 2), ("abé中c", "中", 3), ("\x1b", "\x1b", 0), ("é€ç", "ç", 2)],
)
def test_unencodable_names_first_bad_character(
    text: str, char: str, index: int
) -> None:
    """encode_gsm7 and gsm7_septets raise UnencodableError with the first bad char."""
    for func in (encode_gsm7, gsm7_septets):
        with pytest.raises(UnencodableError) as info:
            func(text)
        assert info.value.char == char
        assert info.value.index == index
        assert isinstance(info.value, ValueError)


# --- tolerant decoding ------------------------------------------------------


def test_unknown_escape_decodes_as_default_character() -> None:
    """ESC + a code with no extension character gives the default char (23.038)."""
    assert decode_gsm7(b"\x1bA") == "A"
    assert decode_gsm7(b"\x1b\x00") == "@"


def test_escape_escape_decodes_as_space() -> None:
    """ESC ESC (reserved for another table) decodes as one space, consuming both."""
    assert decode_gsm7(b"a\x1b\x1bb") == "a b"
    assert decode_gsm7(b"\x1b\x1b\x1b\x65") == " €"


def test_trailing_lone_escape_is_dropped() -> None:
    """A lone ESC at the end decodes to nothing."""
    assert decode_gsm7(b"abc\x1b") == "abc"
    assert decode_gsm7(b"\x1b") == ""


def test_octets_above_7f_decode_as_replacement() -> None:
    """Octets that are not septets decode as U+FFFD, also right after ESC."""
    assert decode_gsm7(b"a\x80\xff") == "a\ufffd\ufffd"
    assert decode_gsm7(b"\x1b\x80") == "\ufffd"


@settings(max_examples=300)
@given(st.binary())
def test_decode_never_raises(data: bytes) -> None:
    """decode_gsm7 returns a str for any octets."""
    assert isinstance(decode_gsm7(data), str)


@settings(max_examples=300)
@given(gsm_text)
def test_encode_decode_round_trip(text: str) -> None:
    """Any GSM-7 text survives encode then decode, and its septet count is exact."""
    septets = encode_gsm7(text)
    assert decode_gsm7(septets) == text
    assert gsm7_septets(text) == len(septets)
    assert max(septets, default=0) < 0x80


# --- packing ----------------------------------------------------------------


def test_pack_hellohello() -> None:
    """'hellohello' packs to the classic e8329bfd4697d9ec37 and unpacks back."""
    packed = pack_septets(encode_gsm7("hellohello"))
    assert packed.hex() == "e8329bfd4697d9ec37"
    assert decode_gsm7(unpack_septets(packed)) == "hellohello"


def test_pack_hello_by_hand() -> None:
    """'hello' packs to e8329bfd06, derived bit by bit below."""
    # h=0x68=1101000 e=0x65=1100101 l=0x6C=1101100 o=0x6F=1101111, LSB first:
    # o0 = h | (e&1)<<7           = 0x68|0x80 = E8
    # o1 = e>>1 | (l&3)<<6        = 0x32|0x00 = 32
    # o2 = l>>2 | (l&7)<<5        = 0x1B|0x80 = 9B
    # o3 = l>>3 | (o&0xF)<<4      = 0x0D|0xF0 = FD
    # o4 = o>>4                   = 06 (35 bits: 5 spare, zero)
    assert pack_septets(encode_gsm7("hello")).hex() == "e8329bfd06"


def test_pack_how_are_you() -> None:
    """'How are you?' packs to the widely published C8F71D14969741F977FD07."""
    # 12 septets = 84 bits -> 11 octets; first: H=0x48 | (o=0x6F&1)<<7 = C8.
    packed = pack_septets(encode_gsm7("How are you?"))
    assert packed.hex().upper() == "C8F71D14969741F977FD07"
    assert unpack_septets(packed) == encode_gsm7("How are you?")


def test_pack_with_one_fill_bit_after_udh() -> None:
    """After a 6-octet UDH, one fill bit shifts 'hello' to d06536fb0d."""
    # bit 0 = fill; h in bits 1-7: o0 = 0x68<<1 = D0; e in bits 8-14 and
    # l(bit0=0) in 15: o1 = 65; o2 = l>>1 | (l&3)<<6 = 36 | 00 = 36;
    # o3 = l>>2 | (o&7)<<5 = 1B | E0 = FB; o4 = o>>3 = 0D (36 bits, 4 spare).
    packed = pack_septets(encode_gsm7("hello"), fill_bits=1)
    assert packed.hex() == "d06536fb0d"
    assert unpack_septets(packed, fill_bits=1) == b"hello"


def test_seven_spare_bits_carry_cr() -> None:
    """Seven septets leave 7 spare bits, padded with CR and dropped when unpacking."""
    # '1'=0x31 '2'=0x32: o0 = 0x31 | (0x32&1)<<7 = 31; o1 = 0x19 | (0x33&3)<<6 = D9.
    packed = pack_septets(b"1234567")
    assert packed.hex() == "31d98c56b3dd1a"
    assert packed[-1] >> 1 == 0x0D  # CR in the top 7 bits, not '@'
    assert unpack_septets(packed) == b"1234567"
    assert unpack_septets(packed, count=7) == b"1234567"
    assert unpack_septets(packed, count=8) == b"1234567\r"


def test_zero_padded_trailing_septet_is_kept_without_count() -> None:
    """A peer that pads 7 spare bits with zeros yields '@' unless the count is given."""
    zero_padded = bytes.fromhex("31d98c56b3dd00")
    assert unpack_septets(zero_padded) == b"1234567\x00"
    assert unpack_septets(zero_padded, count=7) == b"1234567"


def test_trailing_cr_on_octet_boundary_is_doubled() -> None:
    """A text ending in CR on an octet boundary gets a second CR (23.038)."""
    packed = pack_septets(b"abcdefg\r")  # 8 septets = 56 bits exactly
    assert len(packed) == 8
    assert unpack_septets(packed) == b"abcdefg\r\r"
    assert unpack_septets(packed, count=8) == b"abcdefg\r"


def test_fill_bits_out_of_range() -> None:
    """fill_bits outside 0..6 is a ValueError."""
    with pytest.raises(ValueError, match="fill_bits"):
        pack_septets(b"a", 7)
    with pytest.raises(ValueError, match="fill_bits"):
        unpack_septets(b"a", fill_bits=-1)


def test_unpack_short_data() -> None:
    """Unpacking returns only whole septets and never more than asked."""
    assert unpack_septets(b"") == b""
    assert unpack_septets(b"\x00", fill_bits=6) == b""
    assert unpack_septets(b"\xe8", count=5) == b"h"
    assert unpack_septets(b"\xe8\x32", count=-3) == b""


def test_pack_large_payload_is_linear() -> None:
    """A 64 KiB septet string packs and unpacks exactly (no quadratic big-int loop)."""
    septets = bytes(range(128)) * 512
    packed = pack_septets(septets, 3)
    assert len(packed) == (3 + 7 * len(septets) + 7) // 8
    assert unpack_septets(packed, len(septets), 3) == septets


@settings(max_examples=300)
@given(septet_strings, st.integers(0, 6))
def test_pack_unpack_round_trip(septets: bytes, fill: int) -> None:
    """Packing then unpacking gives the septets back (with the count always; without
    it too, except the 23.038 doubled CR)."""
    packed = pack_septets(septets, fill)
    assert unpack_septets(packed, len(septets), fill) == septets
    boundary_cr = (
        bool(septets) and septets[-1] == 0x0D and (fill + 7 * len(septets)) % 8 == 0
    )
    expected = septets + b"\r" if boundary_cr else septets
    assert unpack_septets(packed, fill_bits=fill) == expected
    assert len(packed) == (fill + 7 * len(expected) + 7) // 8


def reference_pack(septets: bytes, fill: int) -> bytes:
    """Bit-by-bit 23.038 packing with zero padding, for comparison."""
    value = 0
    for i, septet in enumerate(septets):
        value |= septet << (fill + 7 * i)
    return value.to_bytes((fill + 7 * len(septets) + 7) // 8, "little")


@settings(max_examples=300)
@given(septet_strings, st.integers(0, 6))
def test_pack_matches_bitwise_reference(septets: bytes, fill: int) -> None:
    """The lane-based packer equals a naive bit-by-bit packer plus 23.038's CRs."""
    bits = fill + 7 * len(septets)
    if septets and septets[-1] == 0x0D and bits % 8 == 0:
        assert pack_septets(septets, fill) == reference_pack(septets + b"\r", fill)
    elif bits % 8 == 1:  # 7 spare bits: CR (0x0D << 1 = 0x1A) in the top of the last
        ref = reference_pack(septets, fill)
        assert pack_septets(septets, fill) == ref[:-1] + bytes([ref[-1] | 0x1A])
    else:
        assert pack_septets(septets, fill) == reference_pack(septets, fill)


@settings(max_examples=300)
@given(st.binary(), st.one_of(st.none(), st.integers(-2, 400)), st.integers(0, 6))
def test_unpack_never_raises(data: bytes, count: int | None, fill: int) -> None:
    """unpack_septets returns septets (< 0x80) for any octets and count."""
    out = unpack_septets(data, count, fill)
    assert all(s < 0x80 for s in out)


# --- smpplib comparison ------------------------------------------------------


def test_smpplib_table_has_backtick_at_5f_where_section_sign_belongs() -> None:
    """smpplib maps 0x5F to '`' and cannot encode '§'; ours has '§' and rejects '`'."""
    assert smpplib.gsm.GSM_CHARACTER_TABLE[0x5F] == "`"
    assert smpplib.gsm.gsm_encode("`") == b"\x5f"
    with pytest.raises(UnicodeError):
        smpplib.gsm.gsm_encode("§")
    assert encode_gsm7("§") == b"\x5f"
    assert decode_gsm7(b"\x5f") == "§"
    with pytest.raises(UnencodableError):
        encode_gsm7("`")


def test_smpplib_lacks_form_feed() -> None:
    """smpplib cannot encode form feed (1B 0A); ours can."""
    with pytest.raises(UnicodeError):
        smpplib.gsm.gsm_encode("\x0c")
    assert encode_gsm7("\x0c") == b"\x1b\x0a"


def test_agrees_with_smpplib_where_it_is_right() -> None:
    """For the rest of the default table and the other escapes both encoders agree."""
    text = GSM_CHARS.replace("§", "").replace("\x0c", "")
    assert smpplib.gsm.gsm_encode(text) == encode_gsm7(text)
