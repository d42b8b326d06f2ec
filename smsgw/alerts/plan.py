"""Which alerts a transaction gets, to whom, when and saying what (pure).

Inputs are the validated transaction, its terminal, the issuer profile and
what the registries hold for the card and the merchant. The rules:

- the cardholder's number is the one the terminal sent (when the operator
  lets that terminal supply numbers), else the subscriber's;
- a subscriber who opted out, or a number that replied STOP, gets only what
  the issuer profile marks mandatory (declined, reversal, large); an
  approved transaction of a kind the subscriber did not ask for, or below
  their minimum amount, gets nothing; declines and reversals are always sent
  to those who did not opt out (fraud signals);
- urgent alerts (declined, reversal, at or above the issuer's large amount)
  go at once; others wait for the end of the subscriber's quiet hours;
- language: the request's when supported, else the subscriber's, else the
  issuer's default; the merchant's template for that language when it has one,
  else the issuer profile's, else the built-in; a template that shows
  ``{{ reply_code }}`` gets a code unique among the alerts awaiting a reply
  from that number (``reply_codes``);
- a merchant with numbers gets a short notice on each (when the issuer
  profile notifies merchants).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import phonenumbers
from twisted.logger import Logger

from smsgw.alerts.render import AlertFacts, render
from smsgw.alerts.templates import TemplateError, uses_reply_code
from smsgw.intake.validate import Txn
from smsgw.service.config_alerts import LANGUAGES, IssuerConfig

__all__ = [
    "AlertPlan",
    "Merchant",
    "Subscriber",
    "e164",
    "plan_alerts",
    "quiet_until",
]

URGENT_KINDS = frozenset({"reversal"})
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
log = Logger()


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A registry entry: a card (hash or token) and its owner's preferences."""

    issuer: str
    msisdn: str
    lang: str | None = None
    min_amount: Decimal | None = None
    kinds: frozenset[str] | None = None
    opted_out: bool = False
    quiet_start: dt.time | None = None
    quiet_end: dt.time | None = None
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class Merchant:
    """A registry entry: display name, numbers to notify, template overrides."""

    issuer: str
    merchant_id: str
    name: str
    notify: tuple[str, ...] = ()
    lang: str | None = None
    templates: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class AlertPlan:
    """One alert to queue."""

    audience: str
    destination: str
    lang: str
    text: str
    encoding: str
    parts: int
    priority: int  # 1 urgent, 0 normal
    not_before: float
    source_addr: str | None
    reply_code: str | None = None


def e164(number: str) -> str | None:
    """``number`` in E.164 when phonenumbers finds it possible, else None.

    A number already written ``+`` and 7 to 15 digits (what intake-v1
    accepts) is in E.164 form and is taken as it is; only the others go to
    phonenumbers, whose answers are cached (parsing costs ~11 µs, a cache
    hit ~0.06 µs: facts.md). Caching the common case too held ~11 MB of
    numbers that cost one regular-expression match to recognise.
    """
    if _E164.fullmatch(number):
        return number
    return _e164_parsed(number)


@functools.lru_cache(maxsize=65536)
def _e164_parsed(number: str) -> str | None:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def quiet_until(
    now: float, start: dt.time, end: dt.time, timezone: str
) -> float | None:
    """The Unix time quiet hours end when ``now`` falls inside them, else None.

    The window may cross midnight (22:00 to 07:00); start == end means none.
    """
    if start == end:
        return None
    zone = _zone(timezone)
    local = dt.datetime.fromtimestamp(now, zone)
    t = local.time().replace(tzinfo=None)
    inside = start <= t < end if start < end else (t >= start or t < end)
    if not inside:
        return None
    day = local.date()
    if start > end and t >= start:
        day += dt.timedelta(days=1)
    until = dt.datetime.combine(day, end, zone)
    return until.timestamp()


def _lang(*choices: str | None, default: str) -> str:
    for lang in choices:
        if lang:
            short = lang.split("-")[0].split("_")[0].lower()
            if short in LANGUAGES:
                return short
    return default


def _urgent(txn: Txn, issuer: IssuerConfig) -> bool:
    if txn.result == "declined" or txn.kind in URGENT_KINDS:
        return True
    large = issuer.large_amounts.get(txn.currency)
    return large is not None and Decimal(txn.amount) >= large


def _mandatory(txn: Txn, issuer: IssuerConfig) -> bool:
    """Sent even to those who opted out, as the issuer profile says."""
    marks = issuer.mandatory
    if not marks:
        return False
    if "declined" in marks and txn.result == "declined":
        return True
    if "reversal" in marks and txn.kind == "reversal":
        return True
    large = issuer.large_amounts.get(txn.currency)
    return "large" in marks and large is not None and Decimal(txn.amount) >= large


