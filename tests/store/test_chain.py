"""The signed audit chain on SQLite and PostgreSQL: built batch by batch,
verified whole, and every kind of tampering named."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from smsgw.store.admin_ops import AuditEntry, audit_op
from smsgw.store.chain import AuditSigner, forget, load_audit_signer, seal, verify
from smsgw.store.delivery import receipt_op, sent_op
from smsgw.store.rows import ReceiptRecord, Sent, SentPart
from tests.store.helpers import ACCEPT, NOW, hasher, item, txn


def sealed(engine: Engine, signer: AuditSigner, op: Any, items: list[Any]) -> list[Any]:
    """Run ``op`` as the writer does: one transaction, sealed before commit."""
    with engine.begin() as conn:
        forget(conn)
        out = list(op.run(conn, items))
        seal(conn, signer, NOW)
    return out


@pytest.fixture
def chained(engine: Engine, tmp_path: Path) -> tuple[AuditSigner, list[str], Any]:
    """Two transactions accepted, sent, one delivered; an admin action."""
    signer = load_audit_signer(tmp_path / "keys")
    h = hasher(tmp_path)
    out = sealed(engine, signer, ACCEPT, [item(txn(h, txn_id=i)) for i in ("a", "b")])
    alerts = [o.queued[0].id for o in out]
    sealed(
        engine,
        signer,
        sent_op,
        [
            Sent(a, "sim", (SentPart(1, f"m{n}"),), 1, NOW + 1)
            for n, a in enumerate(alerts)
        ],
    )
    sealed(
        engine,
        signer,
        receipt_op,
        [ReceiptRecord("sim", "m0", "DELIVRD", None, NOW + 2)],
    )
    sealed(
        engine,
        signer,
        audit_op,
        [AuditEntry(NOW, "admin-api:admin", "carrier.pause", "sim")],
    )
    refs = [o.result.ref for o in out]
    return signer, refs, alerts


def keys(signer: AuditSigner) -> dict[str, str]:
    return {signer.key_id: signer.public_hex()}


def change(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for sql in statements:
            conn.execute(text(sql))


def problems(engine: Engine, signer: AuditSigner) -> list[str]:
    with engine.connect() as conn:
        return verify(conn, keys(signer))


def test_an_untouched_chain_verifies(engine: Engine, chained: Any) -> None:
    """Every state change is chained, heads are signed, the records match."""
    signer, _refs, _alerts = chained
    assert problems(engine, signer) == []
    with engine.connect() as conn:
        kinds = [
            r.kind
            for r in conn.execute(text("SELECT kind FROM audit_chain ORDER BY seq"))
        ]
        heads = conn.execute(text("SELECT COUNT(*) FROM audit_heads")).scalar_one()
    # accept: 2 txn + 2 alerts; sent: 2 alerts; receipt: 1 alert; the audit row
    assert sorted(kinds) == sorted(["txn"] * 2 + ["alert"] * 5 + ["audit"])
    assert heads == 4


Tamper = Callable[[Engine, list[str], list[str]], str]


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (
            lambda e, refs, alerts: change(
                e, f"UPDATE alerts SET status = 'failed' WHERE id = '{alerts[0]}'"
            ),
            "alert {a0}: altered since chain entry",
        ),
        (
            lambda e, refs, alerts: change(
                e, f"UPDATE transactions SET amount = '1.00' WHERE ref = '{refs[1]}'"
            ),
            "txn {r1}: altered since chain entry",
        ),
        (
            lambda e, refs, alerts: change(
                e,
                f"DELETE FROM parts WHERE alert_id = '{alerts[1]}'",
                f"DELETE FROM alerts WHERE id = '{alerts[1]}'",
            ),
            "alert {a1}: removed (chained at",
        ),
        (
            lambda e, refs, alerts: change(e, "UPDATE audit SET actor = 'nobody'"),
            "audit 1: altered since chain entry",
        ),
        (
            lambda e, refs, alerts: change(
                e, "UPDATE audit_chain SET digest = '00' WHERE seq = 3"
            ),
            "chain entry 3 (",
        ),
        (
            lambda e, refs, alerts: change(e, "DELETE FROM audit_chain WHERE seq = 5"),
            "chain entries 5 to 5 are missing",
        ),
        (
            lambda e, refs, alerts: change(
                e,
                "UPDATE audit_heads SET signature = (SELECT signature FROM audit_heads "
                "WHERE seq = (SELECT MIN(seq) FROM audit_heads)) "
                "WHERE seq = (SELECT MAX(seq) FROM audit_heads)",
            ),
            "the signature does not verify",
        ),
    ],
    ids=[
        "alert-status",
        "txn-amount",
        "alert-removed",
        "audit-row",
        "entry",
        "gap",
        "sig",
    ],
)
def test_tampering_is_named(
    engine: Engine, chained: Any, tamper: Tamper, expected: str
) -> None:
    """Each change made behind the gateway's back is reported, naming the record."""
    signer, refs, alerts = chained
    tamper(engine, refs, alerts)
    found = problems(engine, signer)
    wanted = expected.format(a0=alerts[0], a1=alerts[1], r1=refs[1])
    assert any(wanted in p for p in found), found


def test_audit_rows_written_elsewhere_are_chained_at_the_next_seal(
    engine: Engine, chained: Any
) -> None:
    """A registry change by the CLI (another process) joins the chain with the
    gateway's next batch."""
    signer, _refs, _alerts = chained
    change(
        engine,
        "INSERT INTO audit (at, issuer, actor, action, subject, detail) "
        "VALUES (1, 'default', 'cli', 'subscriber.add', '622202******7894', '{}')",
    )
    with engine.begin() as conn:
        seal(conn, signer, NOW + 9)
    with engine.connect() as conn:
        last = conn.execute(
            text("SELECT kind, ref FROM audit_chain ORDER BY seq DESC LIMIT 1")
        ).one()
    assert (last.kind, last.ref) == ("audit", "2")
    assert problems(engine, signer) == []
