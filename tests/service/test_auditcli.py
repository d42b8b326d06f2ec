"""``smsgw audit verify|export`` against a chain the writer built."""

from __future__ import annotations

import io
import json
from argparse import Namespace
from pathlib import Path

import yaml
from sqlalchemy import text

from smsgw.service.auditcli import audit_export, audit_verify
from smsgw.store.chain import forget, load_audit_signer, seal
from smsgw.store.db import make_engine, upgrade
from tests.store.helpers import ACCEPT, NOW, hasher, item, test_vault, txn


def test_verify_and_export(tmp_path: Path) -> None:
    """Intact: exit 0; a changed alert: exit 1 naming it; export prints the
    latest head with its public key."""
    db = tmp_path / "smsgw.db"
    config = tmp_path / "smsgw.yaml"
    data = yaml.safe_load(Path("conf/smsgw.yaml").read_text())
    data["database"]["url"] = f"sqlite:///{db}"
    data["keys_dir"] = str(tmp_path / "keys")
    config.write_text(yaml.safe_dump(data, allow_unicode=True))
    engine = make_engine(f"sqlite:///{db}", vault=test_vault())
    upgrade(engine)
    ns = Namespace(config=str(config))
    out, err = io.StringIO(), io.StringIO()
    assert audit_export(ns, out, err) == 1  # nothing chained yet
    signer = load_audit_signer(tmp_path / "keys")
    with engine.begin() as conn:
        forget(conn)
        [accepted] = ACCEPT.run(conn, [item(txn(hasher(tmp_path)))])
        seal(conn, signer, NOW)
    assert audit_verify(ns, out, err) == 0
    assert "audit chain intact: 2 entries" in out.getvalue()
    out = io.StringIO()
    assert audit_export(ns, out, err) == 0
    head = json.loads(out.getvalue())
    assert (head["seq"], head["key_id"], head["public_key"]) == (
        2,
        "k1",
        signer.public_hex(),
    )
    alert = accepted.queued[0].id
    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE alerts SET status = 'delivered' WHERE id = '{alert}'")
        )
    out = io.StringIO()
    assert audit_verify(ns, out, err) == 1
    assert f"alert {alert}: altered since chain entry" in out.getvalue()
    assert audit_verify(Namespace(config=str(tmp_path / "nope.yaml")), out, err) == 2


def test_refuses_a_key_file_others_can_read(tmp_path: Path) -> None:
    """An audit key readable by group or others stops verify and export (exit 2,
    naming the file and the chmod), as it stops the gateway's start."""
    config = tmp_path / "smsgw.yaml"
    data = yaml.safe_load(Path("conf/smsgw.yaml").read_text())
    data["database"]["url"] = f"sqlite:///{tmp_path / 'smsgw.db'}"
    data["keys_dir"] = str(tmp_path / "keys")
    config.write_text(yaml.safe_dump(data, allow_unicode=True))
    load_audit_signer(tmp_path / "keys")
    key = tmp_path / "keys" / "audit-k1.key"
    key.chmod(0o640)
    ns = Namespace(config=str(config))
    for command in (audit_verify, audit_export):
        out, err = io.StringIO(), io.StringIO()
        assert command(ns, out, err) == 2
        assert f"{key}: readable by group or others (mode 640)" in err.getvalue()
        assert out.getvalue() == ""
