"""Batch operations for sending and receipts: parts, alert states, claims.

Per part the state machine is idempotent and final states stay final:
``submitted`` → (``ACCEPTD``/``ENROUTE`` keep it submitted) → ``delivered`` |
``failed`` | ``expired``. A receipt is stored first (``receipts``), then
applied to its part; a receipt that arrives before its submit_sm_resp finds
no part and stays unmatched until `sent_op` records the part and applies
it. Duplicated receipts change nothing. An alert is ``delivered`` when every
part is, ``failed`` when one failed, ``expired`` when one expired.

Claims: an alert belongs to the node named in ``claimed_by`` until
``claimed_until``. `claim_op` takes ready alerts nobody holds (or whose
holder's lease ran out) with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several gateway processes share one queue without taking the same alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, or_, select, update

from smsgw.codec.constants import FINAL_STATS
from smsgw.store import schema as S
from smsgw.store.query import pairs_in
from smsgw.store.rows import AlertUpdate, QueuedAlert, ReceiptRecord, Sent, SentPart
from smsgw.store.writer import BatchOp

__all__ = [
    "Claim",
    "claim_op",
    "part_status",
    "receipt_op",
    "release_op",
    "renew_op",
    "sent_op",
    "update_op",
]

_PART_FINAL = (S.DELIVERED, S.FAILED, S.EXPIRED)


def part_status(stat: str) -> str:
    """The part status a receipt's ``stat`` leads to."""
    if stat == "DELIVRD":
        return S.DELIVERED
    if stat == "EXPIRED":
        return S.EXPIRED
    if stat in FINAL_STATS:  # UNDELIV, REJECTD, DELETED, UNKNOWN
        return S.FAILED
    return S.SUBMITTED  # ACCEPTD, ENROUTE: not final yet


def _alert_status(statuses: Iterable[str]) -> str:
    seen = set(statuses)
    if S.FAILED in seen:
        return S.FAILED
    if S.EXPIRED in seen:
        return S.EXPIRED
    if seen == {S.DELIVERED}:
        return S.DELIVERED
    return S.SUBMITTED


def _settle_alerts(conn: Connection, alert_ids: set[str], now: float) -> None:
    """Recompute submitted alerts from their parts."""
    if not alert_ids:
        return
    p = S.parts
    by_alert: dict[str, list[str]] = {}
    q = select(p.c.alert_id, p.c.status).where(p.c.alert_id.in_(list(alert_ids)))
    for row in conn.execute(q):
        by_alert.setdefault(row.alert_id, []).append(row.status)
    a = S.alerts
    parts_wanted = {
        r.id: r.parts
        for r in conn.execute(
            select(a.c.id, a.c.parts).where(a.c.id.in_(list(by_alert)))
        )
    }
    changes = []
    for alert_id, statuses in by_alert.items():
        status = _alert_status(statuses)
        if status == S.DELIVERED and len(statuses) < parts_wanted.get(alert_id, 0):
            status = S.SUBMITTED
        if status != S.SUBMITTED:
            changes.append({"b_id": alert_id, "b_status": status, "b_now": now})
    if changes:
        conn.execute(
            update(a)
            .where(and_(a.c.id == bindparam("b_id"), a.c.status == S.SUBMITTED))
            .values(status=bindparam("b_status"), updated_at=bindparam("b_now")),
            changes,
        )


def _apply_receipts(
    conn: Connection, receipts: Sequence[tuple[str, str, str, str | None, float]]
) -> set[str]:
    """Apply (carrier, message_id, stat, error, at) to parts not yet final.

    Returns the ids of the alerts whose parts changed.
    """
    if not receipts:
        return set()
    p = S.parts
    keys = {(c, m) for c, m, _, _, _ in receipts}
    rows = conn.execute(
        select(
            p.c.alert_id, p.c.part_no, p.c.carrier, p.c.message_id, p.c.status
        ).where(pairs_in(p.c.carrier, p.c.message_id, keys))
    ).all()
    by_key: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        by_key.setdefault((row.carrier, row.message_id), []).append(row)
    changes: dict[tuple[str, int], dict[str, Any]] = {}
    for carrier, message_id, stat, error, at in receipts:
        for row in by_key.get((carrier, message_id), ()):
            pk = (row.alert_id, row.part_no)
            current = changes.get(pk, {}).get("b_status", row.status)
            if current in _PART_FINAL:
                continue  # final states stay final; duplicates change nothing
            status = part_status(stat)
            if status == S.SUBMITTED:
                continue
            changes[pk] = {
                "b_alert": row.alert_id,
                "b_part": row.part_no,
                "b_status": status,
                "b_error": error,
                "b_at": at,
            }
    if changes:
        conn.execute(
            update(p)
            .where(
                and_(
                    p.c.alert_id == bindparam("b_alert"),
                    p.c.part_no == bindparam("b_part"),
                    p.c.status == S.SUBMITTED,
                )
            )
            .values(
                status=bindparam("b_status"),
                error=bindparam("b_error"),
                done_at=bindparam("b_at"),
            ),
            list(changes.values()),
        )
    return {c["b_alert"] for c in changes.values()}


