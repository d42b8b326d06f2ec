"""Golden bytes, round trips and error paths of the SMPP codec (smsgw.codec.pdu).

Every file in tests/data/ is one PDU as hex: a ``# origin`` first line, then hex
digits; ``#`` starts a comment on any line (the hand-assembled files name each
field). The expected dataclass for each file is in GOLDEN below.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw.codec import pdu as P
from smsgw.codec.constants import CommandId, Status, Tag
from smsgw.codec.framing import FrameSplitter

DATA = Path(__file__).resolve().parent.parent / "data"


def load_hex(name: str) -> bytes:
    """Return the PDU stored in tests/data/<name>.hex."""
    text = (DATA / f"{name}.hex").read_text()
    digits = "".join(line.split("#", 1)[0] for line in text.splitlines())
    return bytes.fromhex("".join(digits.split()))


_UCS2_PART = bytes.fromhex("050003a70201") + "【XX银行】您尾号1234的卡".encode(
    "utf-16-be"
)
_ALERT = b"XX Bank: Card *1234 used for CNY 100.00 at STARBUCKS on 29Nov 12:00."

GOLDEN: dict[str, P.Pdu] = {
    # ---- hand-assembled from the SMPP 3.4 tables ----
    "bind_transmitter": P.BindTransmitter(
        sequence_number=1, system_id="smsgw", password="secret"
    ),
    "bind_transmitter_resp": P.BindTransmitterResp(
        sequence_number=1, system_id="SMSC", tlvs=((Tag.SC_INTERFACE_VERSION, b"\x34"),)
    ),
    "bind_receiver": P.BindReceiver(
        sequence_number=2,
        system_id="smsgw",
        password="secret",
        system_type="ALERTS",
        addr_ton=1,
        addr_npi=1,
        address_range="^86",
    ),
    "bind_receiver_resp": P.BindReceiverResp(sequence_number=2, system_id="SMSC"),
    "bind_transceiver": P.BindTransceiver(
        sequence_number=3, system_id="bank01", password="pw12345"
    ),
    "bind_transceiver_resp_rinvpaswd_header_only": P.BindTransceiverResp(
        sequence_number=3, command_status=Status.ESME_RINVPASWD
    ),
    "bind_transceiver_resp_rinvpaswd_with_body": P.BindTransceiverResp(
        sequence_number=3, command_status=Status.ESME_RINVPASWD, system_id="SMSC"
    ),
    "outbind": P.Outbind(sequence_number=4, system_id="SMSC", password="pw"),
    "unbind": P.Unbind(sequence_number=5),
    "unbind_resp": P.UnbindResp(sequence_number=5),
    "enquire_link": P.EnquireLink(sequence_number=6),
    "enquire_link_resp": P.EnquireLinkResp(sequence_number=6),
    "generic_nack": P.GenericNack(
        sequence_number=7, command_status=Status.ESME_RINVCMDID
    ),
    "submit_sm_alert": P.SubmitSm(
        sequence_number=8,
        source_addr_ton=5,
        source_addr="XXBank",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="8613800138000",
        validity_period="000001000000000R",
        registered_delivery=1,
        short_message=_ALERT,
    ),
    "submit_sm_ucs2_udh_tlvs": P.SubmitSm(
        sequence_number=9,
        source_addr="95588",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="8613800138000",
        esm_class=0x40,
        priority_flag=1,
        registered_delivery=1,
        data_coding=8,
        short_message=_UCS2_PART,
        tlvs=(
            (Tag.USER_MESSAGE_REFERENCE, b"\x00\x2a"),
            (0x1400, b"\xde\xad\xbe\xef\x00"),
        ),
    ),
    "submit_sm_resp": P.SubmitSmResp(sequence_number=8, message_id="1a2b3c4d"),
    "submit_sm_resp_throttled_header_only": P.SubmitSmResp(
        sequence_number=9, command_status=Status.ESME_RTHROTTLED
    ),
    "deliver_sm_mo": P.DeliverSm(
        sequence_number=10,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="8613800138000",
        destination_addr="95588",
        short_message=b"TD",
    ),
    "deliver_sm_receipt_tlvs": P.DeliverSm(
        sequence_number=11,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="8613800138000",
        dest_addr_ton=5,
        destination_addr="XXBank",
        esm_class=4,
        short_message=b"id:0A1B2C3D sub:001 dlvrd:001 submit date:2411291200 done"
        b" date:2411291201 stat:DELIVRD err:000 text:XX Bank: Card *12",
        tlvs=(
            (Tag.RECEIPTED_MESSAGE_ID, b"0A1B2C3D\x00"),
            (Tag.MESSAGE_STATE, b"\x02"),
            (Tag.NETWORK_ERROR_CODE, b"\x03\x00\x00"),
        ),
    ),
    "deliver_sm_resp": P.DeliverSmResp(sequence_number=11),
    "data_sm_receipt": P.DataSm(
        sequence_number=12,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="8613800138000",
        dest_addr_ton=5,
        destination_addr="XXBank",
        esm_class=4,
        tlvs=(
            (Tag.RECEIPTED_MESSAGE_ID, b"77f0e1\x00"),
            (Tag.MESSAGE_STATE, b"\x05"),
            (Tag.NETWORK_ERROR_CODE, b"\x03\x00\x15"),
        ),
    ),
    "data_sm_resp": P.DataSmResp(sequence_number=12),
    "query_sm": P.QuerySm(
        sequence_number=13,
        message_id="1a2b3c4d",
        source_addr_ton=5,
        source_addr="XXBank",
    ),
    "query_sm_resp": P.QuerySmResp(
        sequence_number=13,
        message_id="1a2b3c4d",
        final_date="241129120100000+",
        message_state=2,
    ),
    "cancel_sm": P.CancelSm(
        sequence_number=14,
        message_id="1a2b3c4d",
        source_addr_ton=5,
        source_addr="XXBank",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="8613800138000",
    ),
    "cancel_sm_resp": P.CancelSmResp(sequence_number=14),
    "replace_sm": P.ReplaceSm(
        sequence_number=15,
        message_id="1a2b3c4d",
        source_addr_ton=5,
        source_addr="XXBank",
        registered_delivery=1,
        short_message=b"corrected text",
    ),
    "replace_sm_resp": P.ReplaceSmResp(sequence_number=15),
    "alert_notification": P.AlertNotification(
        sequence_number=16,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="8613800138000",
        esme_addr_ton=5,
        esme_addr="XXBank",
        tlvs=((Tag.MS_AVAILABILITY_STATUS, b"\x00"),),
    ),
    # ---- real-world shapes (Jasmin and python-smpplib test vectors) ----
    "bind_transceiver_resp_jasmin124_len17": P.BindTransceiverResp(
        sequence_number=1, command_status=Status.ESME_RINVSYSTYP
    ),
    "bind_transceiver_resp_jasmin577_tlv_0x1002": P.BindTransceiverResp(
        sequence_number=1, system_id="Yenta1", tlvs=((0x1002, b"\x34"),)
    ),
    "submit_sm_resp_jasmin128_error_with_body": P.SubmitSmResp(
        sequence_number=2, command_status=Status.ESME_RINVSRCADR, message_id="00000000"
    ),
    "submit_sm_resp_jasmin563_status_0x22_header_only": P.SubmitSmResp(
        sequence_number=2, command_status=0x22
    ),
    "submit_sm_jasmin325_vendor_tlv": P.SubmitSm(
        sequence_number=1414,
        source_addr_ton=5,
        source_addr="Jojos",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="573188308129",
        esm_class=3,
        validity_period="151110145607000+",
        registered_delivery=1,
        data_coding=0xF1,
        short_message=b"PLEASE IGNORE THIS MESSAGE",
        tlvs=((0x1403, b"38636"),),
    ),
    "deliver_sm_jasmin_network_error_code_ascii": P.DeliverSm(
        sequence_number=1412304673,
        service_type="1.000",
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="2449355550",
        dest_addr_ton=5,
        destination_addr="ZAP",
        esm_class=4,
        short_message=b"id:6a3ed98a66444e8abac3acd9bba8656f sub:001 dlvrd:000 submit"
        b" date:141016003650 done date:141016003800 stat:UNDELIV err:000 text:",
        tlvs=(
            (Tag.NETWORK_ERROR_CODE, b"000"),
            (Tag.MESSAGE_STATE, b"\x05"),
            (Tag.RECEIPTED_MESSAGE_ID, b"6a3ed98a66444e8abac3acd9bba8656f\x00"),
        ),
    ),
    "deliver_sm_jasmin120_network_type": P.DeliverSm(
        sequence_number=1,
        source_addr_ton=2,
        source_addr_npi=1,
        source_addr="592296186",
        dest_addr_ton=4,
        dest_addr_npi=9,
        destination_addr="37452",
        tlvs=(
            (Tag.SOURCE_NETWORK_TYPE, b"\x01"),
            (Tag.DEST_NETWORK_TYPE, b"\x01"),
            (Tag.MESSAGE_PAYLOAD, b"Hi fikry"),
        ),
    ),
    "deliver_sm_jasmin117_network_error_code": P.DeliverSm(
        sequence_number=1,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="4915256794887",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="04051306999",
        esm_class=4,
        short_message=b"id:bc59b8aa-2fd2-4035-8113-19301e050079 sub:001 dlvrd:001"
        b" submit date:150508144058 done date:150508144058 stat:DELIVRD err:000 text:-",
        tlvs=(
            (Tag.NETWORK_ERROR_CODE, b"\x03\x00\x00"),
            (Tag.MESSAGE_STATE, b"\x02"),
            (Tag.RECEIPTED_MESSAGE_ID, b"bc59b8aa-2fd2-4035-8113-19301e050079\x00"),
        ),
    ),
    "deliver_sm_jasmin_message_payload_receipt": P.DeliverSm(
        sequence_number=92476,
        source_addr="21653520703",
        destination_addr="7788",
        esm_class=4,
        registered_delivery=1,
        tlvs=(
            (
                Tag.MESSAGE_PAYLOAD,
                b"id:0000436949 submit date:1504211508 done date:1504211508"
                b" stat:DELIVRD err:000\x00",
            ),
            (Tag.RECEIPTED_MESSAGE_ID, b"6aad5\x00"),
            (Tag.MESSAGE_STATE, b"\x02"),
        ),
    ),
    "deliver_sm_jasmin322_vendor_tlvs": P.DeliverSm(
        sequence_number=50888961,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="971564104094",
        dest_addr_ton=5,
        destination_addr="SKYTELECOM",
        esm_class=4,
        short_message=b"id:145100315320224957 sub:001 dlvrd:001 submit date:1510031732"
        b" done date:1510031732 stat:DELIVRD err:0000 text:Test (mehdi)",
        tlvs=(
            (Tag.NETWORK_ERROR_CODE, b"\x03\x00\x00"),
            (0x1454, b"\x00\x00\x00\x01"),
            (0x1418, b"\x00\x00\x00\x30"),
        ),
    ),
    "deliver_sm_jasmin325_reserved_tlvs": P.DeliverSm(
        sequence_number=1453145654,
        source_addr="352691600403",
        destination_addr="0",
        esm_class=4,
        short_message=b"id:4D19C83C sub:001 dlvrd:001 submit date:1510090105 done"
        b" date:1510090105 stat:DELIVRD err:0000 text:GW250 MCC=270 MNC=1 BillingMNC=1",
        tlvs=(
            (Tag.RECEIPTED_MESSAGE_ID, b"4D19C83C\x00"),
            (Tag.SOURCE_NETWORK_TYPE, b"\x01"),
            (0x060D, b"127001\x00"),
            (0x060F, b"27001"),
            (Tag.MESSAGE_STATE, b"\x02"),
        ),
    ),
    "deliver_sm_jasmin325_source_subaddress": P.DeliverSm(
        sequence_number=523665415,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="989347690878",
        dest_addr_ton=2,
        dest_addr_npi=1,
        destination_addr="6970",
        esm_class=0x80,
        data_coding=1,
        short_message=b"Test",
        tlvs=((Tag.SOURCE_SUBADDRESS, b"+989347690000"),),
    ),
    "deliver_sm_smpplib_payload_receipt": P.DeliverSm(
        sequence_number=1,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="31600000000",
        dest_addr_ton=5,
        destination_addr="XXX YYYY",
        esm_class=4,
        tlvs=(
            (Tag.SOURCE_NETWORK_TYPE, b"\x01"),
            (Tag.DEST_NETWORK_TYPE, b"\x01"),
            (Tag.RECEIPTED_MESSAGE_ID, b"1d305b4c\x00"),
            (Tag.MESSAGE_STATE, b"\x02"),
            (
                Tag.MESSAGE_PAYLOAD,
                b"id:0489708364 sub:001 dlvrd:001 submit date:1810151907 done"
                b" date:1810151907 stat:DELIVRD err:000 text:"
                + "Привет".encode("utf-16-be"),
            ),
            (Tag.MORE_MESSAGES_TO_SEND, b"\x01"),
        ),
    ),
}

# Error responses sent header-only decode to the same dataclass as with an
# empty body; encode() writes the body (one NUL), the form every peer accepts.
HEADER_ONLY = {
    "bind_transceiver_resp_rinvpaswd_header_only",
    "submit_sm_resp_throttled_header_only",
    "submit_sm_resp_jasmin563_status_0x22_header_only",
}
NAMES = sorted(GOLDEN)


def test_golden_files_and_table_match() -> None:
    """Every tests/data file has an expected PDU, an origin comment, and vice versa."""
    files = {p.stem: p for p in DATA.glob("*.hex")}
    assert set(files) == set(GOLDEN)
    for path in files.values():
        first = path.read_text().splitlines()[0]
        assert first.startswith("# ")
        assert (
            "hand-assembled from the SMPP 3.4 spec" in first or "from https://" in first
        )


def test_every_pdu_type_has_a_golden_frame() -> None:
    """The golden set covers every PDU type the codec knows."""
    assert {type(p) for p in GOLDEN.values()} == set(P.PDU_TYPES.values())


@pytest.mark.parametrize("name", NAMES)
def test_golden_decode(name: str) -> None:
    """Decoding the stored frame gives exactly the expected dataclass."""
    assert P.decode(load_hex(name)) == GOLDEN[name]


@pytest.mark.parametrize("name", sorted(set(NAMES) - HEADER_ONLY))
def test_golden_encode_is_byte_exact(name: str) -> None:
    """Encoding the expected dataclass reproduces the stored frame byte for byte."""
    assert P.encode(GOLDEN[name]).hex() == load_hex(name).hex()


@pytest.mark.parametrize("name", sorted(HEADER_ONLY))
def test_header_only_error_response_reencodes_with_empty_body(name: str) -> None:
    """A header-only error response re-encodes as the header plus one NUL body."""
    raw = load_hex(name)
    assert len(raw) == 16
    out = P.encode(GOLDEN[name])
    assert out[4:16] == raw[4:16]
    assert out[:4] == struct.pack(">I", 17)
    assert out[16:] == b"\x00"
    assert P.decode(out) == GOLDEN[name]


@pytest.mark.parametrize("name", NAMES)
def test_golden_round_trip(name: str) -> None:
    """decode(encode(p)) gives back p for every golden PDU."""
    assert P.decode(P.encode(GOLDEN[name])) == GOLDEN[name]


@pytest.mark.parametrize("name", NAMES)
def test_golden_frame_through_framer_whole_and_bytewise(name: str) -> None:
    """The framer yields the same single frame fed whole or one byte at a time."""
    raw = load_hex(name)
    assert FrameSplitter().feed(raw) == [raw]
    splitter = FrameSplitter()
    out: list[bytes] = []
    for i in range(len(raw)):
        out.extend(splitter.feed(raw[i : i + 1]))
    assert out == [raw]
    assert splitter.buffered == 0


def test_all_golden_frames_in_one_stream() -> None:
    """All golden frames back to back come out in order, whole or byte by byte."""
    frames = [load_hex(n) for n in NAMES]
    stream = b"".join(frames)
    assert FrameSplitter().feed(stream) == frames
    splitter = FrameSplitter()
    out = [f for i in range(len(stream)) for f in splitter.feed(stream[i : i + 1])]
    assert out == frames
    assert [P.decode(f) for f in out] == [GOLDEN[n] for n in NAMES]


# ---------------------------------------------------------------- TLVs


def test_unknown_and_vendor_tlvs_kept_in_order_and_reencoded() -> None:
    """Vendor tags 0x1400..0x3FFF and unknown tags survive a round trip, in order."""
    tlvs = (
        (0x3FFF, b"z"),
        (0x1400, b""),
        (Tag.RECEIPTED_MESSAGE_ID, b"abc\x00"),
        (0x2000, bytes(range(256)) * 2),
        (0x1400, b"second"),
        (0x0001, b"\xff"),
    )
    pdu = P.DeliverSm(sequence_number=9, esm_class=4, tlvs=tlvs)
    raw = P.encode(pdu)
    back = P.decode(raw)
    assert back.tlvs == tlvs
    assert P.encode(back) == raw
    assert back.tlv(0x1400) == b""  # the first of two
    assert back.tlv(0x7777) is None


def test_jasmin322_vendor_tlvs_reencode_byte_identical() -> None:
    """A captured receipt with vendor TLVs re-encodes to the very same bytes."""
    raw = load_hex("deliver_sm_jasmin322_vendor_tlvs")
    pdu = P.decode(raw)
    assert [t for t, _ in pdu.tlvs] == [0x0423, 0x1454, 0x1418]
    assert P.encode(pdu) == raw


def test_tlv_read_by_its_own_length_source_addr_subunit() -> None:
    """source_addr_subunit is 1 octet (SMPP 3.4 §5.3.2.2); the next TLV stays put."""
    body = P.encode(P.SubmitSm(sequence_number=1, short_message=b"hi"))[16:]
    tail = bytes.fromhex("000d 0001 02  0204 0002 002a")  # subunit 2, umr 42
    raw = struct.pack(">IIII", 16 + len(body) + len(tail), 4, 0, 1) + body + tail
    pdu = P.decode(raw)
    assert pdu.tlvs == (
        (Tag.SOURCE_ADDR_SUBUNIT, b"\x02"),
        (Tag.USER_MESSAGE_REFERENCE, b"\x00\x2a"),
    )
    assert pdu.tlv_int(Tag.SOURCE_ADDR_SUBUNIT) == 2
    assert pdu.tlv_int(Tag.USER_MESSAGE_REFERENCE) == 42


def test_tlv_longer_than_the_spec_size_is_kept_whole() -> None:
    """A 5-octet more_messages_to_send (spec: 1) is kept whole; the next TLV too."""
    tlvs = (
        (Tag.MORE_MESSAGES_TO_SEND, b"\x00\x00\x00\x00\x01"),
        (Tag.MESSAGE_STATE, b"\x02"),
    )
    pdu = P.decode(P.encode(P.DeliverSm(sequence_number=3, esm_class=4, tlvs=tlvs)))
    assert pdu.tlvs == tlvs
    assert pdu.tlv_int(Tag.MORE_MESSAGES_TO_SEND) == 1
    assert pdu.tlv_int(Tag.MESSAGE_STATE) == 2


def test_tlv_accessors() -> None:
    """tlv_str strips the NUL or reads to the end; tlv_int is big-endian."""
    pdu = P.DataSm(
        tlvs=(
            P.tlv_cstr(Tag.RECEIPTED_MESSAGE_ID, "0A1B"),
            (Tag.ADDITIONAL_STATUS_INFO_TEXT, b"no nul"),
            P.tlv_uint(Tag.QOS_TIME_TO_LIVE, 86400, 4),
        )
    )
    assert pdu.tlv_str(Tag.RECEIPTED_MESSAGE_ID) == "0A1B"
    assert pdu.tlv_str(Tag.ADDITIONAL_STATUS_INFO_TEXT) == "no nul"
    assert pdu.tlv_int(Tag.QOS_TIME_TO_LIVE) == 86400
    assert pdu.tlv(Tag.QOS_TIME_TO_LIVE) == b"\x00\x01\x51\x80"
    assert pdu.tlv_str(Tag.MESSAGE_STATE) is None
    assert pdu.tlv_int(Tag.MESSAGE_STATE) is None


# ---------------------------------------------------------------- error responses

_BODY_RESPONSES = [
    cls for cls in P.PDU_TYPES.values() if cls.command_id & 0x80000000 and cls.FIELDS
]


@pytest.mark.parametrize("cls", _BODY_RESPONSES, ids=lambda c: c.__name__)
def test_error_response_without_body_is_accepted(cls: type[P.Pdu]) -> None:
    """Every response with a body also decodes header-only when its status is set."""
    raw = struct.pack(">IIII", 16, cls.command_id, Status.ESME_RSYSERR, 77)
    assert P.decode(raw) == cls(sequence_number=77, command_status=Status.ESME_RSYSERR)


def test_submit_sm_resp_throttled_header_only() -> None:
    """submit_sm_resp 0x58 with no body decodes with an empty message_id."""
    pdu = P.decode(bytes.fromhex("00000010 80000004 00000058 00000009"))
    assert isinstance(pdu, P.SubmitSmResp)
    assert (pdu.command_status, pdu.sequence_number, pdu.message_id) == (0x58, 9, "")
    assert pdu.is_response


def test_bind_transceiver_resp_error_with_and_without_body() -> None:
    """bind_transceiver_resp 0x0E decodes the same with or without a system_id body."""
    bare = P.decode(load_hex("bind_transceiver_resp_rinvpaswd_header_only"))
    full = P.decode(load_hex("bind_transceiver_resp_rinvpaswd_with_body"))
    assert isinstance(bare, P.BindTransceiverResp)
    assert isinstance(full, P.BindTransceiverResp)
    assert bare.command_status == full.command_status == Status.ESME_RINVPASWD
    assert (bare.system_id, full.system_id) == ("", "SMSC")


def test_response_for_copies_sequence_and_sets_fields() -> None:
    """response_for answers with the request's sequence number and the given fields."""
    req = P.SubmitSm(sequence_number=41, short_message=b"x")
    assert P.response_for(req, 0, message_id="m1") == P.SubmitSmResp(
        sequence_number=41, message_id="m1"
    )
    assert P.response_for(P.EnquireLink(sequence_number=5)) == P.EnquireLinkResp(
        sequence_number=5
    )
    nack = P.response_for(P.BindTransceiver(sequence_number=1), Status.ESME_RBINDFAIL)
    assert nack == P.BindTransceiverResp(sequence_number=1, command_status=0x0D)


