"""Steps 9 and 10 of intake-v1 for a whole batch, in one database transaction.

For each valid transaction of the batch: is its (terminal, txn_id) known?
Same content digest: ``duplicate`` with the original ref and alert count;
different: ``conflict``. New ones get their subscriber, merchant and original
(for reversals and refunds) looked up with one query each for the whole batch,
their alerts planned and rendered, and are inserted with their alerts
(claimed by this node for dispatch). Everything runs on the writer thread.

A registry row whose number does not open (a key this process does not have,
or altered) does not fail the batch: the subscriber is used without a number
(the transaction's own number, if any, is alerted; the card's preferences
hold), the merchant without numbers to notify; a warning names the key id.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection
from twisted.logger import Logger

from smsgw.alerts.plan import (
    AlertPlan,
    Merchant,
    Subscriber,
    cardholder_number,
    plan_alerts,
)
from smsgw.intake.decide import AcceptResult
from smsgw.intake.validate import Txn
from smsgw.service.config_alerts import IssuerConfig
from smsgw.store import schema as S
from smsgw.store.chain import touch
from smsgw.store.pii import NOTIFY, PiiError, Vault, key_id, vault
from smsgw.store.query import driver_sql, insert_rows, select_pairs
from smsgw.store.rows import QueuedAlert
from smsgw.store.writer import BatchOp

__all__ = ["AcceptItem", "Accepted", "make_accept_op", "new_ref"]

log = Logger()

# Seeded from os.urandom: refs need uniqueness, not secrecy (~0.2 µs a call
# instead of ~5 µs for secrets.token_hex).
_random = random.Random()


class AcceptItem(NamedTuple):
    """One valid transaction to commit.

    ``issuer``: the profile, or its name (resolved by the operation; the
    name is what the gateway sends to the store process).
    """

    terminal_id: str
    may_supply_msisdn: bool
    issuer: IssuerConfig | str
    txn: Txn
    now: float


class Accepted(NamedTuple):
    """The answer for one item, and the alerts it queued (for dispatch)."""

    result: AcceptResult
    queued: tuple[QueuedAlert, ...] = ()


def _name(item: AcceptItem) -> str:
    issuer = item.issuer
    return issuer if isinstance(issuer, str) else issuer.name


def new_ref(now: float) -> str:
    """A gateway reference: milliseconds in hex then 48 random bits (23 chars).

    Sortable by time, unique across processes without coordination (a clash
    needs two of ~2^24 transactions in one millisecond).
    """
    return f"{int(now * 1000):011x}{_random.getrandbits(48):012x}"


def _time(value: str | None) -> dt.time | None:
    return dt.time.fromisoformat(value) if value else None


def subscriber_from_row(row: Any, v: Vault) -> Subscriber:
    """A registry row as the planner's Subscriber (its number opened;
    PiiError when it does not open)."""
    return _subscriber_with(row, v.open(row.msisdn))


def _subscriber_with(row: Any, msisdn: str) -> Subscriber:
    return Subscriber(
        issuer=row.issuer,
        msisdn=msisdn,
        lang=row.lang,
        min_amount=Decimal(row.min_amount) if row.min_amount else None,
        kinds=frozenset(row.kinds.split()) if row.kinds else None,
        opted_out=bool(row.opted_out),
        quiet_start=_time(row.quiet_start),
        quiet_end=_time(row.quiet_end),
        timezone=row.timezone,
    )


def merchant_from_row(row: Any, v: Vault) -> Merchant:
    """A registry row as the planner's Merchant (its numbers opened;
    PiiError when they do not open)."""
    notify = tuple(v.open(row.notify, NOTIFY).split()) if row.notify else ()
    return _merchant_with(row, notify)


def _merchant_with(row: Any, notify: tuple[str, ...]) -> Merchant:
    return Merchant(
        issuer=row.issuer,
        merchant_id=row.merchant_id,
        name=row.name,
        notify=notify,
        lang=row.lang,
        templates=orjson.loads(row.templates) if row.templates else None,
    )


def _subscriber_for_accept(row: Any, v: Vault) -> Subscriber:
    """`subscriber_from_row`, or, when the number does not open (a key this
    process does not have, or altered), the subscriber without a number: the
    card's preferences (opt-out, kinds, minimum amount, quiet hours) still
    hold, the alert goes to the number the transaction supplied, if any."""
    try:
        return subscriber_from_row(row, v)
    except PiiError:
        log.warn(
            "a subscriber of issuer {issuer}: the number does not open "
            "(key {key_id}); used without a number",
            issuer=row.issuer,
            key_id=key_id(row.msisdn),
        )
        return _subscriber_with(row, "")


def _merchant_for_accept(row: Any, v: Vault) -> Merchant:
    """`merchant_from_row`, or, when its numbers do not open, the merchant
    with no number to notify (its name and templates still used)."""
    try:
        return merchant_from_row(row, v)
    except PiiError:
        log.warn(
            "merchant {merchant_id} of issuer {issuer}: the numbers to notify "
            "do not open (key {key_id}); not notified",
            merchant_id=row.merchant_id,
            issuer=row.issuer,
            key_id=key_id(row.notify),
        )
        return _merchant_with(row, ())


def _columns(table: Any, first: str, second: str) -> str:
    """Every column of ``table``, the look-up pair first (for select_pairs)."""
    rest = [c.name for c in table.columns if c.name not in (first, second)]
    return ", ".join([first, second, *rest])


_SUBSCRIBERS_BY = {
    key: f"SELECT {_columns(S.subscribers, 'issuer', key)} FROM subscribers "
    "WHERE {where}"
    for key in ("card_token", "card_hash")
}
_MERCHANTS = (
    f"SELECT {_columns(S.merchants, 'issuer', 'merchant_id')} FROM merchants "
    "WHERE {where}"
)
_KNOWN = (
    "SELECT terminal_id, txn_id, ref, content_digest, alerts FROM transactions "
    "WHERE {where}"
)


def _subscribers(
    conn: Connection, items: Iterable[AcceptItem]
) -> tuple[dict[tuple[str, str], Subscriber], dict[tuple[str, str], Subscriber]]:
    found: dict[str, dict[tuple[str, str], Subscriber]] = {}
    v = vault(conn)
    for key in ("card_token", "card_hash"):
        pairs = {(_name(i), getattr(i.txn, key)) for i in items if getattr(i.txn, key)}
        if key == "card_hash":
            # cards enrolled before a card-hash key rotation
            pairs.update((_name(i), h) for i in items for h in i.txn.old_card_hashes)
        found[key] = {
            (row[0], row[1]): _subscriber_for_accept(row, v)
            for row in select_pairs(conn, _SUBSCRIBERS_BY[key], "issuer", key, pairs)
        }
    return found["card_token"], found["card_hash"]


def _merchants(
    conn: Connection, items: Iterable[AcceptItem]
) -> dict[tuple[str, str], Merchant]:
    keys = {(_name(i), i.txn.merchant_id) for i in items}
    v = vault(conn)
    return {
        (row[0], row[1]): _merchant_for_accept(row, v)
        for row in select_pairs(conn, _MERCHANTS, "issuer", "merchant_id", keys)
    }


_OPT_OUTS = "SELECT issuer, msisdn_index FROM opt_outs WHERE {where}"
_CODES_IN_USE = (
    "SELECT reply_code FROM alerts WHERE dest_index IN ({indexes}) "
    "AND created_at >= ? AND reply_code IS NOT NULL AND feedback IS NULL"
)


def _subscriber(
    issuer: str,
    txn: Txn,
    by_token: Mapping[tuple[str, str], Subscriber],
    by_hash: Mapping[tuple[str, str], Subscriber],
) -> Subscriber | None:
    """The card's subscriber: by card token first, then by card hash."""
    sub = by_token.get((issuer, txn.card_token)) if txn.card_token else None
    if sub is None and txn.card_hash:
        sub = by_hash.get((issuer, txn.card_hash))
        for old in txn.old_card_hashes:
            if sub is not None:
                break
            sub = by_hash.get((issuer, old))
    return sub


