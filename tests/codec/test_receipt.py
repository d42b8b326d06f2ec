"""Delivery-receipt parsing (smsgw.codec.receipt): TLVs first, tolerant text after."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw.codec import pdu as P
from smsgw.codec.constants import Tag
from smsgw.codec.receipt import (
    FINAL_STATES,
    STATES,
    Receipt,
    is_receipt,
    parse_receipt,
)
from tests.codec.test_pdu import load_hex

CANONICAL = (
    b"id:0A1B2C3D sub:001 dlvrd:001 submit date:2411291200 done date:2411291201"
    b" stat:DELIVRD err:000 text:XX Bank: Card *12"
)


def dlr(text: bytes = b"", *tlvs: tuple[int, bytes], esm_class: int = 4) -> P.DeliverSm:
    """A deliver_sm receipt with ``text`` as short_message and the given TLVs."""
    return P.DeliverSm(esm_class=esm_class, short_message=text, tlvs=tlvs)


def golden(name: str) -> P.DeliverSm | P.DataSm:
    """Decode a tests/data PDU that is a deliver_sm or data_sm."""
    pdu = P.decode(load_hex(name))
    assert isinstance(pdu, P.DeliverSm | P.DataSm)
    return pdu


def receipt(text: bytes = b"", *tlvs: tuple[int, bytes]) -> Receipt:
    """Parse a deliver_sm receipt that must parse."""
    r = parse_receipt(dlr(text, *tlvs))
    assert r is not None
    return r


# ------------------------------------------------------------ which PDUs


@pytest.mark.parametrize(
    ("esm_class", "expected"),
    [
        (0x00, False),  # MO
        (0x04, True),  # SMSC delivery receipt
        (0x08, True),  # SME delivery acknowledgement
        (0x10, True),  # SME manual/user acknowledgement
        (0x20, True),  # intermediate delivery notification
        (0x18, False),  # conversation abort
        (0x40, False),  # UDHI only
        (0x03, False),  # messaging-mode bits only
        (0x44, True),  # UDHI + receipt
        (0x87, True),  # GSM features and mode bits + receipt
    ],
)
def test_is_receipt_reads_message_type_bits(esm_class: int, expected: bool) -> None:
    """is_receipt looks only at esm_class bits 5-2 (SMPP 3.4 §5.2.12)."""
    assert is_receipt(dlr(esm_class=esm_class)) is expected
    assert is_receipt(P.DataSm(esm_class=esm_class)) is expected


def test_mo_is_not_a_receipt_even_if_it_looks_like_one() -> None:
    """An MO (esm_class 0) whose text reads like a receipt gives None."""
    assert parse_receipt(dlr(CANONICAL, esm_class=0)) is None
    assert parse_receipt(golden("deliver_sm_mo")) is None


def test_no_id_anywhere_gives_none() -> None:
    """A receipt with no receipted_message_id and no 'id:' gives None."""
    assert parse_receipt(dlr(b"stat:DELIVRD err:000")) is None
    assert parse_receipt(dlr(b"")) is None
    assert (
        parse_receipt(dlr(b"id: sub:001", (Tag.RECEIPTED_MESSAGE_ID, b"\x00"))) is None
    )


# ------------------------------------------------------------ TLVs vs text


def test_text_only_receipt() -> None:
    """The Appendix B text alone yields every field."""
    assert receipt(CANONICAL) == Receipt(
        message_id="0A1B2C3D",
        state="DELIVRD",
        final=True,
        error="000",
        submitted="2411291200",
        done="2411291201",
        delivered=True,
    )


def test_tlv_only_receipt_in_data_sm() -> None:
    """A data_sm receipt with TLVs only takes id, state and network error from them."""
    r = parse_receipt(golden("data_sm_receipt"))
    assert r == Receipt(
        message_id="77f0e1",
        state="UNDELIV",
        final=True,
        error="3:21",
        submitted=None,
        done=None,
        delivered=False,
    )


def test_tlv_only_receipt_in_deliver_sm() -> None:
    """A deliver_sm with an empty short_message is read from its TLVs."""
    r = receipt(
        b"", (Tag.RECEIPTED_MESSAGE_ID, b"ab12\x00"), (Tag.MESSAGE_STATE, b"\x01")
    )
    assert (r.message_id, r.state, r.final, r.error) == ("ab12", "ENROUTE", False, None)


def test_tlvs_win_over_text() -> None:
    """When TLVs and text disagree, id and state come from the TLVs, dates from text."""
    r = receipt(
        b"id:TEXTID sub:001 dlvrd:000 submit date:2411291200 done date:2411291205"
        b" stat:UNDELIV err:034 text:",
        (Tag.MESSAGE_STATE, b"\x02"),
        (Tag.RECEIPTED_MESSAGE_ID, b"TLVID\x00"),
        (Tag.NETWORK_ERROR_CODE, b"\x03\x00\x22"),
    )
    assert r == Receipt(
        message_id="TLVID",
        state="DELIVRD",
        final=True,
        error="034",  # the text's err: is preferred over network_error_code
        submitted="2411291200",
        done="2411291205",
        delivered=True,
    )


def test_fallback_is_field_by_field() -> None:
    """A TLV id without message_state takes the state from the text, and vice versa."""
    only_id = receipt(
        CANONICAL.replace(b"DELIVRD", b"EXPIRED"), (Tag.RECEIPTED_MESSAGE_ID, b"X1")
    )
    assert (only_id.message_id, only_id.state) == ("X1", "EXPIRED")
    only_state = receipt(CANONICAL, (Tag.MESSAGE_STATE, b"\x08"))
    assert (only_state.message_id, only_state.state) == ("0A1B2C3D", "REJECTD")


@pytest.mark.parametrize(
    "value", [b"", b"\x00", b"\x09", b"\xff", b"\x00\x00\x00\x00\x00"]
)
def test_invalid_message_state_falls_back_to_text(value: bytes) -> None:
    """A message_state outside 1..8 is ignored in favour of the text."""
    assert receipt(CANONICAL, (Tag.MESSAGE_STATE, value)).state == "DELIVRD"
    no_text = receipt(b"", (Tag.RECEIPTED_MESSAGE_ID, b"1"), (Tag.MESSAGE_STATE, value))
    assert (no_text.state, no_text.final) == ("UNKNOWN", False)


def test_message_state_wider_than_one_octet_is_read_as_integer() -> None:
    """A 4-octet message_state of 2 still means DELIVERED."""
    r = receipt(
        b"", (Tag.RECEIPTED_MESSAGE_ID, b"1"), (Tag.MESSAGE_STATE, b"\x00\x00\x00\x02")
    )
    assert r.state == "DELIVRD"


@pytest.mark.parametrize(
    ("n", "state"),
    [
        (1, "ENROUTE"),
        (2, "DELIVRD"),
        (3, "EXPIRED"),
        (4, "DELETED"),
        (5, "UNDELIV"),
        (6, "ACCEPTD"),
        (7, "UNKNOWN"),
        (8, "REJECTD"),
    ],
)
def test_message_state_values_and_finality(n: int, state: str) -> None:
    """message_state 1..8 maps to the Appendix B names; only the five ends are final."""
    r = receipt(b"", (Tag.RECEIPTED_MESSAGE_ID, b"m"), (Tag.MESSAGE_STATE, bytes((n,))))
    assert r.state == state
    assert r.final is (state in {"DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "REJECTD"})
    assert r.delivered is (state == "DELIVRD")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (b"\x03\x00\x00", "3:0"),  # GSM, no error
        (b"\x01\x00\x15", "1:21"),  # ANSI-136, error 21
        (b"000", "000"),  # ASCII digits (Jasmin test_deliver_sm_unknown_param...)
        (b"\x03\x00", "0300"),  # wrong length: shown as hex
    ],
)
def test_network_error_code_rendering(value: bytes, text: str) -> None:
    """network_error_code becomes 'type:code', or stays as ASCII digits, else hex."""
    r = receipt(b"", (Tag.RECEIPTED_MESSAGE_ID, b"m"), (Tag.NETWORK_ERROR_CODE, value))
    assert r.error == text


def test_message_payload_used_when_short_message_empty() -> None:
    """The text is read from message_payload when short_message is empty."""
    r = receipt(b"", (Tag.MESSAGE_PAYLOAD, CANONICAL))
    assert (r.message_id, r.state, r.done) == ("0A1B2C3D", "DELIVRD", "2411291201")
    both = receipt(CANONICAL, (Tag.MESSAGE_PAYLOAD, b"id:OTHER stat:EXPIRED"))
    assert (both.message_id, both.state) == ("0A1B2C3D", "DELIVRD")


def test_hex_and_leading_zero_ids_kept_raw() -> None:
    """Ids keep case, leading zeros and dashes; normalisation happens elsewhere.

    Shape from jookies/jasmin issue #643 (DLRMapNotFound: '0e999f21-…' vs 'E999F21-…').
    """
    r = receipt(
        b"id:0e999f21-81ef-4974-a414-3de98174e3c7 sub:001 dlvrd:001 stat:DELIVRD"
    )
    assert r.message_id == "0e999f21-81ef-4974-a414-3de98174e3c7"
    assert (
        receipt(b"", (Tag.RECEIPTED_MESSAGE_ID, b"000A1b\x00")).message_id == "000A1b"
    )
    assert receipt(b"id:00012345 stat:DELIVRD").message_id == "00012345"


# ------------------------------------------------------------ tolerant text


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("DELIVRD", "DELIVRD"),
        ("DELIVERED", "DELIVRD"),
        ("delivered", "DELIVRD"),
        ("UNDELIV", "UNDELIV"),
        ("UNDELIVERABLE", "UNDELIV"),
        ("UNDELIVERED", "UNDELIV"),
        ("ACCEPTD", "ACCEPTD"),
        ("ACCEPTED", "ACCEPTD"),
        ("REJECTD", "REJECTD"),
        ("REJECTED", "REJECTD"),
        ("EXPIRED", "EXPIRED"),
        ("DELETED", "DELETED"),
        ("ENROUTE", "ENROUTE"),
        ("UNKNOWN", "UNKNOWN"),
        ("FAILED", "UNKNOWN"),  # not an Appendix B word: unknown, not final
    ],
)
def test_stat_words_spelt_out_or_abbreviated(word: str, state: str) -> None:
    """stat: accepts the Appendix B names and their spelt-out forms, in any case."""
    r = receipt(CANONICAL.replace(b"DELIVRD", word.encode()))
    assert r.state == state
    assert r.final is (state in FINAL_STATES)


@pytest.mark.parametrize(
    "text",
    [
        # keys upper-case, underscores, extra spaces
        b"ID:0A1B2C3D  SUB:001 DLVRD:001 SUBMIT_DATE:2411291200 DONE_DATE:2411291201"
        b"   STAT:DELIVRD ERR:000 TEXT:",
        # any order, text last
        b"stat:DELIVRD err:000 done date:2411291201 id:0A1B2C3D submit date:2411291200"
        b" sub:001 dlvrd:001 text:hello",
        # spaces around the colons, tabs
        b"id : 0A1B2C3D\tsub : 001 dlvrd : 001 submit date : 2411291200"
        b" done date : 2411291201 stat : DELIVRD err : 000",
        # 'submitdate', 'status', 'error' spellings
        b"id:0A1B2C3D submitdate:2411291200 donedate:2411291201 status:DELIVRD"
        b" error:000",
        # C-string payload: NUL terminator right after err
        b"id:0A1B2C3D sub:001 dlvrd:001 submit date:2411291200 done date:2411291201"
        b" stat:DELIVRD err:000\x00",
    ],
    ids=["upper-underscore-spaces", "any-order", "spaced-colons", "spellings", "nul"],
)
def test_tolerant_text_variants(text: bytes) -> None:
    """Case, order, spacing and spelling variations all give the same receipt."""
    assert receipt(text) == receipt(CANONICAL)


def test_missing_fields_are_none() -> None:
    """Fields the SMSC left out come back as None; a missing stat is UNKNOWN."""
    r = receipt(b"id:77 err:")
    assert r == Receipt(
        message_id="77",
        state="UNKNOWN",
        final=False,
        error=None,
        submitted=None,
        done=None,
        delivered=False,
    )


def test_keys_inside_the_text_part_are_ignored() -> None:
    """What follows 'text:' is the message itself, never read as fields."""
    r = receipt(b"id:1 stat:UNDELIV err:001 text:id:2 stat:DELIVRD err:000")
    assert (r.message_id, r.state, r.error) == ("1", "UNDELIV", "001")
    bare = receipt(b"id:1 sub:001 text:DELIVRD")
    assert bare.state == "UNKNOWN"


# Real-world texts (cited); the Jasmin/python-smpplib PDUs are in tests/data.
REAL_WORLD = [
    pytest.param(
        # funbox/smppex issue #46: no text:, SMPP absolute-time dates (tenths + tz)
        b"id:rdwjwxns18krxr9936ey96ymcw sub:000 dlvrd:000 submit date:180711070003912+"
        b" done date:180711070000012+ stat:UNDELIV err:000",
        ("rdwjwxns18krxr9936ey96ymcw", "UNDELIV", "000", "180711070003912+"),
        id="smppex-46",
    ),
    pytest.param(
        # kneodev/ksmppd issue #108: operator text without the 'stat:' key, 'Text:'
        b"id:ce5bc5a9-4f7d-4282-9244-2e1022a9335c sub:000 dlvrd:000 submit date:"
        b"180903120815 done date:180903120816 DELIVRD err:000 Text:",
        ("ce5bc5a9-4f7d-4282-9244-2e1022a9335c", "DELIVRD", "000", "180903120815"),
        id="ksmppd-108-bare-state",
    ),
    pytest.param(
        # farhadi/node-smpp issue #77: 'sub:0 dlvrd:28', err:21, 'Text:' capitalised
        b"id:45013692 sub:0 dlvrd:28 submit date:1908121157 done date:1908121158"
        b" stat:UNDELIV err:21 Text:*100#",
        ("45013692", "UNDELIV", "21", "1908121157"),
        id="node-smpp-77",
    ),
    pytest.param(
        # farhadi/node-smpp issue #116 (example 3): an empty 'done date:'
        b"id:9f1c sub:001 dlvrd:0 submit date:2007281200 done date: stat:ACCEPTD"
        b" err:000",
        ("9f1c", "ACCEPTD", "000", "2007281200"),
        id="node-smpp-116-empty-done",
    ),
]


@pytest.mark.parametrize(("text", "expected"), REAL_WORLD)
def test_real_world_texts(text: bytes, expected: tuple[str, str, str, str]) -> None:
    """Receipt texts reported by users of other gateways parse to the right fields."""
    r = receipt(text)
    assert (r.message_id, r.state, r.error, r.submitted) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "deliver_sm_receipt_tlvs",
            ("0A1B2C3D", "DELIVRD", "000", "2411291200", "2411291201"),
        ),
        (
            "deliver_sm_jasmin_network_error_code_ascii",
            (
                "6a3ed98a66444e8abac3acd9bba8656f",
                "UNDELIV",
                "000",
                "141016003650",
                "141016003800",
            ),
        ),
        (
            "deliver_sm_jasmin117_network_error_code",
            (
                "bc59b8aa-2fd2-4035-8113-19301e050079",
                "DELIVRD",
                "000",
                "150508144058",
                "150508144058",
            ),
        ),
        (
            # text id 0000436949, but the receipted_message_id TLV says 6aad5
            "deliver_sm_jasmin_message_payload_receipt",
            ("6aad5", "DELIVRD", "000", "1504211508", "1504211508"),
        ),
        (
            "deliver_sm_jasmin322_vendor_tlvs",
            ("145100315320224957", "DELIVRD", "0000", "1510031732", "1510031732"),
        ),
        (
            "deliver_sm_jasmin325_reserved_tlvs",
            ("4D19C83C", "DELIVRD", "0000", "1510090105", "1510090105"),
        ),
        (
            # text id 0489708364, TLV id 1d305b4c; the text is in message_payload
            "deliver_sm_smpplib_payload_receipt",
            ("1d305b4c", "DELIVRD", "000", "1810151907", "1810151907"),
        ),
    ],
)
def test_golden_receipts(name: str, expected: tuple[str, str, str, str, str]) -> None:
    """Captured receipt PDUs parse to the expected id, state, error and dates."""
    r = parse_receipt(golden(name))
    assert r is not None
    assert (r.message_id, r.state, r.error, r.submitted, r.done) == expected


# ------------------------------------------------------------ properties

_RECEIPT_TAGS = st.sampled_from(
    [
        Tag.RECEIPTED_MESSAGE_ID,
        Tag.MESSAGE_STATE,
        Tag.NETWORK_ERROR_CODE,
        Tag.MESSAGE_PAYLOAD,
    ]
)
_TLVS = st.lists(
    st.tuples(st.one_of(_RECEIPT_TAGS, st.integers(0, 0xFFFF)), st.binary(max_size=80)),
    max_size=6,
).map(tuple)
_TEXTY = st.lists(
    st.sampled_from(
        [
            b"id:",
            b"stat:",
            b"err:",
            b"submit date:",
            b"done date:",
            b"text:",
            b" ",
            b"\x00",
            b"DELIVRD",
            b"x",
            b"0",
            b":",
            b"\t",
            b"ID",
            b"Stat",
            b"sub:",
            b"dlvrd:",
        ]
    ),
    max_size=40,
).map(b"".join)


def _check(r: Receipt | None) -> None:
    if r is not None:
        assert r.message_id
        assert r.state in STATES
        assert r.final is (r.state in FINAL_STATES)
        assert r.delivered is (r.state == "DELIVRD")


@given(
    esm=st.integers(0, 255), sm=st.one_of(st.binary(max_size=255), _TEXTY), tlvs=_TLVS
)
def test_never_raises_on_arbitrary_deliver_sm(
    esm: int, sm: bytes, tlvs: tuple[P.Tlv, ...]
) -> None:
    """Any short_message bytes and TLVs give None or a consistent Receipt."""
    _check(parse_receipt(P.DeliverSm(esm_class=esm, short_message=sm, tlvs=tlvs)))


@given(esm=st.integers(0, 255), tlvs=_TLVS)
def test_never_raises_on_arbitrary_data_sm(esm: int, tlvs: tuple[P.Tlv, ...]) -> None:
    """Any data_sm TLVs give None or a consistent Receipt."""
    _check(parse_receipt(P.DataSm(esm_class=esm, tlvs=tlvs)))


_TOKEN = st.text("0123456789abcdefABCDEF-", min_size=1, max_size=20)
_DATE = st.text("0123456789", min_size=10, max_size=12)


@given(
    rid=_TOKEN,
    sub=_DATE,
    done=_DATE,
    stat=st.sampled_from(sorted(STATES)),
    err=st.text("0123456789", min_size=1, max_size=4),
    order=st.permutations(range(5)),
)
def test_any_field_order_reads_like_the_canonical_order(
    rid: str, sub: str, done: str, stat: str, err: str, order: list[int]
) -> None:
    """The fast (Appendix B order) and tolerant (any order) paths agree."""
    fields = [
        f"id:{rid}",
        f"submit date:{sub}",
        f"done date:{done}",
        f"stat:{stat}",
        f"err:{err}",
    ]
    canonical = (
        f"id:{rid} sub:001 dlvrd:001 submit date:{sub} done date:{done}"
        f" stat:{stat} err:{err} text:"
    ).encode()
    shuffled = (" ".join(fields[i] for i in order) + " text:x").encode()
    expected = Receipt(
        rid, stat, stat in FINAL_STATES, err, sub, done, stat == "DELIVRD"
    )
    assert receipt(canonical) == expected
    assert receipt(shuffled) == expected
