"""The intake port against intake-v1, rule by rule, on StringTransport and Clock.

Every error code is followed by a valid transaction on the same connection
(a bad request never affects the next one); pipelined requests are answered
in order even when later ones finish first; bad frame lengths close the
connection after everything before them is answered.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Any

import orjson
import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from smsgw.intake.accept import StoreAcceptor
from smsgw.intake.decide import AcceptResult, Intake
from smsgw.intake.envelope import TerminalKey, request_frame
from smsgw.intake.protocol import IntakeFactory, IntakeProtocol
from smsgw.intake.terminals import Terminal
from smsgw.intake.validate import Txn
from smsgw.service.config_alerts import IssuerConfig
from smsgw.store.accept import Accepted
from smsgw.store.keys import CardHasher

KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
OLD_KEY = bytes(range(100, 132))
NOW = 1764417605.0


def Hasher() -> CardHasher:
    """The store's keyed hasher, with a fixed key."""
    return CardHasher("k1", b"k")


class FakeAcceptor:
    """Remembers (terminal, txn_id) -> (digest, ref) like the store does.

    ``hold`` keeps answers pending until the test releases them; ``down``
    makes every commit fail (the store is unavailable).
    """

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.hold = False
        self.down = False
        self.pending: list[tuple[defer.Deferred[AcceptResult], AcceptResult]] = []
        self.accepted: list[Txn] = []

    def accept(self, terminal: Terminal, txn: Txn) -> defer.Deferred[AcceptResult]:
        if self.down:
            return defer.fail(RuntimeError("database is down"))
        key = (terminal.id, txn.txn_id)
        if key in self.seen:
            digest, ref = self.seen[key]
            status = "duplicate" if digest == txn.content_digest else "conflict"
            result = AcceptResult(status, ref, 1)  # type: ignore[arg-type]
        else:
            ref = f"R{len(self.seen) + 1}"
            self.seen[key] = (txn.content_digest, ref)
            self.accepted.append(txn)
            result = AcceptResult("accepted", ref, 1)
        if self.hold:
            d: defer.Deferred[AcceptResult] = defer.Deferred()
            self.pending.append((d, result))
            return d
        return defer.succeed(result)

    def release(self, index: int) -> None:
        d, result = self.pending[index]
        d.callback(result)


def txn_body(txn_id: str = "000123", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "txn",
        "txn_id": txn_id,
        "ts": int(NOW),
        "kind": "purchase",
        "amount": "128.50",
        "currency": "CNY",
        "pan": "6222021234567894",
        "merchant_id": "M001",
        "merchant_name": "星巴克(南京西路店)",
        "time": "2026-11-29T20:00:05+08:00",
        "msisdn": "+8613800138000",
    }
    for k, v in fields.items():
        if v is None:
            body.pop(k, None)
        else:
            body[k] = v
    return body


def frame(
    body: dict[str, Any] | str, terminal: str = "T1001", key: bytes = KEY
) -> bytes:
    return request_frame(terminal, body, TerminalKey(key))


def raw_frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


class Conn:
    """One connection to an intake port on a StringTransport."""

    def __init__(self, rate: float | None = None, max_frame: int = 65536) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.acceptor = FakeAcceptor()
        terminals = {
            "T1001": Terminal(
                "T1001",
                (TerminalKey(KEY), TerminalKey(OLD_KEY)),
                True,
                True,
                None,
                rate,
            ),
            "T0OFF": Terminal("T0OFF", (TerminalKey(KEY),), False, True, None, None),
        }
        self.intake = Intake(
            terminals, self.acceptor, Hasher(), self.clock, max_skew=300
        )
        self.factory = IntakeFactory(
            self.intake, self.clock, max_frame=max_frame, idle_timeout=300.0
        )
        self.proto: IntakeProtocol = self.factory.buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def send(self, data: bytes, byte_by_byte: bool = False) -> None:
        if byte_by_byte:
            for i in range(len(data)):
                self.proto.dataReceived(data[i : i + 1])
        else:
            self.proto.dataReceived(data)

    def responses(self) -> list[dict[str, Any]]:
        """Every response written so far (consumed), as {body..., "_mac": mac}."""
        data = self.transport.value()
        self.transport.clear()
        out = []
        while data:
            (n,) = struct.unpack(">I", data[:4])
            envelope = orjson.loads(data[4 : 4 + n])
            data = data[4 + n :]
            assert set(envelope) == {"body", "mac"}
            body = orjson.loads(envelope["body"])
            body["_mac"] = envelope["mac"]
            if envelope["mac"] is not None:
                expected = hmac.new(
                    KEY, envelope["body"].encode(), hashlib.sha256
                ).hexdigest()
                if envelope["mac"] != expected:
                    expected = hmac.new(
                        OLD_KEY, envelope["body"].encode(), hashlib.sha256
                    ).hexdigest()
                body["_signed_ok"] = envelope["mac"] == expected
            out.append(body)
        return out

    def close(self) -> None:
        self.proto.connectionLost(None)  # type: ignore[arg-type]


