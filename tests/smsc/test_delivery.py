"""Receipts and MO messages from the simulator, on StringTransport + Clock."""

from __future__ import annotations

from twisted.logger import LogLevel, capturedLogs

from smsgw.codec import pdu as P
from smsgw.codec.constants import Status, Tag
from tests.smsc.support import Conn, bound, finish, make_smsc

RECEIPT_TEXT = (
    b"id:1 sub:001 dlvrd:001 submit date:2411290600 done date:2411290600 "
    b"stat:DELIVRD err:000 text:Card *1234 used for "  # the first 20 characters
)


def test_receipt_after_exact_delay() -> None:
    """The receipt is sent exactly receipt_delay after the submit, addresses
    swapped, with the Appendix B text and both receipt TLVs."""
    factory, clock, conn = bound(receipt_delay=2.0)
    resp = conn.submit(b"Card *1234 used for CNY 100.00")
    assert resp == P.SubmitSmResp(sequence_number=2, message_id="1")
    clock.advance(1.999)
    assert conn.read() == []
    clock.advance(0.001)
    assert conn.read() == [
        P.DeliverSm(
            sequence_number=1,
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="8613800138000",
            destination_addr="95588",
            esm_class=0x04,
            short_message=RECEIPT_TEXT,
            tlvs=((Tag.RECEIPTED_MESSAGE_ID, b"1\x00"), (Tag.MESSAGE_STATE, b"\x02")),
        )
    ]
    assert factory.stats()["receipts_sent"] == 1
    finish(factory, clock, conn)


def test_receipt_dates_and_failure_state() -> None:
    """A configured failure state gives dlvrd:000, err:001 and its message_state;
    submit and done dates are the submit time and the time it was sent."""
    factory, clock, conn = bound(receipt_delay=90.0, receipt_state="UNDELIV")
    conn.submit(b"abc")
    clock.advance(90.0)
    [receipt] = conn.read()
    assert isinstance(receipt, P.DeliverSm)
    assert receipt.short_message == (
        b"id:1 sub:001 dlvrd:000 submit date:2411290600 done date:2411290601 "
        b"stat:UNDELIV err:001 text:abc"
    )
    assert receipt.tlv_int(Tag.MESSAGE_STATE) == 5
    finish(factory, clock, conn)


def test_receipt_without_tlvs() -> None:
    """With receipt_tlvs off, the receipt carries the text only."""
    factory, clock, conn = bound(receipt_tlvs=False, receipt_delay=0.0)
    conn.submit(b"x")
    clock.advance(0)
    [receipt] = conn.read()
    assert receipt.tlvs == ()
    assert b"stat:DELIVRD" in receipt.short_message  # type: ignore[attr-defined]
    finish(factory, clock, conn)


def test_receipt_text_for_ucs2_and_udh() -> None:
    """The receipt's text: skips the UDH and shows non-ASCII characters as '?'."""
    factory, clock, conn = bound(receipt_delay=0.0)
    udh = bytes((5, 0, 3, 9, 2, 1))
    conn.submit(udh + "您好 ok".encode("utf-16-be"), data_coding=8, esm_class=0x40)
    clock.advance(0)
    [receipt] = conn.read()
    assert receipt.short_message.endswith(b"text:?? ok")  # type: ignore[attr-defined]
    finish(factory, clock, conn)


def test_no_receipt_unless_requested() -> None:
    """registered_delivery 0, or receipts disabled, means no receipt."""
    factory, clock, conn = bound()
    conn.submit(registered_delivery=0)
    clock.advance(5)
    assert conn.read() == []
    finish(factory, clock, conn)
    factory, clock, conn = bound(receipts=False)
    conn.submit(registered_delivery=1)
    clock.advance(5)
    assert conn.read() == []
    finish(factory, clock, conn)


def test_one_timer_for_many_receipts() -> None:
    """Many pending receipts share one delayed call, flushed together when due."""
    factory, clock, conn = bound(receipt_delay=1.0)
    for _ in range(50):
        conn.submit()
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(1.0)
    out = conn.read()
    assert len(out) == 50
    assert [p.sequence_number for p in out] == list(range(1, 51))
    finish(factory, clock, conn)


def test_receipts_staggered_by_submit_time() -> None:
    """Receipts of submits made at different times come out at their own due times."""
    factory, clock, conn = bound(receipt_delay=1.0)
    conn.submit()
    clock.advance(0.4)
    conn.submit()
    clock.advance(0.6)
    assert [p.tlv_str(Tag.RECEIPTED_MESSAGE_ID) for p in conn.read()] == ["1"]
    clock.advance(0.4)
    assert [p.tlv_str(Tag.RECEIPTED_MESSAGE_ID) for p in conn.read()] == ["2"]
    assert clock.getDelayedCalls() == []
    finish(factory, clock, conn)