# ---------------------------------------------------------------- decode errors


def _frame(
    command_id: int, body: bytes, seq: int = 5, length: int | None = None
) -> bytes:
    size = 16 + len(body) if length is None else length
    return struct.pack(">IIII", size, command_id, 0, seq) + body


def _decode_or_error(raw: bytes) -> P.Pdu | P.DecodeError:
    try:
        return P.decode(raw)
    except P.DecodeError as e:
        return e


def _raises(raw: bytes) -> P.DecodeError:
    with pytest.raises(P.DecodeError) as info:
        P.decode(raw)
    return info.value


@pytest.mark.parametrize("delta", [-1, 1, 100])
def test_command_length_mismatch_is_rinvcmdlen(delta: int) -> None:
    """A command_length that disagrees with the frame size is ESME_RINVCMDLEN."""
    good = P.encode(P.EnquireLink(sequence_number=12, tlvs=((0x1400, b"ab"),)))
    bad = struct.pack(">I", len(good) + delta) + good[4:]
    err = _raises(bad)
    assert err.status == Status.ESME_RINVCMDLEN
    assert (err.command_id, err.sequence_number) == (CommandId.ENQUIRE_LINK, 12)


def test_frame_shorter_than_header_is_rinvcmdlen() -> None:
    """Fewer than 16 octets is ESME_RINVCMDLEN."""
    assert _raises(b"\x00\x00\x00\x0c" + b"\x00" * 8).status == Status.ESME_RINVCMDLEN


