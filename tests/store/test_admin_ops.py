"""The admin actions' store operations (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

from smsgw.store.admin_ops import AuditEntry, Requeue, audit_op, requeue_op
from smsgw.store.delivery import receipt_op, sent_op
from smsgw.store.rows import ReceiptRecord, Sent, SentPart
from tests.store.helpers import ACCEPT, NOW, hasher, item, run, txn


def test_requeue_sends_failed_alerts_again_and_leaves_others(
    engine: Engine, tmp_path: Path
) -> None:
    """A failed alert is queued again for this node (fresh TTL, its old parts
    cleared so it can be sent whole); a delivered or unknown id is left alone."""
    h = hasher(tmp_path)
    out = run(engine, ACCEPT, [item(txn(h, txn_id=i)) for i in ("a", "b")])
    failed, other = (o.queued[0] for o in out)
    run(engine, sent_op, [Sent(failed.id, "sim", (SentPart(1, "m1"),), 1, NOW + 1)])
    run(engine, receipt_op, [ReceiptRecord("sim", "m1", "UNDELIV", "001", NOW + 2)])
    [again] = run(
        engine,
        requeue_op,
        [Requeue((failed.id, other.id, "nope"), "n2", NOW + 10, 60.0, 600.0)],
    )
    assert [(a.id, a.attempts, a.expires_at) for a in again] == [
        (failed.id, 0, NOW + 610)
    ]
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT status, claimed_by, last_error FROM alerts WHERE id = :i"),
            {"i": failed.id},
        ).one()
        parts = conn.execute(
            text("SELECT COUNT(*) FROM parts WHERE alert_id = :i"), {"i": failed.id}
        ).scalar_one()
    assert (row.status, row.claimed_by, row.last_error, parts) == (
        "queued",
        "n2",
        None,
        0,
    )
    # Sent again: the part rows come back without a clash.
    run(engine, sent_op, [Sent(failed.id, "sim", (SentPart(1, "m9"),), 1, NOW + 20)])


def test_audit_entries(engine: Engine) -> None:
    """Admin actions land in the audit trail with actor, subject and detail."""
    run(
        engine,
        audit_op,
        [AuditEntry(NOW, "admin-api:admin", "carrier.pause", "sim", {"changed": True})],
    )
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM audit")).one()
    assert (row.actor, row.action, row.subject, row.detail) == (
        "admin-api:admin",
        "carrier.pause",
        "sim",
        '{"changed":true}',
    )


def test_a_test_alert_is_queued_like_any_alert(engine: Engine) -> None:
    """Queued for this node with no transaction, priority 1, TTL from now."""
    from smsgw.store.admin_ops import TestAlert, test_alert_op

    [alert] = run(
        engine,
        test_alert_op,
        [
            TestAlert(
                "+8613800138000",
                "test 测试",
                "default",
                "95588",
                "n1",
                NOW,
                60.0,
                600.0,
            )
        ],
    )
    assert (alert.destination, alert.priority, alert.expires_at) == (
        "+8613800138000",
        1,
        NOW + 600,
    )
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT * FROM alerts WHERE id = :i"), {"i": alert.id}
        ).one()
    assert (row.audience, row.ref, row.encoding, row.claimed_by) == (
        "test",
        None,
        "ucs2",
        "n1",
    )
