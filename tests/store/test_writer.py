"""The group-commit writer: one commit for many writes, failures isolated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
)
from twisted.internet import defer

from smsgw.store.writer import BatchOp, DbWriter, StoreUnavailable
from smsgw.testing import ThreadedClock

meta = MetaData()
things = Table(
    "writer_things",
    meta,
    Column("id", Integer, primary_key=True),
    Column("name", String(10)),
)


def _insert(conn: Connection, items: Sequence[tuple[int, str]]) -> list[int]:
    conn.execute(insert(things), [{"id": i, "name": n} for i, n in items])
    return [i for i, _ in items]


INSERT: BatchOp[tuple[int, str], int] = BatchOp("insert", _insert)


@pytest.fixture
def writer(engine: Engine) -> Any:
    meta.create_all(engine)
    clock = ThreadedClock()
    w = DbWriter(engine, clock, max_batch=100)  # type: ignore[arg-type]
    w.clock = clock  # type: ignore[attr-defined]
    yield w
    if w._thread is not None:
        clock.result(w.stop())
    meta.drop_all(engine)


def _names(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r.name for r in conn.execute(select(things).order_by(things.c.id))]


def test_writes_queued_together_commit_together(
    writer: DbWriter, engine: Engine
) -> None:
    """Writes queued before the thread runs are committed in one transaction."""
    ds = [writer.submit(INSERT, (i, f"n{i}")) for i in range(50)]
    writer.start()
    results = writer.clock.result(defer.gatherResults(ds))  # type: ignore[attr-defined]
    assert results == list(range(50))
    assert writer.commits == 1
    assert writer.written == 50
    assert len(_names(engine)) == 50


def test_one_bad_write_fails_alone(writer: DbWriter, engine: Engine) -> None:
    """A write that violates a key fails StoreUnavailable; its batch-mates commit."""
    writer.start()
    writer.clock.result(writer.submit(INSERT, (1, "first")))  # type: ignore[attr-defined]
    ds = [
        writer.submit(INSERT, (2, "a")),
        writer.submit(INSERT, (1, "dup")),
        writer.submit(INSERT, (3, "b")),
    ]
    out: list[Any] = []
    for d in ds:
        d.addBoth(out.append)
    writer.clock.run_until(lambda: len(out) == 3)  # type: ignore[attr-defined]
    assert out[0] == 2
    assert out[2] == 3
    assert out[1].check(StoreUnavailable)
    assert _names(engine) == ["first", "a", "b"]


def test_stop_commits_what_is_queued_and_refuses_more(
    writer: DbWriter, engine: Engine
) -> None:
    """stop() lets queued writes commit; later submits fail at once."""
    d = writer.submit(INSERT, (1, "x"))
    writer.start()
    stopped = writer.stop()
    writer.clock.result(stopped)  # type: ignore[attr-defined]
    assert d.called
    assert _names(engine) == ["x"]
    late = writer.submit(INSERT, (2, "y"))
    failures: list[Any] = []
    late.addErrback(failures.append)
    assert failures[0].check(StoreUnavailable)
    writer._thread = None


def test_store_down_answers_unavailable(tmp_path: Any) -> None:
    """When the database cannot be reached every write fails StoreUnavailable."""
    from smsgw.store.db import make_engine

    engine = make_engine(
        f"sqlite:///{tmp_path}/missing/../nodir/x.db", create_dirs=False
    )
    clock = ThreadedClock()
    w = DbWriter(engine, clock)  # type: ignore[arg-type]
    w.start()
    with pytest.raises(StoreUnavailable):
        clock.result(w.submit(INSERT, (1, "x")))
    clock.result(w.stop())


def test_urgent_writes_commit_first_in_their_own_transaction(
    writer: DbWriter, engine: Engine
) -> None:
    """Accept-like (urgent) writes taken with others are committed and answered
    first, in a transaction of their own."""
    order: list[str] = []

    def tag(name: str) -> BatchOp[tuple[int, str], int]:
        def run(conn: Connection, items: Sequence[tuple[int, str]]) -> list[int]:
            order.append(name)
            return _insert(conn, items)

        return BatchOp(name, run, urgent=name == "urgent")

    slow, fast = tag("later"), tag("urgent")
    ds = [writer.submit(slow, (1, "a")), writer.submit(fast, (2, "b"))]
    writer.start()
    writer.clock.result(defer.gatherResults(ds))  # type: ignore[attr-defined]
    assert order == ["urgent", "later"]
    assert writer.commits == 2
