"""Fraud webhooks in the store: claimed when due by one node, bodies stored
sealed and opened when claimed, every attempt recorded (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, insert, text

from smsgw.feedback.webhook_worker import PendingWebhook, WebhookAttempt
from smsgw.store import schema as S
from smsgw.store.db import make_engine
from smsgw.store.pii import WEBHOOK, Vault
from smsgw.store.webhooks import ClaimWebhooks, claim_webhooks_op, record_attempt_op
from tests.store.helpers import NOW, run, test_vault

VAULT = test_vault()  # the one the ``engine`` fixture carries


def queue(engine: Engine, n: int, at: float = NOW) -> None:
    """``n`` pending webhooks, bodies ``{"n":i}`` sealed, due at ``at + i``."""
    with engine.begin() as conn:
        for i in range(n):
            conn.execute(
                insert(S.webhooks),
                {
                    "issuer": "default",
                    "event": "not_me",
                    "ref": f"R{i}",
                    "mo_id": None,
                    "url": "https://bank.example/fraud",
                    "body": VAULT.seal_bytes(b'{"n":%d}' % i, WEBHOOK),
                    "status": "pending",
                    "attempts": 0,
                    "created_at": at,
                    "next_at": at + i,
                    "claimed_by": None,
                    "claimed_until": None,
                    "last_error": None,
                },
            )


def claim(
    engine: Engine, node: str, now: float, limit: int = 10
) -> list[PendingWebhook]:
    [got] = run(engine, claim_webhooks_op, [ClaimWebhooks(node, now, 60.0, limit)])
    return list(got)


def rows(engine: Engine, sql: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql)))


def test_due_webhooks_are_claimed_by_one_node_until_its_lease_ends(
    engine: Engine,
) -> None:
    """Only due webhooks, oldest first, at most limit; another node gets none of
    them until the lease ends; the claiming node may take its own back."""
    queue(engine, 3)
    first = claim(engine, "a", NOW + 1, limit=5)
    assert [w.body for w in first] == [b'{"n":0}', b'{"n":1}']  # n=2 due at +2
    assert first[0] == PendingWebhook(
        first[0].id, "default", "https://bank.example/fraud", b'{"n":0}', 0
    )
    assert claim(engine, "b", NOW + 1) == []
    assert [w.body for w in claim(engine, "b", NOW + 2)] == [b'{"n":2}']
    assert len(claim(engine, "a", NOW + 3)) == 2  # its own, after a restart
    assert len(claim(engine, "b", NOW + 64)) == 3  # every lease has ended


def test_a_webhook_the_node_still_holds_is_never_claimed_again(
    engine: Engine,
) -> None:
    """The worker passes the ids it is still posting: a second claim by the same
    node (a poke while a post is in flight) gets only the others, so an event
    is never posted twice."""
    queue(engine, 3)
    first = claim(engine, "a", NOW + 2, limit=1)
    held = frozenset(w.id for w in first)
    [again] = run(
        engine, claim_webhooks_op, [ClaimWebhooks("a", NOW + 2, 60.0, 5, held)]
    )
    assert {w.id for w in again}.isdisjoint(held)
    assert len(again) == 2


def test_attempts_are_recorded_and_move_the_webhook_on(engine: Engine) -> None:
    """A retry puts it back at next_at; delivered and failed take it out of the
    queue for good; every attempt stays on record."""
    queue(engine, 2)
    one, two = claim(engine, "a", NOW + 5)
    run(
        engine,
        record_attempt_op,
        [
            WebhookAttempt(one.id, 1, NOW + 5, 500, None, "retry", NOW + 15),
            WebhookAttempt(
                two.id, 1, NOW + 5, None, "timeout after 10 s", "failed", None
            ),
        ],
    )
    assert claim(engine, "b", NOW + 10) == []
    [again] = claim(engine, "b", NOW + 15)
    assert (again.id, again.attempts) == (one.id, 1)
    run(
        engine,
        record_attempt_op,
        [WebhookAttempt(one.id, 2, NOW + 15, 204, None, "delivered", None)],
    )
    assert claim(engine, "c", NOW + 10_000) == []
    states = {
        r.id: (r.status, r.attempts, r.last_error, r.claimed_by)
        for r in rows(engine, "SELECT * FROM webhooks")
    }
    assert states == {
        one.id: ("delivered", 2, None, None),
        two.id: ("failed", 1, "timeout after 10 s", None),
    }
    attempts = [
        (r.webhook_id, r.attempt, r.status_code, r.outcome)
        for r in rows(engine, "SELECT * FROM webhook_attempts ORDER BY id")
    ]
    assert attempts == [
        (one.id, 1, 500, "retry"),
        (two.id, 1, None, "failed"),
        (one.id, 2, 204, "delivered"),
    ]


def test_bodies_are_opened_under_an_older_key_and_one_that_does_not_open_fails(
    engine: Engine,
) -> None:
    """Bodies sealed under k1 open through a vault whose newest key is k2; a
    body that does not open (altered) is not handed out and fails at once."""
    queue(engine, 2)
    with engine.begin() as conn:
        stored = conn.execute(text("SELECT body FROM webhooks WHERE ref = 'R1'")).one()
        altered = bytes(stored.body)[:-1] + bytes([stored.body[-1] ^ 1])
        conn.execute(
            text("UPDATE webhooks SET body = :b WHERE ref = 'R1'"), {"b": altered}
        )
    newer = Vault(
        {"k1": bytes(range(32)), "k2": bytes(range(64, 96))},
        {"k1": bytes(range(32, 64))},
    )
    rotated = make_engine(engine.url.render_as_string(hide_password=False), vault=newer)
    try:
        [got] = claim(rotated, "a", NOW + 5)
    finally:
        rotated.dispose()
    assert got.body == b'{"n":0}'
    [bad] = rows(engine, "SELECT * FROM webhooks WHERE ref = 'R1'")
    assert (bad.status, bad.claimed_by) == ("failed", None)
    assert bad.last_error.startswith("body does not open:")
    later = claim(engine, "b", NOW + 10_000)  # a's lease ended; R1 never again
    assert [w.id for w in later] == [got.id]