def _opted_out(
    conn: Connection,
    items: Iterable[AcceptItem],
    by_token: Mapping[tuple[str, str], Subscriber],
    by_hash: Mapping[tuple[str, str], Subscriber],
) -> set[tuple[str, str]]:
    """(issuer, number) of the batch's cardholder numbers that replied STOP
    (looked up by their blind index under every live index key)."""
    v = vault(conn)
    numbers: dict[tuple[str, str], str] = {}
    for i in items:
        issuer = _name(i)
        sub = _subscriber(issuer, i.txn, by_token, by_hash)
        found = cardholder_number(i.txn, i.may_supply_msisdn, sub)
        if found:
            for index in v.indexes(found):
                numbers[(issuer, index)] = found
    return {
        (row[0], numbers[(row[0], row[1])])
        for row in select_pairs(conn, _OPT_OUTS, "issuer", "msisdn_index", numbers)
    }


class _OptedOut:
    def __init__(self, opted: set[tuple[str, str]], issuer: str) -> None:
        self.opted = opted
        self.issuer = issuer

    def __call__(self, number: str) -> bool:
        return (self.issuer, number) in self.opted


class _ReplyCodes:
    """Reply codes for one batch: per number, the smallest not shown by an
    alert still awaiting a reply from it within the window."""

    def __init__(self, conn: Connection, since: float) -> None:
        self.conn = conn
        self.since = since
        self.used: dict[str, set[str]] = {}
        self.vault = vault(conn)

    def __call__(self, destination: str) -> str:
        used = self.used.get(destination)
        if used is None:
            indexes = self.vault.indexes(destination)
            sql = driver_sql(
                self.conn, _CODES_IN_USE.format(indexes=", ".join("?" * len(indexes)))
            )
            cursor = self.conn.connection.cursor()
            try:
                cursor.execute(sql, (*indexes, self.since))
                used = self.used[destination] = {row[0] for row in cursor.fetchall()}
            finally:
                cursor.close()
        n = 1
        while str(n) in used:
            n += 1
        used.add(str(n))
        return str(n)


