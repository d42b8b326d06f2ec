"""Group commit through the store process, driven from the reactor.

Unit tests drive StoreProcessWriter with a Clock and a fake child whose
requests are read from its stdin and answered by hand; the last tests run
the real child (``python -m smsgw.store.remote``) on the real reactor, on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import Connection, Engine, func, select
from twisted.internet import defer, error, reactor
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from smsgw.store import schema as S
from smsgw.store.delivery import receipt_op
from smsgw.store.procwriter import StoreProcessWriter, spawn_store_process
from smsgw.store.remote import encode_frame, split_frames
from smsgw.store.rows import ReceiptRecord
from smsgw.store.writer import BatchOp, StoreUnavailable
from tests.store.helpers import ACCEPT, NOW, hasher, item, txn, write_test_vault


def _echo(conn: Connection, items: Sequence[Any]) -> list[Any]:
    return list(items)  # never run here: the fake child answers by hand


LATER: BatchOp[str, str] = BatchOp("later", _echo)
URGENT: BatchOp[str, str] = BatchOp("urgent", _echo, urgent=True)


class FakeChild:
    """A child process's transport: records what the writer sends it."""

    def __init__(self, proto: ProcessProtocol) -> None:
        self.proto = proto
        self.stdin = b""
        self.signals: list[str] = []
        self.stdin_closed = False

    # ChildHandle
    def write(self, data: bytes) -> None:
        self.stdin += data

    def close_input(self) -> None:
        self.stdin_closed = True

    def kill(self) -> None:
        self.signals.append("KILL")

    def requests(self) -> list[list[tuple[str, bool, list[Any]]]]:
        """Requests not yet read: [(op name, code sent?, items), ...] each."""
        frames, self.stdin = split_frames(self.stdin)
        return [
            [(name, run is not None, items) for name, run, items in pickle.loads(f)]
            for f in frames
        ]

    def answer(self, value: object, *, bytewise: bool = False) -> None:
        data = encode_frame(value)
        chunks = [data[i : i + 1] for i in range(len(data))] if bytewise else [data]
        for chunk in chunks:
            self.proto.childDataReceived(1, chunk)

    def end(self, how: str = "killed") -> None:
        self.proto.processEnded(Failure(error.ProcessTerminated(signal=9)))


class Harness:
    def __init__(self, **kw: Any) -> None:
        self.clock = Clock()
        self.children: list[FakeChild] = []
        self.writer = StoreProcessWriter(self._spawn, self.clock, **kw)

    def _spawn(self, proto: ProcessProtocol) -> Any:
        child = FakeChild(proto)
        self.children.append(child)
        return child

    @property
    def child(self) -> FakeChild:
        return self.children[-1]

    def submit(self, op: BatchOp[str, str], item: str) -> list[Any]:
        """Submit; the returned list gets the result or the Failure."""
        out: list[Any] = []
        self.writer.submit(op, item).addBoth(out.append)
        return out


def test_writes_of_one_iteration_leave_in_one_request() -> None:
    """Writes submitted before the reactor turns go to the child together, the
    operation's code with its first use only; results fire after the answer."""
    h = Harness()
    a, b = h.submit(LATER, "a"), h.submit(LATER, "b")
    assert h.children == []  # nothing leaves before the reactor turns
    h.clock.advance(0)
    assert h.child.requests() == [[("later", True, ["a", "b"])]]
    assert a == []
    assert h.writer.pending == 2
    h.child.answer(("ok", [["A", "B"]]))
    assert (a, b) == (["A"], ["B"])
    assert (h.writer.pending, h.writer.commits, h.writer.written) == (0, 1, 2)
    c = h.submit(LATER, "c")
    h.clock.advance(0)
    assert h.child.requests() == [[("later", False, ["c"])]]  # code known now
    h.child.answer(("ok", [["C"]]), bytewise=True)  # any chunking
    assert c == ["C"]
    assert h.clock.getDelayedCalls() == []


def test_urgent_writes_come_first_and_delivery_records_ride_along() -> None:
    """Accepts (urgent) lead every request, max_batch of them at most, and up to
    max_batch delivery records ride along, so a flood of accepts never holds
    back the records that free the dispatcher's window."""
    h = Harness(max_batch=3)
    rest = [h.submit(LATER, x) for x in "lmnop"]
    now = [h.submit(URGENT, x) for x in "uvwxy"]
    h.clock.advance(0)
    assert h.child.requests() == [
        [("urgent", True, ["u", "v", "w"]), ("later", True, ["l", "m", "n"])],
        [("urgent", False, ["x", "y"]), ("later", False, ["o", "p"])],
    ]
    h.child.answer(("ok", [["U", "V", "W"], ["L", "M", "N"]]))
    assert [r[0] for r in now[:3] + rest[:3]] == list("UVWLMN")
    assert now[3] == []
    h.child.answer(("ok", [["X", "Y"], ["O", "P"]]))
    assert [r[0] for r in now + rest] == list("UVWXYLMNOP")


