"""Parts, receipts and claims in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import gc
from pathlib import Path

from sqlalchemy import Engine, select

from smsgw.store import schema as S
from smsgw.store.claims import Claim, Renew, claim_op, release_op, renew_op
from smsgw.store.delivery import receipt_op, sent_op, update_op
from smsgw.store.rows import AlertUpdate, ReceiptRecord, Sent, SentPart
from tests.store.helpers import ACCEPT, NOW, hasher, item, run, txn


def _alert(engine: Engine, tmp_path: Path, txn_id: str = "000123") -> str:
    [out] = run(engine, ACCEPT, [item(txn(hasher(tmp_path), txn_id=txn_id))])
    return str(out.queued[0].id)


def _status(engine: Engine, alert_id: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                select(S.alerts.c.status).where(S.alerts.c.id == alert_id)
            ).scalar()
        )


def _parts(engine: Engine, alert_id: str) -> list[tuple[int, str, str]]:
    p = S.parts
    with engine.connect() as conn:
        q = select(p.c.part_no, p.c.message_id, p.c.status).where(
            p.c.alert_id == alert_id
        )
        return [tuple(r) for r in conn.execute(q.order_by(p.c.part_no))]  # type: ignore[misc]


def _sent(alert_id: str, *ids: str) -> Sent:
    return Sent(
        alert_id, "sim", tuple(SentPart(n, m) for n, m in enumerate(ids, 1)), 1, NOW
    )


def _receipt(
    message_id: str, stat: str = "DELIVRD", at: float = NOW + 1
) -> ReceiptRecord:
    return ReceiptRecord("sim", message_id, stat, "000", at)


def test_sent_then_receipt_delivers(engine: Engine, tmp_path: Path) -> None:
    """Submitted parts and a DELIVRD receipt make the alert delivered."""
    a = _alert(engine, tmp_path)
    run(engine, sent_op, [_sent(a, "m1")])
    assert _status(engine, a) == "submitted"
    run(engine, receipt_op, [_receipt("m1")])
    assert _status(engine, a) == "delivered"
    assert _parts(engine, a) == [(1, "m1", "delivered")]


def test_all_parts_must_be_delivered(engine: Engine, tmp_path: Path) -> None:
    """A two-part alert is delivered only when both parts are."""
    a = _alert(engine, tmp_path)
    run(engine, sent_op, [_sent(a, "m1", "m2")])
    run(engine, receipt_op, [_receipt("m1")])
    assert _status(engine, a) == "submitted"
    run(engine, receipt_op, [_receipt("m2")])
    assert _status(engine, a) == "delivered"


def test_one_failed_part_fails_the_alert(engine: Engine, tmp_path: Path) -> None:
    """UNDELIV on one part fails the alert; EXPIRED alone expires it."""
    a = _alert(engine, tmp_path, "t1")
    b = _alert(engine, tmp_path, "t2")
    run(engine, sent_op, [_sent(a, "a1", "a2"), _sent(b, "b1")])
    run(
        engine,
        receipt_op,
        [_receipt("a1"), _receipt("a2", "UNDELIV"), _receipt("b1", "EXPIRED")],
    )
    assert (_status(engine, a), _status(engine, b)) == ("failed", "expired")


def test_receipt_before_submit_resp_is_matched_later(
    engine: Engine, tmp_path: Path
) -> None:
    """A receipt stored before its part is applied when the part is recorded."""
    a = _alert(engine, tmp_path)
    run(engine, receipt_op, [_receipt("m1")])
    with engine.connect() as conn:
        [r] = conn.execute(select(S.receipts)).all()
    assert r.matched is False
    run(engine, sent_op, [_sent(a, "m1")])
    assert _status(engine, a) == "delivered"
    with engine.connect() as conn:
        assert conn.execute(select(S.receipts.c.matched)).scalar() is True


def test_final_states_stay_final_and_duplicates_change_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    """A later UNDELIV or a repeated receipt does not undo DELIVRD."""
    a = _alert(engine, tmp_path)
    run(engine, sent_op, [_sent(a, "m1")])
    run(engine, receipt_op, [_receipt("m1"), _receipt("m1")])
    run(engine, receipt_op, [_receipt("m1", "UNDELIV", NOW + 5)])
    assert _status(engine, a) == "delivered"
    assert _parts(engine, a) == [(1, "m1", "delivered")]


def test_intermediate_receipt_keeps_the_part_open(
    engine: Engine, tmp_path: Path
) -> None:
    """ENROUTE/ACCEPTD are recorded but leave the part submitted."""
    a = _alert(engine, tmp_path)
    run(engine, sent_op, [_sent(a, "m1")])
    run(engine, receipt_op, [_receipt("m1", "ENROUTE")])
    assert _parts(engine, a) == [(1, "m1", "submitted")]
    run(engine, receipt_op, [_receipt("m1")])
    assert _status(engine, a) == "delivered"


def test_unknown_receipt_is_kept_unmatched(engine: Engine, tmp_path: Path) -> None:
    """A receipt for an id nobody sent is stored (for later matching), not an error."""
    run(engine, receipt_op, [_receipt("nobody")])
    with engine.connect() as conn:
        assert conn.execute(select(S.receipts.c.matched)).scalar() is False


def test_retry_update_then_failure(engine: Engine, tmp_path: Path) -> None:
    """A retry keeps the alert queued with attempts and error; failed is final."""
    a = _alert(engine, tmp_path)
    run(
        engine,
        update_op,
        [AlertUpdate(a, "queued", 1, "ESME_RTHROTTLED", NOW + 2, NOW)],
    )
    with engine.connect() as conn:
        row = conn.execute(select(S.alerts).where(S.alerts.c.id == a)).one()
    assert (row.status, row.attempts, row.last_error, row.not_before) == (
        "queued",
        1,
        "ESME_RTHROTTLED",
        NOW + 2,
    )
    run(engine, update_op, [AlertUpdate(a, "failed", 2, "ESME_RINVDSTADR", NOW, NOW)])
    run(engine, update_op, [AlertUpdate(a, "queued", 3, "late", NOW, NOW)])
    assert _status(engine, a) == "failed"


def test_claims_take_free_and_expired_alerts_only(
    engine: Engine, tmp_path: Path
) -> None:
    """Another node cannot claim a leased alert; after the lease it can."""
    a = _alert(engine, tmp_path)  # claimed by n1 until NOW + 60
    [[]] = run(engine, claim_op, [Claim("n2", NOW + 30, 60, 100, reclaim_own=False)])
    [[got]] = run(engine, claim_op, [Claim("n2", NOW + 61, 60, 100, reclaim_own=False)])
    assert got.id == a
    with engine.connect() as conn:
        row = conn.execute(select(S.alerts).where(S.alerts.c.id == a)).one()
    assert (row.claimed_by, row.claimed_until) == ("n2", NOW + 121)


def test_a_restarted_node_reclaims_its_own_alerts_at_once(
    engine: Engine, tmp_path: Path
) -> None:
    """After a crash the same node takes its leased alerts back without waiting."""
    a = _alert(engine, tmp_path)
    [[got]] = run(engine, claim_op, [Claim("n1", NOW + 1, 60, 100, reclaim_own=True)])
    assert got.id == a


def test_claims_skip_alerts_not_due_and_submitted_ones(
    engine: Engine, tmp_path: Path
) -> None:
    """Only queued alerts whose time has come are claimed."""
    a = _alert(engine, tmp_path, "t1")
    b = _alert(engine, tmp_path, "t2")
    run(engine, update_op, [AlertUpdate(a, "queued", 1, "x", NOW + 500, NOW)])
    run(engine, sent_op, [_sent(b, "m1")])
    [[]] = run(engine, claim_op, [Claim("n1", NOW + 100, 60, 100)])
    [[got]] = run(engine, claim_op, [Claim("n1", NOW + 500, 60, 100)])
    assert got.id == a
    assert got.attempts == 1


def test_renew_and_release(engine: Engine, tmp_path: Path) -> None:
    """Renewal extends this node's leases; release hands alerts back to the queue."""
    a = _alert(engine, tmp_path)
    assert run(engine, renew_op, [Renew("n1", NOW + 500, (a,))]) == [1]
    [[]] = run(engine, claim_op, [Claim("n2", NOW + 100, 60, 100, reclaim_own=False)])
    run(engine, release_op, [(a,)])
    [[got]] = run(
        engine, claim_op, [Claim("n2", NOW + 100, 60, 100, reclaim_own=False)]
    )
    assert got.id == a


