"""MO (reply) parts: reading deliver_sm/data_sm, grouping and reassembly."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from smsgw.codec import pdu as P
from smsgw.codec.constants import ESM_UDHI, Tag
from smsgw.codec.gsm7 import GSM7_BASIC, GSM7_EXTENSION, encode_gsm7
from smsgw.codec.segment import ConcatMethod, segment
from smsgw.feedback.mo import (
    GAP,
    Assembled,
    MoError,
    MoPart,
    assemble,
    decode_single,
    group_key,
    mo_part,
)

SRC = "4915112345678"
DST = "72345"


def deliver(
    short_message: bytes = b"",
    *,
    data_coding: int = 0,
    esm_class: int = 0,
    tlvs: tuple[P.Tlv, ...] = (),
    source: str = SRC,
) -> P.DeliverSm:
    """Build an MO deliver_sm from the cardholder to our short code."""
    return P.DeliverSm(
        source_addr=source,
        destination_addr=DST,
        esm_class=esm_class,
        data_coding=data_coding,
        short_message=short_message,
        tlvs=tlvs,
    )


def udh8(ref: int, total: int, seq: int) -> bytes:
    """Return an 8-bit-reference concatenation UDH (23.040 §9.2.3.24.1)."""
    return bytes((5, 0, 3, ref, total, seq))


def udh16(ref: int, total: int, seq: int) -> bytes:
    """Return a 16-bit-reference concatenation UDH (23.040 §9.2.3.24.8)."""
    return bytes((6, 8, 4, ref >> 8, ref & 0xFF, total, seq))


def sar(ref: int, total: int, seq: int) -> tuple[P.Tlv, ...]:
    """Return the three SAR TLVs with the spec's sizes (2, 1, 1 octets)."""
    return (
        (Tag.SAR_MSG_REF_NUM, ref.to_bytes(2, "big")),
        (Tag.SAR_TOTAL_SEGMENTS, bytes((total,))),
        (Tag.SAR_SEGMENT_SEQNUM, bytes((seq,))),
    )


def udh_parts(chunks: list[bytes], ref: int = 0x42, dc: int = 0) -> list[P.DeliverSm]:
    """Return one UDHI deliver_sm per chunk, 8-bit reference, in order."""
    n = len(chunks)
    return [
        deliver(udh8(ref, n, i) + c, data_coding=dc, esm_class=ESM_UDHI)
        for i, c in enumerate(chunks, 1)
    ]


# --------------------------------------------------------------------------
# mo_part: single messages
# --------------------------------------------------------------------------


def test_single_gsm7() -> None:
    """A plain data_coding 0 reply is one unpacked GSM-7 part."""
    part = mo_part(deliver(encode_gsm7("Yes €5"), data_coding=0))
    assert part == MoPart(
        source=SRC,
        destination=DST,
        data_coding=0,
        ref=None,
        total=1,
        seq=1,
        data=b"Yes \x1b\x655",
        method="single",
    )
    assert decode_single(part) == "Yes €5"


def test_single_latin1() -> None:
    """A data_coding 3 reply decodes as Latin-1."""
    part = mo_part(deliver("Não é meu".encode("latin-1"), data_coding=3))
    assert (part.method, part.data_coding) == ("single", 3)
    assert decode_single(part) == "Não é meu"


def test_single_ucs2_chinese() -> None:
    """A data_coding 8 reply decodes as UTF-16-BE."""
    part = mo_part(deliver("不是我".encode("utf-16-be"), data_coding=8))
    assert part.data == b"\x4e\x0d\x66\x2f\x62\x11"
    assert decode_single(part) == "不是我"


def test_message_payload_in_deliver_sm() -> None:
    """message_payload wins over short_message and is one "payload" part."""
    pdu = deliver(
        b"ignored",
        data_coding=8,
        tlvs=((Tag.MESSAGE_PAYLOAD, "不是我".encode("utf-16-be")),),
    )
    part = mo_part(pdu)
    assert (part.method, part.ref, part.total, part.seq) == ("payload", None, 1, 1)
    assert decode_single(part) == "不是我"


