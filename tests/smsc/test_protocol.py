"""SmscProtocol on StringTransport + Clock: binds, requests, errors, throttling."""

from __future__ import annotations

import random
import struct

from twisted.logger import capturedLogs

from smsgw.codec import pdu as P
from smsgw.codec.constants import CommandId, Status, Tag
from tests.smsc.support import Conn, bound, finish, make_smsc


def test_bind_transceiver_ok() -> None:
    """A bind with configured credentials is accepted with the SMSC's id and version."""
    factory, clock = make_smsc()
    conn = Conn(factory)
    resp = conn.bind()
    assert resp == P.BindTransceiverResp(
        sequence_number=1,
        system_id="SMSCSIM",
        tlvs=((Tag.SC_INTERFACE_VERSION, b"\x34"),),
    )
    assert factory.stats()["binds"] == 1
    finish(factory, clock, conn)


def test_bind_bad_password() -> None:
    """A wrong password gets ESME_RINVPASWD with only system_id in the body."""
    factory, clock = make_smsc()
    conn = Conn(factory)
    conn.send(P.BindTransmitter(sequence_number=7, system_id="smsgw", password="nope"))
    header = struct.pack(">IIII", 24, CommandId.BIND_TRANSMITTER_RESP, 0x0E, 7)
    assert conn.transport.value() == header + b"SMSCSIM\x00"
    assert not conn.proto.bound
    finish(factory, clock, conn)


def test_bind_bad_system_id() -> None:
    """An unknown system_id is refused with ESME_RINVSYSID."""
    factory, clock = make_smsc()
    conn = Conn(factory)
    resp = conn.bind(P.BindReceiver, system_id="other")
    assert resp.command_status == Status.ESME_RINVSYSID
    assert isinstance(resp, P.BindReceiverResp)
    assert resp.tlvs == ()
    finish(factory, clock, conn)


def test_bind_accepts_any_configured_account() -> None:
    """Every (system_id, password) in accounts may bind."""
    factory, clock = make_smsc(accounts=(("a", "pa"), ("b", "pb")))
    conn = Conn(factory)
    assert conn.bind(system_id="b", password="pb").command_status == 0
    assert conn.proto.system_id == "b"
    finish(factory, clock, conn)


def test_second_bind_is_already_bound() -> None:
    """A second bind on a bound session is answered ESME_RALYBND."""
    factory, clock, conn = bound()
    resp = conn.bind(P.BindTransmitter)
    assert isinstance(resp, P.BindTransmitterResp)
    assert resp.command_status == Status.ESME_RALYBND
    finish(factory, clock, conn)


def test_submit_before_bind() -> None:
    """A submit_sm before bind is answered submit_sm_resp ESME_RINVBNDSTS."""
    factory, clock = make_smsc()
    conn = Conn(factory)
    resp = conn.submit()
    assert isinstance(resp, P.SubmitSmResp)
    assert resp.command_status == Status.ESME_RINVBNDSTS
    assert factory.submits == 0
    finish(factory, clock, conn)


def test_requests_before_bind_get_matching_response() -> None:
    """query_sm, cancel_sm and unbind before bind get their own response type."""
    factory, clock = make_smsc()
    conn = Conn(factory)
    for req, resp_cls in (
        (P.QuerySm(sequence_number=1, message_id="1"), P.QuerySmResp),
        (P.CancelSm(sequence_number=2, message_id="1"), P.CancelSmResp),
        (P.Unbind(sequence_number=3), P.UnbindResp),
    ):
        resp = conn.request(req)
        assert type(resp) is resp_cls
        assert resp.command_status == Status.ESME_RINVBNDSTS
        assert resp.sequence_number == req.sequence_number
    assert not conn.transport.disconnecting
    finish(factory, clock, conn)


def test_receiver_cannot_submit() -> None:
    """A session bound as receiver is answered ESME_RINVBNDSTS on submit_sm."""
    factory, clock = make_smsc()
    conn = Conn(factory)
    conn.bind(P.BindReceiver)
    assert conn.submit().command_status == Status.ESME_RINVBNDSTS
    finish(factory, clock, conn)


def test_submit_gets_decimal_ids() -> None:
    """Accepted submits get message ids 1, 2, 3 as decimal strings."""
    factory, clock, conn = bound()
    ids = [conn.submit(registered_delivery=0) for _ in range(3)]
    assert ids == [
        P.SubmitSmResp(sequence_number=2, message_id="1"),
        P.SubmitSmResp(sequence_number=3, message_id="2"),
        P.SubmitSmResp(sequence_number=4, message_id="3"),
    ]
    finish(factory, clock, conn)


def test_submit_gets_uppercase_hex_ids() -> None:
    """With id_format hex the counter is written in upper-case hex."""
    factory, clock, conn = bound(id_format="hex")
    ids = [conn.submit(registered_delivery=0).message_id for _ in range(16)]  # type: ignore[attr-defined]
    assert ids[9:] == ["A", "B", "C", "D", "E", "F", "10"]
    finish(factory, clock, conn)


