"""Test card numbers and phone numbers for the POS simulator (pure; no I/O).

Everything here is made from a caller's seeded `random.Random`, so a load run
is reproducible. The PANs are Luhn-valid but random: they are test data, yet
the simulator still prints them masked only (first 6 / last 4).
"""

# PT028 (test function with defaults): "test_" in test_pan/test_msisdn means
# test data, not a pytest test; both set __test__ = False at the bottom.
# ruff: noqa: PT028

from __future__ import annotations

import random

__all__ = [
    "luhn_check_digit",
    "luhn_complete",
    "luhn_valid",
    "mask_pan",
    "test_msisdn",
    "test_pan",
]

# China mobile prefixes (the three operators' common 3-digit blocks).
_CN_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139",
    "150", "151", "152", "155", "156", "157", "158", "159",
    "166", "177", "180", "181", "182", "185", "186", "187", "188", "189", "199",
)  # fmt: skip


# Luhn: a doubled digit contributes the sum of its digits (2*7=14 -> 5).
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def _digits(name: str, value: str) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is ASCII digits."""
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"{name} must be ASCII digits, got {value!r}")


def luhn_check_digit(prefix_digits: str) -> str:
    """The Luhn check digit that completes ``prefix_digits``.

    Returns one digit as a string. Raises ValueError unless the prefix is
    1 or more ASCII digits.
    """
    _digits("prefix_digits", prefix_digits)
    # The check digit will sit at position 1 from the right, so the last
    # prefix digit is at position 2: double it, and every second one leftwards.
    digits = prefix_digits[::-1].encode("ascii")
    total = sum(_DOUBLED[d - 48] for d in digits[0::2]) + sum(digits[1::2])
    total -= 48 * len(digits[1::2])
    return str((10 - total % 10) % 10)


def luhn_complete(prefix_digits: str) -> str:
    """``prefix_digits`` with its Luhn check digit appended.

    Raises ValueError unless the prefix is ASCII digits.
    """
    return prefix_digits + luhn_check_digit(prefix_digits)


def luhn_valid(number: str) -> bool:
    """True when ``number`` is 2+ ASCII digits whose last digit checks (Luhn)."""
    if len(number) < 2 or not number.isascii() or not number.isdigit():
        return False
    return luhn_check_digit(number[:-1]) == number[-1]


def test_pan(rng: random.Random, bin: str = "622202", length: int = 16) -> str:
    """A Luhn-valid PAN: ``bin``, random digits, the check digit.

    Returns ``length`` digits. Raises ValueError when ``bin`` is not digits,
    ``length`` is outside 12..19 (intake v1), or ``bin`` leaves no room for at
    least one random digit and the check digit.
    """
    _digits("bin", bin)
    if not 12 <= length <= 19:
        raise ValueError(f"length must be 12..19 (intake v1 pan), got {length}")
    if len(bin) > length - 2:
        raise ValueError(
            f"bin {bin!r} is too long for a {length}-digit PAN "
            "(needs a random digit and the check digit)"
        )
    return luhn_complete(bin + _random_digits(rng, length - 1 - len(bin)))


def test_msisdn(rng: random.Random, cc: str = "86") -> str:
    """A plausible mobile number in E.164 for country code ``cc``.

    ``86``: +86 and an 11-digit mobile number on a real operator prefix;
    ``1``: a NANP number (area code and exchange not starting with 0 or 1);
    other codes: 9 national digits, the first not 0. Returns ``+`` and digits
    matching ``^\\+[1-9][0-9]{6,14}$``. Raises ValueError for a ``cc`` that is
    not 1 to 3 digits starting with 1-9.
    """
    _digits("cc", cc)
    if not 1 <= len(cc) <= 3 or cc[0] == "0":
        raise ValueError(f"cc must be 1-3 digits not starting with 0, got {cc!r}")
    if cc == "86":
        national = rng.choice(_CN_MOBILE_PREFIXES) + _random_digits(rng, 8)
    elif cc == "1":
        national = (
            str(rng.randint(2, 9))
            + _random_digits(rng, 2)
            + str(rng.randint(2, 9))
            + _random_digits(rng, 6)
        )
    else:
        national = str(rng.randint(1, 9)) + _random_digits(rng, 8)
    return f"+{cc}{national}"


def _random_digits(rng: random.Random, n: int) -> str:
    """``n`` uniformly random decimal digits (leading zeros kept)."""
    return f"{rng.randrange(10**n):0{n}d}"


def mask_pan(pan: str) -> str:
    """``pan`` masked for display: first 6 and last 4 at most, ``*`` between.

    PCI DSS 3.4.1 allows at most BIN and last four. Short values (under 12
    characters, not a PAN) keep only their last 4. Returns the masked text.
    """
    if len(pan) < 12:
        return "*" * max(len(pan) - 4, 0) + pan[-4:]
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


# pytest would collect these helpers as tests wherever they are imported by name.
test_pan.__test__ = False  # type: ignore[attr-defined]
test_msisdn.__test__ = False  # type: ignore[attr-defined]
