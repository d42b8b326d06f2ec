"""Which alert a reply answers and what is done about it (pure)."""

from __future__ import annotations

import pytest

from smsgw.feedback.classify import DEFAULT_KEYWORDS, Keywords, classify
from smsgw.feedback.match import Candidate, Decision, Match, decide, match_reply

KEYWORDS = Keywords.build(DEFAULT_KEYWORDS)


def alert(n: int, code: str | None = None, feedback: str | None = None) -> Candidate:
    return Candidate(f"A{n}", f"R{n}", "default", float(n), code, feedback, "zh")


NEWEST_FIRST = [alert(3, "3"), alert(2, "2", feedback="confirm"), alert(1, "1")]


@pytest.mark.parametrize(
    ("text", "candidates", "expected"),
    [
        ("N2", NEWEST_FIRST, Match(NEWEST_FIRST[1], "code")),
        ("n 1", NEWEST_FIRST, Match(NEWEST_FIRST[2], "code")),
        ("N7", NEWEST_FIRST, Match(None, "unknown_code")),
        ("N", NEWEST_FIRST, Match(None, "ambiguous")),
        ("N", [alert(2, feedback="not_me"), alert(1)], Match(alert(1), "single")),
        ("N", [alert(1, feedback="confirm")], Match(None, "none")),
        ("N", [], Match(None, "none")),
        ("hello", [alert(1)], Match(alert(1), "single")),
    ],
)
def test_match_order_code_then_single_awaiting(
    text: str, candidates: list[Candidate], expected: Match
) -> None:
    """A code picks the alert that showed it (answered or not); without one only a
    single alert still awaiting a reply matches."""
    assert match_reply(classify(text, KEYWORDS), candidates) == expected


def decision(text: str, matched: bool, **kw: bool) -> Decision:
    found = Match(alert(1) if matched else None, "single" if matched else "none")
    flags = {"already_opted_out": False, "help_recent": False, "has_webhook": True}
    flags.update(kw)
    return decide(classify(text, KEYWORDS), found, **flags)


def test_decisions() -> None:
    """not-me disputes, acknowledges and posts (never blocks the card); confirm
    records; stop opts out and confirms once; help answers unless it just did;
    free text is kept; an unmatched answer is kept for review."""
    assert decision("N", True) == Decision(
        "disputed", "not_me", dispute=True, webhook=True, opt_out=False, reply="not_me"
    )
    assert decision("N", True, has_webhook=False).webhook is False
    assert decision("N", False) == Decision(
        "unmatched", None, False, False, False, None
    )
    assert decision("Y", True) == Decision(
        "confirmed", "confirm", False, False, False, None
    )
    assert decision("Y", False).action == "unmatched"
    assert decision("STOP", False) == Decision(
        "opted_out", None, False, False, True, "stop"
    )
    assert decision("退订", True).feedback == "stop"
    assert decision("T", True, already_opted_out=True) == Decision(
        "already_opted_out", "stop", False, False, True, None
    )
    assert decision("HELP", True) == Decision(
        "help_sent", None, False, False, False, "help"
    )
    assert decision("帮助", False, help_recent=True).reply is None
    assert decision("what?", True) == Decision("kept", None, False, False, False, None)
