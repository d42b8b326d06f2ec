"""Replay protection: a captured request frame is never processed twice.

The spec's ``ts`` window (``max_skew``) already refuses old frames as
``stale``; inside the window, this cache of recent (terminal, MAC) pairs
answers a replayed transaction frame ``duplicate`` with the original's
reference, straight away: it is neither validated nor looked up again, and
can never cause a second alert. Only final answers are kept (accepted /
duplicate): a frame answered ``unavailable`` may be retried as it is.

Per gateway process, and bounded (oldest entries go first; 50,000 entries,
~17 MB, cover the whole window up to ~80 transactions/s): a replay that
another process receives, or one that comes after its entry was evicted,
still meets the store's idempotency check and is answered ``duplicate``
there. Pure: times are passed in.
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
        self._seen: dict[tuple[str, str], Replayed] = {}  # insertion (= time) order
        self.hits = 0

    def __len__(self) -> int:
        return len(self._seen)

    def get(self, terminal: str, mac: str, now: float) -> Replayed | None:
        """The original answer when this frame was answered within ``ttl``."""
        found = self._seen.get((terminal, mac))
        if found is None or found.expires_at <= now:
            return None
        self.hits += 1
        return found

    def put(self, terminal: str, mac: str, ref: str, alerts: int, now: float) -> None:
        """Remember a final answer; forget what expired or overflowed."""
        seen = self._seen
        seen[terminal, mac] = Replayed(ref, alerts, now + self.ttl)
        # Entries are added in time order, so expired ones are at the front.
        while seen:
            oldest = next(iter(seen))
            if len(seen) <= self.max_entries and seen[oldest].expires_at > now:
                break
            del seen[oldest]