def test_receipt_held_until_receiver_binds() -> None:
    """A transmitter's receipt waits until a receiver with the same system_id binds."""
    factory, clock = make_smsc(receipt_delay=1.0)
    tx = Conn(factory)
    tx.bind(P.BindTransmitter)
    tx.submit()
    clock.advance(5.0)
    assert tx.read() == []
    assert factory.stats()["receipts_pending"] == 1
    rx = Conn(factory)
    rx.bind(P.BindReceiver)
    [receipt] = rx.read()
    assert receipt.tlv_str(Tag.RECEIPTED_MESSAGE_ID) == "1"
    assert factory.stats()["receipts_pending"] == 0
    finish(factory, clock, tx, rx)


def test_receipt_not_sent_to_other_system_id() -> None:
    """A receipt goes only to sessions bound with the submitter's system_id."""
    factory, clock = make_smsc(receipt_delay=0.0, accounts=(("a", "x"), ("b", "y")))
    a, b = Conn(factory), Conn(factory)
    a.bind(P.BindTransmitter, "a", "x")
    b.bind(P.BindReceiver, "b", "y")
    a.submit()
    clock.advance(0)
    assert b.read() == []
    assert factory.stats()["receipts_held"] == 1
    finish(factory, clock, a, b)


def test_timer_stops_with_last_connection_and_catches_up() -> None:
    """With no connection left the receipt timer is cancelled; receipts that fell
    due meanwhile go to the next receiver that binds."""
    factory, clock, conn = bound(receipt_delay=1.0)
    conn.submit()
    conn.close()
    assert clock.getDelayedCalls() == []
    clock.advance(10.0)
    again = Conn(factory)
    again.bind()
    [receipt] = again.read()
    assert receipt.tlv_str(Tag.RECEIPTED_MESSAGE_ID) == "1"
    finish(factory, clock, again)


def test_receipts_round_robin_over_receivers() -> None:
    """Receipts are shared round-robin among the receiver-capable sessions."""
    factory, clock = make_smsc(receipt_delay=0.0)
    tx, r1, r2 = Conn(factory), Conn(factory), Conn(factory)
    tx.bind(P.BindTransmitter)
    r1.bind(P.BindReceiver)
    r2.bind(P.BindTransceiver)
    for _ in range(4):
        tx.submit()
    clock.advance(0)
    assert len(r1.read()) == 2
    assert len(r2.read()) == 2
    assert tx.read() == []
    finish(factory, clock, tx, r1, r2)


def test_unanswered_deliver_sm_counted() -> None:
    """deliver_sm not yet answered by deliver_sm_resp are counted; errors too."""
    factory, clock, conn = bound(receipt_delay=0.0)
    conn.submit()
    conn.submit()
    clock.advance(0)
    first, second = conn.read()
    assert factory.stats()["deliver_sm_unanswered"] == 2
    conn.send(P.DeliverSmResp(sequence_number=first.sequence_number))
    conn.send(
        P.DeliverSmResp(
            sequence_number=second.sequence_number,
            command_status=Status.ESME_RX_T_APPN,
        )
    )
    stats = factory.stats()
    assert stats["deliver_sm_unanswered"] == 0
    assert stats["deliver_sm_errors"] == 1
    finish(factory, clock, conn)


def test_query_sm_states() -> None:
    """query_sm reports ENROUTE before the receipt time, then the final state and
    date; an unknown id gets ESME_RQUERYFAIL."""
    factory, clock, conn = bound(receipt_delay=1.0, receipts=False)
    conn.submit()
    before = conn.request(P.QuerySm(sequence_number=10, message_id="1"))
    assert before == P.QuerySmResp(
        sequence_number=10, message_id="1", final_date="", message_state=1
    )
    clock.advance(1.0)
    after = conn.request(P.QuerySm(sequence_number=11, message_id="1"))
    assert after == P.QuerySmResp(
        sequence_number=11,
        message_id="1",
        final_date="241129060001000+",
        message_state=2,
    )
    unknown = conn.request(P.QuerySm(sequence_number=12, message_id="99"))
    assert unknown.command_status == Status.ESME_RQUERYFAIL
    finish(factory, clock, conn)


def test_cancel_sm() -> None:
    """cancel_sm succeeds on an open message (and its receipt is not sent), fails
    on a cancelled, delivered or unknown one."""
    factory, clock, conn = bound(receipt_delay=1.0)
    conn.submit()
    conn.submit()
    ok = conn.request(P.CancelSm(sequence_number=20, message_id="1"))
    assert ok == P.CancelSmResp(sequence_number=20)
    again = conn.request(P.CancelSm(sequence_number=21, message_id="1"))
    assert again.command_status == Status.ESME_RCANCELFAIL
    clock.advance(1.0)
    [receipt] = conn.read()
    assert receipt.tlv_str(Tag.RECEIPTED_MESSAGE_ID) == "2"
    late = conn.request(P.CancelSm(sequence_number=22, message_id="2"))
    assert late.command_status == Status.ESME_RCANCELFAIL
    query = conn.request(P.QuerySm(sequence_number=23, message_id="1"))
    assert query.message_state == 4  # type: ignore[attr-defined]
    finish(factory, clock, conn)