def test_the_next_request_leaves_before_the_results_are_handed_out() -> None:
    """The child is given its next request before the answer's callbacks run."""
    h = Harness(max_requests=1)
    seen: list[int] = []
    h.writer.submit(LATER, "a").addCallback(
        lambda _: seen.append(len(h.child.requests()))
    )
    h.clock.advance(0)
    h.child.requests()
    h.submit(LATER, "b")
    h.clock.advance(0)
    assert h.child.requests() == []  # one request in the child at most
    h.child.answer(("ok", [["A"]]))
    assert seen == [1]  # "b" had left when "a"'s callback ran


def test_results_are_matched_per_operation_in_a_mixed_request() -> None:
    """Items of two operations in one request get their own results back."""
    other: BatchOp[str, str] = BatchOp("other", _echo)
    h = Harness()
    a, b, c = h.submit(LATER, "a"), h.submit(other, "b"), h.submit(LATER, "c")
    h.clock.advance(0)
    assert h.child.requests() == [[("later", True, ["a", "c"]), ("other", True, ["b"])]]
    h.child.answer(("ok", [["A", "C"], ["B"]]))
    assert (a, b, c) == (["A"], ["B"], ["C"])


def test_two_requests_in_the_child_the_rest_waits_and_batches() -> None:
    """At most two requests are in the child; what comes meanwhile leaves together,
    at most max_batch at a time."""
    h = Harness(max_batch=2)
    first = [h.submit(LATER, x) for x in "abcde"]
    h.clock.advance(0)
    assert h.child.requests() == [
        [("later", True, ["a", "b"])],
        [("later", False, ["c", "d"])],
    ]
    more = h.submit(LATER, "f")
    h.clock.advance(0)
    assert h.child.requests() == []  # two in the child already
    h.child.answer(("ok", [["A", "B"]]))
    assert h.child.requests() == [[("later", False, ["e", "f"])]]
    h.child.answer(("ok", [["C", "D"]]))
    h.child.answer(("ok", [["E", "F"]]))
    assert [r[0] for r in first] == list("ABCDE")
    assert more == ["F"]


def test_linger_gathers_writes_but_never_delays_an_accept() -> None:
    """With commit_interval, delivery records wait to fill a batch; an urgent
    write sends at once."""
    h = Harness(linger=0.005)
    h.submit(LATER, "a")
    h.clock.advance(0.004)
    assert h.children == []
    h.submit(LATER, "b")
    h.clock.advance(0.001)
    assert h.child.requests() == [[("later", True, ["a", "b"])]]
    h.child.answer(("ok", [["A", "B"]]))
    h.submit(LATER, "c")
    h.clock.advance(0.001)
    assert h.child.requests() == []
    h.submit(URGENT, "u")
    h.clock.advance(0)
    assert h.child.requests() == [[("urgent", True, ["u"]), ("later", False, ["c"])]]


def test_a_failed_batch_is_written_item_by_item_and_one_bad_write_fails_alone() -> None:
    """An error answer splits the batch; a write that fails alone is tried once
    more, then errbacks StoreUnavailable; its neighbours are committed."""
    h = Harness()
    good, bad = h.submit(LATER, "good"), h.submit(LATER, "bad")
    h.clock.advance(0)
    h.child.requests()
    h.child.answer(("error", "IntegrityError: boom"))
    assert h.child.requests() == [
        [("later", False, ["good"])],
        [("later", False, ["bad"])],
    ]
    h.child.answer(("ok", [["GOOD"]]))
    h.child.answer(("error", "IntegrityError: boom"))
    assert good == ["GOOD"]
    assert bad == []
    assert h.child.requests() == [[("later", False, ["bad"])]]  # once more
    h.child.answer(("error", "IntegrityError: boom"))
    assert bad[0].check(StoreUnavailable)
    assert "IntegrityError: boom" in bad[0].getErrorMessage()
    assert h.writer.pending == 0


def test_a_dead_child_fails_its_requests_over_to_a_new_one() -> None:
    """A child that dies with requests in it is replaced; the writes are sent
    again (each alone) to the new child, whose code cache starts empty."""
    h = Harness()
    a, b = h.submit(LATER, "a"), h.submit(LATER, "b")
    h.clock.advance(0)
    first = h.child
    first.requests()
    first.end()
    assert len(h.children) == 2
    assert h.child.requests() == [
        [("later", True, ["a"])],
        [("later", False, ["b"])],
    ]
    first.answer(("ok", [["stale"]]))  # anything from the dead child is ignored
    h.child.answer(("ok", [["A"]]))
    h.child.answer(("ok", [["B"]]))
    assert (a, b) == (["A"], ["B"])