def test_message_payload_in_data_sm() -> None:
    """A data_sm reply is read from its message_payload TLV."""
    pdu = P.DataSm(
        source_addr=SRC,
        destination_addr=DST,
        data_coding=0,
        tlvs=((Tag.MESSAGE_PAYLOAD, encode_gsm7("STOP")),),
    )
    part = mo_part(pdu)
    assert part == MoPart(SRC, DST, 0, None, 1, 1, b"STOP", "payload")
    assert decode_single(part) == "STOP"


def test_data_sm_without_payload_is_empty() -> None:
    """A data_sm with no message_payload is an empty single part."""
    part = mo_part(P.DataSm(source_addr=SRC, destination_addr=DST))
    assert (part.method, part.data, decode_single(part)) == ("single", b"", "")


def test_message_payload_with_udh_concat() -> None:
    """A payload with UDHI has its UDH stripped and its concat IE read."""
    pdu = deliver(
        esm_class=ESM_UDHI,
        tlvs=((Tag.MESSAGE_PAYLOAD, udh16(0x1234, 3, 2) + b"abc"),),
    )
    part = mo_part(pdu)
    assert (part.method, part.ref, part.total, part.seq) == ("payload", 0x1234, 3, 2)
    assert part.data == b"abc"


def test_message_payload_with_udh_no_concat() -> None:
    """A payload whose UDH has no concat IE is one part, UDH removed."""
    port_udh = bytes((6, 5, 4, 0x0B, 0x84, 0x23, 0xF0))  # 16-bit ports IE
    pdu = deliver(esm_class=ESM_UDHI, tlvs=((Tag.MESSAGE_PAYLOAD, port_udh + b"hi"),))
    part = mo_part(pdu)
    assert (part.method, part.ref, part.total, part.seq) == ("payload", None, 1, 1)
    assert part.data == b"hi"


def test_udhi_without_concat_is_single() -> None:
    """A UDH without a concat IE gives a single part with the UDH stripped."""
    port_udh = bytes((4, 4, 2, 0x0B, 0x84))  # 8-bit ports IE
    part = mo_part(deliver(port_udh + b"N", esm_class=ESM_UDHI))
    assert part == MoPart(SRC, DST, 0, None, 1, 1, b"N", "single")


def test_udhi_without_concat_falls_back_to_sar() -> None:
    """A UDH with no concat IE plus valid SAR TLVs makes a "sar" part."""
    port_udh = bytes((4, 4, 2, 0x0B, 0x84))
    pdu = deliver(port_udh + b"x", esm_class=ESM_UDHI, tlvs=sar(7, 2, 2))
    part = mo_part(pdu)
    assert (part.method, part.ref, part.total, part.seq, part.data) == (
        "sar",
        7,
        2,
        2,
        b"x",
    )


def test_udh_concat_wins_over_sar() -> None:
    """When both a UDH concat IE and SAR TLVs are present the UDH is used."""
    pdu = deliver(udh8(9, 3, 1) + b"x", esm_class=ESM_UDHI, tlvs=sar(7, 2, 2))
    part = mo_part(pdu)
    assert (part.method, part.ref, part.total, part.seq) == ("udh", 9, 3, 1)


def test_udh_with_invalid_concat_is_single() -> None:
    """A concat IE with seq 0 is ignored (23.040): one part, UDH stripped."""
    part = mo_part(deliver(udh8(9, 3, 0) + b"x", esm_class=ESM_UDHI))
    assert (part.method, part.ref, part.data) == ("single", None, b"x")


@pytest.mark.parametrize(
    ("short_message", "detail"),
    [
        (b"", "short_message is empty"),
        (b"\x05\x00\x03\x01", "UDHL 5 runs past 4 octets"),
        (b"\x03\x00\x03\x01\x02\x01abc", "IE 0x00 at offset 1 runs past the UDH"),
        (b"\x04\x00\x02\x01\x01abc", "concatenation IE 0x00 has length 2"),
    ],
)
def test_malformed_udh_raises(short_message: bytes, detail: str) -> None:
    """A UDH that runs past its data is a MoError naming the problem."""
    with pytest.raises(MoError, match="malformed UDH in short_message") as info:
        mo_part(deliver(short_message, esm_class=ESM_UDHI))
    assert detail in str(info.value)