@pytest.mark.parametrize(
    "command_id", [0x00000022, CommandId.SUBMIT_MULTI, 0x80000021, 0xFFFFFFFF]
)
def test_unknown_command_is_rinvcmdid(command_id: int) -> None:
    """An unknown or unsupported command_id is ESME_RINVCMDID with the header echoed."""
    err = _raises(_frame(command_id, b"", seq=99))
    assert err.status == Status.ESME_RINVCMDID
    assert (err.command_id, err.sequence_number) == (command_id, 99)


@pytest.mark.parametrize(
    ("command_id", "body"),
    [
        (CommandId.BIND_TRANSMITTER, b"smsgw"),  # system_id without NUL
        (CommandId.SUBMIT_SM, b"\x00\x01\x01123"),  # source_addr without NUL
        (CommandId.SUBMIT_SM_RESP, b"abc"),  # message_id without NUL
        (CommandId.QUERY_SM_RESP, b"id\x00"),  # final_date missing
        (CommandId.BIND_TRANSMITTER, b""),  # request with no body at all
    ],
)
def test_missing_nul_or_field_is_rinvmsglen(command_id: int, body: bytes) -> None:
    """A C-octet string without its NUL, or a body cut short, is ESME_RINVMSGLEN."""
    assert _raises(_frame(command_id, body)).status == Status.ESME_RINVMSGLEN


