"""``smsgw db upgrade|status|backup|restore``: the database from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from smsgw.service.config import ConfigError, load_config, mask_url
from smsgw.store.remote import describe_error

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from smsgw.store.backup import BackupInfo


def _engine(ns: argparse.Namespace, err: TextIO) -> Engine | None:
    """The configured database's engine (None after writing why not)."""
    from smsgw.store.db import make_engine

    try:
        cfg = load_config(ns.config)
    except ConfigError as e:
        err.write(f"smsgw db: invalid config {ns.config}:\n{e}\n")
        return None
    ns.url_shown = mask_url(cfg.database.url)
    ns.keys_dir = cfg.keys_dir
    return make_engine(cfg.database.url, hide_parameters=True)


def db_upgrade(
    ns: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Migrate the configured database to the newest schema; 0 on success."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from smsgw.store.chain import load_audit_signer
    from smsgw.store.db import current_revision, upgrade
    from smsgw.store.keyring import open_keyring
    from smsgw.store.keys import KeyFileError
    from smsgw.store.pii import attach, load_vault

    engine = _engine(ns, err)
    if engine is None:
        return 2
    try:
        at = current_revision(engine)
        signer = None
        seals_numbers = at is not None and at < "0004"
        if seals_numbers:
            # revision 0004 seals the numbers already stored: the newest
            # msisdn keys of keys_dir (before any key was registered); it
            # masks numbers in earlier audit rows and chains them again
            attach(engine, load_vault(ns.keys_dir))
            signer = load_audit_signer(ns.keys_dir)
        before, after = upgrade(engine, audit_signer=signer)
        if seals_numbers and engine.dialect.name == "sqlite":
            # the numbers 0004 sealed: no clear copy left in free pages or
            # in the write-ahead log
            with engine.connect() as conn:
                conn.exec_driver_sql("VACUUM")
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        open_keyring(engine, ns.keys_dir)  # registered, or checked
    except (KeyFileError, OSError) as e:
        err.write(f"smsgw db upgrade: keys_dir {ns.keys_dir}: {e}\n")
        return 2
    except Exception as e:
        err.write(f"smsgw db upgrade: {ns.url_shown}: {describe_error(e)}\n")
        return 1
    if before == after:
        out.write(f"{ns.url_shown}: schema already at revision {after}\n")
    else:
        out.write(
            f"{ns.url_shown}: schema upgraded from {before or 'empty'} to {after}\n"
        )
    return 0


def db_status(
    ns: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Print the schema revision; 0 when current, 1 when an upgrade is needed."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from smsgw.store.db import current_revision, head_revision

    engine = _engine(ns, err)
    if engine is None:
        return 2
    try:
        current = current_revision(engine)
    except Exception as e:
        err.write(f"smsgw db status: {ns.url_shown}: {describe_error(e)}\n")
        return 1
    head = head_revision()
    state = "current" if current == head else "needs `smsgw db upgrade`"
    out.write(
        f"{ns.url_shown}: revision {current or 'none'} (newest {head}): {state}\n"
    )
    return 0 if current == head else 1


def _sqlite_path(ns: argparse.Namespace, err: TextIO, prog: str) -> Path | None:
    """The configured SQLite file, or None (reported) for PostgreSQL or a bad config."""
    from sqlalchemy.engine import make_url

    try:
        cfg = load_config(ns.config)
    except ConfigError as e:
        err.write(f"{prog}: invalid config {ns.config}:\n{e}\n")
        return None
    url = make_url(cfg.database.url)
    if url.get_backend_name() != "sqlite" or not url.database:
        err.write(
            f"{prog}: {mask_url(cfg.database.url)} is not an SQLite file: for "
            "PostgreSQL use pg_dump --format=custom and pg_restore (see README)\n"
        )
        return None
    return Path(url.database)


def _describe(info: BackupInfo) -> str:
    return (
        f"{info.path}: revision {info.revision or 'none'}, {info.size:,} bytes, "
        f"{info.transactions:,} transactions, {info.alerts:,} alerts, "
        f"{info.replies:,} replies"
    )


def db_backup(
    ns: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """A consistent copy of the live SQLite database; 0 when written and checked."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from smsgw.store.backup import BackupError, backup

    database = _sqlite_path(ns, err, "smsgw db backup")
    if database is None:
        return 2
    try:
        info = backup(database, Path(ns.to), force=ns.force)
    except BackupError as e:
        err.write(f"smsgw db backup: {e}\n")
        return 1
    out.write(f"backed up {database} -> {_describe(info)}\n")
    return 0


def db_restore(
    ns: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Replace the configured SQLite database with a checked backup."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from smsgw.store.backup import BackupError, restore

    database = _sqlite_path(ns, err, "smsgw db restore")
    if database is None:
        return 2
    if not ns.yes:
        err.write(
            f"smsgw db restore: this replaces {database} with {ns.source}: stop the "
            "gateway first, then run again with --yes\n"
        )
        return 2
    try:
        info = restore(Path(ns.source), database)
    except BackupError as e:
        err.write(f"smsgw db restore: {e}\n")
        return 1
    out.write(f"restored {database} from {_describe(info)}\n")
    return 0


def add_db_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``smsgw db upgrade|status|backup|restore``."""
    p = sub.add_parser("db", help="database: upgrade, status, backup, restore")
    db = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, func, text in (
        (
            "upgrade",
            db_upgrade,
            "migrate the database to the newest schema (back it up first)",
        ),
        (
            "status",
            db_status,
            "show the schema revision and whether an upgrade is needed",
        ),
    ):
        q = db.add_parser(name, help=text)
        q.add_argument("--config", "-c", default="conf/smsgw.yaml", help="config file")
        q.set_defaults(func=func)
    q = db.add_parser(
        "backup",
        help="a consistent copy of the SQLite database, while the gateway runs",
    )
    q.add_argument("--config", "-c", default="conf/smsgw.yaml", help="config file")
    q.add_argument("--to", required=True, help="the backup file to write (mode 0600)")
    q.add_argument("--force", action="store_true", help="replace an existing file")
    q.set_defaults(func=db_backup)
    q = db.add_parser(
        "restore", help="replace the SQLite database with a backup (gateway stopped)"
    )
    q.add_argument("--config", "-c", default="conf/smsgw.yaml", help="config file")
    q.add_argument("--from", dest="source", required=True, help="the backup file")
    q.add_argument("--yes", action="store_true", help="the gateway is stopped: go")
    q.set_defaults(func=db_restore)