def test_malformed_udh_in_payload_raises() -> None:
    """A malformed UDH in message_payload is a MoError naming message_payload."""
    pdu = deliver(esm_class=ESM_UDHI, tlvs=((Tag.MESSAGE_PAYLOAD, b"\x09\x00"),))
    with pytest.raises(MoError, match="malformed UDH in message_payload"):
        mo_part(pdu)


def test_sar_part() -> None:
    """Three valid SAR TLVs make a "sar" part with their ref/total/seq."""
    part = mo_part(deliver(b"abc", tlvs=sar(0xBEEF, 4, 3)))
    assert part == MoPart(SRC, DST, 0, 0xBEEF, 4, 3, b"abc", "sar")


def test_sar_with_short_tlvs_accepted() -> None:
    """A one-octet sar_msg_ref_num (some SMSCs) is read as its value."""
    tlvs = (
        (Tag.SAR_MSG_REF_NUM, b"\x05"),
        (Tag.SAR_TOTAL_SEGMENTS, b"\x02"),
        (Tag.SAR_SEGMENT_SEQNUM, b"\x01"),
    )
    part = mo_part(deliver(b"a", tlvs=tlvs))
    assert (part.method, part.ref, part.total, part.seq) == ("sar", 5, 2, 1)


@pytest.mark.parametrize(
    "tlvs",
    [
        sar(1, 3, 0),  # seq 0
        sar(1, 3, 4),  # seq beyond total
        sar(1, 0, 0),  # total 0
        sar(1, 3, 1)[:2],  # no sar_segment_seqnum
        sar(1, 3, 1)[1:],  # no sar_msg_ref_num
        (
            (Tag.SAR_MSG_REF_NUM, b"\x01"),
            (Tag.SAR_TOTAL_SEGMENTS, b"\x01\x00"),  # 256 parts: wider than 1 octet
            (Tag.SAR_SEGMENT_SEQNUM, b"\x01"),
        ),
        (
            (Tag.SAR_MSG_REF_NUM, b"\x01\x00\x00"),  # ref above 0xFFFF
            (Tag.SAR_TOTAL_SEGMENTS, b"\x02"),
            (Tag.SAR_SEGMENT_SEQNUM, b"\x01"),
        ),
    ],
)
def test_invalid_sar_is_single(tlvs: tuple[P.Tlv, ...]) -> None:
    """Missing or out-of-range SAR values make a plain single part."""
    part = mo_part(deliver(b"abc", tlvs=tlvs))
    assert part == MoPart(SRC, DST, 0, None, 1, 1, b"abc", "single")


# --------------------------------------------------------------------------
# assemble
# --------------------------------------------------------------------------

CHUNKS = [b"This is ", b"not me, ", b"block it"]
ORDERS = {"in order": [0, 1, 2], "reversed": [2, 1, 0], "shuffled": [1, 2, 0]}


@pytest.mark.parametrize("order", ORDERS.values(), ids=ORDERS.keys())
def test_udh8_parts_any_order(order: list[int]) -> None:
    """8-bit UDH parts assemble in seq order whatever the arrival order."""
    pdus = udh_parts(CHUNKS)
    parts = [mo_part(pdus[i]) for i in order]
    assert assemble(parts) == Assembled("This is not me, block it", True, 3, ())
    assert {p.method for p in parts} == {"udh"}


@pytest.mark.parametrize("order", ORDERS.values(), ids=ORDERS.keys())
def test_udh16_parts_any_order(order: list[int]) -> None:
    """16-bit UDH parts assemble in seq order whatever the arrival order."""
    pdus = [
        deliver(udh16(0xA1B2, 3, i) + c, esm_class=ESM_UDHI)
        for i, c in enumerate(CHUNKS, 1)
    ]
    parts = [mo_part(pdus[i]) for i in order]
    assert {p.ref for p in parts} == {0xA1B2}
    assert assemble(parts) == Assembled("This is not me, block it", True, 3, ())


def test_sar_parts_out_of_order() -> None:
    """SAR parts arriving 3, 1, 2 assemble as 1, 2, 3."""
    pdus = [deliver(c, tlvs=sar(0x0102, 3, i)) for i, c in enumerate(CHUNKS, 1)]
    parts = [mo_part(pdus[2]), mo_part(pdus[0]), mo_part(pdus[1])]
    assert assemble(parts) == Assembled("This is not me, block it", True, 3, ())


