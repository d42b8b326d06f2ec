"""Turn one text for one number into the submit_sm PDUs a carrier wants.

Pure: the carrier profile decides encoding options, concatenation method,
TON/NPI and how the destination is written; ``segment`` does the splitting
(never an escape or a surrogate pair across parts, never a silent cut).
"""

from __future__ import annotations

from dataclasses import dataclass

from smsgw.carrier.profile import CarrierProfile
from smsgw.codec import pdu as P
from smsgw.codec.constants import ESM_UDHI
from smsgw.codec.segment import SegmentPlan, segment


@dataclass(frozen=True, slots=True)
class Address:
    """A source address with the TON/NPI a profile gives its kind."""

    addr: str
    ton: int
    npi: int


def source_address(
    source: str, profile: CarrierProfile, ton: int | None = None, npi: int | None = None
) -> Address:
    """Classify a sender id (alphanumeric, short code, international number).

    Explicit ``ton``/``npi`` (from the carrier configuration) win.
    """
    if source.startswith("+"):
        kind = "international"
        addr = source[1:]
    elif source.isdigit():
        kind = "short" if len(source) <= 8 else "international"
        addr = source
    else:
        kind = "alphanumeric"
        addr = source
    return Address(
        addr,
        getattr(profile.source_ton, kind) if ton is None else ton,
        getattr(profile.source_npi, kind) if npi is None else npi,
    )


def destination_address(e164: str, profile: CarrierProfile) -> str:
    """Write an E.164 number as the SMSC wants it (with or without '+')."""
    digits = e164[1:] if e164.startswith("+") else e164
    return "+" + digits if profile.dest_plus else digits


def plan(
    text: str, profile: CarrierProfile, *, ref: int = 0, max_parts: int | None = None
) -> SegmentPlan:
    """Segment ``text`` as ``profile`` wants. Raises TooManyPartsError."""
    dc = profile.data_coding
    return segment(
        text,
        method=profile.concatenation,
        packed=profile.gsm7_packing == "packed",
        ref=ref,
        max_parts=max_parts or profile.max_parts,
        allow_latin1=profile.latin1,
        data_codings={"gsm7": dc.gsm7, "latin1": dc.latin1, "ucs2": dc.ucs2},
    )


def compose(
    text: str,
    destination: str,
    source: Address,
    profile: CarrierProfile,
    *,
    ref: int = 0,
    max_parts: int | None = None,
) -> list[P.SubmitSm]:
    """Return one submit_sm per part, each asking for its own receipt.

    A receipt per part (not only the first or last, as Kannel and Jasmin do)
    lets the gateway know which part of a long alert did not arrive.
    """
    segmented = plan(text, profile, ref=ref, max_parts=max_parts)
    dest = destination_address(destination, profile)
    return [
        P.SubmitSm(
            source_addr_ton=source.ton,
            source_addr_npi=source.npi,
            source_addr=source.addr,
            dest_addr_ton=profile.dest_ton,
            dest_addr_npi=profile.dest_npi,
            destination_addr=dest,
            esm_class=ESM_UDHI if part.udhi else 0,
            registered_delivery=profile.registered_delivery,
            data_coding=segmented.data_coding,
            short_message=part.short_message,
            tlvs=part.tlvs,
        )
        for part in segmented.segments
    ]
