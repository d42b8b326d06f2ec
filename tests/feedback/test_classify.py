"""Reply classification: normalisation, default keywords, reply codes, config errors."""

# Full-width and other look-alike characters are the input under test here;
# RUF001 would have them all written as escapes, which hides what is tested.
# ruff: noqa: RUF001

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.feedback.classify import (
    DEFAULT_KEYWORDS,
    Classified,
    KeywordError,
    Keywords,
    check_keywords,
    classify,
    normalize,
)

DEFAULTS = Keywords.build(DEFAULT_KEYWORDS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" Ｎ！", "n"),
        ("「退订」", "退订"),
        ("Yes.", "yes"),
        ("STOP\n", "stop"),
        ("ｔｄ 92。", "td 92"),
        ("", ""),
        ("not me", "not me"),
        ("n.7", "n.7"),
        ("~¥ y ¥~", "y"),
        ("\u200bY\u200b", "y"),
        ("a\t\n\u3000 \u00a0b", "a b"),
        ("!!! ??? ...", ""),
        ("It wasn't me!", "it wasn't me"),
        ("STRASSE ß", "strasse ss"),
        ("❤\ufe0f y ❤\ufe0f", "y"),
        ("! \u0301y", "y"),
        ("\u0301y!", "\u0301y"),
        ("y\u0335!", "y\u0335"),
        ("1\ufe0f\u20e3", "1\ufe0f\u20e3"),
    ],
)
def test_normalize_examples(text: str, expected: str) -> None:
    """normalize applies NFKC, casefold, space collapsing and edge stripping.

    Marks after a stripped character go with it; a mark on a kept character or
    at the very start stays.
    """
    assert normalize(text) == expected


def test_normalize_refolds_after_casefold() -> None:
    """Text whose casefold leaves NFKC ('ǰ' folds to j + caron) is recomposed."""
    assert normalize("\u01f0") == "\u01f0"
    assert normalize(normalize("\u01f0")) == normalize("\u01f0")


def test_default_keywords_are_exactly_the_briefed_words() -> None:
    """DEFAULT_KEYWORDS holds exactly the agreed en and zh words per class."""
    assert {lang: dict(classes) for lang, classes in DEFAULT_KEYWORDS.items()} == {
        "en": {
            "confirm": ("Y", "YES", "1"),
            "not_me": ("N", "NO", "2"),
            "stop": ("STOP", "T", "R", "UNSUBSCRIBE", "END", "CANCEL", "QUIT"),
            "help": ("HELP",),
        },
        "zh": {
            "confirm": ("是", "本人"),
            "not_me": ("否", "非本人", "不是我"),
            "stop": ("退订", "TD"),
            "help": ("帮助",),
        },
    }


_DEFAULT_CASES = [
    (lang, kind, word)
    for lang, classes in DEFAULT_KEYWORDS.items()
    for kind, words in classes.items()
    for word in words
]


@pytest.mark.parametrize(("lang", "kind", "word"), _DEFAULT_CASES)
def test_each_default_keyword_classifies(lang: str, kind: str, word: str) -> None:
    """Every default keyword, as written and lowercased, gets its class and lang."""
    expected = Classified(kind, lang, None, word.casefold())
    assert classify(word, DEFAULTS) == expected
    assert classify(word.lower(), DEFAULTS) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ｙ", Classified("confirm", "en", None, "y")),
        ("ＴＤ", Classified("stop", "zh", None, "td")),
        ("ＮＯ", Classified("not_me", "en", None, "no")),
        ("１", Classified("confirm", "en", None, "1")),
        ("ＨＥＬＰ", Classified("help", "en", None, "help")),
    ],
)
def test_full_width_input(text: str, expected: Classified) -> None:
    """Full-width letters and digits match their ASCII keywords."""
    assert classify(text, DEFAULTS) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  n! ", Classified("not_me", "en", None, "n")),
        ("[STOP]", Classified("stop", "en", None, "stop")),
        ("是。", Classified("confirm", "zh", None, "是")),
        ("帮助？", Classified("help", "zh", None, "帮助")),
        ("「退订」", Classified("stop", "zh", None, "退订")),
        ("Yes.", Classified("confirm", "en", None, "yes")),
        ("STOP\n", Classified("stop", "en", None, "stop")),
        ("\t不是我!!\r\n", Classified("not_me", "zh", None, "不是我")),
    ],
)
def test_punctuation_and_spaces_around(text: str, expected: Classified) -> None:
    """Punctuation and whitespace around a keyword are ignored."""
    assert classify(text, DEFAULTS) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("👍 y", Classified("confirm", "en", None, "y")),
        ("y 👍", Classified("confirm", "en", None, "y")),
        ("🙅‍♀️ 非本人 🙅‍♀️", Classified("not_me", "zh", None, "非本人")),
    ],
)
def test_emoji_around(text: str, expected: Classified) -> None:
    """Emoji (symbols, with joiners and variation selectors) around are ignored."""
    assert classify(text, DEFAULTS) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("N7", Classified("not_me", "en", "7", "n7")),
        ("n 7", Classified("not_me", "en", "7", "n 7")),
        ("n 7a", Classified("not_me", "en", "7a", "n 7a")),
        ("TD92", Classified("stop", "zh", "92", "td92")),
        ("ｔｄ 92。", Classified("stop", "zh", "92", "td 92")),
        ("退订92", Classified("stop", "zh", "92", "退订92")),
        ("ｎ７", Classified("not_me", "en", "7", "n7")),
        ("YES 1ab2c3", Classified("confirm", "en", "1ab2c3", "yes 1ab2c3")),
        ("不是我 08", Classified("not_me", "zh", "08", "不是我 08")),
        ("n77", Classified("not_me", "en", "77", "n77")),
        ("N7A!", Classified("not_me", "en", "7a", "n7a")),
    ],
)
def test_reply_codes(text: str, expected: Classified) -> None:
    """A digit-free keyword then optionally one space then a code yields the code."""
    assert classify(text, DEFAULTS) == expected