class HeldWriter:
    """A store writer whose commits the test completes (or never does)."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, defer.Deferred[Any]]] = []

    def submit(self, op: Any, item: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.items.append((item, d))
        return d

    def commit(
        self, index: int, status: str, ref: str, queued: tuple[Any, ...] = ()
    ) -> None:
        """Answer write ``index`` as committed with ``status``."""
        self.items[index][1].callback(Accepted(AcceptResult(status, ref, 1), queued))  # type: ignore[arg-type]


def store_acceptor(
    c: Conn, *, commit_timeout: float = 10.0, queued: list[Any] | None = None
) -> HeldWriter:
    """Put a StoreAcceptor over a HeldWriter behind connection ``c``."""
    writer = HeldWriter()
    c.intake.acceptor = StoreAcceptor(
        writer,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        (IssuerConfig(),),
        c.clock,
        (queued if queued is not None else []).extend,
        commit_timeout=commit_timeout,
    )
    return writer


def test_spec_test_vector_is_accepted_and_signed() -> None:
    """The spec's test-vector request is accepted; the ack is signed with the key."""
    c = Conn()
    c.send(frame(txn_body()))
    [ack] = c.responses()
    assert ack == {
        "type": "ack",
        "txn_id": "000123",
        "status": "accepted",
        "ref": "R1",
        "alerts": 1,
        "_mac": ack["_mac"],
        "_signed_ok": True,
    }


def test_byte_by_byte_delivery_is_the_same() -> None:
    """Frames split into single bytes are read exactly as whole ones."""
    c = Conn()
    c.send(
        frame(txn_body()) + frame({"type": "ping", "ts": int(NOW), "nonce": "x"}),
        byte_by_byte=True,
    )
    assert [r["type"] for r in c.responses()] == ["ack", "pong"]


def test_ping_answers_pong_with_its_nonce() -> None:
    """A ping gets a signed pong carrying its nonce."""
    c = Conn()
    c.send(frame({"type": "ping", "ts": int(NOW), "nonce": "abc"}))
    [pong] = c.responses()
    assert (pong["type"], pong["nonce"], pong["_signed_ok"]) == ("pong", "abc", True)


BAD_REQUESTS = [
    # (what, frame bytes, code, signed, txn_id echoed)
    ("envelope not JSON", raw_frame(b"{nope"), "malformed", False, None),
    ("envelope not an object", raw_frame(b"[1,2]"), "malformed", False, None),
    (
        "envelope without mac",
        raw_frame(orjson.dumps({"terminal": "T1001", "body": "{}"})),
        "malformed",
        False,
        None,
    ),
    (
        "mac not a string",
        raw_frame(orjson.dumps({"terminal": "T1001", "body": "{}", "mac": 5})),
        "malformed",
        False,
        None,
    ),
    (
        "unknown terminal",
        frame(txn_body("u1"), terminal="T9999"),
        "unknown_terminal",
        False,
        "u1",
    ),
    (
        "disabled terminal",
        frame(txn_body("u2"), terminal="T0OFF"),
        "unknown_terminal",
        False,
        "u2",
    ),
    ("wrong key", frame(txn_body("b1"), key=bytes(32)), "bad_mac", False, "b1"),
    ("body not JSON", frame("{not json"), "malformed", True, None),
    ("body not an object", frame('"txn"'), "malformed", True, None),
    (
        "unknown type",
        frame({"type": "refund_all", "ts": int(NOW)}),
        "malformed",
        True,
        None,
    ),
    ("ts too old", frame(txn_body("s1", ts=int(NOW) - 301)), "stale", True, "s1"),
    ("ts in the future", frame(txn_body("s2", ts=int(NOW) + 301)), "stale", True, "s2"),
    (
        "ts not an integer",
        frame(txn_body("s3", ts="1764417605")),
        "invalid",
        True,
        "s3",
    ),
    ("bad amount", frame(txn_body("i1", amount="12.345")), "invalid", True, "i1"),
    ("bad Luhn", frame(txn_body("i2", pan="6222021234567895")), "invalid", True, "i2"),
    ("no card", frame(txn_body("i3", pan=None)), "invalid", True, "i3"),
    ("unknown issuer", frame(txn_body("i4", issuer="nobank")), "invalid", True, "i4"),
]


