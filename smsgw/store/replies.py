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

No number is written in clear (smsgw.store.pii): a reply's and a part's
sender are sealed, a reply carries the blind index of its sender's E.164
form (``msisdn_index``), a part's group key is a blind index too, and the
alerts sent to a number are found by their ``dest_index``. Look-ups ask for
a number's index under every live index key, so rows not yet re-indexed
after a new key are still found. Callers pass and get clear numbers.

A part whose sender does not open (sealed under a key this process does not
have, or altered) holds up neither new replies nor ``mo_expire``: it is left
out of its group (which is assembled without it at the timeout) and deleted,
with a warning naming its id and key id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import BindParameter, Connection, bindparam, insert, text
from twisted.logger import Logger

from smsgw.alerts.plan import e164
from smsgw.feedback.classify import Keywords, classify
from smsgw.feedback.match import Candidate, Decision, decide, match_reply
from smsgw.feedback.mo import MoPart, assemble, group_key
from smsgw.store import schema as S
from smsgw.store.chain import touch
from smsgw.store.pii import PiiError, Vault, key_id, vault
from smsgw.store.reply_acts import apply_decision, queue_reply, queue_webhook
from smsgw.store.rows import QueuedAlert
from smsgw.store.writer import BatchOp

__all__ = ["MoItem", "MoOutcome", "ReplyIssuer", "ReplyRules", "make_reply_ops"]

log = Logger()


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


