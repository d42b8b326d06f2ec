"""``smsgw keys new|activate|status|reencrypt|retire``: rotating the gateway's keys.

smsgw keys new KIND       write the next key file of KIND (msisdn, msisdn-index,
                          card-hash, audit) in keys_dir, mode 0600; after a
                          restart every process reads with it, and it writes
                          only once activated (audit keys sign at once)
smsgw keys activate KIND  make the newest key of KIND the one that writes (the
                          database holds which, so every process agrees)
smsgw keys status         the key files, the active ones, and how many stored
                          values each key id is used by (per column); exit 1
                          while numbers are still under an inactive key
smsgw keys reencrypt      seal every number and recompute every blind index
                          under the active keys, online, in batches; audited
smsgw keys retire KIND ID forget a key no stored value uses any more (then
                          move its file out of keys_dir)

The rotation: ``keys new msisdn`` and ``keys new msisdn-index``, copy keys_dir
to every node and restart each gateway process (all of them can now read
under the new keys), ``keys activate msisdn`` and ``keys activate
msisdn-index``, restart each again (they now write under them), ``keys
reencrypt``, ``keys status`` until it exits 0, then ``keys retire`` the old
ids and move their files away (with the backups that still hold rows under
them). A node whose keys_dir holds other keys under the same ids is refused
at start (the database keeps a check value per key).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from smsgw.service.config import ConfigError, load_config
from smsgw.store.remote import describe_error

__all__ = [
    "add_keys_commands",
    "keys_activate",
    "keys_new",
    "keys_reencrypt",
    "keys_retire",
    "keys_status",
]

KINDS = ("msisdn", "msisdn-index", "card-hash", "audit")
_CHECKED = ("msisdn", "msisdn-index", "card-hash")


def new_key_file(
    keys_dir: Path, kind: str, taken: Iterable[str] = ()
) -> tuple[str, Path]:
    """Write ``<kind>-k<N>.key`` (32 random bytes as hex, mode 0600, in a 0700
    folder), N above every id in keys_dir and in ``taken`` (ids the database
    knows: a retired id is never used again); returns (key id, path)."""
    from smsgw.store.keys import key_files

    ids = [int(kid[1:]) for kid, _ in key_files(keys_dir, kind)]
    ids += [int(kid[1:]) for kid in taken if kid[1:].isdigit()]
    n = max(ids, default=0) + 1
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = keys_dir / f"{kind}-k{n}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return f"k{n}", path


def _config(ns: argparse.Namespace, err: TextIO, prog: str) -> Any:
    try:
        return load_config(ns.config)
    except ConfigError as e:
        err.write(f"{prog}: invalid config {ns.config}:\n{e}\n")
        return None


def _known_ids(cfg: Any, kind: str) -> set[str]:
    """Key ids of ``kind`` the database knows (none before its schema)."""
    from sqlalchemy import text

    from smsgw.store.db import current_revision, head_revision, make_engine

    engine = make_engine(cfg.database.url, hide_parameters=True)
    try:
        if current_revision(engine) != head_revision():
            return set()
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT key_id FROM key_checks WHERE kind = :k"), {"k": kind}
            )
            return {r.key_id for r in rows}
    finally:
        engine.dispose()


def keys_new(
    ns: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Add the next key of ``ns.kind``; 0 on success, 2 on bad input."""
    from sqlalchemy.exc import SQLAlchemyError

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    prog = "smsgw keys new"
    cfg = _config(ns, err, prog)
    if cfg is None:
        return 2
    try:
        taken = _known_ids(cfg, ns.kind) if ns.kind in _CHECKED else set()
        key_id, path = new_key_file(cfg.keys_dir, ns.kind, taken)
    except SQLAlchemyError as e:
        err.write(f"{prog}: database error: {describe_error(e)}\n")
        return 1
    except OSError as e:
        err.write(f"{prog}: {e.filename or cfg.keys_dir}: {e.strerror}\n")
        return 2
    out.write(f"{path}: new {ns.kind} key {key_id}\n")
    if ns.kind == "audit":
        out.write(
            "next: restart every gateway process (new heads are signed with it; "
            "keep the older audit keys: they verify the heads they signed)\n"
        )
    else:
        out.write(
            "next: copy keys_dir to every node and restart each gateway process, "
            f"then `smsgw keys activate {ns.kind}` and restart each again\n"
        )
    return 0


