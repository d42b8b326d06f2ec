"""Signed fraud webhooks: body, signature, verification, back-off, and the worker
on a Clock with a hand-driven fake agent and an in-memory store."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogEvent, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseNeverReceived
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IResponse
from zope.interface import implementer

from smsgw.feedback.webhook import (
    backoff,
    next_step,
    outcome,
    redact_url,
    scrub_error,
    sign,
    signature_headers,
    verify,
    webhook_body,
)
from smsgw.feedback.webhook_worker import (
    PendingWebhook,
    WebhookAttempt,
    WebhookTarget,
    WebhookWorker,
)

NOW = 1_700_000_000.0
SECRET = b"issuer-shared-secret-0123456789"
URL = "https://fraud.bank.example/hooks/smsgw?token=QUERYTOKEN42"
BODY = webhook_body({"event": "fraud_reported", "ref": "R1", "pan_last4": "4242"})


# -- pure: body and signature -------------------------------------------------


def test_body_is_sorted_compact_utf8_json() -> None:
    """The body is JSON with sorted keys at every level, no spaces, raw UTF-8."""
    body = webhook_body({"b": 1, "a": {"d": [1, 2], "c": "é"}, "A": None})
    assert body == '{"A":null,"a":{"c":"é","d":[1,2]},"b":1}'.encode()


def test_sign_known_answer() -> None:
    """sign() is t=<ts>,v1=<hex HMAC-SHA256 of b'<ts>.' + body>."""
    expected = hmac.new(SECRET, b"1700000000." + b'{"a":1}', hashlib.sha256).hexdigest()
    assert sign(SECRET, 1_700_000_000, b'{"a":1}') == f"t=1700000000,v1={expected}"
    assert expected == expected.lower()
    assert len(expected) == 64


def test_signature_headers_exact() -> None:
    """The headers carry JSON content type, signature, key id and user agent."""
    headers = signature_headers(SECRET, "k2024", 1_700_000_000, BODY)
    assert headers == {
        b"Content-Type": [b"application/json"],
        b"X-Smsgw-Signature": [sign(SECRET, 1_700_000_000, BODY).encode()],
        b"X-Smsgw-Key-Id": [b"k2024"],
        b"User-Agent": [b"smsgw"],
    }


def test_verify_accepts_a_fresh_signature() -> None:
    """verify() accepts our own signature within the tolerance, either side."""
    header = sign(SECRET, 1000, BODY)
    assert verify(SECRET, header, BODY, now=1000)
    assert verify(SECRET, header, BODY, now=1300)
    assert verify(SECRET, header, BODY, now=700)


def test_verify_rejects_changed_body() -> None:
    """One changed byte of the body fails verification."""
    header = sign(SECRET, 1000, BODY)
    assert not verify(SECRET, header, BODY.replace(b"R1", b"R2"), now=1000)


def test_verify_rejects_wrong_secret() -> None:
    """A signature made with another secret fails verification."""
    header = sign(b"another-secret", 1000, BODY)
    assert not verify(SECRET, header, BODY, now=1000)


def test_verify_rejects_stale_and_future_timestamps() -> None:
    """A timestamp more than tolerance seconds away (past or future) is refused."""
    header = sign(SECRET, 1000, BODY)
    assert not verify(SECRET, header, BODY, now=1301)
    assert not verify(SECRET, header, BODY, now=699)
    assert not verify(SECRET, header, BODY, now=1011, tolerance=10)


def test_verify_rejects_a_replayed_mac_with_a_new_timestamp() -> None:
    """The MAC covers the timestamp: moving t forward invalidates it."""
    mac = sign(SECRET, 1000, BODY).split("v1=")[1]
    assert not verify(SECRET, f"t=1200,v1={mac}", BODY, now=1200)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "t=1000",
        "v1=00",
        "t=abc,v1={mac}",
        "t=-1000,v1={mac}",
        "t= 1000,v1={mac}",
        "t=1000,t=1000,v1={mac}",
        "t=1000;v1={mac}",
        "t=1000,v1",
        "t=\uff11\uff10\uff10\uff10,v1={mac}",  # fullwidth digits
    ],
)
def test_verify_rejects_malformed_headers(header: str) -> None:
    """A header that is not exactly t=<digits>,v1=<mac> is refused, not raised."""
    mac = sign(SECRET, 1000, BODY).split("v1=")[1]
    assert not verify(SECRET, header.format(mac=mac), BODY, now=1000)


def test_verify_accepts_any_matching_v1_and_ignores_other_schemes() -> None:
    """During rotation several v1 values may be sent; unknown schemes are skipped."""
    mac = sign(SECRET, 1000, BODY).split("v1=")[1]
    header = f"t=1000,v1={'0' * 64},v2=zz,v1={mac}"
    assert verify(SECRET, header, BODY, now=1000)
    assert not verify(SECRET, f"t=1000,v1=é{mac}", BODY, now=1000)


# -- pure: back-off, outcome, redaction -----------------------------------------


def test_backoff_doubles_then_caps() -> None:
    """Delays go 10, 20, 40, ... and stop at the maximum."""
    delays = [backoff(n, 10.0, 3600.0) for n in range(1, 11)]
    assert delays == [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]
    assert backoff(5000, 10.0, 3600.0) == 3600.0


def test_backoff_rejects_attempt_zero() -> None:
    """Attempts are 1-based."""
    with pytest.raises(ValueError, match="attempt must be 1 or more, got 0"):
        backoff(0, 10.0, 3600.0)


def test_outcome_is_delivered_only_for_2xx() -> None:
    """2xx is delivered; every other status, or none, is retried."""
    assert [outcome(c) for c in (200, 201, 204, 299)] == ["delivered"] * 4
    assert [outcome(c) for c in (None, 100, 199, 300, 302, 400, 410, 500)] == [
        "retry"
    ] * 8


def test_next_step() -> None:
    """Delivered stops; a failure retries after back-off until max_attempts."""
    kw: dict[str, Any] = {"initial": 10.0, "maximum": 3600.0, "max_attempts": 3}
    assert next_step(1, 204, 100.0, **kw) == ("delivered", None)
    assert next_step(1, 500, 100.0, **kw) == ("retry", 110.0)
    assert next_step(2, None, 100.0, **kw) == ("retry", 120.0)
    assert next_step(3, 500, 100.0, **kw) == ("failed", None)
    assert next_step(3, 200, 100.0, **kw) == ("delivered", None)


def test_redact_url_and_scrub_error() -> None:
    """Query strings and user info never survive into logged text."""
    assert redact_url(URL) == "https://fraud.bank.example/hooks/smsgw"
    assert redact_url("http://u:pw@h.example:8080/p?q=1#f") == "http://h.example:8080/p"
    assert scrub_error(f"bad thing at {URL}", URL) == (
        "bad thing at https://fraud.bank.example/hooks/smsgw"
    )
    assert scrub_error("echo token=QUERYTOKEN42", URL) == "echo …"
    assert scrub_error("x" * 500, URL) == "x" * 200


def test_target_repr_hides_the_secret() -> None:
    """WebhookTarget's repr (and str) never shows the secret."""
    target = WebhookTarget(URL, SECRET, "k1")
    assert "secret" not in repr(target)
    assert SECRET.decode() not in str(target)
    assert repr(target) == f"WebhookTarget(url={URL!r}, key_id='k1', timeout=10.0)"


