"""Alert rendering: built-in texts, merchant templates, and fitting into one part."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.alerts.money import format_amount
from smsgw.alerts.render import AlertFacts, Rendered, render
from smsgw.alerts.templates import (
    BUILTIN,
    KINDS,
    RESULTS,
    VARIABLES,
    TemplateError,
    check_template,
    compile_template,
)
from smsgw.codec.text import measure

CST = timezone(timedelta(hours=8))
WHEN = datetime(2026, 11, 29, 20, 0, 5, tzinfo=CST)
ZH_REPLY = "非本人交易请回复N\uff0c回TD退订。"
EN_REPLY = "Not you? Reply N. Reply STOP to opt out."


def facts(**changes: Any) -> AlertFacts:
    """Return the spec's test-vector transaction as alert facts, with changes."""
    base = AlertFacts(
        audience="cardholder",
        kind="purchase",
        result="approved",
        amount="128.50",
        currency="CNY",
        exponent=2,
        last4="7894",
        merchant="星巴克(南京西路店)",
        location=None,
        local_time=WHEN,
        balance=None,
        terminal_id="T1001",
        signature="XX银行",
    )
    return dataclasses.replace(base, **changes)


def en(**changes: Any) -> AlertFacts:
    """Return English-language facts: an English signature and merchant name."""
    return facts(**{"signature": "XX Bank", "merchant": "STARBUCKS", **changes})


# --- built-in texts ----------------------------------------------------------


def test_zh_purchase_matches_the_real_alert_shape() -> None:
    """The zh purchase alert has the captured shape and fits one UCS-2 part."""
    text = (
        "【XX银行】您尾号7894的卡11月29日20:00在星巴克(南京西路店)消费人民币128.50元。"
        + ZH_REPLY
    )
    assert render(facts(), "zh") == Rendered(text, "ucs2", 66, 1, False)


def test_en_purchase_matches_the_real_alert_shape() -> None:
    """The en purchase alert has the captured shape and fits one GSM-7 part."""
    text = (
        "XX Bank: Card *7894 used for CNY 128.50 at STARBUCKS SHANGHAI on 29Nov 20:00. "
        + EN_REPLY
    )
    got = render(en(merchant="STARBUCKS SHANGHAI"), "en")
    assert got == Rendered(text, "gsm7", 118, 1, False)


ZH_AT = "【XX银行】您尾号7894的卡11月29日20:00在星巴克"
EN_AT = "XX Bank: Card *7894 "


@pytest.mark.parametrize(
    ("kind", "result", "expected"),
    [
        ("purchase", "declined", ZH_AT + "消费人民币128.50元\uff0c交易失败。"),
        ("refund", "approved", ZH_AT + "退款人民币128.50元。"),
        ("refund", "declined", ZH_AT + "退款人民币128.50元\uff0c交易失败。"),
        ("reversal", "approved", ZH_AT + "消费撤销人民币128.50元。"),
        ("reversal", "declined", ZH_AT + "消费撤销人民币128.50元\uff0c交易失败。"),
        ("preauth", "approved", ZH_AT + "预授权人民币128.50元。"),
        ("preauth", "declined", ZH_AT + "预授权人民币128.50元\uff0c交易失败。"),
        ("withdrawal", "approved", ZH_AT + "取现人民币128.50元。"),
        ("withdrawal", "declined", ZH_AT + "取现人民币128.50元\uff0c交易失败。"),
    ],
)
def test_zh_kinds_and_results(kind: str, result: str, expected: str) -> None:
    """Each zh kind has its own wording and a decline says 交易失败."""
    got = render(facts(kind=kind, result=result, merchant="星巴克"), "zh")
    assert got.text == expected + ZH_REPLY
    assert (got.encoding, got.parts, got.shortened) == ("ucs2", 1, False)