@pytest.mark.parametrize(
    "text",
    [
        "17",  # "1" has a digit, so it takes no code
        "21",
        "nope",  # a code must start with a digit
        "n-7",  # only one space may separate keyword and code
        "n  7x!x",
        "n 1234567",  # code longer than 6 characters
        "na7",
        "n 7é",
        "n ٧",  # Arabic-Indic digit: NFKC keeps it, codes use ASCII digits
        "7",
        "td td 9",
    ],
)
def test_not_codes_are_free_text(text: str) -> None:
    """Text that only looks like keyword plus code is free text, kept normalised."""
    assert classify(text, DEFAULTS) == Classified(None, None, None, normalize(text))


def test_spaces_inside_code_text_are_collapsed_first() -> None:
    """Two spaces between keyword and code collapse to one, so the code still reads."""
    assert classify("n  7", DEFAULTS) == Classified("not_me", "en", "7", "n 7")


def test_longest_keyword_wins() -> None:
    """Of two keywords that could start the text, the longer one takes the code."""
    keywords = Keywords.build({"en": {"not_me": ["NOT"], "stop": ["NOT ME"]}})
    assert classify("not me 5", keywords) == Classified("stop", "en", "5", "not me 5")
    assert classify("not 5", keywords) == Classified("not_me", "en", "5", "not 5")


def test_exact_keyword_beats_code_reading() -> None:
    """A whole-text keyword match comes before reading a keyword plus code."""
    keywords = Keywords.build({"en": {"not_me": ["N"], "stop": ["N7"]}})
    assert classify("n7", keywords) == Classified("stop", "en", None, "n7")
    assert classify("n8", keywords) == Classified("not_me", "en", "8", "n8")


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("It wasn't me", "it wasn't me"),
        ("  WHO IS THIS??  ", "who is this"),
        ("这不是我刷的", "这不是我刷的"),
        ("", ""),
        ("👍👍", ""),
    ],
)
def test_free_text_kept_normalised(text: str, normalized: str) -> None:
    """Free text has no class, language or code and keeps its normalised form."""
    assert classify(text, DEFAULTS) == Classified(None, None, None, normalized)


def test_custom_keywords_replace_defaults() -> None:
    """A custom mapping is the whole keyword set: defaults not in it are free text."""
    keywords = Keywords.build({"en": {"not_me": ["FRAUD"]}})
    assert classify("Fraud!", keywords) == Classified("not_me", "en", None, "fraud")
    assert classify("fraud 42", keywords) == Classified(
        "not_me", "en", "42", "fraud 42"
    )
    assert classify("n", keywords) == Classified(None, None, None, "n")
    assert classify("stop", keywords) == Classified(None, None, None, "stop")
    assert keywords.words == {"fraud": ("not_me", "en")}


def test_same_word_in_one_class_twice_is_fine() -> None:
    """One word twice in a class, even in two languages, keeps the first language."""
    keywords = Keywords.build(
        {"zh": {"stop": ["TD", "td"]}, "en": {"stop": ["ＴＤ", "STOP"]}}
    )
    assert keywords.words == {"td": ("stop", "zh"), "stop": ("stop", "en")}
    assert classify("TD", keywords) == Classified("stop", "zh", None, "td")


