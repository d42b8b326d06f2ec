"""Pure decisions of the SMSC simulator (smsgw.smsc.core)."""

from __future__ import annotations

import random

import pytest

from smsgw.codec import pdu as P
from smsgw.codec.constants import Status, Tag
from smsgw.codec.gsm7 import UnencodableError
from smsgw.codec.segment import TooManyPartsError
from smsgw.smsc.core import (
    IdAllocator,
    MessageStore,
    Received,
    TokenBucket,
    absolute_time,
    address,
    build_mo_pdus,
    build_receipt,
    check_credentials,
    message_preview,
    random_throttle,
    receipt_date,
    receipt_text,
)
from tests.smsc.support import T0

ACCOUNTS = (("smsgw", "secret"), ("bank2", ""))


def test_credentials() -> None:
    """Known system_id and password pass; a wrong password or unknown id is named."""
    assert check_credentials(ACCOUNTS, "smsgw", "secret") == Status.ESME_ROK
    assert check_credentials(ACCOUNTS, "bank2", "") == Status.ESME_ROK
    assert check_credentials(ACCOUNTS, "smsgw", "Secret") == Status.ESME_RINVPASWD
    assert check_credentials(ACCOUNTS, "SMSGW", "secret") == Status.ESME_RINVSYSID


def test_id_allocator_formats() -> None:
    """Ids count up from start, as decimal or as upper-case hex."""
    dec, hexa = IdAllocator("decimal", start=9), IdAllocator("hex", start=254)
    assert [dec.allocate() for _ in range(3)] == ["9", "10", "11"]
    assert [hexa.allocate() for _ in range(3)] == ["FE", "FF", "100"]


def test_random_throttle() -> None:
    """Fraction 0 never throttles (and draws nothing); 1 always throttles."""
    rng = random.Random(5)
    state = rng.getstate()
    assert not any(random_throttle(0.0, rng) for _ in range(100))
    assert rng.getstate() == state
    assert all(random_throttle(1.0, rng) for _ in range(100))


