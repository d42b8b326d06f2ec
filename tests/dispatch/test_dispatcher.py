"""The dispatcher on a Clock: routing, retries by status class, back-off, TTL,
failover, partly accepted alerts, claims and leases."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock

from smsgw.carrier.sender import SubmitOutcome
from smsgw.codec import pdu as P
from smsgw.codec.constants import Status
from smsgw.dispatch.dispatcher import Dispatcher
from smsgw.dispatch.policy import Route, Router, backoff
from smsgw.service.config_alerts import DispatchConfig
from smsgw.store.rows import AlertUpdate, QueuedAlert, Sent

NOW = 1_000_000.0


class Link:
    """A carrier whose submits the test answers one by one."""

    def __init__(self, name: str, bound: int = 1, parts: int = 1) -> None:
        self.name = name
        self.bound = bound
        self.room = 1000
        self.parts = parts
        self.submits: list[tuple[P.SubmitSm, float, defer.Deferred[SubmitOutcome]]] = []
        self.ids = 0

    def compose(
        self, text: str, destination: str, source: str | None, ref: int
    ) -> list[P.SubmitSm]:
        return [
            P.SubmitSm(
                destination_addr=destination[1:],
                short_message=f"{i}:{text}".encode(),
                source_addr=source or "95588",
            )
            for i in range(1, self.parts + 1)
        ]

    def submit(self, pdu: P.SubmitSm, deadline: float) -> defer.Deferred[SubmitOutcome]:
        d: defer.Deferred[SubmitOutcome] = defer.Deferred()
        self.submits.append((pdu, deadline, d))
        return d

    def resp_id(self, raw: str) -> str:
        return raw.lower()

    def answer(self, status: int = 0, error: str | None = None) -> None:
        """Answer every outstanding submit the same way."""
        pending = [s for s in self.submits if not s[2].called]
        for _, _, d in pending:
            if status == 0 and error is None:
                self.ids += 1
                d.callback(SubmitOutcome(0, f"ID{self.ids}", self.name, 1))
            else:
                d.callback(
                    SubmitOutcome(
                        status if error is None else None, None, self.name, 1, error
                    )
                )

    def outstanding(self) -> int:
        return sum(1 for s in self.submits if not s[2].called)


class Writer:
    """Records what the dispatcher writes; claims return ``claimable``."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, Any]] = []
        self.claimable: list[QueuedAlert] = []

    def submit(self, op: Any, item: Any) -> defer.Deferred[Any]:
        self.writes.append((op.name, item))
        if op.name == "claim":
            out, self.claimable = (
                self.claimable[: item.limit],
                self.claimable[item.limit :],
            )
            return defer.succeed(out)
        return defer.succeed(None)

    def of(self, name: str) -> list[Any]:
        return [item for op, item in self.writes if op == name]


def alert(
    n: int = 1,
    dest: str = "+8613800138000",
    ttl: float = 600.0,
    due: float = NOW,
    priority: int = 0,
) -> QueuedAlert:
    return QueuedAlert(
        id=f"R{n}.1",
        ref=f"R{n}",
        issuer="default",
        destination=dest,
        text=f"alert {n}",
        priority=priority,
        source_addr=None,
        not_before=due,
        expires_at=due + ttl,
        attempts=0,
    )


def rig(
    *links: Link, routes: list[Route] | None = None, **cfg: Any
) -> tuple[Dispatcher, Clock, Writer]:
    clock = Clock()
    clock.advance(NOW)
    writer = Writer()
    if routes is None:
        routes = [Route("+", i, i, link.name) for i, link in enumerate(links)]
    defaults: dict[str, Any] = {
        "node": "n1",
        "retry_initial": 2.0,
        "retry_max": 60.0,
        "failover_after": 2,
        "lease": 60.0,
        "poll_interval": 1.0,
    }
    settings = DispatchConfig(**{**defaults, **cfg})
    d = Dispatcher(
        {link.name: link for link in links},
        Router(routes),
        writer,  # type: ignore[arg-type]
        clock,
        settings,
    )
    d.start()
    return d, clock, writer


