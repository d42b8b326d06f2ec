"""Configuration sections for alerts: issuer profiles and dispatch.

Kept apart from config.py (which assembles every section) so each module stays
readable. An issuer profile is what differs between the banks one gateway may
serve: signature, sender id, default language, time zone, large amounts.
"""

from __future__ import annotations

import os
import re
import socket
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from smsgw._validate import (
    Check,
    Invalid,
    Reported,
    Secret,
    Where,
    boolean,
    choice,
    integer,
    list_of,
    number,
    optional,
    section,
    show,
    sourced,
    text,
)

LANGUAGES = ("zh", "en")
DEFAULT_ISSUER = "default"
ISSUER_PATTERN = r"[A-Za-z0-9._-]{1,32}"


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuerConfig:
    """One issuer profile: every record and alert belongs to one."""

    name: str = DEFAULT_ISSUER
    signature: Mapping[str, str] = field(
        default_factory=lambda: {"zh": "smsgw", "en": "smsgw"}
    )
    default_lang: str = "zh"
    source_addr: str | None = None
    timezone: str = "UTC"
    notify_merchants: bool = True
    alert_declined: bool = True
    large_amounts: Mapping[str, Decimal] = field(default_factory=dict)
    # Cardholder alert template per language (merchant templates win).
    templates: Mapping[str, str] = field(default_factory=dict)
    # Alerts sent even to a cardholder who opted out: declined, reversal, large.
    mandatory: frozenset[str] = frozenset()
    # Where "not me" replies are posted (signed); None: not posted.
    fraud_webhook: WebhookConfig | None = None


MANDATORY = ("declined", "reversal", "large")


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookConfig:
    """An issuer's fraud endpoint: URL, HMAC secret (never shown) and key id."""

    url: str
    secret: Secret
    key_id: str = "k1"
    timeout: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchConfig:
    """How queued alerts are claimed, retried, expired and failed over."""

    ttl: float = 3600.0
    retry_initial: float = 2.0
    retry_max: float = 300.0
    failover_after: int = 2
    lease: float = 60.0
    # Unique per gateway process sharing a database. The default (host-pid)
    # is unique but changes on restart: set a stable name so that on
    # PostgreSQL a restarted process takes its alerts back at once rather
    # than after their lease (SQLite has one process: it takes them all).
    node: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    max_in_flight: int = 20000
    poll_interval: float = 1.0


def _signature(value: object, where: Where) -> Mapping[str, str]:
    """One signature for every language, or a mapping per language."""
    if isinstance(value, str) and value:
        return dict.fromkeys(LANGUAGES, value)
    if not isinstance(value, dict):
        raise Invalid(
            f"must be a string or a mapping of language to text, got {show(value)}"
        )
    result: dict[str, str] = {}
    for lang, sig in value.items():
        if lang not in LANGUAGES:
            where.key(str(lang)).error(
                f"unknown language (expected one of: {', '.join(LANGUAGES)})"
            )
        elif not isinstance(sig, str) or not 1 <= len(sig) <= 40:
            where.key(lang).error(f"must be 1 to 40 characters, got {show(sig)}")
        else:
            result[lang] = sig
    for lang in LANGUAGES:
        result.setdefault(lang, next(iter(result.values()), "smsgw"))
    return result


def _timezone(value: object, where: Where) -> str:
    if not isinstance(value, str):
        raise Invalid(
            f"must be an IANA time zone name like Asia/Shanghai, got {show(value)}"
        )
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Invalid(
            f"unknown time zone {value!r} (IANA names like Asia/Shanghai)"
        ) from None
    return value


def _amounts(value: object, where: Where) -> Mapping[str, Decimal]:
    """Currency code -> amount (a string) at or above which an alert is urgent."""
    if not isinstance(value, dict):
        raise Invalid(f'must be a mapping like {{CNY: "5000"}}, got {show(value)}')
    result: dict[str, Decimal] = {}
    for code, amount in value.items():
        at = where.key(str(code))
        if not isinstance(code, str) or not re.fullmatch(r"[A-Z]{3}", code):
            at.error("must be an ISO 4217 code like CNY")
        elif not isinstance(amount, str) or not re.fullmatch(
            r"[0-9]{1,12}(\.[0-9]{1,3})?", amount
        ):
            at.error(
                f'must be an amount as a string like "5000.00", got {show(amount)}'
            )
        else:
            result[code] = Decimal(amount)
    return result