# ``IN :ix``: a number's blind indexes under every live index key.
_IX: BindParameter[list[str]] = bindparam("ix", expanding=True)
_CANDIDATES = text(
    "SELECT id, ref, issuer, created_at, reply_code, feedback, lang FROM alerts "
    "WHERE dest_index IN :ix AND created_at >= :since "
    "AND audience = 'cardholder' ORDER BY created_at DESC, id DESC LIMIT 50"
).bindparams(_IX)
_LATEST = text(
    "SELECT issuer FROM alerts WHERE dest_index IN :ix ORDER BY created_at DESC LIMIT 1"
).bindparams(_IX)
_TXN = text(
    "SELECT ref, issuer, terminal_id, txn_id, kind, result, amount, currency, "
    "masked_pan, last4, merchant_id, merchant_name, location, local_time, rrn, "
    "stan, auth_code FROM transactions WHERE ref = :ref"
)
_OPTED_OUT = text(
    "SELECT 1 FROM opt_outs WHERE issuer = :issuer AND msisdn_index IN :ix"
).bindparams(_IX)
_HELP_RECENT = text(
    "SELECT 1 FROM mo_messages WHERE msisdn_index IN :ix AND received_at >= :since "
    "AND action = 'help_sent' LIMIT 1"
).bindparams(_IX)
_GROUP = text(
    "SELECT * FROM mo_parts WHERE group_key IN :ix ORDER BY seq, id"
).bindparams(_IX)
_GROUP_DELETE = text("DELETE FROM mo_parts WHERE group_key IN :ix").bindparams(_IX)
_STORED_GROUP = text("SELECT * FROM mo_parts WHERE group_key = :k ORDER BY id")
_PART_DELETE = text("DELETE FROM mo_parts WHERE id = :id")


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
        v = vault(conn)
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
                    "source": v.seal(part.source),
                    "group_key": v.index(key),
                    "carrier": item.carrier,
                    "received_at": item.now,
                },
            )
            rows = _group(conn, v, key)
            if len({r["seq"] for r in rows}) < part.total:
                out.append(MoOutcome(None))
                continue
            out.append(self._assembled(conn, v, rows, key, item.now))
        return out

    def expire(self, conn: Connection, now: float) -> list[MoOutcome]:
        """Assemble every group whose oldest part waited past the timeout."""
        v = vault(conn)
        since = now - self.rules.reassembly_timeout
        stored = [
            r.group_key
            for r in conn.execute(
                text(
                    "SELECT group_key FROM mo_parts GROUP BY group_key "
                    "HAVING MIN(received_at) <= :since"
                ),
                {"since": since},
            )
        ]
        out: list[MoOutcome] = []
        for index in stored:
            first = _first_readable(conn, v, index)
            if first is None:
                # Assembled with its siblings indexed under another key, or
                # none of its parts opens (those were dropped).
                continue
            key = _key(MoPart.from_row(first))
            rows = _group(conn, v, key)
            if rows:  # none: stored under an index key that is not live
                out.append(self._assembled(conn, v, rows, key, now))
        return out

    def _assembled(
        self,
        conn: Connection,
        v: Vault,
        rows: Sequence[dict[str, Any]],
        key: str,
        now: float,
    ) -> MoOutcome:
        parts = [MoPart.from_row(r) for r in rows]
        whole = assemble(parts)
        conn.execute(_GROUP_DELETE, {"ix": v.indexes(key)})
        return self.handle(
            conn,
            rows[0]["carrier"],
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
        v = vault(conn)
        msisdn = sender_e164(part.source)
        indexes = v.indexes(msisdn) if msisdn else []
        classified = classify(body, rules.keywords)
        candidates = self._candidates(conn, indexes, now) if indexes else []
        match = match_reply(classified, candidates)
        issuer = self._issuer(conn, part.destination, match.alert, indexes)
        already = help_recent = False
        if indexes and classified.kind == "stop":
            already = _exists(conn, _OPTED_OUT, issuer=issuer.name, ix=indexes)
        if indexes and classified.kind == "help":
            help_recent = rules.help_interval > 0 and _exists(
                conn, _HELP_RECENT, ix=indexes, since=now - rules.help_interval
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
                "source": v.seal(part.source[:21]),
                "destination": part.destination[:21],
                "text": body,
                "received_at": now,
                "alert_id": alert.alert_id if alert else None,
                "classification": classified.kind or "text",
                "msisdn_index": v.index_opt(msisdn),
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
        apply_decision(conn, decision, alert, txn, issuer, msisdn, mo_id, now)
        queued: tuple[QueuedAlert, ...] = ()
        if decision.reply and msisdn:
            lang = (alert.lang if alert else None) or classified.lang
            queued = (
                queue_reply(
                    self.rules, conn, decision.reply, lang, issuer, txn, msisdn, now
                ),
            )
        webhooks = 0
        if decision.webhook and txn is not None and issuer.webhook_url:
            queue_webhook(
                conn, issuer, txn, classified, match.how, body, msisdn, mo_id, now
            )
            webhooks = 1
        return MoOutcome(mo_id, queued, webhooks, classified.kind or "text")

    def _candidates(
        self, conn: Connection, indexes: list[str], now: float
    ) -> list[Candidate]:
        """The cardholder alerts sent to the number (``indexes``: its blind
        index under every live key) within the reply window, newest first."""
        rows = conn.execute(
            _CANDIDATES, {"ix": indexes, "since": now - self.rules.reply_window}
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
        indexes: list[str],
    ) -> ReplyIssuer:
        """By the number the reply was sent to, else the alert's, else the
        last alert to that number (``indexes``: its blind indexes), else the
        first profile."""
        found = self.by_short_code.get(short_code)
        if found is None and alert is not None:
            found = self.issuers.get(alert.issuer)
        if found is None and indexes:
            row = conn.execute(_LATEST, {"ix": indexes}).first()
            found = self.issuers.get(row.issuer) if row else None
        return found or self.rules.issuers[0]


def _key(part: MoPart) -> str:
    """The part's group key in clear (stored as its blind index)."""
    return "|".join(str(v) for v in group_key(part))


def _opened(v: Vault, row: Any) -> dict[str, Any]:
    """A ``mo_parts`` row as a mapping, its sender opened (PiiError when it
    does not open)."""
    return {**row._mapping, "source": v.open(row.source)}


def _group(conn: Connection, v: Vault, key: str) -> list[dict[str, Any]]:
    """The parts received of the group ``key`` (indexed under any live key),
    their senders opened.

    A part whose sender does not open (a key this process does not have, or
    altered) is left out with a warning: the group waits for it no longer
    than the reassembly timeout, and is then assembled without it (and the
    part deleted with its siblings).
    """
    out = []
    for row in conn.execute(_GROUP, {"ix": v.indexes(key)}):
        try:
            out.append(_opened(v, row))
        except PiiError:
            log.warn(
                "reply part {part_id} left out: its sender does not open "
                "(key {key_id})",
                part_id=row.id,
                key_id=key_id(row.source),
            )
    return out


def _first_readable(conn: Connection, v: Vault, index: str) -> dict[str, Any] | None:
    """The first part stored under the group index ``index`` whose sender
    opens; the parts before it that do not open are deleted (with a warning),
    so that one of them never holds up `expire` again."""
    for row in conn.execute(_STORED_GROUP, {"k": index}).all():
        try:
            return _opened(v, row)
        except PiiError:
            conn.execute(_PART_DELETE, {"id": row.id})
            log.warn(
                "reply part {part_id} dropped: its sender does not open (key {key_id})",
                part_id=row.id,
                key_id=key_id(row.source),
            )
    return None


def _exists(conn: Connection, sql: Any, **params: Any) -> bool:
    return conn.execute(sql, params).first() is not None


def _txn(conn: Connection, ref: str) -> Any:
    return conn.execute(_TXN, {"ref": ref}).first()


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