@pytest.mark.parametrize(
    ("what", "data", "code", "signed", "txn_id"),
    BAD_REQUESTS,
    ids=[b[0] for b in BAD_REQUESTS],
)
def test_every_error_then_a_valid_transaction_on_the_same_connection(
    what: str, data: bytes, code: str, signed: bool, txn_id: str | None
) -> None:
    """Each bad request gets its code (signed only once authenticated); the
    connection stays open and the next valid transaction is accepted."""
    c = Conn()
    c.send(data + frame(txn_body("ok-1")))
    error, ack = c.responses()
    assert error["type"] == "error"
    assert error["code"] == code, error["message"]
    assert error["txn_id"] == txn_id
    assert isinstance(error["message"], str)
    assert error["message"]
    if signed:
        assert error["_signed_ok"] is True
    else:
        assert error["_mac"] is None
    assert (ack["type"], ack["status"], ack["txn_id"]) == ("ack", "accepted", "ok-1")
    assert not c.transport.disconnecting


def test_invalid_message_names_the_field_and_never_the_pan() -> None:
    """An invalid field is named in the message; the card number is never echoed."""
    c = Conn()
    c.send(frame(txn_body("x", currency="XXY")))
    [error] = c.responses()
    assert error["message"].startswith("currency")
    assert "6222021234567894" not in error["message"]


def test_duplicate_and_conflict_then_valid() -> None:
    """A retry (fresh ts) is a duplicate with the original ref; changed content a
    conflict; neither uses up the next transaction."""
    c = Conn()
    c.send(frame(txn_body("d1")))
    c.send(frame(txn_body("d1", ts=int(NOW) + 10)))
    c.send(frame(txn_body("d1", amount="128.5")))
    c.send(frame(txn_body("d2")))
    first, dup, conflict, ok = c.responses()
    assert (dup["status"], dup["ref"], dup["alerts"]) == ("duplicate", first["ref"], 1)
    assert (conflict["code"], conflict["txn_id"]) == ("conflict", "d1")
    assert conflict["_signed_ok"] is True
    assert ok["status"] == "accepted"
    assert len(c.acceptor.accepted) == 2


def test_rejected_requests_do_not_use_up_their_txn_id() -> None:
    """A txn_id answered invalid or stale can be sent again and is accepted."""
    c = Conn()
    c.send(frame(txn_body("r1", amount="0")))
    c.send(frame(txn_body("r1", ts=int(NOW) - 1000)))
    c.send(frame(txn_body("r1")))
    invalid, stale, ok = c.responses()
    assert (invalid["code"], stale["code"], ok["status"]) == (
        "invalid",
        "stale",
        "accepted",
    )


def test_unavailable_when_the_store_cannot_commit_then_retry_accepted() -> None:
    """A commit failure answers unavailable (signed); the retry is accepted."""
    c = Conn()
    c.acceptor.down = True
    c.send(frame(txn_body("u1")))
    [error] = c.responses()
    assert (error["code"], error["txn_id"], error["_signed_ok"]) == (
        "unavailable",
        "u1",
        True,
    )
    c.acceptor.down = False
    c.send(frame(txn_body("u1")))
    assert c.responses()[0]["status"] == "accepted"