def test_surrogate_pair_split_across_ucs2_parts() -> None:
    """An emoji whose UTF-16 surrogate pair spans two parts decodes whole."""
    data = "no 😡".encode("utf-16-be")  # 😡 is D83D DE21
    first, second = data[:8], data[8:]
    assert (first[-2:], second) == (b"\xd8\x3d", b"\xde\x21")
    parts = [mo_part(p) for p in udh_parts([first, second], dc=8)]
    assert decode_single(parts[0]) == "no \ufffd"  # alone it is a lone surrogate
    assert assemble(parts[::-1]).text == "no 😡"


def test_gsm7_escape_split_across_parts() -> None:
    """A GSM-7 escape (€ = 1B 65) whose ESC ends one part decodes as €."""
    parts = [mo_part(p) for p in udh_parts([b"5\x1b", b"\x65 ok"], dc=0)]
    assert decode_single(parts[0]) == "5"  # a lone trailing ESC is dropped
    assert assemble(parts).text == "5€ ok"


def test_missing_middle_part() -> None:
    """Without part 2 the runs are decoded apart and joined with " … "."""
    pdus = udh_parts(CHUNKS)
    result = assemble([mo_part(pdus[2]), mo_part(pdus[0])])
    assert result == Assembled("This is  … block it", False, 2, (2,))
    assert GAP == " \u2026 "


def test_missing_middle_part_splits_escape() -> None:
    """A run is decoded alone, so an ESC before a gap does not eat the next run."""
    pdus = udh_parts([b"a\x1b", b"\x65", b"\x65b"])
    result = assemble([mo_part(pdus[0]), mo_part(pdus[2])])
    assert result.text == "a … eb"


def test_missing_first_and_last_parts() -> None:
    """Parts missing at either end are listed; only gaps between runs show " … "."""
    pdus = udh_parts([b"a", b"b", b"c", b"d", b"e"])
    result = assemble([mo_part(pdus[i]) for i in (3, 1)])
    assert result == Assembled("b … d", False, 2, (1, 3, 5))


def test_duplicates_keep_first() -> None:
    """A repeated part number is counted once and the first copy is used."""
    pdus = udh_parts([b"ab", b"cd"])
    again = deliver(udh8(0x42, 2, 1) + b"XX", esm_class=ESM_UDHI)
    parts = [mo_part(p) for p in (pdus[0], again, pdus[1], pdus[0])]
    assert assemble(parts) == Assembled("abcd", True, 2, ())


def test_first_part_data_coding_used() -> None:
    """All parts are decoded with the first part's data_coding."""
    first = mo_part(
        deliver(udh8(1, 2, 2) + b"\x00\x41", esm_class=ESM_UDHI, data_coding=8)
    )
    second = mo_part(deliver(udh8(1, 2, 1) + b"\x00\x42", esm_class=ESM_UDHI))
    assert assemble([first, second]).text == "BA"


def test_assemble_empty_raises() -> None:
    """assemble needs at least one part."""
    with pytest.raises(ValueError, match="at least one part"):
        assemble([])


def test_decode_single_of_a_later_part() -> None:
    """decode_single decodes one part alone, without gap markers."""
    part = mo_part(udh_parts(CHUNKS)[1])
    assert decode_single(part) == "not me, "


# --------------------------------------------------------------------------
# group keys and rows
# --------------------------------------------------------------------------


def test_group_key_udh_and_sar_differ() -> None:
    """A UDH part and a SAR part with the same ref and total never group."""
    by_udh = mo_part(deliver(udh16(7, 2, 1) + b"a", esm_class=ESM_UDHI))
    by_sar = mo_part(deliver(b"a", tlvs=sar(7, 2, 1)))
    assert group_key(by_udh) == (SRC, DST, 7, 2, "udh")
    assert group_key(by_sar) == (SRC, DST, 7, 2, "sar")


def test_group_key_same_for_parts_of_one_message() -> None:
    """All parts of one message share a key; another sender's do not."""
    keys = {group_key(mo_part(p)) for p in udh_parts(CHUNKS)}
    assert keys == {(SRC, DST, 0x42, 3, "udh")}
    other = deliver(udh8(0x42, 3, 1) + b"x", esm_class=ESM_UDHI, source="4930555")
    assert group_key(mo_part(other)) == ("4930555", DST, 0x42, 3, "udh")


