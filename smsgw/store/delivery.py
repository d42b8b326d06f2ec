"""Batch operations for sending and receipts: parts, alert states, claims.

Per part the state machine is idempotent and final states stay final:
``submitted`` → (``ACCEPTD``/``ENROUTE`` keep it submitted) → ``delivered`` |
``failed`` | ``expired``. A receipt is stored first (``receipts``), then
applied to its part; a receipt that arrives before its submit_sm_resp finds
no part and stays unmatched until `sent_op` records the part and applies
it. Duplicated receipts change nothing. An alert is ``delivered`` when every
part is, ``failed`` when one failed, ``expired`` when one expired.

Claims and leases are in smsgw.store.claims.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from smsgw.codec.constants import FINAL_STATS
from smsgw.store import schema as S
from smsgw.store.chain import touch
from smsgw.store.query import (
    driver_sql,
    insert_rows,
    run_many,
    select_ids,
    select_pairs,
)
from smsgw.store.rows import AlertUpdate, ReceiptRecord, Sent, SentPart
from smsgw.store.writer import BatchOp

__all__ = [
    "part_status",
    "receipt_op",
    "rematch_op",
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
    # Driver level: every receipt batch of multi-part alerts comes here, and
    # SQLAlchemy renders an expanding IN anew on each call.
    ids = sorted(alert_ids)
    by_alert: dict[str, list[str]] = {}
    for alert_id, status in select_ids(
        conn, "SELECT alert_id, status FROM parts WHERE alert_id IN ({ids})", ids
    ):
        by_alert.setdefault(alert_id, []).append(status)
    parts_wanted: dict[str, int] = dict(
        select_ids(conn, "SELECT id, parts FROM alerts WHERE id IN ({ids})", ids)
    )
    changes = []
    for alert_id, statuses in by_alert.items():
        status = _alert_status(statuses)
        if status == S.DELIVERED and len(statuses) < parts_wanted.get(alert_id, 0):
            status = S.SUBMITTED
        if status != S.SUBMITTED:
            changes.append((status, now, alert_id))
    run_many(
        conn,
        "UPDATE alerts SET status = ?, updated_at = ? "
        "WHERE id = ? AND status = 'submitted'",
        changes,
    )


_PART_ROWS = (
    "SELECT p.carrier, p.message_id, p.alert_id, p.part_no, p.status, a.parts "
    "FROM parts p JOIN alerts a ON a.id = p.alert_id WHERE {where}"
)


def _apply_receipts(
    conn: Connection,
    receipts: Sequence[tuple[str, str, str, str | None, float]],
    rows: Sequence[Any] | None = None,
) -> None:
    """Apply (carrier, message_id, stat, error, at) to parts not yet final,
    then settle their alerts. ``rows``: the parts already read (as
    `_PART_ROWS` returns them), else they are read here."""
    if not receipts:
        return
    if rows is None:
        rows = select_pairs(
            conn,
            _PART_ROWS,
            "p.carrier",
            "p.message_id",
            {(c, m) for c, m, *_ in receipts},
        )
    by_key: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        by_key.setdefault((row[0], row[1]), []).append(row)
    changes: dict[tuple[str, int], tuple[str, str | None, float, str, int]] = {}
    single: dict[str, tuple[str, float]] = {}
    multi: set[str] = set()
    for carrier, message_id, stat, error, at in receipts:
        for _, _, alert_id, part_no, status_now, parts in by_key.get(
            (carrier, message_id), ()
        ):
            pk = (alert_id, part_no)
            current = changes[pk][0] if pk in changes else status_now
            if current in _PART_FINAL:
                continue  # final states stay final; duplicates change nothing
            status = part_status(stat)
            if status == S.SUBMITTED:
                continue
            changes[pk] = (status, error, at, alert_id, part_no)
            if parts == 1:
                single[alert_id] = (status, at)
            else:
                multi.add(alert_id)
    run_many(
        conn,
        "UPDATE parts SET status = ?, error = ?, done_at = ? "
        "WHERE alert_id = ? AND part_no = ? AND status = 'submitted'",
        list(changes.values()),
    )
    # A one-part alert takes its part's final state; longer ones are settled
    # from all their parts.
    run_many(
        conn,
        "UPDATE alerts SET status = ?, updated_at = ? "
        "WHERE id = ? AND status = 'submitted'",
        [(status, at, alert_id) for alert_id, (status, at) in single.items()],
    )
    touch(conn, "alert", single)
    if multi:
        touch(conn, "alert", multi)
        _settle_alerts(conn, multi, max(at for *_, at in receipts))


def _receipt_run(conn: Connection, items: Sequence[ReceiptRecord]) -> list[None]:
    rows = select_pairs(
        conn,
        _PART_ROWS,
        "p.carrier",
        "p.message_id",
        {(i.carrier, i.message_id) for i in items},
    )
    known = {(row[0], row[1]) for row in rows}
    insert_rows(
        conn,
        S.receipts,
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
    _apply_receipts(
        conn, [(i.carrier, i.message_id, i.stat, i.error, i.now) for i in items], rows
    )
    return [None] * len(items)


receipt_op: BatchOp[ReceiptRecord, None] = BatchOp("receipt", _receipt_run)


def _part_rows(
    alert_id: str, carrier: str, parts: Sequence[SentPart], now: float
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
    p, r = S.parts, S.receipts
    # Parts recorded on an earlier attempt (a partly sent alert) are kept
    # when the same carrier took them; after a failover every part was sent
    # again, so the other carrier's rows give way to the new message ids.
    # Only an alert tried before can have any.
    carrier_of = {i.alert_id: i.carrier for i in items if i.attempts > 1}
    existing: set[tuple[str, int]] = set()
    stale: list[tuple[str, int]] = []
    if carrier_of:
        q = select(p.c.alert_id, p.c.part_no, p.c.carrier).where(
            p.c.alert_id.in_(list(carrier_of))
        )
        for row in conn.execute(q):
            if row.carrier == carrier_of[row.alert_id]:
                existing.add((row.alert_id, row.part_no))
            else:
                stale.append((row.alert_id, row.part_no))
    run_many(conn, "DELETE FROM parts WHERE alert_id = ? AND part_no = ?", stale)
    rows = [
        row
        for i in items
        for row in _part_rows(i.alert_id, i.carrier, i.parts, i.now)
        if (row["alert_id"], row["part_no"]) not in existing
    ]
    insert_rows(conn, p, rows)
    run_many(
        conn,
        "UPDATE alerts SET status = 'submitted', carrier = ?, attempts = ?, "
        "parts = ?, updated_at = ?, claimed_by = NULL, claimed_until = NULL "
        "WHERE id = ? AND status = 'queued'",
        [(i.carrier, i.attempts, len(i.parts), i.now, i.alert_id) for i in items],
    )
    touch(conn, "alert", [i.alert_id for i in items])
    # Receipts that came before their submit_sm_resp.
    early = select_pairs(
        conn,
        "SELECT carrier, message_id, id, stat, error, received_at FROM receipts "
        "WHERE NOT matched AND {where} ORDER BY id",
        "carrier",
        "message_id",
        [(i.carrier, part.message_id) for i in items for part in i.parts],
    )
    if early:
        conn.execute(
            update(r).where(r.c.id.in_([e[2] for e in early])).values(matched=True)
        )
        _apply_receipts(conn, [(e[0], e[1], e[3], e[4], e[5]) for e in early])
    return [None] * len(items)


sent_op: BatchOp[Sent, None] = BatchOp("sent", _sent_run)


def _rematch_run(conn: Connection, items: Sequence[int]) -> list[int]:
    """Apply receipts still unmatched whose part now exists.

    A receipt can beat its part into the store from another gateway process
    (PostgreSQL, READ COMMITTED: the sender's early-receipt look-up cannot see
    a receipt committed meanwhile). Returns how many were matched.
    """
    limit = max(items)
    rows = conn.exec_driver_sql(
        driver_sql(
            conn,
            "SELECT r.id, r.carrier, r.message_id, r.stat, r.error, r.received_at "
            "FROM receipts r JOIN parts p "
            "ON p.carrier = r.carrier AND p.message_id = r.message_id "
            "WHERE NOT r.matched ORDER BY r.received_at LIMIT ?",
        ),
        (limit,),
    ).all()
    if rows:
        r = S.receipts
        conn.execute(
            update(r).where(r.c.id.in_([row[0] for row in rows])).values(matched=True)
        )
        _apply_receipts(
            conn, [(row[1], row[2], row[3], row[4], row[5]) for row in rows]
        )
    return [len(rows)] * len(items)


#: Match receipts that arrived before their part (item: how many at most).
rematch_op: BatchOp[int, int] = BatchOp("rematch", _rematch_run)


def _update_run(conn: Connection, items: Sequence[AlertUpdate]) -> list[None]:
    p = S.parts
    part_rows = [
        row
        for i in items
        if i.carrier is not None
        for row in _part_rows(i.alert_id, i.carrier, i.parts, i.now)
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
        insert_rows(conn, p, new)
    run_many(
        conn,
        "UPDATE alerts SET status = ?, attempts = ?, last_error = ?, "
        "not_before = ?, updated_at = ? WHERE id = ? AND status = 'queued'",
        [
            (
                i.status,
                i.attempts,
                (i.last_error or "")[:200] or None,
                i.not_before,
                i.now,
                i.alert_id,
            )
            for i in items
        ],
    )
    touch(conn, "alert", [i.alert_id for i in items])
    return [None] * len(items)


update_op: BatchOp[AlertUpdate, None] = BatchOp("update", _update_run)
