"""CarrierSender: window, tps, throttle retries, resend after disconnect."""

from __future__ import annotations

import pytest
from twisted.application.internet import backoffPolicy
from twisted.internet.task import Clock

from smsgw.carrier.bind import Bind
from smsgw.carrier.sender import CarrierSender, QueueFull, SubmitOutcome
from smsgw.codec import pdu as P
from smsgw.codec.constants import Status
from smsgw.session.esme import SessionSettings
from smsgw.testing import Connection, FakeEndpoint

POLICY = backoffPolicy(initialDelay=1.0, maxDelay=60.0, factor=2.0, jitter=lambda: 0.0)


class Rig:
    """A sender over n binds on fake endpoints, all on one Clock."""

    def __init__(self, n: int = 1, tps: float = 1000, window: int = 3, **kw: object):
        self.clock = Clock()
        self.endpoints = [FakeEndpoint() for _ in range(n)]
        settings = SessionSettings(
            system_id="smsgw",
            password="secret",
            window=window,
            response_timeout=10.0,
            enquire_interval=1000.0,
        )
        self.binds = [
            Bind(
                name=f"b{i}",
                settings=settings,
                endpoint=ep,
                clock=self.clock,
                retry_policy=POLICY,
            )
            for i, ep in enumerate(self.endpoints)
        ]
        self.sender = CarrierSender("sim", self.binds, self.clock, tps=tps, **kw)  # type: ignore[arg-type]
        self.outcomes: dict[str, SubmitOutcome] = {}
        for b in self.binds:
            b.startService()

    def connect(self, i: int = 0) -> Connection:
        conn = self.endpoints[i].accept()
        (req,) = conn.take()
        conn.feed(P.BindTransceiverResp(sequence_number=req.sequence_number))
        return conn

    def submit(self, dest: str, deadline: float | None = None) -> None:
        pdu = P.SubmitSm(source_addr="95588", destination_addr=dest, short_message=b"x")
        d = self.sender.submit(pdu, deadline)
        d.addCallback(lambda o: self.outcomes.__setitem__(dest, o))


def answer(conn: Connection, status: int = 0) -> list[str]:
    """Answer every submit the connection holds; return their destinations."""
    dests = []
    for req in conn.take():
        assert isinstance(req, P.SubmitSm)
        dests.append(req.destination_addr)
        conn.feed(
            P.SubmitSmResp(
                sequence_number=req.sequence_number,
                command_status=status,
                message_id="" if status else f"id-{req.destination_addr}",
            )
        )
    return dests


def test_window_caps_in_flight_and_order_is_kept() -> None:
    """With window 3, three submits go out; answers release the rest in order."""
    rig = Rig(window=3)
    conn = rig.connect()
    for i in range(5):
        rig.submit(f"{i}")
    assert answer(conn) == ["0", "1", "2"]
    assert answer(conn) == ["3", "4"]
    assert rig.outcomes["4"] == SubmitOutcome(0, "id-4", "b0", 1)
    assert rig.outcomes["4"].accepted


def test_queued_before_bind_is_sent_once_bound() -> None:
    """Parts submitted while no bind is up wait and go out when it binds."""
    rig = Rig()
    rig.submit("1")
    conn = rig.connect()
    assert answer(conn) == ["1"]


def test_tps_paces_submits_on_the_clock() -> None:
    """At 10 tps (burst 1) one submit leaves every 0.1 s."""
    rig = Rig(tps=10, window=100)
    conn = rig.connect()
    for i in range(4):
        rig.submit(f"{i}")
    assert answer(conn) == ["0"]
    rig.clock.advance(0.05)
    assert answer(conn) == []
    rig.clock.advance(0.05)
    assert answer(conn) == ["1"]
    rig.clock.pump([0.1, 0.1])
    assert answer(conn) == ["2", "3"]


def test_throttled_submit_is_resent_first_without_pausing() -> None:
    """A throttled part is resent at once, ahead of newer ones."""
    rig = Rig(window=2)
    conn = rig.connect()
    for i in range(4):
        rig.submit(f"{i}")
    assert answer(conn, Status.ESME_RTHROTTLED) == ["0", "1"]
    assert answer(conn) == ["0", "1"]
    assert answer(conn) == ["2", "3"]
    assert rig.outcomes["0"].attempts == 2
    assert rig.outcomes["0"].accepted
    assert rig.sender.throttled == 2


