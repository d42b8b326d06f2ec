"""Test PANs and phone numbers: Luhn arithmetic, shapes, seeding, bad input."""

from __future__ import annotations

import random
import re

import pytest

from smsgw.pos import cards

# ASCII digits -> FULLWIDTH DIGIT ZERO..NINE (str.isdigit() accepts those)
FULLWIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@pytest.mark.parametrize(
    ("prefix", "complete"),
    [
        ("622202123456789", "6222021234567894"),  # intake-v1.md test vector's pan
        ("7992739871", "79927398713"),  # the textbook Luhn example
        ("0", "00"),
        ("411111111111111", "4111111111111111"),
    ],
)
def test_luhn_complete_appends_the_check_digit(prefix: str, complete: str) -> None:
    """luhn_complete appends the one digit that makes the number Luhn-valid."""
    assert cards.luhn_complete(prefix) == complete
    assert cards.luhn_valid(complete)


def test_luhn_valid_rejects_a_wrong_check_digit_and_non_digits() -> None:
    """luhn_valid is False for a changed check digit, separators, or too few digits."""
    assert not cards.luhn_valid("6222021234567895")
    assert not cards.luhn_valid("6222 0212 3456 7894")
    assert not cards.luhn_valid("6222021234567894".translate(FULLWIDTH))
    assert not cards.luhn_valid("4")
    assert not cards.luhn_valid("")


@pytest.mark.parametrize("bad", ["", "12a4", "123".translate(FULLWIDTH), "-1"])
def test_luhn_complete_names_the_bad_argument(bad: str) -> None:
    """A prefix that is not ASCII digits raises ValueError naming prefix_digits."""
    with pytest.raises(ValueError, match="prefix_digits must be ASCII digits"):
        cards.luhn_complete(bad)


def test_test_pan_is_luhn_valid_with_the_bin_and_length() -> None:
    """Every generated PAN starts with the BIN, has the length and checks."""
    rng = random.Random(1)
    for length in range(12, 20):
        pan = cards.test_pan(rng, bin="4111", length=length)
        assert len(pan) == length
        assert pan.startswith("4111")
        assert cards.luhn_valid(pan)
    default = cards.test_pan(rng)
    assert len(default) == 16
    assert default.startswith("622202")
    assert cards.luhn_valid(default)


def test_test_pan_is_reproducible_from_the_seed() -> None:
    """The same seed gives the same PANs; the numbers vary within a run."""
    first = [cards.test_pan(random.Random(7)) for _ in range(3)]
    assert first == [cards.test_pan(random.Random(7)) for _ in range(3)]
    rng = random.Random(7)
    assert len({cards.test_pan(rng) for _ in range(100)}) == 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"length": 11}, "length must be 12..19"),
        ({"length": 20}, "length must be 12..19"),
        ({"bin": "62x2"}, "bin must be ASCII digits"),
        ({"bin": "12345678901", "length": 12}, "bin '12345678901' is too long"),
    ],
)
def test_test_pan_rejects_bad_arguments(
    kwargs: dict[str, object], message: str
) -> None:
    """A bad bin or length raises ValueError naming the argument."""
    with pytest.raises(ValueError, match=message):
        cards.test_pan(random.Random(0), **kwargs)  # type: ignore[arg-type]


def test_test_msisdn_china_mobile_shape() -> None:
    """+86 numbers are 11-digit mobiles starting 1[3-9], valid E.164."""
    rng = random.Random(3)
    for _ in range(200):
        msisdn = cards.test_msisdn(rng)
        assert re.fullmatch(r"\+861[3-9][0-9]{9}", msisdn), msisdn
        assert E164.match(msisdn)


def test_test_msisdn_other_country_codes() -> None:
    """NANP numbers have 10 digits with area and exchange codes from 2; others 9."""
    rng = random.Random(4)
    for _ in range(100):
        us = cards.test_msisdn(rng, cc="1")
        assert re.fullmatch(r"\+1[2-9][0-9]{2}[2-9][0-9]{6}", us), us
        uk = cards.test_msisdn(rng, cc="44")
        assert re.fullmatch(r"\+44[1-9][0-9]{8}", uk), uk
        assert E164.match(us)
        assert E164.match(uk)


@pytest.mark.parametrize("cc", ["0", "086", "1234", "", "+86"])
def test_test_msisdn_rejects_a_bad_country_code(cc: str) -> None:
    """A country code that is not 1-3 digits from 1-9 raises ValueError naming cc."""
    with pytest.raises(ValueError, match="cc must be"):
        cards.test_msisdn(random.Random(0), cc=cc)


@pytest.mark.parametrize(
    ("pan", "masked"),
    [
        ("6222021234567894", "622202******7894"),
        ("411111111111", "411111**1111"),
        ("6222021234567890123", "622202*********0123"),
        ("12345", "*2345"),
    ],
)
def test_mask_pan_keeps_first_six_and_last_four_at_most(pan: str, masked: str) -> None:
    """mask_pan shows the BIN and last 4 of a PAN, only the last 4 of shorter text."""
    assert cards.mask_pan(pan) == masked


def test_helpers_named_test_are_not_collected_by_pytest() -> None:
    """test_pan and test_msisdn are marked __test__ = False for pytest."""
    assert cards.test_pan.__test__ is False  # type: ignore[attr-defined]
    assert cards.test_msisdn.__test__ is False  # type: ignore[attr-defined]
