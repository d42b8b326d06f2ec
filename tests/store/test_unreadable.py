"""One ciphertext this process cannot open (a key it does not have, or an
altered one) never stops claims, requeues, replies or accepts: the row is
failed, skipped or used without its number, with a warning that names the key
id and never a number nor a ciphertext (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, text
from twisted.logger import LogEvent, LogLevel, capturedLogs, formatEvent

from smsgw.feedback.mo import MoPart
from smsgw.store import schema as S
from smsgw.store.admin_ops import Requeue, requeue_op
from smsgw.store.chain import forget, load_audit_signer, seal, verify
from smsgw.store.claims import Claim, claim_op
from smsgw.store.delivery import receipt_op, sent_op
from smsgw.store.pii import NOTIFY, Vault, key_id
from smsgw.store.replies import MoItem, MoOutcome
from smsgw.store.rows import ReceiptRecord, Sent, SentPart
from tests.store.helpers import (
    ACCEPT,
    NOW,
    hasher,
    insert_subscriber,
    item,
    run,
    test_vault,
    txn,
)
from tests.store.test_replies import EXPIRE, MO

NUMBER = "+8613800138000"  # the test transaction's number
VAULT = test_vault()  # the one the ``engine`` fixture carries
OTHER = Vault({"k9": b"\x09" * 32}, {"k9": b"\x08" * 32})  # keys this process lacks


def altered(sealed: str) -> str:
    """``sealed`` with one character of its body changed (same key id)."""
    at = len(sealed) // 2
    return sealed[:at] + ("A" if sealed[at] != "A" else "B") + sealed[at + 1 :]


def warnings(events: Iterable[LogEvent]) -> list[LogEvent]:
    return [e for e in events if e["log_level"] == LogLevel.warn]


def assert_clean(events: Iterable[LogEvent], *secrets: str) -> None:
    """No event's text nor fields hold a number (digits) or a ciphertext."""
    for e in events:
        shown = formatEvent(e) + repr(
            {k: v for k, v in e.items() if not k.startswith("log_")}
        )
        for secret in secrets:
            assert secret not in shown
            assert secret.lstrip("+") not in shown


def one(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).one()


def set_destination(engine: Engine, alert_id: str, value: str, **more: Any) -> None:
    sets = ", ".join(f"{k} = :{k}" for k in ("destination", *more))
    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE alerts SET {sets} WHERE id = :i"),
            {"i": alert_id, "destination": value, **more},
        )


# -- claims ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "key_id"),
    [
        (OTHER.seal(NUMBER), "k9"),  # a key this process does not have
        (altered(VAULT.seal(NUMBER)), "k1"),  # altered
        (NUMBER, "?"),  # not a ciphertext at all: no key id, and no number shown
    ],
)
def test_a_claim_fails_the_unreadable_alert_and_claims_the_others(
    engine: Engine, tmp_path: Path, bad: str, key_id: str
) -> None:
    """The unreadable alert, first by priority, is failed (key id in
    last_error, released, chained) and the others are claimed; it never comes
    back."""
    h = hasher(tmp_path)
    out = run(engine, ACCEPT, [item(txn(h, txn_id=i)) for i in ("a", "b", "c")])
    first, *others = (o.queued[0].id for o in out)
    set_destination(engine, first, bad, priority=1)
    signer = load_audit_signer(tmp_path / "keys")
    later = NOW + 61  # the accepting node's lease has run out
    with capturedLogs() as events, engine.begin() as conn:
        forget(conn)
        [got] = claim_op.run(conn, [Claim("n2", later, 60, 100, reclaim_own=False)])
        seal(conn, signer, later)
    assert sorted(a.id for a in got) == sorted(others)
    assert {a.destination for a in got} == {NUMBER}
    row = one(engine, "SELECT * FROM alerts WHERE id = :i", i=first)
    assert (row.status, row.last_error, row.updated_at) == (
        S.FAILED,
        f"destination does not open (key {key_id})",
        later,
    )
    assert (row.claimed_by, row.claimed_until) == (None, None)
    with engine.connect() as conn:
        chained = conn.execute(
            text("SELECT kind, ref FROM audit_chain WHERE kind = 'alert'")
        ).all()
        assert ("alert", first) in [tuple(r) for r in chained]
        assert verify(conn, {signer.key_id: signer.public_hex()}) == []
    [warned] = warnings(events)
    assert (warned["alert_id"], warned["key_id"]) == (first, key_id)
    assert_clean(events, NUMBER, bad)
    # Once n2's lease runs out the others are claimed again, the failed one
    # never.
    [again] = run(engine, claim_op, [Claim("n3", later + 61, 60, 100)])
    assert sorted(a.id for a in again) == sorted(others)


