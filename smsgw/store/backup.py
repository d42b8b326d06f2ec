"""Online backup and restore of the SQLite store.

`backup` copies the live database with SQLite's online backup API in one
step, inside one read transaction: the copy is the database as of one
commit, while the gateway goes on writing (WAL readers never block the
writer). The copy is checked (``PRAGMA integrity_check``) and written with
mode 0600: it holds personal data.

`restore` puts a checked backup in place of the configured database, through
the backup API as well (so the target's WAL is handled by SQLite, not by a
file copy). Run it with the gateway stopped: a running gateway would keep
writing to the database being replaced.

PostgreSQL: use ``pg_dump --format=custom`` / ``pg_restore`` (README).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BackupError", "BackupInfo", "backup", "inspect", "restore"]


class BackupError(Exception):
    """A backup or restore that cannot be done, and why."""


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a database file holds: schema revision, size, a few row counts."""

    path: Path
    revision: str | None
    size: int
    transactions: int
    alerts: int
    replies: int


def _open_ro(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise BackupError(f"{path}: no such database file")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def _count(conn: sqlite3.Connection, table: str) -> int:
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def inspect(path: Path) -> BackupInfo:
    """Check ``path`` (integrity and schema); raises BackupError when damaged."""
    conn = _open_ro(path)
    try:
        try:
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise BackupError(f"{path}: not a usable SQLite database ({e})") from None
        if ok != "ok":
            raise BackupError(f"{path}: integrity check failed: {ok}")
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:
            row = None
        return BackupInfo(
            path,
            row[0] if row else None,
            path.stat().st_size,
            _count(conn, "transactions"),
            _count(conn, "alerts"),
            _count(conn, "mo_messages"),
        )
    finally:
        conn.close()


def backup(database: Path, target: Path, *, force: bool = False) -> BackupInfo:
    """Copy the live ``database`` to ``target`` (mode 0600) and check the copy.

    Raises BackupError when the database is missing, the target exists
    (unless ``force``) or cannot be written, or the copy does not check out.
    """
    if target.exists() and not force:
        raise BackupError(f"{target}: exists (use --force to replace it)")
    source = _open_ro(database)
    partial = target.with_name(target.name + ".partial")
    try:
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        dest = sqlite3.connect(partial)
        try:
            # pages=-1: one step, one read transaction: one commit's state.
            source.backup(dest, pages=-1)
            dest.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dest.close()
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise BackupError(f"{target}: cannot write: {e.strerror}") from None
    finally:
        source.close()
    info = inspect(partial)
    os.replace(partial, target)
    return BackupInfo(target, info.revision, info.size, info.transactions,
                      info.alerts, info.replies)  # fmt: skip


def restore(source: Path, database: Path) -> BackupInfo:
    """Replace ``database``'s content with the checked backup ``source``.

    The gateway must be stopped. Raises BackupError for a damaged backup.
    """
    info = inspect(source)
    database.parent.mkdir(parents=True, exist_ok=True)
    src = _open_ro(source)
    dest = sqlite3.connect(database, timeout=10)
    try:
        src.backup(dest, pages=-1)
        dest.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.OperationalError as e:
        raise BackupError(f"{database}: cannot restore: {e}") from None
    finally:
        dest.close()
        src.close()
    os.chmod(database, 0o600)
    return info