def _receipt_run(conn: Connection, items: Sequence[ReceiptRecord]) -> list[None]:
    r = S.receipts
    p = S.parts
    keys = {(i.carrier, i.message_id) for i in items}
    known = {
        (row.carrier, row.message_id)
        for row in conn.execute(
            select(p.c.carrier, p.c.message_id).where(
                pairs_in(p.c.carrier, p.c.message_id, keys)
            )
        )
    }
    conn.execute(
        insert(r),
        [
            {
                "carrier": i.carrier,
                "message_id": i.message_id,
                "stat": i.stat,
                "error": i.error,
                "received_at": i.now,
                "matched": (i.carrier, i.message_id) in known,
            }
            for i in items
        ],
    )
    changed = _apply_receipts(
        conn, [(i.carrier, i.message_id, i.stat, i.error, i.now) for i in items]
    )
    _settle_alerts(conn, changed, max(i.now for i in items))
    return [None] * len(items)


receipt_op: BatchOp[ReceiptRecord, None] = BatchOp("receipt", _receipt_run)


def _insert_parts(
    conn: Connection, alert_id: str, carrier: str, parts: Sequence[SentPart], now: float
) -> list[dict[str, Any]]:
    return [
        {
            "alert_id": alert_id,
            "part_no": part.part_no,
            "carrier": carrier,
            "message_id": part.message_id,
            "status": S.SUBMITTED,
            "error": None,
            "submitted_at": now,
            "done_at": None,
        }
        for part in parts
    ]


def _sent_run(conn: Connection, items: Sequence[Sent]) -> list[None]:
    a, p, r = S.alerts, S.parts, S.receipts
    ids = [i.alert_id for i in items]
    # Parts recorded on an earlier attempt (a partly sent alert) are kept.
    existing = {
        (r.alert_id, r.part_no)
        for r in conn.execute(
            select(p.c.alert_id, p.c.part_no).where(p.c.alert_id.in_(ids))
        )
    }
    rows = [
        row
        for i in items
        for row in _insert_parts(conn, i.alert_id, i.carrier, i.parts, i.now)
        if (row["alert_id"], row["part_no"]) not in existing
    ]
    if rows:
        conn.execute(insert(p), rows)
    conn.execute(
        update(a)
        .where(and_(a.c.id == bindparam("b_id"), a.c.status == S.QUEUED))
        .values(
            status=S.SUBMITTED,
            carrier=bindparam("b_carrier"),
            attempts=bindparam("b_attempts"),
            parts=bindparam("b_parts"),
            updated_at=bindparam("b_now"),
            claimed_by=None,
            claimed_until=None,
        ),
        [
            {
                "b_id": i.alert_id,
                "b_carrier": i.carrier,
                "b_attempts": i.attempts,
                "b_parts": len(i.parts),
                "b_now": i.now,
            }
            for i in items
        ],
    )
    # Receipts that came before their submit_sm_resp.
    keys = [(i.carrier, part.message_id) for i in items for part in i.parts]
    early = conn.execute(
        select(
            r.c.id, r.c.carrier, r.c.message_id, r.c.stat, r.c.error, r.c.received_at
        )
        .where(r.c.matched.is_(False))
        .where(pairs_in(r.c.carrier, r.c.message_id, keys))
        .order_by(r.c.id)
    ).all()
    wanted = set(keys)
    early = [e for e in early if (e.carrier, e.message_id) in wanted]
    if early:
        conn.execute(
            update(r).where(r.c.id.in_([e.id for e in early])).values(matched=True)
        )
        changed = _apply_receipts(
            conn,
            [(e.carrier, e.message_id, e.stat, e.error, e.received_at) for e in early],
        )
        _settle_alerts(conn, changed, max(i.now for i in items))
    return [None] * len(items)


sent_op: BatchOp[Sent, None] = BatchOp("sent", _sent_run)


