"""Which alerts a transaction gets: numbers, preferences, quiet hours, language."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from smsgw.alerts.plan import Merchant, Subscriber, e164, plan_alerts, quiet_until
from smsgw.intake.validate import Txn, validate_txn
from smsgw.service.config_alerts import IssuerConfig
from smsgw.store.keys import CardHasher

SHANGHAI = "Asia/Shanghai"
# 2026-11-29 23:30 in Shanghai (UTC+8) = 15:30 UTC
LATE = dt.datetime(2026, 11, 29, 15, 30, tzinfo=dt.UTC).timestamp()
NOON = dt.datetime(2026, 11, 29, 4, 0, tzinfo=dt.UTC).timestamp()
ISSUER = IssuerConfig(
    signature={"zh": "示例银行", "en": "Demo Bank"},
    timezone=SHANGHAI,
    large_amounts={"CNY": Decimal("5000")},
)


def Hasher() -> CardHasher:
    return CardHasher("k1", b"k")


def txn(**fields: Any) -> Txn:
    body: dict[str, Any] = {
        "type": "txn",
        "txn_id": "1",
        "ts": 1,
        "kind": "purchase",
        "amount": "128.50",
        "currency": "CNY",
        "pan": "6222021234567894",
        "merchant_id": "M001",
        "merchant_name": "Starbucks",
        "time": "2026-11-29T23:30:00+08:00",
    }
    for k, v in fields.items():
        if v is None:
            body.pop(k, None)
        else:
            body[k] = v
    return validate_txn(body, Hasher())


def plan(
    t: Txn,
    sub: Subscriber | None = None,
    merchant: Merchant | None = None,
    now: float = NOON,
    may_supply: bool = True,
    issuer: IssuerConfig = ISSUER,
) -> list[Any]:
    return plan_alerts(
        t,
        terminal_id="T1",
        may_supply_msisdn=may_supply,
        issuer=issuer,
        subscriber=sub,
        merchant=merchant,
        now=now,
    )


QUIET = Subscriber(
    "default",
    "+8613900000001",
    quiet_start=dt.time(22),
    quiet_end=dt.time(7),
    timezone=SHANGHAI,
)


def test_quiet_until_crosses_midnight() -> None:
    """22:00-07:00: at 23:30 the end is 07:00 next day; at 06:00 it is 07:00 today."""
    end = dt.datetime(2026, 11, 30, 7, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert quiet_until(LATE, dt.time(22), dt.time(7), SHANGHAI) == end.timestamp()
    six = dt.datetime(2026, 11, 29, 22, 0, tzinfo=dt.UTC).timestamp()  # 06:00 +8
    assert quiet_until(six, dt.time(22), dt.time(7), SHANGHAI) == end.timestamp()
    assert quiet_until(NOON, dt.time(22), dt.time(7), SHANGHAI) is None
    assert quiet_until(NOON, dt.time(7), dt.time(7), SHANGHAI) is None


def test_low_priority_alert_waits_for_the_end_of_quiet_hours() -> None:
    """A small approved purchase at 23:30 is held until 07:00."""
    [alert] = plan(txn(), QUIET, now=LATE)
    assert alert.not_before == quiet_until(LATE, dt.time(22), dt.time(7), SHANGHAI)
    assert alert.priority == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"result": "declined"},
        {"kind": "reversal", "orig_txn_id": "0"},
        {"amount": "5000.00"},
    ],
    ids=["declined", "reversal", "large amount"],
)
def test_urgent_alerts_ignore_quiet_hours(fields: dict[str, Any]) -> None:
    """Declines, reversals and large amounts go at once, marked urgent."""
    [alert] = plan(txn(**fields), QUIET, now=LATE)
    assert (alert.not_before, alert.priority) == (LATE, 1)


def test_preferences_minimum_amount_and_kinds() -> None:
    """Below the minimum or an unwanted kind: nothing; declines still alerted."""
    sub = Subscriber(
        "default",
        "+8613900000001",
        min_amount=Decimal("200"),
        kinds=frozenset({"purchase"}),
    )
    assert plan(txn(), sub) == []
    assert plan(txn(amount="200.00", kind="withdrawal"), sub) == []
    assert len(plan(txn(amount="300.00"), sub)) == 1
    assert len(plan(txn(result="declined"), sub)) == 1


def test_opt_out_beats_a_number_in_the_request() -> None:
    """An opted-out subscriber gets nothing even when the terminal sends a number."""
    sub = Subscriber("default", "+8613900000001", opted_out=True)
    assert plan(txn(msisdn="+8613800138000"), sub) == []


def test_number_from_the_request_or_the_registry() -> None:
    """The request's number wins when the terminal may supply one, else the registry."""
    sub = Subscriber("default", "+8613900000001")
    assert plan(txn(msisdn="+8613800138000"), sub)[0].destination == "+8613800138000"
    assert plan(txn(msisdn="+8613800138000"), sub, may_supply=False)[0].destination == (
        "+8613900000001"
    )
    assert plan(txn(msisdn="+8613800138000"), None, may_supply=False) == []


def test_language_request_then_subscriber_then_default() -> None:
    """lang: the request's when supported, else the subscriber's, else the issuer's."""
    sub = Subscriber("default", "+8613900000001", lang="en")
    assert plan(txn(lang="en"), None, may_supply=True) == []  # no number at all
    assert plan(txn(lang="zh"), sub)[0].lang == "zh"
    assert plan(txn(lang="fr"), sub)[0].lang == "en"
    assert plan(txn(lang="fr"), Subscriber("default", "+8613900000001"))[0].lang == "zh"
    assert plan(txn(lang="en-GB"), sub)[0].lang == "en"