def test_keywords_pickle_round_trip() -> None:
    """A built Keywords pickles and unpickles to an equal value."""
    assert pickle.loads(pickle.dumps(DEFAULTS)) == DEFAULTS


def test_digit_keywords_take_no_codes() -> None:
    """Only keywords without a digit are in the code-taking set."""
    assert "1" not in DEFAULTS.coded
    assert "2" not in DEFAULTS.coded
    assert DEFAULTS.coded == frozenset(DEFAULTS.words) - {"1", "2"}


@pytest.mark.parametrize(
    ("mapping", "problems"),
    [
        (
            {"en": {"confirm": ["N"], "not_me": ["n"]}},
            ["en.not_me: word 'n' (normalised 'n') is already in en.confirm"],
        ),
        (
            {"en": {"not_me": ["N"]}, "zh": {"stop": ["Ｎ"]}},
            ["zh.stop: word 'Ｎ' (normalised 'n') is already in en.not_me"],
        ),
        (
            {"en": {"stop": ["STOP", " !! "]}},
            ["en.stop: word ' !! ' normalises to the empty string"],
        ),
        (
            {"en": {"maybe": ["M"]}},
            [
                "en.maybe: unknown class 'maybe'; expected one of "
                "confirm, not_me, stop, help"
            ],
        ),
        (
            {"fr": {"stop": ["ARRET"]}},
            ["fr: unknown language 'fr'; expected one of en, zh"],
        ),
        (
            {"en": {"stop": "STOP"}},
            ["en.stop: expected a list of words, got str"],
        ),
        (
            {"en": {"confirm": [1, "Y"]}},
            ["en.confirm: word 1 is a int, not a string (quote it)"],
        ),
        (
            {"en": ["STOP"]},
            ["en: expected a mapping of class to words, got list"],
        ),
    ],
)
def test_check_keywords_reports_each_problem(
    mapping: dict[str, dict[str, list[str]]], problems: list[str]
) -> None:
    """check_keywords names the key path and word of each problem."""
    assert check_keywords(mapping) == problems


def test_check_keywords_reports_all_problems_at_once() -> None:
    """Every problem in a mapping is reported, not only the first."""
    mapping = {
        "en": {"confirm": ["Y", ""], "not_me": ["y"], "later": ["L"]},
        "de": {"stop": ["..."]},
    }
    assert check_keywords(mapping) == [
        "en.confirm: word '' normalises to the empty string",
        "en.later: unknown class 'later'; expected one of confirm, not_me, stop, help",
        "de: unknown language 'de'; expected one of en, zh",
        "de.stop: word '...' normalises to the empty string",
        "en.not_me: word 'y' (normalised 'y') is already in en.confirm",
    ]


def test_check_keywords_accepts_defaults() -> None:
    """The default keyword sets have no problems."""
    assert check_keywords(DEFAULT_KEYWORDS) == []


@pytest.mark.parametrize(
    ("mapping", "needle"),
    [
        ({"en": {"confirm": ["OK"], "stop": ["ok"]}}, "'ok'"),
        ({"en": {"stop": ["。"]}}, "'。'"),
        ({"en": {"yes": ["Y"]}}, "'yes'"),
        ({"ja": {"stop": ["Y"]}}, "'ja'"),
    ],
)
def test_build_raises_keyword_error(
    mapping: dict[str, dict[str, list[str]]], needle: str
) -> None:
    """Keywords.build raises KeywordError (a ValueError) naming the bad word or key."""
    with pytest.raises(KeywordError) as info:
        Keywords.build(mapping)
    assert isinstance(info.value, ValueError)
    assert info.value.problems == check_keywords(mapping)
    assert needle in str(info.value)


# Include lone surrogates: a broken UCS-2 reply can decode to one.
_ANY_TEXT = st.text(st.characters(exclude_categories=()))
_REPLY_TEXT = st.text(
    st.sampled_from(list("ynNtdTD 0123456789a!。？ＴＮ７退订不是我\t👍\u200b\u01f0"))
)


@settings(max_examples=500)
@given(st.one_of(_ANY_TEXT, _REPLY_TEXT))
def test_classify_never_raises_and_normalize_is_idempotent(text: str) -> None:
    """classify accepts any text, and its normalized form is a normalize fixed point."""
    result = classify(text, DEFAULTS)
    assert result.normalized == normalize(text)
    assert normalize(result.normalized) == result.normalized
    assert classify(result.normalized, DEFAULTS) == result
    if result.kind is None:
        assert (result.lang, result.code) == (None, None)
    else:
        assert result.lang in ("en", "zh")