def test_group_key_payload_concat_is_udh_family() -> None:
    """A payload carrying a UDH concat IE groups with short_message UDH parts."""
    in_payload = mo_part(
        deliver(esm_class=ESM_UDHI, tlvs=((Tag.MESSAGE_PAYLOAD, udh8(5, 2, 2) + b"b"),))
    )
    in_short = mo_part(deliver(udh8(5, 2, 1) + b"a", esm_class=ESM_UDHI))
    assert group_key(in_payload) == group_key(in_short) == (SRC, DST, 5, 2, "udh")
    assert assemble([in_payload, in_short]).text == "ab"


def test_group_key_single() -> None:
    """A whole message has the "single" family and no reference."""
    assert group_key(mo_part(deliver(b"Y"))) == (SRC, DST, None, 1, "single")


def test_row_round_trip() -> None:
    """to_row gives plain values and from_row rebuilds an equal part."""
    part = mo_part(deliver(udh16(0x0203, 4, 2) + b"\x00\xe9", esm_class=ESM_UDHI))
    row = part.to_row()
    assert row == {
        "source": SRC,
        "destination": DST,
        "data_coding": 0,
        "ref": 0x0203,
        "total": 4,
        "seq": 2,
        "data": b"\x00\xe9",
        "method": "udh",
    }
    assert MoPart.from_row(row) == part
    single = mo_part(deliver(b"N"))
    assert MoPart.from_row(single.to_row()) == single


def test_from_row_accepts_memoryview() -> None:
    """A blob read back as memoryview becomes bytes."""
    row = mo_part(deliver(b"ok")).to_row()
    row_view = {**row, "data": memoryview(b"ok")}
    assert MoPart.from_row(row_view).data == b"ok"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "mms"}, "row field 'method': unknown MO method 'mms'"),
        ({"data": "text"}, "row field 'data': expected bytes"),
        ({"ref": "7"}, "row field 'ref': expected int or None"),
        ({"seq": None}, "row field 'seq': expected int"),
        ({"source": 49}, "row field 'source': expected str"),
        ({"seq": 2}, "part 2 is outside 1..1"),
        ({"total": 256, "seq": 1, "ref": 1}, "total 256 is above 255"),
        ({"ref": 0x10000}, "ref 65536 is outside 0..65535"),
    ],
)
def test_from_row_rejects_bad_rows(change: dict[str, object], message: str) -> None:
    """from_row raises ValueError saying which field is wrong."""
    row: dict[str, object] = {**mo_part(deliver(b"ok")).to_row(), **change}
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        MoPart.from_row(row)


# --------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------

_GSM7_CHARS = "".join(sorted(set(GSM7_BASIC) - {"\x1b"} | set(GSM7_EXTENSION.values())))
# Long enough to need several parts in GSM-7 (153 per part) and UCS-2 (67).
_TEXTS = st.one_of(
    st.text(st.sampled_from(_GSM7_CHARS), min_size=150, max_size=700),
    st.text(st.characters(exclude_categories=["Cs"]), min_size=60, max_size=300),
)
_METHODS: tuple[ConcatMethod, ...] = ("udh8", "udh16", "sar")


@settings(max_examples=200)
@given(text=_TEXTS, method=st.sampled_from(_METHODS), data=st.data())
def test_any_permutation_assembles_to_same_text(
    text: str, method: ConcatMethod, data: st.DataObject
) -> None:
    """Parts of a message (from our segmenter) in any order give the text back."""
    plan = segment(text, method=method, ref=0x1F2E, max_parts=255)
    pdus = [
        deliver(
            s.short_message,
            data_coding=plan.data_coding,
            esm_class=ESM_UDHI if s.udhi else 0,
            tlvs=s.tlvs,
        )
        for s in plan.segments
    ]
    assume(len(pdus) > 1)
    order = data.draw(st.permutations(range(len(pdus))))
    parts = [mo_part(pdus[i]) for i in order]
    assert len({group_key(p) for p in parts}) == 1
    result = assemble(parts)
    assert result == Assembled(text, True, len(pdus), ())
