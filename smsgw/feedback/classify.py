"""Classify a cardholder's reply to an alert: confirm, not_me, stop, help or free text.

Pure: no Twisted, no I/O. A reply is first normalised (`normalize`), then
matched against per-language keyword sets (`Keywords`):

1. the whole normalised text is a keyword: that keyword's class and language;
2. a keyword with no digit, then optionally one space, then a reply code
   ``[0-9][0-9a-z]{0,5}`` ("n7", "td 92", "退订92"): the class, language and
   code; the longest keyword that fits wins;
3. anything else is free text: class, language and code are None.

"n-7" is free text: only one space may separate a keyword from its code.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Self

__all__ = [
    "DEFAULT_KEYWORDS",
    "KINDS",
    "LANGS",
    "Classified",
    "KeywordError",
    "Keywords",
    "check_keywords",
    "classify",
    "normalize",
]

KINDS: Final = ("confirm", "not_me", "stop", "help")
LANGS: Final = ("en", "zh")

DEFAULT_KEYWORDS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = MappingProxyType(
    {
        "en": MappingProxyType(
            {
                "confirm": ("Y", "YES", "1"),
                "not_me": ("N", "NO", "2"),
                "stop": ("STOP", "T", "R", "UNSUBSCRIBE", "END", "CANCEL", "QUIT"),
                "help": ("HELP",),
            }
        ),
        "zh": MappingProxyType(
            {
                "confirm": ("是", "本人"),
                "not_me": ("否", "非本人", "不是我"),
                "stop": ("退订", "TD"),
                "help": ("帮助",),
            }
        ),
    }
)

# A reply code: starts with an ASCII digit, then up to 5 ASCII digits or
# lowercase letters (the text is casefolded before matching).
_CODE = re.compile(r"[0-9][0-9a-z]{0,5}")
_MAX_CODE = 6
# A keyword containing one of these never takes a code, so "17" is free text
# rather than "1" with code "7". Digits are ASCII, the same digits a code uses.
_DIGIT = re.compile(r"[0-9]")


def _strippable(ch: str) -> bool:
    """True for whitespace, punctuation (P*), symbols (S*) and other (C*) chars."""
    return ch.isspace() or unicodedata.category(ch)[0] in "PSC"


def _is_mark(ch: str) -> bool:
    """True for a combining mark (M*), e.g. the emoji variation selector U+FE0F."""
    return unicodedata.category(ch)[0] == "M"


def _strip_edges(text: str) -> str:
    """Strip `_strippable` characters, with the marks attached to them, at both ends.

    An emoji is often a symbol followed by variation selector U+FE0F (category
    Mn), so marks go with the stripped character they follow. A mark at the
    very start has nothing before it and is kept.
    """
    start, end = 0, len(text)
    while start < end and _strippable(text[start]):
        start += 1
        while start < end and _is_mark(text[start]):
            start += 1
    while end > start:
        base = end
        while base > start and _is_mark(text[base - 1]):
            base -= 1
        if base == start or not _strippable(text[base - 1]):
            break
        end = base - 1
    return text[start:end]


def normalize(text: str) -> str:
    """Return ``text`` in the form keywords are matched in.

    NFKC (full-width letters and digits become ASCII), casefold, NFKC again
    (casefolding can leave NFKC: U+01F0 folds to "j" plus a combining caron),
    every whitespace run becomes one ASCII space, then leading and trailing
    whitespace, punctuation, symbols (emoji, "~", "¥") and control/format
    characters are stripped, each with any combining marks after it.
    Inner punctuation is kept: "n.7" stays "n.7". Never raises.
    """
    folded = unicodedata.normalize(
        "NFKC", unicodedata.normalize("NFKC", text).casefold()
    )
    return _strip_edges(" ".join(folded.split()))


class KeywordError(ValueError):
    """Invalid keyword sets: `problems` holds one ``lang.class: message`` each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))