def test_a_child_that_does_not_answer_is_killed_and_replaced() -> None:
    """No answer within answer_timeout: the child is killed, the write retried."""
    h = Harness(answer_timeout=30.0)
    out = h.submit(LATER, "a")
    h.clock.advance(0)
    stuck = h.child
    h.clock.advance(29.9)
    assert stuck.signals == []
    h.clock.advance(0.1)
    assert stuck.signals == ["KILL"]
    assert len(h.children) == 2
    h.child.answer(("ok", [["A"]]))
    assert out == ["A"]
    stuck.end()  # its end arrives later: nothing more happens
    assert len(h.children) == 2
    assert h.clock.getDelayedCalls() == []


def test_a_garbled_answer_kills_the_child() -> None:
    """An answer that does not unpickle: the child is not trusted any more."""
    h = Harness()
    out = h.submit(LATER, "a")
    h.clock.advance(0)
    bad = h.child
    bad.proto.childDataReceived(1, b"\x00\x00\x00\x03xyz")
    assert bad.signals == ["KILL"]
    assert len(h.children) == 2
    h.child.answer(("ok", [["A"]]))
    assert out == ["A"]


def test_a_process_that_cannot_start_fails_the_writes() -> None:
    """spawn itself failing: the writes errback StoreUnavailable at once."""
    clock = Clock()

    def spawn(proto: ProcessProtocol) -> Any:
        raise OSError("no such interpreter")

    writer = StoreProcessWriter(spawn, clock)
    out: list[Any] = []
    writer.submit(LATER, "a").addBoth(out.append)
    clock.advance(0)
    assert out[0].check(StoreUnavailable)
    assert "cannot start the store process" in out[0].getErrorMessage()


def test_stop_commits_what_is_queued_then_closes_the_child() -> None:
    """stop() sends what is queued, waits for the answers, closes the child's
    input and fires once it has ended; later writes fail at once."""
    h = Harness()
    out = h.submit(LATER, "a")
    stopped: list[Any] = []
    h.writer.stop().addBoth(stopped.append)
    assert h.child.requests() == [[("later", True, ["a"])]]
    late = h.submit(LATER, "late")
    assert late[0].check(StoreUnavailable)
    h.child.answer(("ok", [["A"]]))
    assert out == ["A"]
    assert h.child.stdin_closed
    assert stopped == []
    h.child.end()
    assert stopped == [None]
    assert h.clock.getDelayedCalls() == []


def test_stop_fires_after_the_last_results_are_handed_out() -> None:
    """Whoever waits for stop() sees every write's result first."""
    h = Harness()
    order: list[str] = []
    h.writer.submit(LATER, "a").addCallback(lambda _: order.append("result"))
    h.writer.stop().addCallback(lambda _: order.append("stopped"))
    h.child.requests()
    h.child.answer(("ok", [["A"]]))
    h.child.end()
    assert order == ["result", "stopped"]


def test_stop_with_nothing_started_fires_at_once() -> None:
    h = Harness()
    stopped: list[Any] = []
    h.writer.stop().addBoth(stopped.append)
    assert stopped == [None]
    assert h.children == []


# -- the real child, on the real reactor --------------------------------------


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.fixture
def real_writer(
    engine: Engine, tmp_path: Path
) -> Generator[StoreProcessWriter, None, None]:
    url = engine.url.render_as_string(hide_password=False)
    keys = write_test_vault(tmp_path / "child-keys")
    writer = StoreProcessWriter(spawn_store_process(reactor, url, keys), reactor)
    yield writer
    pytest_twisted.blockon(writer.stop())


@pytest_twisted.inlineCallbacks
def test_the_child_commits_and_answers(
    real_writer: StoreProcessWriter, engine: Engine, tmp_path: Path
) -> Generator[Any, Any, None]:
    """Accepts run in the child and commit; a bad write fails alone; a child
    killed by SIGKILL is replaced and the next write commits."""
    h = hasher(tmp_path)
    results = yield defer.gatherResults(
        [real_writer.submit(ACCEPT, item(txn(h, txn_id=f"t{i}"))) for i in range(3)]
    )
    assert [r.result.status for r in results] == ["accepted"] * 3
    assert results[0].queued[0].destination == "+8613800138000"
    assert _count(engine, S.transactions) == 3
    good = ReceiptRecord("sim", "m1", "DELIVRD", None, NOW)
    bad = good._replace(carrier=None)
    outs = yield defer.DeferredList(
        [real_writer.submit(receipt_op, good), real_writer.submit(receipt_op, bad)],
        consumeErrors=True,
    )
    assert outs[0][0] is True
    assert outs[1][0] is False
    assert outs[1][1].check(StoreUnavailable)
    assert _count(engine, S.receipts) == 1
    child = real_writer._transport
    assert child is not None
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    again = yield real_writer.submit(ACCEPT, item(txn(h, txn_id="t0")))
    assert again.result.status == "duplicate"  # a new child, the same database
    assert real_writer._transport is not None
    assert real_writer._transport.pid != child.pid
