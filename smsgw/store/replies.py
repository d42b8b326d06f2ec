"""Cardholders' replies in the store: kept, reassembled, matched and acted on.

One batch operation (``mo``) takes each received part. A part of a longer
reply waits in ``mo_parts`` until its siblings arrive (from any bind); a
whole reply is then, in the same transaction: recorded in ``mo_messages``,
classified (smsgw.feedback.classify), matched to the alert it answers and
acted on (smsgw.feedback.match): the alert and its transaction get the
feedback, a "not me" disputes the transaction and queues the issuer's fraud
webhook, a STOP opts the number out, and the texts sent back (not-me
acknowledgement, STOP confirmation, help) are queued as alerts claimed by
this node. The SMSC gets its deliver_sm_resp only after this commit, so a
crash never loses a reply nor leaves one half acted on.

``mo_expire`` assembles what arrived of replies whose missing parts did not
come within the reassembly timeout (kept as they are, marked incomplete).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, insert, text

from smsgw.alerts.money import format_amount
from smsgw.alerts.plan import e164
from smsgw.codec.text import measure
from smsgw.feedback.classify import Classified, Keywords, classify
from smsgw.feedback.match import Candidate, Decision, decide, match_reply
from smsgw.feedback.mo import MoPart, assemble, group_key
from smsgw.intake.iso4217 import MINOR_UNITS
from smsgw.store import schema as S
from smsgw.store.accept import new_ref
from smsgw.store.chain import touch
from smsgw.store.feedback_report import mask_msisdn
from smsgw.store.rows import QueuedAlert
from smsgw.store.writer import BatchOp

__all__ = ["MoItem", "MoOutcome", "ReplyIssuer", "ReplyRules", "make_reply_ops"]


class MoItem(NamedTuple):
    """One received MO part (a whole reply is one part of one)."""

    carrier: str
    part: MoPart
    now: float


class MoOutcome(NamedTuple):
    """What a part led to: the reply's id once whole, texts to send, webhooks."""

    mo_id: int | None  # None: a part waiting for its siblings
    queued: tuple[QueuedAlert, ...] = ()
    webhooks: int = 0
    classification: str | None = None  # confirm / not_me / stop / help / text


@dataclass(frozen=True, slots=True)
class ReplyIssuer:
    """What the store needs of an issuer profile to answer a reply (no secrets)."""

    name: str
    signature: Mapping[str, str]
    default_lang: str
    source_addr: str | None
    webhook_url: str | None


@dataclass(frozen=True, slots=True)
class ReplyRules:
    """The feedback configuration as the store process uses it (picklable)."""

    keywords: Keywords
    reply_window: float
    help_interval: float
    reassembly_timeout: float
    replies: Mapping[str, Mapping[str, str]]
    issuers: Sequence[ReplyIssuer]
    node: str
    lease: float
    ttl: float


_CANDIDATES = text(
    "SELECT id, ref, issuer, created_at, reply_code, feedback, lang FROM alerts "
    "WHERE destination = :msisdn AND created_at >= :since "
    "AND audience = 'cardholder' ORDER BY created_at DESC, id DESC LIMIT 50"
)
_LATEST = text(
    "SELECT issuer FROM alerts WHERE destination = :msisdn "
    "ORDER BY created_at DESC LIMIT 1"
)
_TXN = text(
    "SELECT ref, issuer, terminal_id, txn_id, kind, result, amount, currency, "
    "masked_pan, last4, merchant_id, merchant_name, location, local_time, rrn, "
    "stan, auth_code FROM transactions WHERE ref = :ref"
)
_OPTED_OUT = text("SELECT 1 FROM opt_outs WHERE issuer = :issuer AND msisdn = :msisdn")
_HELP_RECENT = text(
    "SELECT 1 FROM mo_messages WHERE msisdn = :msisdn AND received_at >= :since "
    "AND action = 'help_sent' LIMIT 1"
)


def sender_e164(source: str) -> str | None:
    """The replying number in E.164 (SMSCs send it with or without '+')."""
    digits = source.strip()
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    elif not digits.startswith("+"):
        digits = "+" + digits
    return e164(digits) if digits[1:].isdigit() else None