def test_merchant_notice_and_template() -> None:
    """A merchant with numbers gets a notice; its template shapes the cardholder's."""
    merchant = Merchant(
        "default",
        "M001",
        "Starbucks",
        notify=("+8613700000002",),
        lang="en",
        templates={"zh": "{{ signature }}: 尾号{{ last4 }} {{ amount }}"},
    )
    holder, notice = plan(txn(msisdn="+8613800138000"), None, merchant)
    assert holder.text == "示例银行: 尾号7894 人民币128.50元"
    assert (notice.audience, notice.destination, notice.lang) == (
        "merchant",
        "+8613700000002",
        "en",
    )
    assert "**7894" in notice.text


def test_a_failing_merchant_template_falls_back_to_the_builtin() -> None:
    """A template that fails at render time costs nothing: the built-in is used."""
    merchant = Merchant(
        "default",
        "M001",
        "Starbucks",
        templates={"zh": "{{ amount }}{{ last4 }}{{ nothere }}"},
    )
    [holder] = plan(txn(msisdn="+8613800138000"), None, merchant)
    assert holder.text.startswith("【示例银行】")
    assert "7894" in holder.text


def test_declines_can_be_switched_off_per_issuer() -> None:
    """alert_declined: false sends no cardholder alert for a decline."""
    quiet = IssuerConfig(alert_declined=False)
    assert plan(txn(result="declined", msisdn="+8613800138000"), issuer=quiet) == []


def test_e164_normalises_and_refuses() -> None:
    """Registry numbers are normalised; impossible ones give None."""
    assert e164("+86 138 0013 8000") == "+8613800138000"
    assert e164("+8613800138000") == "+8613800138000"
    assert e164("+861") is None
    assert e164("not a number") is None


def test_issuer_template_applies_unless_the_merchant_has_one() -> None:
    """An issuer profile's template shapes its alerts; a merchant's wins."""
    issuer = IssuerConfig(
        signature={"zh": "示例银行", "en": "Demo Bank"},
        templates={"en": "{{ signature }} card {{ last4 }}: {{ amount }}"},
    )
    [alert] = plan(txn(msisdn="+8613800138000", lang="en"), issuer=issuer)
    assert alert.text == "Demo Bank card 7894: CNY 128.50"
    merchant = Merchant(
        "default",
        "M001",
        "Starbucks",
        templates={"en": "{{ amount }} at M001, card {{ last4 }}"},
    )
    [alert] = plan(
        txn(msisdn="+8613800138000", lang="en"), merchant=merchant, issuer=issuer
    )
    assert alert.text == "CNY 128.50 at M001, card 7894"
    [alert] = plan(txn(msisdn="+8613800138000", lang="zh"), issuer=issuer)
    assert alert.text.startswith("【示例银行】")  # no zh template: the built-in


def test_a_number_that_replied_stop_gets_only_mandatory_alerts() -> None:
    """A number opted out by STOP (whoever supplied it) gets nothing, except what
    the issuer profile marks mandatory: declined, reversal, large amounts."""
    out = {"+8613800138000"}

    def opted(number: str) -> bool:
        return number in out

    def planned(t: Txn, issuer: IssuerConfig = ISSUER) -> list[Any]:
        return plan_alerts(
            t,
            terminal_id="T1",
            may_supply_msisdn=True,
            issuer=issuer,
            subscriber=None,
            merchant=None,
            now=NOON,
            opted_out=opted,
        )

    numbered = {"msisdn": "+8613800138000"}
    assert planned(txn(**numbered)) == []
    assert planned(txn(msisdn="+8613900139000"))  # another number still gets it
    assert planned(txn(result="declined", **numbered)) == []
    strict = IssuerConfig(
        signature=ISSUER.signature,
        large_amounts={"CNY": Decimal("5000")},
        mandatory=frozenset({"declined", "large"}),
    )
    assert len(planned(txn(result="declined", **numbered), strict)) == 1
    assert len(planned(txn(amount="6000.00", **numbered), strict)) == 1
    assert planned(txn(kind="reversal", **numbered), strict) == []
    assert planned(txn(**numbered), strict) == []
    sub = Subscriber(issuer="default", msisdn="+8613800138000", opted_out=True)
    assert plan(txn(result="declined"), sub, issuer=strict)[0].priority == 1


def test_a_template_showing_a_reply_code_gets_one_per_alert() -> None:
    """Only a template that prints {{ reply_code }} asks for a code; the code is
    shown in the text and kept on the plan."""
    issuer = IssuerConfig(
        signature=ISSUER.signature,
        templates={
            "en": "Card *{{ last4 }} {{ amount }}. Not you? Reply N{{ reply_code }}"
        },
    )
    given: list[str] = []

    def codes(number: str) -> str:
        given.append(number)
        return str(len(given) + 6)

    def planned(i: IssuerConfig) -> Any:
        return plan_alerts(
            txn(msisdn="+8613800138000", lang="en"),
            terminal_id="T1",
            may_supply_msisdn=True,
            issuer=i,
            subscriber=None,
            merchant=None,
            now=NOON,
            reply_codes=codes,
        )[0]

    first = planned(issuer)
    assert first.reply_code == "7"
    assert first.text.endswith("Reply N7")
    assert given == ["+8613800138000"]
    builtin = planned(ISSUER)
    assert builtin.reply_code is None
    assert given == ["+8613800138000"]  # the built-in shows none: no code taken
