"""Online SQLite backup while the gateway writes, and a restore from it."""

from __future__ import annotations

import io
import sqlite3
import stat
import threading
from argparse import Namespace
from pathlib import Path

import pytest

from smsgw.service.dbcli import db_backup, db_restore
from smsgw.store.backup import BackupError, backup, inspect, restore
from smsgw.store.db import head_revision, make_engine, upgrade
from tests.store.helpers import ACCEPT, hasher, item, run, test_vault, txn


def _db(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "smsgw.db"
    engine = make_engine(f"sqlite:///{path}", vault=test_vault())
    upgrade(engine)
    h = hasher(tmp_path)
    run(engine, ACCEPT, [item(txn(h, txn_id=f"t{i}")) for i in range(50)])
    engine.dispose()
    return path


def test_a_backup_taken_while_commits_go_on_is_one_commit_s_state(
    tmp_path: Path,
) -> None:
    """Another connection keeps committing transaction + alert pairs during the
    backup: the copy checks out, is at the current revision, has mode 0600, and
    holds whole pairs only (never a transaction without its alert)."""
    path = _db(tmp_path)
    stop = threading.Event()

    def writer() -> None:
        conn = sqlite3.connect(path, timeout=10)
        n = 0
        while not stop.is_set():
            n += 1
            with conn:  # one commit: both rows or neither
                conn.execute(
                    "INSERT INTO audit (at, issuer, actor, action, subject, detail) "
                    "VALUES (?, 'default', 'test', 'pair', ?, '{}')",
                    (n, f"a{n}"),
                )
                conn.execute(
                    "INSERT INTO audit (at, issuer, actor, action, subject, detail) "
                    "VALUES (?, 'default', 'test', 'pair', ?, '{}')",
                    (n, f"b{n}"),
                )
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        infos = [backup(path, tmp_path / f"b{i}.db") for i in range(5)]
    finally:
        stop.set()
        thread.join()
    for info in infos:
        assert info.revision == head_revision()
        assert (info.transactions, info.alerts) == (50, 50)
        assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
        conn = sqlite3.connect(info.path)
        pairs = conn.execute(
            "SELECT COUNT(*) FROM audit WHERE action = 'pair'"
        ).fetchone()[0]
        conn.close()
        assert pairs % 2 == 0
    with pytest.raises(BackupError, match="exists"):
        backup(path, infos[0].path)


def test_restore_puts_the_backup_back(tmp_path: Path) -> None:
    """After a loss, restore brings back exactly what the backup held."""
    path = _db(tmp_path)
    saved = backup(path, tmp_path / "saved.db")
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM alerts")
        conn.execute("DELETE FROM transactions")
    conn.close()
    assert inspect(path).transactions == 0
    restored = restore(saved.path, path)
    assert restored.transactions == 50
    assert inspect(path).alerts == 50
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    with pytest.raises(BackupError, match="not a usable SQLite database"):
        restore(tmp_path / "junk.db", path)
    assert inspect(path).transactions == 50  # nothing was touched


def test_the_commands(tmp_path: Path) -> None:
    """`smsgw db backup` / `restore` on the configured file; restore wants --yes;
    a PostgreSQL URL is told to use pg_dump."""
    path = _db(tmp_path)
    config = tmp_path / "smsgw.yaml"
    source = Path("conf/smsgw.yaml").read_text()
    config.write_text(source.replace("sqlite:///data/smsgw.db", f"sqlite:///{path}"))
    out, err = io.StringIO(), io.StringIO()
    target = tmp_path / "nightly.db"
    assert (
        db_backup(Namespace(config=str(config), to=str(target), force=False), out, err)
        == 0
    )
    assert "50 transactions, 50 alerts" in out.getvalue()
    assert (
        db_backup(Namespace(config=str(config), to=str(target), force=False), out, err)
        == 1
    )
    ns = Namespace(config=str(config), source=str(target), yes=False)
    assert db_restore(ns, out, err) == 2
    assert "stop the gateway first" in err.getvalue()
    ns.yes = True
    assert db_restore(ns, out, err) == 0
    pg = tmp_path / "pg.yaml"
    pg.write_text(
        source.replace("sqlite:///data/smsgw.db", "postgresql+psycopg://u@h/db")
    )
    err = io.StringIO()
    assert db_backup(Namespace(config=str(pg), to="x", force=False), out, err) == 2
    assert "pg_dump --format=custom" in err.getvalue()
