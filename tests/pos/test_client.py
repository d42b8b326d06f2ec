"""The POS client protocol: FIFO matching, response MACs, loss, timeouts.

Also home of the in-memory fake intake server (`FakeIntake`, `FakeEndpoint`)
that tests/pos/test_load.py drives the load generator and the CLI against.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from twisted.internet import task
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import LogLevel, capturedLogs
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from smsgw.intake.envelope import (
    IntakeError,
    TerminalKey,
    error_body,
    parse_body,
    parse_envelope,
    request_frame,
    response_frame,
    verify,
)
from smsgw.pos.client import (
    IntakeClientFactory,
    IntakeClientProtocol,
    RequestLost,
    Response,
    ResponseError,
    ResponseTimeout,
)

# intake-v1.md, "Test vector"
SECRET = bytes.fromhex(
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
)
KEY = TerminalKey(SECRET)
OTHER_KEY = TerminalKey(b"another terminal key 32 bytes!!!")
BODY = (
    '{"type":"txn","txn_id":"000123","ts":1764417605,"kind":"purchase",'
    '"amount":"128.50","currency":"CNY","pan":"6222021234567894",'
    '"merchant_id":"M001","merchant_name":"星巴克(南京西路店)",'
    '"time":"2026-11-29T20:00:05+08:00","msisdn":"+8613800138000"}'
)

_case = SynchronousTestCase()
success_of = _case.successResultOf
failure_of = _case.failureResultOf
no_result = _case.assertNoResult


# -- in-memory fake intake server (shared with test_load.py) -------------------


class LinkedTransport:
    """A StringTransport-like transport that hands each write to the peer at once.

    It records what was written (``value()``) and rejects ``str`` like
    StringTransport; closing either side delivers connectionLost to both.
    """

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.protocol: Any = None
        self.peer: LinkedTransport | None = None
        self.disconnecting = False

    def write(self, data: bytes) -> None:
        if not isinstance(data, bytes):
            raise TypeError(f"Data must be bytes, not {type(data).__name__}")
        self.written.append(data)
        peer = self.peer
        if not self.disconnecting and peer is not None and not peer.disconnecting:
            peer.protocol.dataReceived(data)

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def value(self) -> bytes:
        return b"".join(self.written)

    def loseConnection(self) -> None:
        self._lost(Failure(ConnectionDone()))

    def abortConnection(self) -> None:
        self._lost(Failure(ConnectionLost()))

    def _lost(self, reason: Failure) -> None:
        if self.disconnecting:
            return
        self.disconnecting = True
        peer = self.peer
        if peer is not None:
            peer.disconnecting = True
        self.protocol.connectionLost(reason)
        if peer is not None:
            peer.protocol.connectionLost(reason)

    def getPeer(self) -> None:
        return None

    def getHost(self) -> None:
        return None

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass


def link(client: Any, server: Any) -> tuple[LinkedTransport, LinkedTransport]:
    """Connect two protocols in memory; returns (client side, server side)."""
    ct, st = LinkedTransport(), LinkedTransport()
    ct.protocol, st.protocol = client, server
    ct.peer, st.peer = st, ct
    server.makeConnection(st)
    client.makeConnection(ct)
    return ct, st


def ack(body: dict[str, Any], n: int) -> dict[str, Any]:
    """The default answer: an accepted ack with one alert, or a pong."""
    if body["type"] == "ping":
        return {"type": "pong", "nonce": body.get("nonce")}
    return {
        "type": "ack",
        "txn_id": body.get("txn_id"),
        "status": "accepted",
        "ref": f"R{n}",
        "alerts": 1,
    }


class FakeIntake:
    """Shared state of an in-memory intake server: the spec's envelope checks,
    answers from ``respond(body, n)`` after ``delay(n)`` seconds on ``clock``,
    written in request order per connection (n counts requests, from 0)."""

    def __init__(
        self,
        clock: task.Clock,
        *,
        keys: dict[str, TerminalKey] | None = None,
        respond: Callable[[dict[str, Any], int], dict[str, Any]] = ack,
        delay: Callable[[int], float] = lambda n: 0.0,
    ) -> None:
        self.clock = clock
        self.keys = keys if keys is not None else {"T1001": KEY}
        self.respond = respond
        self.delay = delay
        self.received: list[tuple[float, int, dict[str, Any]]] = []
        self.servers: list[FakeIntakeServer] = []

    def protocol(self) -> FakeIntakeServer:
        server = FakeIntakeServer(self, len(self.servers))
        self.servers.append(server)
        return server

    def answer_frame(self, frame: bytes) -> tuple[bytes, float]:
        """The response frame for one request frame and its delay."""
        try:
            env = parse_envelope(frame)
            key = self.keys.get(env.terminal)
            if key is None:
                raise IntakeError("unknown_terminal", "no such terminal")
            verify(env, [key])
        except IntakeError as e:
            return response_frame(error_body(e), None), 0.0
        try:
            body = parse_body(env)
        except IntakeError as e:
            return response_frame(error_body(e), key), 0.0
        n = len(self.received)
        return response_frame(self.respond(body, n), key), self.delay(n)


class FakeIntakeServer(Int32StringReceiver):
    """One server connection of `FakeIntake` (answers in arrival order)."""

    MAX_LENGTH = 65536

    def __init__(self, intake: FakeIntake, number: int) -> None:
        self.intake = intake
        self.number = number
        self.slots: deque[list[Any]] = deque()
        self.timers: set[Any] = set()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()

    def stringReceived(self, string: bytes) -> None:
        frame, delay = self.intake.answer_frame(string)
        body = orjson.loads(parse_envelope(string).body)
        self.intake.received.append((self.intake.clock.seconds(), self.number, body))
        slot: list[Any] = [None]  # [answer frame once filled, its timer]
        self.slots.append(slot)
        timer = self.intake.clock.callLater(delay, self._fill, slot, frame)
        self.timers.add(timer)
        slot.append(timer)

    def _fill(self, slot: list[Any], frame: bytes) -> None:
        self.timers.discard(slot.pop())
        slot[0] = frame
        while self.slots and self.slots[0][0] is not None:
            ready = self.slots.popleft()[0]
            assert ready is not None
            if self.transport is not None and not self.transport.disconnecting:  # type: ignore[attr-defined]
                self.transport.write(ready)


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """A client endpoint whose connections go to a `FakeIntake` in memory."""

    def __init__(self, intake: FakeIntake, *, refuse_after: int | None = None) -> None:
        self.intake = intake
        self.refuse_after = refuse_after
        self.clients: list[IntakeClientProtocol] = []

    def connect(self, factory: Factory[Any]) -> Deferred[Any]:
        if self.refuse_after is not None and len(self.clients) >= self.refuse_after:
            return fail(ConnectionRefusedError("fake refusal"))
        client = factory.buildProtocol(None)
        assert isinstance(client, IntakeClientProtocol)
        self.clients.append(client)
        link(client, self.intake.protocol())
        return succeed(client)


# -- helpers for the StringTransport tests --------------------------------------


def connected(
    timeout: float | None = None,
) -> tuple[IntakeClientProtocol, list[bytes], task.Clock, LinkedTransport]:
    """A client on a transport with no peer; returns what it writes too."""
    clock = task.Clock()
    proto = IntakeClientProtocol("T1001", KEY, clock, timeout=timeout)
    transport = LinkedTransport()
    transport.protocol = proto
    proto.makeConnection(transport)  # type: ignore[arg-type]
    return proto, transport.written, clock, transport


def answer(body: dict[str, Any], key: TerminalKey | None = KEY) -> bytes:
    return response_frame(body, key)


def txn(txn_id: str) -> dict[str, Any]:
    return {"type": "txn", "txn_id": txn_id, "ts": 1764417605, "kind": "purchase"}


def accepted(txn_id: str | None, ref: str = "R1") -> dict[str, Any]:
    return {
        "type": "ack",
        "txn_id": txn_id,
        "status": "accepted",
        "ref": ref,
        "alerts": 1,
    }


# -- the client ----------------------------------------------------------------


def test_send_writes_the_spec_frame() -> None:
    """Sending the spec's test-vector body writes the spec's 398-byte signed frame."""
    proto, written, _clock, _t = connected()
    proto.send(orjson.loads(BODY))
    assert written == [request_frame("T1001", BODY, KEY)]
    assert written[0][:4].hex() == "0000018e"
    env = parse_envelope(written[0][4:])
    assert env.mac == "d83bd5061bda363b67d9119141c903863fc6654bf596ddf0706e4c56ca6178be"


def test_pipelined_requests_are_matched_in_order() -> None:
    """Three requests go out before any answer; answers fire them in FIFO order."""
    proto, written, clock, _t = connected()
    d1 = proto.send(txn("A"))
    clock.advance(0.5)
    d2 = proto.send({"type": "ping", "ts": 1, "nonce": "n-1"})
    clock.advance(0.5)
    d3 = proto.send(txn("C"))
    assert len(written) == 3
    assert proto.outstanding == 3
    no_result(d1)
    clock.advance(1.0)
    proto.dataReceived(
        answer(accepted("A"))
        + answer({"type": "pong", "nonce": "n-1"})
        + answer(accepted("C", "R3"))
    )
    r1, r2, r3 = success_of(d1), success_of(d2), success_of(d3)
    assert r1 == Response(accepted("A"), signed=True, mac_null=False, latency=2.0)
    assert (r2.body, r2.outcome, r2.latency) == (
        {"type": "pong", "nonce": "n-1"},
        "pong",
        1.5,
    )
    assert (r3.body["ref"], r3.outcome, r3.accepted, r3.latency) == (
        "R3",
        "accepted",
        True,
        1.0,
    )
    assert proto.outstanding == 0
    assert clock.getDelayedCalls() == []


def test_answers_fed_one_byte_at_a_time() -> None:
    """Responses split into single bytes still complete each request in order."""
    proto, _w, _clock, _t = connected()
    ds = [proto.send(txn(f"T{i}")) for i in range(3)]
    data = b"".join(answer(accepted(f"T{i}", f"R{i}")) for i in range(3))
    for i in range(len(data)):
        proto.dataReceived(data[i : i + 1])
    assert [success_of(d).body["ref"] for d in ds] == ["R0", "R1", "R2"]


def test_answer_without_a_key_matches_by_order() -> None:
    """An error with txn_id null (body unreadable) answers the oldest request."""
    proto, _w, _clock, _t = connected()
    d1 = proto.send(txn("A"))
    d2 = proto.send(txn("B"))
    error = {"type": "error", "txn_id": None, "code": "malformed", "message": "x"}
    proto.dataReceived(answer(error) + answer(accepted("B")))
    r1 = success_of(d1)
    assert (r1.outcome, r1.accepted, r1.signed) == ("malformed", False, True)
    assert success_of(d2).accepted


def test_answer_naming_another_request_fails_that_request() -> None:
    """A response carrying another txn_id errbacks with ResponseError naming both."""
    proto, _w, _clock, _t = connected()
    d1 = proto.send(txn("A"))
    d2 = proto.send({"type": "ping", "ts": 1, "nonce": "n-2"})
    proto.dataReceived(answer(accepted("B")) + answer({"type": "pong", "nonce": "n-9"}))
    e1 = failure_of(d1, ResponseError)
    assert str(e1.value) == (
        "response txn_id 'B' does not match the request's 'A' (responses out of order?)"
    )
    e2 = failure_of(d2, ResponseError)
    assert "response nonce 'n-9' does not match the request's 'n-2'" in str(e2.value)


def test_good_mac_is_signed() -> None:
    """A response signed with the terminal key is signed and not mac_null."""
    proto, _w, _clock, _t = connected()
    d = proto.send(txn("A"))
    proto.dataReceived(answer(accepted("A"), KEY))
    r = success_of(d)
    assert (r.signed, r.mac_null, r.accepted) == (True, False, True)


def test_null_mac_is_untrusted_never_an_ack() -> None:
    """A null MAC gives mac_null, not signed; even an 'accepted' ack is not accepted."""
    proto, _w, _clock, _t = connected()
    d1 = proto.send(txn("A"))
    d2 = proto.send(txn("B"))
    bad_mac = {"type": "error", "txn_id": None, "code": "bad_mac", "message": "m"}
    proto.dataReceived(answer(bad_mac, None) + answer(accepted("B"), None))
    r1, r2 = success_of(d1), success_of(d2)
    assert (r1.signed, r1.mac_null, r1.outcome) == (False, True, "bad_mac")
    assert (r2.signed, r2.mac_null, r2.outcome, r2.accepted) == (
        False,
        True,
        "untrusted_ack",
        False,
    )


def test_wrong_mac_fails_the_request() -> None:
    """A MAC from another key, or over other content, errbacks with ResponseError."""
    proto, _w, _clock, _t = connected()
    d1 = proto.send(txn("A"))
    d2 = proto.send(txn("B"))
    d3 = proto.send(txn("C"))
    good = orjson.loads(answer(accepted("C"))[4:])
    tampered = orjson.dumps(
        {"body": good["body"].replace('"alerts":1', '"alerts":9'), "mac": good["mac"]}
    )
    proto.dataReceived(
        answer(accepted("A"), OTHER_KEY)
        + answer(accepted("B"), KEY)
        + len(tampered).to_bytes(4, "big")
        + tampered
    )
    e1 = failure_of(d1, ResponseError)
    assert str(e1.value) == "response MAC does not verify with the terminal key"
    assert success_of(d2).signed
    failure_of(d3, ResponseError)


def test_send_with_another_terminal_key_verifies_with_that_key() -> None:
    """A request sent as another terminal is signed and checked with its key."""
    proto, written, _clock, _t = connected()
    d = proto.send(txn("A"), terminal="T2002", key=OTHER_KEY)
    env = parse_envelope(written[0][4:])
    assert env.terminal == "T2002"
    assert verify(env, [OTHER_KEY]) is OTHER_KEY
    proto.dataReceived(answer(accepted("A"), KEY))
    failure_of(d, ResponseError)
    d = proto.send(txn("B"), terminal="T2002", key=OTHER_KEY)
    proto.dataReceived(answer(accepted("B"), OTHER_KEY))
    assert success_of(d).signed


@pytest.mark.parametrize(
    ("envelope", "message"),
    [
        (b"not json", "response is not valid JSON"),
        (b"[1, 2]", "response must be a JSON object"),
        (b'{"mac": null}', "response field 'body' must be a string"),
        (b'{"body": "{}", "mac": 5}', "response field 'mac' must be a string or null"),
        (b'{"body": "{oops", "mac": null}', "response body is not valid JSON"),
        (b'{"body": "[]", "mac": null}', "response body must be a JSON object"),
        (b'{"body": "\\ud800", "mac": null}', "response is not valid JSON"),
    ],
)
def test_malformed_response_fails_the_request(envelope: bytes, message: str) -> None:
    """A response not in the spec's shape errbacks with a ResponseError saying why."""
    proto, _w, _clock, _t = connected()
    d1 = proto.send(txn("A"))
    d2 = proto.send(txn("B"))
    proto.dataReceived(len(envelope).to_bytes(4, "big") + envelope)
    proto.dataReceived(answer(accepted("B")))
    assert str(failure_of(d1, ResponseError).value).startswith(message)
    assert success_of(d2).accepted


