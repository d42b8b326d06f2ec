"""Replay protection: a captured frame replayed inside the ts window is
answered from the cache, never processed twice."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from smsgw.intake.replay import ReplayCache, Replayed
from tests.intake.test_protocol import Conn, frame, txn_body


def test_cache_expiry_and_bound() -> None:
    """Entries live ttl seconds; past max_entries the oldest go first."""
    cache = ReplayCache(ttl=600.0, max_entries=2)
    cache.put("T1", "m1", "R1", 1, now=0.0)
    assert cache.get("T1", "m1", 599.9) == Replayed("R1", 1, 600.0)
    assert cache.get("T1", "m1", 600.0) is None
    assert cache.get("T2", "m1", 1.0) is None  # per terminal
    cache.put("T1", "m2", "R2", 0, now=1.0)
    cache.put("T1", "m3", "R3", 2, now=2.0)
    assert len(cache) == 2
    assert cache.get("T1", "m1", 3.0) is None  # evicted: the oldest
    cache.put("T1", "m4", "R4", 1, now=700.0)  # m2 and m3 expired: dropped
    assert len(cache) == 1
    assert cache.hits == 1
    with pytest.raises(ValueError, match="ttl"):
        ReplayCache(ttl=0)


def test_entries_are_flat_strings_the_collector_need_not_walk() -> None:
    """50,000 entries live for the whole ts window: each is a key string and a
    value string (no tuples or floats), and an answer reads back exactly."""
    cache = ReplayCache(ttl=600.0)
    mac = "ab" * 32
    cache.put("T1", mac, "0000000000a1b2c3d4e5f6a7", 3, now=1_795_000_000.123)
    [(key, value)] = cache._seen.items()
    assert not gc.is_tracked(key)
    assert not gc.is_tracked(value)
    assert cache.get("T1", mac, 1_795_000_001.0) == Replayed(
        "0000000000a1b2c3d4e5f6a7", 3, 1_795_000_000.123 + 600.0
    )
    assert cache.get("T1", "cd" * 32, 1_795_000_001.0) is None  # another frame
    assert cache.get("T11", mac, 1_795_000_001.0) is None  # another terminal


class CountingConn(Conn):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.calls = 0
        accept = self.acceptor.accept

        def counted(terminal: Any, txn: Any) -> Any:
            self.calls += 1
            return accept(terminal, txn)

        self.intake.acceptor.accept = counted  # type: ignore[method-assign]


def test_a_replayed_frame_is_answered_duplicate_without_being_processed() -> None:
    """The identical frame again: duplicate with the original ref, the store not
    asked; a retry re-signed with a fresh ts is a new frame: the store answers
    duplicate; after the ts window a replay is stale."""
    c = CountingConn()
    original = frame(txn_body("t1"))
    c.send(original)
    [first] = c.responses()
    assert (first["status"], c.calls) == ("accepted", 1)
    c.send(original)
    [again] = c.responses()
    assert (again["status"], again["ref"], again["alerts"], c.calls) == (
        "duplicate",
        first["ref"],
        1,
        1,
    )
    assert again["_signed_ok"] is True
    assert c.intake.counts["replayed"] == 1
    c.clock.advance(1)
    c.send(frame(txn_body("t1", ts=int(c.clock.seconds()))))
    [retry] = c.responses()
    assert (retry["status"], c.calls) == ("duplicate", 2)
    c.clock.advance(200)  # a ping keeps the connection from its idle timeout
    c.send(frame({"type": "ping", "ts": int(c.clock.seconds()), "nonce": "k"}))
    c.responses()
    c.clock.advance(101)  # the original's ts is now more than max_skew old
    c.send(original)
    [late] = c.responses()
    assert late["code"] == "stale"


def test_a_frame_answered_unavailable_may_be_sent_again_as_it_is() -> None:
    """Only final answers are kept: a terminal may resend the same frame after
    unavailable and get it accepted."""
    c = CountingConn()
    c.acceptor.down = True
    original = frame(txn_body("t2"))
    c.send(original)
    [down] = c.responses()
    assert down["code"] == "unavailable"
    c.acceptor.down = False
    c.send(original)
    [ok] = c.responses()
    assert (ok["status"], c.calls) == ("accepted", 2)