def test_unavailable_while_shutting_down_but_pings_answered() -> None:
    """Once draining, transactions are refused unavailable; pings still answered."""
    c = Conn()
    c.intake.closing = True
    c.send(
        frame(txn_body("z1")) + frame({"type": "ping", "ts": int(NOW), "nonce": "n"})
    )
    error, pong = c.responses()
    assert error["code"] == "unavailable"
    assert pong["type"] == "pong"
    assert c.acceptor.accepted == []


def test_pipelined_answers_come_back_in_request_order() -> None:
    """Responses follow the arrival order even when later commits finish first."""
    c = Conn()
    c.acceptor.hold = True
    c.send(
        frame(txn_body("p1"))
        + frame(txn_body("p2"))
        + frame("{bad")
        + frame({"type": "ping", "ts": int(NOW), "nonce": "n3"})
        + frame(txn_body("p5"))
    )
    assert c.responses() == []  # p1 holds everything behind it
    c.acceptor.release(2)
    c.acceptor.release(1)
    assert c.responses() == []
    c.acceptor.release(0)
    keys = [(r["type"], r.get("txn_id"), r.get("nonce")) for r in c.responses()]
    assert keys == [
        ("ack", "p1", None),
        ("ack", "p2", None),
        ("error", None, None),
        ("pong", None, "n3"),
        ("ack", "p5", None),
    ]


def test_rotation_either_key_verifies_and_the_answer_uses_it() -> None:
    """During a rotation the old key verifies too, and the answer is signed with it."""
    c = Conn()
    c.send(frame(txn_body("k1"), key=OLD_KEY))
    [ack] = c.responses()
    expected = hmac.new(
        OLD_KEY,
        orjson.dumps({k: v for k, v in ack.items() if not k.startswith("_")}),
        hashlib.sha256,
    )
    assert ack["status"] == "accepted"
    assert ack["_mac"] == expected.hexdigest()


def test_frame_over_max_frame_is_too_large_after_earlier_answers_then_closed() -> None:
    """A too-large frame: earlier requests answered first, then too_large, then close;
    nothing after it is read."""
    c = Conn(max_frame=1000)
    c.acceptor.hold = True
    c.send(frame(txn_body("a1")) + struct.pack(">I", 1001) + b"x" * 20)
    c.send(frame(txn_body("a2")))
    assert c.responses() == []
    c.acceptor.release(0)
    ack, error = c.responses()
    assert ack["txn_id"] == "a1"
    assert (error["code"], error["_mac"], error["txn_id"]) == ("too_large", None, None)
    assert c.transport.disconnecting
    assert [t.txn_id for t in c.acceptor.accepted] == ["a1"]


def test_zero_length_frame_is_malformed_and_closes() -> None:
    """A frame of length 0 is answered malformed and the connection closed; later
    frames in the same data are ignored."""
    c = Conn()
    c.send(frame(txn_body("z1")) + struct.pack(">I", 0) + frame(txn_body("z2")))
    ack, error = c.responses()
    assert ack["txn_id"] == "z1"
    assert error["code"] == "malformed"
    assert c.transport.disconnecting
    assert [t.txn_id for t in c.acceptor.accepted] == ["z1"]


def test_frame_of_exactly_max_frame_is_read() -> None:
    """max_frame itself is allowed (1..max_frame)."""
    body = frame(txn_body("m1"))
    c = Conn(max_frame=len(body) - 4)
    c.send(body)
    assert c.responses()[0]["status"] == "accepted"


def test_idle_connection_is_closed_after_the_timeout() -> None:
    """No data for idle_timeout seconds closes the connection; data resets it."""
    c = Conn()
    c.clock.advance(299)
    c.send(frame({"type": "ping", "ts": int(NOW) + 299, "nonce": "a"}))
    c.clock.advance(299)
    assert not c.transport.disconnecting
    c.clock.advance(1)
    assert c.transport.disconnecting
    c.close()
    assert c.clock.getDelayedCalls() == []


