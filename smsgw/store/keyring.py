"""The gateway's own keys held against the database they were written for.

The keys live in ``keys_dir`` only; the database keeps, per kind (msisdn,
msisdn-index, card-hash) and key id, a check value (HMAC of a fixed text under
the key, which reveals nothing of it) and which key id of each kind writes
(``active``). Every process opens its keys through `open_keyring`, which

- refuses a key file whose check value differs from the database's for the
  same id (another node's keys_dir, or a key generated afresh after the
  first was lost), and a key id the database was written with that keys_dir
  lacks: reading would fail later, row by row;
- registers keys the database does not know yet: the first of a kind is
  active, a later one waits for ``smsgw keys activate``, so no process writes
  under a key the others cannot read yet;
- generates the first key of a kind only when the database knows none.

Rotation: ``smsgw keys new KIND`` (a file, inactive), copy keys_dir to every
node and restart each (all read the new key), ``smsgw keys activate KIND``
and restart each again (all write under it), ``smsgw keys reencrypt``.
The active ids are read when a process starts.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from smsgw.store.keys import CardHasher, KeyFileError, key_files, newest_key, read_key
from smsgw.store.pii import Vault

__all__ = ["KINDS", "Keyring", "attach_keyring", "check_value", "open_keyring"]

KINDS = ("msisdn", "msisdn-index", "card-hash")


def check_value(kind: str, key: bytes) -> str:
    """The check value of ``key`` (HMAC-SHA256 of a fixed text, 128 bits)."""
    return hmac.new(
        key, f"smsgw key check {kind}".encode(), hashlib.sha256
    ).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Keyring:
    """Every key of each kind (key id -> key) and the active id of each."""

    keys: dict[str, dict[str, bytes]] = field(repr=False)  # never in a log
    active: dict[str, str]

    def vault(self) -> Vault:
        """The msisdn vault: every key reads, the active ones write."""
        return Vault(
            self.keys["msisdn"],
            self.keys["msisdn-index"],
            enc_id=self.active["msisdn"],
            index_id=self.active["msisdn-index"],
        )

    def card_hasher(self) -> CardHasher:
        """The card hasher: the active key hashes, the others are looked up."""
        kid = self.active["card-hash"]
        keys = self.keys["card-hash"]
        return CardHasher(kid, keys[kid], {k: v for k, v in keys.items() if k != kid})


def _files(keys_dir: Path, kind: str, create: bool) -> dict[str, bytes]:
    if create:
        newest_key(keys_dir, kind, create=True)
    return {kid: read_key(path) for kid, path in key_files(keys_dir, kind)}


def open_keyring(engine: Engine, keys_dir: Path, *, create: bool = True) -> Keyring:
    """Check ``keys_dir``'s keys against the database, register new ones, and
    return them with the active ids (see the module docstring).

    Raises KeyFileError naming the file and what to do.
    """
    try:
        with engine.begin() as conn:
            return _open(conn, keys_dir, create)
    except IntegrityError:  # another process registered the same key meanwhile
        with engine.begin() as conn:
            return _open(conn, keys_dir, create)


def _open(conn: Connection, keys_dir: Path, create: bool) -> Keyring:
    known: dict[str, dict[str, tuple[str, bool]]] = {kind: {} for kind in KINDS}
    for row in conn.execute(
        text("SELECT kind, key_id, check_value, active FROM key_checks")
    ):
        if row.kind in known:
            known[row.kind][row.key_id] = (row.check_value, bool(row.active))
    keys: dict[str, dict[str, bytes]] = {}
    active: dict[str, str] = {}
    for kind in KINDS:
        files = keys[kind] = _files(keys_dir, kind, create and not known[kind])
        for kid, (check, _) in sorted(known[kind].items()):
            path = keys_dir / f"{kind}-{kid}.key"
            if kid not in files:
                raise KeyFileError(
                    f"{path}: missing; the database holds values under {kind} key "
                    f"{kid}: copy keys_dir from a node that has it"
                )
            if check_value(kind, files[kid]) != check:
                raise KeyFileError(
                    f"{path}: not the {kind} key {kid} this database was written "
                    "with (another node's keys_dir, or a key generated anew?): copy "
                    "keys_dir from the node that wrote the database"
                )
        if not files:
            raise KeyFileError(f"{keys_dir}: no {kind} key ({kind}-k1.key)")
        first = not known[kind]
        for kid, key in files.items():
            if kid in known[kind]:
                continue
            is_active = first and kid == list(files)[-1]
            conn.execute(
                text(
                    "INSERT INTO key_checks (kind, key_id, check_value, active, "
                    "created_at) VALUES (:kind, :kid, :check, :active, :now)"
                ),
                {
                    "kind": kind,
                    "kid": kid,
                    "check": check_value(kind, key),
                    "active": is_active,
                    "now": time.time(),
                },
            )
            known[kind][kid] = (check_value(kind, key), is_active)
        on = [kid for kid, (_, a) in known[kind].items() if a]
        if len(on) != 1:
            raise KeyFileError(f"the database marks {len(on)} {kind} keys active")
        active[kind] = on[0]
    return Keyring(keys, active)


def attach_keyring(engine: Engine, keys_dir: Path, *, create: bool = True) -> Keyring:
    """`open_keyring`, then give ``engine``'s connections its vault (the
    connections pooled meanwhile are closed: they would lack it)."""
    from smsgw.store.pii import attach

    keyring = open_keyring(engine, keys_dir, create=create)
    engine.dispose()
    attach(engine, keyring.vault())
    return keyring