def _update_run(conn: Connection, items: Sequence[AlertUpdate]) -> list[None]:
    a, p = S.alerts, S.parts
    part_rows = [
        row
        for i in items
        if i.carrier is not None
        for row in _insert_parts(conn, i.alert_id, i.carrier, i.parts, i.now)
    ]
    if part_rows:
        existing = {
            (r.alert_id, r.part_no)
            for r in conn.execute(
                select(p.c.alert_id, p.c.part_no).where(
                    p.c.alert_id.in_({r["alert_id"] for r in part_rows})
                )
            )
        }
        new = [r for r in part_rows if (r["alert_id"], r["part_no"]) not in existing]
        if new:
            conn.execute(insert(p), new)
    conn.execute(
        update(a)
        .where(and_(a.c.id == bindparam("b_id"), a.c.status == S.QUEUED))
        .values(
            status=bindparam("b_status"),
            attempts=bindparam("b_attempts"),
            last_error=bindparam("b_error"),
            not_before=bindparam("b_not_before"),
            updated_at=bindparam("b_now"),
        ),
        [
            {
                "b_id": i.alert_id,
                "b_status": i.status,
                "b_attempts": i.attempts,
                "b_error": (i.last_error or "")[:200] or None,
                "b_not_before": i.not_before,
                "b_now": i.now,
            }
            for i in items
        ],
    )
    return [None] * len(items)


update_op: BatchOp[AlertUpdate, None] = BatchOp("update", _update_run)


@dataclass(frozen=True, slots=True)
class Claim:
    """Take up to ``limit`` ready alerts for ``node`` until ``now + lease``.

    ``reclaim_own``: alerts this node held before a restart are taken back
    at once (SQLite has a single gateway process by definition).
    """

    node: str
    now: float
    lease: float
    limit: int
    reclaim_own: bool = True
    exclude: frozenset[str] = frozenset()


def _claim_run(conn: Connection, items: Sequence[Claim]) -> list[list[QueuedAlert]]:
    out: list[list[QueuedAlert]] = []
    a = S.alerts
    for claim in items:
        free = or_(a.c.claimed_until.is_(None), a.c.claimed_until < claim.now)
        if claim.reclaim_own:
            free = or_(free, a.c.claimed_by == claim.node)
        q = (
            select(
                a.c.id,
                a.c.ref,
                a.c.issuer,
                a.c.destination,
                a.c.text,
                a.c.priority,
                a.c.source_addr,
                a.c.not_before,
                a.c.expires_at,
                a.c.attempts,
            )
            .where(a.c.status == S.QUEUED)
            .where(a.c.not_before <= claim.now)
            .where(free)
            .order_by(a.c.priority.desc(), a.c.not_before)
            .limit(claim.limit + len(claim.exclude))
        )
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        rows = [row for row in conn.execute(q) if row.id not in claim.exclude]
        rows = rows[: claim.limit]
        if rows:
            conn.execute(
                update(a)
                .where(a.c.id.in_([row.id for row in rows]))
                .values(claimed_by=claim.node, claimed_until=claim.now + claim.lease)
            )
        out.append([QueuedAlert(**row._mapping) for row in rows])
    return out


claim_op: BatchOp[Claim, list[QueuedAlert]] = BatchOp("claim", _claim_run)


@dataclass(frozen=True, slots=True)
class Renew:
    """Extend this node's lease on alerts it still holds."""

    node: str
    until: float


def _renew_run(conn: Connection, items: Sequence[Renew]) -> list[int]:
    a = S.alerts
    out = []
    for item in items:
        result = conn.execute(
            update(a)
            .where(a.c.claimed_by == item.node)
            .where(a.c.status == S.QUEUED)
            .values(claimed_until=item.until)
        )
        out.append(result.rowcount)
    return out


renew_op: BatchOp[Renew, int] = BatchOp("renew", _renew_run)


def _release_run(conn: Connection, items: Sequence[tuple[str, ...]]) -> list[None]:
    a = S.alerts
    ids = [alert_id for item in items for alert_id in item]
    for start in range(0, len(ids), 500):
        conn.execute(
            update(a)
            .where(a.c.id.in_(ids[start : start + 500]))
            .where(a.c.status == S.QUEUED)
            .values(claimed_by=None, claimed_until=None)
        )
    return [None] * len(items)


#: Give claimed alerts back to the queue (this node holds too many).
release_op: BatchOp[tuple[str, ...], None] = BatchOp("release", _release_run)
