"""Fraud webhooks in the store: claimed when due, every attempt recorded.

A webhook row is queued with the reply that disputed its transaction
(smsgw.store.replies). `claim_webhooks_op` takes the due ones for one node
until a lease ends (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several
gateway processes never post the same event at once); `record_attempt_op`
appends the attempt to ``webhook_attempts`` and moves the webhook on:
delivered, failed, or pending again at its next time.

A webhook's body names the replying number, so it is stored sealed
(smsgw.store.pii, purpose WEBHOOK) and opened as it is claimed: the worker
gets, signs and sends the clear body, as it was queued. A body that no
longer opens (its key was removed, or it was altered) is never sent: the
webhook fails at once with the reason in ``last_error``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, insert, or_, select, update

from smsgw.feedback.webhook_worker import PendingWebhook, WebhookAttempt
from smsgw.store import schema as S
from smsgw.store.pii import WEBHOOK, PiiError, vault
from smsgw.store.writer import BatchOp

__all__ = ["ClaimWebhooks", "claim_webhooks_op", "record_attempt_op"]


@dataclass(frozen=True, slots=True)
class ClaimWebhooks:
    """Take up to ``limit`` due webhooks for ``node`` until ``now + lease``:
    those unclaimed, whose lease ended, or claimed by ``node`` earlier (a
    restarted gateway takes its own back at once), except ``held`` (the ones
    this node's worker is still posting)."""

    node: str
    now: float
    lease: float
    limit: int
    held: frozenset[int] = frozenset()


def _claim_run(
    conn: Connection, items: Sequence[ClaimWebhooks]
) -> list[list[PendingWebhook]]:
    w = S.webhooks
    v = vault(conn)
    out: list[list[PendingWebhook]] = []
    for claim in items:
        q = (
            select(w.c.id, w.c.issuer, w.c.url, w.c.body, w.c.attempts)
            .where(w.c.status == "pending")
            .where(w.c.next_at <= claim.now)
            .where(
                or_(
                    w.c.claimed_until.is_(None),
                    w.c.claimed_until < claim.now,
                    w.c.claimed_by == claim.node,
                )
            )
            .order_by(w.c.next_at, w.c.id)
            .limit(claim.limit + len(claim.held))
        )
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        rows = [r for r in conn.execute(q) if r.id not in claim.held][: claim.limit]
        if rows:
            conn.execute(
                update(w)
                .where(w.c.id.in_([r.id for r in rows]))
                .values(claimed_by=claim.node, claimed_until=claim.now + claim.lease)
            )
        pending: list[PendingWebhook] = []
        for r in rows:
            try:
                body = v.open_bytes(bytes(r.body), WEBHOOK)
            except PiiError as e:
                conn.execute(
                    update(w)
                    .where(w.c.id == r.id)
                    .values(
                        status="failed",
                        last_error=f"body does not open: {e}"[:200],
                        claimed_by=None,
                        claimed_until=None,
                    )
                )
                continue
            pending.append(PendingWebhook(r.id, r.issuer, r.url, body, r.attempts))
        out.append(pending)
    return out


_STATUS = {"delivered": "delivered", "failed": "failed", "retry": "pending"}


def _record_run(conn: Connection, items: Sequence[WebhookAttempt]) -> list[None]:
    w = S.webhooks
    for a in items:
        conn.execute(
            insert(S.webhook_attempts),
            {
                "webhook_id": a.webhook_id,
                "attempt": a.attempt,
                "at": a.at,
                "status_code": a.status_code,
                "error": a.error[:200] if a.error else None,
                "outcome": a.outcome,
            },
        )
        values = {
            "attempts": a.attempt,
            "status": _STATUS[a.outcome],
            "last_error": a.error[:200] if a.error else None,
            "claimed_by": None,
            "claimed_until": None,
        }
        if a.next_at is not None:
            values["next_at"] = a.next_at
        conn.execute(update(w).where(w.c.id == a.webhook_id).values(**values))
    return [None] * len(items)


claim_webhooks_op: BatchOp[ClaimWebhooks, list[PendingWebhook]] = BatchOp(
    "claim_webhooks", _claim_run
)
record_attempt_op: BatchOp[WebhookAttempt, None] = BatchOp(
    "record_webhook_attempt", _record_run
)