def _entries(
    mapping: Mapping[str, Mapping[str, Sequence[str]]],
) -> tuple[list[str], list[tuple[str, str, str, str]]]:
    """Walk ``mapping``: return (problems, [(normalised, word, kind, lang), ...]).

    Entries under an unknown language or class are checked for bad words but
    left out of the returned entries, so they raise no conflicts.
    """
    problems: list[str] = []
    entries: list[tuple[str, str, str, str]] = []
    for lang, classes in mapping.items():
        known_lang = lang in LANGS
        if not known_lang:
            problems.append(
                f"{lang}: unknown language {lang!r}; expected one of {', '.join(LANGS)}"
            )
        if not isinstance(classes, Mapping):
            problems.append(
                f"{lang}: expected a mapping of class to words, "
                f"got {type(classes).__name__}"
            )
            continue
        for kind, words in classes.items():
            path = f"{lang}.{kind}"
            known_kind = kind in KINDS
            if not known_kind:
                problems.append(
                    f"{path}: unknown class {kind!r}; expected one of "
                    f"{', '.join(KINDS)}"
                )
            if isinstance(words, str) or not isinstance(words, Sequence):
                # A YAML ``stop: STOP`` would otherwise be read letter by letter.
                problems.append(
                    f"{path}: expected a list of words, got {type(words).__name__}"
                )
                continue
            for word in words:
                if not isinstance(word, str):
                    # YAML reads an unquoted 1 as an integer.
                    problems.append(
                        f"{path}: word {word!r} is a {type(word).__name__}, "
                        "not a string (quote it)"
                    )
                    continue
                norm = normalize(word)
                if not norm:
                    problems.append(
                        f"{path}: word {word!r} normalises to the empty string"
                    )
                elif known_lang and known_kind:
                    entries.append((norm, word, kind, lang))
    return problems, entries


def _index(
    mapping: Mapping[str, Mapping[str, Sequence[str]]],
) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """Return (problems, normalised word -> (class, lang)) for ``mapping``.

    A word listed twice in one class keeps its first language in mapping order.
    """
    problems, entries = _entries(mapping)
    words: dict[str, tuple[str, str]] = {}
    for norm, word, kind, lang in entries:
        seen = words.get(norm)
        if seen is None:
            words[norm] = (kind, lang)
        elif seen[0] != kind:
            problems.append(
                f"{lang}.{kind}: word {word!r} (normalised {norm!r}) is already "
                f"in {seen[1]}.{seen[0]}"
            )
    return problems, words


def check_keywords(mapping: Mapping[str, Mapping[str, Sequence[str]]]) -> list[str]:
    """Return every problem in ``mapping`` as a ``lang.class: message`` string.

    A problem with a language key itself is reported as ``lang: message``.
    An empty list means `Keywords.build` accepts the mapping.
    """
    return _index(mapping)[0]


@dataclass(frozen=True, slots=True)
class Keywords:
    """Normalised keyword sets; build with `Keywords.build`.

    ``words`` maps each normalised word to its (class, lang); ``coded`` holds
    the words that take a reply code (those without an ASCII digit). Plain
    dict and frozenset inside, so a `Keywords` pickles.
    """

    words: dict[str, tuple[str, str]]
    coded: frozenset[str]

    @classmethod
    def build(cls, mapping: Mapping[str, Mapping[str, Sequence[str]]]) -> Self:
        """Normalise ``mapping`` (lang -> class -> words) into a `Keywords`.

        Raises KeywordError listing every problem: a word that normalises to
        the empty string, a word in two different classes, a class other than
        confirm/not_me/stop/help, or a language other than en/zh.
        """
        problems, words = _index(mapping)
        if problems:
            raise KeywordError(problems)
        coded = frozenset(w for w in words if _DIGIT.search(w) is None)
        return cls(words=words, coded=coded)

    def as_mapping(self) -> dict[str, dict[str, list[str]]]:
        """lang -> class -> normalised words (for showing the configuration)."""
        out: dict[str, dict[str, list[str]]] = {}
        for word, (kind, lang) in sorted(self.words.items()):
            out.setdefault(lang, {}).setdefault(kind, []).append(word)
        return out


@dataclass(frozen=True, slots=True)
class Classified:
    """A classified reply: class (None for free text), language, code, text."""

    kind: str | None
    lang: str | None
    code: str | None
    normalized: str


def classify(text: str, keywords: Keywords) -> Classified:
    """Classify a reply ``text`` against ``keywords``; never raises.

    Returns the class and language of the matching keyword, the reply code
    when one follows the keyword, or kind/lang/code None for free text.
    """
    norm = normalize(text)
    hit = keywords.words.get(norm)
    if hit is not None:
        return Classified(hit[0], hit[1], None, norm)
    # Try the shortest code first: text = keyword [" "] code, so a shorter
    # code means a longer keyword, and the longest keyword that fits wins.
    for size in range(1, min(_MAX_CODE, len(norm) - 1) + 1):
        code = norm[-size:]
        if _CODE.fullmatch(code) is None:
            continue
        head = norm[:-size]
        if head.endswith(" "):
            head = head[:-1]
        if head in keywords.coded:
            kind, lang = keywords.words[head]
            return Classified(kind, lang, code, norm)
    return Classified(None, None, None, norm)
