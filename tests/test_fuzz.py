"""The fuzz campaign's short version (the long one: python -m tests.fuzz)."""

from __future__ import annotations

import io

import orjson
import pytest

from smsgw.intake.envelope import IntakeError, parse_body
from tests.fuzz import TARGETS, run


def test_short_fuzz_campaign_keeps_every_contract() -> None:
    """60,000 mutated inputs across the intake framer, envelope and checks, the
    SMPP framer and codec, the receipt parser and the MO decoder: no crash, no
    hang, and the deep paths are reached (validation, acks, receipts, parts)."""
    out = io.StringIO()
    counts, seen = run(60_000, seed=7, out=out)
    assert out.getvalue() == ""
    assert not [k for k in counts if k.endswith(("crashes", "hangs"))]
    assert sum(counts[name] for name in TARGETS) == 60_000
    assert {"invalid", "ack", "pong", "bad_mac", "malformed"} <= set(seen["intake"])
    assert {"receipt", "mo udh", "mo sar", "mo payload"} <= set(seen["receipt_and_mo"])
    assert "SubmitSm" in seen["pdu"]


def test_a_body_type_that_is_a_list_or_object_is_malformed() -> None:
    """Found by the fuzzer: {"type": []} raised TypeError (unhashable) instead of
    being answered malformed."""
    for kind in ([], {"k": 1}, None, 3):
        envelope = type("E", (), {"body_bytes": orjson.dumps({"type": kind})})()
        with pytest.raises(IntakeError, match=r"unknown request type \(a ") as info:
            parse_body(envelope)  # type: ignore[arg-type]
        assert info.value.code == "malformed"
