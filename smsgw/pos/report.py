"""Output of ``smsgw pos`` load runs: the live progress line and the summary."""

from __future__ import annotations

from smsgw.pos.load import LoadStats

__all__ = [
    "format_progress",
    "format_summary",
]


def format_progress(stats: LoadStats, width: int = 20) -> str:
    """The one-line progress bar (no carriage return). Returns the line."""
    done = stats.answered + stats.failed
    total = max(stats.count, 1)
    filled = min(width, done * width // total)
    ok = stats.by_status["accepted"] + stats.by_status["duplicate"]
    other = done - ok
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {done}/{stats.count} "
        f"{100 * done // total:3d}%  {stats.rate:,.0f} tx/s  ok {ok}  "
        f"other {other}  in flight {stats.outstanding}"
    )


def format_summary(stats: LoadStats, *, interrupted: bool = False) -> str:
    """The end-of-run summary: counts by status, alerts, rate, latencies (ms).

    Returns several lines ending with a newline.
    """
    head = "interrupted: " if interrupted else ""
    lines = [
        f"{head}sent {stats.sent} of {stats.count}, answered {stats.answered} "
        f"in {stats.elapsed:.3f} s: {stats.rate:,.1f} tx/s"
    ]
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(stats.by_status.items()))
    lines.append(f"status: {statuses or 'none'}")
    if stats.failures:
        failed = ", ".join(f"{k} {v}" for k, v in sorted(stats.failures.items()))
        lines.append(f"failed: {failed}")
    lines.append(f"alerts: {stats.alerts}")
    lines.append(
        f"ack latency ms: p50 {stats.p50 * 1000:.2f}  p90 {stats.p90 * 1000:.2f}  "
        f"p99 {stats.p99 * 1000:.2f}  max {stats.max * 1000:.2f}"
    )
    return "\n".join(lines) + "\n"
