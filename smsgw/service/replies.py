"""The gateway's side of cardholders' replies (thin Twisted glue).

Every deliver_sm / data_sm that is not a receipt, from any bind, comes here:
it is read into an MO part (smsgw.feedback.mo), handed to the store's ``mo``
operation (smsgw.store.replies: reassembled, classified, matched, acted on)
and answered to the SMSC only once that is committed. What the commit
queued is then set going: the texts sent back go to the dispatcher, and a
new fraud webhook wakes the webhook worker. A timer assembles replies whose
missing parts never came (``feedback.reassembly_timeout``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IAgent
from typing_extensions import override

from smsgw.carrier.deliveries import Answer, MoEvent
from smsgw.codec.constants import Status, Tag
from smsgw.feedback.mo import MoError, MoPart, mo_part
from smsgw.feedback.webhook_worker import (
    PendingWebhook,
    WebhookAttempt,
    WebhookTarget,
    WebhookWorker,
)
from smsgw.service.config_alerts import IssuerConfig
from smsgw.service.config_feedback import FeedbackConfig
from smsgw.store.replies import (
    MoItem,
    MoOutcome,
    ReplyIssuer,
    ReplyRules,
    make_reply_ops,
)
from smsgw.store.rows import QueuedAlert
from smsgw.store.webhooks import ClaimWebhooks, claim_webhooks_op, record_attempt_op
from smsgw.store.writer import Writer

__all__ = ["ReplyService", "public_issuers", "reply_rules", "webhook_targets"]

log = Logger()


def public_issuers(issuers: Sequence[IssuerConfig]) -> tuple[IssuerConfig, ...]:
    """The issuer profiles without their webhook secrets (what store
    operations carry to the store process)."""
    return tuple(dataclasses.replace(i, fraud_webhook=None) for i in issuers)


def reply_rules(
    feedback: FeedbackConfig,
    issuers: Sequence[IssuerConfig],
    *,
    node: str,
    lease: float,
    ttl: float,
) -> ReplyRules:
    """What the store's ``mo`` operation needs (no secrets)."""
    return ReplyRules(
        keywords=feedback.keywords,
        reply_window=feedback.reply_window,
        help_interval=feedback.help_interval,
        reassembly_timeout=feedback.reassembly_timeout,
        replies=feedback.replies,
        issuers=tuple(
            ReplyIssuer(
                name=i.name,
                signature=dict(i.signature),
                default_lang=i.default_lang,
                source_addr=i.source_addr,
                webhook_url=i.fraud_webhook.url if i.fraud_webhook else None,
            )
            for i in issuers
        ),
        node=node,
        lease=lease,
        ttl=ttl,
    )


def webhook_targets(issuers: Sequence[IssuerConfig]) -> dict[str, WebhookTarget]:
    """Issuer name -> its fraud endpoint, for the issuers that have one."""
    return {
        i.name: WebhookTarget(
            url=i.fraud_webhook.url,
            secret=i.fraud_webhook.secret.reveal().encode(),
            key_id=i.fraud_webhook.key_id,
            timeout=i.fraud_webhook.timeout,
        )
        for i in issuers
        if i.fraud_webhook is not None
    }


class _WebhookStore:
    """The webhook worker's store, through the group-commit writer."""

    def __init__(self, writer: Writer, node: str, lease: float) -> None:
        self.writer = writer
        self.node = node
        self.lease = lease

    def due(
        self, now: float, limit: int, held: frozenset[int]
    ) -> defer.Deferred[list[PendingWebhook]]:
        return self.writer.submit(
            claim_webhooks_op, ClaimWebhooks(self.node, now, self.lease, limit, held)
        )

    def record(self, attempt: WebhookAttempt) -> defer.Deferred[None]:
        return self.writer.submit(record_attempt_op, attempt)


