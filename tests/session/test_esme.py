"""ESME session on StringTransport and Clock: bind, window, timers, deliveries."""

from __future__ import annotations

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from smsgw.codec import pdu as P
from smsgw.codec.constants import ESM_DELIVERY_RECEIPT, Status
from smsgw.session.esme import (
    MAX_SEQUENCE,
    BindRefused,
    EsmeSession,
    NotBound,
    ResponseTimeout,
    SessionClosed,
    SessionSettings,
    SessionState,
    WindowFull,
)


class RecordingHandler:
    """Records deliveries and answers with a preset status or Deferred."""

    def __init__(self) -> None:
        self.delivered: list[P.DeliverSm | P.DataSm] = []
        self.answer: int | defer.Deferred[int] = 0

    def deliver(self, pdu: P.DeliverSm | P.DataSm) -> int | defer.Deferred[int]:
        self.delivered.append(pdu)
        return self.answer


def make_session(
    handler: RecordingHandler | None = None, **kw: object
) -> tuple[EsmeSession, StringTransport, Clock]:
    settings = SessionSettings(
        **{"system_id": "smsgw", "password": "secret", "window": 3, **kw}  # type: ignore[arg-type]
    )
    clock = Clock()
    session = EsmeSession(settings, clock, handler)
    transport = StringTransport()
    session.makeConnection(transport)
    return session, transport, clock


def take(transport: StringTransport) -> list[P.Pdu]:
    """Decode and clear what the session wrote."""
    data = transport.value()
    transport.clear()
    out = []
    while data:
        n = int.from_bytes(data[:4], "big")
        out.append(P.decode(data[:n]))
        data = data[n:]
    return out


def bound_session(
    handler: RecordingHandler | None = None, **kw: object
) -> tuple[EsmeSession, StringTransport, Clock]:
    session, transport, clock = make_session(handler, **kw)
    d = session.bind()
    (req,) = take(transport)
    session.dataReceived(
        P.encode(P.BindTransceiverResp(sequence_number=req.sequence_number))
    )
    assert session.state is SessionState.BOUND
    assert d.called
    return session, transport, clock


def submit(n: int = 0) -> P.SubmitSm:
    return P.SubmitSm(
        source_addr="95588", destination_addr=f"8613800{n:06d}", short_message=b"hi"
    )


def test_bind_sends_bind_transceiver_with_credentials() -> None:
    """bind() writes a bind_transceiver with the configured credentials, sequence 1."""
    session, transport, _ = make_session(system_type="ALERT")
    session.bind()
    assert take(transport) == [
        P.BindTransceiver(
            sequence_number=1, system_id="smsgw", password="secret", system_type="ALERT"
        )
    ]
    assert session.state is SessionState.BINDING


def test_bind_refused_fails_and_closes() -> None:
    """A bind answered with an error fails with BindRefused and drops the link."""
    session, transport, _ = make_session()
    d = session.bind()
    (req,) = take(transport)
    session.dataReceived(
        P.encode(
            P.BindTransceiverResp(
                sequence_number=req.sequence_number,
                command_status=Status.ESME_RINVPASWD,
            )
        )
    )
    errors: list[Failure] = []
    d.addErrback(errors.append)
    assert isinstance(errors[0].value, BindRefused)
    assert errors[0].value.status == Status.ESME_RINVPASWD
    assert transport.disconnecting


def test_bind_without_answer_times_out_and_closes() -> None:
    """A bind with no answer fails after response_timeout and drops the link."""
    session, transport, clock = make_session(response_timeout=5.0)
    d = session.bind()
    errors: list[Failure] = []
    d.addErrback(errors.append)
    clock.advance(4.9)
    assert not errors
    clock.advance(0.1)
    assert errors[0].check(ResponseTimeout)
    assert transport.disconnecting


def test_bind_response_fed_one_byte_at_a_time() -> None:
    """A bind response split into single bytes still binds the session."""
    session, transport, _ = make_session()
    d = session.bind()
    take(transport)
    for b in P.encode(P.BindTransceiverResp(sequence_number=1, system_id="SMSC")):
        session.dataReceived(bytes([b]))
    assert session.state is SessionState.BOUND
    assert d.called


def test_send_before_bind_raises_not_bound() -> None:
    """A submit on an unbound session is refused synchronously."""
    session, _, _ = make_session()
    with pytest.raises(NotBound):
        session.send(submit())