def test_rate_limit_per_terminal_then_recovers() -> None:
    """Over its rate a terminal gets rate_limited (signed); a second later it is in."""
    c = Conn(rate=2)
    c.send(b"".join(frame(txn_body(f"q{i}")) for i in range(3)))
    codes = [r.get("status") or r["code"] for r in c.responses()]
    assert codes == ["accepted", "accepted", "rate_limited"]
    c.clock.advance(1.0)
    c.send(frame(txn_body("q2", ts=int(NOW) + 1)))
    assert c.responses()[0]["status"] == "accepted"


def test_rate_limited_request_does_not_use_up_its_txn_id() -> None:
    """The txn_id of a rate-limited request is accepted when sent again later."""
    c = Conn(rate=1)
    c.send(frame(txn_body("a")) + frame(txn_body("b")))
    assert [r.get("code") for r in c.responses()] == [None, "rate_limited"]
    c.clock.advance(1)
    c.send(frame(txn_body("b", ts=int(NOW) + 1)))
    assert c.responses()[0]["status"] == "accepted"


def test_copy_arriving_while_the_first_commits_is_a_duplicate() -> None:
    """Two copies pipelined: the second waits for the first and is a duplicate."""
    c = Conn()
    writer = store_acceptor(c)
    c.send(frame(txn_body("c1")) + frame(txn_body("c1", ts=int(NOW) + 1)))
    assert len(writer.items) == 1  # the copy waits; it is not written
    writer.commit(0, "accepted", "R9")
    # the copy is then judged by the store (which now knows c1)
    assert len(writer.items) == 2
    writer.commit(1, "duplicate", "R9")
    first, second = c.responses()
    assert (first["status"], second["status"], second["ref"]) == (
        "accepted",
        "duplicate",
        "R9",
    )


def test_errors_echo_the_request_key_wherever_the_body_is_readable() -> None:
    """An unknown type, a bad ping or an unauthenticated request still carry the
    txn_id or nonce they were sent with."""
    c = Conn()
    c.send(frame({"type": "refund_all", "txn_id": "u-9", "ts": int(NOW)}))
    c.send(frame({"type": "ping", "ts": int(NOW) - 999, "nonce": "n-1"}))
    c.send(frame({"type": "ping", "ts": int(NOW), "nonce": "n-2"}, key=bytes(32)))
    c.send(frame({"type": "nope", "ts": int(NOW), "nonce": "n-3"}))
    unknown, stale, bad_mac, other = c.responses()
    assert (unknown["code"], unknown["txn_id"]) == ("malformed", "u-9")
    assert (stale["code"], stale["nonce"], stale["txn_id"]) == ("stale", "n-1", None)
    assert (bad_mac["code"], bad_mac["nonce"], bad_mac["_mac"]) == (
        "bad_mac",
        "n-2",
        None,
    )
    assert (other["code"], other["nonce"]) == ("malformed", "n-3")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lang", "en-" + "-".join(["abcdefgh"] * 4)),  # 38 characters
        ("time", "2026-11-29T20:00:05.1234567890+08:00"),  # 10 fraction digits
    ],
)
def test_values_longer_than_the_store_keeps_are_invalid(field: str, value: str) -> None:
    """Lengths the store cannot hold are refused as invalid, not left to fail the
    commit (which would answer unavailable forever)."""
    c = Conn()
    c.send(frame(txn_body("L1", **{field: value})))
    [error] = c.responses()
    assert (error["code"], error["message"].split(":")[0]) == ("invalid", field)


def test_card_numbers_are_never_echoed_or_stored_from_the_wrong_field() -> None:
    """A PAN sent as card_token, as the request type or as the terminal id is
    refused without being repeated in the answer."""
    pan = "6222021234567894"
    c = Conn()
    c.send(frame(txn_body("w1", pan=None, card_token=pan)))
    c.send(frame({"type": pan, "ts": int(NOW)}))
    c.send(frame(txn_body("w3"), terminal=pan))
    answers = c.responses()
    assert [a["code"] for a in answers] == ["invalid", "malformed", "unknown_terminal"]
    assert answers[0]["message"].startswith("card_token: looks like a card number")
    for a in answers:
        assert pan not in a["message"]
    assert c.acceptor.accepted == []


