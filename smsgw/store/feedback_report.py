"""What cardholders answered: per transaction, per merchant and day, for review.

Read-only queries shared by the ``smsgw feedback`` command (and the admin
API), and the operator's opt-out / opt-in. Phone numbers leave masked
(+86138****8000): they are personal data. In the store they are sealed
(smsgw.store.pii): they are opened only to be masked, and looked up by their
blind index under every live index key.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, Connection, bindparam, text

from smsgw.store.pii import Vault, vault

__all__ = [
    "DayRow",
    "alerts_to",
    "feedback_report",
    "mask_msisdn",
    "set_opt_out",
    "transaction_feedback",
    "unmatched_replies",
]

_BUCKET = 900  # seconds: every real time zone offset is a multiple of 15 min
# ``IN :ix``: a number's blind indexes under every live index key.
_IX: BindParameter[list[str]] = bindparam("ix", expanding=True)


def mask_msisdn(number: str | None) -> str | None:
    """+8613800138000 -> +86138****8000 (None stays None)."""
    if number is None:
        return None
    return number[:6] + "****" + number[-4:] if len(number) > 10 else "****"


def _sender(v: Vault, row: Any) -> str:
    """A reply's sender, masked: its sealed source opened and put in E.164."""
    # Imported here: smsgw.store.replies imports this module (mask_msisdn).
    from smsgw.store.replies import sender_e164

    if row.msisdn_index is None:
        return "(not a number)"
    return mask_msisdn(sender_e164(v.open(row.source))) or "(not a number)"


def _mo(v: Vault, row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "received_at": row.received_at,
        "from": _sender(v, row),
        "text": row.text,
        "classification": row.classification,
        "matched_by": row.matched_by,
        "action": row.action,
        "parts": row.parts,
        "complete": bool(row.complete),
    }


def transaction_feedback(conn: Connection, ref: str) -> dict[str, Any] | None:
    """A transaction's alerts, the replies matched to it, its dispute and its
    fraud webhooks with their attempts; None when there is no such ref."""
    txn = conn.execute(
        text(
            "SELECT ref, issuer, terminal_id, txn_id, kind, result, amount, currency, "
            "masked_pan, last4, merchant_id, merchant_name, local_time, received_at, "
            "feedback, feedback_at, disputed_at FROM transactions WHERE ref = :ref"
        ),
        {"ref": ref},
    ).first()
    if txn is None:
        return None
    alerts = list(
        conn.execute(
            text(
                "SELECT id, audience, destination, lang, text, status, carrier, "
                "attempts, created_at, updated_at, last_error, reply_code, feedback "
                "FROM alerts WHERE ref = :ref ORDER BY id"
            ),
            {"ref": ref},
        )
    )
    parts: dict[str, list[dict[str, Any]]] = {}
    for a in alerts:  # by primary key: an alert has a few parts
        for p in conn.execute(
            text(
                "SELECT part_no, carrier, message_id, status, error, submitted_at, "
                "done_at FROM parts WHERE alert_id = :id ORDER BY part_no"
            ),
            {"id": a.id},
        ):
            parts.setdefault(a.id, []).append(dict(p._mapping))
    replies = conn.execute(
        text("SELECT * FROM mo_messages WHERE ref = :ref ORDER BY received_at, id"),
        {"ref": ref},
    )
    hooks = list(
        conn.execute(
            text("SELECT * FROM webhooks WHERE ref = :ref ORDER BY id"), {"ref": ref}
        )
    )
    attempts: dict[int, list[dict[str, Any]]] = {}
    if hooks:
        for a in conn.execute(
            text(
                "SELECT webhook_id, attempt, at, status_code, error, outcome FROM "
                "webhook_attempts WHERE webhook_id IN "
                f"({', '.join(str(int(h.id)) for h in hooks)}) ORDER BY id"
            )
        ):
            attempts.setdefault(a.webhook_id, []).append(
                {
                    "attempt": a.attempt,
                    "at": a.at,
                    "status_code": a.status_code,
                    "error": a.error,
                    "outcome": a.outcome,
                }
            )
    v = vault(conn)
    return {
        **dict(txn._mapping),
        "alerts": [
            {
                **a._mapping,
                "destination": mask_msisdn(v.open(a.destination)),
                "parts": parts.get(a.id, []),
            }
            for a in alerts
        ],
        "replies": [_mo(v, r) for r in replies],
        "webhooks": [
            {
                "id": h.id,
                "event": h.event,
                "status": h.status,
                "attempts": attempts.get(h.id, []),
                "next_at": h.next_at if h.status == "pending" else None,
                "last_error": h.last_error,
            }
            for h in hooks
        ],
    }


@dataclass(frozen=True, slots=True)
class DayRow:
    """One merchant on one day: alerted transactions and how they were answered."""

    merchant_id: str
    day: str  # YYYY-MM-DD in the report's time zone
    alerted: int
    confirm: int
    not_me: int
    stop: int

    @property
    def no_reply(self) -> int:
        return self.alerted - self.confirm - self.not_me - self.stop

    def rate(self, count: int) -> float:
        """``count`` as a share of the alerted transactions (0 when none)."""
        return count / self.alerted if self.alerted else 0.0

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "merchant_id": self.merchant_id,
            "day": self.day,
            "alerted": self.alerted,
        }
        for name in ("confirm", "not_me", "stop", "no_reply"):
            count = getattr(self, name)
            out[name] = count
            out[f"{name}_rate"] = round(self.rate(count), 4)
        return out


