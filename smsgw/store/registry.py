"""Subscriber and merchant registries in the database (sync).

The functions take a SQLAlchemy Connection and write an ``audit`` row for
every change. Records come checked from smsgw.store.registry_checks; CSV
import and export are in smsgw.store.registry_csv.

Numbers are sealed at rest (smsgw.store.pii, the connection's vault): a
subscriber's msisdn with its blind index ``msisdn_index`` (set on every
insert and update, under the newest index key), a merchant's notify numbers
as one ciphertext. Callers give and get clear E.164 numbers as before; the
``audit`` rows name numbers only masked (+86138****8000).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from sqlalchemy import Connection, bindparam, delete, insert, select, update

from smsgw.alerts.plan import Merchant
from smsgw.store import schema as S
from smsgw.store.accept import merchant_from_row
from smsgw.store.feedback_report import mask_msisdn
from smsgw.store.pii import NOTIFY, Vault, vault
from smsgw.store.query import pairs_in
from smsgw.store.registry_checks import SubscriberKey, SubscriberRecord, check_msisdn

__all__ = [
    "ImportCounts",
    "add_merchant",
    "add_merchants",
    "add_subscriber",
    "add_subscribers",
    "list_merchants",
    "list_subscribers",
    "remove_merchant",
    "remove_subscriber",
]

Outcome = Literal["added", "updated"]

_CHUNK: Final = 500  # keys per IN (...) query: far below SQLite's variable limit


@dataclass(frozen=True, slots=True)
class ImportCounts:
    """How many records a batch added and how many it replaced."""

    added: int
    updated: int


def _audit(
    now: float,
    issuer: str,
    actor: str,
    action: str,
    subject: str,
    detail: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "at": now,
        "issuer": issuer,
        "actor": actor,
        "action": action,
        "subject": subject[:100],
        "detail": orjson.dumps(detail).decode(),
    }


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    return (items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK))


def _existing(
    conn: Connection, keys: Iterable[SubscriberKey]
) -> dict[SubscriberKey, Any]:
    """The stored rows of ``keys`` (those that exist), by key. A key given by
    PAN during a card-hash key rotation also finds the row stored under the
    card's hash under an older key (the newest key's row first)."""
    t = S.subscribers
    keys = list(keys)
    owner: dict[tuple[str, str], tuple[SubscriberKey, int]] = {}
    for k in keys:
        if k.card_hash is not None:
            for rank, h in enumerate((k.card_hash, *k.old_hashes)):
                owner[(k.issuer, h)] = (k, rank)
    hashes = list(owner)
    tokens = [(k.issuer, k.card_token) for k in keys if k.card_token is not None]
    found: dict[SubscriberKey, Any] = {}
    ranks: dict[SubscriberKey, int] = {}
    for chunk in _chunks(hashes):
        q = select(t).where(pairs_in(t.c.issuer, t.c.card_hash, chunk))
        for row in conn.execute(q):
            if (row.issuer, row.card_hash) in chunk:
                key, rank = owner[(row.issuer, row.card_hash)]
                if rank < ranks.get(key, len(owner) + 1):
                    found[key], ranks[key] = row, rank
    for chunk in _chunks(tokens):
        q = select(t).where(pairs_in(t.c.issuer, t.c.card_token, chunk))
        for row in conn.execute(q):
            if (row.issuer, row.card_token) in chunk:
                found[SubscriberKey(row.issuer, None, row.card_token)] = row
    return found


def _record_from_row(row: Any, v: Vault) -> SubscriberRecord:
    """A stored row as the checked record (its number opened)."""
    return SubscriberRecord(
        issuer=row.issuer,
        card_hash=row.card_hash,
        card_token=row.card_token,
        masked_pan=row.masked_pan,
        msisdn=v.open(row.msisdn),
        lang=row.lang,
        min_amount=row.min_amount,
        kinds=row.kinds,
        opted_out=bool(row.opted_out),
        quiet_start=row.quiet_start,
        quiet_end=row.quiet_end,
        timezone=row.timezone,
    )


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    return {k: [old[k], v] for k, v in new.items() if old[k] != v}


def _sealed_subscriber(v: Vault, values: Mapping[str, Any]) -> dict[str, Any]:
    """A record's column values as stored: the number sealed and indexed."""
    number = values["msisdn"]
    return {**values, "msisdn": v.seal(number), "msisdn_index": v.index(number)}


