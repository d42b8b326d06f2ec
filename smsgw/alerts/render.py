"""Render one alert and fit it into one SMS part by shortening variable fields.

The hot path is a ``str.format_map`` of a built-in template, cached money
shapes, table look-ups for the date and time, and one encoding and length
check. Only a text that needs more than one part takes the slow path: the
merchant name is cut (ending "…" in UCS-2, "..." in GSM-7 and Latin-1, which
have no "…"), then the location is dropped. The amount, card digits, time and
signature are never touched. Cut lengths are computed from the units the rest
of the text leaves free, so each candidate costs one render and one length
check (two for a merchant template printing the name twice), never a render
per character.

A name that forces a wider alphabet is also tried cut before its first
character the narrower alphabet lacks: an emoji makes an English alert UCS-2,
where 70 units cannot hold its fixed words, but cut before the emoji it fits
160 GSM-7 septets. The candidate keeping most of the name wins.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate

from smsgw.alerts.money import format_amount
from smsgw.alerts.templates import (
    AUDIENCES,
    BUILTIN,
    KINDS,
    LANGS,
    RESULTS,
    TemplateError,
    compile_template,
)
from smsgw.codec.gsm7 import GSM7_EXTENSION, is_gsm7
from smsgw.codec.text import (
    SINGLE_LIMITS,
    Encoding,
    choose_encoding,
    measure,
    units,
)

__all__ = ["AlertFacts", "Rendered", "render"]

_EN_MONTHS = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
# Dates and times as table look-ups: built once here with f-strings, because
# per call even f-string formatting costs more than the rest of the render
# (and strftime several times more; facts.md). Indexed [month][day], [h*60+m].
_ZH_DATES = [[f"{m:02d}月{d:02d}日" for d in range(32)] for m in range(13)]
_EN_DATES = [[f"{d:02d}{_EN_MONTHS[m - 1]}" for d in range(32)] for m in range(13)]
_TIMES = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]
_ELLIPSIS: dict[Encoding, str] = {"ucs2": "\u2026", "gsm7": "...", "latin1": "..."}
_SURROGATE = re.compile("[\ud800-\udfff]")
# Characters that take two units: GSM-7 escapes, UCS-2 surrogate pairs.
_EXTENSION = frozenset(GSM7_EXTENSION.values())
_ESCAPED = re.compile("[" + re.escape("".join(sorted(_EXTENSION))) + "]")
# Wider encodings carry more characters but fewer units per part.
_WIDTH: dict[Encoding, int] = {"gsm7": 0, "latin1": 1, "ucs2": 2}


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What an alert says. Holds the last 4 card digits only, never a PAN."""

    audience: str  # "cardholder" | "merchant"
    kind: str  # purchase | refund | reversal | preauth | withdrawal
    result: str  # "approved" | "declined"
    amount: str  # validated decimal string, e.g. "128.50"
    currency: str  # ISO 4217 code
    exponent: int  # ISO 4217 minor unit
    last4: str
    merchant: str  # merchant name; "" when unknown
    location: str | None
    local_time: datetime  # aware; shown as local wall time without the year
    balance: str | None
    terminal_id: str
    signature: str  # issuer signature for this language: "XX银行" / "XX Bank"
    reply_code: str = ""  # shown by templates that print {{ reply_code }}


@dataclass(frozen=True, slots=True)
class Rendered:
    """An alert text and how it will be sent."""

    text: str
    encoding: str
    units: int
    parts: int
    shortened: bool  # the merchant name was cut or the location dropped


# fill(merchant, location, keep_clause) -> text. keep_clause renders the
# merchant clause's fixed words even for an empty name, so the text's units
# minus the name's are what the rest of the alert needs.
_Fill = Callable[[str, str | None, bool], str]


def _check(facts: AlertFacts) -> None:
    """Raise ValueError naming the first field of ``facts`` that cannot render."""
    if facts.audience not in AUDIENCES:
        raise ValueError(
            f"audience: must be one of {AUDIENCES}, got {facts.audience!r}"
        )
    if facts.kind not in KINDS:
        raise ValueError(f"kind: must be one of {KINDS}, got {facts.kind!r}")
    if facts.result not in RESULTS:
        raise ValueError(f"result: must be one of {RESULTS}, got {facts.result!r}")
    if len(facts.last4) > 4:
        # Never echo the value: it may be a full card number passed by mistake.
        raise ValueError("last4: must be at most 4 characters")
    if facts.local_time.tzinfo is None:
        raise ValueError("local_time: must be timezone-aware")


