"""Store operations behind the admin API's actions (each one audited)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select, update
from twisted.logger import Logger

from smsgw.store import schema as S
from smsgw.store.chain import touch
from smsgw.store.pii import PiiError, key_id, vault
from smsgw.store.rows import QueuedAlert
from smsgw.store.writer import BatchOp

__all__ = [
    "AuditEntry",
    "Requeue",
    "TestAlert",
    "audit_op",
    "requeue_op",
    "test_alert_op",
]

log = Logger()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin action for the audit trail (no secrets, numbers masked)."""

    now: float
    actor: str
    action: str
    subject: str
    detail: dict[str, Any] = field(default_factory=dict)
    issuer: str | None = None


def _audit_run(conn: Connection, items: Sequence[AuditEntry]) -> list[None]:
    conn.execute(
        insert(S.audit),
        [
            {
                "at": e.now,
                "issuer": e.issuer,
                "actor": e.actor,
                "action": e.action,
                "subject": e.subject[:100],
                "detail": orjson.dumps(e.detail, option=orjson.OPT_SORT_KEYS).decode(),
            }
            for e in items
        ],
    )
    return [None] * len(items)


@dataclass(frozen=True, slots=True)
class Requeue:
    """Send failed or expired alerts again, claimed by ``node``; one whose
    destination does not open here is left as it is (with a warning)."""

    ids: tuple[str, ...]
    node: str
    now: float
    lease: float
    ttl: float


_QUEUED_COLUMNS = (
    S.alerts.c.id,
    S.alerts.c.ref,
    S.alerts.c.issuer,
    S.alerts.c.destination,
    S.alerts.c.text,
    S.alerts.c.priority,
    S.alerts.c.source_addr,
)


def _requeue_run(conn: Connection, items: Sequence[Requeue]) -> list[list[QueuedAlert]]:
    a = S.alerts
    out: list[list[QueuedAlert]] = []
    v = vault(conn)
    for r in items:
        done = a.c.status.in_((S.FAILED, S.EXPIRED))
        q = select(*_QUEUED_COLUMNS).where(a.c.id.in_(list(r.ids)), done)
        if conn.dialect.name == "postgresql":
            q = q.with_for_update()
        again: list[QueuedAlert] = []
        for row in conn.execute(q):
            try:
                destination = v.open(row.destination)
            except PiiError:
                # Not sendable by this process: left as it is (failed or
                # expired), the others are queued again.
                log.warn(
                    "alert {alert_id} not requeued: its destination does not "
                    "open (key {key_id})",
                    alert_id=row.id,
                    key_id=key_id(row.destination),
                )
                continue
            again.append(
                QueuedAlert(
                    row.id,
                    row.ref or "",
                    row.issuer,
                    destination,
                    row.text,
                    row.priority,
                    row.source_addr,
                    r.now,
                    r.now + r.ttl,
                    0,
                )
            )
        ids = [alert.id for alert in again]
        touch(conn, "alert", ids)
        if ids:
            # Sent again whole: the failed attempt's parts give way (their
            # receipts stay in the receipts table).
            conn.execute(delete(S.parts).where(S.parts.c.alert_id.in_(ids)))
            conn.execute(
                update(a)
                .where(a.c.id.in_(ids))
                .values(
                    status=S.QUEUED,
                    attempts=0,
                    not_before=r.now,
                    expires_at=r.now + r.ttl,
                    updated_at=r.now,
                    claimed_by=r.node,
                    claimed_until=r.now + r.lease,
                    last_error=None,
                )
            )
        out.append(again)
    return out


audit_op: BatchOp[AuditEntry, None] = BatchOp("audit", _audit_run)
requeue_op: BatchOp[Requeue, list[QueuedAlert]] = BatchOp("requeue", _requeue_run)


@dataclass(frozen=True, slots=True)
class TestAlert:
    """A test SMS from an operator, sent like any alert (routing, retries)."""

    destination: str  # E.164
    text: str
    issuer: str
    source_addr: str | None
    node: str
    now: float
    lease: float
    ttl: float


def _test_alert_run(conn: Connection, items: Sequence[TestAlert]) -> list[QueuedAlert]:
    from smsgw.codec.text import measure
    from smsgw.store.accept import new_ref

    out = []
    v = vault(conn)
    for t in items:
        size = measure(t.text)
        alert = QueuedAlert(
            f"{new_ref(t.now)}.t", "", t.issuer, t.destination, t.text, 1,
            t.source_addr, t.now, t.now + t.ttl, 0,
        )  # fmt: skip
        conn.execute(
            insert(S.alerts),
            {
                "id": alert.id, "ref": None, "issuer": t.issuer, "audience": "test",
                "destination": v.seal(t.destination),
                "dest_index": v.index(t.destination), "lang": "en", "text": t.text,
                "encoding": size.encoding, "parts": size.parts, "priority": 1,
                "source_addr": t.source_addr, "status": S.QUEUED, "carrier": None,
                "attempts": 0, "created_at": t.now, "updated_at": t.now,
                "not_before": t.now, "expires_at": alert.expires_at,
                "claimed_by": t.node, "claimed_until": t.now + t.lease,
                "last_error": None, "reply_code": None, "feedback": None,
            },
        )  # fmt: skip
        touch(conn, "alert", [alert.id])
        out.append(alert)
    return out


test_alert_op: BatchOp[TestAlert, QueuedAlert] = BatchOp("test_alert", _test_alert_run)