# -- worker fakes ----------------------------------------------------------------


class ProxyTransport:
    """Like the agent's TransportProxyProducer: loseConnection, no abort."""

    def __init__(self) -> None:
        self.lost = False

    def loseConnection(self) -> None:
        self.lost = True


@implementer(IResponse)
class FakeResponse:
    """A response whose body arrives at once, or only on finish() when held."""

    def __init__(self, code: int, body: bytes = b"ok", hold: bool = False) -> None:
        self.version = (b"HTTP", 1, 1)
        self.code = code
        self.phrase = b"X"
        self.headers = Headers()
        self.length = len(body)
        self.request = None
        self.previousResponse = None
        self.transport = ProxyTransport()
        self.body = body
        self.hold = hold
        self.protocol: IProtocol | None = None

    def deliverBody(self, protocol: IProtocol) -> None:
        self.protocol = protocol
        protocol.makeConnection(self.transport)  # type: ignore[arg-type]
        protocol.dataReceived(self.body)
        if not self.hold:
            self.finish()

    def finish(self) -> None:
        assert self.protocol is not None
        self.protocol.connectionLost(Failure(ResponseDone()))

    def setPreviousResponse(self, response: IResponse) -> None:
        self.previousResponse = response  # type: ignore[assignment]


@dataclass
class Sent:
    method: bytes
    uri: bytes
    headers: Headers
    body: bytes
    d: defer.Deferred[IResponse]
    cancelled: bool = False

    def header(self, name: bytes) -> bytes:
        values = self.headers.getRawHeaders(name)
        assert values is not None
        assert len(values) == 1
        return values[0]