def test_submit_is_kept_as_received() -> None:
    """Each accepted submit is kept with its bind, addresses, coding, bytes and id."""
    factory, clock, conn = bound()
    conn.submit(b"\x00\x41", data_coding=8, esm_class=0, tlvs=((0x1400, b"x"),))
    [received] = factory.received_list()
    assert received.system_id == "smsgw"
    assert received.source_addr == "95588"
    assert received.destination_addr == "8613800138000"
    assert received.data_coding == 8
    assert received.short_message == b"\x00\x41"
    assert received.tlvs == ((0x1400, b"x"),)
    assert received.message_id == "1"
    assert received.time == clock.seconds()
    finish(factory, clock, conn)


def test_received_is_bounded() -> None:
    """Only the last keep_received submits are kept, but all are counted."""
    factory, clock, conn = bound(keep_received=2)
    for _ in range(5):
        conn.submit(registered_delivery=0)
    assert [r.message_id for r in factory.received_list()] == ["4", "5"]
    assert factory.submits == 5
    finish(factory, clock, conn)


def test_data_sm_gets_an_id() -> None:
    """data_sm is answered data_sm_resp with a message id and kept with its payload."""
    factory, clock, conn = bound()
    resp = conn.request(
        P.DataSm(
            sequence_number=9,
            destination_addr="1",
            tlvs=((Tag.MESSAGE_PAYLOAD, b"long text"),),
        )
    )
    assert resp == P.DataSmResp(sequence_number=9, message_id="1")
    assert factory.received_list()[0].short_message == b"long text"
    finish(factory, clock, conn)


def test_enquire_link_answered() -> None:
    """enquire_link is answered enquire_link_resp with the same sequence."""
    factory, clock = make_smsc()
    conn = Conn(factory)
    resp = conn.request(P.EnquireLink(sequence_number=42))
    assert resp == P.EnquireLinkResp(sequence_number=42)
    finish(factory, clock, conn)


def test_unbind_answered_then_closed() -> None:
    """unbind is answered unbind_resp, then the session closes and ignores the rest."""
    factory, clock, conn = bound()
    conn.send(P.Unbind(sequence_number=5))
    conn.send(P.EnquireLink(sequence_number=6))
    assert conn.read() == [P.UnbindResp(sequence_number=5)]
    assert conn.transport.disconnecting
    finish(factory, clock, conn)


def test_framing_error_nacks_and_closes() -> None:
    """A command_length below 16 gets generic_nack ESME_RINVCMDLEN, then close;
    frames before it in the same read are still answered."""
    factory, clock = make_smsc()
    conn = Conn(factory)
    bad = struct.pack(">IIII", 8, CommandId.ENQUIRE_LINK, 0, 77)
    conn.proto.dataReceived(P.encode(P.EnquireLink(sequence_number=1)) + bad)
    assert conn.read() == [
        P.EnquireLinkResp(sequence_number=1),
        P.GenericNack(sequence_number=77, command_status=Status.ESME_RINVCMDLEN),
    ]
    assert conn.transport.disconnecting
    conn.send(P.EnquireLink(sequence_number=2))
    assert conn.transport.value() == b""
    finish(factory, clock, conn)


def test_oversized_pdu_is_a_framing_error() -> None:
    """A command_length above max_pdu is refused before its body arrives."""
    factory, clock = make_smsc(max_pdu=1024)
    conn = Conn(factory)
    conn.proto.dataReceived(struct.pack(">IIII", 5000, CommandId.SUBMIT_SM, 0, 3))
    assert conn.read() == [
        P.GenericNack(sequence_number=3, command_status=Status.ESME_RINVCMDLEN)
    ]
    assert conn.transport.disconnecting
    finish(factory, clock, conn)


def test_unknown_command_nacked() -> None:
    """An unknown command_id is answered generic_nack ESME_RINVCMDID, session kept."""
    factory, clock = make_smsc()
    conn = Conn(factory)
    conn.proto.dataReceived(struct.pack(">IIII", 16, 0x00000099, 0, 12))
    assert conn.read() == [
        P.GenericNack(sequence_number=12, command_status=Status.ESME_RINVCMDID)
    ]
    assert not conn.transport.disconnecting
    finish(factory, clock, conn)


def test_command_not_for_an_smsc_nacked() -> None:
    """An outbind sent to the SMSC is answered generic_nack ESME_RINVCMDID."""
    factory, clock = make_smsc()
    conn = Conn(factory)
    resp = conn.request(P.Outbind(sequence_number=4, system_id="x"))
    assert resp == P.GenericNack(
        sequence_number=4, command_status=Status.ESME_RINVCMDID
    )
    finish(factory, clock, conn)