def test_sequence_numbers_increase_and_wrap() -> None:
    """Sequence numbers count up, wrap from 0x7FFFFFFF to 1 and skip ones in flight."""
    session, transport, _ = bound_session(window=10)
    first = [session.send(submit(i)) for i in range(2)]
    assert [p.sequence_number for p in take(transport)] == [2, 3]
    session._seq = MAX_SEQUENCE - 1
    session.send(submit())
    session.send(submit())
    session.send(submit())  # 1 is free (bind answered), 2 and 3 are in flight
    assert [p.sequence_number for p in take(transport)] == [MAX_SEQUENCE, 1, 4]
    assert not any(d.called for d in first)


def test_window_limits_outstanding_requests() -> None:
    """At most `window` submits in flight; an answer frees a slot, tells listeners."""
    session, transport, _ = bound_session(window=2)
    woken: list[int] = []
    session.window_listeners.append(lambda: woken.append(session.window_free))
    d1 = session.send(submit(1))
    session.send(submit(2))
    assert session.window_free == 0
    with pytest.raises(WindowFull):
        session.send(submit(3))
    seqs = [p.sequence_number for p in take(transport)]
    session.dataReceived(
        P.encode(P.SubmitSmResp(sequence_number=seqs[0], message_id="42"))
    )
    assert session.window_free == 1
    assert woken == [1]
    assert d1.result == P.SubmitSmResp(sequence_number=seqs[0], message_id="42")


def test_error_response_without_body_is_the_response() -> None:
    """A header-only submit_sm_resp with an error status answers the request."""
    session, transport, _ = bound_session()
    d = session.send(submit())
    (req,) = take(transport)
    header_only = P.encode(
        P.SubmitSmResp(sequence_number=req.sequence_number, command_status=0x58)
    )[:16]
    session.dataReceived((16).to_bytes(4, "big") + header_only[4:])
    assert d.result.command_status == Status.ESME_RTHROTTLED


def test_generic_nack_answers_the_pending_request() -> None:
    """A generic_nack with a pending sequence number resolves that request."""
    session, transport, _ = bound_session()
    d = session.send(submit())
    (req,) = take(transport)
    nack = P.GenericNack(sequence_number=req.sequence_number, command_status=0x03)
    session.dataReceived(P.encode(nack))
    assert d.result == nack
    assert session.window_free == 3


def test_each_request_times_out_on_its_own() -> None:
    """Each request fails with ResponseTimeout response_timeout after it was sent."""
    session, transport, clock = bound_session(
        response_timeout=10.0, enquire_interval=1000
    )
    errors: list[tuple[int, Failure]] = []
    d1 = session.send(submit(1))
    d1.addErrback(lambda f: errors.append((1, f)))
    clock.advance(4)
    d2 = session.send(submit(2))
    d2.addErrback(lambda f: errors.append((2, f)))
    clock.advance(5.9)
    assert errors == []
    clock.advance(0.1)
    assert [n for n, _ in errors] == [1]
    assert errors[0][1].check(ResponseTimeout)
    assert session.window_free == 2
    clock.advance(4)
    assert [n for n, _ in errors] == [1, 2]
    assert not transport.disconnecting


def test_answered_request_does_not_time_out() -> None:
    """A request answered in time never fails later."""
    session, transport, clock = bound_session(response_timeout=10.0)
    d = session.send(submit())
    (req,) = take(transport)
    session.dataReceived(P.encode(P.SubmitSmResp(sequence_number=req.sequence_number)))
    clock.advance(30)
    assert isinstance(d.result, P.SubmitSmResp)


def test_connection_lost_fails_every_outstanding_request_at_once() -> None:
    """On disconnect all in-flight requests fail immediately and no timer is left."""
    session, _transport, clock = bound_session()
    errors: list[Failure] = []
    for i in range(3):
        session.send(submit(i)).addErrback(errors.append)
    session.connectionLost(Failure(ConnectionError("gone")))
    assert len(errors) == 3
    assert all(f.check(SessionClosed) for f in errors)
    assert session.window_free == 0
    assert clock.getDelayedCalls() == []