def test_sm_length_past_end_is_rinvmsglen() -> None:
    """An sm_length running past the frame is ESME_RINVMSGLEN (submit and replace)."""
    good = P.encode(P.SubmitSm(sequence_number=1, short_message=b"hello"))
    cut = good[:-2]
    assert (
        _raises(struct.pack(">I", len(cut)) + cut[4:]).status == Status.ESME_RINVMSGLEN
    )
    good = P.encode(P.ReplaceSm(sequence_number=1, short_message=b"hello"))
    cut = good[:-2]
    assert (
        _raises(struct.pack(">I", len(cut)) + cut[4:]).status == Status.ESME_RINVMSGLEN
    )


@pytest.mark.parametrize(
    "tail",
    [b"\x04", b"\x04\x27\x00", b"\x04\x27\x00\x05\x01", b"\x14\x00\xff\xff"],
    ids=["1-octet", "3-octet-header", "value-short", "length-65535"],
)
@pytest.mark.parametrize("make", [P.DeliverSm, P.DataSm, P.SubmitSmResp, P.EnquireLink])
def test_truncated_tlv_is_rinvoptparstream(make: type[P.Pdu], tail: bytes) -> None:
    """A TLV header or value cut by the end of the PDU is ESME_RINVOPTPARSTREAM."""
    good = P.encode(make(sequence_number=4))
    raw = struct.pack(">I", len(good) + len(tail)) + good[4:] + tail
    err = _raises(raw)
    assert err.status == Status.ESME_RINVOPTPARSTREAM
    assert err.sequence_number == 4


