"""Key rotation at rest: which keys the stored rows use, and re-sealing them.

After ``msisdn-k2.key`` (or ``msisdn-index-k2.key``) is added to
``keys_dir``, every gateway restarted, the key activated (``smsgw keys
activate``) and the gateways restarted again (they then seal under the new
key and look numbers up under every key), `reencrypt` opens every ciphertext
not under the active key and seals it again, and recomputes every blind
index not under the active index key, in batches of ``batch`` rows, each
batch its own transaction: the gateway keeps running meanwhile. An update
only lands when the row still holds the value read (a row the gateway
changed in between is taken again on the next pass). `usage` counts the
rows per key id, so an operator retires an old key only when nothing uses
it.

Card hashes cannot be recomputed (that needs the PAN): `usage` shows them
per key, and an old card-hash key stays until the rows hashed under it are
gone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from smsgw.feedback.mo import MoPart, group_key
from smsgw.store.pii import MSISDN, NOTIFY, WEBHOOK, Vault, key_id, vault

__all__ = ["COLUMNS", "Column", "reencrypt", "usage"]


@dataclass(frozen=True, slots=True)
class Column:
    """A column holding a ciphertext (``purpose``) or a blind index."""

    table: str
    key: str  # the primary key column(s), comma separated
    column: str
    kind: str  # "sealed", "index" or "card-hash"
    purpose: bytes = MSISDN


#: Every column whose values carry a key id.
COLUMNS = (
    Column("transactions", "ref", "msisdn", "sealed"),
    Column("alerts", "id", "destination", "sealed"),
    Column("alerts", "id", "dest_index", "index"),
    Column("mo_messages", "id", "source", "sealed"),
    Column("mo_messages", "id", "msisdn_index", "index"),
    Column("mo_parts", "id", "source", "sealed"),
    Column("mo_parts", "id", "group_key", "index"),
    Column("opt_outs", "issuer, msisdn_index", "msisdn", "sealed"),
    Column("opt_outs", "issuer, msisdn_index", "msisdn_index", "index"),
    Column("subscribers", "id", "msisdn", "sealed"),
    Column("subscribers", "id", "msisdn_index", "index"),
    Column("merchants", "issuer, merchant_id", "notify", "sealed", NOTIFY),
    Column("webhooks", "id", "body", "sealed", WEBHOOK),
    Column("transactions", "ref", "card_hash", "card-hash"),
    Column("subscribers", "id", "card_hash", "card-hash"),
)


def usage(engine: Engine) -> dict[str, Counter[str]]:
    """``"table.column"`` -> rows per key id (a full scan of each column)."""
    out: dict[str, Counter[str]] = {}
    with engine.connect() as conn:
        for c in COLUMNS:
            counts: Counter[str] = Counter()
            rows = conn.execute(
                text(
                    f"SELECT {c.column} FROM {c.table} WHERE {c.column} IS NOT NULL"
                    + (" AND notify != ''" if c.column == "notify" else "")
                )
            )
            for (value,) in rows:
                counts[key_id(value)] += 1
            out[f"{c.table}.{c.column}"] = counts
    return out


def _stale(v: Vault, c: Column) -> Callable[[Any], bool]:
    active = v.index_id if c.kind == "index" else v.enc_id
    return lambda value: value is not None and value != "" and key_id(value) != active


def _fresh(v: Vault, c: Column, row: Any) -> Any:
    """The value ``c`` should hold for ``row`` under the active keys."""
    value = getattr(row, c.column)
    if c.kind == "sealed":
        if c.purpose == WEBHOOK:
            return v.seal_bytes(v.open_bytes(bytes(value), WEBHOOK), WEBHOOK)
        return v.seal(v.open(value, c.purpose), c.purpose)
    # blind indexes: recomputed from the sealed number beside them
    if c.table == "mo_parts":
        part = MoPart(
            v.open(row.source), row.destination, row.data_coding, row.ref,
            row.total, row.seq, bytes(row.data), row.method,
        )  # fmt: skip
        return v.index("|".join(str(x) for x in group_key(part)))
    if c.table == "mo_messages":
        from smsgw.store.replies import sender_e164

        number = sender_e164(v.open(row.source))
        return v.index(number) if number else None
    sealed = row.destination if c.table == "alerts" else row.msisdn
    return v.index(v.open(sealed))


def _pages(engine: Engine, c: Column, batch: int) -> Iterator[list[Any]]:
    """Every row of ``c.table``, ``batch`` at a time, in key order (keyset
    pages: rows already read are never read again); the small tables keyed
    by two columns (opt-outs, merchants) in one page."""
    if "," in c.key:
        with engine.connect() as conn:
            yield list(conn.execute(text(f"SELECT * FROM {c.table}")))
        return
    last: Any = None
    while True:
        with engine.connect() as conn:
            after = "" if last is None else f"WHERE {c.key} > :last "
            rows = list(
                conn.execute(
                    text(f"SELECT * FROM {c.table} {after}ORDER BY {c.key} LIMIT :n"),
                    {"last": last, "n": batch},
                )
            )
        if not rows:
            return
        yield rows
        last = getattr(rows[-1], c.key)


def reencrypt(engine: Engine, *, batch: int = 500) -> dict[str, int]:
    """Re-seal and re-index every row not under the newest keys; returns
    ``"table.column"`` -> rows changed. Uses the engine's vault; each page of
    ``batch`` rows is one transaction."""
    with engine.connect() as conn:
        v = vault(conn)
    done: dict[str, int] = {}
    for c in COLUMNS:
        if c.kind == "card-hash":
            continue
        stale = _stale(v, c)
        changed = 0
        for page in _pages(engine, c, batch):
            rows = [r for r in page if stale(getattr(r, c.column))]
            if rows:
                with engine.begin() as conn:
                    for row in rows:
                        changed += _update(conn, c, row, _fresh(v, c, row))
        done[f"{c.table}.{c.column}"] = changed
    return done


def _update(conn: Connection, c: Column, row: Any, value: Any) -> int:
    keys = [k.strip() for k in c.key.split(",")]
    where = " AND ".join(f"{k} = :k_{k}" for k in keys)
    params = {f"k_{k}": getattr(row, k) for k in keys}
    params["old"] = getattr(row, c.column)
    params["new"] = value
    if c.table == "opt_outs" and c.column == "msisdn_index":
        # The number may already be opted out under the newest index (it
        # replied STOP again after the new key came in): keep that row.
        exists = conn.execute(
            text("SELECT 1 FROM opt_outs WHERE issuer = :i AND msisdn_index = :n"),
            {"i": row.issuer, "n": value},
        ).first()
        if exists:
            return conn.execute(
                text(f"DELETE FROM opt_outs WHERE {where}"), params
            ).rowcount
    result = conn.execute(
        text(
            f"UPDATE {c.table} SET {c.column} = :new "
            f"WHERE {where} AND {c.column} = :old"
        ),
        params,
    )
    return int(result.rowcount)
