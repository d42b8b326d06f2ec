"""Routing: which carriers take a destination, best first."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smsgw.dispatch.policy import Route, Router


def _naive(routes: list[Route], destination: str) -> tuple[str, ...]:
    """The rule written out: every route whose prefix the number starts with,
    longest prefix first, then priority, then configuration order; each
    carrier once."""
    matching = sorted(
        (r for r in routes if destination.startswith(r.prefix)),
        key=lambda r: (-len(r.prefix), r.priority, r.order),
    )
    return tuple(dict.fromkeys(r.carrier for r in matching))


ROUTES = [
    Route("+", 0, 0, "world"),
    Route("+86", 1, 1, "cn-b"),
    Route("+86", 0, 2, "cn-a"),
    Route("+86138", 0, 3, "mobile"),
    Route("+1", 0, 4, "us"),
    Route("+86138", 5, 5, "world"),
]


def test_longest_prefix_then_priority_then_order() -> None:
    r = Router(ROUTES)
    assert r.candidates("+8613800138000") == ("mobile", "world", "cn-a", "cn-b")
    assert r.candidates("+8615000000000") == ("cn-a", "cn-b", "world")
    assert r.candidates("+14155550100") == ("us", "world")
    assert r.candidates("+44") == ("world",)
    assert r.candidates("+86") == ("cn-a", "cn-b", "world")  # the prefix itself
    assert r.candidates("8613800138000") == ()  # no route takes it
    assert Router([]).candidates("+8613800138000") == ()


def test_memory_does_not_grow_with_destinations() -> None:
    """Answers are kept per combination of matching prefixes, not per number."""
    r = Router(ROUTES)
    for n in range(5000):
        r.candidates(f"+86138{n:08d}")
        r.candidates(f"+1415{n:07d}")
    assert len(r._by_prefixes) == 2


@given(
    routes=st.lists(
        st.builds(
            Route,
            prefix=st.text("+0123", min_size=1, max_size=4),
            priority=st.integers(0, 3),
            order=st.integers(0, 20),
            carrier=st.sampled_from(["a", "b", "c"]),
        ),
        max_size=8,
    ),
    destinations=st.lists(st.text("+0123", max_size=6), max_size=10),
)
def test_same_answers_as_the_rule_written_out(
    routes: list[Route], destinations: list[str]
) -> None:
    r = Router(routes)
    for destination in destinations:
        assert r.candidates(destination) == _naive(routes, destination)