def test_a_claim_of_only_unreadable_alerts_claims_nothing_and_fails_each(
    engine: Engine, tmp_path: Path
) -> None:
    h = hasher(tmp_path)
    out = run(engine, ACCEPT, [item(txn(h, txn_id=i)) for i in ("a", "b")])
    ids = [o.queued[0].id for o in out]
    for alert_id in ids:
        set_destination(engine, alert_id, OTHER.seal(NUMBER))
    with capturedLogs() as events:
        assert run(engine, claim_op, [Claim("n1", NOW + 1, 60, 10)]) == [[]]
    assert sorted(e["alert_id"] for e in warnings(events)) == sorted(ids)
    with engine.connect() as conn:
        statuses = conn.execute(text("SELECT status FROM alerts")).scalars().all()
    assert statuses == [S.FAILED, S.FAILED]


def test_key_id_only_shows_a_key_id() -> None:
    assert key_id(OTHER.seal(NUMBER)) == "k9"
    assert key_id(NUMBER) == "?"
    assert key_id("8613800138000:abc") == "?"
    assert key_id(None) == "?"
    assert key_id(OTHER.seal_bytes(b"x", NOTIFY)) == "k9"


# -- requeue -----------------------------------------------------------------


def test_requeue_skips_an_unreadable_alert_and_leaves_it_as_it_is(
    engine: Engine, tmp_path: Path
) -> None:
    h = hasher(tmp_path)
    out = run(engine, ACCEPT, [item(txn(h, txn_id=i)) for i in ("a", "b")])
    bad, good = (o.queued[0].id for o in out)
    run(
        engine,
        sent_op,
        [
            Sent(alert_id, "sim", (SentPart(1, f"m{n}"),), 1, NOW + 1)
            for n, alert_id in enumerate((bad, good))
        ],
    )
    run(
        engine,
        receipt_op,
        [ReceiptRecord("sim", m, "UNDELIV", "001", NOW + 2) for m in ("m0", "m1")],
    )
    set_destination(engine, bad, OTHER.seal(NUMBER))
    before = one(engine, "SELECT * FROM alerts WHERE id = :i", i=bad)
    with capturedLogs() as events:
        [again] = run(
            engine, requeue_op, [Requeue((bad, good), "n2", NOW + 10, 60.0, 600.0)]
        )
    assert [(a.id, a.destination) for a in again] == [(good, NUMBER)]
    assert one(engine, "SELECT * FROM alerts WHERE id = :i", i=bad) == before
    assert before.status == S.FAILED
    parts = one(engine, "SELECT COUNT(*) AS n FROM parts WHERE alert_id = :i", i=bad).n
    assert parts == 1  # its parts stay too
    assert one(engine, "SELECT status FROM alerts WHERE id = :i", i=good).status == (
        S.QUEUED
    )
    [warned] = warnings(events)
    assert (warned["alert_id"], warned["key_id"]) == (bad, "k9")
    assert_clean(events, NUMBER, before.destination)


# -- replies -----------------------------------------------------------------


def part(
    body: str, source: str, ref: int | None = None, total: int = 1, seq: int = 1
) -> MoPart:
    method = "udh" if total > 1 else "single"
    return MoPart(source, "95588", 8, ref, total, seq, body.encode("utf-16-be"), method)  # type: ignore[arg-type]


def spoil_parts(engine: Engine, ref: int) -> list[int]:
    """Re-seal the sender of the stored parts with reference ``ref`` under a
    key this process does not have; their ids."""
    with engine.begin() as conn:
        found = conn.execute(
            text("SELECT id, source FROM mo_parts WHERE ref = :r"), {"r": ref}
        ).all()
        for row in found:
            conn.execute(
                text("UPDATE mo_parts SET source = :s WHERE id = :i"),
                {"s": OTHER.seal(VAULT.open(row.source)), "i": row.id},
            )
    return [row.id for row in found]