def stop(d: Dispatcher, clock: Clock) -> None:
    d.stop()
    assert clock.getDelayedCalls() == []


def test_alert_is_submitted_and_recorded_with_its_message_id() -> None:
    """An accepted submit is recorded as sent with the normalised message id."""
    a = Link("a")
    d, clock, w = rig(a)
    d.add([alert()])
    assert a.outstanding() == 1
    a.answer()
    [sent] = w.of("sent")
    assert sent == Sent("R1.1", "a", sent.parts, 1, NOW)
    assert [(p.part_no, p.message_id) for p in sent.parts] == [(1, "id1")]
    assert d.held == 0
    stop(d, clock)


def test_start_claims_this_nodes_alerts_first() -> None:
    """On start the dispatcher claims its own unfinished alerts (crash recovery)."""
    clock = Clock()
    clock.advance(NOW)
    w = Writer()
    w.claimable = [alert(1), alert(2)]
    a = Link("a")
    d = Dispatcher(
        {"a": a},
        Router([Route("+", 0, 0, "a")]),
        w,
        clock,  # type: ignore[arg-type]
        DispatchConfig(node="n1"),
    )
    d.start()
    [claim] = w.of("claim")
    assert (claim.node, claim.reclaim_own) == ("n1", True)
    assert a.outstanding() == 2
    clock.advance(1.0)
    assert w.of("claim")[1].reclaim_own is False
    stop(d, clock)


def test_transient_error_backs_off_then_succeeds() -> None:
    """Throttled: retried after 2 s, then 4 s; each retry recorded; then sent."""
    a = Link("a")
    d, clock, w = rig(a, failover_after=10)
    d.add([alert()])
    a.answer(Status.ESME_RTHROTTLED)
    [update] = w.of("update")
    assert (update.status, update.attempts, update.last_error, update.not_before) == (
        "queued",
        1,
        "ESME_RTHROTTLED",
        NOW + 2,
    )
    clock.advance(1.9)
    assert a.outstanding() == 0
    clock.advance(0.1)
    assert a.outstanding() == 1
    a.answer(Status.ESME_RMSGQFUL)
    clock.advance(3.9)
    assert a.outstanding() == 0
    clock.advance(0.1)
    a.answer()
    assert w.of("sent")[0].attempts == 3
    stop(d, clock)


def test_connection_lost_and_timeout_are_transient() -> None:
    """No SMPP answer (connection lost, timeout) is retried, not failed."""
    a = Link("a")
    d, clock, w = rig(a, failover_after=10)
    d.add([alert()])
    a.answer(error="connection lost")
    clock.advance(2)
    a.answer(error="timeout")
    clock.advance(4)
    a.answer()
    assert [u.last_error for u in w.of("update")] == ["connection lost", "timeout"]
    assert len(w.of("sent")) == 1
    stop(d, clock)


def test_permanent_error_fails_at_once() -> None:
    """An invalid destination fails the alert without a retry."""
    a = Link("a")
    d, clock, w = rig(a)
    d.add([alert()])
    a.answer(Status.ESME_RINVDSTADR)
    [update] = w.of("update")
    assert (update.status, update.last_error) == ("failed", "ESME_RINVDSTADR")
    clock.advance(100)
    assert len(a.submits) == 1
    stop(d, clock)


def test_expired_before_sending_is_never_sent_late() -> None:
    """An alert past its TTL is recorded expired and not submitted."""
    a = Link("a", bound=0)
    d, clock, w = rig(a)
    d.add([alert(ttl=10)])
    clock.advance(5)
    assert a.submits == []
    a.bound = 1
    clock.advance(5)
    assert a.submits == []
    assert [u.status for u in w.of("update")] == ["expired"]
    stop(d, clock)