def test_replace_sm() -> None:
    """replace_sm succeeds while the message is open, fails once it is final."""
    factory, clock, conn = bound(receipt_delay=1.0, receipts=False)
    conn.submit()
    ok = conn.request(P.ReplaceSm(sequence_number=30, message_id="1"))
    assert ok == P.ReplaceSmResp(sequence_number=30)
    clock.advance(1.0)
    late = conn.request(P.ReplaceSm(sequence_number=31, message_id="1"))
    assert late.command_status == Status.ESME_RREPLACEFAIL
    unknown = conn.request(P.ReplaceSm(sequence_number=32, message_id="7"))
    assert unknown.command_status == Status.ESME_RREPLACEFAIL
    finish(factory, clock, conn)


def test_mo_single_part() -> None:
    """A short MO is one deliver_sm, esm_class 0, GSM-7 data_coding 0."""
    factory, clock, conn = bound()
    assert factory.inject_mo("+8613800138000", "95588", "N") == 1
    assert conn.read() == [
        P.DeliverSm(
            sequence_number=1,
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="8613800138000",
            dest_addr_ton=0,
            dest_addr_npi=1,
            destination_addr="95588",
            short_message=b"N",
        )
    ]
    assert factory.stats()["mo_sent"] == 1
    finish(factory, clock, conn)


def test_mo_multi_part_udh() -> None:
    """A long MO is sent as UDH parts (esm_class 0x40) with one reference, in order."""
    factory, clock, conn = bound()
    text = "STOP " * 40  # 200 GSM-7 characters: two parts of at most 153
    assert factory.inject_mo("+8613800138000", "95588", text) == 2
    first, second = conn.read()
    assert isinstance(first, P.DeliverSm)
    assert isinstance(second, P.DeliverSm)
    assert first.esm_class == second.esm_class == 0x40
    assert first.short_message[:6] == bytes((5, 0, 3, 1, 2, 1))
    assert second.short_message[:6] == bytes((5, 0, 3, 1, 2, 2))
    assert (first.short_message[6:] + second.short_message[6:]).decode() == text
    assert (first.sequence_number, second.sequence_number) == (1, 2)
    finish(factory, clock, conn)


def test_mo_chinese_ucs2() -> None:
    """A Chinese MO is UCS-2: data_coding 8, UTF-16-BE bytes."""
    factory, clock, conn = bound()
    assert factory.inject_mo("+8613800138000", "95588", "退订") == 1
    [mo] = conn.read()
    assert isinstance(mo, P.DeliverSm)
    assert mo.data_coding == 8
    assert mo.esm_class == 0
    assert mo.short_message == "退订".encode("utf-16-be")
    finish(factory, clock, conn)


def test_mo_held_until_receiver_binds() -> None:
    """An MO with no receiver bound is held and sent when one binds."""
    factory, clock = make_smsc()
    assert factory.inject_mo("+8613800138000", "95588", "TD") == 1
    assert factory.stats()["mo_held"] == 1
    conn = Conn(factory)
    resp = conn.bind(P.BindReceiver)
    assert isinstance(resp, P.BindReceiverResp)
    [mo] = conn.read()
    assert mo.short_message == b"TD"  # type: ignore[attr-defined]
    assert factory.stats()["mo_held"] == 0
    finish(factory, clock, conn)


def test_held_queue_bounded_drops_oldest_with_warning() -> None:
    """Past max_held, the oldest held deliver_sm is dropped and a warning logged."""
    factory, clock = make_smsc(max_held=2)
    with capturedLogs() as events:
        for text in ("a", "b", "c"):
            factory.inject_mo("+1", "2", text)
    assert [e["log_level"] for e in events] == [LogLevel.warn]
    conn = Conn(factory)
    conn.bind(P.BindReceiver)
    assert [p.short_message for p in conn.read()] == [b"b", b"c"]  # type: ignore[attr-defined]
    assert factory.stats()["held_dropped"] == 1
    finish(factory, clock, conn)


def test_inject_raw() -> None:
    """inject_raw sends a caller-built deliver_sm unchanged but for its sequence."""
    factory, clock, conn = bound()
    odd = P.DeliverSm(
        sequence_number=999, source_addr="x", data_coding=0xF0, short_message=b"\x01"
    )
    factory.inject_raw(odd)
    [out] = conn.read()
    assert out == P.DeliverSm(
        sequence_number=1, source_addr="x", data_coding=0xF0, short_message=b"\x01"
    )
    finish(factory, clock, conn)
