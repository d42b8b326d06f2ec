"""Flow control for one bind: a token bucket of parts per second and an
adaptive rate that backs off when the SMSC answers ESME_RTHROTTLED.

Pure logic; time comes in as numbers from the caller's clock.

Kannel pauses a whole link for about a second on every throttle answer
(facts.md: 41 msg/s with 10% of submits throttled). Here a throttle answer
never stops the bind: the submit is sent again at the next token, and the
rate is lowered only when throttling turns out to depend on the rate.
"""

from __future__ import annotations

from dataclasses import dataclass

_EPSILON = 1e-6  # seconds: below any rate's token spacing, above float noise


class TokenBucket:
    """Tokens at ``rate`` per second, at most ``burst`` banked; one per part."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def _refill(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed > 0:
            tokens = self._tokens + elapsed * self.rate
            self._tokens = tokens if tokens < self.burst else self.burst
            self._last = now

    def take(self, now: float, n: int = 1) -> bool:
        """Take ``n`` tokens if they are there; return whether it did."""
        self._refill(now)
        # A token computed to arrive "now" may land a hair short in floating
        # point (clock seconds are ~1.7e9, resolution ~0.2 µs); count a token
        # due within a microsecond as there.
        if self._tokens >= n - self.rate * _EPSILON:
            self._tokens -= n
            return True
        return False

    def available(self, now: float) -> int:
        """Whole tokens available now."""
        self._refill(now)
        return int(self._tokens)

    def delay(self, now: float, n: int = 1) -> float:
        """Seconds until ``n`` tokens will be there (0 when they are now)."""
        self._refill(now)
        missing = n - self._tokens
        return 0.0 if missing <= self.rate * _EPSILON else missing / self.rate

    def set_rate(self, rate: float, now: float) -> None:
        """Change the rate from now on; the burst follows the rate."""
        self._refill(now)
        self.rate = rate
        self.burst = burst_for(rate)
        if self._tokens > self.burst:
            self._tokens = self.burst


def burst_for(rate: float) -> float:
    """The bucket depth for a rate: a tenth of a second's worth, at least 1."""
    return max(1.0, rate / 10.0)


@dataclass(frozen=True, slots=True)
class AdaptiveSettings:
    """Tuning for AdaptiveRate (defaults suit SMSCs from 10 to 50,000 tps)."""

    interval: float = 1.0  # seconds per measurement
    margin: float = 0.97  # settle this far below the accepted rate
    floor: float = 1.0  # parts/s: never below this, so the bind never stops
    creep: float = 0.01  # near a found limit: probe up by this fraction of the rate
    recover: float = 0.05  # long after the last cut: climb by this fraction of tps
    settle: float = 30.0  # seconds after a cut during which we creep, not climb
    hold: float = 10.0  # seconds to trust "throttling is not rate-related"


class AdaptiveRate:
    """Decides the bind's send rate from what the SMSC answers.

    Each interval counts submits answered and how many were throttled. When
    an interval had throttling, the rate is cut to the rate the SMSC
    accepted (times ``margin``) and the next interval tests whether that
    helped: if the throttled share did not at least halve, the SMSC throttles
    at random (or for reasons other than our rate), so the previous rate is
    restored and kept for ``hold`` seconds. Quiet intervals raise the rate:
    slowly (``creep`` of the current rate) for ``settle`` seconds after a cut,
    so the rate hovers just under a limit the SMSC enforces, then faster
    (``recover`` of the configured tps) back up to the configured tps. The
    rate never drops below ``floor`` parts per second, so the bind never
    stops; the floor is absolute, not a share of the configured tps, which
    may be far above what the SMSC takes (a bind configured for 100,000/s
    against an SMSC limited to 2,000/s could otherwise never go below 5,000).
    """

    def __init__(
        self, ceiling: float, now: float, settings: AdaptiveSettings | None = None
    ) -> None:
        self.ceiling = ceiling
        self.settings = settings or AdaptiveSettings()
        self.rate = ceiling
        self._start = now
        self._answered = 0
        self._throttled = 0
        self._probe: tuple[float, float] | None = None  # (rate before cut, share)
        self._hold_until = 0.0
        self._last_cut = float("-inf")
        self.cuts = 0
        self.throttled_total = 0

    def record(self, throttled: bool) -> None:
        """Count one submit response."""
        self._answered += 1
        if throttled:
            self._throttled += 1
            self.throttled_total += 1

    def update(self, now: float) -> float | None:
        """Close the interval if it is over; return the new rate if it changed."""
        elapsed = now - self._start
        s = self.settings
        if elapsed < s.interval:
            return None
        answered, throttled = self._answered, self._throttled
        self._start, self._answered, self._throttled = now, 0, 0
        if answered == 0 or elapsed > 2 * s.interval:
            # Nothing to judge, or the bind sat idle for part of the span,
            # so answers per second would not measure what the SMSC accepts.
            return None
        share = throttled / answered
        old = self.rate
        probe, self._probe = self._probe, None
        if probe is not None:
            before, share_before = probe
            if share > share_before / 2:
                # Cutting the rate did not help: not our rate's fault.
                self._hold_until = now + s.hold
                self.rate = before
        elif throttled and now >= self._hold_until:
            accepted = (answered - throttled) / elapsed
            cut = max(s.floor, min(self.rate, accepted * s.margin))
            if cut < self.rate:
                self._probe = (self.rate, share)
                self.rate = cut
                self._last_cut = now
                self.cuts += 1
        elif not throttled and self.rate < self.ceiling:
            if now - self._last_cut < s.settle:
                step = self.rate * s.creep
            else:
                step = self.ceiling * s.recover
            self.rate = min(self.ceiling, self.rate + step)
        return self.rate if self.rate != old else None
