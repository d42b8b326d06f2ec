"""The schema belongs to Alembic: migrations build exactly the tables the code
uses, and the gateway and the CLI tell an operator when to upgrade."""

from __future__ import annotations

import io
from argparse import Namespace
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect, text

from smsgw.service.dbcli import db_status, db_upgrade
from smsgw.store.chain import audit_public_keys, load_audit_signer, seal, verify
from smsgw.store.db import (
    SchemaError,
    check_schema,
    current_revision,
    head_revision,
    make_engine,
    upgrade,
)
from smsgw.store.keys import KeyFileError
from smsgw.store.pii import NOTIFY, WEBHOOK
from smsgw.store.schema import metadata
from tests.store.helpers import test_vault


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


def test_the_known_head_is_the_scripts_head() -> None:
    """`HEAD` (what the gateway checks without importing Alembic) is the newest
    migration script: add a migration, move HEAD with it."""
    from smsgw.store.db import HEAD, scripts_head

    assert head_revision() == HEAD == scripts_head()


def test_checking_the_schema_does_not_import_alembic(db_url: str) -> None:
    """The gateway and its store process check the schema and open engines
    without Alembic (~11 MB of memory in each process)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from smsgw.store.db import check_schema, make_engine, upgrade\n"
        f"engine = make_engine({db_url!r})\n"
        "try:\n"
        "    check_schema(engine)\n"
        "except Exception as e:\n"
        "    print(type(e).__name__)\n"
        "import smsgw.store.remote, smsgw.service.gateway\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('alembic', 'mako')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[-2] == "[]"


def _downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    from smsgw.store.db import _alembic_config, migrating

    cfg = _alembic_config()
    with migrating(engine) as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_an_older_database_upgrades_with_its_rows_and_downgrades(db_url: str) -> None:
    """A database at 0001 holding an MO message upgrades to head (the new columns
    get their defaults) and downgrades back to exactly 0001."""
    engine = make_engine(db_url, vault=test_vault())
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
    _downgrade(engine, "0001")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        source = conn.execute(text("SELECT source FROM mo_messages")).scalar_one()
    assert source == "8613800138000"
    assert any(d[0] == "add_table" and d[1].name == "opt_outs" for d in diff)
    assert upgrade(engine) == ("0001", head_revision())
    engine.dispose()


_CLEAR_ROWS = [
    "INSERT INTO transactions (ref, issuer, terminal_id, txn_id, content_digest, "
    "kind, result, amount, amount_minor, currency, last4, merchant_id, local_time, "
    "msisdn, alerts, received_at) VALUES ('r1', 'default', 'T1', 'x1', :d, "
    "'purchase', 'approved', '1.00', 100, 'CNY', '7894', 'M1', 't', "
    "'+8613800138000', 1, 1.0)",
    "INSERT INTO alerts (id, ref, issuer, audience, destination, lang, text, "
    "encoding, parts, priority, status, attempts, created_at, updated_at, "
    "not_before, expires_at) VALUES ('r1.1', 'r1', 'default', 'cardholder', "
    "'+8613800138000', 'en', 'hi', 'gsm7', 1, 1, 'delivered', 1, 1.0, 1.0, 1.0, 9.0)",
    "INSERT INTO parts (alert_id, part_no, carrier, message_id, status, "
    "submitted_at) VALUES ('r1.1', 1, 'sim', 'm1', 'delivered', 1.0)",
    "INSERT INTO mo_messages (carrier, source, destination, text, received_at, "
    "msisdn) VALUES ('sim', '8613800138000', '95588', 'N', 1.0, '+8613800138000')",
    "INSERT INTO mo_parts (group_key, carrier, source, destination, data_coding, "
    "ref, total, seq, method, data, received_at) VALUES "
    "('8613911112222|95588|7|2|udh', 'sim', '8613911112222', '95588', 0, 7, 2, 1, "
    "'udh', :d, 1.0)",
    "INSERT INTO opt_outs (issuer, msisdn, at, via) VALUES "
    "('default', '+8613800138000', 1.0, 'sms')",
    "INSERT INTO webhooks (issuer, event, ref, url, body, status, attempts, "
    "created_at, next_at) VALUES ('default', 'not_me', 'r1', 'https://x', "
    ":body, 'pending', 0, 1.0, 1.0)",
    "INSERT INTO merchants (issuer, merchant_id, name, notify, templates, "
    "created_at, updated_at) VALUES ('default', 'M1', 'Shop', "
    "'+8613922223333 +8613944445555', '{}', 1.0, 1.0)",
    "INSERT INTO merchants (issuer, merchant_id, name, notify, templates, "
    "created_at, updated_at) VALUES ('default', 'M2', 'Quiet', '', '{}', 1.0, 1.0)",
    "INSERT INTO subscribers (issuer, card_token, msisdn, opted_out, created_at, "
    "updated_at) VALUES ('default', 'tok1', '+8613966667777', false, 1.0, 1.0)",
    # registry changes were audited with the number whole before 0004
    "INSERT INTO audit (at, issuer, actor, action, subject, detail) VALUES "
    "(1.0, 'default', 'cli', 'subscriber.add', 'token tok1', "
    '\'{"msisdn":"+8613966667777"}\')',
]
_NUMBERS = (
    "8613800138000",
    "8613911112222",
    "8613922223333",
    "8613944445555",
    "8613966667777",
)


def _dump(conn: Connection) -> str:
    """Every value of every table, as text (to look for numbers in clear)."""
    out = []
    present = set(inspect(conn).get_table_names())
    for table in metadata.sorted_tables:
        if table.name not in present:
            continue
        for row in conn.execute(text(f"SELECT * FROM {table.name}")):
            out.extend(
                bytes(v).decode("latin-1")
                if isinstance(v, (bytes, memoryview))
                else str(v)
                for v in row
            )
    return "\n".join(out)


def test_numbers_stored_before_0004_are_sealed_and_indexed(
    db_url: str, tmp_path: Path
) -> None:
    """Upgrading a 0003 database that holds numbers in every place seals each
    one (no number left in clear), fills the blind indexes the look-ups use,
    and downgrading opens them again; without the keys the upgrade refuses
    before changing anything."""
    v = test_vault()
    signer = load_audit_signer(tmp_path / "keys")
    bare = make_engine(db_url)
    upgrade(bare, "0003")
    with bare.begin() as conn:
        for sql in _CLEAR_ROWS:
            conn.execute(
                text(sql), {"d": b"\x00" * 32, "body": b'{"from":"+8613800138000"}'}
            )
        seal(conn, signer, 2.0)  # the audit row is chained and signed
    with pytest.raises(KeyFileError, match="run `smsgw db upgrade --config FILE`"):
        upgrade(bare)
    assert current_revision(bare) == "0003"
    bare.dispose()

    engine = make_engine(db_url, vault=v)
    assert upgrade(engine, audit_signer=signer) == ("0003", head_revision())
    with engine.connect() as conn:
        dump = _dump(conn)
        assert not [n for n in _NUMBERS if n in dump]
        number = "+8613800138000"
        txn = conn.execute(text("SELECT msisdn FROM transactions")).scalar_one()
        alert = conn.execute(text("SELECT destination, dest_index FROM alerts")).one()
        mo = conn.execute(text("SELECT source, msisdn_index FROM mo_messages")).one()
        opt = conn.execute(text("SELECT msisdn, msisdn_index FROM opt_outs")).one()
        sub = conn.execute(text("SELECT msisdn, msisdn_index FROM subscribers")).one()
        body = conn.execute(text("SELECT body FROM webhooks")).scalar_one()
        notify = dict(
            conn.execute(text("SELECT merchant_id, notify FROM merchants")).all()
        )
        part = conn.execute(text("SELECT source, group_key FROM mo_parts")).one()
    assert v.open(txn) == v.open(alert.destination) == v.open(opt.msisdn) == number
    assert alert.dest_index == opt.msisdn_index == mo.msisdn_index == v.index(number)
    assert v.open(mo.source) == "8613800138000"
    assert (v.open(sub.msisdn), sub.msisdn_index) == (
        "+8613966667777",
        v.index("+8613966667777"),
    )
    assert v.open_bytes(body, WEBHOOK) == b'{"from":"+8613800138000"}'
    assert v.open(notify["M1"], NOTIFY) == "+8613922223333 +8613944445555"
    assert notify["M2"] == ""
    assert v.open(part.source) == "8613911112222"
    assert part.group_key == v.index("8613911112222|95588|7|2|udh")
    with engine.connect() as conn:
        detail = conn.execute(text("SELECT detail FROM audit")).scalar_one()
        assert detail == '{"msisdn":"+86139****7777"}'
        # masked and chained again under a signed head: the chain verifies
        assert verify(conn, audit_public_keys(tmp_path / "keys")) == []

    _downgrade(engine, "0003")
    with engine.connect() as conn:
        dump = _dump(conn)
        mo_number = conn.execute(text("SELECT msisdn FROM mo_messages")).scalar_one()
    assert all(n in dump for n in _NUMBERS[:1] + _NUMBERS[2:])
    assert mo_number == number
    assert upgrade(engine) == ("0003", head_revision())
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
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
