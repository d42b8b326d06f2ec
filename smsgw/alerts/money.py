"""Format money amounts for alerts: ISO 4217 digits, locale grouping, cached shapes.

The per-(currency, language) shape (prefix, suffix, grouping and symbols) is
resolved from babel once and cached; each call then does only string work, so
babel's 8-14 µs ``format_currency`` never runs per message (facts.md). The
number of fraction digits is the ISO 4217 minor unit passed in by the caller,
not CLDR's display digits, which differ for IDR, HUF, IQD and others.

Shapes: Chinese puts 人民币 before and 元 after a CNY amount ("人民币128.50元"),
writes other currencies with babel's Chinese name after the number
("128.50美元", "1,200日元") and falls back to the ISO code before it
("CLF1.0000") when babel has no plain Chinese name. Every other language writes
the ISO code, a space, then the number ("USD 1,234.50", "JPY 1,200").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.numbers import (
    get_currency_name,
    get_decimal_symbol,
    get_group_symbol,
    get_minus_sign_symbol,
    parse_pattern,
)

__all__ = ["format_amount"]

_CURRENCY = re.compile(r"[A-Z]{3}")
# A babel Chinese currency name is used only when it is plain CJK text. Names
# with parentheses, spaces or Latin letters (CLF: 智利 then 资金 in full-width
# parentheses; CHE: "欧元 (WIR)") read badly glued to a number, so those
# currencies fall back to the ISO code.
_PLAIN_CJK_NAME = re.compile(r"[\u4e00-\u9fff]+")
_MAX_EXPONENT = 9


@dataclass(frozen=True, slots=True)
class _Shape:
    """How one currency is written in one language."""

    prefix: str
    suffix: str
    group: str
    decimal: str
    minus: str
    primary: int  # digits in the lowest group (3 for 1,234)
    secondary: int  # digits in each higher group (2 for hi_IN 12,34,567)
    plain: bool  # groups of 3 separated by ",": Python's own "," format applies


@lru_cache(maxsize=1024)
def _shape(currency: str, lang: str) -> _Shape:
    """Resolve the shape of ``currency`` in ``lang`` from babel (once per pair).

    Raises ValueError for a malformed currency code or a language babel does
    not know.
    """
    if _CURRENCY.fullmatch(currency) is None:
        raise ValueError(f"currency: must be 3 uppercase letters, got {currency!r}")
    try:
        locale = Locale.parse(lang.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        raise ValueError(f"lang: unknown language {lang!r}") from None
    pattern = parse_pattern(locale.currency_formats["standard"])
    primary, secondary = pattern.grouping
    group = get_group_symbol(locale=locale)
    if locale.language == "zh":
        if currency == "CNY":
            prefix, suffix = "人民币", "元"
        else:
            name = get_currency_name(currency, locale=locale)
            if _PLAIN_CJK_NAME.fullmatch(name) is not None:
                prefix, suffix = "", name
            else:
                prefix, suffix = currency, ""
    else:
        prefix, suffix = currency + " ", ""
    return _Shape(
        prefix=prefix,
        suffix=suffix,
        group=group,
        decimal=get_decimal_symbol(locale=locale),
        minus=get_minus_sign_symbol(locale=locale),
        primary=primary,
        secondary=secondary,
        plain=primary == secondary == 3 and group == ",",
    )


def _group(digits: int, shape: _Shape) -> str:
    """Return ``digits`` with the shape's grouping separators."""
    if shape.primary == shape.secondary == 3:
        grouped = f"{digits:,}"
        return grouped if shape.group == "," else grouped.replace(",", shape.group)
    text = str(digits)
    if len(text) <= shape.primary:
        return text
    head, tail = text[: -shape.primary], text[-shape.primary :]
    groups = [tail]
    while len(head) > shape.secondary:
        groups.append(head[-shape.secondary :])
        head = head[: -shape.secondary]
    groups.append(head)
    return shape.group.join(reversed(groups))


def format_amount(amount: str, currency: str, exponent: int, lang: str) -> str:
    """Return ``amount`` written for an alert in ``lang`` with exactly
    ``exponent`` fraction digits, e.g. "人民币128.50元" (zh) or "USD 1,234.50".

    ``amount`` is a decimal string such as "128.5", "1200" or "-12" (negative
    balances are allowed); ``exponent`` is the currency's ISO 4217 minor unit.
    Raises ValueError for a malformed amount, an amount with more non-zero
    fraction digits than ``exponent``, a bad exponent or currency code, or a
    language babel does not know.
    """
    # str.isdigit alone accepts non-ASCII digits ("١٢"), hence isascii too.
    sign = amount[:1] == "-"
    digits, dot, frac = (amount[1:] if sign else amount).partition(".")
    if not (
        digits.isdigit() and amount.isascii() and (frac.isdigit() if dot else True)
    ):
        raise ValueError(f"amount: not a decimal string: {amount!r}")
    if not 0 <= exponent <= _MAX_EXPONENT:
        raise ValueError(f"exponent: must be 0..{_MAX_EXPONENT}, got {exponent!r}")
    shape = _shape(currency, lang)
    whole = int(digits)
    if len(frac) > exponent:
        if frac[exponent:].strip("0"):
            raise ValueError(
                f"amount: {amount!r} has more than {exponent} fraction digits "
                f"for {currency}"
            )
        frac = frac[:exponent]
    else:
        frac = frac.ljust(exponent, "0")
    number = f"{whole:,}" if shape.plain else _group(whole, shape)
    if exponent:
        number = f"{number}{shape.decimal}{frac}"
    if sign and (whole or frac.strip("0")):
        number = shape.minus + number
    return f"{shape.prefix}{number}{shape.suffix}"
