"""What a reply makes the store do: feedback on the alert and transaction, a
dispute, an opt-out, the text sent back, the fraud webhook, the audit trail.

Part of the ``mo`` operation (smsgw.store.replies), in its transaction.
Numbers come in clear and are written sealed, with their blind index
(smsgw.store.pii): an opt-out's number, a text's destination; a webhook's
body (it names the sender) is sealed whole. Audit rows show numbers masked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, bindparam, insert, text

from smsgw.alerts.money import format_amount
from smsgw.codec.text import measure
from smsgw.feedback.classify import Classified
from smsgw.feedback.match import Candidate, Decision
from smsgw.intake.iso4217 import MINOR_UNITS
from smsgw.store import schema as S
from smsgw.store.accept import new_ref
from smsgw.store.chain import touch
from smsgw.store.feedback_report import mask_msisdn
from smsgw.store.pii import WEBHOOK, vault
from smsgw.store.rows import QueuedAlert

if TYPE_CHECKING:
    from smsgw.store.replies import ReplyIssuer, ReplyRules

__all__ = ["apply_decision", "audit", "queue_reply", "queue_webhook"]

_OPT_OUT_SUBSCRIBERS = text(
    "UPDATE subscribers SET opted_out = :t, updated_at = :now "
    "WHERE issuer = :issuer AND msisdn_index IN :ix"
).bindparams(bindparam("ix", expanding=True))


def apply_decision(
    conn: Connection,
    decision: Decision,
    alert: Candidate | None,
    txn: Any,
    issuer: ReplyIssuer,
    msisdn: str | None,
    mo_id: int,
    now: float,
) -> None:
    """Record the reply's effect: feedback, dispute, opt-out (with audit rows)."""
    if decision.feedback and alert is not None:
        touch(conn, "alert", [alert.alert_id])
        touch(conn, "txn", [alert.ref])
        conn.execute(
            text("UPDATE alerts SET feedback = :f WHERE id = :id"),
            {"f": decision.feedback, "id": alert.alert_id},
        )
        conn.execute(
            text(
                "UPDATE transactions SET feedback = :f, feedback_at = :now, "
                "disputed_at = CASE WHEN :dispute AND disputed_at IS NULL "
                "THEN :now ELSE disputed_at END WHERE ref = :ref"
            ),
            {
                "f": decision.feedback,
                "now": now,
                "dispute": decision.dispute,
                "ref": alert.ref,
            },
        )
    if decision.dispute and alert is not None:
        audit(conn, now, issuer.name, "dispute", alert.ref, f"reply {mo_id}")
    if decision.opt_out and msisdn and decision.action == "opted_out":
        v = vault(conn)
        conn.execute(
            insert(S.opt_outs),
            {
                "issuer": issuer.name,
                "msisdn_index": v.index(msisdn),
                "msisdn": v.seal(msisdn),
                "at": now,
                "via": "sms",
                "mo_id": mo_id,
            },
        )
        conn.execute(
            _OPT_OUT_SUBSCRIBERS,
            {"t": True, "now": now, "issuer": issuer.name, "ix": v.indexes(msisdn)},
        )
        subject = mask_msisdn(msisdn) or ""
        audit(conn, now, issuer.name, "opt_out", subject, f"reply {mo_id}")


def queue_reply(
    rules: ReplyRules,
    conn: Connection,
    kind: str,
    lang: str | None,
    issuer: ReplyIssuer,
    txn: Any,
    msisdn: str,
    now: float,
) -> QueuedAlert:
    """Queue the text ``kind`` (not_me / stop / help) to ``msisdn``, claimed by
    this node, in the reply's language or the issuer's default."""
    if lang is None or lang not in rules.replies:
        lang = issuer.default_lang
    values = {
        "signature": issuer.signature.get(lang, ""),
        "last4": "",
        "amount": "",
        "merchant": "",
    }
    if txn is not None:
        exponent = MINOR_UNITS.get(txn.currency, 2)
        values.update(
            last4=txn.last4,
            amount=format_amount(txn.amount, txn.currency, exponent, lang),
            merchant=txn.merchant_name or "",
        )
    body = rules.replies[lang][kind].format_map(values)
    size = measure(body)
    alert = QueuedAlert(
        id=f"{new_ref(now)}.r",
        ref=txn.ref if txn is not None else "",
        issuer=issuer.name,
        destination=msisdn,
        text=body,
        priority=1,
        source_addr=issuer.source_addr,
        not_before=now,
        expires_at=now + rules.ttl,
        attempts=0,
    )
    touch(conn, "alert", [alert.id])
    v = vault(conn)
    conn.execute(
        insert(S.alerts),
        {
            "id": alert.id,
            "ref": txn.ref if txn is not None else None,
            "issuer": issuer.name,
            "audience": "reply",
            "destination": v.seal(msisdn),
            "dest_index": v.index(msisdn),
            "lang": lang,
            "text": body,
            "encoding": size.encoding,
            "parts": size.parts,
            "priority": 1,
            "source_addr": issuer.source_addr,
            "status": S.QUEUED,
            "carrier": None,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
            "not_before": now,
            "expires_at": alert.expires_at,
            "claimed_by": rules.node,
            "claimed_until": now + rules.lease,
            "last_error": None,
            "reply_code": None,
            "feedback": None,
        },
    )
    return alert


def audit(
    conn: Connection, now: float, issuer: str, action: str, subject: str, detail: str
) -> None:
    conn.execute(
        insert(S.audit),
        {
            "at": now,
            "issuer": issuer,
            "actor": "cardholder",
            "action": action,
            "subject": subject,
            "detail": detail,
        },
    )


def queue_webhook(
    conn: Connection,
    issuer: ReplyIssuer,
    txn: Any,
    classified: Classified,
    matched_by: str,
    body: str,
    msisdn: str | None,
    mo_id: int,
    now: float,
) -> None:
    """The issuer's fraud event: what it needs to find the transaction (the
    card only masked), the reply (with the sender's number), and our
    reference; stored sealed, opened when it is claimed for sending."""
    event = {
        "event": "not_me",
        "issuer": issuer.name,
        "ref": txn.ref,
        "terminal_id": txn.terminal_id,
        "txn_id": txn.txn_id,
        "kind": txn.kind,
        "result": txn.result,
        "amount": txn.amount,
        "currency": txn.currency,
        "masked_pan": txn.masked_pan,
        "last4": txn.last4,
        "merchant_id": txn.merchant_id,
        "merchant_name": txn.merchant_name,
        "location": txn.location,
        "local_time": txn.local_time,
        "rrn": txn.rrn,
        "stan": txn.stan,
        "auth_code": txn.auth_code,
        "reply": {
            "id": mo_id,
            "from": msisdn,
            "text": body,
            "received_at": now,
            "matched_by": matched_by,
            "code": classified.code,
        },
    }
    conn.execute(
        insert(S.webhooks),
        {
            "issuer": issuer.name,
            "event": "not_me",
            "ref": txn.ref,
            "mo_id": mo_id,
            "url": issuer.webhook_url,
            "body": vault(conn).seal_bytes(
                orjson.dumps(event, option=orjson.OPT_SORT_KEYS), WEBHOOK
            ),
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_at": now,
            "claimed_by": None,
            "claimed_until": None,
            "last_error": None,
        },
    )