def test_connection_lost_fails_every_outstanding_request() -> None:
    """Losing the connection errbacks all outstanding requests and later sends."""
    proto, _w, _clock, _t = connected()
    ds = [proto.send(txn(f"T{i}")) for i in range(3)]
    proto.dataReceived(answer(accepted("T0")))
    proto.connectionLost(Failure(ConnectionLost("peer reset")))
    assert success_of(ds[0]).accepted
    for d in ds[1:]:
        assert "connection lost: " in str(failure_of(d, RequestLost).value)
    assert not proto.open
    later = failure_of(proto.send(txn("T9")), RequestLost)
    assert str(later.value).startswith("connection closed: ")


def test_timeout_fails_the_head_and_closes() -> None:
    """An unanswered request fails with ResponseTimeout after the timeout; the rest
    fail as lost (their answers could no longer be matched)."""
    proto, _w, clock, transport = connected(timeout=5.0)
    d1 = proto.send(txn("A"))
    clock.advance(1.0)
    d2 = proto.send(txn("B"))
    clock.advance(3.9)
    no_result(d1)
    clock.advance(0.1)
    assert str(failure_of(d1, ResponseTimeout).value) == "no response within 5 s"
    assert transport.disconnecting
    assert not failure_of(d2, RequestLost).check(ResponseTimeout)
    assert clock.getDelayedCalls() == []