def test_in_flight_parts_are_resent_after_reconnect() -> None:
    """Parts in flight when the link drops are resent, in order, after rebinding."""
    rig = Rig(window=3)
    conn = rig.connect()
    for i in range(4):
        rig.submit(f"{i}")
    assert [p.destination_addr for p in conn.take()] == ["0", "1", "2"]  # type: ignore[attr-defined]
    conn.drop()
    assert rig.outcomes == {}
    rig.clock.advance(2.0)
    conn2 = rig.connect()
    assert answer(conn2) == ["0", "1", "2"]
    assert answer(conn2) == ["3"]
    assert rig.outcomes["0"].attempts == 2
    assert rig.sender.resent == 3


def test_parts_move_to_another_bind_when_one_drops() -> None:
    """Parts in flight on a dropped bind go out on the other bind."""
    rig = Rig(n=2, window=2)
    c0 = rig.connect(0)
    c1 = rig.connect(1)
    for i in range(4):
        rig.submit(f"{i}")
    assert [p.destination_addr for p in c0.take()] == ["0", "2"]  # type: ignore[attr-defined]
    c0.drop()
    assert answer(c1) == ["1", "3"]
    assert answer(c1) == ["0", "2"]
    assert sorted(rig.outcomes) == ["0", "1", "2", "3"]
    assert {o.bind for o in rig.outcomes.values()} == {"b1"}


def test_round_robin_spreads_over_bound_binds() -> None:
    """Two bound binds share the queue."""
    rig = Rig(n=2, window=10)
    c0 = rig.connect(0)
    c1 = rig.connect(1)
    for i in range(6):
        rig.submit(f"{i}")
    a0, a1 = answer(c0), answer(c1)
    assert len(a0) > 0
    assert len(a1) > 0
    assert sorted(a0 + a1) == [str(i) for i in range(6)]


def test_permanent_error_is_reported_not_retried() -> None:
    """ESME_RINVDSTADR is the outcome at once; nothing is resent."""
    rig = Rig()
    conn = rig.connect()
    rig.submit("bad")
    answer(conn, Status.ESME_RINVDSTADR)
    assert rig.outcomes["bad"] == SubmitOutcome(Status.ESME_RINVDSTADR, None, "b0", 1)
    assert conn.take() == []


def test_response_timeout_is_reported_to_the_caller() -> None:
    """A submit without an answer is reported as a timeout, not resent blindly."""
    rig = Rig()
    conn = rig.connect()
    rig.submit("1")
    conn.take()
    rig.clock.advance(10.0)
    assert rig.outcomes["1"].error == "timeout"
    assert not rig.outcomes["1"].accepted


def test_expired_parts_are_not_sent_late() -> None:
    """A part whose deadline passes while it waits is answered expired."""
    rig = Rig()
    rig.submit("1", deadline=5.0)
    rig.clock.advance(6.0)
    conn = rig.connect()
    assert conn.take() == []
    assert rig.outcomes["1"].error == "expired"


def test_queue_limit_pushes_back() -> None:
    """Beyond queue_limit, submit raises QueueFull and the caller keeps the part."""
    rig = Rig(queue_limit=2)
    rig.submit("1")
    rig.submit("2")
    assert rig.sender.room == 0
    with pytest.raises(QueueFull):
        rig.submit("3")


def test_stop_answers_queued_parts() -> None:
    """stop() answers every queued part 'stopped' and leaves no sender timer."""
    rig = Rig(tps=1)
    rig.submit("1")
    rig.sender.stop()
    assert rig.outcomes["1"].error == "stopped"


def test_throttled_part_is_still_resent_after_a_drop() -> None:
    """Throttle retries and resends after a drop have separate budgets."""
    rig = Rig(window=1)
    conn = rig.connect()
    rig.submit("1")
    for _ in range(5):
        assert answer(conn, Status.ESME_RTHROTTLED) == ["1"]
    assert [p.destination_addr for p in conn.take()] == ["1"]  # type: ignore[attr-defined]
    conn.drop()
    rig.clock.advance(2.0)
    conn2 = rig.connect()
    assert answer(conn2) == ["1"]
    outcome = rig.outcomes["1"]
    assert outcome.accepted
    assert outcome.attempts == 7


def test_deadline_expires_while_no_bind_is_up() -> None:
    """A part waiting for a bind that never comes is answered expired on time."""
    rig = Rig()
    rig.submit("1", deadline=rig.clock.seconds() + 3.0)
    rig.clock.advance(2.9)
    assert rig.outcomes == {}
    rig.clock.advance(0.2)
    assert rig.outcomes["1"].error == "expired"
    assert rig.outcomes["1"].status is None


def test_submit_after_stop_is_answered_stopped() -> None:
    """Once stopped, the sender takes nothing more and keeps no timer."""
    rig = Rig(tps=1)
    rig.sender.stop()
    rig.submit("late")
    assert rig.outcomes["late"].error == "stopped"
    for b in rig.binds:
        b.stopService()
    assert rig.clock.getDelayedCalls() == []