def _templates(value: object, where: Where) -> Mapping[str, str]:
    """Language -> template, each checked like a merchant's (sandbox rules)."""
    from smsgw.alerts.templates import TemplateError, check_template

    if not isinstance(value, dict):
        raise Invalid(f"must be a mapping of language to template, got {show(value)}")
    result: dict[str, str] = {}
    for lang, source in value.items():
        at = where.key(str(lang))
        if lang not in LANGUAGES:
            at.error(f"unknown language (expected one of: {', '.join(LANGUAGES)})")
        elif not isinstance(source, str):
            at.error(f"must be a template string, got {show(source)}")
        else:
            try:
                check_template(source)
            except TemplateError as e:
                at.error(str(e))
            else:
                result[lang] = source
    return result


def _webhook_url(value: object, where: Where) -> str:
    """An http(s) URL; no credentials in it (the secret has its own key)."""
    if not isinstance(value, str) or not re.fullmatch(
        r"https?://[^\s/]+(/\S*)?", value
    ):
        raise Invalid(f"must be an http:// or https:// URL, got {show(value)}")
    host = value.split("://", 1)[1].split("/", 1)[0]
    if "@" in host:
        raise Invalid("must not carry credentials: give them as secret/secret_file")
    return value


def _webhook_secret(value: str) -> Secret:
    if len(value) < 16:
        raise Invalid(f"must be at least 16 characters, got {len(value)}")
    return Secret(value)


WEBHOOK = section(
    WebhookConfig,
    {
        "url": _webhook_url,
        "secret": sourced("secret", _webhook_secret, required=True),
        "key_id": text(
            pattern=r"[A-Za-z0-9._-]{1,32}", wanted="1 to 32 of A-Z a-z 0-9 . _ -"
        ),
        "timeout": number(gt=0, le=120),
    },
)


def _mandatory(value: object, where: Where) -> frozenset[str]:
    marks = list_of(choice(*MANDATORY), unique="", what="kinds")(value, where)
    return frozenset(marks)


ISSUER = section(
    IssuerConfig,
    {
        "name": text(pattern=ISSUER_PATTERN, wanted="1 to 32 of A-Z a-z 0-9 . _ -"),
        "signature": _signature,
        "default_lang": choice(*LANGUAGES),
        "source_addr": optional(text(max_len=20, reason=" (SMPP 3.4 limit)")),
        "timezone": _timezone,
        "notify_merchants": boolean,
        "alert_declined": boolean,
        "large_amounts": _amounts,
        "templates": _templates,
        "mandatory": _mandatory,
        "fraud_webhook": optional(WEBHOOK),
    },
)

DISPATCH = section(
    DispatchConfig,
    {
        "ttl": number(gt=0),
        "retry_initial": number(gt=0),
        "retry_max": number(gt=0),
        "failover_after": integer(1, 100),
        "lease": number(ge=5),
        "node": text(
            pattern=r"[A-Za-z0-9._:-]{1,64}", wanted="1 to 64 of A-Z a-z 0-9 . _ : -"
        ),
        "max_in_flight": integer(100),
        "poll_interval": number(gt=0, le=60),
    },
)


def issuers_check(item: Check) -> Check:
    """The issuers list: names unique; absent or empty means one default profile."""

    def check(value: object, where: Where) -> tuple[IssuerConfig, ...]:
        if value is None:
            return (IssuerConfig(),)
        if not isinstance(value, list) or not value:
            raise Invalid(
                f"must be a non-empty list of issuer profiles, got {show(value)}"
            )
        result: list[IssuerConfig] = []
        seen: set[str] = set()
        failed = False
        for i, raw in enumerate(value):
            try:
                issuer = item(raw, where.item(i))
            except Invalid as exc:
                where.item(i).error(exc.message)
                failed = True
                continue
            except Reported:
                failed = True
                continue
            if issuer.name in seen:
                where.item(i).key("name").error(f"duplicate issuer {issuer.name!r}")
                failed = True
            seen.add(issuer.name)
            result.append(issuer)
        if failed:
            raise Reported
        return tuple(result)

    return check


ISSUERS = issuers_check(ISSUER)


def check_terminal_issuers(
    terminals: Any, issuers: tuple[IssuerConfig, ...], where: Where
) -> None:
    """Every terminal's issuer must be a configured profile."""
    names = {i.name for i in issuers}
    for index, terminal in enumerate(terminals):
        if terminal.issuer is not None and terminal.issuer not in names:
            where.key("terminals").item(index).key("issuer").error(
                f"no issuer profile {terminal.issuer!r} "
                f"(issuers: {', '.join(sorted(names))})"
            )