def _same_content(stored: bytes, txn: Txn) -> bool:
    """Whether the stored content digest is ``txn``'s, under any live
    card-hash key (a digest without its key id, from before key ids were
    stored, is compared with the bare digests)."""
    if stored == txn.content_digest or stored in txn.old_digests:
        return True
    if len(stored) == 32:
        return any(
            d.partition(b":")[2] == stored
            for d in (txn.content_digest, *txn.old_digests)
        )
    return False


def _known(conn: Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    return {
        (row[0], row[1]): row
        for row in select_pairs(conn, _KNOWN, "terminal_id", "txn_id", keys)
    }


class _AcceptRun:
    """The accept operation's body; a plain object so that it can be pickled
    to the store process."""

    def __init__(
        self,
        node: str,
        lease: float,
        ttl: float,
        ref_factory: Callable[[float], str],
        issuers: Sequence[IssuerConfig],
        reply_window: float = 86400.0,
    ) -> None:
        self.reply_window = reply_window
        self.node = node
        self.lease = lease
        self.ttl = ttl
        self.ref_factory = ref_factory
        self.issuers = {i.name: i for i in issuers}

    def _resolved(self, items: Sequence[AcceptItem]) -> list[AcceptItem]:
        return [
            i
            if isinstance(i.issuer, IssuerConfig)
            else i._replace(issuer=self.issuers[i.issuer])
            for i in items
        ]

    def __call__(self, conn: Connection, items: Sequence[AcceptItem]) -> list[Accepted]:
        items = self._resolved(items)
        known = _known(conn, {(i.terminal_id, i.txn.txn_id) for i in items})
        fresh = [i for i in items if (i.terminal_id, i.txn.txn_id) not in known]
        by_token, by_hash = _subscribers(conn, fresh) if fresh else ({}, {})
        merchants = _merchants(conn, fresh) if fresh else {}
        originals = _known(
            conn,
            {(i.terminal_id, i.txn.orig_txn_id) for i in fresh if i.txn.orig_txn_id},
        )
        opted = _opted_out(conn, fresh, by_token, by_hash) if fresh else set()
        codes = _ReplyCodes(conn, (items[0].now if items else 0.0) - self.reply_window)
        v = vault(conn)
        txn_rows: list[dict[str, Any]] = []
        alert_rows: list[dict[str, Any]] = []
        out: list[Accepted] = []
        # Same key twice in one batch: the second is judged against the first.
        seen: dict[tuple[str, str], tuple[bytes, AcceptResult]] = {
            k: (r.content_digest, AcceptResult("duplicate", r.ref, r.alerts))
            for k, r in known.items()
        }
        for item in items:
            txn = item.txn
            key = (item.terminal_id, txn.txn_id)
            if key in seen:
                digest, first = seen[key]
                if _same_content(bytes(digest), txn):
                    out.append(
                        Accepted(AcceptResult("duplicate", first.ref, first.alerts))
                    )
                else:
                    out.append(
                        Accepted(AcceptResult("conflict", first.ref, first.alerts))
                    )
                continue
            issuer = _name(item)
            sub = _subscriber(issuer, txn, by_token, by_hash)
            plans = plan_alerts(
                txn,
                terminal_id=item.terminal_id,
                may_supply_msisdn=item.may_supply_msisdn,
                issuer=item.issuer,  # type: ignore[arg-type]  # resolved above
                subscriber=sub,
                merchant=merchants.get((issuer, txn.merchant_id)),
                now=item.now,
                opted_out=_OptedOut(opted, issuer) if opted else None,
                reply_codes=codes,
            )
            ref = self.ref_factory(item.now)
            orig = originals.get((item.terminal_id, txn.orig_txn_id or ""))
            txn_rows.append(
                _txn_row(item, ref, len(plans), orig.ref if orig else None, v)
            )
            queued = tuple(
                _alert(
                    ref, n, plan, item, self.node, self.lease, self.ttl, alert_rows, v
                )
                for n, plan in enumerate(plans, 1)
            )
            result = AcceptResult("accepted", ref, len(plans))
            seen[key] = (txn.content_digest, result)
            out.append(Accepted(result, queued))
        insert_rows(conn, S.transactions, txn_rows)
        insert_rows(conn, S.alerts, alert_rows)
        touch(conn, "txn", [r["ref"] for r in txn_rows])
        touch(conn, "alert", [r["id"] for r in alert_rows])
        return out


def make_accept_op(
    *,
    node: str,
    lease: float,
    ttl: float,
    ref_factory: Callable[[float], str] = new_ref,
    issuers: Sequence[IssuerConfig] = (),
    reply_window: float = 86400.0,
) -> BatchOp[AcceptItem, Accepted]:
    """The batch operation that commits valid transactions with their alerts.

    ``issuers``: the profiles items may name instead of carrying;
    ``reply_window``: how long a reply code stays taken.
    """
    return BatchOp(
        "accept",
        _AcceptRun(node, lease, ttl, ref_factory, issuers, reply_window),
        urgent=True,
    )


def _txn_row(
    item: AcceptItem, ref: str, alerts: int, orig_ref: str | None, v: Vault
) -> dict[str, Any]:
    t = item.txn
    return {
        "ref": ref,
        "issuer": _name(item),
        "terminal_id": item.terminal_id,
        "txn_id": t.txn_id,
        "content_digest": t.content_digest,
        "kind": t.kind,
        "result": t.result,
        "amount": t.amount,
        "amount_minor": t.amount_minor,
        "currency": t.currency,
        "masked_pan": t.masked_pan,
        "card_hash": t.card_hash,
        "card_token": t.card_token,
        "last4": t.last4,
        "merchant_id": t.merchant_id,
        "merchant_name": t.merchant_name,
        "location": t.location,
        "local_time": t.time,
        "balance": t.balance,
        "lang": t.lang,
        "msisdn": v.seal(t.msisdn) if t.msisdn else None,
        "rrn": t.rrn,
        "stan": t.stan,
        "auth_code": t.auth_code,
        "orig_txn_id": t.orig_txn_id,
        "orig_ref": orig_ref,
        "alerts": alerts,
        "received_at": item.now,
        "feedback": None,
        "feedback_at": None,
        "disputed_at": None,
    }


def _alert(
    ref: str,
    n: int,
    plan: AlertPlan,
    item: AcceptItem,
    node: str,
    lease: float,
    ttl: float,
    rows: list[dict[str, Any]],
    v: Vault,
) -> QueuedAlert:
    alert = QueuedAlert(
        id=f"{ref}.{n}",
        ref=ref,
        issuer=_name(item),
        destination=plan.destination,
        text=plan.text,
        priority=plan.priority,
        source_addr=plan.source_addr,
        not_before=plan.not_before,
        expires_at=plan.not_before + ttl,
        attempts=0,
    )
    rows.append(
        {
            "id": alert.id,
            "ref": ref,
            "issuer": alert.issuer,
            "audience": plan.audience,
            "destination": v.seal(plan.destination),
            "dest_index": v.index(plan.destination),
            "lang": plan.lang,
            "text": plan.text,
            "encoding": plan.encoding,
            "parts": plan.parts,
            "priority": plan.priority,
            "source_addr": plan.source_addr,
            "status": S.QUEUED,
            "carrier": None,
            "attempts": 0,
            "created_at": item.now,
            "updated_at": item.now,
            "not_before": plan.not_before,
            "expires_at": alert.expires_at,
            "claimed_by": node,
            "claimed_until": item.now + lease,
            "last_error": None,
            "reply_code": plan.reply_code,
            "feedback": None,
        }
    )
    return alert
