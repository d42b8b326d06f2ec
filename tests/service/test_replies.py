"""The gateway's reply glue on a Clock: stored before the SMSC is answered,
what the commit queued set going, timed-out parts assembled."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock

from smsgw._validate import Secret
from smsgw.carrier.deliveries import MoEvent
from smsgw.codec import pdu as P
from smsgw.codec.constants import ESM_UDHI, Status
from smsgw.service.config_alerts import IssuerConfig, WebhookConfig
from smsgw.service.config_feedback import FeedbackConfig
from smsgw.service.replies import ReplyService, public_issuers, webhook_targets
from smsgw.store.replies import MoItem, MoOutcome
from smsgw.store.rows import QueuedAlert
from smsgw.store.writer import StoreUnavailable


class FakeWriter:
    """Records what is submitted; the test fires each write's Deferred."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, Any, defer.Deferred[Any]]] = []
        self.pending = self.commits = self.written = 0

    def start(self) -> None:
        pass

    def submit(self, op: Any, item: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.writes.append((op.name, item, d))
        return d

    def stop(self) -> defer.Deferred[None]:
        return defer.succeed(None)


ALERT = QueuedAlert("R.r", "R", "default", "+8613800138000", "ok", 1, None, 0.0, 1.0, 0)


def service(**kw: Any) -> tuple[ReplyService, FakeWriter, Clock, list[Any]]:
    writer, clock, queued = FakeWriter(), Clock(), []

    def on_queued(alerts: Sequence[QueuedAlert]) -> None:
        queued.extend(alerts)

    svc = ReplyService(
        writer,  # type: ignore[arg-type]
        clock,
        FeedbackConfig(reassembly_timeout=40.0),
        [IssuerConfig()],
        on_queued,
        node="n1",
        lease=60.0,
        ttl=3600.0,
        agent=None,
        **kw,
    )
    return svc, writer, clock, queued


def mo(short_message: bytes, esm_class: int = 0, data_coding: int = 0) -> MoEvent:
    pdu = P.DeliverSm(
        source_addr="8613800138000",
        destination_addr="95588",
        esm_class=esm_class,
        data_coding=data_coding,
        short_message=short_message,
        sequence_number=7,
    )
    return MoEvent("sim", pdu)


def test_the_smsc_is_answered_after_the_commit_and_replies_are_set_going() -> None:
    """ESME_ROK only once the mo write commits; its queued texts go to dispatch."""
    svc, writer, _clock, queued = service()
    answers: list[int] = []
    svc.mo_received(mo(b"N")).addCallback(answers.append)  # type: ignore[union-attr]
    [(name, item, d)] = writer.writes
    assert name == "mo"
    assert isinstance(item, MoItem)
    assert (item.carrier, item.part.data, item.part.total) == ("sim", b"N", 1)
    assert answers == []
    d.callback(MoOutcome(5, (ALERT,), 0))
    assert answers == [int(Status.ESME_ROK)]
    assert queued == [ALERT]


def test_a_failed_commit_answers_a_temporary_error() -> None:
    """Not stored: ESME_RX_T_APPN makes the SMSC deliver the reply again."""
    svc, writer, _clock, queued = service()
    answers: list[int] = []
    svc.mo_received(mo(b"N")).addCallback(answers.append)  # type: ignore[union-attr]
    writer.writes[0][2].errback(StoreUnavailable("database is locked"))
    assert answers == [int(Status.ESME_RX_T_APPN)]
    assert queued == []


def test_a_reply_with_a_broken_header_is_kept_whole_for_review() -> None:
    """A UDH that runs past its data cannot be parsed: the PDU's bytes are stored
    as one reply rather than refused (the SMSC would only send it again)."""
    svc, writer, _clock, _queued = service()
    svc.mo_received(mo(b"\x09\x00\x03", esm_class=ESM_UDHI))
    [(_, item, _)] = writer.writes
    assert (item.part.method, item.part.data) == ("single", b"\x09\x00\x03")
    assert svc.unreadable == 1


def test_timed_out_parts_are_assembled_every_quarter_timeout() -> None:
    """While running, mo_expire is written every reassembly_timeout / 4."""
    svc, writer, clock, queued = service()
    svc.startService()
    clock.advance(9.9)
    assert writer.writes == []
    clock.advance(0.1)
    [(name, now, d)] = writer.writes
    assert (name, now) == ("mo_expire", 10.0)
    d.callback([MoOutcome(3, (ALERT,))])
    assert queued == [ALERT]
    clock.advance(10)
    assert len(writer.writes) == 2
    svc.stopService()
    assert clock.getDelayedCalls() == []


def test_webhook_secrets_stay_out_of_store_operations() -> None:
    """Store operations get issuer profiles without their webhook; the worker
    gets each issuer's target with its secret."""
    hook = WebhookConfig(url="https://bank.example/f", secret=Secret("s" * 20))
    issuers = [IssuerConfig(name="a", fraud_webhook=hook), IssuerConfig(name="b")]
    assert [i.fraud_webhook for i in public_issuers(issuers)] == [None, None]
    targets = webhook_targets(issuers)
    assert list(targets) == ["a"]
    assert targets["a"].secret == b"s" * 20
    assert targets["a"].key_id == "k1"