@pytest.mark.parametrize(
    ("kind", "result", "middle"),
    [
        (
            "purchase",
            "declined",
            "purchase of CNY 128.50 at STARBUCKS on 29Nov 20:00 declined.",
        ),
        ("refund", "approved", "refund of CNY 128.50 at STARBUCKS on 29Nov 20:00."),
        (
            "refund",
            "declined",
            "refund of CNY 128.50 at STARBUCKS on 29Nov 20:00 declined.",
        ),
        ("reversal", "approved", "reversal of CNY 128.50 at STARBUCKS on 29Nov 20:00."),
        (
            "reversal",
            "declined",
            "reversal of CNY 128.50 at STARBUCKS on 29Nov 20:00 declined.",
        ),
        (
            "preauth",
            "declined",
            "pre-authorization of CNY 128.50 at STARBUCKS on 29Nov 20:00 declined.",
        ),
        (
            "preauth",
            "approved",
            "pre-authorization of CNY 128.50 at STARBUCKS on 29Nov 20:00.",
        ),
        (
            "withdrawal",
            "approved",
            "cash withdrawal of CNY 128.50 at STARBUCKS on 29Nov 20:00.",
        ),
        (
            "withdrawal",
            "declined",
            "cash withdrawal of CNY 128.50 at STARBUCKS on 29Nov 20:00 declined.",
        ),
    ],
)
def test_en_kinds_and_results(kind: str, result: str, middle: str) -> None:
    """Each en kind has its own wording and a decline says declined."""
    got = render(en(kind=kind, result=result), "en")
    assert got.text == f"{EN_AT}{middle} {EN_REPLY}"
    assert (got.encoding, got.parts, got.shortened) == ("gsm7", 1, False)


def test_balance_and_location_are_appended() -> None:
    """The balance follows the amount and the location follows the merchant name."""
    zh = render(facts(merchant="星巴克", location="上海"), "zh")
    assert zh.text == (
        "【XX银行】您尾号7894的卡11月29日20:00在星巴克(上海)消费人民币128.50元。"
        + ZH_REPLY
    )
    assert (zh.units, zh.parts, zh.shortened) == (63, 1, False)
    zh = render(facts(merchant="", balance="-12"), "zh")
    assert zh.text == (
        "【XX银行】您尾号7894的卡11月29日20:00消费人民币128.50元。"
        "余额人民币-12.00元。" + ZH_REPLY
    )
    got = render(en(location="SHANGHAI", balance="1234.5"), "en")
    assert got.text == (
        "XX Bank: Card *7894 used for CNY 128.50 at STARBUCKS, SHANGHAI on 29Nov "
        "20:00. Bal CNY 1,234.50. " + EN_REPLY
    )
    assert (got.encoding, got.parts, got.shortened) == ("gsm7", 1, False)


def test_zh_balance_leaves_no_room_for_the_merchant() -> None:
    """With a balance the zh fixed words take all 70 units, so the merchant goes."""
    got = render(facts(merchant="星巴克", balance="1000"), "zh")
    assert got.text == (
        "【XX银行】您尾号7894的卡11月29日20:00消费人民币128.50元。"
        "余额人民币1,000.00元。" + ZH_REPLY
    )
    assert (got.units, got.parts, got.shortened) == (70, 1, True)


def test_text_reads_well_without_a_merchant() -> None:
    """With no merchant name the clause goes, or names the location alone."""
    assert "卡11月29日20:00消费人民币" in render(facts(merchant=""), "zh").text
    assert (
        "卡11月29日20:00在上海消费"
        in render(facts(merchant="", location="上海"), "zh").text
    )
    assert "used for CNY 128.50 on 29Nov" in render(en(merchant=""), "en").text
    got = render(en(merchant="", location="SHANGHAI"), "en")
    assert "used for CNY 128.50 at SHANGHAI on 29Nov" in got.text


def test_dates_have_no_year_and_show_the_local_wall_time() -> None:
    """Dates are MM月DD日 / DDMon with zero padding, in the time's own zone."""
    when = datetime(2027, 1, 5, 7, 3, tzinfo=timezone(timedelta(hours=-5)))
    assert "卡01月05日07:03在" in render(facts(local_time=when), "zh").text
    assert " on 05Jan 07:03." in render(en(local_time=when), "en").text
    utc = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert " on 31Dec 23:59." in render(en(local_time=utc), "en").text


