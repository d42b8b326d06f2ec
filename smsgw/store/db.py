"""Engines, schema migrations and the schema check at start.

SQLite (the default) runs in WAL mode with ``synchronous=FULL``: a commit is
on disk before the gateway acknowledges anything. PostgreSQL is reached
through psycopg 3 (``postgresql+psycopg://``). The schema is owned by Alembic;
`upgrade` brings a database to the newest revision and `check_schema` refuses
to run on any other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url

from smsgw.store.pii import Vault, attach

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

__all__ = ["SchemaError", "check_schema", "head_revision", "make_engine", "upgrade"]


class SchemaError(RuntimeError):
    """The database's schema is not the one this version needs."""


# The newest schema revision; the gateway and its store process check it
# without importing Alembic (~11 MB in each process, with mako and pygments).
# A test keeps it equal to the head of the migration scripts.
HEAD = "0005"


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", "smsgw.store:migrations")
    return cfg


def head_revision() -> str:
    """The newest schema revision this version of smsgw knows."""
    return HEAD


def scripts_head() -> str:
    """The head of the migration scripts, as Alembic reads them (`HEAD`'s check)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer; FULL: the WAL is synced at every
    # commit, so an acknowledged transaction survives a power cut.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    # Deleted and overwritten content is zeroed, not left in free pages: a
    # number sealed again under a new key leaves no older copy in the file.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def make_engine(
    url: str, *, create_dirs: bool = True, vault: Vault | None = None, **kwargs: Any
) -> Engine:
    """An Engine for ``url``; for a SQLite file, its folder is created.
    ``vault``: the msisdn keys store code uses on its connections
    (`smsgw.store.pii`).

    Raises sqlalchemy.exc.ArgumentError for a URL SQLAlchemy cannot read.
    """
    engine = _make_engine(url, create_dirs, **kwargs)
    if vault is not None:
        attach(engine, vault)
    return engine


def _make_engine(url: str, create_dirs: bool, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if create_dirs and database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # An unreachable server fails a commit in seconds, not after TCP's minutes.
    kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", 10)
    return create_engine(url, **kwargs)


def upgrade(
    engine: Engine, revision: str = "head", *, audit_signer: object = None
) -> tuple[str | None, str]:
    """Migrate the schema to ``revision``; returns (before, after).

    ``audit_signer`` (smsgw.store.chain.AuditSigner): for a migration that
    changes chained records (it chains them again and signs the head)."""
    from alembic import command

    cfg = _alembic_config()
    cfg.attributes["audit_signer"] = audit_signer
    with migrating(engine) as conn:
        before = _revision(conn)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        after = _revision(conn)
    return before, after or ""


@contextlib.contextmanager
def migrating(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction for migrations. On SQLite, foreign keys
    are off meanwhile (SQLite's procedure for changing a table: a table that
    others reference is copied, dropped and renamed) and checked before the
    commit."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                yield conn
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").first()
                    if broken is not None:
                        raise SchemaError(
                            f"a migration broke a foreign key: {tuple(broken)}"
                        )
        finally:
            if sqlite:
                conn.rollback()
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None: no smsgw schema)."""
    with engine.connect() as conn:
        return _revision(conn)


def _revision(conn: Connection) -> str | None:
    """Alembic's version table, read without Alembic."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    if len(rows) > 1:
        raise SchemaError(f"the database has several schema heads: {rows}")
    return str(rows[0][0]) if rows else None


def check_schema(engine: Engine) -> None:
    """Raise SchemaError unless the database is at the newest revision."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaError(
            "the database has no smsgw schema yet: run `smsgw db upgrade "
            "--config FILE` first"
        )
    raise SchemaError(
        f"the database schema is at revision {current}, this smsgw needs {head}: "
        "back up the database, then run `smsgw db upgrade --config FILE`"
    )