def _clean(text: str) -> str:
    """Return ``text`` with lone surrogates (no UCS-2 form) replaced by U+FFFD."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text)


def _at(lang: str, merchant: str, location: str | None, keep: bool) -> str:
    """Return the merchant clause: zh "在星巴克(上海)", en " at STARBUCKS, SHANGHAI"."""
    if merchant or keep:
        if lang == "zh":
            return f"在{merchant}({location})" if location else f"在{merchant}"
        return f" at {merchant}, {location}" if location else f" at {merchant}"
    if location:
        return f"在{location}" if lang == "zh" else f" at {location}"
    return ""


def _builtin_fill(source: str, lang: str, values: dict[str, str]) -> _Fill:
    def fill(merchant: str, location: str | None, keep: bool = False) -> str:
        values["at"] = _at(lang, merchant, location, keep)
        return source.format_map(values)

    return fill


def _merchant_fill(source: str, values: dict[str, str]) -> _Fill:
    template = compile_template(source)
    amount, last4 = values["amount"], values["last4"]

    def fill(merchant: str, location: str | None, keep: bool = False) -> str:
        values["merchant"] = merchant
        values["location"] = location or ""
        try:
            text = template.render(values)
        except Exception as exc:  # the template is merchant code: any failure
            raise TemplateError(
                f"template failed to render: {type(exc).__name__}: {exc}"
            ) from None
        if amount not in text or last4 not in text:
            raise TemplateError("template output lacks the amount or the last4")
        return text

    return fill


def _values(facts: AlertFacts, lang: str, merchant_template: bool) -> dict[str, str]:
    """Return the formatted fields every template shares."""
    t = facts.local_time
    date = (_ZH_DATES if lang == "zh" else _EN_DATES)[t.month][t.day]
    amount = format_amount(facts.amount, facts.currency, facts.exponent, lang)
    balance = ""
    if facts.balance is not None:
        balance = format_amount(facts.balance, facts.currency, facts.exponent, lang)
    if not merchant_template and balance:
        balance = f"余额{balance}。" if lang == "zh" else f"Bal {balance}. "
    values = {
        "signature": facts.signature,
        "last4": facts.last4,
        "amount": amount,
        "date": date,
        "time": _TIMES[t.hour * 60 + t.minute],
        "balance": balance,
        "terminal_id": facts.terminal_id,
    }
    if merchant_template:
        values["kind"] = facts.kind
        values["result"] = facts.result
        values["reply_code"] = facts.reply_code
    return values


def _size(text: str, allow_latin1: bool) -> tuple[Encoding, int]:
    """Return the encoding ``text`` will use and its length in that encoding.

    Cheaper than ``measure``: GSM-7 is tested once and parts are not counted.
    """
    encoding = choose_encoding(text, allow_latin1)
    if encoding == "gsm7":  # every character is GSM-7; escapes take 2 septets
        return encoding, len(text) + len(_ESCAPED.findall(text))
    return encoding, units(text, encoding)


def _one_part(text: str, allow_latin1: bool, shortened: bool) -> Rendered | None:
    """Return ``text`` as a one-part Rendered if it fits one part, else None."""
    encoding, count = _size(text, allow_latin1)
    if count <= SINGLE_LIMITS[encoding]:
        return Rendered(text, encoding, count, 1, shortened)
    return None


def _parts(text: str, allow_latin1: bool, shortened: bool) -> Rendered:
    """Return ``text`` as Rendered with its exact part count."""
    m = measure(text, allow_latin1)
    return Rendered(text, m.encoding, m.units, m.parts, shortened)


def _prefix_within(text: str, encoding: Encoding, budget: int) -> str:
    """Return the longest prefix of ``text`` that takes at most ``budget`` units.

    Usually every character is one unit and ``text[:budget]`` is the answer;
    otherwise (GSM-7 escapes, astral characters: two units) the cut point is
    found from the running unit count, in one pass over the name.
    """
    if budget <= 0:
        return ""
    cut = text[:budget]
    if units(cut, encoding) <= budget:
        return cut
    if encoding == "gsm7":
        widths = [2 if c in _EXTENSION else 1 for c in cut]
    else:  # UCS-2: a character outside the BMP is a surrogate pair
        widths = [2 if c > "\uffff" else 1 for c in cut]
    used = bisect_right(list(accumulate(widths)), budget)
    return cut[:used]


def _encodable_prefix(text: str, encoding: Encoding) -> str:
    """Return the part of ``text`` before its first character ``encoding`` lacks."""
    if encoding == "ucs2" or (encoding == "gsm7" and is_gsm7(text)):
        return text
    for index, char in enumerate(text):
        if (not is_gsm7(char)) if encoding == "gsm7" else ord(char) > 0xFF:
            return text[:index]
    return text


def _names(
    fill: _Fill, merchant: str, location: str | None, allow_latin1: bool
) -> list[str]:
    """Return cut merchant names to try, keeping the most of the name first.

    One candidate per encoding the text could end up in: the one the whole
    name needs, and narrower ones reached by cutting before the characters
    that force the wider alphabet (an emoji makes an English alert UCS-2).
    """
    fixed = fill("", location, True)
    narrowest = _WIDTH[choose_encoding(fixed, allow_latin1)]
    widest = _WIDTH[choose_encoding(fixed + merchant, allow_latin1)]
    found: list[tuple[int, str]] = []
    for encoding, width in _WIDTH.items():
        if not narrowest <= width <= widest or (
            encoding == "latin1" and not allow_latin1
        ):
            continue
        try:
            budget = SINGLE_LIMITS[encoding] - units(fixed, encoding)
        except ValueError:  # the fixed words need a wider alphabet
            continue
        source = _encodable_prefix(merchant, encoding)
        if source == merchant and units(source, encoding) <= budget:
            found.append((len(source), source))
            continue
        ellipsis = _ELLIPSIS[encoding]
        kept = _prefix_within(source, encoding, budget - len(ellipsis)).rstrip()
        found.append((len(kept), kept + ellipsis if kept else ""))
    found.sort(key=lambda item: -item[0])
    return [name for _, name in found]


def _fit(
    fill: _Fill, merchant: str, location: str | None, allow_latin1: bool
) -> Rendered | None:
    """Cut ``merchant`` until the text fits one part; None if no cut does."""
    tried: set[str] = set()
    for name in _names(fill, merchant, location, allow_latin1):
        if name in tried:
            continue
        tried.add(name)
        text = fill(name, location, False)
        encoding, count = _size(text, allow_latin1)
        if count <= SINGLE_LIMITS[encoding]:
            return Rendered(text, encoding, count, 1, True)
        # A merchant template may print the name more than once: cut again,
        # sharing the measured excess among its copies (each char >= 1 unit).
        copies = max(1, text.count(name)) if name else 1
        ellipsis = _ELLIPSIS[encoding]
        excess = count - SINGLE_LIMITS[encoding]
        keep = len(name) - len(ellipsis) - -(-excess // copies)
        if name and keep > 0:
            base = name.removesuffix("\u2026").removesuffix("...")
            shorter = base[:keep].rstrip()
            text = fill(shorter + ellipsis if shorter else "", location, False)
            fitted = _one_part(text, allow_latin1, True)
            if fitted is not None:
                return fitted
    return None


def render(
    facts: AlertFacts,
    lang: str,
    template: str | None = None,
    *,
    default_lang: str = "zh",
    allow_latin1: bool = False,
) -> Rendered:
    """Render the alert for ``facts`` in ``lang`` and fit it into one part if it can.

    ``lang`` outside ("zh", "en") falls back to ``default_lang``. ``template``
    is a merchant template (jinja2 sandbox, compiled once per string); without
    it the built-in template for the audience, kind and result is used. When
    the text needs more than one part, the merchant name is cut, then the
    location dropped, until it fits; if nothing fits it stays multi-part,
    with the merchant and location unless leaving them out saves a part.
    Returns the text with its encoding, units and parts. Raises ValueError
    for unusable facts (naming the field) or an unsupported ``default_lang``,
    and TemplateError for a refused or failing merchant template.
    """
    if lang not in LANGS:
        if default_lang not in LANGS:
            raise ValueError(
                f"default_lang: must be one of {LANGS}, got {default_lang!r}"
            )
        lang = default_lang
    _check(facts)
    values = _values(facts, lang, template is not None)
    merchant = _clean(facts.merchant)
    location = _clean(facts.location) if facts.location else None
    fill: _Fill
    if template is None:
        source = BUILTIN[facts.audience, facts.kind, facts.result, lang]
        values["at"] = _at(lang, merchant, location, False)
        text = source.format_map(values)
        fill = _builtin_fill(source, lang, values)
    else:
        fill = _merchant_fill(template, values)
        text = fill(merchant, location, False)
    quick = _one_part(text, allow_latin1, False)
    if quick is not None:
        return quick
    if (not merchant and location is None) or (
        facts.audience == "merchant" and template is None  # no merchant fields
    ):
        return _parts(text, allow_latin1, False)
    if merchant:
        fitted = _fit(fill, merchant, location, allow_latin1)
        if fitted is not None:
            return fitted
    if location is not None:
        fitted = _one_part(fill(merchant, None, False), allow_latin1, True)
        if fitted is None and merchant:
            fitted = _fit(fill, merchant, None, allow_latin1)
        if fitted is not None:
            return fitted
    # No cut makes it one part. Where the card was used is what the
    # cardholder reads the alert for: the merchant and location stay unless
    # leaving them out saves a part.
    whole = _parts(text, allow_latin1, False)
    bare = _parts(fill("", None, False), allow_latin1, True)
    return bare if bare.parts < whole.parts else whole