class _MoRun:
    """The ``mo`` operation's body (picklable for the store process)."""

    def __init__(self, rules: ReplyRules) -> None:
        self.rules = rules
        self.issuers = {i.name: i for i in rules.issuers}
        self.by_short_code = {i.source_addr: i for i in rules.issuers if i.source_addr}

    def __call__(self, conn: Connection, items: Sequence[MoItem]) -> list[MoOutcome]:
        out: list[MoOutcome] = []
        for item in items:
            part = item.part
            if part.total <= 1:
                whole = assemble([part])
                out.append(
                    self.handle(conn, item.carrier, part, whole.text, 1, True, item.now)
                )
                continue
            key = _key(part)
            conn.execute(
                insert(S.mo_parts),
                {
                    **part.to_row(),
                    "group_key": key,
                    "carrier": item.carrier,
                    "received_at": item.now,
                },
            )
            rows = _group(conn, key)
            if len({r.seq for r in rows}) < part.total:
                out.append(MoOutcome(None))
                continue
            out.append(self._assembled(conn, rows, key, item.now))
        return out

    def expire(self, conn: Connection, now: float) -> list[MoOutcome]:
        """Assemble every group whose oldest part waited past the timeout."""
        since = now - self.rules.reassembly_timeout
        keys = [
            r.group_key
            for r in conn.execute(
                text(
                    "SELECT group_key FROM mo_parts GROUP BY group_key "
                    "HAVING MIN(received_at) <= :since"
                ),
                {"since": since},
            )
        ]
        return [self._assembled(conn, _group(conn, key), key, now) for key in keys]

    def _assembled(
        self, conn: Connection, rows: Sequence[Any], key: str, now: float
    ) -> MoOutcome:
        parts = [MoPart.from_row(dict(r._mapping)) for r in rows]
        whole = assemble(parts)
        conn.execute(text("DELETE FROM mo_parts WHERE group_key = :k"), {"k": key})
        return self.handle(
            conn,
            rows[0].carrier,
            parts[0],
            whole.text,
            whole.parts,
            whole.complete,
            now,
        )

    # -- one whole reply -------------------------------------------------

    def handle(
        self,
        conn: Connection,
        carrier: str,
        part: MoPart,
        body: str,
        parts: int,
        complete: bool,
        now: float,
    ) -> MoOutcome:
        rules = self.rules
        msisdn = sender_e164(part.source)
        classified = classify(body, rules.keywords)
        candidates = self._candidates(conn, msisdn, now) if msisdn else []
        match = match_reply(classified, candidates)
        issuer = self._issuer(conn, part.destination, match.alert, msisdn)
        already = help_recent = False
        if msisdn and classified.kind == "stop":
            already = _exists(conn, _OPTED_OUT, issuer=issuer.name, msisdn=msisdn)
        if msisdn and classified.kind == "help":
            help_recent = rules.help_interval > 0 and _exists(
                conn, _HELP_RECENT, msisdn=msisdn, since=now - rules.help_interval
            )
        decision = decide(
            classified,
            match,
            already_opted_out=already,
            help_recent=help_recent,
            has_webhook=issuer.webhook_url is not None,
        )
        if msisdn is None and (decision.opt_out or decision.reply):
            # An alphanumeric sender cannot be answered nor opted out.
            decision = Decision("unanswerable", None, False, False, False, None)
        alert = match.alert
        result = conn.execute(
            insert(S.mo_messages).returning(S.mo_messages.c.id),
            {
                "issuer": issuer.name,
                "carrier": carrier,
                "source": part.source[:21],
                "destination": part.destination[:21],
                "text": body,
                "received_at": now,
                "alert_id": alert.alert_id if alert else None,
                "classification": classified.kind or "text",
                "msisdn": msisdn,
                "normalized": classified.normalized,
                "ref": alert.ref if alert else None,
                "matched_by": match.how,
                "action": decision.action,
                "parts": parts,
                "complete": complete,
            },
        )
        mo_id = int(result.scalar_one())
        touch(conn, "mo", [mo_id])
        txn = _txn(conn, alert.ref) if alert else None
        self._apply(conn, decision, alert, txn, issuer, msisdn, mo_id, now)
        queued: tuple[QueuedAlert, ...] = ()
        if decision.reply and msisdn:
            lang = (alert.lang if alert else None) or classified.lang
            queued = (
                self._reply(conn, decision.reply, lang, issuer, txn, msisdn, now),
            )
        webhooks = 0
        if decision.webhook and txn is not None and issuer.webhook_url:
            _queue_webhook(
                conn, issuer, txn, classified, match.how, body, msisdn, mo_id, now
            )
            webhooks = 1
        return MoOutcome(mo_id, queued, webhooks, classified.kind or "text")

    def _candidates(self, conn: Connection, msisdn: str, now: float) -> list[Candidate]:
        rows = conn.execute(
            _CANDIDATES, {"msisdn": msisdn, "since": now - self.rules.reply_window}
        )
        return [
            Candidate(
                r.id, r.ref, r.issuer, r.created_at, r.reply_code, r.feedback, r.lang
            )
            for r in rows
        ]

    def _issuer(
        self,
        conn: Connection,
        short_code: str,
        alert: Candidate | None,
        msisdn: str | None,
    ) -> ReplyIssuer:
        """By the number the reply was sent to, else the alert's, else the
        last alert to that number, else the first profile."""
        found = self.by_short_code.get(short_code)
        if found is None and alert is not None:
            found = self.issuers.get(alert.issuer)
        if found is None and msisdn:
            row = conn.execute(_LATEST, {"msisdn": msisdn}).first()
            found = self.issuers.get(row.issuer) if row else None
        return found or self.rules.issuers[0]

    def _apply(
        self,
        conn: Connection,
        decision: Decision,
        alert: Candidate | None,
        txn: Any,
        issuer: ReplyIssuer,
        msisdn: str | None,
        mo_id: int,
        now: float,
    ) -> None:
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
            _audit(conn, now, issuer.name, "dispute", alert.ref, f"reply {mo_id}")
        if decision.opt_out and msisdn and decision.action == "opted_out":
            conn.execute(
                insert(S.opt_outs),
                {
                    "issuer": issuer.name,
                    "msisdn": msisdn,
                    "at": now,
                    "via": "sms",
                    "mo_id": mo_id,
                },
            )
            conn.execute(
                text(
                    "UPDATE subscribers SET opted_out = :t, updated_at = :now "
                    "WHERE issuer = :issuer AND msisdn = :msisdn"
                ),
                {"t": True, "now": now, "issuer": issuer.name, "msisdn": msisdn},
            )
            subject = mask_msisdn(msisdn) or ""
            _audit(conn, now, issuer.name, "opt_out", subject, f"reply {mo_id}")

    def _reply(
        self,
        conn: Connection,
        kind: str,
        lang: str | None,
        issuer: ReplyIssuer,
        txn: Any,
        msisdn: str,
        now: float,
    ) -> QueuedAlert:
        rules = self.rules
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
        conn.execute(
            insert(S.alerts),
            {
                "id": alert.id,
                "ref": txn.ref if txn is not None else None,
                "issuer": issuer.name,
                "audience": "reply",
                "destination": msisdn,
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


def _key(part: MoPart) -> str:
    return "|".join(str(v) for v in group_key(part))


def _group(conn: Connection, key: str) -> list[Any]:
    return list(
        conn.execute(
            text("SELECT * FROM mo_parts WHERE group_key = :k ORDER BY seq, id"),
            {"k": key},
        )
    )


def _exists(conn: Connection, sql: Any, **params: Any) -> bool:
    return conn.execute(sql, params).first() is not None


def _txn(conn: Connection, ref: str) -> Any:
    return conn.execute(_TXN, {"ref": ref}).first()


def _audit(
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


def _queue_webhook(
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
    card only masked), the reply, and our reference."""
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
            "body": orjson.dumps(event, option=orjson.OPT_SORT_KEYS),
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_at": now,
            "claimed_by": None,
            "claimed_until": None,
            "last_error": None,
        },
    )


class _ExpireRun:
    def __init__(self, run: _MoRun) -> None:
        self.run = run

    def __call__(
        self, conn: Connection, items: Sequence[float]
    ) -> list[list[MoOutcome]]:
        return [self.run.expire(conn, now) for now in items]


def make_reply_ops(
    rules: ReplyRules,
) -> tuple[BatchOp[MoItem, MoOutcome], BatchOp[float, list[MoOutcome]]]:
    """The ``mo`` operation (one item per received part) and ``mo_expire``
    (one item: now; assembles the replies whose parts timed out)."""
    run = _MoRun(rules)
    return BatchOp("mo", run), BatchOp("mo_expire", _ExpireRun(run))