def test_merchant_notices() -> None:
    """Merchant notices give amount, card, terminal and time; no replies or balance."""
    zh = render(facts(audience="merchant", balance="5000", location="上海"), "zh")
    assert zh == Rendered(
        "【XX银行】终端T1001于11月29日20:00受理尾号7894的卡消费人民币128.50元\uff0c交易成功。",
        "ucs2",
        53,
        1,
        False,
    )
    declined = render(
        facts(audience="merchant", kind="refund", result="declined"), "zh"
    )
    assert declined.text == (
        "【XX银行】终端T1001于11月29日20:00受理尾号7894的卡退款人民币128.50元\uff0c交易失败。"
    )
    got = render(en(audience="merchant", balance="5000"), "en")
    assert got.text == (
        "XX Bank: Purchase of CNY 128.50 approved, card **7894, "
        "terminal T1001, 29Nov 20:00."
    )
    # "**" keeps the English notice in GSM-7: one part, nothing to shorten.
    assert (got.encoding, got.units, got.parts, got.shortened) == ("gsm7", 83, 1, False)
    for text in (zh.text, got.text):
        assert "Reply" not in text
        assert "回复" not in text
        assert "5,000" not in text


def test_every_builtin_template_renders_in_one_part_for_the_test_vector() -> None:
    """Every cardholder built-in renders the test vector in one part."""
    for audience, kind, result, lang in BUILTIN:
        if audience != "cardholder":
            continue
        f = (
            facts(kind=kind, result=result)
            if lang == "zh"
            else en(kind=kind, result=result)
        )
        got = render(f, lang)
        assert got.parts == 1
        assert "128.50" in got.text
        assert "7894" in got.text


def test_unsupported_language_falls_back_to_the_default() -> None:
    """A language other than zh/en uses default_lang; a bad default is an error."""
    assert render(facts(), "fr").text == render(facts(), "zh").text
    assert render(en(), "fr", default_lang="en").text == render(en(), "en").text
    with pytest.raises(ValueError, match=r"^default_lang: must be one of"):
        render(facts(), "fr", default_lang="fr")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"audience": "issuer"}, r"^audience: must be one of .*'issuer'"),
        ({"kind": "chargeback"}, r"^kind: must be one of .*'chargeback'"),
        ({"result": "ok"}, r"^result: must be one of .*'ok'"),
        (
            {"local_time": datetime(2026, 11, 29, 20, 0)},  # noqa: DTZ001 (the bad input)
            r"^local_time: must be timezone-aware",
        ),
        ({"amount": "12x"}, r"^amount: not a decimal string"),
        ({"balance": "1.234"}, r"^amount: '1.234' has more than 2"),
        ({"currency": "cny"}, r"^currency: must be 3 uppercase"),
    ],
)
def test_bad_facts_raise_naming_the_field(
    changes: dict[str, Any], message: str
) -> None:
    """Facts that cannot be rendered raise ValueError naming the field."""
    with pytest.raises(ValueError, match=message):
        render(facts(**changes), "zh")


def test_a_full_card_number_is_refused_and_never_echoed() -> None:
    """A last4 over 4 characters (a PAN by mistake) is refused without echoing it."""
    with pytest.raises(
        ValueError, match=r"^last4: must be at most 4 characters$"
    ) as info:
        render(facts(last4="6222021234567894"), "zh")
    assert "6222" not in str(info.value)


def test_output_never_shows_more_than_the_last_four_card_digits() -> None:
    """Facts carry only last4, and no alert text has a run of five or more digits."""
    assert not {"pan", "masked_pan", "card_hash"} & {
        f.name for f in dataclasses.fields(AlertFacts)
    }
    for audience, kind, result, lang in BUILTIN:
        f = facts(audience=audience, kind=kind, result=result, balance="12.5")
        text = render(
            f if lang == "zh" else dataclasses.replace(f, signature="B"), lang
        ).text
        assert "7894" in text
        assert re.search(r"[0-9]{5,}", text) is None


# --- fitting into one part -------------------------------------------------------


def test_long_chinese_merchant_is_cut_to_exactly_70_units() -> None:
    """A long Chinese merchant name is cut with … to make exactly 70 UCS-2 units."""
    name = "上海市静安区南京西路星巴克咖啡有限公司第一百二十三分店旗舰店"
    got = render(facts(merchant=name), "zh")
    assert (got.encoding, got.units, got.parts, got.shortened) == ("ucs2", 70, 1, True)
    assert got.text == (
        "【XX银行】您尾号7894的卡11月29日20:00在上海市静安区南京西路星巴克…"
        "消费人民币128.50元。" + ZH_REPLY
    )
    assert "人民币128.50元" in got.text
    assert "尾号7894" in got.text


