"""Which alert a reply answers, and what to do about it (pure).

Operators never say which MT an MO answers (facts.md, Replies), so:

1. stop and help act on the subscription at once, whatever they answer;
2. a reply code ("N7") picks the alert that showed it, among the alerts sent
   to that number within the reply window; a code no such alert showed
   matches nothing (``unknown_code``): guessing could dispute the wrong
   transaction;
3. else the latest alert, but only when exactly one awaits a reply
   (``single``); none awaiting (``none``) or several (``ambiguous``) leave
   the reply unmatched, kept for review.

Free text is matched the same way for the record, but never consumes an
alert's wait: a "who is this?" does not stop a later "N" from matching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from smsgw.feedback.classify import Classified

__all__ = ["Candidate", "Decision", "Match", "decide", "match_reply"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A cardholder alert sent to the replying number within the window."""

    alert_id: str
    ref: str
    issuer: str
    created_at: float
    reply_code: str | None
    feedback: str | None  # the class of the reply it already got
    lang: str


@dataclass(frozen=True, slots=True)
class Match:
    """The alert a reply answers (None: unmatched) and how it was found."""

    alert: Candidate | None
    how: str  # code / single / ambiguous / none / unknown_code


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about one reply."""

    action: str  # what is recorded on the MO message
    feedback: str | None  # class recorded on the matched alert and transaction
    dispute: bool  # mark the transaction disputed
    webhook: bool  # post it to the issuer's fraud endpoint
    opt_out: bool  # opt the number out
    reply: str | None  # which text to send back: not_me / stop / help


def match_reply(classified: Classified, candidates: Sequence[Candidate]) -> Match:
    """Match a classified reply to one of ``candidates`` (newest first)."""
    if classified.code is not None:
        for candidate in candidates:
            if candidate.reply_code == classified.code:
                return Match(candidate, "code")
        return Match(None, "unknown_code")
    awaiting = [c for c in candidates if c.feedback is None]
    if len(awaiting) == 1:
        return Match(awaiting[0], "single")
    return Match(None, "ambiguous" if awaiting else "none")


def decide(
    classified: Classified,
    match: Match,
    *,
    already_opted_out: bool,
    help_recent: bool,
    has_webhook: bool,
) -> Decision:
    """The action for a reply (see the module docstring and the README)."""
    kind = classified.kind
    matched = match.alert is not None
    if kind == "stop":
        return Decision(
            "already_opted_out" if already_opted_out else "opted_out",
            "stop" if matched else None,
            dispute=False,
            webhook=False,
            opt_out=True,
            # Confirmed once: a second STOP gets no second SMS.
            reply=None if already_opted_out else "stop",
        )
    if kind == "help":
        return Decision(
            "help_suppressed" if help_recent else "help_sent",
            None,
            dispute=False,
            webhook=False,
            opt_out=False,
            reply=None if help_recent else "help",
        )
    if kind == "confirm" and matched:
        return Decision("confirmed", "confirm", False, False, False, None)
    if kind == "not_me" and matched:
        # Never a final action such as blocking the card: sender numbers
        # can be spoofed. The issuer's fraud team takes it from here.
        return Decision("disputed", "not_me", True, has_webhook, False, "not_me")
    if kind is None:
        return Decision("kept", None, False, False, False, None)
    return Decision("unmatched", None, False, False, False, None)