def test_a_stalled_store_answers_unavailable_and_a_late_commit_is_kept() -> None:
    """No commit within commit_timeout: unavailable; the commit landing later is
    kept (its alerts go to dispatch) and the retry is a duplicate."""
    queued: list[Any] = []
    c = Conn()
    writer = store_acceptor(c, commit_timeout=5.0, queued=queued)
    c.send(frame(txn_body("s1")))
    c.clock.advance(5.0)
    [error] = c.responses()
    assert (error["code"], error["txn_id"], error["_signed_ok"]) == (
        "unavailable",
        "s1",
        True,
    )
    writer.commit(0, "accepted", "R7", ("alert",))
    assert queued == ["alert"]
    c.send(frame(txn_body("s1", ts=int(NOW) + 6)))
    writer.commit(1, "duplicate", "R7")
    [dup] = c.responses()
    assert (dup["status"], dup["ref"]) == ("duplicate", "R7")
    c.clock.advance(5.0)  # the deadline timer finds nothing left waiting
    assert c.responses() == []
    assert len(c.clock.getDelayedCalls()) == 1  # only the idle timer


def test_an_unreadable_commit_answer_is_unavailable_at_once() -> None:
    """A store answer the acceptor cannot read (a bug, not a commit) is
    answered unavailable straight away, not after the commit deadline, and
    the connection goes on."""
    c = Conn()
    writer = store_acceptor(c, commit_timeout=5.0)
    c.send(frame(txn_body("u1")))
    writer.items[0][1].callback("not an Accepted")
    [error] = c.responses()
    assert (error["code"], error["txn_id"], error["_signed_ok"]) == (
        "unavailable",
        "u1",
        True,
    )
    c.send(frame(txn_body("u2")))
    writer.commit(1, "accepted", "R8")
    [ack] = c.responses()
    assert (ack["status"], ack["ref"]) == ("accepted", "R8")


def test_an_internal_error_after_authentication_is_still_signed() -> None:
    """If building the ack fails, the answer is a signed unavailable."""

    class Odd(FakeAcceptor):
        def accept(self, terminal: Terminal, txn: Txn) -> defer.Deferred[AcceptResult]:
            return defer.succeed("not a result")  # type: ignore[arg-type]

    c = Conn()
    c.intake.acceptor = Odd()
    c.send(frame(txn_body("i1")))
    [error] = c.responses()
    assert (error["code"], error["txn_id"], error["_signed_ok"]) == (
        "unavailable",
        "i1",
        True,
    )


def test_commit_deadlines_follow_each_transaction() -> None:
    """With the store stalled, each transaction times out commit_timeout after
    its own arrival; one answered in time is not touched."""
    c = Conn()
    writer = store_acceptor(c, commit_timeout=5.0)
    for i in range(3):
        c.send(frame(txn_body(f"d{i}", ts=int(c.clock.seconds()))))
        c.clock.advance(1.0)
    writer.commit(2, "accepted", "R3")
    c.clock.advance(2.0)  # t=5: d0 is due
    assert [r.get("code") for r in c.responses()] == ["unavailable"]
    c.clock.advance(1.0)  # t=6: d1 is due, then d2's answer is written in order
    assert [(r["txn_id"], r.get("code") or r["status"]) for r in c.responses()] == [
        ("d1", "unavailable"),
        ("d2", "accepted"),
    ]
    c.clock.advance(10.0)
    assert len(c.clock.getDelayedCalls()) == 1  # only the idle timer


def test_a_retry_waiting_for_a_stalled_first_copy_gets_its_own_deadline() -> None:
    """The first copy stalls: both it and the retry that waits for it are
    answered unavailable at their own deadlines."""
    c = Conn()
    store_acceptor(c, commit_timeout=5.0)  # nothing is ever committed
    c.send(frame(txn_body("x1")))
    c.clock.advance(2.0)
    c.send(frame(txn_body("x1", ts=int(NOW) + 2)))
    c.clock.advance(3.0)
    assert [r["code"] for r in c.responses()] == ["unavailable"]
    c.clock.advance(2.0)
    assert [r["code"] for r in c.responses()] == ["unavailable"]
