"""Claims: which gateway process sends which queued alert.

An alert belongs to the node named in ``claimed_by`` until ``claimed_until``.
`claim_op` takes ready alerts nobody holds (or whose holder's lease ran out)
with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several gateway processes
share one queue without taking the same alert; `renew_op` extends the leases
of the alerts a node still holds; `release_op` gives alerts back.

A claimed alert whose destination does not open (sealed under a key this
process does not have, or altered) is marked failed there and then, with the
key id in ``last_error``, and the others are claimed: left queued, it would
come back first on every claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, or_, select, update
from twisted.logger import Logger

from smsgw.store import schema as S
from smsgw.store.chain import touch
from smsgw.store.pii import PiiError, key_id, vault
from smsgw.store.query import update_ids
from smsgw.store.rows import QueuedAlert
from smsgw.store.writer import BatchOp

__all__ = [
    "Claim",
    "Renew",
    "claim_op",
    "release_op",
    "renew_op",
]

log = Logger()


@dataclass(frozen=True, slots=True)
class Claim:
    """Take up to ``limit`` ready alerts for ``node`` until ``now + lease``.

    ``reclaim_own``: alerts this node held before a restart are taken back
    at once; ``reclaim_any``: every claimed alert is (SQLite, which has a
    single gateway process by definition).
    """

    node: str
    now: float
    lease: float
    limit: int
    reclaim_own: bool = True
    reclaim_any: bool = False
    exclude: frozenset[str] = frozenset()


def _claim_run(conn: Connection, items: Sequence[Claim]) -> list[list[QueuedAlert]]:
    out: list[list[QueuedAlert]] = []
    a = S.alerts
    for claim in items:
        free = or_(a.c.claimed_until.is_(None), a.c.claimed_until < claim.now)
        if claim.reclaim_any:
            free = a.c.status == S.QUEUED
        elif claim.reclaim_own:
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
        v = vault(conn)
        claimed: list[QueuedAlert] = []
        for row in rows:
            try:
                destination = v.open(row.destination)
            except PiiError:
                # Sorted by priority, it would come back first every time.
                _fail_unreadable(conn, row.id, row.destination, claim.now)
                continue
            claimed.append(QueuedAlert(**{**row._mapping, "destination": destination}))
        if claimed:
            update_ids(
                conn,
                "UPDATE alerts SET claimed_by = ?, claimed_until = ? "
                "WHERE id IN ({ids})",
                (claim.node, claim.now + claim.lease),
                [alert.id for alert in claimed],
            )
        out.append(claimed)
    return out


def _fail_unreadable(conn: Connection, alert_id: str, sealed: str, now: float) -> None:
    """Mark a queued alert whose destination does not open (its key is not
    this process's, or it was altered) failed, released, and chained."""
    kid = key_id(sealed)
    a = S.alerts
    conn.execute(
        update(a)
        .where(a.c.id == alert_id)
        .where(a.c.status == S.QUEUED)
        .values(
            status=S.FAILED,
            last_error=f"destination does not open (key {kid})",
            updated_at=now,
            claimed_by=None,
            claimed_until=None,
        )
    )
    touch(conn, "alert", [alert_id])
    log.warn(
        "alert {alert_id} failed: its destination does not open (key {key_id})",
        alert_id=alert_id,
        key_id=kid,
    )


claim_op: BatchOp[Claim, list[QueuedAlert]] = BatchOp("claim", _claim_run)


@dataclass(frozen=True, slots=True)
class Renew:
    """Extend this node's lease on the alerts it holds (``ids``) only: an
    alert this node claimed but no longer holds (its record failed, it was
    released) lapses and is claimed again."""

    node: str
    until: float
    ids: tuple[str, ...]


def _renew_run(conn: Connection, items: Sequence[Renew]) -> list[int]:
    return [
        update_ids(
            conn,
            "UPDATE alerts SET claimed_until = ? WHERE claimed_by = ? "
            "AND status = 'queued' AND id IN ({ids})",
            (item.until, item.node),
            item.ids,
        )
        for item in items
    ]


renew_op: BatchOp[Renew, int] = BatchOp("renew", _renew_run)


def _release_run(conn: Connection, items: Sequence[tuple[str, ...]]) -> list[None]:
    update_ids(
        conn,
        "UPDATE alerts SET claimed_by = NULL, claimed_until = NULL "
        "WHERE status = 'queued' AND id IN ({ids})",
        (),
        [alert_id for item in items for alert_id in item],
    )
    return [None] * len(items)


#: Give claimed alerts back to the queue (this node holds too many).
release_op: BatchOp[tuple[str, ...], None] = BatchOp("release", _release_run)