def test_retry_that_would_land_past_the_ttl_expires_instead() -> None:
    """When the next back-off ends after the TTL, the alert expires now."""
    a = Link("a")
    d, clock, w = rig(a, failover_after=10)
    d.add([alert(ttl=3)])
    a.answer(Status.ESME_RTHROTTLED)  # next try at +2: still inside
    clock.advance(2)
    a.answer(Status.ESME_RTHROTTLED)  # next at +4 more: past the TTL
    assert [u.status for u in w.of("update")] == ["queued", "expired"]
    stop(d, clock)


def test_submit_deadline_is_bounded_by_the_ttl() -> None:
    """Parts are handed to the carrier with a deadline no later than the TTL."""
    a = Link("a")
    d, clock, _ = rig(a)
    d.add([alert(ttl=10)])
    assert a.submits[0][1] == NOW + 10
    a.answer()
    stop(d, clock)


def test_failover_to_the_next_route_after_repeated_failures() -> None:
    """After failover_after transient failures the next carrier of the route is used."""
    a, b = Link("a"), Link("b")
    d, clock, w = rig(a, b)
    d.add([alert()])
    a.answer(error="timeout")
    clock.advance(2)
    a.answer(error="timeout")
    clock.advance(4)
    assert (a.outstanding(), b.outstanding()) == (0, 1)
    b.answer()
    assert w.of("sent")[0].carrier == "b"
    stop(d, clock)


def test_carrier_with_no_bind_is_passed_over() -> None:
    """A route whose first carrier is down goes straight to the next one."""
    a, b = Link("a", bound=0), Link("b")
    d, clock, _w = rig(a, b)
    d.add([alert()])
    assert (len(a.submits), b.outstanding()) == (0, 1)
    b.answer()
    stop(d, clock)


def test_waits_while_no_carrier_is_up_then_sends() -> None:
    """With every bind down alerts wait (no failure) and go when a bind comes up."""
    a = Link("a", bound=0)
    d, clock, w = rig(a)
    d.add([alert(1), alert(2)])
    clock.advance(30)
    assert a.submits == []
    assert w.of("update") == []
    a.bound = 1
    clock.advance(1.0)  # the next poll (poll_interval) finds the bind
    assert a.outstanding() == 2
    a.answer()
    assert len(w.of("sent")) == 2
    stop(d, clock)


def test_routing_by_longest_prefix() -> None:
    """+86 numbers go to the +86 carrier, others to the catch-all."""
    cn, world = Link("cn"), Link("world")
    routes = [Route("+86", 0, 0, "cn"), Route("+", 0, 1, "world")]
    d, clock, _ = rig(cn, world, routes=routes)
    d.add([alert(1, "+8613800138000"), alert(2, "+14155550100")])
    assert (cn.outstanding(), world.outstanding()) == (1, 1)
    cn.answer()
    world.answer()
    stop(d, clock)


def test_only_missing_parts_are_sent_again() -> None:
    """A long alert whose part 2 was throttled resends part 2 only, same carrier."""
    a = Link("a", parts=3)
    d, clock, w = rig(a, failover_after=10)
    d.add([alert()])
    first, second, third = (s[2] for s in a.submits)
    first.callback(SubmitOutcome(0, "X1", "a", 1))
    second.callback(SubmitOutcome(int(Status.ESME_RTHROTTLED), None, "a", 1))
    third.callback(SubmitOutcome(0, "X3", "a", 1))
    clock.advance(2)
    assert a.outstanding() == 1
    assert a.submits[-1][0].short_message.startswith(b"2:")
    a.answer()
    [sent] = w.of("sent")
    assert [(p.part_no, p.message_id) for p in sent.parts] == [
        (1, "x1"),
        (2, "id1"),
        (3, "x3"),
    ]
    stop(d, clock)


def test_quiet_hours_alert_waits_for_its_time() -> None:
    """An alert due later is held and sent at its not_before time."""
    a = Link("a")
    d, clock, _ = rig(a)
    d.add([alert(due=NOW + 3600)])
    clock.advance(3599)
    assert a.submits == []
    clock.advance(1)
    assert a.outstanding() == 1
    a.answer()
    stop(d, clock)


