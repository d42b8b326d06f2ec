"""Token bucket and adaptive rate: pure, driven by simulated time."""

from __future__ import annotations

import random

import pytest

from smsgw.session.throttle import AdaptiveRate, TokenBucket, burst_for


def test_bucket_starts_full_and_refills_at_rate() -> None:
    """A bucket gives its burst at once, then one token per 1/rate seconds."""
    bucket = TokenBucket(rate=10, burst=2, now=0.0)
    assert bucket.take(0.0)
    assert bucket.take(0.0)
    assert not bucket.take(0.0)
    assert bucket.delay(0.0) == pytest.approx(0.1)
    assert not bucket.take(0.09)
    assert bucket.take(0.1)
    assert bucket.available(100.0) == 2  # never more than the burst


def test_bucket_rate_change_caps_the_banked_tokens() -> None:
    """Lowering the rate lowers the burst and drops banked tokens above it."""
    bucket = TokenBucket(rate=1000, burst=burst_for(1000), now=0.0)
    assert bucket.available(0.0) == 100
    bucket.set_rate(50, 0.0)
    assert bucket.available(0.0) == 5


def test_bucket_rejects_nonsense() -> None:
    """A zero rate or a burst below one token is a programming error."""
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=0, burst=1, now=0)


def simulate(
    tps: float,
    smsc_limit: float | None,
    throttle_fraction: float,
    seconds: float,
    offered: float | None = None,
) -> tuple[float, float, AdaptiveRate]:
    """Send as fast as our bucket allows to an SMSC that throttles; return the
    send and accept rates over the last third of the run. ``offered``: the
    most the rest of the gateway can push (its window, the store), whatever
    the bucket allows."""
    rng = random.Random(7)
    now = 0.0
    ours = TokenBucket(tps, burst_for(tps), now)
    rest = TokenBucket(offered, burst_for(offered), now) if offered else None
    adaptive = AdaptiveRate(tps, now)
    smsc = TokenBucket(smsc_limit, burst_for(smsc_limit), now) if smsc_limit else None
    sent = accepted = 0
    tail = seconds * 2 / 3
    step = 0.001
    while now < seconds:
        now += step
        while (rest is None or rest.available(now) >= 1) and ours.take(now):
            if rest is not None:
                rest.take(now)
            throttled = (smsc is not None and not smsc.take(now)) or (
                rng.random() < throttle_fraction
            )
            adaptive.record(throttled)
            if now >= tail:
                sent += 1
                accepted += not throttled
        rate = adaptive.update(now)
        if rate is not None:
            ours.set_rate(rate, now)
    span = seconds - tail
    return sent / span, accepted / span, adaptive


def test_rate_settles_just_below_an_smsc_rate_limit() -> None:
    """Against an SMSC limit of 600/s, a 1000 tps bind settles within 10% below it."""
    send_rate, accept_rate, adaptive = simulate(1000, 600, 0.0, 90)
    assert 540 <= send_rate <= 610
    assert accept_rate >= 540
    assert adaptive.cuts >= 1


@pytest.mark.parametrize("tps", [1250, 2000, 5000, 100_000])
def test_rate_settles_below_a_limit_far_under_the_configured_tps(tps: float) -> None:
    """The configured tps may be far above what the SMSC takes (a contract
    rate, or none: 100,000), and the rest of the gateway may push less than
    the tps: the bind still settles within 10% below the SMSC's limit of
    1,000/s instead of hammering it with submits it throttles."""
    send_rate, accept_rate, adaptive = simulate(tps, 1000, 0.0, 120, offered=4000)
    assert 900 <= accept_rate <= 1001
    assert send_rate <= 1.05 * 1000  # few throttled submits: not hammering
    assert adaptive.cuts >= 1


def test_random_throttling_does_not_slow_the_bind() -> None:
    """With 10% of submits throttled at random, the bind keeps 90% of its rate."""
    send_rate, accept_rate, _ = simulate(1000, None, 0.10, 90)
    assert send_rate >= 900
    assert accept_rate >= 0.9 * 0.9 * 1000


def test_rate_never_drops_below_the_floor() -> None:
    """Even when every submit is throttled the bind keeps sending: cutting the
    rate does not help, so it is restored (throttling unrelated to our rate)."""
    send_rate, accept_rate, adaptive = simulate(1000, None, 1.0, 60)
    assert accept_rate == 0
    assert send_rate >= 0.05 * 1000 * 0.9
    assert adaptive.rate >= 50
    cut = AdaptiveRate(1000, 0.0)
    for _ in range(100):
        cut.record(True)
    assert cut.update(1.0) == 1.0  # the floor: one part a second


def test_quiet_intervals_recover_the_configured_rate() -> None:
    """After throttling stops, the rate climbs back to the configured tps."""
    adaptive = AdaptiveRate(1000, 0.0)
    for _ in range(100):
        adaptive.record(True)
    for _ in range(100):
        adaptive.record(False)
    assert adaptive.update(1.0) is not None
    assert adaptive.rate < 1000
    now = 1.0
    for _ in range(200):
        now += 1.0
        for _ in range(50):
            adaptive.record(False)
        adaptive.update(now)
    assert adaptive.rate == 1000


def test_bucket_delay_is_honoured_at_wall_clock_magnitudes() -> None:
    """Waiting exactly delay() always yields a token, even at now ~ 1.7e9 s."""
    now = 1_764_417_605.123
    bucket = TokenBucket(rate=100, burst=10, now=now)
    for _ in range(10):
        assert bucket.take(now)
    for _ in range(1000):
        now += bucket.delay(now)
        assert bucket.take(now)


def test_an_idle_gap_is_not_measured_as_a_low_accept_rate() -> None:
    """After the bind sat idle, one throttled answer does not cut the rate."""
    adaptive = AdaptiveRate(1000, 0.0)
    adaptive.record(True)
    assert adaptive.update(30.0) is None
    assert adaptive.rate == 1000
