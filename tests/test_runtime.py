"""Process-wide garbage-collector settings for the long-running processes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from smsgw.runtime import GC_THRESHOLDS, tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_tune_gc_freezes_start_up_objects_and_spaces_young_passes() -> None:
    """What exists at start-up is moved out of the collector's generations and
    young passes run every 50,000 net allocations instead of 700."""
    kept = [object() for _ in range(10)]
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS == (50_000, 20, 100)
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_count()[0] < 50_000