def test_each_request_gets_the_whole_timeout() -> None:
    """One timer serves the connection: when the oldest request is answered,
    the next one still has its own full timeout, counted from its sending."""
    proto, _w, clock, transport = connected(timeout=5.0)
    d1 = proto.send(txn("A"))
    clock.advance(3.0)
    d2 = proto.send(txn("B"))
    proto.dataReceived(answer(accepted("A")))
    assert success_of(d1).accepted
    clock.advance(2.0)  # A's deadline: B has 3 s left
    no_result(d2)
    assert not transport.disconnecting
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(2.9)
    no_result(d2)
    clock.advance(0.1)
    assert str(failure_of(d2, ResponseTimeout).value) == "no response within 5 s"
    assert transport.disconnecting


def test_answered_requests_cancel_their_timers() -> None:
    """A response cancels its request's timer: no delayed calls remain."""
    proto, _w, clock, transport = connected(timeout=5.0)
    d = proto.send(txn("A"))
    assert len(clock.getDelayedCalls()) == 1
    proto.dataReceived(answer(accepted("A")))
    assert success_of(d).accepted
    assert clock.getDelayedCalls() == []
    assert not transport.disconnecting


def test_unsolicited_response_closes_the_connection() -> None:
    """A response with no request outstanding is logged as a warning and closes."""
    proto, _w, _clock, transport = connected()
    with capturedLogs() as events:
        proto.dataReceived(answer(accepted("X")))
    assert transport.disconnecting
    [event] = [e for e in events if e["log_level"] == LogLevel.warn]
    assert event["terminal"] == "T1001"