def _masked_subscriber(values: Mapping[str, Any]) -> dict[str, Any]:
    """A record's values as an audit row shows them: the number masked."""
    return {**values, "msisdn": mask_msisdn(values["msisdn"])}


def add_subscribers(
    conn: Connection,
    records: Sequence[SubscriberRecord],
    *,
    now: float,
    actor: str = "cli",
    via: str = "cli",
) -> ImportCounts:
    """Insert or replace each record (keys must be distinct), with audit rows.

    A record given by card_hash without masked_pan keeps the stored mask.
    Returns the counts added and updated.
    """
    t = S.subscribers
    v = vault(conn)
    existing = _existing(conn, (r.key for r in records))
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    for record in records:
        row = existing.get(record.key)
        # found under an older card-hash key: the row moves to the newest
        values = record.columns()
        if row is None:
            stored = _sealed_subscriber(v, values)
            inserts.append({**stored, "created_at": now, "updated_at": now})
            audits.append(
                _audit(
                    now,
                    record.issuer,
                    actor,
                    "subscriber.add",
                    record.card,
                    {"via": via, **_masked_subscriber(values)},
                )
            )
        else:
            values["masked_pan"] = record.masked_pan or row.masked_pan
            old = _record_from_row(row, v).columns()
            stored = _sealed_subscriber(v, values)
            updates.append({**stored, "row_id": row.id, "updated_at": now})
            changed = _changes(old, values)
            if "msisdn" in changed:
                changed["msisdn"] = [mask_msisdn(n) for n in changed["msisdn"]]
            detail = {"via": via, "changed": changed}
            audits.append(
                _audit(
                    now, record.issuer, actor, "subscriber.update", record.card, detail
                )
            )
    if inserts:
        conn.execute(insert(t), inserts)
    if updates:
        conn.execute(update(t).where(t.c.id == bindparam("row_id")), updates)
    if audits:
        conn.execute(insert(S.audit), audits)
    return ImportCounts(len(inserts), len(updates))


def add_subscriber(
    conn: Connection, record: SubscriberRecord, *, now: float, actor: str = "cli"
) -> Outcome:
    """Insert or replace one subscriber; returns "added" or "updated"."""
    counts = add_subscribers(conn, [record], now=now, actor=actor)
    return "added" if counts.added else "updated"


def remove_subscriber(
    conn: Connection, key: SubscriberKey, *, now: float, actor: str = "cli"
) -> bool:
    """Delete the subscriber with ``key``; returns whether there was one."""
    row = _existing(conn, [key]).get(key)
    if row is None:
        return False
    conn.execute(delete(S.subscribers).where(S.subscribers.c.id == row.id))
    record = _record_from_row(row, vault(conn))
    detail = _masked_subscriber(record.columns())
    conn.execute(
        insert(S.audit),
        _audit(now, key.issuer, actor, "subscriber.remove", record.card, detail),
    )
    return True


def list_subscribers(
    conn: Connection, *, issuer: str | None = None, msisdn: str | None = None
) -> list[SubscriberRecord]:
    """The subscribers (masked cards only), optionally of one issuer or number.

    A number is looked up by its blind index under every live index key, so
    rows not yet re-indexed after a key rotation are found. Raises
    RegistryError when ``msisdn`` is not a possible number.
    """
    t = S.subscribers
    v = vault(conn)
    q = select(t).order_by(t.c.issuer, t.c.id)
    if issuer is not None:
        q = q.where(t.c.issuer == issuer)
    if msisdn is not None:
        # IN (...) of a list is an expanding bind parameter: one per index key.
        q = q.where(t.c.msisdn_index.in_(v.indexes(check_msisdn(msisdn))))
    return [_record_from_row(row, v) for row in conn.execute(q)]


def _merchant_values(m: Merchant) -> dict[str, Any]:
    """The merchant's column values in clear (notify space separated)."""
    return {
        "name": m.name,
        "notify": " ".join(m.notify),
        "lang": m.lang,
        "templates": orjson.dumps(dict(m.templates or {})).decode(),
    }


