"""The status page's history and recent problems, on a Clock."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import Logger

from smsgw.service.status import STATUS_PAGE, RecentProblems, StatusHistory


def test_history_samples_counters_and_gives_rates() -> None:
    """Every interval the counters are sampled; rates are per second between
    samples; only the last `keep` intervals are kept; stop ends the timer."""
    clock = Clock()
    counters = {"accepted": 0}
    history = StatusHistory(clock, lambda: counters, interval=10.0, keep=2)
    history.startService()
    for n in (100, 300, 600):
        counters["accepted"] = n
        clock.advance(10)
    assert history.rates() == [
        {"t": 20.0, "accepted": 20.0},
        {"t": 30.0, "accepted": 30.0},
    ]
    history.stopService()
    assert clock.getDelayedCalls() == []


def test_recent_problems_keep_warnings_and_errors_only() -> None:
    """Warnings and errors are kept (the last `keep`), info is not."""
    problems = RecentProblems(keep=2)
    problems.startService()
    log = Logger()
    try:
        log.info("fine")
        log.warn("carrier {carrier} down", carrier="sim")
        log.warn("second")
        log.warn("third")
    finally:
        problems.stopService()
    log.warn("after stop")
    assert [(e["level"], e["text"]) for e in problems.events] == [
        ("warn", "second"),
        ("warn", "third"),
    ]


def test_the_page_is_self_contained() -> None:
    """No external scripts, styles or fonts: it works offline."""
    page = STATUS_PAGE.decode()
    assert "http://" not in page
    assert "https://" not in page
    assert "<script src" not in page
    assert "<link" not in page
    assert 'fetch("/api/v1/status"' in page