def test_oversized_response_fails_all_and_closes() -> None:
    """A response frame over 65536 bytes fails every outstanding request and closes."""
    proto, _w, _clock, transport = connected()
    d = proto.send(txn("A"))
    proto.dataReceived((65537).to_bytes(4, "big") + b"{")
    assert str(failure_of(d, ResponseError).value) == (
        "response frame of 65537 bytes is over 65536"
    )
    assert transport.disconnecting


def test_factory_builds_configured_protocols() -> None:
    """IntakeClientFactory makes protocols with its terminal, key, clock and timeout."""
    clock = task.Clock()
    factory = IntakeClientFactory("T7", KEY, clock, timeout=2.5)
    proto = factory.buildProtocol(None)
    assert (proto.terminal, proto.key, proto.clock, proto.timeout) == (
        "T7",
        KEY,
        clock,
        2.5,
    )
    assert proto.factory is factory
    assert not proto.open


def test_pipelined_through_the_fake_server() -> None:
    """100 pipelined requests through the in-memory server are verified and acked."""
    clock = task.Clock()
    intake = FakeIntake(clock, delay=lambda n: 0.001 * (n % 7))
    endpoint = FakeEndpoint(intake)
    proto = success_of(endpoint.connect(IntakeClientFactory("T1001", KEY, clock)))
    ds = [proto.send(txn(f"X{i}")) for i in range(100)]
    ds.append(proto.send({"type": "ping", "ts": 1, "nonce": "last"}))
    clock.advance(0.01)
    results = [success_of(d) for d in ds]
    assert [r.body.get("ref") for r in results[:100]] == [f"R{i}" for i in range(100)]
    assert results[100].body == {"type": "pong", "nonce": "last"}
    assert all(r.signed for r in results)
    assert [body["txn_id"] for _, _, body in intake.received[:100]] == [
        f"X{i}" for i in range(100)
    ]
    proto.close()
    assert not proto.open
    assert clock.getDelayedCalls() == []


def test_fake_server_rejects_a_bad_request_mac_unsigned() -> None:
    """A request signed with the wrong key gets the fake server's unsigned bad_mac."""
    clock = task.Clock()
    proto = success_of(
        FakeEndpoint(FakeIntake(clock)).connect(
            IntakeClientFactory("T1001", OTHER_KEY, clock)
        )
    )
    d = proto.send(txn("A"))
    clock.advance(0)
    r = success_of(d)
    assert (r.outcome, r.mac_null, r.accepted) == ("bad_mac", True, False)