@implementer(IAgent)
class FakeAgent:
    """Records each request; the test answers them by hand."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,  # noqa: N803 (IAgent's name)
    ) -> defer.Deferred[IResponse]:
        assert headers is not None
        assert bodyProducer is not None
        consumer = StringTransport()
        bodyProducer.startProducing(consumer)
        assert bodyProducer.length == len(consumer.value())

        def cancel(_: defer.Deferred[IResponse]) -> None:
            sent.cancelled = True

        sent = Sent(method, uri, headers, consumer.value(), defer.Deferred(cancel))
        self.sent.append(sent)
        return sent.d

    def open(self) -> list[Sent]:
        return [s for s in self.sent if not s.d.called]

    def answer(self, code: int, index: int = 0, **kw: Any) -> FakeResponse:
        """Answer the index-th unanswered request with ``code``."""
        response = FakeResponse(code, **kw)
        self.open()[index].d.callback(response)
        return response


@dataclass
class Store:
    """In-memory store: due() claims, record() releases with the new state."""

    pending: dict[int, tuple[PendingWebhook, float]] = field(default_factory=dict)
    claimed: set[int] = field(default_factory=set)
    attempts: list[WebhookAttempt] = field(default_factory=list)
    due_calls: list[tuple[float, int]] = field(default_factory=list)
    held_calls: list[frozenset[int]] = field(default_factory=list)
    fail_due: int = 0
    fail_record: int = 0
    hold_record: list[defer.Deferred[None]] = field(default_factory=list)
    holding: bool = False

    def add(
        self, id: int, attempts: int = 0, issuer: str = "acme", at: float = NOW
    ) -> None:
        self.pending[id] = (PendingWebhook(id, issuer, URL, BODY, attempts), at)

    def due(
        self, now: float, limit: int, held: frozenset[int] = frozenset()
    ) -> defer.Deferred[list[PendingWebhook]]:
        self.due_calls.append((now, limit))
        self.held_calls.append(held)
        if self.fail_due:
            self.fail_due -= 1
            return defer.fail(RuntimeError("database is down"))
        ready = [
            w
            for i, (w, at) in sorted(self.pending.items())
            if at <= now and i not in self.claimed
        ][:limit]
        self.claimed.update(w.id for w in ready)
        return defer.succeed(ready)

    def record(self, attempt: WebhookAttempt) -> defer.Deferred[None]:
        if self.fail_record:
            self.fail_record -= 1
            return defer.fail(RuntimeError("write failed"))
        self.attempts.append(attempt)
        self.claimed.discard(attempt.webhook_id)
        webhook, _ = self.pending.pop(attempt.webhook_id)
        if attempt.outcome == "retry":
            assert attempt.next_at is not None
            self.pending[webhook.id] = (
                PendingWebhook(
                    webhook.id,
                    webhook.issuer,
                    webhook.url,
                    webhook.body,
                    attempt.attempt,
                ),
                attempt.next_at,
            )
        if self.holding:
            d: defer.Deferred[None] = defer.Deferred()
            self.hold_record.append(d)
            return d
        return defer.succeed(None)


class SlowStore:
    """A store whose due() answers only when the test fires it."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.held: list[defer.Deferred[list[PendingWebhook]]] = []

    def due(
        self, now: float, limit: int, held: frozenset[int] = frozenset()
    ) -> defer.Deferred[list[PendingWebhook]]:
        self.held.append(defer.Deferred())
        return self.held[-1]

    def record(self, attempt: WebhookAttempt) -> defer.Deferred[None]:
        return self.inner.record(attempt)


TARGETS = {"acme": WebhookTarget("https://ignored.example/", SECRET, "acme-k1")}


def rig(**kw: Any) -> tuple[WebhookWorker, Store, FakeAgent, Clock]:
    clock = Clock()
    clock.advance(NOW)
    store = Store()
    agent = FakeAgent()
    worker = WebhookWorker(store, agent, clock, TARGETS, **kw)
    return worker, store, agent, clock


def stop(worker: WebhookWorker, clock: Clock) -> None:
    d = worker.stop()
    assert d.called
    assert clock.getDelayedCalls() == []