def test_long_english_merchant_is_cut_to_fit_160() -> None:
    """A long English merchant name is cut with ... (no … in GSM-7) to 160 septets."""
    name = (
        "THE GRAND SHANGHAI INTERNATIONAL DEPARTMENT STORE AND SUPERMARKET "
        "NANJING ROAD WEST"
    )
    got = render(en(merchant=name), "en")
    assert got.text == (
        "XX Bank: Card *7894 used for CNY 128.50 at THE GRAND SHANGHAI INTERNATIONAL "
        "DEPARTMENT STORE AND SUP... on 29Nov 20:00. " + EN_REPLY
    )
    assert (got.encoding, got.units, got.parts, got.shortened) == ("gsm7", 160, 1, True)


def test_gsm7_escapes_count_two_septets_when_cutting() -> None:
    """A name of two-septet characters (€) is cut by septets, leaving no half escape."""
    got = render(en(merchant="\u20ac" * 100), "en")
    # 60 septets are free for the name: 28 euro signs (56) and "...", one spare.
    assert " at " + "\u20ac" * 28 + "... on 29Nov" in got.text
    assert (got.encoding, got.units, got.parts, got.shortened) == ("gsm7", 159, 1, True)


def test_location_is_dropped_only_after_the_merchant_name() -> None:
    """The merchant name is cut first; the location goes only if that is not enough."""
    got = render(facts(merchant="星巴克咖啡南京西路店", location="上海市静安区"), "zh")
    assert got.text == (
        "【XX银行】您尾号7894的卡11月29日20:00在星巴克咖啡…(上海市静安区)"
        "消费人民币128.50元。" + ZH_REPLY
    )
    assert (got.units, got.shortened) == (70, True)
    long_location = "上海市静安区南京西路一千二百六十六号恒隆广场"
    got = render(facts(merchant="星巴克", location=long_location), "zh")
    assert got.text == (
        "【XX银行】您尾号7894的卡11月29日20:00在星巴克消费人民币128.50元。" + ZH_REPLY
    )
    assert got.shortened


def test_text_that_cannot_fit_stays_multipart_with_its_merchant() -> None:
    """When even removing the merchant and location is not enough for one
    part, the alert goes out in several as written: the merchant and location
    stay, unless leaving them out saves a part."""
    got = render(
        en(signature="X" * 80, merchant="STARBUCKS", location="SHANGHAI"), "en"
    )
    assert got.text == (
        "X" * 80
        + ": Card *7894 used for CNY 128.50 at STARBUCKS, SHANGHAI on 29Nov 20:00. "
        + EN_REPLY
    )
    assert (got.encoding, got.parts, got.shortened) == ("gsm7", 2, False)
    # 3 parts with the merchant, 2 without: the part is saved.
    got = render(en(signature="X" * 200, merchant="M" * 60, location="SHANGHAI"), "en")
    assert got.text == (
        "X" * 200 + ": Card *7894 used for CNY 128.50 on 29Nov 20:00. " + EN_REPLY
    )
    assert (got.encoding, got.parts, got.shortened) == ("gsm7", 2, True)


def test_text_without_variable_fields_is_not_marked_shortened() -> None:
    """A long text with no merchant or location to cut is returned unchanged."""
    got = render(en(signature="X" * 80, merchant=""), "en")
    assert (got.parts, got.shortened) == (2, False)


def test_emoji_in_english_merchant_is_cut_before_it_to_stay_gsm7() -> None:
    """An emoji forces UCS-2, which no English alert fits: the name is cut before it."""
    got = render(en(merchant="JOE'S COFFEE \u2615 & BAKERY"), "en")
    assert got.text == (
        "XX Bank: Card *7894 used for CNY 128.50 at JOE'S COFFEE... on 29Nov 20:00. "
        + EN_REPLY
    )
    assert (got.encoding, got.parts, got.shortened) == ("gsm7", 1, True)
    got = render(en(merchant="\U0001f600 SMILE SHOP"), "en")
    assert "used for CNY 128.50 on 29Nov" in got.text
    assert got.encoding == "gsm7"


SHORT = "{{ signature }}: *{{ last4 }} {{ amount }} {{ merchant }}"


def test_emoji_in_merchant_forces_ucs2_and_shortening_to_70() -> None:
    """With a short template an emoji keeps the text UCS-2, cut to exactly 70 units."""
    name = "\U0001f600" + "SMILE SHOP AND CAFE " * 5
    got = render(en(merchant=name), "en", SHORT)
    assert got.text == (
        "XX Bank: *7894 CNY 128.50 \U0001f600"
        "SMILE SHOP AND CAFE SMILE SHOP AND CAFE S\u2026"
    )
    assert (got.encoding, got.units, got.parts, got.shortened) == ("ucs2", 70, 1, True)


