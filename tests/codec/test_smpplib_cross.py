"""Cross-check our codec against smpplib 2.2.4, and pin the smpplib bugs we avoid.

For every PDU type smpplib supports (smpplib/command.py ``factory``): encode
with ours and parse with smpplib, then build with smpplib and decode with ours,
comparing field by field. smpplib quirks handled here (see facts.md): request
PDUs need a client-like sequence source even to parse; ``make_pdu(sequence=)``
is ignored, so ``.sequence`` is set afterwards; strings go in as ``str`` and
come back as ``bytes``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest
import smpplib.command
import smpplib.exceptions
import smpplib.smpp

from smsgw.codec import pdu as P
from smsgw.codec.constants import Status, Tag
from tests.codec.test_pdu import load_hex


class FakeClient:
    """The sequence source smpplib's Command constructor insists on."""

    sequence = 0

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence


@dataclass(frozen=True)
class Case:
    """One PDU type: our class, smpplib's name, fields, and TLVs by smpplib name.

    ``tlvs`` maps smpplib's optional-parameter name to (tag, our raw value,
    smpplib's value).
    """

    cls: type[P.Pdu]
    name: str
    fields: dict[str, Any] = field(default_factory=dict)
    tlvs: dict[str, tuple[int, bytes, Any]] = field(default_factory=dict)
    status: int = 0


_BIND = {
    "system_id": "smsgw",
    "password": "secret",
    "system_type": "ALERTS",
    "interface_version": 0x34,
    "addr_ton": 1,
    "addr_npi": 1,
    "address_range": "^86",
}
_SM = {
    "service_type": "",
    "source_addr_ton": 5,
    "source_addr_npi": 0,
    "source_addr": "XXBank",
    "dest_addr_ton": 1,
    "dest_addr_npi": 1,
    "destination_addr": "8613800138000",
    "esm_class": 0x40,
    "protocol_id": 0,
    "priority_flag": 1,
    "schedule_delivery_time": "",
    "validity_period": "000001000000000R",
    "registered_delivery": 1,
    "replace_if_present_flag": 0,
    "data_coding": 8,
    "sm_default_msg_id": 0,
    "short_message": b"\x05\x00\x03\x01\x02\x01" + "您尾号1234".encode("utf-16-be"),
}
_SC_IV: dict[str, tuple[int, bytes, Any]] = {
    "sc_interface_version": (Tag.SC_INTERFACE_VERSION, b"\x34", 0x34)
}

CASES = [
    Case(P.BindTransmitter, "bind_transmitter", _BIND),
    Case(P.BindReceiver, "bind_receiver", _BIND),
    Case(P.BindTransceiver, "bind_transceiver", _BIND),
    Case(P.BindTransmitterResp, "bind_transmitter_resp", {"system_id": "SMSC"}, _SC_IV),
    Case(P.BindReceiverResp, "bind_receiver_resp", {"system_id": "SMSC"}, _SC_IV),
    Case(P.BindTransceiverResp, "bind_transceiver_resp", {"system_id": "SMSC"}, _SC_IV),
    Case(P.Unbind, "unbind"),
    Case(P.UnbindResp, "unbind_resp"),
    Case(P.EnquireLink, "enquire_link"),
    Case(P.EnquireLinkResp, "enquire_link_resp"),
    Case(P.GenericNack, "generic_nack", status=Status.ESME_RINVCMDID),
    Case(
        P.SubmitSm,
        "submit_sm",
        _SM,
        {
            "user_message_reference": (Tag.USER_MESSAGE_REFERENCE, b"\x00\x2a", 42),
            "sar_msg_ref_num": (Tag.SAR_MSG_REF_NUM, b"\x01\x02", 0x0102),
            "sar_total_segments": (Tag.SAR_TOTAL_SEGMENTS, b"\x02", 2),
            "sar_segment_seqnum": (Tag.SAR_SEGMENT_SEQNUM, b"\x01", 1),
        },
    ),
    Case(P.SubmitSmResp, "submit_sm_resp", {"message_id": "1a2b3c4d"}),
    Case(
        P.DeliverSm,
        "deliver_sm",
        {
            **_SM,
            "esm_class": 4,
            "data_coding": 0,
            "short_message": b"id:0A1B2C3D sub:001 dlvrd:001 submit date:2411291200"
            b" done date:2411291201 stat:DELIVRD err:000 text:",
        },
        {
            "receipted_message_id": (
                Tag.RECEIPTED_MESSAGE_ID,
                b"0A1B2C3D\x00",
                "0A1B2C3D",
            ),
            "message_state": (Tag.MESSAGE_STATE, b"\x02", 2),
            "network_error_code": (
                Tag.NETWORK_ERROR_CODE,
                b"\x03\x00\x15",
                b"\x03\x00\x15",
            ),
        },
    ),
    Case(P.DeliverSmResp, "deliver_sm_resp", {"message_id": ""}),
    Case(
        P.DataSm,
        "data_sm",
        {
            "service_type": "",
            "source_addr_ton": 1,
            "source_addr_npi": 1,
            "source_addr": "8613800138000",
            "dest_addr_ton": 5,
            "dest_addr_npi": 0,
            "destination_addr": "XXBank",
            "esm_class": 4,
            "registered_delivery": 0,
            "data_coding": 0,
        },
        {
            "message_payload": (Tag.MESSAGE_PAYLOAD, b"stat:UNDELIV", b"stat:UNDELIV"),
            "receipted_message_id": (Tag.RECEIPTED_MESSAGE_ID, b"77f0e1\x00", "77f0e1"),
            "message_state": (Tag.MESSAGE_STATE, b"\x05", 5),
            "network_error_code": (
                Tag.NETWORK_ERROR_CODE,
                b"\x03\x00\x15",
                b"\x03\x00\x15",
            ),
        },
    ),
    Case(P.DataSmResp, "data_sm_resp", {"message_id": "77f0e1"}),
    Case(
        P.QuerySm,
        "query_sm",
        {
            "message_id": "1a2b3c4d",
            "source_addr_ton": 5,
            "source_addr_npi": 0,
            "source_addr": "XXBank",
        },
    ),
    Case(
        P.QuerySmResp,
        "query_sm_resp",
        {
            "message_id": "1a2b3c4d",
            "final_date": "241129120100000+",
            "message_state": 2,
            "error_code": 7,
        },
    ),
    Case(
        P.AlertNotification,
        "alert_notification",
        {
            "source_addr_ton": 1,
            "source_addr_npi": 1,
            "source_addr": "8613800138000",
            "esme_addr_ton": 5,
            "esme_addr_npi": 0,
            "esme_addr": "XXBank",
        },
        {"ms_availability_status": (Tag.MS_AVAILABILITY_STATUS, b"\x01", 1)},
    ),
]
IDS = [c.name for c in CASES]