@pytest.fixture
def events() -> Iterator[list[LogEvent]]:
    with capturedLogs() as captured:
        yield captured  # type: ignore[misc]


# -- worker ---------------------------------------------------------------------


def test_retries_with_backoff_until_delivered() -> None:
    """500, 500, 204: three attempts, next_at 10 s then 20 s later, delivered."""
    worker, store, agent, clock = rig()
    store.add(7)
    worker.start()
    agent.answer(500)
    clock.advance(9)
    assert len(agent.sent) == 1
    clock.advance(1)  # the poll at NOW + 10 finds it due
    assert len(agent.sent) == 2
    agent.answer(500)
    clock.advance(20)
    agent.answer(204)
    assert store.attempts == [
        WebhookAttempt(7, 1, NOW, 500, None, "retry", NOW + 10),
        WebhookAttempt(7, 2, NOW + 10, 500, None, "retry", NOW + 30),
        WebhookAttempt(7, 3, NOW + 30, 204, None, "delivered", None),
    ]
    assert store.pending == {}
    stop(worker, clock)


def test_request_is_a_signed_post_of_the_body() -> None:
    """POST to the webhook's url, body as stored, signature verifiable, key id."""
    worker, store, agent, clock = rig()
    clock.advance(0.75)  # the timestamp is whole seconds
    store.add(1)
    worker.start()
    (sent,) = agent.sent
    assert (sent.method, sent.uri, sent.body) == (b"POST", URL.encode(), BODY)
    signature = sent.header(b"X-Smsgw-Signature").decode()
    assert signature == sign(SECRET, int(NOW), BODY)
    assert verify(SECRET, signature, sent.body, now=int(NOW))
    assert sent.header(b"X-Smsgw-Key-Id") == b"acme-k1"
    assert sent.header(b"Content-Type") == b"application/json"
    assert sent.header(b"User-Agent") == b"smsgw"
    agent.answer(200)
    stop(worker, clock)


def test_timeout_cancels_the_request() -> None:
    """No answer within the target timeout: cancelled, recorded as a timeout."""
    worker, store, agent, clock = rig()
    store.add(3)
    worker.start()
    clock.advance(9.9)
    assert not agent.sent[0].cancelled
    clock.advance(0.1)
    assert agent.sent[0].cancelled
    assert store.attempts == [
        WebhookAttempt(3, 1, NOW, None, "timeout after 10 s", "retry", NOW + 20)
    ]
    stop(worker, clock)


def test_timeout_while_reading_the_body_closes_the_connection() -> None:
    """A body still arriving at the timeout: the connection is closed, timeout."""
    worker, store, agent, clock = rig()
    store.add(3)
    worker.start()
    response = agent.answer(204, hold=True)
    assert store.attempts == []
    clock.advance(10)
    assert response.transport.lost
    response.finish()  # the agent then reports the end: ignored, no second firing
    assert store.attempts == [
        WebhookAttempt(3, 1, NOW, None, "timeout after 10 s", "retry", NOW + 20)
    ]
    stop(worker, clock)


def test_connection_refused_is_retried_with_the_error_text() -> None:
    """An agent errback is a retry with a short error text and no status."""
    worker, store, agent, clock = rig()
    store.add(4)
    store.add(5)
    worker.start()
    agent.sent[0].d.errback(ConnectionRefusedError())
    agent.sent[1].d.errback(
        ResponseNeverReceived([Failure(ConnectionRefusedError("reset"))])
    )
    assert store.attempts == [
        WebhookAttempt(
            4,
            1,
            NOW,
            None,
            "ConnectionRefusedError: Connection was refused by other side.",
            "retry",
            NOW + 10,
        ),
        WebhookAttempt(
            5,
            1,
            NOW,
            None,
            "ConnectionRefusedError: Connection was refused by other side: reset.",
            "retry",
            NOW + 10,
        ),
    ]
    stop(worker, clock)


def test_error_text_never_carries_the_query_string() -> None:
    """An error quoting the URL is stored with the query string removed."""
    worker, store, agent, clock = rig()
    store.add(4)
    worker.start()
    agent.sent[0].d.errback(ValueError(f"cannot reach {URL}"))
    assert store.attempts[0].error == (
        "ValueError: cannot reach https://fraud.bank.example/hooks/smsgw"
    )
    stop(worker, clock)