def test_undecodable_pdu_nacked_with_decode_status() -> None:
    """A submit_sm whose body ends early gets generic_nack with the decoder's status."""
    factory, clock, conn = bound()
    frame = struct.pack(">IIII", 20, CommandId.SUBMIT_SM, 0, 31) + b"abcd"
    conn.proto.dataReceived(frame)
    assert conn.read() == [
        P.GenericNack(sequence_number=31, command_status=Status.ESME_RINVMSGLEN)
    ]
    assert factory.submits == 0
    finish(factory, clock, conn)


def test_byte_at_a_time() -> None:
    """PDUs fed one byte at a time are answered exactly as when fed whole."""
    factory, clock = make_smsc()
    conn = Conn(factory)
    data = P.encode(
        P.BindTransceiver(sequence_number=1, system_id="smsgw", password="secret")
    ) + P.encode(
        P.SubmitSm(sequence_number=2, destination_addr="1", short_message=b"x")
    )
    for i in range(len(data)):
        conn.proto.dataReceived(data[i : i + 1])
    bind_resp, submit_resp = conn.read()
    assert isinstance(bind_resp, P.BindTransceiverResp)
    assert bind_resp.command_status == 0
    assert submit_resp == P.SubmitSmResp(sequence_number=2, message_id="1")
    finish(factory, clock, conn)


def test_throttle_fraction_seeded() -> None:
    """With throttle_fraction 0.5 and a seeded Random, about half of 1000 submits are
    throttled (no id), the same ones on every run."""

    def run() -> list[int]:
        factory, clock, conn = bound(rng=random.Random(1234), throttle_fraction=0.5)
        statuses = []
        for _ in range(1000):
            resp = conn.submit(registered_delivery=0)
            assert isinstance(resp, P.SubmitSmResp)
            assert (resp.message_id == "") == (resp.command_status != 0)
            statuses.append(resp.command_status)
        assert factory.throttled == statuses.count(Status.ESME_RTHROTTLED)
        finish(factory, clock, conn)
        return statuses

    first = run()
    assert set(first) == {Status.ESME_ROK, Status.ESME_RTHROTTLED}
    assert 450 <= first.count(Status.ESME_RTHROTTLED) <= 550
    assert run() == first


def test_throttled_submit_gets_no_receipt() -> None:
    """A throttled submit is not kept and gets no receipt."""
    factory, clock, conn = bound(throttle_fraction=1.0)
    assert conn.submit().command_status == Status.ESME_RTHROTTLED
    clock.advance(1.0)
    assert conn.read() == []
    assert factory.received_list() == []
    finish(factory, clock, conn)


def test_max_tps_throttles_above_the_rate() -> None:
    """At twice max_tps for 10 s on the Clock, about half the submits are throttled."""
    factory, clock, conn = bound(max_tps=100.0)
    ok = throttled = 0
    for _ in range(2000):  # 200 submits/s for 10 s
        status = conn.submit(registered_delivery=0).command_status
        if status == Status.ESME_ROK:
            ok += 1
        else:
            assert status == Status.ESME_RTHROTTLED
            throttled += 1
        clock.advance(0.005)
    # 100/s for 10 s plus the initial burst of max(1, 100/10) = 10
    assert 995 <= ok <= 1015
    assert throttled == 2000 - ok
    assert factory.stats()["per_bind"][0]["throttled"] == throttled
    finish(factory, clock, conn)


def test_max_tps_is_per_bind() -> None:
    """Each bind has its own rate limit."""
    factory, clock = make_smsc(max_tps=5.0)
    a, b = Conn(factory), Conn(factory)
    a.bind()
    b.bind()
    assert a.submit(registered_delivery=0).command_status == 0  # burst is 1
    assert a.submit(registered_delivery=0).command_status == Status.ESME_RTHROTTLED
    assert b.submit(registered_delivery=0).command_status == 0
    finish(factory, clock, a, b)


def test_log_received_logs_each_submit() -> None:
    """With log_received, each accepted submit is logged at info with its
    fields; the destination number masked (a short code as it is)."""
    factory, clock, conn = bound(log_received=True)
    with capturedLogs() as events:
        conn.submit(b"Hi", registered_delivery=0)
    [event] = [e for e in events if e.get("message_id") == "1"]
    assert event["destination"] == "86138****8000"
    assert "8613800138000" not in repr(events)
    assert event["sm"] == b"Hi".hex()
    finish(factory, clock, conn)


def test_bind_logged_without_password() -> None:
    """Binds are logged at info with the system_id and never the password."""
    factory, clock = make_smsc()
    conn, other = Conn(factory), Conn(factory)
    with capturedLogs() as events:
        conn.bind()
        other.bind(system_id="smsgw", password="wrong")
    assert [e["log_format"].split()[0] for e in events] == ["bound", "bind"]
    assert all(e["system_id"] == "smsgw" for e in events)
    assert not any("secret" in repr(e) or "wrong" in repr(e) for e in events)
    finish(factory, clock, conn, other)
