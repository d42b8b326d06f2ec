"""The store process: batch operations run in a child process over a pipe."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from smsgw.store import schema as S
from smsgw.store.delivery import receipt_op
from smsgw.store.remote import RemoteStore, StoreProcessError
from smsgw.store.rows import ReceiptRecord
from smsgw.store.writer import DbWriter, StoreUnavailable
from smsgw.testing import ThreadedClock
from tests.store.helpers import ACCEPT, NOW, hasher, item, txn


@pytest.fixture
def remote(engine: Engine) -> Iterator[RemoteStore]:
    store = RemoteStore(engine.url.render_as_string(hide_password=False))
    yield store
    store.close()


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_operations_run_in_the_child_and_commit(
    remote: RemoteStore, engine: Engine, tmp_path: Path
) -> None:
    """An accept batch sent to the child is committed there; results come back."""
    h = hasher(tmp_path)
    items = [item(txn(h, txn_id=f"t{i}")) for i in range(3)]
    [results] = remote.run([(ACCEPT, items)])
    assert [r.result.status for r in results] == ["accepted"] * 3
    assert results[0].queued[0].destination == "+8613800138000"
    assert _count(engine, S.transactions) == 3
    [again] = remote.run([(ACCEPT, items[:1])])  # the op is known now
    assert again[0].result.status == "duplicate"


def test_a_failed_batch_raises_and_the_child_goes_on(
    remote: RemoteStore, engine: Engine, tmp_path: Path
) -> None:
    """A batch whose operation fails rolls back and raises; the next one works."""
    bad = ReceiptRecord("sim", "m1", "DELIVRD", None, NOW)
    with pytest.raises(StoreProcessError):
        remote.run([(receipt_op, [bad._replace(carrier=None)])])  # type: ignore[arg-type]
    assert _count(engine, S.receipts) == 0
    remote.run([(receipt_op, [bad])])
    assert _count(engine, S.receipts) == 1


def test_a_dead_child_is_started_again(
    remote: RemoteStore, engine: Engine, tmp_path: Path
) -> None:
    """A child found dead is started again; one that dies while a batch is
    under way fails that batch only."""
    remote.run([(receipt_op, [ReceiptRecord("sim", "m1", "DELIVRD", None, NOW)])])
    assert remote._proc is not None
    first = remote._proc.pid
    os.kill(first, signal.SIGKILL)
    remote._proc.wait()
    remote.run([(receipt_op, [ReceiptRecord("sim", "m2", "DELIVRD", None, NOW)])])
    assert remote._proc.pid != first
    assert remote._proc.stdin is not None
    os.kill(remote._proc.pid, signal.SIGKILL)  # dies, unnoticed until the read
    remote._proc.poll = lambda: None  # type: ignore[method-assign]
    with pytest.raises(StoreProcessError, match="ended"):
        remote.run([(receipt_op, [ReceiptRecord("sim", "m3", "DELIVRD", None, NOW)])])
    remote.run([(receipt_op, [ReceiptRecord("sim", "m4", "DELIVRD", None, NOW)])])
    assert _count(engine, S.receipts) == 3


def test_writer_through_the_store_process(engine: Engine, tmp_path: Path) -> None:
    """DbWriter with a RemoteStore: results and failures arrive as with a thread."""
    clock = ThreadedClock()
    remote = RemoteStore(engine.url.render_as_string(hide_password=False))
    writer = DbWriter(engine, clock, remote=remote)  # type: ignore[arg-type]
    writer.start()
    h = hasher(tmp_path)
    out = clock.result(writer.submit(ACCEPT, item(txn(h))))
    assert out.result.status == "accepted"
    bad = ReceiptRecord(None, "m", "DELIVRD", None, NOW)  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailable):
        clock.result(writer.submit(receipt_op, bad))
    clock.result(writer.stop())
    assert remote._proc is None  # closed with the writer