def feedback_report(
    conn: Connection,
    *,
    issuer: str,
    since: float,
    until: float,
    timezone: str,
    merchant_id: str | None = None,
) -> list[DayRow]:
    """Per merchant and day (in ``timezone``), the transactions that got a
    cardholder alert and how many were confirmed, reported not-me, answered
    STOP or not answered; ordered by merchant and day."""
    bucket = (
        f"FLOOR(received_at / {_BUCKET})"
        if conn.dialect.name == "postgresql"
        else f"CAST(received_at / {_BUCKET} AS INTEGER)"
    )
    sql = (
        f"SELECT merchant_id, {bucket} AS q, COUNT(*) AS n, "
        "SUM(CASE WHEN feedback = 'confirm' THEN 1 ELSE 0 END) AS confirm, "
        "SUM(CASE WHEN feedback = 'not_me' THEN 1 ELSE 0 END) AS not_me, "
        "SUM(CASE WHEN feedback = 'stop' THEN 1 ELSE 0 END) AS stop "
        "FROM transactions WHERE issuer = :issuer AND received_at >= :since "
        "AND received_at < :until AND alerts > 0 "
        + ("AND merchant_id = :merchant " if merchant_id else "")
        + f"GROUP BY merchant_id, {bucket}"
    )
    params: dict[str, Any] = {"issuer": issuer, "since": since, "until": until}
    if merchant_id:
        params["merchant"] = merchant_id
    zone = zoneinfo.ZoneInfo(timezone)
    days: dict[tuple[str, str], list[int]] = {}
    for row in conn.execute(text(sql), params):
        start = dt.datetime.fromtimestamp(int(row.q) * _BUCKET, zone)
        key = (row.merchant_id, start.date().isoformat())
        counts = days.setdefault(key, [0, 0, 0, 0])
        for i, value in enumerate((row.n, row.confirm, row.not_me, row.stop)):
            counts[i] += int(value or 0)
    return [DayRow(m, d, *c) for (m, d), c in sorted(days.items())]


def unmatched_replies(
    conn: Connection, *, since: float, limit: int, issuer: str | None = None
) -> Sequence[dict[str, Any]]:
    """Replies kept for review (matched to no alert, or free text), newest first."""
    where = "received_at >= :since AND action IN ('unmatched', 'kept')"
    params: dict[str, Any] = {"since": since, "limit": limit}
    if issuer:
        where += " AND issuer = :issuer"
        params["issuer"] = issuer
    rows = conn.execute(
        text(
            f"SELECT * FROM mo_messages WHERE {where} "
            "ORDER BY received_at DESC, id DESC LIMIT :limit"
        ),
        params,
    )
    v = vault(conn)
    return [_mo(v, r) for r in rows]


def set_opt_out(
    conn: Connection,
    *,
    issuer: str,
    msisdn: str,
    opted_out: bool,
    now: float,
    actor: str = "cli",
) -> bool:
    """Opt a number (E.164) out of, or back into, one issuer's alerts, as a STOP
    reply would, with the subscribers registered with that number; audited.
    Returns whether anything changed."""
    v = vault(conn)
    indexes = v.indexes(msisdn)
    present = (
        conn.execute(
            text(
                "SELECT 1 FROM opt_outs WHERE issuer = :i AND msisdn_index IN :ix"
            ).bindparams(_IX),
            {"i": issuer, "ix": indexes},
        ).first()
        is not None
    )
    if present == opted_out:
        return False
    if opted_out:
        conn.execute(
            text(
                "INSERT INTO opt_outs (issuer, msisdn_index, msisdn, at, via, mo_id) "
                "VALUES (:i, :ix, :m, :now, :via, NULL)"
            ),
            {
                "i": issuer,
                "ix": v.index(msisdn),
                "m": v.seal(msisdn),
                "now": now,
                "via": actor,
            },
        )
    else:
        conn.execute(
            text(
                "DELETE FROM opt_outs WHERE issuer = :i AND msisdn_index IN :ix"
            ).bindparams(_IX),
            {"i": issuer, "ix": indexes},
        )
    conn.execute(
        text(
            "UPDATE subscribers SET opted_out = :out, updated_at = :now "
            "WHERE issuer = :i AND msisdn_index IN :ix"
        ).bindparams(_IX),
        {"out": opted_out, "now": now, "i": issuer, "ix": indexes},
    )
    conn.execute(
        text(
            "INSERT INTO audit (at, issuer, actor, action, subject, detail) "
            "VALUES (:now, :i, :actor, :action, :subject, '{}')"
        ),
        {
            "now": now,
            "i": issuer,
            "actor": actor,
            "action": "opt_out" if opted_out else "opt_in",
            "subject": mask_msisdn(msisdn),
        },
    )
    return True


def alerts_to(
    conn: Connection, msisdn: str, *, limit: int = 50
) -> list[dict[str, Any]]:
    """The latest alerts sent to ``msisdn`` (E.164), newest first, with the
    transaction each belongs to; the number shown masked."""
    rows = conn.execute(
        text(
            "SELECT a.id, a.ref, a.issuer, a.audience, a.status, a.carrier, "
            "a.attempts, a.created_at, a.updated_at, a.last_error, a.feedback, "
            "t.kind, t.amount, "
            "t.currency, t.masked_pan, t.merchant_name FROM alerts a "
            "LEFT JOIN transactions t ON t.ref = a.ref "
            "WHERE a.dest_index IN :ix "
            "ORDER BY a.created_at DESC, a.id DESC LIMIT :n"
        ).bindparams(_IX),
        {"ix": vault(conn).indexes(msisdn), "n": limit},
    )
    return [{**r._mapping, "destination": mask_msisdn(msisdn)} for r in rows]