def _engine(ns: argparse.Namespace, err: TextIO, prog: str) -> Any:
    """The configured database's engine with the keyring attached (its vault
    on every connection; ``ns.keyring``), or None after writing why not."""
    from sqlalchemy.exc import SQLAlchemyError

    from smsgw.store.db import SchemaError, check_schema, make_engine
    from smsgw.store.keyring import attach_keyring
    from smsgw.store.keys import KeyFileError

    cfg = _config(ns, err, prog)
    if cfg is None:
        return None
    engine = make_engine(cfg.database.url, hide_parameters=True)
    try:
        check_schema(engine)
        ns.keyring = attach_keyring(engine, cfg.keys_dir, create=False)
    except (SchemaError, KeyFileError, OSError) as e:
        err.write(f"{prog}: {e}\n")
        return None
    except SQLAlchemyError as e:
        err.write(f"{prog}: database error: {describe_error(e)}\n")
        return None
    ns.keys_dir = cfg.keys_dir
    return engine


def _audit(engine: Any, action: str, subject: str, detail: dict[str, Any]) -> None:
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit (at, issuer, actor, action, subject, detail) "
                "VALUES (:at, NULL, 'cli', :action, :subject, :detail)"
            ),
            {
                "at": time.time(),
                "action": action,
                "subject": subject,
                "detail": json.dumps(detail, sort_keys=True),
            },
        )