def test_enquire_link_sent_when_idle() -> None:
    """An idle bound session sends enquire_link every enquire_interval."""
    session, transport, clock = bound_session(enquire_interval=30.0)
    clock.advance(29.9)
    assert transport.value() == b""
    clock.advance(0.1)
    (pdu,) = take(transport)
    assert isinstance(pdu, P.EnquireLink)
    session.dataReceived(
        P.encode(P.EnquireLinkResp(sequence_number=pdu.sequence_number))
    )
    clock.advance(30)
    assert isinstance(take(transport)[0], P.EnquireLink)


def test_traffic_postpones_enquire_link() -> None:
    """Received traffic resets the idle timer, so no enquire_link is sent."""
    session, transport, clock = bound_session(enquire_interval=30.0, window=10)
    for _ in range(5):
        clock.advance(20)
        session.dataReceived(P.encode(P.EnquireLink(sequence_number=99)))
    sent = take(transport)
    assert all(isinstance(p, P.EnquireLinkResp) for p in sent)


def test_unanswered_enquire_link_drops_the_link() -> None:
    """An enquire_link left unanswered for response_timeout closes the connection."""
    _session, transport, clock = bound_session(
        enquire_interval=30.0, response_timeout=10.0
    )
    clock.advance(30)
    take(transport)
    clock.advance(10)
    assert transport.disconnecting


def test_smsc_enquire_link_is_answered() -> None:
    """The SMSC's enquire_link gets an enquire_link_resp with the same sequence."""
    session, transport, _ = bound_session()
    session.dataReceived(P.encode(P.EnquireLink(sequence_number=77)))
    assert take(transport) == [P.EnquireLinkResp(sequence_number=77)]


def test_smsc_unbind_is_answered_then_closed() -> None:
    """An unbind from the SMSC is answered with unbind_resp and the link closed."""
    session, transport, _ = bound_session()
    session.dataReceived(P.encode(P.Unbind(sequence_number=5)))
    assert take(transport) == [P.UnbindResp(sequence_number=5)]
    assert transport.disconnecting
    with pytest.raises(NotBound):
        session.send(submit())


def test_deliver_sm_goes_to_handler_and_is_answered() -> None:
    """Every deliver_sm reaches the handler and is answered with its status."""
    handler = RecordingHandler()
    session, transport, _ = bound_session(handler)
    mo = P.DeliverSm(sequence_number=9, source_addr="8613800138000", short_message=b"N")
    receipt = P.DeliverSm(sequence_number=10, esm_class=ESM_DELIVERY_RECEIPT)
    session.dataReceived(P.encode(mo) + P.encode(receipt))
    assert handler.delivered == [mo, receipt]
    assert take(transport) == [
        P.DeliverSmResp(sequence_number=9),
        P.DeliverSmResp(sequence_number=10),
    ]


def test_deferred_handler_delays_the_answer() -> None:
    """A handler returning a Deferred is answered when it fires, not before."""
    handler = RecordingHandler()
    pending: defer.Deferred[int] = defer.Deferred()
    handler.answer = pending
    session, transport, _ = bound_session(handler)
    session.dataReceived(P.encode(P.DeliverSm(sequence_number=4)))
    assert transport.value() == b""
    pending.callback(0)
    assert take(transport) == [P.DeliverSmResp(sequence_number=4)]


def test_failing_handler_answers_temporary_error(observe_errors: list[object]) -> None:
    """A handler failure is answered ESME_RX_T_APPN so the SMSC delivers again."""
    handler = RecordingHandler()
    pending: defer.Deferred[int] = defer.Deferred()
    handler.answer = pending
    session, transport, _ = bound_session(handler)
    session.dataReceived(P.encode(P.DataSm(sequence_number=4)))
    pending.errback(RuntimeError("store down"))
    assert take(transport) == [
        P.DataSmResp(sequence_number=4, command_status=Status.ESME_RX_T_APPN)
    ]
    assert len(observe_errors) == 1
    observe_errors.clear()


def test_bad_command_length_nacks_then_closes_after_earlier_frames() -> None:
    """Frames before a bad command_length are handled, then generic_nack and close."""
    session, transport, _ = bound_session()
    bad = (8).to_bytes(4, "big") + b"\x00\x00\x00\x15\x00\x00\x00\x00\x00\x00\x00\x07"
    session.dataReceived(P.encode(P.EnquireLink(sequence_number=6)) + bad)
    assert take(transport) == [
        P.EnquireLinkResp(sequence_number=6),
        P.GenericNack(sequence_number=7, command_status=Status.ESME_RINVCMDLEN),
    ]
    assert transport.disconnecting


