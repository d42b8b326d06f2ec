"""Money formatting for alerts: ISO digits, language shapes, grouping, bad input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw.alerts.money import format_amount


@pytest.mark.parametrize(
    ("amount", "currency", "exponent", "lang", "expected"),
    [
        ("128.5", "CNY", 2, "zh", "人民币128.50元"),
        ("128.50", "CNY", 2, "en", "CNY 128.50"),
        ("1234.5", "USD", 2, "en", "USD 1,234.50"),
        ("128.50", "USD", 2, "zh", "128.50美元"),
        ("1200", "JPY", 0, "en", "JPY 1,200"),
        ("1200", "JPY", 0, "zh", "1,200日元"),
        ("1.5", "BHD", 3, "en", "BHD 1.500"),
        ("1.500", "BHD", 3, "zh", "1.500巴林第纳尔"),
        ("1", "CLF", 4, "zh", "CLF1.0000"),
        ("1", "CLF", 4, "en", "CLF 1.0000"),
        ("0.01", "CNY", 2, "zh", "人民币0.01元"),
        ("999999999999.99", "CNY", 2, "en", "CNY 999,999,999,999.99"),
    ],
)
def test_format_amount_shapes(
    amount: str, currency: str, exponent: int, lang: str, expected: str
) -> None:
    """Each currency is written in its language's shape with exactly its ISO digits."""
    assert format_amount(amount, currency, exponent, lang) == expected


@pytest.mark.parametrize(
    ("amount", "lang", "expected"),
    [
        ("-12", "zh", "人民币-12.00元"),
        ("-12.5", "en", "CNY -12.50"),
        ("-1234567.8", "en", "CNY -1,234,567.80"),
        ("-0", "en", "CNY 0.00"),
        ("-0.00", "zh", "人民币0.00元"),
    ],
)
def test_negative_balances(amount: str, lang: str, expected: str) -> None:
    """A negative balance keeps its minus next to the number; minus zero drops it."""
    assert format_amount(amount, "CNY", 2, lang) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "exponent", "lang", "expected"),
    [
        ("1234567.5", "EUR", 2, "de", "EUR 1.234.567,50"),
        ("1234567", "EUR", 2, "fr", "EUR 1\u202f234\u202f567,00"),
        ("1234567.5", "INR", 2, "hi_IN", "INR 12,34,567.50"),
        ("1234567.5", "INR", 2, "hi-IN", "INR 12,34,567.50"),
        ("999", "USD", 2, "en", "USD 999.00"),
        ("1000", "USD", 2, "en", "USD 1,000.00"),
    ],
)
def test_grouping_follows_the_language(
    amount: str, currency: str, exponent: int, lang: str, expected: str
) -> None:
    """Separators and group sizes come from the language's CLDR data."""
    assert format_amount(amount, currency, exponent, lang) == expected


def test_leading_zeros_and_surplus_zero_digits_are_normalised() -> None:
    """Leading zeros go and trailing zero digits beyond the ISO exponent are dropped."""
    assert format_amount("007.5", "CNY", 2, "en") == "CNY 7.50"
    assert format_amount("1200.00", "JPY", 0, "en") == "JPY 1,200"
    assert format_amount("1.5000", "BHD", 3, "en") == "BHD 1.500"


@pytest.mark.parametrize(
    "amount",
    [
        *("", "-", "1.", ".5", "1e2", " 1", "1 ", "1_000", "1,000", "NaN", "+1"),
        *("--1", "1.2.3", "\u0661\u0662", "\u00b2", "12\uff10"),
    ],
)
def test_malformed_amounts_are_refused(amount: str) -> None:
    """Strings that are not plain ASCII decimals raise ValueError naming the amount."""
    with pytest.raises(ValueError, match=r"^amount: not a decimal string"):
        format_amount(amount, "CNY", 2, "en")


def test_more_fraction_digits_than_the_exponent_is_refused() -> None:
    """Non-zero digits beyond the ISO minor unit are an error, never rounded."""
    with pytest.raises(ValueError, match=r"amount: '1200.5' has more than 0 fraction"):
        format_amount("1200.5", "JPY", 0, "en")
    with pytest.raises(ValueError, match=r"more than 2 fraction digits for CNY"):
        format_amount("1.005", "CNY", 2, "zh")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("1", "cny", 2, "en"), r"^currency: must be 3 uppercase letters, got 'cny'"),
        (("1", "CNYX", 2, "en"), r"^currency: must be 3 uppercase letters"),
        (("1", "CNY", -1, "en"), r"^exponent: must be 0\.\.9, got -1"),
        (("1", "CNY", 10, "en"), r"^exponent: must be 0\.\.9, got 10"),
        (("1", "CNY", 2, "xx"), r"^lang: unknown language 'xx'"),
        (("1", "CNY", 2, ""), r"^lang: unknown language ''"),
    ],
)
def test_bad_currency_exponent_or_language(
    args: tuple[str, str, int, str], message: str
) -> None:
    """A bad currency code, exponent or language raises ValueError naming the field."""
    with pytest.raises(ValueError, match=message):
        format_amount(*args)


@given(
    whole=st.integers(min_value=0, max_value=10**12 - 1),
    frac=st.text("0123456789", min_size=0, max_size=3),
    exponent=st.integers(min_value=3, max_value=4),
    negative=st.booleans(),
    lang=st.sampled_from(["en", "zh"]),
)
def test_digits_survive_formatting(
    whole: int, frac: str, exponent: int, negative: bool, lang: str
) -> None:
    """Removing the shape's words and separators gives back the same number, padded."""
    amount = ("-" if negative else "") + str(whole) + ("." + frac if frac else "")
    text = format_amount(amount, "KWD", exponent, lang)
    digits = "".join(c for c in text if c.isdigit() or c in ".-")
    is_zero = whole == 0 and not frac.strip("0")
    sign = "-" if negative and not is_zero else ""
    assert digits == f"{sign}{whole}.{frac.ljust(exponent, '0')}"