def keys_activate(
    ns: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Make the newest key of ``ns.kind`` the active one; audited."""
    from sqlalchemy import text

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    engine = _engine(ns, err, "smsgw keys activate")
    if engine is None:
        return 2
    keys = ns.keyring.keys[ns.kind]
    newest = list(keys)[-1]
    before = ns.keyring.active[ns.kind]
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE key_checks SET active = (key_id = :k) WHERE kind = :kind"),
            {"k": newest, "kind": ns.kind},
        )
    _audit(engine, "keys_activate", f"{ns.kind} {newest}", {"before": before})
    out.write(
        f"{ns.kind} key {newest} is active (was {before}): restart every gateway "
        "process; each writes under it from its restart"
        + (", then run `smsgw keys reencrypt`\n" if ns.kind != "card-hash" else "\n")
    )
    return 0


def keys_status(
    ns: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Print key files and use; 0 when every sealed value and index is under
    the active key, 1 when a re-encryption is still due, 2 on bad input."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from smsgw.store.keys import key_files
    from smsgw.store.rekey import COLUMNS, usage

    engine = _engine(ns, err, "smsgw keys status")
    if engine is None:
        return 2
    active = ns.keyring.active
    for kind in KINDS:
        ids = [kid for kid, _ in key_files(ns.keys_dir, kind)]
        shown = f"active {active[kind]}" if kind in active else "the newest signs"
        out.write(f"{kind}: {', '.join(ids) or '(none)'} ({shown})\n")
    used = usage(engine)
    stale = 0
    for c in COLUMNS:
        counts = used[f"{c.table}.{c.column}"]
        shown = ", ".join(f"{kid} {n}" for kid, n in sorted(counts.items())) or "-"
        out.write(f"  {c.table}.{c.column} ({c.kind}): {shown}\n")
        if c.kind != "card-hash":
            writes = active["msisdn-index" if c.kind == "index" else "msisdn"]
            stale += sum(n for kid, n in counts.items() if kid != writes)
    if stale:
        out.write(
            f"{stale} value(s) under an inactive msisdn key: "
            "run `smsgw keys reencrypt`\n"
        )
        return 1
    out.write("every number is sealed and indexed under the active keys\n")
    return 0


def keys_reencrypt(
    ns: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Re-seal and re-index under the active keys; 0 on success, 1 when a
    value does not open or the database fails (what was done stays done)."""
    from sqlalchemy.exc import SQLAlchemyError

    from smsgw.store.pii import PiiError
    from smsgw.store.rekey import reencrypt

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    prog = "smsgw keys reencrypt"
    engine = _engine(ns, err, prog)
    if engine is None:
        return 2
    vault = ns.keyring.vault()
    try:
        done = reencrypt(engine, batch=ns.batch)
    except PiiError as e:
        err.write(f"{prog}: {e}: does keys_dir hold every key `keys status` lists?\n")
        return 1
    except SQLAlchemyError as e:
        err.write(f"{prog}: database error: {describe_error(e)}\n")
        return 1
    for column, n in done.items():
        if n:
            out.write(f"{column}: {n} re-sealed\n")
    _audit(
        engine,
        "keys_reencrypt",
        f"msisdn {vault.enc_id} index {vault.index_id}",
        {k: v for k, v in done.items() if v},
    )
    out.write(
        f"{sum(done.values())} value(s) re-sealed under msisdn key {vault.enc_id} "
        f"and index key {vault.index_id}\n"
    )
    return 0


def keys_retire(
    ns: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Forget key ``ns.key_id`` of ``ns.kind``: refused (1) while it is active
    or any stored value is under it; audited."""
    from sqlalchemy import text

    from smsgw.store.rekey import COLUMNS, usage

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    prog = "smsgw keys retire"
    engine = _engine(ns, err, prog)
    if engine is None:
        return 2
    if ns.keyring.active.get(ns.kind) == ns.key_id:
        err.write(f"{prog}: {ns.kind} key {ns.key_id} is the active one\n")
        return 1
    kinds = {"msisdn": "sealed", "msisdn-index": "index", "card-hash": "card-hash"}
    used = usage(engine)
    left = sum(
        used[f"{c.table}.{c.column}"].get(ns.key_id, 0)
        for c in COLUMNS
        if c.kind == kinds[ns.kind]
    )
    if left:
        err.write(
            f"{prog}: {left} stored value(s) are still under {ns.kind} key "
            f"{ns.key_id}"
            + (
                ": run `smsgw keys reencrypt` first\n"
                if ns.kind != "card-hash"
                else "\n"
            )
        )
        return 1
    with engine.begin() as conn:
        gone = conn.execute(
            text("DELETE FROM key_checks WHERE kind = :kind AND key_id = :k"),
            {"kind": ns.kind, "k": ns.key_id},
        ).rowcount
    if not gone:
        err.write(f"{prog}: the database knows no {ns.kind} key {ns.key_id}\n")
        return 2
    _audit(engine, "keys_retire", f"{ns.kind} {ns.key_id}", {})
    out.write(
        f"{ns.kind} key {ns.key_id} retired: move "
        f"{ns.keys_dir / f'{ns.kind}-{ns.key_id}.key'} out of keys_dir on every node\n"
    )
    return 0


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return n


def add_keys_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register ``smsgw keys new|activate|status|reencrypt|retire``."""
    p = sub.add_parser(
        "keys", help="the gateway's own keys: new, activate, status, reencrypt, retire"
    )
    a = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    q = a.add_parser("new", help="write the next key file of a kind (rotation)")
    q.add_argument("kind", choices=KINDS, help="which key")
    q.set_defaults(func=keys_new)
    q = a.add_parser(
        "activate", help="make the newest key of a kind the one that writes"
    )
    q.add_argument("kind", choices=_CHECKED, help="which key")
    q.set_defaults(func=keys_activate)
    q = a.add_parser("status", help="key files and how many stored values use each")
    q.set_defaults(func=keys_status)
    q = a.add_parser(
        "reencrypt", help="seal and index every number under the active keys"
    )
    q.add_argument(
        "--batch",
        type=_positive,
        default=500,
        help="rows per transaction (default 500)",
    )
    q.set_defaults(func=keys_reencrypt)
    q = a.add_parser("retire", help="forget a key no stored value uses any more")
    q.add_argument("kind", choices=_CHECKED, help="which key")
    q.add_argument("key_id", help="its id, like k1")
    q.set_defaults(func=keys_retire)
    for parser in a.choices.values():
        parser.add_argument(
            "--config", "-c", default="conf/smsgw.yaml", help="config file"
        )