def test_max_attempts_reached_is_failed() -> None:
    """The attempt that reaches max_attempts fails for good, with no next_at."""
    worker, store, agent, clock = rig(max_attempts=12)
    store.add(9, attempts=11)
    worker.start()
    agent.answer(503)
    assert store.attempts == [WebhookAttempt(9, 12, NOW, 503, None, "failed", None)]
    assert store.pending == {}
    clock.advance(3600)
    assert len(agent.sent) == 1
    stop(worker, clock)


def test_issuer_without_target_fails_without_a_request() -> None:
    """An issuer removed from config: failed at once, nothing posted."""
    worker, store, agent, clock = rig()
    store.add(2, issuer="gone")
    worker.start()
    assert agent.sent == []
    assert store.attempts == [
        WebhookAttempt(
            2, 1, NOW, None, "no webhook configured for issuer gone", "failed", None
        )
    ]
    stop(worker, clock)


def test_concurrency_limit_respected() -> None:
    """Never more than `concurrency` posts at once; a free slot takes the next."""
    worker, store, agent, clock = rig(concurrency=2)
    for i in range(1, 6):
        store.add(i)
    worker.start()
    assert [s.uri for s in agent.open()] == [URL.encode()] * 2
    assert store.due_calls == [(NOW, 2)]
    assert worker.in_flight == 2
    agent.answer(204)
    assert len(agent.open()) == 2
    assert store.due_calls[-1] == (NOW, 1)
    for _ in range(3):
        agent.answer(204)
        assert len(agent.open()) <= 2
    agent.answer(204)
    assert [a.webhook_id for a in store.attempts] == [1, 2, 3, 4, 5]
    assert agent.open() == []
    assert worker.in_flight == 0
    stop(worker, clock)


def test_poke_sends_without_waiting_for_the_poll() -> None:
    """A webhook queued after start is sent on poke(), not at the next poll."""
    worker, store, agent, clock = rig(poll_interval=5.0)
    worker.start()
    clock.advance(1)
    store.add(6, at=NOW + 1)
    assert agent.sent == []
    worker.poke()
    assert len(agent.sent) == 1
    assert store.due_calls == [(NOW, 4), (NOW + 1, 4)]
    agent.answer(204)
    stop(worker, clock)


def test_a_fetch_while_posting_names_the_webhooks_in_flight() -> None:
    """A poke while a post is in flight tells the store which webhooks this
    worker holds (the store never hands them out again); once recorded they
    are no longer held."""
    worker, store, agent, clock = rig(poll_interval=5.0)
    store.add(6)
    worker.start()
    assert len(agent.sent) == 1
    store.add(7)
    worker.poke()
    assert store.held_calls == [frozenset(), frozenset({6})]
    assert len(agent.sent) == 2
    agent.answer(204)
    agent.answer(204)
    worker.poke()
    assert store.held_calls[-1] == frozenset()
    stop(worker, clock)


def test_poll_finds_work_every_interval() -> None:
    """Without a poke, work queued later is found at the next poll."""
    worker, store, agent, clock = rig(poll_interval=5.0)
    worker.start()
    store.add(6, at=NOW + 1)
    clock.advance(4.9)
    assert agent.sent == []
    clock.advance(0.1)
    assert len(agent.sent) == 1
    assert [t for t, _ in store.due_calls] == [NOW, NOW + 5]
    agent.answer(204)
    stop(worker, clock)


def test_stop_waits_for_the_post_in_flight() -> None:
    """stop() fires only once the outstanding post is answered and recorded."""
    worker, store, agent, clock = rig()
    store.add(1)
    store.holding = True
    worker.start()
    d = worker.stop()
    assert not d.called
    clock.advance(9)  # no polling after stop
    assert store.due_calls == [(NOW, 4)]
    agent.answer(204)
    assert not d.called  # the record is still being written
    store.hold_record[0].callback(None)
    assert d.called
    assert store.attempts == [WebhookAttempt(1, 1, NOW, 204, None, "delivered", None)]
    assert clock.getDelayedCalls() == []


def test_stop_during_a_fetch_waits_and_sends_nothing(events: list[LogEvent]) -> None:
    """Webhooks claimed as the worker stops are left to the store, not posted."""
    worker, store, agent, clock = rig()
    store.add(1)
    slow = SlowStore(store)
    worker.store = slow
    worker.start()
    d = worker.stop()
    assert not d.called
    slow.held[0].callback([PendingWebhook(1, "acme", URL, BODY, 0)])
    assert d.called
    assert agent.sent == []
    assert [e["count"] for e in events if "count" in e] == [1]
    assert clock.getDelayedCalls() == []