def test_latin1_when_allowed_keeps_more_of_the_name() -> None:
    """A Latin-1 name stays whole when Latin-1 is allowed, else is cut for GSM-7."""
    name = "BOULANGERIE FA\u00e7ADE"  # 'ç' is Latin-1 but not GSM-7
    got = render(en(merchant=name), "en", allow_latin1=True)
    assert (got.encoding, got.parts, got.shortened) == ("latin1", 1, False)
    assert name in got.text
    got = render(en(merchant=name), "en")
    assert " at BOULANGERIE FA... on " in got.text
    assert (got.encoding, got.shortened) == ("gsm7", True)


def test_lone_surrogates_in_names_become_replacement_characters() -> None:
    """A lone surrogate (no UCS-2 form) in a name is shown as U+FFFD, not an error."""
    got = render(facts(merchant="星\ud800" * 40, location="\udfff"), "zh")
    assert "\ud800" not in got.text
    assert "\udfff" not in got.text
    assert "在星\ufffd" in got.text
    assert (got.units, got.parts) == (70, 1)


# --- merchant templates --------------------------------------------------------


def test_merchant_template_renders_with_all_variables() -> None:
    """A merchant template sees every variable as a formatted string."""
    source = (
        "{{ signature }}|{{ last4 }}|{{ amount }}|{{ merchant }}|{{ location }}|"
        "{{ date }}|{{ time }}|{{ balance }}|{{ terminal_id }}|{{ kind }}|{{ result }}"
        "{% if balance %} has balance{% endif %}"
    )
    check_template(source)
    got = render(en(location="SH", balance="9"), "en", source)
    assert got.text == (
        "XX Bank|7894|CNY 128.50|STARBUCKS|SH|29Nov|20:00|CNY 9.00|T1001|purchase|"
        "approved has balance"
    )
    got = render(facts(merchant="", balance=None), "zh", source)
    assert (
        got.text
        == "XX银行|7894|人民币128.50元|||11月29日|20:00||T1001|purchase|approved"
    )


def test_merchant_template_with_filters_and_conditions() -> None:
    """Allowed filters and conditionals work inside the sandbox."""
    source = (
        "{{ signature|upper }}: {{ amount }} *{{ last4 }}"
        "{% if result == 'declined' %} DECLINED{% else %} ok{% endif %}"
        " {{ merchant|lower|truncate(3, true, '', 0) }}"
    )
    got = render(en(result="declined"), "en", source)
    assert got.text == "XX BANK: CNY 128.50 *7894 DECLINED sta"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "{{ ''.__class__ }} {{ amount }} {{ last4 }}",
            r"^not allowed in a template: attribute access '\.__class__' \(line 1\)$",
        ),
        ("{{ amount.__class__.__mro__ }} {{ last4 }}", r"attribute access"),
        ("{{ amount['x'] }} {{ amount }} {{ last4 }}", r"item access"),
        ("{{ amount.upper() }} {{ amount }} {{ last4 }}", r"function calls"),
        ("{{ range(10) }} {{ amount }} {{ last4 }}", r"function calls"),
        ("{% for c in amount %}{{ c }}{% endfor %}{{ amount }}{{ last4 }}", "loops"),
        ("{% set x = 1 %}{{ amount }}{{ last4 }}", r"assignments"),
        ("{% include 'x' %}{{ amount }}{{ last4 }}", r"include"),
        (
            "{{ 'x' * 1000000000 }}{{ amount }}{{ last4 }}",
            r"operator '\*'",
        ),
        ("{{ amount|attr('__class__') }}{{ amount }}{{ last4 }}", r"filter 'attr'"),
        (
            "{{ pan }} {{ amount }} {{ last4 }}",
            r"unknown variable 'pan' \(line 1\); known:",
        ),
        ("{{ merchant }} {{ last4 }}", r"^template must contain \{\{ amount \}\}$"),
        ("{{ amount }} {{ merchant }}", r"^template must contain \{\{ last4 \}\}$"),
        ("{{ amount }} {{ last4 }", r"^template syntax error \(line 1\)"),
        ("{{ amount }}{{ last4 }}" + "x" * 1000, r"at most 1000 allowed"),
    ],
)
def test_check_template_refuses(source: str, message: str) -> None:
    """Unsafe constructs, unknown variables or no amount/last4 raise TemplateError."""
    with pytest.raises(TemplateError, match=message):
        check_template(source)


