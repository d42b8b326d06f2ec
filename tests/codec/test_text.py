"""Encoding choice, encode/decode by data_coding, units and measure."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.codec.gsm7 import UnencodableError, pack_septets
from smsgw.codec.text import (
    Measure,
    choose_encoding,
    decode_text,
    decode_ucs2,
    encode_text,
    measure,
    units,
)

ALERT_EN = (
    "XX Bank: Card *1234 used for CNY 100.00 at STARBUCKS SHANGHAI on 29Nov 12:00. "
    "Not you? Reply N. Reply STOP to opt out."
)
ALERT_ZH = (
    "【XX银行】您尾号1234的卡11月29日12:00在星巴克(南京西路店)消费人民币100.00元。"
    "非本人交易请回复N\uff0c回TD退订。"
)


# --- choose_encoding ---------------------------------------------------------


def test_plain_english_alert_is_gsm7() -> None:
    """A plain English alert is sent in GSM-7."""
    assert choose_encoding(ALERT_EN) == "gsm7"


def test_one_non_gsm_character_makes_whole_text_ucs2() -> None:
    """A single character outside GSM-7 switches the whole text to UCS-2."""
    assert choose_encoding(ALERT_EN + "中") == "ucs2"
    assert choose_encoding("price `5`") == "ucs2"


def test_latin1_only_when_allowed() -> None:
    """A Latin-1-only text ('ç' is not GSM-7) is latin1 only when allowed."""
    assert choose_encoding("façade") == "ucs2"
    assert choose_encoding("façade", allow_latin1=True) == "latin1"


def test_gsm7_preferred_over_latin1() -> None:
    """Text that is both GSM-7 and Latin-1 stays GSM-7 even when Latin-1 is allowed."""
    assert choose_encoding("café", allow_latin1=True) == "gsm7"


def test_non_latin1_is_ucs2_even_when_latin1_allowed() -> None:
    """A character beyond U+00FF forces UCS-2 regardless of allow_latin1."""
    assert choose_encoding("ç€", allow_latin1=True) == "ucs2"


def test_empty_text_is_gsm7() -> None:
    """The empty text is GSM-7."""
    assert choose_encoding("") == "gsm7"


# --- encode_text / units -------------------------------------------------------


def test_encode_ucs2_is_utf16_be_with_surrogate_pairs() -> None:
    """UCS-2 is UTF-16-BE; an astral character becomes a surrogate pair (2 units)."""
    assert encode_text("中a", "ucs2") == b"\x4e\x2d\x00\x61"
    assert encode_text("😀", "ucs2") == b"\xd8\x3d\xde\x00"
    assert units("😀", "ucs2") == 2
    assert units("中😀a", "ucs2") == 4


def test_encode_gsm7_and_latin1() -> None:
    """gsm7 gives unpacked septets and latin1 one octet per character."""
    assert encode_text("@€", "gsm7") == b"\x00\x1b\x65"
    assert encode_text("façade", "latin1") == "façade".encode("latin-1")
    assert units("@€", "gsm7") == 3
    assert units("façade", "latin1") == 6


def test_encode_unencodable_raises() -> None:
    """A character the encoding cannot carry raises UnencodableError with its index."""
    with pytest.raises(UnencodableError) as info:
        encode_text("ab€", "latin1")
    assert (info.value.char, info.value.index) == ("€", 2)
    with pytest.raises(UnencodableError):
        encode_text("a\ud800", "ucs2")
    with pytest.raises(UnencodableError):
        units("ab中", "latin1")
    with pytest.raises(UnencodableError):
        units("ab中", "gsm7")


def test_unknown_encoding_is_value_error() -> None:
    """An unknown encoding name is a ValueError."""
    with pytest.raises(ValueError, match="unknown encoding"):
        encode_text("a", "utf8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown encoding"):
        units("a", "utf8")  # type: ignore[arg-type]


@settings(max_examples=300)
@given(st.text())
def test_units_matches_encoded_length(text: str) -> None:
    """units() equals the encoded length in that encoding's unit size."""
    enc = choose_encoding(text, allow_latin1=True)
    size = 2 if enc == "ucs2" else 1
    assert units(text, enc) * size == len(encode_text(text, enc))


# --- decode_text -------------------------------------------------------------


def test_decode_smsc_default_gsm7_unpacked_and_packed() -> None:
    """data_coding 0 is GSM-7, unpacked by default, packed when asked."""
    assert decode_text(b"\x00\x1b\x65\x5f", 0) == "@€§"
    assert decode_text(bytes.fromhex("e8329bfd06"), 0, packed=True) == "hello"


def test_decode_ia5_latin1_octet() -> None:
    """1 is ASCII (bad octets U+FFFD), 3 Latin-1, 2 and 4 octets shown as Latin-1."""
    assert decode_text(b"abc\xe9", 1) == "abc\ufffd"
    assert decode_text(b"caf\xe9", 3) == "café"
    assert decode_text(b"\x00\xff", 2) == "\x00\xff"
    assert decode_text(b"\x00\xff", 4) == "\x00\xff"


def test_decode_ucs2() -> None:
    """8 is UTF-16-BE, surrogate pairs joined."""
    assert decode_text("中😀".encode("utf-16-be"), 8) == "中😀"