def _merchant_row_values(row: Any, v: Vault) -> dict[str, Any]:
    """A stored merchant's column values in clear (notify opened)."""
    return {
        "name": row.name,
        "notify": v.open(row.notify, NOTIFY) if row.notify else "",
        "lang": row.lang,
        "templates": row.templates,
    }


def _sealed_notify(v: Vault, notify: str) -> str:
    """The notify numbers as stored: one ciphertext, or "" when there are none."""
    return v.seal(notify, NOTIFY) if notify else ""


def _masked_notify(notify: str) -> str:
    """Space separated numbers, each masked (for audit rows)."""
    return " ".join(str(mask_msisdn(n)) for n in notify.split())


def _masked_merchant(values: Mapping[str, Any]) -> dict[str, Any]:
    """A merchant's clear values as an audit row shows them: numbers masked."""
    return {**values, "notify": _masked_notify(values["notify"])}


def add_merchants(
    conn: Connection,
    merchants: Sequence[Merchant],
    *,
    now: float,
    actor: str = "cli",
    via: str = "cli",
) -> ImportCounts:
    """Insert or replace each merchant (keys must be distinct), with audit rows.

    Returns the counts added and updated.
    """
    t = S.merchants
    v = vault(conn)
    existing: dict[tuple[str, str], Any] = {}
    for chunk in _chunks([(m.issuer, m.merchant_id) for m in merchants]):
        q = select(t).where(pairs_in(t.c.issuer, t.c.merchant_id, chunk))
        existing.update(
            {
                (r.issuer, r.merchant_id): r
                for r in conn.execute(q)
                if (r.issuer, r.merchant_id) in chunk
            }
        )
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    for m in merchants:
        values = _merchant_values(m)
        stored = {**values, "notify": _sealed_notify(v, values["notify"])}
        row = existing.get((m.issuer, m.merchant_id))
        key = {"issuer": m.issuer, "merchant_id": m.merchant_id}
        if row is None:
            inserts.append({**key, **stored, "created_at": now, "updated_at": now})
            detail = {"via": via, **_masked_merchant(values)}
            action = "merchant.add"
        else:
            updates.append(
                {
                    "k_issuer": m.issuer,
                    "k_id": m.merchant_id,
                    **stored,
                    "updated_at": now,
                }
            )
            old = _merchant_row_values(row, v)
            changed = _changes(old, values)
            if "notify" in changed:
                changed["notify"] = [_masked_notify(n) for n in changed["notify"]]
            detail = {"via": via, "changed": changed}
            action = "merchant.update"
        audits.append(_audit(now, m.issuer, actor, action, m.merchant_id, detail))
    if inserts:
        conn.execute(insert(t), inserts)
    if updates:
        where = (t.c.issuer == bindparam("k_issuer")) & (
            t.c.merchant_id == bindparam("k_id")
        )
        conn.execute(update(t).where(where), updates)
    if audits:
        conn.execute(insert(S.audit), audits)
    return ImportCounts(len(inserts), len(updates))


def add_merchant(
    conn: Connection, merchant: Merchant, *, now: float, actor: str = "cli"
) -> Outcome:
    """Insert or replace one merchant; returns "added" or "updated"."""
    counts = add_merchants(conn, [merchant], now=now, actor=actor)
    return "added" if counts.added else "updated"


def remove_merchant(
    conn: Connection, *, issuer: str, merchant_id: str, now: float, actor: str = "cli"
) -> bool:
    """Delete one merchant; returns whether there was one."""
    t = S.merchants
    where = (t.c.issuer == issuer) & (t.c.merchant_id == merchant_id)
    row = conn.execute(select(t).where(where)).first()
    if row is None:
        return False
    conn.execute(delete(t).where(where))
    detail = _masked_merchant(_merchant_row_values(row, vault(conn)))
    conn.execute(
        insert(S.audit),
        _audit(now, issuer, actor, "merchant.remove", merchant_id, detail),
    )
    return True


def list_merchants(conn: Connection, *, issuer: str | None = None) -> list[Merchant]:
    """The merchants (notify numbers in clear), optionally of one issuer,
    ordered by issuer and id."""
    t = S.merchants
    v = vault(conn)
    q = select(t).order_by(t.c.issuer, t.c.merchant_id)
    if issuer is not None:
        q = q.where(t.c.issuer == issuer)
    return [merchant_from_row(row, v) for row in conn.execute(q)]
