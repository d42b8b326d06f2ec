"""Store fixtures: every store test runs on SQLite and on PostgreSQL.

PostgreSQL is the server on 127.0.0.1:5432 (database ``test``, trust auth).
Each test gets a fresh schema, dropped afterwards. With CI=true a missing
server fails the run instead of skipping (the PostgreSQL tests must run).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from smsgw.store.db import make_engine, upgrade
from tests.store.helpers import test_vault

PG_URL = os.environ.get(
    "SMSGW_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _pg_available() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0]}"
    return None


_PG_PROBLEM: str | bool | None = False


def pg_problem() -> str | None:
    """Why PostgreSQL cannot be used (None when it can); asked once."""
    global _PG_PROBLEM
    if _PG_PROBLEM is False:
        _PG_PROBLEM = _pg_available()
    return _PG_PROBLEM  # type: ignore[return-value]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema."""
    problem = pg_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL must be available in CI: {problem}")
        pytest.skip(f"no PostgreSQL server: {problem}")
    schema = f"smsgw_test_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for each backend (schema not created yet)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/smsgw.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a migrated, empty database of each backend."""
    eng = make_engine(db_url, vault=test_vault())
    upgrade(eng)
    yield eng
    eng.dispose()
