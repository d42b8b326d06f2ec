"""Configuration for cardholders' replies: keywords, windows, answer texts.

```yaml
feedback:
  reply_window: 86400        # seconds an alert awaits a reply (and its code is valid)
  reassembly_timeout: 60     # a reply missing parts is kept as it is after this
  help_interval: 3600        # at most one help text per number in this many seconds
  keywords:                  # per language and class; replaces that set of defaults
    en: {not_me: ["N", "NO", "2", "FRAUD"]}   # quoted: YAML reads NO as false
  replies:                   # texts sent back; {signature} {last4} {amount} {merchant}
    en: {not_me: "{signature}: thank you, we will call you about card *{last4}."}
  webhook_retry_initial: 10  # fraud webhook back-off: first delay, doubling ...
  webhook_retry_max: 3600    # ... up to this
  webhook_max_attempts: 12   # then the webhook is recorded failed
```
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from smsgw._validate import Invalid, Reported, Where, integer, number, section, show
from smsgw.feedback.classify import (
    DEFAULT_KEYWORDS,
    Keywords,
    check_keywords,
)
from smsgw.feedback.classify import (
    KINDS as CLASSES,
)
from smsgw.service.config_alerts import LANGUAGES

__all__ = ["DEFAULT_REPLIES", "FEEDBACK", "REPLY_KINDS", "FeedbackConfig"]

REPLY_KINDS = ("not_me", "stop", "help")
PLACEHOLDERS = frozenset({"signature", "last4", "amount", "merchant"})

DEFAULT_REPLIES: Mapping[str, Mapping[str, str]] = {
    "zh": {
        "not_me": "【{signature}】已收到您对尾号{last4}卡{amount}交易的非本人反馈\uff0c"
        "我行将尽快联系您。如需立即冻结卡片请致电客服。",
        "stop": "【{signature}】您已退订交易提醒短信。",
        "help": "【{signature}】非本人交易请回复N\uff0c本人交易回复Y\uff0c退订回复TD。",
    },
    "en": {
        "not_me": "{signature}: we have your report that the {amount} transaction "
        "on card *{last4} was not you and will contact you. Call us to block the "
        "card now.",
        "stop": "{signature}: you will no longer get card alerts by SMS.",
        "help": "{signature}: reply N if a transaction was not you, Y if it was, "
        "STOP to opt out.",
    },
}


def _default_keywords() -> Keywords:
    return Keywords.build(DEFAULT_KEYWORDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackConfig:
    """How replies are read, matched and answered."""

    reply_window: float = 86400.0
    reassembly_timeout: float = 60.0
    help_interval: float = 3600.0
    keywords: Keywords = field(default_factory=_default_keywords)
    replies: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: DEFAULT_REPLIES
    )
    webhook_retry_initial: float = 10.0
    webhook_retry_max: float = 3600.0
    webhook_max_attempts: int = 12


def _by_language(
    value: object,
    where: Where,
    defaults: Mapping[str, Mapping[str, Any]],
    kinds: Sequence[str],
    convert: Callable[[object], Any],
    what: str,
) -> dict[str, dict[str, Any]]:
    """lang -> kind -> value merged over ``defaults``: what is given replaces
    that default; every problem is reported with its key path."""
    if not isinstance(value, dict):
        raise Invalid(f"must be a mapping of language to {what}, got {show(value)}")
    merged = {lang: dict(items) for lang, items in defaults.items()}
    failed = False
    for lang, items in value.items():
        at = where.key(str(lang))
        if lang not in LANGUAGES:
            at.error(f"unknown language (expected one of: {', '.join(LANGUAGES)})")
            failed = True
            continue
        if not isinstance(items, dict):
            at.error(f"must be a mapping of {', '.join(kinds)} to {what}")
            failed = True
            continue
        for kind, raw in items.items():
            if kind not in kinds:
                at.key(str(kind)).error(
                    f"unknown key (expected one of: {', '.join(kinds)})"
                )
                failed = True
                continue
            try:
                merged[lang][kind] = convert(raw)
            except Invalid as e:
                at.key(kind).error(e.message)
                failed = True
    if failed:
        raise Reported
    return merged


def _words(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise Invalid(f"must be a list of words, got {show(value)}")
    for word in value:
        if isinstance(word, bool):
            raise Invalid(
                f"got {show(word)} in the list: YAML reads NO, YES, ON and OFF as "
                'true/false, quote the words ("NO")'
            )
        if not isinstance(word, str | int):
            raise Invalid(f"must be a list of words, got {show(word)} in it")
    return tuple(str(w) for w in value)


def _keywords(value: object, where: Where) -> Keywords:
    """lang -> class -> words; each given set replaces that default set."""
    merged = _by_language(value, where, DEFAULT_KEYWORDS, CLASSES, _words, "words")
    problems = check_keywords(merged)
    if problems:
        for problem in problems:
            path, _, message = problem.partition(": ")
            lang, _, kind = path.partition(".")
            where.key(lang).key(kind).error(message)
        raise Reported
    return Keywords.build(merged)


def _reply_text(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 300:
        raise Invalid(f"must be a text of 1 to 300 characters, got {show(value)}")
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name}
    except ValueError as e:
        raise Invalid(f"is not a valid text with {{placeholders}}: {e}") from None
    unknown = sorted(names - PLACEHOLDERS)
    if unknown:
        raise Invalid(
            f"unknown placeholder {{{unknown[0]}}} "
            f"(known: {', '.join(sorted(PLACEHOLDERS))})"
        )
    return value


def _replies(value: object, where: Where) -> Mapping[str, Mapping[str, str]]:
    """lang -> kind -> text; what is not given keeps the default text."""
    return _by_language(
        value, where, DEFAULT_REPLIES, REPLY_KINDS, _reply_text, "texts"
    )


FEEDBACK: Any = section(
    FeedbackConfig,
    {
        "reply_window": number(gt=0, le=30 * 86400),
        "reassembly_timeout": number(gt=0, le=86400),
        "help_interval": number(ge=0),
        "keywords": _keywords,
        "replies": _replies,
        "webhook_retry_initial": number(gt=0),
        "webhook_retry_max": number(gt=0),
        "webhook_max_attempts": integer(1, 100),
    },
)
