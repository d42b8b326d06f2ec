"""Cheap histograms kept by the gateway itself (pure, no I/O).

The store's writers observe each batch (time from leaving the gateway to
its committed answer, writes carried); the carrier senders each submit_sm's
round trip to its resp (one bisect and three additions). Exposed as
Prometheus histograms by smsgw.service.metrics.
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["BATCH_SECONDS", "BATCH_SIZES", "RESP_SECONDS", "Histogram", "WriterStats"]

BATCH_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
BATCH_SIZES = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)
RESP_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0)


class Histogram:
    """Counts per upper bound (the last bucket is +Inf), sum and count."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound as Prometheus writes it, cumulative count) per bucket."""
        out, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
        return out


class WriterStats:
    """What a writer observes per batch."""

    __slots__ = ("seconds", "sizes")

    def __init__(self) -> None:
        self.seconds = Histogram(BATCH_SECONDS)
        self.sizes = Histogram(BATCH_SIZES)

    def batch(self, seconds: float, size: int) -> None:
        self.seconds.observe(seconds)
        self.sizes.observe(size)