class ReplyService(Service):
    """Stores, reassembles and acts on replies; posts fraud webhooks."""

    def __init__(
        self,
        writer: Writer,
        clock: IReactorTime,
        feedback: FeedbackConfig,
        issuers: Sequence[IssuerConfig],
        on_queued: Callable[[Sequence[QueuedAlert]], None],
        *,
        node: str,
        lease: float,
        ttl: float,
        agent: IAgent | None,
    ) -> None:
        self.writer = writer
        self.clock = clock
        self.on_queued = on_queued
        self.mo_op, self.expire_op = make_reply_ops(
            reply_rules(feedback, issuers, node=node, lease=lease, ttl=ttl)
        )
        self.expire_every = max(1.0, feedback.reassembly_timeout / 4)
        self._timer: IDelayedCall | None = None
        targets = webhook_targets(issuers)
        self.webhooks: WebhookWorker | None = None
        if targets and agent is not None:
            self.webhooks = WebhookWorker(
                _WebhookStore(writer, node, lease),
                agent,
                clock,
                targets,
                initial=feedback.webhook_retry_initial,
                maximum=feedback.webhook_retry_max,
                max_attempts=feedback.webhook_max_attempts,
            )
        self.received = 0
        self.unreadable = 0
        self.classes: dict[str, int] = {}  # whole replies by classification

    @override
    def startService(self) -> None:
        super().startService()
        self._timer = self.clock.callLater(self.expire_every, self._expire)
        if self.webhooks is not None:
            self.webhooks.start()

    @override
    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self.webhooks is not None:
            return self.webhooks.stop()
        return defer.succeed(None)

    # -- a reply arrives ---------------------------------------------------

    def mo_received(self, event: MoEvent) -> Answer:
        """Store the part (and, once whole, act on the reply); the SMSC gets
        ESME_ROK after the commit, a temporary error if it failed."""
        self.received += 1
        try:
            part = mo_part(event.pdu)
        except MoError as e:
            # Kept as it came (header and all) for review, never refused:
            # the SMSC would only deliver it again.
            self.unreadable += 1
            log.warn(
                "unreadable reply carrier={carrier} seq={seq}: {error}",
                carrier=event.carrier,
                seq=event.pdu.sequence_number,
                error=str(e),
            )
            part = _raw_part(event)
        d = self.writer.submit(
            self.mo_op, MoItem(event.carrier, part, self.clock.seconds())
        )
        return d.addCallbacks(self._handled, self._failed)

    def _handled(self, outcome: MoOutcome) -> int:
        self._set_going([outcome])
        return int(Status.ESME_ROK)

    @staticmethod
    def _failed(failure: Any) -> int:
        log.warn("reply not stored: {error}", error=failure.getErrorMessage())
        return int(Status.ESME_RX_T_APPN)  # the SMSC delivers it again

    def _set_going(self, outcomes: Sequence[MoOutcome]) -> None:
        for o in outcomes:
            if o.classification is not None:
                self.classes[o.classification] = (
                    self.classes.get(o.classification, 0) + 1
                )
        queued = [alert for o in outcomes for alert in o.queued]
        if queued:
            self.on_queued(queued)
        if self.webhooks is not None and any(o.webhooks for o in outcomes):
            self.webhooks.poke()

    def _expire(self) -> None:
        self._timer = self.clock.callLater(self.expire_every, self._expire)
        d = self.writer.submit(self.expire_op, self.clock.seconds())
        d.addCallbacks(
            self._set_going,
            lambda f: log.warn(
                "assembling timed-out replies failed: {error}",
                error=f.getErrorMessage(),
            ),
        )


def _raw_part(event: MoEvent) -> MoPart:
    pdu = event.pdu
    data = pdu.tlv(Tag.MESSAGE_PAYLOAD) or getattr(pdu, "short_message", b"")
    return MoPart(
        pdu.source_addr,
        pdu.destination_addr,
        pdu.data_coding,
        None,
        1,
        1,
        bytes(data or b""),
        "single",
    )
