"""compose: text + number -> submit_sm PDUs as the carrier profile wants."""

from __future__ import annotations

import dataclasses

import pytest

from smsgw.carrier.compose import compose, destination_address, source_address
from smsgw.carrier.profile import load_profile
from smsgw.codec.constants import ESM_UDHI, Tag
from smsgw.codec.segment import TooManyPartsError

GENERIC = load_profile("generic")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("95588", ("95588", 3, 0)),
        ("XXBANK", ("XXBANK", 5, 0)),
        ("+8613800138000", ("8613800138000", 1, 1)),
        ("8613800138000", ("8613800138000", 1, 1)),
    ],
)
def test_source_address_kind_decides_ton_npi(
    source: str, expected: tuple[str, int, int]
) -> None:
    """Short codes, alphanumeric ids and full numbers get the profile's TON/NPI."""
    a = source_address(source, GENERIC)
    assert (a.addr, a.ton, a.npi) == expected


def test_configured_ton_npi_win() -> None:
    """TON/NPI set in the carrier configuration override the profile."""
    a = source_address("95588", GENERIC, ton=0, npi=1)
    assert (a.ton, a.npi) == (0, 1)


def test_destination_written_without_plus_unless_profile_says() -> None:
    """E.164 goes out as digits, or with '+' for SMSCs that want it."""
    assert destination_address("+8613800138000", GENERIC) == "8613800138000"
    plus = dataclasses.replace(GENERIC, dest_plus=True)
    assert destination_address("+8613800138000", plus) == "+8613800138000"


def test_short_gsm_message_is_one_plain_part() -> None:
    """A 160-septet text is one submit_sm with no UDH, asking for a receipt."""
    (pdu,) = compose(
        "A" * 160, "+8613800138000", source_address("95588", GENERIC), GENERIC
    )
    assert pdu.esm_class == 0
    assert pdu.data_coding == GENERIC.data_coding.gsm7
    assert pdu.short_message == b"A" * 160
    assert pdu.registered_delivery == GENERIC.registered_delivery
    assert pdu.destination_addr == "8613800138000"


def test_long_message_asks_for_a_receipt_per_part() -> None:
    """Every part of a 3-part message carries UDHI and its own receipt request."""
    pdus = compose(
        "B" * 400, "+8613800138000", source_address("95588", GENERIC), GENERIC, ref=7
    )
    assert len(pdus) == 3
    assert all(p.esm_class & ESM_UDHI for p in pdus)
    assert all(p.registered_delivery == 1 for p in pdus)
    assert [p.short_message[:6] for p in pdus] == [
        bytes([5, 0, 3, 7, 3, n]) for n in (1, 2, 3)
    ]


def test_chinese_goes_out_as_ucs2() -> None:
    """A Chinese alert is UCS-2 with the profile's data_coding."""
    text = "【XX银行】您尾号1234的卡消费人民币100.00元"
    (pdu,) = compose(text, "+8613800138000", source_address("95588", GENERIC), GENERIC)
    assert pdu.data_coding == 8
    assert pdu.short_message == text.encode("utf-16-be")


def test_sar_profile_uses_tlvs() -> None:
    """A SAR carrier gets sar_* TLVs instead of a UDH."""
    sar = load_profile("sar")
    pdus = compose(
        "C" * 300, "+8613800138000", source_address("95588", sar), sar, ref=9
    )
    assert len(pdus) == 2
    assert all(not p.esm_class & ESM_UDHI for p in pdus)
    assert pdus[1].tlv_int(Tag.SAR_SEGMENT_SEQNUM) == 2
    assert pdus[1].tlv_int(Tag.SAR_TOTAL_SEGMENTS) == 2
    assert pdus[0].tlv_int(Tag.SAR_MSG_REF_NUM) == 9


def test_too_many_parts_is_an_error_not_a_cut() -> None:
    """A text needing more parts than allowed raises instead of being truncated."""
    with pytest.raises(TooManyPartsError):
        compose(
            "D" * 1000,
            "+8613800138000",
            source_address("95588", GENERIC),
            GENERIC,
            max_parts=3,
        )
