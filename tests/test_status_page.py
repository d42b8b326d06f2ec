"""The status page end to end in headless Chromium: a real gateway process,
one alert through the simulator, then the page as a browser renders it."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, utils

from tests.gateway_harness import body, connect, start
from tests.test_loopback import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.loopback]

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None and os.environ.get("CI") != "true":
    pytestmark.append(pytest.mark.skip(reason="no chromium (./dev test installs it)"))


@pytest_twisted.inlineCallbacks
def test_the_status_page_shows_binds_queue_and_deliveries(
    tmp_path: Path,
) -> Generator[Any, Any, None]:
    """After one delivered alert the page, run in Chromium, shows the sim
    carrier up with its window, an empty queue, 100% delivered and no problem."""
    assert CHROMIUM is not None, "CI must have chromium (./dev test installs it)"
    sim, gw = yield start(tmp_path)
    try:
        accepted: set[str] = set()
        [client] = yield connect(gw, accepted, 1)
        client.send(body(0, 1, int(reactor.seconds())))
        yield wait_until(lambda: gw.alerts().get("delivered") == 1, timeout=30)
        log = gw.log_path.read_text(errors="replace")
        port = re.findall(r"admin API listening on 127\.0\.0\.1:(\d+)", log)[-1]
        dom, _, code = yield utils.getProcessOutputAndValue(
            CHROMIUM,
            [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                f"--user-data-dir={tmp_path / 'chromium'}",
                "--virtual-time-budget=4000",
                "--dump-dom",
                f"http://127.0.0.1:{port}/",
            ],
            env={"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")},
        )
        assert code == 0
        page = dom.decode()
        assert '<h1>smsgw <span id="health">running</span></h1>' in page
        assert '<td>sim</td><td class="up">up</td><td>1/1</td>' in page
        assert '<b id="queued">0</b>' in page
        assert '<b id="delivered">100%</b>' in page
        assert '<svg id="chart"' in page
        client.transport.loseConnection()
    finally:
        yield gw.kill(15)
        yield sim.stopService()