def test_oversized_pdu_is_refused() -> None:
    """A command_length above max_pdu gets generic_nack and the link is closed."""
    session, transport, _ = bound_session(max_pdu=1024)
    session.dataReceived((2000).to_bytes(4, "big") + bytes(12))
    assert take(transport) == [
        P.GenericNack(sequence_number=0, command_status=Status.ESME_RINVCMDLEN)
    ]
    assert transport.disconnecting


def test_unknown_command_is_nacked_and_link_stays() -> None:
    """An unknown command_id gets generic_nack ESME_RINVCMDID; the link stays."""
    session, transport, _ = bound_session()
    frame = (
        (16).to_bytes(4, "big")
        + bytes.fromhex("00000099")
        + bytes(4)
        + bytes.fromhex("0000000b")
    )
    session.dataReceived(frame)
    assert take(transport) == [
        P.GenericNack(sequence_number=11, command_status=Status.ESME_RINVCMDID)
    ]
    assert not transport.disconnecting


def test_graceful_unbind_waits_for_outstanding_requests() -> None:
    """unbind() refuses new requests, waits for the window to drain, unbinds, closes."""
    session, transport, clock = bound_session()
    d = session.send(submit())
    (req,) = take(transport)
    closed = session.unbind()
    with pytest.raises(NotBound):
        session.send(submit())
    assert transport.value() == b""
    session.dataReceived(P.encode(P.SubmitSmResp(sequence_number=req.sequence_number)))
    assert d.called
    (unbind,) = take(transport)
    assert isinstance(unbind, P.Unbind)
    session.dataReceived(P.encode(P.UnbindResp(sequence_number=unbind.sequence_number)))
    assert transport.disconnecting
    assert not closed.called
    session.connectionLost(Failure(ConnectionError("closed")))
    assert closed.called
    assert clock.getDelayedCalls() == []


def test_deliver_without_handler_is_not_acknowledged() -> None:
    """With no handler to keep it, a deliver_sm gets a temporary error, not ESME_ROK."""
    session, transport, _ = bound_session()
    session.dataReceived(P.encode(P.DeliverSm(sequence_number=3)))
    assert take(transport) == [
        P.DeliverSmResp(sequence_number=3, command_status=Status.ESME_RX_T_APPN)
    ]


def test_transmitter_refuses_deliveries() -> None:
    """A transmitter bind answers a stray deliver_sm with ESME_RINVBNDSTS."""
    handler = RecordingHandler()
    session, transport, _ = bound_session(handler, bind_mode="transmitter")
    session.dataReceived(P.encode(P.DeliverSm(sequence_number=3)))
    assert handler.delivered == []
    assert take(transport) == [
        P.DeliverSmResp(sequence_number=3, command_status=Status.ESME_RINVBNDSTS)
    ]


def test_resend_from_a_timeout_errback_keeps_one_timer() -> None:
    """A request sent from a timeout's errback neither doubles the deadline
    timer nor leaves one behind after disconnect."""
    session, _transport, clock = bound_session(response_timeout=10.0)

    def resend(_: Failure) -> None:
        session.send(submit(2)).addErrback(lambda f: None)

    session.send(submit(1)).addErrback(resend)
    clock.advance(10.0)
    deadline_timers = [c for c in clock.getDelayedCalls() if c.func == session._expire]
    assert len(deadline_timers) == 1
    session.connectionLost(Failure(ConnectionError("gone")))
    assert clock.getDelayedCalls() == []


def test_unreadable_response_lets_a_pending_unbind_proceed() -> None:
    """An undecodable response that empties the window releases unbind() at once."""
    session, transport, _ = bound_session()
    errors: list[Failure] = []
    session.send(submit()).addErrback(errors.append)
    (req,) = take(transport)
    session.unbind()
    bad = P.encode(P.SubmitSmResp(sequence_number=req.sequence_number, message_id="1"))
    bad = bad[:-1] + b"x"  # message_id loses its NUL terminator
    session.dataReceived(bad)
    assert errors[0].check(P.DecodeError)
    (unbind,) = take(transport)
    assert isinstance(unbind, P.Unbind)