def test_renewals_and_releases_of_thousands_leave_no_garbage(
    engine: Engine, tmp_path: Path
) -> None:
    """A node holding thousands of alerts renews them in chunks (the count is
    exact across chunks, unknown ids are skipped), and a renewal or release
    leaves no reference cycles behind: during an SMSC outage the store
    process renews every 20 s and allocates too little for the collector to
    run, so garbage per renewal would pile up for as long as the outage lasts."""
    held = [_alert(engine, tmp_path, f"t{i}") for i in range(3)]
    ids = (*held, *(f"unknown{i}.1" for i in range(1200)))
    run(engine, renew_op, [Renew("n1", NOW + 500, ids)])  # warm caches
    gc.collect()
    gc.disable()
    try:
        for _ in range(5):
            assert run(engine, renew_op, [Renew("n1", NOW + 500, ids)]) == [3]
        assert gc.collect() == 0
        run(engine, release_op, [ids])
        assert gc.collect() == 0
    finally:
        gc.enable()
    [got] = run(engine, claim_op, [Claim("n2", NOW + 100, 60, 100, reclaim_own=False)])
    assert {g.id for g in got} == set(held)


def test_two_claimers_never_take_the_same_alert(engine: Engine, tmp_path: Path) -> None:
    """Concurrent claims split the queue (FOR UPDATE SKIP LOCKED on PostgreSQL)."""
    ids = {_alert(engine, tmp_path, f"t{i}") for i in range(6)}
    later = NOW + 1000
    with engine.connect() as c1, engine.connect() as c2:
        t1 = c1.begin()
        first = claim_op.run(c1, [Claim("n2", later, 60, 3, reclaim_own=False)])[0]
        if engine.dialect.name == "postgresql":
            # While n2's transaction holds its rows, n3 skips them.
            t2 = c2.begin()
            second = claim_op.run(c2, [Claim("n3", later, 60, 10, reclaim_own=False)])[
                0
            ]
            t2.commit()
            t1.commit()
        else:
            t1.commit()
            second = claim_op.run(c2, [Claim("n3", later, 60, 10, reclaim_own=False)])[
                0
            ]
            c2.commit()
    taken_1 = {a.id for a in first}
    taken_2 = {a.id for a in second}
    assert len(taken_1) == 3
    assert not taken_1 & taken_2
    assert taken_1 | taken_2 == ids