def test_an_unreadable_part_neither_blocks_new_replies_nor_expiry(
    engine: Engine,
) -> None:
    """Group 1: part 1 unreadable, part 2 arrives after (stored, waits);
    group 2: readable; group 3: its only part unreadable. At the timeout
    groups 1 (without the bad part) and 2 are assembled, group 3 is dropped,
    and no part is left."""
    one_, two, three = "8613800138000", "8613900000001", "8613700000003"
    run(engine, MO, [MoItem("sim", part("第一", one_, 3, 2, 1), NOW)])
    run(engine, MO, [MoItem("sim", part("你好", two, 4, 3, 1), NOW)])
    run(engine, MO, [MoItem("sim", part("再见", three, 5, 2, 1), NOW)])
    [bad1] = spoil_parts(engine, 3)
    [bad3] = spoil_parts(engine, 5)
    with capturedLogs() as events:
        [waiting] = run(
            engine, MO, [MoItem("sim", part("第二", one_, 3, 2, 2), NOW + 1)]
        )
        [whole] = run(engine, MO, [MoItem("sim", part("Y", one_), NOW + 2)])
    assert waiting == MoOutcome(None)
    assert whole.mo_id is not None
    [left_out] = warnings(events)
    assert (left_out["part_id"], left_out["key_id"]) == (bad1, "k9")
    with capturedLogs() as events:
        [expired] = run(engine, EXPIRE, [NOW + 61])
    assert len(expired) == 2
    kept = set()
    for outcome in expired:
        r = one(engine, "SELECT * FROM mo_messages WHERE id = :i", i=outcome.mo_id)
        kept.add((VAULT.open(r.source), r.text, r.parts, bool(r.complete)))
    assert kept == {(one_, "第二", 1, False), (two, "你好", 1, False)}
    assert one(engine, "SELECT COUNT(*) AS n FROM mo_parts").n == 0
    dropped = warnings(events)
    assert sorted((e["part_id"], e["key_id"]) for e in dropped) == [
        (bad1, "k9"),
        (bad3, "k9"),
    ]
    assert_clean(events, one_, two, three)


# -- accept ------------------------------------------------------------------


def subscriber(engine: Engine, msisdn_sealed: str, **kw: Any) -> None:
    kw.setdefault("card_token", "TOK-9")
    insert_subscriber(engine, sealed=msisdn_sealed, **kw)


def merchant(engine: Engine, notify_sealed: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(S.merchants),
            [
                {
                    "issuer": "default",
                    "merchant_id": "M001",
                    "name": "Starbucks",
                    "notify": notify_sealed,
                    "lang": "en",
                    "templates": "{}",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            ],
        )


def test_an_unreadable_subscriber_and_merchant_do_not_make_accepts_unavailable(
    engine: Engine, tmp_path: Path
) -> None:
    """Subscriber number and merchant numbers under a key this process lacks:
    accepted, the cardholder alert to the number the transaction supplied, no
    merchant notice; warnings name issuer and key id only."""
    h = hasher(tmp_path)
    subscriber(engine, OTHER.seal("+8613900000001"))
    notify = altered(VAULT.seal("+8613700000002", NOTIFY))
    merchant(engine, notify)
    with capturedLogs() as events:
        [out] = run(engine, ACCEPT, [item(txn(h, pan=None, card_token="TOK-9"))])
    assert (out.result.status, out.result.alerts) == ("accepted", 1)
    assert [q.destination for q in out.queued] == [NUMBER]
    with engine.connect() as conn:
        audiences = conn.execute(text("SELECT audience FROM alerts")).scalars().all()
    assert audiences == ["cardholder"]
    warned = warnings(events)
    assert {(e.get("merchant_id", ""), e["issuer"], e["key_id"]) for e in warned} == {
        ("M001", "default", "k1"),
        ("", "default", "k9"),
    }
    assert len(warned) == 2
    assert_clean(events, NUMBER, "+8613900000001", "+8613700000002", "TOK-9", notify)
    # Without a number of its own, the transaction gets no alert (and is
    # still accepted).
    [bare] = run(
        engine,
        ACCEPT,
        [item(txn(h, txn_id="2", pan=None, card_token="TOK-9", msisdn=None))],
    )
    assert (bare.result.status, bare.result.alerts) == ("accepted", 0)


def test_an_unreadable_subscriber_keeps_its_opt_out(
    engine: Engine, tmp_path: Path
) -> None:
    """The card's preferences are not in the ciphertext: an opted-out card is
    not alerted at the supplied number because its number does not open."""
    h = hasher(tmp_path)
    subscriber(engine, OTHER.seal("+8613900000001"), opted_out=True)
    [out] = run(engine, ACCEPT, [item(txn(h, pan=None, card_token="TOK-9"))])
    assert (out.result.status, out.result.alerts) == ("accepted", 0)
