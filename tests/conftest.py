"""Shared fixtures: fail any test that logged an unhandled error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twisted.logger import LogEvent, globalLogPublisher


@pytest.fixture(autouse=True)
def observe_errors() -> Iterator[list[LogEvent]]:
    """Fail the test if anything logged a failure it did not expect.

    Tests that expect a logged failure pop it from the returned list.
    """
    errors: list[LogEvent] = []

    def observer(event: LogEvent) -> None:
        if event.get("log_failure") is not None or event.get("isError"):
            errors.append(event)

    globalLogPublisher.addObserver(observer)
    try:
        yield errors
    finally:
        globalLogPublisher.removeObserver(observer)
    if errors:
        failure = errors[0].get("log_failure")
        detail = failure.getTraceback() if failure is not None else str(errors[0])
        pytest.fail(f"{len(errors)} unexpected logged error(s):\n{detail}")