def test_token_bucket_rate_and_burst() -> None:
    """The bucket starts full at max(1, rate/10) and refills at rate per second."""
    bucket = TokenBucket(50.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert not bucket.take(0.019)
    assert bucket.take(0.020)
    slow = TokenBucket(2.0, now=0.0)
    assert slow.take(0.0)
    assert not slow.take(0.4)
    assert slow.take(0.5)


def test_message_store_states_and_eviction() -> None:
    """States go ENROUTE -> final once; the oldest ids are forgotten past capacity."""
    store = MessageStore(2)
    store.add("1")
    assert store.get("1") == (1, None)
    assert store.is_open("1")
    assert store.finish("1", 2, 10.0)
    assert store.get("1") == (2, 10.0)
    assert not store.finish("1", 4, 11.0)
    assert not store.is_open("1")
    store.add("2")
    store.add("3")
    assert store.get("1") is None
    assert len(store) == 2


def test_message_store_non_final_state() -> None:
    """A non-final state (ACCEPTD) keeps the message open, without a final time."""
    store = MessageStore(10)
    store.add("1")
    assert store.finish("1", 6, 5.0)
    assert store.get("1") == (6, None)
    assert store.is_open("1")


def test_dates() -> None:
    """Receipt dates are YYMMDDhhmm in UTC; absolute times add seconds and '000+'."""
    assert receipt_date(T0) == "2411290600"
    assert receipt_date(T0 + 59.9) == "2411290600"
    assert receipt_date(T0 + 60) == "2411290601"
    assert absolute_time(T0 + 61.5) == "241129060101000+"


def test_receipt_text() -> None:
    """The Appendix B text: delivered gives dlvrd:001 err:000, others the reverse."""
    assert receipt_text("A1", T0, T0 + 120, "DELIVRD", "hi") == (
        "id:A1 sub:001 dlvrd:001 submit date:2411290600 done date:2411290602 "
        "stat:DELIVRD err:000 text:hi"
    )
    assert "dlvrd:000" in receipt_text("A1", T0, T0, "EXPIRED", "")
    assert "err:001" in receipt_text("A1", T0, T0, "EXPIRED", "")


@pytest.mark.parametrize(
    ("sm", "dc", "esm", "tlvs", "expected"),
    [
        (b"Hello world, this is long", 0, 0, (), "Hello world, this is"),
        (b"a\x00b\x11c\x05", 0, 0, (), "a@b_c?"),  # GSM-7 decoded; é is not ASCII
        ("Grüße\n!".encode("latin-1"), 3, 0, (), "Gr??e?!"),
        ("您好".encode("utf-16-be"), 8, 0, (), "??"),
        (bytes((5, 0, 3, 1, 2, 1)) + b"part", 0, 0x40, (), "part"),
        (b"", 0, 0, ((Tag.MESSAGE_PAYLOAD, b"payload"),), "payload"),
    ],
)
def test_message_preview(
    sm: bytes, dc: int, esm: int, tlvs: tuple[P.Tlv, ...], expected: str
) -> None:
    """The preview is the first 20 characters, printable ASCII, '?' for others."""
    assert message_preview(sm, dc, esm, tlvs) == expected


def test_build_receipt_swaps_addresses() -> None:
    """The receipt goes from the submit's destination to its source, esm_class 0x04."""
    submit = P.SubmitSm(
        source_addr_ton=5,
        source_addr="BANK",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="8613800138000",
        short_message=b"x",
    )
    receipt = build_receipt(
        submit, "7", submit_time=T0, done_time=T0, stat="REJECTD", state=8
    )
    assert (receipt.source_addr_ton, receipt.source_addr_npi) == (1, 1)
    assert receipt.source_addr == "8613800138000"
    assert (receipt.dest_addr_ton, receipt.destination_addr) == (5, "BANK")
    assert receipt.esm_class == 0x04
    assert receipt.tlv_str(Tag.RECEIPTED_MESSAGE_ID) == "7"
    assert receipt.tlv_int(Tag.MESSAGE_STATE) == 8
    plain = build_receipt(
        submit,
        "7",
        submit_time=T0,
        done_time=T0,
        stat="DELIVRD",
        state=2,
        with_tlvs=False,
    )
    assert plain.tlvs == ()


def test_address() -> None:
    """'+' numbers are international/ISDN, digits unknown/ISDN, names alphanumeric."""
    assert address("+8613800138000") == (1, 1, "8613800138000")
    assert address("95588") == (0, 1, "95588")
    assert address("MyBank") == (5, 0, "MyBank")


def test_build_mo_sar_and_payload() -> None:
    """The sar method puts the reference in TLVs; payload sends one message_payload."""
    text = "x" * 200
    sar = build_mo_pdus("+1", "2", text, method="sar", ref=0x1234)
    assert len(sar) == 2
    assert sar[0].esm_class == 0
    assert sar[0].tlv(Tag.SAR_MSG_REF_NUM) == b"\x12\x34"
    assert sar[1].tlv_int(Tag.SAR_SEGMENT_SEQNUM) == 2
    [payload] = build_mo_pdus("+1", "2", text, method="payload")
    assert payload.short_message == b""
    assert payload.tlv(Tag.MESSAGE_PAYLOAD) == text.encode()


def test_build_mo_encoding_and_data_coding_override() -> None:
    """An explicit encoding and data_coding are honoured."""
    [pdu] = build_mo_pdus("+1", "2", "abc", encoding="ucs2", data_coding=0x18)
    assert pdu.short_message == "abc".encode("utf-16-be")
    assert pdu.data_coding == 0x18


def test_build_mo_refuses_bad_text() -> None:
    """Text the encoding cannot carry, or too long, raises ValueError subclasses."""
    with pytest.raises(UnencodableError):
        build_mo_pdus("+1", "2", "您好", encoding="gsm7")
    with pytest.raises(TooManyPartsError):
        build_mo_pdus("+1", "2", "x" * 5000)


def test_received_as_json() -> None:
    """A received record renders bytes as hex for JSON."""
    record = Received(
        "s", "a", "b", 8, 0x40, b"\x00A", ((0x1400, b"\x01"),), "9", T0, 1
    )
    doc = record.as_json()
    assert doc["short_message"] == "0041"
    assert doc["tlvs"] == [{"tag": 0x1400, "value": "01"}]
    assert doc["message_id"] == "9"
    assert doc["registered_delivery"] == 1