def test_renewal_covers_only_alerts_still_held(engine: Engine, tmp_path: Path) -> None:
    """An alert this node claimed but no longer holds is not renewed: its lease
    lapses and another claim takes it."""
    held = _alert(engine, tmp_path, "t1")
    orphan = _alert(engine, tmp_path, "t2")
    assert run(engine, renew_op, [Renew("n1", NOW + 500, (held,))]) == [1]
    [got] = run(engine, claim_op, [Claim("n1", NOW + 61, 60, 100, reclaim_own=False)])
    assert [g.id for g in got] == [orphan]


def test_single_process_store_takes_back_every_claimed_alert(
    engine: Engine, tmp_path: Path
) -> None:
    """reclaim_any (SQLite) takes alerts claimed under any node name, leases or not."""
    a = _alert(engine, tmp_path)  # claimed by n1 until NOW + 60
    [[got]] = run(
        engine, claim_op, [Claim("host-42", NOW + 1, 60, 100, reclaim_any=True)]
    )
    assert got.id == a


def test_after_a_failover_the_new_carriers_parts_replace_the_old(
    engine: Engine, tmp_path: Path
) -> None:
    """Part 1 taken by carrier a, then every part resent on b: b's message ids
    are recorded and b's receipts deliver the alert."""
    alert_id = _alert(engine, tmp_path)
    run(
        engine,
        update_op,
        [
            AlertUpdate(
                alert_id,
                "queued",
                1,
                "ESME_RTHROTTLED",
                NOW,
                NOW,
                "a",
                (SentPart(1, "a-1"),),
            )
        ],
    )
    moved = Sent(alert_id, "b", (SentPart(1, "b-1"), SentPart(2, "b-2")), 2, NOW)
    run(engine, sent_op, [moved])
    p = S.parts
    with engine.connect() as conn:
        rows = conn.execute(
            select(p.c.part_no, p.c.carrier, p.c.message_id).order_by(p.c.part_no)
        ).all()
    assert [tuple(r) for r in rows] == [(1, "b", "b-1"), (2, "b", "b-2")]
    run(
        engine,
        receipt_op,
        [
            ReceiptRecord("b", "b-1", "DELIVRD", None, NOW + 1),
            ReceiptRecord("b", "b-2", "DELIVRD", None, NOW + 1),
        ],
    )
    assert _status(engine, alert_id) == "delivered"


def test_a_partly_sent_alert_keeps_the_parts_the_same_carrier_took(
    engine: Engine, tmp_path: Path
) -> None:
    """Part 1 taken, part 2 throttled, part 2 resent on the same carrier: both
    parts recorded once, with their own ids."""
    alert_id = _alert(engine, tmp_path)
    run(
        engine,
        update_op,
        [
            AlertUpdate(
                alert_id, "queued", 1, "x", NOW, NOW, "sim", (SentPart(1, "m1"),)
            )
        ],
    )
    run(
        engine,
        sent_op,
        [Sent(alert_id, "sim", (SentPart(1, "m1"), SentPart(2, "m2")), 2, NOW)],
    )
    assert _parts(engine, alert_id) == [(1, "m1", "submitted"), (2, "m2", "submitted")]


def test_rematch_applies_receipts_that_beat_their_part_from_another_process(
    engine: Engine, tmp_path: Path
) -> None:
    """A receipt left unmatched (its part was committed by another process after
    the look-up) is applied by the periodic re-match; a second run finds none."""
    from smsgw.store.delivery import rematch_op

    alert_id = _alert(engine, tmp_path)
    run(engine, receipt_op, [_receipt("m1")])  # no part yet: unmatched
    # The part arrives the way another process's sent_op would have written it
    # had it not seen the receipt (no early matching here).
    with engine.begin() as conn:
        conn.execute(
            S.parts.insert(),
            [
                {
                    "alert_id": alert_id,
                    "part_no": 1,
                    "carrier": "sim",
                    "message_id": "m1",
                    "status": "submitted",
                    "error": None,
                    "submitted_at": NOW,
                    "done_at": None,
                }
            ],
        )
        conn.execute(
            S.alerts.update()
            .where(S.alerts.c.id == alert_id)
            .values(status="submitted")
        )
    assert run(engine, rematch_op, [1000]) == [1]
    assert _status(engine, alert_id) == "delivered"
    assert run(engine, rematch_op, [1000]) == [0]