def test_decode_ucs2_lone_surrogates_and_odd_length() -> None:
    """Lone surrogates and an odd final octet become U+FFFD without raising."""
    assert decode_text(b"\xd8\x3d\x00\x61", 8) == "\ufffda"
    assert decode_text(b"\x00\x61\xde\x00", 8) == "a\ufffd"
    assert decode_text(b"\x00\x61\x00", 8) == "a\ufffd"
    assert decode_ucs2(b"\xd8\x3d") == "\ufffd"


def test_decode_smpp_cyrillic_and_hebrew() -> None:
    """6 is ISO-8859-5 and 7 is ISO-8859-8 (SMPP 3.4 §5.2.19)."""
    assert decode_text("Привет".encode("iso8859_5"), 6) == "Привет"
    assert decode_text("שלום".encode("iso8859_8"), 7) == "שלום"


def test_decode_dcs_group_f() -> None:
    """0xF0-0xFF: bit 2 set means 8-bit data, clear means GSM-7."""
    assert decode_text(b"\x00\x5f", 0xF0) == "@§"
    assert decode_text(b"\x00\x5f", 0xF1) == "@§"
    assert decode_text(b"\x00\x5f", 0xF4) == "\x00_"
    assert decode_text(bytes.fromhex("e8329bfd06"), 0xF1, packed=True) == "hello"


def test_decode_general_group_alphabet_bits() -> None:
    """0x10-0x3F: alphabet bits 2-3 (00 GSM-7, 01 8-bit, 10 UCS-2); compressed raw."""
    assert decode_text(b"\x00", 0x10) == "@"
    assert decode_text(b"\x00", 0x14) == "\x00"
    assert decode_text("中".encode("utf-16-be"), 0x18) == "中"
    assert decode_text(b"\x00", 0x1C) == "\x00"  # reserved alphabet: octets
    assert decode_text(b"\x4e\x2d", 0x38) == "\x4e\x2d"  # compressed: not decodable


def test_decode_auto_deletion_and_message_waiting_groups() -> None:
    """0x40-0x7F follow the general group; 0xC0-0xDF are GSM-7, 0xE0-0xEF UCS-2."""
    assert decode_text("中".encode("utf-16-be"), 0x48) == "中"
    assert decode_text(b"\x00", 0xC8) == "@"
    assert decode_text(b"\x00", 0xD8) == "@"
    assert decode_text("中".encode("utf-16-be"), 0xE8) == "中"


def test_decode_unknown_is_latin1() -> None:
    """Reserved groups (0x80-0xBF) and other SMPP values decode as Latin-1."""
    assert decode_text(b"\xe9", 0x80) == "é"
    assert decode_text(b"\xe9", 0x05) == "é"
    assert decode_text(b"\xe9", 0x0E) == "é"


@settings(max_examples=300)
@given(st.binary(max_size=300), st.integers(0, 255), st.booleans())
def test_decode_text_never_raises(data: bytes, data_coding: int, packed: bool) -> None:
    """decode_text returns a str for any octets and any data_coding 0..255."""
    assert isinstance(decode_text(data, data_coding, packed=packed), str)


@settings(max_examples=200)
@given(st.text())
def test_decode_text_inverts_encode_text(text: str) -> None:
    """Encoding with the chosen alphabet and decoding by its data_coding is lossless."""
    enc = choose_encoding(text, allow_latin1=True)
    data = encode_text(text, enc)
    dc = {"gsm7": 0, "latin1": 3, "ucs2": 8}[enc]
    assert decode_text(data, dc) == text
    if enc == "gsm7" and not text.endswith("\r"):
        assert decode_text(pack_septets(data), 0, packed=True) == text


# --- measure -----------------------------------------------------------------


def test_measure_real_alerts_fit_one() -> None:
    """The sample English and Chinese alerts each fit one SMS."""
    assert measure(ALERT_EN) == Measure("gsm7", len(ALERT_EN), 1, True)
    zh = measure(ALERT_ZH)
    assert zh.encoding == "ucs2"
    assert zh.fits_one
    assert zh.units == len(ALERT_ZH) <= 70


def test_measure_limits_per_encoding() -> None:
    """One part holds 160 GSM-7 septets, 70 UCS-2 units, 140 Latin-1 octets."""
    assert measure("a" * 160).fits_one
    assert measure("a" * 161) == Measure("gsm7", 161, 2, False)
    assert measure("€" * 80) == Measure("gsm7", 160, 1, True)
    assert measure("中" * 70).fits_one
    assert measure("中" * 71) == Measure("ucs2", 71, 2, False)
    assert measure("😀" * 35).fits_one
    assert measure("😀" * 36) == Measure("ucs2", 72, 2, False)
    assert measure("ç" * 140, allow_latin1=True) == Measure("latin1", 140, 1, True)
    assert measure("ç" * 141, allow_latin1=True) == Measure("latin1", 141, 2, False)


def test_measure_parts_by_method() -> None:
    """Part counts follow the method: 153/152/160 septets per part, payload one PDU."""
    text = "a" * 306
    assert measure(text, method="udh8").parts == 2
    assert measure(text, method="udh16").parts == 3
    assert measure(text, method="sar").parts == 2
    assert measure(text, method="payload").parts == 1
    with pytest.raises(ValueError, match="unknown concatenation method"):
        measure(text, method="carrier-pigeon")


def test_measure_counts_escape_that_moves_to_next_part() -> None:
    """An escape straddling the 153-septet boundary costs a part, as segment does."""
    assert measure("a" * 152 + "€" + "a" * 152).parts == 3


def test_measure_is_frozen() -> None:
    """Measure is an immutable value."""
    result = measure("hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.parts = 2  # type: ignore[misc]
