"""The schema belongs to Alembic: migrations build exactly the tables the code
uses, and the gateway and the CLI tell an operator when to upgrade."""

from __future__ import annotations

import io
from argparse import Namespace
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from smsgw.service.dbcli import db_status, db_upgrade
from smsgw.store.db import (
    SchemaError,
    check_schema,
    head_revision,
    make_engine,
    upgrade,
)
from smsgw.store.schema import metadata


def test_migrations_build_exactly_the_schema_in_code(engine: Engine) -> None:
    """After `upgrade`, Alembic finds no difference from smsgw.store.schema."""
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    check_schema(engine)


def test_upgrade_twice_changes_nothing(db_url: str) -> None:
    """A second upgrade reports the same revision before and after."""
    engine = make_engine(db_url)
    assert upgrade(engine) == (None, head_revision())
    assert upgrade(engine) == (head_revision(), head_revision())
    engine.dispose()


def test_an_older_database_upgrades_with_its_rows_and_downgrades(db_url: str) -> None:
    """A database at 0001 holding an MO message upgrades to head (the new columns
    get their defaults) and 0002 downgrades back to exactly 0001."""
    from alembic import command

    from smsgw.store.db import _alembic_config

    engine = make_engine(db_url)
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO mo_messages (carrier, source, destination, text, "
                "received_at) VALUES ('sim', '8613800138000', '95588', 'N', 1.0)"
            )
        )
    assert upgrade(engine) == ("0001", head_revision())
    with engine.connect() as conn:
        row = conn.execute(text("SELECT parts, complete FROM mo_messages")).one()
    assert (row.parts, bool(row.complete)) == (1, True)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert any(d[0] == "add_table" and d[1].name == "opt_outs" for d in diff)
    assert upgrade(engine) == ("0001", head_revision())
    engine.dispose()


def test_check_schema_refuses_an_empty_or_older_database(db_url: str) -> None:
    """No schema, or another revision: SchemaError says to run smsgw db upgrade."""
    engine = make_engine(db_url)
    with pytest.raises(SchemaError, match="no smsgw schema yet: run `smsgw db upgrade"):
        check_schema(engine)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000old'"))
    with pytest.raises(SchemaError, match="revision 0000old, this smsgw needs"):
        check_schema(engine)
    engine.dispose()


def test_db_commands(tmp_path: Path) -> None:
    """`smsgw db status` exits 1 before and 0 after `smsgw db upgrade`."""
    config = tmp_path / "smsgw.yaml"
    source = Path("conf/smsgw.yaml").read_text()
    config.write_text(
        source.replace("sqlite:///data/smsgw.db", f"sqlite:///{tmp_path}/db/x.db")
    )
    ns = Namespace(config=str(config))
    out, err = io.StringIO(), io.StringIO()
    assert db_status(ns, out, err) == 1
    assert "needs `smsgw db upgrade`" in out.getvalue()
    assert db_upgrade(ns, out, err) == 0
    assert "schema upgraded from empty to" in out.getvalue()
    assert db_status(ns, out, err) == 0
    assert db_upgrade(ns, out, err) == 0
    assert "already at revision" in out.getvalue()
    bad = tmp_path / "bad.yaml"
    bad.write_text("intake: {}\n")
    assert db_upgrade(Namespace(config=str(bad)), out, err) == 2
