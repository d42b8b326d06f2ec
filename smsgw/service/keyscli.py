"""``smsgw keys new|status|reencrypt``: rotating the gateway's own keys.

smsgw keys new KIND     write the next key file of KIND (msisdn,
                        msisdn-index, card-hash, audit) in keys_dir, mode 0600;
                        the old ones stay (they still open, verify or find
                        what was written under them)
smsgw keys status       the key files, and how many stored values each key id
                        is used by (per column); exit 1 while rows are still
                        under an msisdn or msisdn-index key that is not the
                        newest
smsgw keys reencrypt    seal every number again and recompute every blind
                        index under the newest keys, online, in batches;
                        audited

The rotation: ``keys new msisdn`` (and ``msisdn-index``), restart every
gateway process sharing the database (they then write under the new keys
and still read the old ones), ``keys reencrypt``, ``keys status`` until it
exits 0; only then move the old msisdn key files out of keys_dir (keep a
copy with the backups that still hold rows under them).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import TextIO

from smsgw.service.config import ConfigError, load_config

__all__ = ["add_keys_commands", "keys_new", "keys_reencrypt", "keys_status"]

KINDS = ("msisdn", "msisdn-index", "card-hash", "audit")
_RESEALED = ("msisdn", "msisdn-index")


def new_key_file(keys_dir: Path, kind: str) -> tuple[str, Path]:
    """Write ``<kind>-k<N+1>.key`` (32 random bytes as hex, mode 0600, in a
    0700 folder) after the newest of its kind; returns (key id, path)."""
    from smsgw.store.keys import key_files

    found = key_files(keys_dir, kind)
    n = int(found[-1][0][1:]) + 1 if found else 1
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = keys_dir / f"{kind}-k{n}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return f"k{n}", path


def keys_new(
    ns: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Add the next key of ``ns.kind``; 0 on success, 2 on bad input."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        cfg = load_config(ns.config)
    except ConfigError as e:
        err.write(f"smsgw keys new: invalid config {ns.config}:\n{e}\n")
        return 2
    try:
        key_id, path = new_key_file(cfg.keys_dir, ns.kind)
    except OSError as e:
        err.write(f"smsgw keys new: {e.filename or cfg.keys_dir}: {e.strerror}\n")
        return 2
    out.write(f"{path}: new {ns.kind} key {key_id}\n")
    if ns.kind in _RESEALED:
        out.write(
            "next: restart every gateway process, then run `smsgw keys reencrypt`\n"
        )
    else:
        out.write(
            "next: restart every gateway process; keep the older key files "
            + (
                "(stored card hashes stay under them)\n"
                if ns.kind == "card-hash"
                else "(earlier chain heads are verified with them)\n"
            )
        )
    return 0


def _engine(ns: argparse.Namespace, err: TextIO, prog: str) -> object | None:
    from smsgw.store.db import SchemaError, check_schema, make_engine
    from smsgw.store.keys import KeyFileError
    from smsgw.store.pii import load_vault

    try:
        cfg = load_config(ns.config)
        vault = load_vault(cfg.keys_dir, create=False)
    except ConfigError as e:
        err.write(f"{prog}: invalid config {ns.config}:\n{e}\n")
        return None
    except (KeyFileError, OSError) as e:
        err.write(f"{prog}: {e}\n")
        return None
    engine = make_engine(cfg.database.url, hide_parameters=True, vault=vault)
    try:
        check_schema(engine)
    except SchemaError as e:
        err.write(f"{prog}: {e}\n")
        return None
    ns.vault = vault
    ns.keys_dir = cfg.keys_dir
    return engine


def keys_status(
    ns: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Print key files and use; 0 when every sealed value and index is under
    the newest key, 1 when a re-encryption is still due, 2 on bad input."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from smsgw.store.keys import key_files
    from smsgw.store.rekey import COLUMNS, usage

    engine = _engine(ns, err, "smsgw keys status")
    if engine is None:
        return 2
    for kind in KINDS:
        ids = [kid for kid, _ in key_files(ns.keys_dir, kind)]
        out.write(
            f"{kind}: {', '.join(ids) or '(none)'} (newest {ids[-1] if ids else '-'})\n"
        )
    used = usage(engine)  # type: ignore[arg-type]
    stale = 0
    for c in COLUMNS:
        counts = used[f"{c.table}.{c.column}"]
        newest = ns.vault.index_id if c.kind == "index" else ns.vault.enc_id
        shown = ", ".join(f"{kid} {n}" for kid, n in sorted(counts.items())) or "-"
        out.write(f"  {c.table}.{c.column} ({c.kind}): {shown}\n")
        if c.kind != "card-hash":
            stale += sum(n for kid, n in counts.items() if kid != newest)
    if stale:
        out.write(
            f"{stale} value(s) under an older msisdn key: run `smsgw keys reencrypt`\n"
        )
        return 1
    out.write("every number is sealed and indexed under the newest keys\n")
    return 0


def keys_reencrypt(
    ns: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Re-seal and re-index under the newest keys; 0 on success."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from sqlalchemy import text

    from smsgw.store.rekey import reencrypt

    engine = _engine(ns, err, "smsgw keys reencrypt")
    if engine is None:
        return 2
    done = reencrypt(engine, batch=ns.batch)  # type: ignore[arg-type]
    for column, n in done.items():
        if n:
            out.write(f"{column}: {n} re-sealed\n")
    total = sum(done.values())
    with engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(
            text(
                "INSERT INTO audit (at, issuer, actor, action, subject, detail) "
                "VALUES (:at, NULL, 'cli', 'keys_reencrypt', :subject, :detail)"
            ),
            {
                "at": time.time(),
                "subject": f"msisdn {ns.vault.enc_id} index {ns.vault.index_id}",
                "detail": json.dumps(
                    {k: v for k, v in done.items() if v}, sort_keys=True
                ),
            },
        )
    out.write(
        f"{total} value(s) re-sealed under msisdn key {ns.vault.enc_id} and index "
        f"key {ns.vault.index_id}\n"
    )
    return 0


def add_keys_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register ``smsgw keys new|status|reencrypt``."""
    p = sub.add_parser("keys", help="the gateway's own keys: new, status, reencrypt")
    a = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    q = a.add_parser("new", help="write the next key file of a kind (rotation)")
    q.add_argument("kind", choices=KINDS, help="which key")
    q.set_defaults(func=keys_new)
    q = a.add_parser("status", help="key files and how many stored values use each")
    q.set_defaults(func=keys_status)
    q = a.add_parser(
        "reencrypt", help="seal and index every number under the newest keys"
    )
    q.add_argument(
        "--batch", type=int, default=500, help="rows per transaction (default 500)"
    )
    q.set_defaults(func=keys_reencrypt)
    for parser in (p, *a.choices.values()):
        if parser is not p:
            parser.add_argument(
                "--config", "-c", default="conf/smsgw.yaml", help="config file"
            )