def _wanted(
    txn: Txn, sub: Subscriber | None, number_out: bool, issuer: IssuerConfig
) -> bool:
    if number_out or (sub is not None and sub.opted_out):
        return _mandatory(txn, issuer)
    if sub is None:
        return True
    if txn.result == "declined" or txn.kind in URGENT_KINDS:
        return True
    if sub.kinds is not None and txn.kind not in sub.kinds:
        return False
    return sub.min_amount is None or Decimal(txn.amount) >= sub.min_amount


def cardholder_number(
    txn: Txn, may_supply_msisdn: bool, subscriber: Subscriber | None
) -> str | None:
    """The cardholder's number in E.164: the one the terminal sent when it may
    supply one, else the subscriber's; None when neither is a possible number."""
    if txn.msisdn and may_supply_msisdn:
        holder: str | None = txn.msisdn
    else:
        holder = subscriber.msisdn if subscriber else None
    return e164(holder) if holder else None


def plan_alerts(
    txn: Txn,
    *,
    terminal_id: str,
    may_supply_msisdn: bool,
    issuer: IssuerConfig,
    subscriber: Subscriber | None,
    merchant: Merchant | None,
    now: float,
    opted_out: Callable[[str], bool] | None = None,
    reply_codes: Callable[[str], str] | None = None,
) -> list[AlertPlan]:
    """The alerts for one transaction (possibly none); see the module docstring.

    ``opted_out(number)``: whether that E.164 number replied STOP to this
    issuer; ``reply_codes(number)``: a fresh reply code for that number (only
    asked when the template shows one; without it such a template shows "").
    """
    plans: list[AlertPlan] = []
    name = txn.merchant_name or (merchant.name if merchant else "")
    destination = (
        None
        if txn.result == "declined" and not issuer.alert_declined
        else cardholder_number(txn, may_supply_msisdn, subscriber)
    )
    number_out = bool(destination and opted_out and opted_out(destination))
    if destination and _wanted(txn, subscriber, number_out, issuer):
        lang = _lang(
            txn.lang,
            subscriber.lang if subscriber else None,
            default=issuer.default_lang,
        )
        template = (
            merchant.templates.get(lang) if merchant and merchant.templates else None
        ) or issuer.templates.get(lang)
        not_before = now
        if (
            subscriber is not None
            and subscriber.quiet_start is not None
            and subscriber.quiet_end is not None
            and not _urgent(txn, issuer)
        ):
            until = quiet_until(
                now,
                subscriber.quiet_start,
                subscriber.quiet_end,
                subscriber.timezone or issuer.timezone,
            )
            not_before = until if until is not None else now
        code = None
        if template is not None and reply_codes is not None:
            code = reply_codes(destination) if uses_reply_code(template) else None
        plans.append(
            _plan(
                "cardholder",
                destination,
                lang,
                txn,
                name,
                terminal_id,
                issuer,
                template,
                not_before,
                1 if _urgent(txn, issuer) else 0,
                code,
            )
        )
    if merchant is not None and merchant.notify and issuer.notify_merchants:
        lang = _lang(merchant.lang, default=issuer.default_lang)
        for number in merchant.notify:
            to = e164(number)
            if to is not None:
                plans.append(
                    _plan(
                        "merchant",
                        to,
                        lang,
                        txn,
                        name,
                        terminal_id,
                        issuer,
                        None,
                        now,
                        0,
                    )
                )
    return plans


def _plan(
    audience: str,
    destination: str,
    lang: str,
    txn: Txn,
    merchant_name: str,
    terminal_id: str,
    issuer: IssuerConfig,
    template: str | None,
    not_before: float,
    priority: int,
    reply_code: str | None = None,
) -> AlertPlan:
    facts = AlertFacts(
        audience=audience,
        kind=txn.kind,
        result=txn.result,
        amount=txn.amount,
        currency=txn.currency,
        exponent=txn.exponent,
        last4=txn.last4,
        merchant=merchant_name,
        location=txn.location,
        local_time=txn.local_time,
        balance=txn.balance,
        terminal_id=terminal_id,
        signature=issuer.signature[lang],
        reply_code=reply_code or "",
    )
    try:
        rendered = render(facts, lang, template, default_lang=issuer.default_lang)
    except TemplateError as e:
        # A template that fails must not cost the cardholder the alert.
        log.warn("merchant template failed ({error}); built-in used", error=str(e))
        rendered = render(facts, lang, None, default_lang=issuer.default_lang)
    return AlertPlan(
        audience=audience,
        destination=destination,
        lang=lang,
        text=rendered.text,
        encoding=rendered.encoding,
        parts=rendered.parts,
        priority=priority,
        not_before=not_before,
        source_addr=issuer.source_addr,
        reply_code=reply_code,
    )