@pytest.mark.parametrize("name", NAMES)
def test_every_truncation_of_golden_frames_raises_only_decode_error(name: str) -> None:
    """A golden frame cut anywhere (length fixed up) decodes or raises DecodeError."""
    raw = load_hex(name)
    for cut in range(16, len(raw)):
        out = _decode_or_error(struct.pack(">I", cut) + raw[4:cut])
        if isinstance(out, P.DecodeError):
            assert out.status in (Status.ESME_RINVMSGLEN, Status.ESME_RINVOPTPARSTREAM)


_KNOWN_IDS = sorted(P.PDU_TYPES)


@given(
    command_id=st.one_of(st.sampled_from(_KNOWN_IDS), st.integers(0, 0xFFFFFFFF)),
    status=st.integers(0, 0xFFFFFFFF),
    seq=st.integers(0, 0xFFFFFFFF),
    body=st.binary(max_size=400),
)
def test_decode_random_bodies_raises_only_decode_error(
    command_id: int, status: int, seq: int, body: bytes
) -> None:
    """Any bytes behind a header with the right length decode or raise DecodeError."""
    raw = struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body
    out = _decode_or_error(raw)
    if isinstance(out, P.DecodeError):
        assert (out.command_id, out.sequence_number) == (command_id, seq)
    else:
        assert (out.command_id, out.command_status, out.sequence_number) == (
            command_id,
            status,
            seq,
        )