def test_full_carrier_queue_holds_alerts_back() -> None:
    """When the carrier has no room for an alert's parts it waits, then sends."""
    a = Link("a")
    a.room = 0
    d, clock, _ = rig(a)
    d.add([alert()])
    assert a.submits == []
    a.room = 10
    clock.advance(0.05)
    assert a.outstanding() == 1
    a.answer()
    stop(d, clock)


def test_memory_limit_releases_overflow_to_the_store() -> None:
    """Beyond max_in_flight, alerts are released back to the queue in the store:
    one release per reactor turn, however many transactions overflowed in it
    (the intake adds each accepted transaction's alerts on its own)."""
    a = Link("a", bound=0)
    d, clock, w = rig(a, max_in_flight=100)
    d.add([alert(i) for i in range(100)])
    for i in range(100, 105):
        d.add([alert(i)])
    assert d.held == 100
    assert w.of("release") == []  # gathered until the turn ends
    clock.advance(0)
    [released] = w.of("release")
    assert released == tuple(f"R{i}.1" for i in range(100, 105))
    d.add([alert(105)])
    clock.advance(0)
    assert w.of("release")[1:] == [("R105.1",)]
    stop(d, clock)


def test_leases_are_renewed_while_alerts_wait() -> None:
    """Every lease/3 seconds this node's claims are extended by the lease."""
    a = Link("a", bound=0)
    d, clock, w = rig(a)
    d.add([alert()])
    clock.advance(20)
    [renew] = w.of("renew")
    assert (renew.node, renew.until, renew.ids) == ("n1", NOW + 20 + 60, ("R1.1",))
    stop(d, clock)


def test_backoff_doubles_up_to_the_maximum() -> None:
    """backoff: initial, 2x, 4x ... capped."""
    assert [backoff(n, 2.0, 60.0) for n in (1, 2, 3, 4, 5, 6)] == [2, 4, 8, 16, 32, 60]


def test_update_keeps_parts_already_accepted_when_the_alert_fails() -> None:
    """A permanent failure after some parts were accepted records those parts."""
    a = Link("a", parts=2)
    d, clock, w = rig(a)
    d.add([alert()])
    a.submits[0][2].callback(SubmitOutcome(0, "X1", "a", 1))
    a.submits[1][2].callback(SubmitOutcome(int(Status.ESME_RINVDSTADR), None, "a", 1))
    [update] = w.of("update")
    assert isinstance(update, AlertUpdate)
    assert (update.status, update.carrier) == ("failed", "a")
    assert [(p.part_no, p.message_id) for p in update.parts] == [(1, "x1")]
    stop(d, clock)


def test_an_unroutable_alert_fails_and_blocks_nothing() -> None:
    """A number no carrier routes fails at once; the next alert is sent."""
    cn = Link("cn")
    d, clock, w = rig(cn, routes=[Route("+86", 0, 0, "cn")])
    d.add([alert(1, "+14155550100"), alert(2, "+8613800138000")])
    [update] = w.of("update")
    assert (update.alert_id, update.status, update.last_error) == (
        "R1.1",
        "failed",
        "no carrier routes this number",
    )
    assert cn.outstanding() == 1
    cn.answer()
    stop(d, clock)


def test_alerts_for_a_down_carrier_do_not_hold_up_the_others() -> None:
    """Alerts whose carrier is down wait aside; alerts for a bound carrier go."""
    cn, intl = Link("cn"), Link("intl", bound=0)
    routes = [Route("+86", 0, 0, "cn"), Route("+44", 0, 1, "intl")]
    d, clock, w = rig(cn, intl, routes=routes)
    d.add([alert(1, "+447700900123"), alert(2, "+8613800138000")])
    assert (cn.outstanding(), len(intl.submits)) == (1, 0)
    cn.answer()
    intl.bound = 1
    clock.advance(1.0)
    assert intl.outstanding() == 1
    intl.answer()
    assert len(w.of("sent")) == 2
    stop(d, clock)