def _out(value: Any) -> Any:
    """What smpplib hands back for a value we gave it: str comes back as bytes."""
    return value.encode("latin-1") if isinstance(value, str) else value


def _ours(case: Case, seq: int) -> P.Pdu:
    tlvs = tuple((tag, raw) for tag, raw, _ in case.tlvs.values())
    return case.cls(
        sequence_number=seq, command_status=case.status, tlvs=tlvs, **case.fields
    )


def test_cases_cover_every_type_smpplib_supports() -> None:
    """Every PDU type in smpplib's factory (all of them ours too) has a case."""
    supported = set()
    for name in smpplib.command_codes.commands:
        try:
            smpplib.command.factory(name, client=FakeClient())
        except smpplib.exceptions.UnknownCommandError:
            continue
        supported.add(name)
    assert supported == set(IDS)
    assert {c.cls.command_id for c in CASES} <= set(P.PDU_TYPES)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_ours_encoded_smpplib_parses(case: Case) -> None:
    """smpplib reads every field and TLV of a PDU we encoded as we meant it."""
    raw = P.encode(_ours(case, seq=4242))
    theirs = smpplib.smpp.parse_pdu(raw, client=FakeClient())
    assert theirs.command == case.name
    assert theirs.sequence == 4242
    assert theirs.status == case.status
    assert theirs.length == len(raw)
    for name, value in case.fields.items():
        assert getattr(theirs, name) == _out(value), name
    for name, (_tag, _raw, value) in case.tlvs.items():
        assert getattr(theirs, name) == _out(value), name


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_smpplib_encoded_ours_decodes(case: Case) -> None:
    """We read every field and TLV of a PDU smpplib built, TLVs in its order."""
    kwargs = dict(case.fields)
    kwargs.update({name: value for name, (_t, _r, value) in case.tlvs.items()})
    if case.status:
        kwargs["status"] = case.status
    theirs = smpplib.smpp.make_pdu(case.name, client=FakeClient(), **kwargs)
    theirs.sequence = 31337  # make_pdu(sequence=) is ignored
    raw = theirs.generate()
    ours = P.decode(raw)
    assert type(ours) is case.cls
    assert (ours.sequence_number, ours.command_status) == (31337, case.status)
    for name, value in case.fields.items():
        assert getattr(ours, name) == value, name
    assert dict(ours.tlvs) == {tag: raw for tag, raw, _ in case.tlvs.values()}
    assert len(ours.tlvs) == len(case.tlvs)
    # and we re-encode smpplib's bytes unchanged (TLV order included)
    assert P.encode(ours) == raw