# ---------------------------------------------------------------- round trips


def _cstr(limit: int) -> st.SearchStrategy[str]:
    """Latin-1 text without NUL that fits a C-octet string of ``limit`` (incl. NUL)."""
    return st.text(
        st.characters(min_codepoint=1, max_codepoint=255), max_size=limit - 1
    )


_U8 = st.integers(0, 255)
_U32 = st.integers(0, 0xFFFFFFFF)
_TLVS = st.lists(
    st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=300)), max_size=5
).map(tuple)

_SM_FIELDS = {
    "sequence_number": _U32,
    "command_status": _U32,
    "service_type": _cstr(6),
    "source_addr_ton": _U8,
    "source_addr_npi": _U8,
    "source_addr": _cstr(21),
    "dest_addr_ton": _U8,
    "dest_addr_npi": _U8,
    "destination_addr": _cstr(21),
    "esm_class": _U8,
    "protocol_id": _U8,
    "priority_flag": _U8,
    "schedule_delivery_time": _cstr(17),
    "validity_period": _cstr(17),
    "registered_delivery": _U8,
    "replace_if_present_flag": _U8,
    "data_coding": _U8,
    "sm_default_msg_id": _U8,
    "short_message": st.binary(max_size=255),
    "tlvs": _TLVS,
}
_DATA_SM = st.builds(
    P.DataSm,
    sequence_number=_U32,
    command_status=_U32,
    service_type=_cstr(6),
    source_addr_ton=_U8,
    source_addr_npi=_U8,
    source_addr=_cstr(65),
    dest_addr_ton=_U8,
    dest_addr_npi=_U8,
    destination_addr=_cstr(65),
    esm_class=_U8,
    registered_delivery=_U8,
    data_coding=_U8,
    tlvs=_TLVS,
)
_BIND_FIELDS = {
    "sequence_number": _U32,
    "system_id": _cstr(16),
    "password": _cstr(9),
    "system_type": _cstr(13),
    "interface_version": _U8,
    "addr_ton": _U8,
    "addr_npi": _U8,
    "address_range": _cstr(41),
    "tlvs": _TLVS,
}
_ROUND_TRIP = st.one_of(
    st.builds(P.SubmitSm, **_SM_FIELDS),
    st.builds(P.DeliverSm, **_SM_FIELDS),
    _DATA_SM,
    st.builds(P.BindTransmitter, **_BIND_FIELDS),
    st.builds(P.BindReceiver, **_BIND_FIELDS),
    st.builds(P.BindTransceiver, **_BIND_FIELDS),
    st.builds(P.SubmitSmResp, sequence_number=_U32, message_id=_cstr(65), tlvs=_TLVS),
)


