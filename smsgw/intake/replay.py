"""Replay protection: a captured request frame is never processed twice.

The spec's ``ts`` window (``max_skew``) already refuses old frames as
``stale``; inside the window, this cache of recent (terminal, MAC) pairs
answers a replayed transaction frame ``duplicate`` with the original's
reference, straight away: it is neither validated nor looked up again, and
can never cause a second alert. Only final answers are kept (accepted /
duplicate): a frame answered ``unavailable`` may be retried as it is.

Per gateway process, and bounded (oldest entries go first; 50,000 entries,
~10 MB, cover the whole window up to ~80 transactions/s): a replay that
another process receives, or one that comes after its entry was evicted,
still meets the store's idempotency check and is answered ``duplicate``
there. Each entry is two flat strings (no tuples, no floats): ~200 bytes
instead of ~390, and nothing the garbage collector has to walk. The key
holds the MAC's first 128 bits: the lookup comes after the MAC was verified
in full, so only a valid frame can hit, and two valid frames of one terminal
share those bits with a chance of ~2^-128. Pure: times are passed in.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ReplayCache", "Replayed"]


class Replayed(NamedTuple):
    """The original answer of a replayed frame."""

    ref: str
    alerts: int
    expires_at: float


class ReplayCache:
    """Recent (terminal, MAC) -> original answer, for ``ttl`` seconds."""

    def __init__(self, ttl: float, max_entries: int = 50_000) -> None:
        if ttl <= 0 or max_entries < 1:
            raise ValueError("ttl must be > 0 and max_entries >= 1")
        self.ttl = ttl
        self.max_entries = max_entries
        # "terminal NUL mac[:32]" -> "ref alerts expires_at", in insertion
        # (= time) order.
        self._seen: dict[str, str] = {}
        self.hits = 0

    def __len__(self) -> int:
        return len(self._seen)

    def get(self, terminal: str, mac: str, now: float) -> Replayed | None:
        """The original answer when this frame was answered within ``ttl``."""
        found = self._seen.get(f"{terminal}\0{mac[:32]}")
        if found is None:
            return None
        ref, alerts, expires = found.rsplit(" ", 2)
        expires_at = float(expires)
        if expires_at <= now:
            return None
        self.hits += 1
        return Replayed(ref, int(alerts), expires_at)

    def put(self, terminal: str, mac: str, ref: str, alerts: int, now: float) -> None:
        """Remember a final answer; forget what expired or overflowed."""
        seen = self._seen
        seen[f"{terminal}\0{mac[:32]}"] = f"{ref} {alerts} {now + self.ttl!r}"
        # Entries are added in time order, so expired ones are at the front.
        while seen:
            oldest = next(iter(seen))
            if (
                len(seen) <= self.max_entries
                and float(seen[oldest].rpartition(" ")[2]) > now
            ):
                break
            del seen[oldest]