@pytest.mark.parametrize(
    "name",
    [
        "deliver_sm_receipt_tlvs",
        "deliver_sm_jasmin117_network_error_code",
        "deliver_sm_jasmin_message_payload_receipt",
        "deliver_sm_smpplib_payload_receipt",
        "submit_sm_alert",
        "data_sm_receipt",
        "query_sm_resp",
        "alert_notification",
    ],
)
def test_golden_frames_agree_with_smpplib(name: str) -> None:
    """For golden frames smpplib can parse, its fields equal ours."""
    raw = load_hex(name)
    ours = P.decode(raw)
    theirs = smpplib.smpp.parse_pdu(raw, client=FakeClient())
    assert (theirs.sequence, theirs.status) == (
        ours.sequence_number,
        ours.command_status,
    )
    for fname in (f.name for f in dataclasses.fields(ours)):
        if fname in ("sequence_number", "command_status", "tlvs"):
            continue
        assert getattr(theirs, fname) == _out(getattr(ours, fname)), fname


# ---------------------------------------------------------------------------
# smpplib bugs: each test shows smpplib's failure and that ours is right.


def test_smpplib_misreads_one_octet_source_addr_subunit() -> None:
    """smpplib reads source_addr_subunit as 2 octets (spec: 1); ours reads 1."""
    pdu = P.SubmitSm(
        sequence_number=3,
        short_message=b"hi",
        tlvs=(
            (Tag.SOURCE_ADDR_SUBUNIT, b"\x02"),
            (Tag.USER_MESSAGE_REFERENCE, b"\x00\x2a"),
        ),
    )
    raw = P.encode(pdu)
    with pytest.raises(smpplib.exceptions.UnknownCommandError, match="0x400"):
        smpplib.smpp.parse_pdu(raw, client=FakeClient())
    ours = P.decode(raw)
    assert ours.tlv_int(Tag.SOURCE_ADDR_SUBUNIT) == 2
    assert ours.tlv_int(Tag.USER_MESSAGE_REFERENCE) == 42


def test_smpplib_writes_two_octet_source_addr_subunit() -> None:
    """smpplib writes source_addr_subunit with length 2; ours reads what it sent."""
    theirs = smpplib.smpp.make_pdu(
        "submit_sm",
        client=FakeClient(),
        source_addr="1",
        destination_addr="2",
        short_message=b"hi",
        source_addr_subunit=2,
    )
    assert P.decode(theirs.generate()).tlvs == ((Tag.SOURCE_ADDR_SUBUNIT, b"\x00\x02"),)


def test_smpplib_sizes_tlvs_from_its_table_not_the_pdu() -> None:
    """A 5-octet more_messages_to_send derails smpplib; ours keeps it and the next."""
    tlvs = (
        (Tag.MORE_MESSAGES_TO_SEND, b"\x00\x00\x00\x00\x01"),
        (Tag.MESSAGE_STATE, b"\x02"),
    )
    raw = P.encode(P.DeliverSm(sequence_number=3, esm_class=4, tlvs=tlvs))
    with pytest.raises(smpplib.exceptions.UnknownCommandError):
        smpplib.smpp.parse_pdu(raw, client=FakeClient())
    assert P.decode(raw).tlvs == tlvs


@pytest.mark.parametrize(
    "name",
    [
        "deliver_sm_jasmin322_vendor_tlvs",
        "deliver_sm_jasmin325_reserved_tlvs",
        "submit_sm_jasmin325_vendor_tlv",
        "bind_transceiver_resp_jasmin577_tlv_0x1002",
    ],
)
def test_smpplib_rejects_vendor_tlvs_that_we_keep(name: str) -> None:
    """smpplib raises on unknown TLVs; ours keeps them and re-encodes them as is."""
    raw = load_hex(name)
    with pytest.raises(smpplib.exceptions.UnknownCommandError):
        smpplib.smpp.parse_pdu(raw, client=FakeClient())
    ours = P.decode(raw)
    assert any(tag >= 0x0600 and tag not in set(Tag) for tag, _ in ours.tlvs)
    assert P.encode(ours) == raw


def test_smpplib_ignores_make_pdu_sequence() -> None:
    """make_pdu(sequence=42) writes the client's sequence (0); ours writes 42."""
    theirs = smpplib.smpp.make_pdu("enquire_link", client=FakeClient(), sequence=42)
    assert P.decode(theirs.generate()).sequence_number == 0
    assert P.decode(P.encode(P.EnquireLink(sequence_number=42))).sequence_number == 42


@pytest.mark.parametrize(
    ("name", "addr_field"),
    [("data_sm", "source_addr"), ("alert_notification", "source_addr")],
)
def test_smpplib_truncates_65_octet_addresses(name: str, addr_field: str) -> None:
    """smpplib cuts these 64-octet addresses (spec) to 20 octets; ours keeps them."""
    addr = "1" * 64
    theirs = smpplib.smpp.make_pdu(name, client=FakeClient(), **{addr_field: addr})
    assert getattr(P.decode(theirs.generate()), addr_field) == "1" * 20
    cls = P.PDU_TYPES[smpplib.command_codes.commands[name]]
    ours = cls(**{addr_field: addr})  # type: ignore[arg-type]
    assert getattr(P.decode(P.encode(ours)), addr_field) == addr