@given(_ROUND_TRIP)
def test_round_trip_generated_pdus(pdu: P.Pdu) -> None:
    """decode(encode(p)) == p for any valid submit_sm, deliver_sm, data_sm or bind."""
    raw = P.encode(pdu)
    assert struct.unpack_from(">I", raw)[0] == len(raw)
    assert P.decode(raw) == pdu


# ---------------------------------------------------------------- encode errors


@pytest.mark.parametrize(
    "pdu",
    [
        P.SubmitSm(source_addr="1" * 21),  # max 20 octets + NUL
        P.SubmitSm(destination_addr="1" * 21),
        P.SubmitSm(service_type="ABCDEF"),
        P.SubmitSm(validity_period="0" * 17),
        P.BindTransceiver(system_id="s" * 16),
        P.BindTransceiver(password="p" * 9),
        P.DataSm(source_addr="1" * 65),
        P.SubmitSmResp(message_id="m" * 65),
        P.AlertNotification(esme_addr="e" * 65),
    ],
    ids=lambda p: type(p).__name__,
)
def test_string_too_long_is_encode_error(pdu: P.Pdu) -> None:
    """A C-octet string longer than its field allows is refused."""
    with pytest.raises(P.EncodeError, match="at most"):
        P.encode(pdu)


def test_longest_strings_that_fit_encode() -> None:
    """Strings exactly one octet short of the field size (room for the NUL) encode."""
    pdu = P.SubmitSm(
        source_addr="1" * 20, destination_addr="2" * 20, short_message=b"x" * 255
    )
    assert P.decode(P.encode(pdu)) == pdu
    data = P.DataSm(source_addr="1" * 64, destination_addr="2" * 64)
    assert P.decode(P.encode(data)) == data


