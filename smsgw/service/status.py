"""The status page at ``/``: what an operator checks first, at 3 a.m.

A self-contained HTML page (no external assets: it works offline) that
fetches ``/api/v1/status`` every 5 seconds and shows each bind's state,
window use and rate, the queue, throughput over the last minutes as a small
SVG chart, delivery and feedback figures, and the latest warnings. With
admin tokens set the page asks for one once (kept in the tab's session
storage) and sends it as a bearer token.

`StatusHistory` samples the gateway's counters every ``interval`` seconds on
the injected clock; `RecentProblems` keeps the last warnings and errors from
the log (messages never carry card numbers or secrets by construction).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import (
    ILogObserver,
    LogEvent,
    LogLevel,
    formatEvent,
    globalLogPublisher,
)
from typing_extensions import override
from zope.interface import implementer

__all__ = ["STATUS_PAGE", "RecentProblems", "StatusHistory"]


class StatusHistory(Service):
    """Counter samples every ``interval`` seconds, the last ``keep`` of them."""

    def __init__(
        self,
        clock: IReactorTime,
        sample: Callable[[], Mapping[str, int]],
        *,
        interval: float = 10.0,
        keep: int = 60,
    ) -> None:
        self.clock = clock
        self.sample = sample
        self.interval = interval
        self.samples: deque[tuple[float, dict[str, int]]] = deque(maxlen=keep + 1)
        self._loop: LoopingCall | None = None

    @override
    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self._take)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=True)

    @override
    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _take(self) -> None:
        self.samples.append((self.clock.seconds(), dict(self.sample())))

    def rates(self) -> list[dict[str, float]]:
        """Per interval: its end time and each counter's rate per second."""
        out: list[dict[str, float]] = []
        pairs = list(self.samples)
        for (t0, a), (t1, b) in itertools.pairwise(pairs):
            span = max(t1 - t0, 1e-9)
            point: dict[str, float] = {"t": t1}
            for key, value in b.items():
                point[key] = round(max(0, value - a.get(key, 0)) / span, 2)
            out.append(point)
        return out


@implementer(ILogObserver)
class RecentProblems(Service):
    """The last ``keep`` warnings and errors logged by this process."""

    def __init__(self, keep: int = 20) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=keep)

    def __call__(self, event: LogEvent) -> None:
        level = event.get("log_level")
        if level is None or level < LogLevel.warn:
            return
        text = formatEvent(event) or ""
        self.events.append(
            {
                "time": event.get("log_time"),
                "level": level.name,
                "text": text.splitlines()[0][:300] if text else "",
            }
        )

    @override
    def startService(self) -> None:
        super().startService()
        globalLogPublisher.addObserver(self)

    @override
    def stopService(self) -> None:
        super().stopService()
        globalLogPublisher.removeObserver(self)


STATUS_PAGE = (Path(__file__).parent / "status.html").read_bytes()
