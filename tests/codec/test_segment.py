"""Segmentation into submit_sm parts, UDH parsing and reassembly."""

from __future__ import annotations

import dataclasses

import pytest
import smpplib.consts
import smpplib.gsm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw.codec.gsm7 import ESC, GSM7_BASIC, GSM7_EXTENSION, UnencodableError
from smsgw.codec.segment import (
    MAX_PAYLOAD,
    Concat,
    ConcatMethod,
    PayloadTooLongError,
    Segment,
    SegmentPlan,
    TooManyPartsError,
    UdhError,
    parse_udh,
    reassemble,
    segment,
    udh_septet_fill,
)
from smsgw.codec.text import Encoding, units

METHODS: tuple[ConcatMethod, ...] = ("udh8", "udh16", "sar", "payload")
GSM_CHARS = "".join(c for i, c in enumerate(GSM7_BASIC) if i != ESC) + "".join(
    GSM7_EXTENSION.values()
)
# Limits per part: one SMS without UDH, and per method when concatenated.
PART_UNITS = {
    "udh8": {"gsm7": 153, "ucs2": 67, "latin1": 134},
    "udh16": {"gsm7": 152, "ucs2": 66, "latin1": 133},
    "sar": {"gsm7": 160, "ucs2": 70, "latin1": 140},
}


def bodies(plan: SegmentPlan) -> list[bytes]:
    """User data of each part after its UDH."""
    return [
        parse_udh(s.short_message)[1] if s.udhi else s.short_message
        for s in plan.segments
    ]


# --- single part / boundaries -------------------------------------------------


def test_empty_text_is_one_empty_part() -> None:
    """An empty text gives one part with an empty short_message and no UDH."""
    plan = segment("")
    assert plan == SegmentPlan("gsm7", 0, (Segment(b"", False, ()),))


def test_160_gsm_chars_one_part_161_two() -> None:
    """160 GSM-7 septets fit one plain part; 161 need two (153 + 8)."""
    one = segment("a" * 160)
    assert one.segments == (Segment(b"a" * 160, False, ()),)
    two = segment("a" * 161, ref=7)
    assert [len(b) for b in bodies(two)] == [153, 8]
    assert all(s.udhi and s.tlvs == () for s in two.segments)