@pytest.mark.parametrize(
    "pdu",
    [
        P.SubmitSm(source_addr="€95588"),
        P.BindTransmitter(system_id="银行"),
        P.SubmitSmResp(message_id="😀"),
    ],
    ids=lambda p: type(p).__name__,
)
def test_non_latin1_string_is_encode_error(pdu: P.Pdu) -> None:
    """Characters outside Latin-1 cannot go into a C-octet string."""
    with pytest.raises(P.EncodeError, match="Latin-1"):
        P.encode(pdu)


@pytest.mark.parametrize(
    "pdu",
    [
        P.SubmitSm(source_addr="12\x0034"),
        P.BindTransmitter(password="a\x00b"),
        P.SubmitSmResp(message_id="x\x00"),
    ],
    ids=lambda p: type(p).__name__,
)
def test_nul_inside_string_is_encode_error(pdu: P.Pdu) -> None:
    """A NUL inside a C-octet string would shift later fields, so it is refused."""
    with pytest.raises(P.EncodeError, match="NUL"):
        P.encode(pdu)


@pytest.mark.parametrize(
    "pdu",
    [
        P.SubmitSm(esm_class=256),
        P.SubmitSm(source_addr_ton=-1),
        P.DeliverSm(data_coding=300),
        P.BindTransceiver(interface_version=256),
        P.QuerySmResp(message_state=-1),
        P.EnquireLink(sequence_number=2**32),
        P.EnquireLink(sequence_number=-1),
        P.GenericNack(command_status=2**32),
        P.SubmitSm(short_message=b"x" * 256),
        P.ReplaceSm(short_message=b"x" * 256),
        P.EnquireLink(tlvs=((0x10000, b""),)),
        P.BindTransmitter(tlvs=((-1, b""),)),
        P.SubmitSm(tlvs=((0x1400, b"x" * 65536),)),
    ],
    ids=lambda p: type(p).__name__,
)
def test_int_out_of_range_is_encode_error(pdu: P.Pdu) -> None:
    """Integers and lengths that do not fit their octets are refused (EncodeError)."""
    with pytest.raises(P.EncodeError):
        P.encode(pdu)


def test_tlv_helpers_refuse_what_does_not_fit() -> None:
    """tlv_uint and tlv_cstr raise EncodeError instead of OverflowError/UnicodeError."""
    assert P.tlv_uint(Tag.SAR_MSG_REF_NUM, 513, 2) == (Tag.SAR_MSG_REF_NUM, b"\x02\x01")
    assert P.tlv_cstr(Tag.RECEIPTED_MESSAGE_ID, "ab") == (
        Tag.RECEIPTED_MESSAGE_ID,
        b"ab\x00",
    )
    with pytest.raises(P.EncodeError):
        P.tlv_uint(Tag.SAR_TOTAL_SEGMENTS, 256, 1)
    with pytest.raises(P.EncodeError):
        P.tlv_uint(Tag.SAR_TOTAL_SEGMENTS, -1, 1)
    with pytest.raises(P.EncodeError):
        P.tlv_cstr(Tag.RECEIPTED_MESSAGE_ID, "€")
    with pytest.raises(P.EncodeError):
        P.tlv_cstr(Tag.RECEIPTED_MESSAGE_ID, "a\x00b")