def test_store_error_is_logged_and_the_next_poll_goes_on(
    observe_errors: list[LogEvent],
) -> None:
    """due() failing logs a failure with fields; the next poll sends."""
    worker, store, agent, clock = rig(poll_interval=5.0)
    store.add(1)
    store.fail_due = 1
    worker.start()
    assert agent.sent == []
    assert [e["store_op"] for e in observe_errors] == ["due"]
    assert observe_errors[0]["log_failure"].check(RuntimeError)
    observe_errors.clear()
    clock.advance(5)
    assert len(agent.sent) == 1
    agent.answer(204)
    stop(worker, clock)


def test_record_error_is_logged_and_the_worker_goes_on(
    observe_errors: list[LogEvent],
) -> None:
    """record() failing logs a failure naming the webhook; other work continues."""
    worker, store, agent, clock = rig()
    store.add(1)
    store.add(2)
    store.fail_record = 1
    worker.start()
    agent.answer(204)
    agent.answer(204)
    assert [(e["store_op"], e["webhook_id"]) for e in observe_errors] == [("record", 1)]
    observe_errors.clear()
    assert store.attempts == [WebhookAttempt(2, 1, NOW, 204, None, "delivered", None)]
    stop(worker, clock)


def test_attempts_are_logged_with_fields(events: list[LogEvent]) -> None:
    """Each attempt logs webhook id, issuer, attempt, status and outcome."""
    worker, store, agent, clock = rig()
    store.add(8)
    worker.start()
    agent.answer(502)
    clock.advance(10)
    agent.answer(200)
    stop(worker, clock)
    logged = [
        (e["webhook_id"], e["issuer"], e["attempt"], e["status"], e["outcome"])
        for e in events
        if "outcome" in e
    ]
    assert logged == [(8, "acme", 1, 502, "retry"), (8, "acme", 2, 200, "delivered")]


def test_no_secret_body_or_query_in_any_log_event(
    events: list[LogEvent], observe_errors: list[LogEvent]
) -> None:
    """Across every path, no log event shows the secret, the body or the query."""
    worker, store, agent, clock = rig(max_attempts=2)
    store.add(1)
    store.add(2)
    store.add(3, issuer="gone")
    store.fail_record = 1
    worker.start()
    agent.answer(500)  # webhook 1: record fails
    agent.sent[1].d.errback(ValueError(f"boom {URL}"))
    clock.advance(10)
    clock.advance(10)  # the retry of webhook 2 times out: failed
    stop(worker, clock)
    observe_errors.clear()
    assert len(events) >= 4
    forbidden = [
        SECRET.decode(),
        SECRET.hex(),
        "QUERYTOKEN42",
        BODY.decode(),
        "fraud_reported",
    ]
    for event in events:
        text = formatEvent(event) + repr(sorted(event.items(), key=str))
        for word in forbidden:
            assert word not in text, (word, event.get("log_format"))


def test_start_twice_and_stop_when_idle() -> None:
    """start() is idempotent; stop() when idle fires at once and clears timers."""
    worker, store, _, clock = rig()
    worker.start()
    worker.start()
    assert len(clock.getDelayedCalls()) == 1
    assert store.due_calls == [(NOW, 4)]
    stop(worker, clock)
    worker.poke()
    assert store.due_calls == [(NOW, 4)]


@implementer(IAgent)
class ImmediateAgent:
    """Answers every request 204 before returning."""

    def __init__(self) -> None:
        self.count = 0

    def request(self, *args: Any, **kw: Any) -> defer.Deferred[IResponse]:
        self.count += 1
        return defer.succeed(FakeResponse(204))


def test_synchronous_store_and_agent_do_not_recurse() -> None:
    """Thousands of instantly answered webhooks drain in a loop, not a recursion."""
    clock = Clock()
    clock.advance(NOW)
    store = Store()
    for i in range(3000):
        store.add(i)
    agent = ImmediateAgent()
    worker = WebhookWorker(store, agent, clock, TARGETS, concurrency=4)
    worker.start()
    assert agent.count == 3000
    assert [a.outcome for a in store.attempts] == ["delivered"] * 3000
    assert store.due_calls[-1] == (NOW, 4)
    stop(worker, clock)