def test_rendering_an_unsafe_template_raises_template_error() -> None:
    """render refuses a template that check_template refuses, every time it is asked."""
    for _ in range(2):
        with pytest.raises(TemplateError, match=r"attribute access '\.__class__'"):
            render(facts(), "zh", "{{ ''.__class__ }} {{ amount }} {{ last4 }}")


def test_template_failing_at_render_time_raises_template_error() -> None:
    """A template failing at render time or hiding the amount raises TemplateError."""
    with pytest.raises(TemplateError, match=r"^template failed to render: TypeError"):
        render(facts(), "zh", "{% if amount > 5 %}{{ amount }}{% endif %}{{ last4 }}")
    hidden = "{% if merchant %}{{ amount }}{% endif %}{{ last4 }}"
    check_template(hidden)
    with pytest.raises(TemplateError, match=r"lacks the amount or the last4"):
        render(facts(merchant=""), "zh", hidden)


def test_templates_are_compiled_once_per_source() -> None:
    """The same source string gives the same compiled template object."""
    source = "{{ amount }} {{ last4 }} cached"
    assert compile_template(source) is compile_template(source)


def test_merchant_template_printing_the_name_twice_is_cut_to_fit() -> None:
    """A template that prints the merchant twice is still cut to one part."""
    source = "{{ signature }}: {{ merchant }} *{{ last4 }} {{ amount }} {{ merchant }}"
    got = render(en(merchant="STARBUCKS COFFEE " * 10), "en", source)
    assert (got.encoding, got.parts, got.shortened) == ("gsm7", 1, True)
    assert got.text.startswith("XX Bank: STARBUCKS COFFEE")
    assert "*7894 CNY 128.50" in got.text
    assert got.text.count("...") == 2


def test_variables_constant_lists_what_templates_receive() -> None:
    """VARIABLES names exactly the fields a merchant template is given."""
    assert (
        frozenset(
            {"signature", "last4", "amount", "merchant", "location", "date", "time"}
            | {"balance", "terminal_id", "kind", "result", "reply_code"}
        )
        == VARIABLES
    )


# --- properties ------------------------------------------------------------------

amounts = st.builds(
    lambda whole, frac: f"{whole}.{frac}" if frac else str(whole),
    st.integers(min_value=1, max_value=10**12 - 1),
    st.text("0123456789", max_size=2),
)


# Any text, with extra weight on emoji, GSM-7 escapes and Latin-1-only letters.
names = st.text(
    st.characters()
    | st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
    | st.sampled_from("\u20ac[]^{}~|\\\u00e7\u2026 .中A"),
    max_size=100,
)


@settings(max_examples=300, deadline=None)
@given(
    merchant=names,
    location=st.none() | names,
    amount=amounts,
    balance=st.none() | amounts,
    lang=st.sampled_from(["zh", "en"]),
    kind=st.sampled_from(KINDS),
    result=st.sampled_from(RESULTS),
    latin1=st.booleans(),
)
def test_render_never_raises_and_keeps_amount_and_last4(
    merchant: str,
    location: str | None,
    amount: str,
    balance: str | None,
    lang: str,
    kind: str,
    result: str,
    latin1: bool,
) -> None:
    """For any merchant name and amount the alert renders with its amount and last4,
    and fits one part whenever the fixed words alone do."""
    f = facts(
        merchant=merchant,
        location=location,
        amount=amount,
        balance=balance,
        kind=kind,
        result=result,
        signature="XX银行" if lang == "zh" else "XX Bank",
    )
    got = render(f, lang, allow_latin1=latin1)
    bare = render(
        dataclasses.replace(f, merchant="", location=None), lang, allow_latin1=latin1
    )
    m = measure(got.text, latin1)
    assert (got.encoding, got.units, got.parts) == (m.encoding, m.units, m.parts)
    assert format_amount(amount, "CNY", 2, lang) in got.text
    if balance is not None:
        assert format_amount(balance, "CNY", 2, lang) in got.text
    assert "7894" in got.text
    if bare.parts == 1:
        assert got.parts == 1