def test_a_full_carrier_does_not_hold_up_another() -> None:
    """No room on one carrier: alerts for another carrier still go."""
    cn, intl = Link("cn"), Link("intl")
    intl.room = 0
    routes = [Route("+86", 0, 0, "cn"), Route("+44", 0, 1, "intl")]
    d, clock, _ = rig(cn, intl, routes=routes)
    d.add([alert(1, "+447700900123"), alert(2, "+8613800138000")])
    assert (cn.outstanding(), len(intl.submits)) == (1, 0)
    intl.room = 10
    clock.advance(0.05)
    assert intl.outstanding() == 1
    cn.answer()
    intl.answer()
    stop(d, clock)


def test_alerts_expire_during_an_outage_without_waiting_for_a_bind() -> None:
    """Every bind down past an alert's TTL: it is recorded expired then, not sent."""
    a = Link("a", bound=0)
    d, clock, w = rig(a)
    d.add([alert(1, ttl=5), alert(2, ttl=600)])
    clock.advance(6)
    assert [(u.alert_id, u.status) for u in w.of("update")] == [("R1.1", "expired")]
    a.bound = 1
    clock.advance(1)
    assert [pdu.short_message for pdu, _, _ in a.submits] == [b"1:alert 2"]
    a.answer()
    stop(d, clock)


def test_receipts_waiting_for_their_part_are_swept_every_lease() -> None:
    """The dispatcher asks the store to re-match waiting receipts every lease."""
    a = Link("a")
    d, clock, w = rig(a)
    clock.advance(60)
    assert w.of("rematch") == [1000]
    stop(d, clock)


def test_urgent_alerts_go_before_a_backlog_of_normal_ones() -> None:
    """After an outage, urgent alerts held in memory leave first (in their
    order), then the normal ones in theirs; also while the unconfirmed limit
    holds the rest back."""
    a = Link("a", bound=0)
    d, clock, _ = rig(a)
    d.max_unconfirmed = 2
    d.add([alert(i) for i in range(1, 5)])
    d.add([alert(5, priority=1), alert(6, priority=1)])
    clock.advance(1)  # polled while no bind is up: all set aside
    assert a.outstanding() == 0
    a.bound = 1
    d.poke()
    clock.advance(0)
    order = []
    while a.outstanding():
        order += [
            pdu.short_message.decode() for pdu, _, d_ in a.submits if not d_.called
        ]
        a.answer()
    assert order == [f"1:alert {n}" for n in (5, 6, 1, 2, 3, 4)]
    d.add([alert(7), alert(8, priority=1)])  # both due at once: urgent first
    assert [p.short_message for p, _, d_ in a.submits if not d_.called] == [
        b"1:alert 8",
        b"1:alert 7",
    ]
    a.answer()
    stop(d, clock)


def test_alerts_given_back_are_claimed_as_soon_as_half_the_room_is_free() -> None:
    """Beyond max_in_flight alerts go back to the store; once half the room is
    free they are claimed again at once, not a poll interval later (a small
    max_in_flight would otherwise slow the drain of a backlog to one claim a
    second). Without alerts given back, no extra claims are made."""
    a = Link("a")
    d, clock, w = rig(a, max_in_flight=100)
    d.max_unconfirmed = 10
    d.add([alert(i) for i in range(100)])
    d.add([alert(i) for i in range(100, 160)])
    clock.advance(0)  # the release is written
    [released] = w.of("release")
    w.claimable = [alert(int(i[1:-2])) for i in released]
    claims_before = len(w.of("claim"))
    while d.held > 0 and len(a.submits) < 160:
        a.answer()
    assert len(w.of("claim")) > claims_before  # without the clock moving
    while a.outstanding():
        a.answer()
    assert len(w.of("sent")) == 160
    claims = len(w.of("claim"))
    d.add([alert(200)])
    a.answer()
    assert len(w.of("claim")) == claims  # nothing given back: no early claim
    stop(d, clock)