def test_70_chinese_one_part_71_two() -> None:
    """70 UCS-2 units fit one part; 71 need two parts of 67 and 4 units."""
    assert len(segment("中" * 70).segments) == 1
    plan = segment("中" * 71)
    assert plan.encoding == "ucs2"
    assert plan.data_coding == 8
    assert [len(b) // 2 for b in bodies(plan)] == [67, 4]


def test_latin1_boundaries() -> None:
    """140 Latin-1 octets fit one part; 141 split into 134 + 7 with udh8."""
    assert len(segment("ç" * 140, allow_latin1=True).segments) == 1
    plan = segment("ç" * 141, allow_latin1=True)
    assert (plan.encoding, plan.data_coding) == ("latin1", 3)
    assert [len(b) for b in bodies(plan)] == [134, 7]


def test_udh8_bytes_exact() -> None:
    """udh8 parts start with exactly 05 00 03 ref total seq; ref is masked to 8 bits."""
    plan = segment("a" * 400, ref=0x1234)
    assert [s.short_message[:6].hex() for s in plan.segments] == [
        "050003340301",
        "050003340302",
        "050003340303",
    ]


def test_udh16_bytes_exact() -> None:
    """udh16 parts start with 06 08 04 refHi refLo total seq and hold 152 septets."""
    plan = segment("a" * 305, method="udh16", ref=0x1234)
    assert [s.short_message[:7].hex() for s in plan.segments] == [
        "06080412340301",
        "06080412340302",
        "06080412340303",
    ]
    assert [len(b) for b in bodies(plan)] == [152, 152, 1]


def test_sar_tlvs_and_full_parts() -> None:
    """SAR parts carry no UDH, 160 septets each, and the three sar_* TLVs."""
    plan = segment("a" * 321, method="sar", ref=0x12345)
    assert [len(s.short_message) for s in plan.segments] == [160, 160, 1]
    assert [s.udhi for s in plan.segments] == [False, False, False]
    assert plan.segments[2].tlvs == (
        (0x020C, b"\x23\x45"),
        (0x020E, b"\x03"),
        (0x020F, b"\x03"),
    )


def test_payload_is_one_pdu_with_message_payload() -> None:
    """payload puts the whole text in message_payload, short_message empty."""
    plan = segment("中" * 100, method="payload")
    assert plan.segments == (
        Segment(b"", False, ((0x0424, ("中" * 100).encode("utf-16-be")),)),
    )


def test_payload_short_text_is_plain() -> None:
    """A text that fits one SMS is a plain short_message even with method payload."""
    assert segment("hi", method="payload").segments == (Segment(b"hi", False, ()),)


def test_payload_sanity_max() -> None:
    """message_payload above 65535 octets raises PayloadTooLongError."""
    segment("a" * MAX_PAYLOAD, method="payload")
    with pytest.raises(PayloadTooLongError) as info:
        segment("a" * (MAX_PAYLOAD + 1), method="payload")
    assert info.value.size == MAX_PAYLOAD + 1


# --- never split escapes or surrogate pairs ------------------------------------


def test_euro_at_boundary_moves_to_next_part() -> None:
    """A '€' whose escape would be septet 153 moves whole to the next part."""
    plan = segment("a" * 152 + "€" + "b" * 10)
    first, second = bodies(plan)
    assert first == b"a" * 152
    assert second == b"\x1b\x65" + b"b" * 10
    assert reassemble(plan.segments, "gsm7") == "a" * 152 + "€" + "b" * 10


def test_emoji_at_ucs2_boundary_moves_to_next_part() -> None:
    """A surrogate pair that would straddle unit 67 moves whole to the next part."""
    text = "a" * 66 + "😀" + "b" * 10
    first, second = bodies(segment(text))
    assert len(first) == 132
    assert second.startswith("😀".encode("utf-16-be"))
    assert reassemble(segment(text).segments, "ucs2") == text


def test_smpplib_splits_escape_and_surrogate_where_we_do_not() -> None:
    """smpplib's make_parts cuts '€' and an emoji in half; our parts stay whole."""
    text = "a" * 152 + "€" + "b" * 10
    parts, _, _ = smpplib.gsm.make_parts(text, smpplib.consts.SMPP_ENCODING_DEFAULT)
    assert parts[0].endswith(b"\x1b")
    assert not bodies(segment(text))[0].endswith(b"\x1b")
    emoji = "a" * 66 + "😀" + "b" * 10
    parts, _, _ = smpplib.gsm.make_parts(emoji, smpplib.consts.SMPP_ENCODING_ISO10646)
    assert 0xD8 <= parts[0][-2] <= 0xDB  # ends with a high surrogate
    assert not 0xD8 <= bodies(segment(emoji))[0][-2] <= 0xDB


@pytest.mark.parametrize(
    ("text", "encoding"),
    [("中文短信" * 60, smpplib.consts.SMPP_ENCODING_ISO10646), ("a" * 500, 0)],
)
def test_chunks_match_smpplib_where_it_is_right(text: str, encoding: int) -> None:
    """Without escapes or astral chars our udh8 chunks equal smpplib's (ref aside)."""
    theirs, _, esm_class = smpplib.gsm.make_parts(text, encoding)
    ours = segment(text, ref=0).segments
    assert esm_class == 0x40
    assert [p[6:] for p in theirs] == [s.short_message[6:] for s in ours]
    assert [p[:3] + p[4:6] for p in theirs] == [
        s.short_message[:3] + s.short_message[4:6] for s in ours
    ]


# --- choice, data_coding, limits ---------------------------------------------


def test_auto_one_non_gsm_char_makes_ucs2() -> None:
    """One non-GSM character makes the whole message UCS-2 (70 limit)."""
    plan = segment("a" * 69 + "中")
    assert (plan.encoding, plan.data_coding) == ("ucs2", 8)
    assert len(plan.segments) == 1


def test_latin1_only_when_allowed() -> None:
    """Latin-1 is chosen only with allow_latin1."""
    assert segment("façade").encoding == "ucs2"
    assert segment("façade", allow_latin1=True).encoding == "latin1"


def test_data_coding_overrides() -> None:
    """data_codings overrides the default per encoding (e.g. GSM-7 as 1)."""
    assert segment("hi", data_codings={"gsm7": 1}).data_coding == 1
    assert segment("中", data_codings={"gsm7": 1}).data_coding == 8


def test_explicit_encoding() -> None:
    """An explicit encoding is used even if GSM-7 would do, and fails if it cannot."""
    plan = segment("hi", encoding="ucs2")
    assert plan.segments[0].short_message == b"\x00h\x00i"
    with pytest.raises(UnencodableError):
        segment("中", encoding="gsm7")


def test_too_many_parts_raises() -> None:
    """Needing more than max_parts raises with the count and limit, never truncates."""
    with pytest.raises(TooManyPartsError) as info:
        segment("a" * (153 * 3 + 1), max_parts=3)
    assert (info.value.needed, info.value.limit) == (4, 3)
    assert len(segment("a" * (153 * 3), max_parts=3).segments) == 3


def test_parts_capped_at_255() -> None:
    """The total is one octet, so more than 255 parts raise even with a higher max."""
    with pytest.raises(TooManyPartsError) as info:
        segment("a" * (153 * 255 + 1), max_parts=1000)
    assert info.value.limit == 255


def test_bad_arguments() -> None:
    """max_parts < 1 and an unknown method are ValueErrors."""
    with pytest.raises(ValueError, match="max_parts"):
        segment("a", max_parts=0)
    with pytest.raises(ValueError, match="method"):
        segment("a" * 200, method="pigeon")  # type: ignore[arg-type]


def test_plans_are_frozen_and_deterministic() -> None:
    """The same input gives equal, immutable plans."""
    plan = segment("x" * 400, ref=9)
    assert plan == segment("x" * 400, ref=9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.encoding = "ucs2"  # type: ignore[misc]


# --- packed GSM-7 --------------------------------------------------------------


def test_udh_septet_fill() -> None:
    """6-octet UDH needs 1 fill bit, 7 octets none, 0 none; negative is an error."""
    assert [udh_septet_fill(n) for n in (0, 6, 7, 12)] == [0, 1, 0, 2]
    with pytest.raises(ValueError, match="UDH"):
        udh_septet_fill(-1)


def test_packed_udh8_uses_one_fill_bit() -> None:
    """Packed parts after a 6-octet UDH start with a fill bit: 'hello' is d06536fb0d."""
    text = "a" * 306 + "hello"
    plan = segment(text, packed=True)
    assert plan.segments[2].short_message.hex() == "050003000303" + "d06536fb0d"
    assert [len(s.short_message) for s in plan.segments] == [140, 140, 11]
    assert reassemble(plan.segments, "gsm7", packed=True) == text


def test_packed_udh16_has_no_fill() -> None:
    """Packed parts after a 7-octet UDH pack from bit 0: 'hello' is e8329bfd06."""
    plan = segment("a" * 304 + "hello", method="udh16", packed=True)
    assert plan.segments[2].short_message[7:].hex() == "e8329bfd06"
    assert len(plan.segments[0].short_message) == 140


def test_packed_single_part() -> None:
    """A packed one-part text is 140 octets at most and has no UDH."""
    plan = segment("a" * 160, packed=True)
    assert len(plan.segments[0].short_message) == 140
    assert segment("hello", packed=True).segments[0].short_message.hex() == "e8329bfd06"


def test_packed_part_never_ends_with_cr_on_octet_boundary() -> None:
    """A CR as septet 153 (ending on an octet boundary) moves to the next part."""
    text = "a" * 152 + "\r" + "b" * 10
    plan = segment(text, packed=True)
    first, second = bodies(plan)
    # 1 + 7*152 = 1065 bits -> 134 octets, 7 spare bits padded with CR;
    # 1 + 7*11 = 78 bits -> 10 octets.
    assert (len(first), len(second)) == (134, 10)
    assert first[-1] >> 1 == 0x0D
    assert second[0] >> 1 == 0x0D  # the moved CR, after the fill bit
    assert reassemble(plan.segments, "gsm7", packed=True) == text


def test_packed_one_part_ending_cr_on_boundary_is_concatenated() -> None:
    """'abcdefg\\r' (8 septets, CR on a boundary) is sent with a UDH to stay exact."""
    plan = segment("abcdefg\r", packed=True)
    assert plan.segments[0].udhi
    assert reassemble(plan.segments, "gsm7", packed=True) == "abcdefg\r"


def test_packed_payload_ending_cr_on_boundary_gets_second_cr() -> None:
    """message_payload cannot split, so 23.038's doubled CR is sent and read back."""
    text = "a" * 199 + "\r"  # 200 septets = 175 octets exactly
    plan = segment(text, method="payload", packed=True)
    assert reassemble(plan.segments, "gsm7", packed=True) == text + "\r"


# --- parse_udh ------------------------------------------------------------------


def test_parse_udh_concat8_and_16() -> None:
    """parse_udh returns the 8- or 16-bit concat IE and the data after the UDH."""
    assert parse_udh(bytes.fromhex("050003aa0302") + b"hi") == (
        Concat(0xAA, 3, 2),
        b"hi",
    )
    assert parse_udh(bytes.fromhex("0608041234ff01")) == (Concat(0x1234, 255, 1), b"")


def test_parse_udh_skips_other_ies() -> None:
    """Other IEs are skipped; without a concat IE the result is None."""
    # IE 0x0A (text formatting, 4 octets) then 8-bit concat.
    udh = bytes.fromhex("0b0a0400000000" + "000377" + "0201")
    assert parse_udh(udh + b"x") == (Concat(0x77, 2, 1), b"x")
    assert parse_udh(bytes.fromhex("0401020000") + b"x") == (None, b"x")
    assert parse_udh(b"\x00abc") == (None, b"abc")


def test_parse_udh_ignores_invalid_concat_numbers() -> None:
    """A concat IE with total 0, seq 0 or seq > total is ignored (23.040)."""
    for ie in ("000301 00 01", "000301 02 00", "000301 02 03"):
        assert parse_udh(bytes.fromhex("05" + ie.replace(" ", "")))[0] is None


@pytest.mark.parametrize(
    "data",
    ["", "05000301", "0500", "030004010203", "0300020102", "04000301020304"],
)
def test_parse_udh_malformed(data: str) -> None:
    """A UDH past the end, an IE past the UDH, or a bad concat length raise UdhError."""
    with pytest.raises(UdhError):
        parse_udh(bytes.fromhex(data))


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_parse_udh_raises_only_udh_error(data: bytes) -> None:
    """On arbitrary bytes parse_udh returns or raises UdhError, nothing else."""
    try:
        concat, rest = parse_udh(data)
    except UdhError:
        return
    assert len(rest) < len(data)
    assert concat is None or 1 <= concat.seq <= concat.total


def test_reassemble_out_of_order_and_split_escape() -> None:
    """Parts are joined by seq, and an escape split by another sender still decodes."""
    other = [
        Segment(bytes.fromhex("050003010202") + b"\x65b", True, ()),
        Segment(bytes.fromhex("050003010201") + b"a\x1b", True, ()),
    ]
    assert reassemble(other, "gsm7") == "a€b"


# --- properties ---------------------------------------------------------------

texts = st.one_of(
    st.text(max_size=700),
    st.text(alphabet=GSM_CHARS + "\r" * 8, max_size=700),
    st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=500),
    st.text(alphabet="a😀中", max_size=400),
)


def _check_part_limits(plan: SegmentPlan, method: ConcatMethod, packed: bool) -> None:
    if len(plan.segments) == 1 and not plan.segments[0].udhi:
        seg = plan.segments[0]
        if seg.tlvs:  # payload
            assert method == "payload"
            return
        size = len(seg.short_message)
        if plan.encoding == "gsm7" and not packed:
            assert size <= 160
        else:
            assert size <= 140
        return
    limit = PART_UNITS[method][plan.encoding]
    udh_len = {"udh8": 6, "udh16": 7, "sar": 0}[method]
    for seg, body in zip(plan.segments, bodies(plan), strict=True):
        assert len(seg.short_message) - len(body) == udh_len
        if plan.encoding == "gsm7":
            if packed:
                assert len(seg.short_message) <= 140
            else:
                # The SMSC packs it: UDH + septets must fit 140 octets.
                fill = udh_septet_fill(udh_len)
                assert len(body) <= limit
                assert udh_len + (fill + 7 * len(body) + 7) // 8 <= 140
                assert not body.endswith(b"\x1b")
        elif plan.encoding == "ucs2":
            assert len(seg.short_message) <= 140
            assert len(body) // 2 <= limit
            assert not 0xD8 <= body[-2] <= 0xDB
        else:
            assert len(seg.short_message) <= 140


@settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts,
    st.sampled_from(METHODS),
    st.booleans(),
    st.booleans(),
    st.integers(0, 0xFFFF),
)
def test_segment_reassemble_round_trip(
    text: str, method: ConcatMethod, packed: bool, latin1: bool, ref: int
) -> None:
    """For any text, method and packing, parts are in limits and reassemble back."""
    plan = segment(
        text, method=method, packed=packed, ref=ref, max_parts=255, allow_latin1=latin1
    )
    encoding: Encoding = plan.encoding
    _check_part_limits(plan, method, packed and encoding == "gsm7")
    result = reassemble(plan.segments, encoding, packed=packed)
    single = plan.segments[0]
    if (
        packed
        and encoding == "gsm7"
        and single.tlvs
        and method == "payload"
        and text.endswith("\r")
        and (7 * units(text, "gsm7")) % 8 == 0
    ):
        assert result == text + "\r"  # 23.038's doubled CR; payload cannot split
    else:
        assert result == text
    if len(plan.segments) > 1:
        totals = {len(plan.segments)}
        for seg in plan.segments:
            if seg.udhi:
                concat = parse_udh(seg.short_message)[0]
                assert concat is not None
                totals.add(concat.total)
        assert totals == {len(plan.segments)}
