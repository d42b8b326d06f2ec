"""The signed audit chain: one hash chain over every transaction, alert status,
reply and audit-trail entry, in the database's order.

Store operations mark what they touched (`touch`); at the end of each batch,
in the same transaction, `seal` appends one chain row per touched record
(its current state's digest) and any new ``audit`` rows, links them
(``hash = sha256(prev | seq | kind | ref | digest)``) and signs the head
with Ed25519 once per batch (~27 µs), not per record. The chain holds
references and digests only, never personal data, so retention can delete
records without breaking it. `verify` walks the whole chain and names every
record whose chained state no longer matches the database (altered), that is
gone (removed), or whose chain entry was altered, removed or reordered.

Several gateway processes on PostgreSQL append in turn (an advisory lock
for the length of the sealing transaction); SQLite has one writer anyway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Connection, text

from smsgw.store.keys import key_files, newest_key, read_key
from smsgw.store.query import driver_sql

__all__ = [
    "AuditSigner",
    "audit_public_keys",
    "load_audit_signer",
    "seal",
    "touch",
    "verify",
]

GENESIS = "0" * 64
_INFO = "smsgw_chain"
_LOCK = 0x736D7367  # "smsg": the advisory lock id on PostgreSQL

# Per kind: the query for current states (by primary key) and its key column.
_STATE = {
    "txn": (
        "SELECT ref AS k, terminal_id, txn_id, kind, result, amount, currency, "
        "masked_pan, card_hash, merchant_id, local_time, rrn, stan, auth_code, "
        "feedback, disputed_at FROM transactions WHERE ref IN ({keys})"
    ),
    "alert": (
        "SELECT id AS k, status, carrier, feedback FROM alerts WHERE id IN ({keys})"
    ),
    "mo": (
        "SELECT id AS k, classification, action, ref, matched_by, alert_id "
        "FROM mo_messages WHERE id IN ({keys})"
    ),
    "audit": (
        "SELECT id AS k, at, actor, action, subject, detail FROM audit "
        "WHERE id IN ({keys})"
    ),
}


def touch(conn: Connection, kind: str, keys: Iterable[Any]) -> None:
    """Mark records this transaction wrote (their state is chained at `seal`)."""
    marks = conn.info.setdefault(_INFO, {})
    marks.setdefault(kind, set()).update(keys)


def forget(conn: Connection) -> None:
    """Drop marks left by a batch that rolled back."""
    conn.info.pop(_INFO, None)


def _digest(values: Sequence[Any]) -> str:
    return hashlib.sha256("\x1f".join(map(str, values)).encode()).hexdigest()


def _link(prev: str, seq: int, kind: str, ref: str, digest: str) -> str:
    return hashlib.sha256(f"{prev}|{seq}|{kind}|{ref}|{digest}".encode()).hexdigest()


def _states(conn: Connection, kind: str, keys: Iterable[Any]) -> dict[str, str]:
    """Current state digests by key, read at driver level (this runs for every
    batch: SQLAlchemy's statement handling would cost more than the query)."""
    keys = sorted(keys, key=str)
    out: dict[str, str] = {}
    cursor = conn.connection.cursor()
    try:
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            sql = _STATE[kind].format(keys=", ".join("?" * len(chunk)))
            cursor.execute(driver_sql(conn, sql), chunk)
            for row in cursor.fetchall():
                out[str(row[0])] = _digest(row)
    finally:
        cursor.close()
    return out


@dataclass(frozen=True, slots=True)
class AuditSigner:
    """The Ed25519 key that signs chain heads, with its id."""

    key_id: str
    key: Ed25519PrivateKey

    def public_hex(self) -> str:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def load_audit_signer(keys_dir: Path) -> AuditSigner:
    """The newest ``audit-kN.key`` in ``keys_dir`` (32-byte Ed25519 seed as hex,
    0600), generated when there is none."""
    key_id, seed = newest_key(keys_dir, "audit")
    return AuditSigner(key_id, Ed25519PrivateKey.from_private_bytes(seed))


def audit_public_keys(keys_dir: Path) -> dict[str, str]:
    """Key id -> public key (hex) of every audit key in ``keys_dir``."""
    return {
        key_id: AuditSigner(
            key_id, Ed25519PrivateKey.from_private_bytes(read_key(path))
        ).public_hex()
        for key_id, path in key_files(keys_dir, "audit")
    }


def seal(conn: Connection, signer: AuditSigner, now: float) -> int:
    """Chain what this transaction touched and sign the new head; returns how
    many records were chained. Statements at driver level: this runs once per
    batch on the hot path."""
    marks: dict[str, set[Any]] = conn.info.pop(_INFO, None) or {}
    cursor = conn.connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        cursor.execute(
            "SELECT seq, hash, audit_upto FROM audit_heads ORDER BY seq DESC LIMIT 1"
        )
        head = cursor.fetchone()
        seq, prev, upto = (head[0], head[1], head[2]) if head else (0, GENESIS, 0)
        cursor.execute(driver_sql(conn, "SELECT id FROM audit WHERE id > ?"), (upto,))
        new_audit = [row[0] for row in cursor.fetchall()]
        if new_audit:
            marks.setdefault("audit", set()).update(new_audit)
        rows: list[tuple[Any, ...]] = []
        for kind in ("txn", "alert", "mo", "audit"):
            if not marks.get(kind):
                continue
            for ref, digest in sorted(_states(conn, kind, marks[kind]).items()):
                seq += 1
                prev = _link(prev, seq, kind, ref, digest)
                rows.append((seq, kind, ref, digest, prev, now))
        if not rows:
            return 0
        cursor.executemany(
            driver_sql(
                conn,
                "INSERT INTO audit_chain (seq, kind, ref, digest, hash, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
            ),
            rows,
        )
        signature = signer.key.sign(f"{seq}:{prev}".encode()).hex()
        cursor.execute(
            driver_sql(
                conn,
                "INSERT INTO audit_heads (seq, hash, key_id, signature, at, "
                "audit_upto) VALUES (?, ?, ?, ?, ?, ?)",
            ),
            (seq, prev, signer.key_id, signature, now, max(new_audit, default=upto)),
        )
    finally:
        cursor.close()
    return len(rows)


def verify(conn: Connection, public_keys: Mapping[str, str]) -> list[str]:
    """Every problem with the chain and the records it covers (empty: intact).

    ``public_keys``: key id -> Ed25519 public key (hex) of the chain's signers.
    """
    problems: list[str] = []
    prev, expected, last_seen = GENESIS, 1, {}
    hashes: dict[int, str] = {}
    for row in conn.execute(
        text("SELECT seq, kind, ref, digest, hash FROM audit_chain ORDER BY seq")
    ):
        if row.seq != expected:
            problems.append(f"chain entries {expected} to {row.seq - 1} are missing")
        link = _link(prev, row.seq, row.kind, row.ref, row.digest)
        if link != row.hash:
            problems.append(
                f"chain entry {row.seq} ({row.kind} {row.ref}) was altered or reordered"
            )
        prev, expected = row.hash, row.seq + 1
        hashes[row.seq] = row.hash
        last_seen[row.kind, row.ref] = (row.seq, row.digest)
    last_head = 0
    for head in conn.execute(
        text("SELECT seq, hash, key_id, signature FROM audit_heads ORDER BY seq")
    ):
        last_head = head.seq
        public = public_keys.get(head.key_id)
        if hashes.get(head.seq) != head.hash:
            problems.append(f"signed head {head.seq} does not match the chain")
        elif public is None:
            problems.append(f"signed head {head.seq}: unknown key {head.key_id}")
        else:
            try:
                Ed25519PublicKey.from_public_bytes(bytes.fromhex(public)).verify(
                    bytes.fromhex(head.signature), f"{head.seq}:{head.hash}".encode()
                )
            except (InvalidSignature, ValueError):
                problems.append(
                    f"signed head {head.seq}: the signature does not verify"
                )
    if hashes and max(hashes) > last_head:
        problems.append(f"chain entries after {last_head} are not signed")
    for kind in ("txn", "alert", "mo", "audit"):
        refs = {ref: v for (k, ref), v in last_seen.items() if k == kind}
        current = _states(conn, kind, _keys(kind, refs))
        for ref, (seq, digest) in sorted(refs.items()):
            now = current.get(ref)
            if now is None:
                problems.append(f"{kind} {ref}: removed (chained at {seq})")
            elif now != digest:
                problems.append(f"{kind} {ref}: altered since chain entry {seq}")
    return problems


def _keys(kind: str, refs: Mapping[str, Any]) -> list[Any]:
    return [int(r) for r in refs] if kind in ("mo", "audit") else list(refs)
