"""Committing transactions with their alerts: idempotency, registries, links."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

from smsgw.store import schema as S
from smsgw.store.db import make_engine, upgrade
from smsgw.store.keys import load_card_hasher
from smsgw.store.pii import NOTIFY, Vault
from tests.store.helpers import (
    ACCEPT,
    NOW,
    PAN,
    hasher,
    insert_subscriber,
    item,
    rows,
    run,
    test_vault,
    txn,
)


def test_new_transaction_is_accepted_with_its_alert(
    engine: Engine, tmp_path: Path
) -> None:
    """A new transaction is committed with one cardholder alert, claimed by the node."""
    h = hasher(tmp_path)
    [out] = run(engine, ACCEPT, [item(txn(h))])
    assert out.result.status == "accepted"
    assert out.result.alerts == 1
    assert len(out.queued) == 1
    q = out.queued[0]
    assert q.destination == "+8613800138000"
    assert "7894" in q.text
    assert "128.50" in q.text
    with engine.connect() as conn:
        [t] = rows(conn, S.transactions)
        [a] = rows(conn, S.alerts)
    assert t.ref == out.result.ref
    assert t.masked_pan == "622202******7894"
    assert t.card_hash.startswith("k1:")
    assert PAN not in t.card_hash
    assert a.status == "queued"
    assert a.claimed_by == "n1"
    assert a.claimed_until == NOW + 60
    assert a.expires_at == NOW + 3600


def test_same_content_is_duplicate_and_different_is_conflict(
    engine: Engine, tmp_path: Path
) -> None:
    """A retry with a fresh ts is a duplicate; changed content is a conflict."""
    h = hasher(tmp_path)
    [first] = run(engine, ACCEPT, [item(txn(h))])
    [again, changed] = run(
        engine, ACCEPT, [item(txn(h, ts=1764417999)), item(txn(h, amount="128.5"))]
    )
    assert (again.result.status, again.result.ref, again.result.alerts) == (
        "duplicate",
        first.result.ref,
        1,
    )
    assert again.queued == ()
    assert changed.result.status == "conflict"
    with engine.connect() as conn:
        assert len(rows(conn, S.transactions)) == 1
        assert len(rows(conn, S.alerts)) == 1


def test_same_key_twice_in_one_batch(engine: Engine, tmp_path: Path) -> None:
    """Two copies in one batch: the second is judged against the first."""
    h = hasher(tmp_path)
    a, b, c = run(
        engine, ACCEPT, [item(txn(h)), item(txn(h)), item(txn(h, kind="refund"))]
    )
    assert a.result.status == "accepted"
    assert (b.result.status, b.result.ref) == ("duplicate", a.result.ref)
    assert c.result.status == "conflict"


def test_same_txn_id_from_another_terminal_is_new(
    engine: Engine, tmp_path: Path
) -> None:
    """txn_id is unique per terminal only."""
    h = hasher(tmp_path)
    a, b = run(engine, ACCEPT, [item(txn(h)), item(txn(h), terminal="T2")])
    assert a.result.status == b.result.status == "accepted"
    assert a.result.ref != b.result.ref


def _subscriber(engine: Engine, **kw: Any) -> None:
    insert_subscriber(engine, **kw)


def test_subscriber_found_by_card_hash(engine: Engine, tmp_path: Path) -> None:
    """Without a number, the enrolled card's subscriber is alerted in their language."""
    h = hasher(tmp_path)
    _subscriber(engine, card_hash=h.card_hash(PAN), lang="en")
    [out] = run(engine, ACCEPT, [item(txn(h, msisdn=None))])
    assert out.result.alerts == 1
    assert out.queued[0].destination == "+8613900000001"
    assert "Card *7894" in out.queued[0].text


def test_not_enrolled_without_number_gets_no_alert(
    engine: Engine, tmp_path: Path
) -> None:
    """A card nobody enrolled, sent without a number: accepted with 0 alerts."""
    h = hasher(tmp_path)
    [out] = run(engine, ACCEPT, [item(txn(h, msisdn=None))])
    assert (out.result.status, out.result.alerts) == ("accepted", 0)


def test_opted_out_subscriber_gets_nothing_even_with_a_number(
    engine: Engine, tmp_path: Path
) -> None:
    """An opt-out is honoured even when the terminal supplies the number."""
    h = hasher(tmp_path)
    _subscriber(engine, card_token="TOK-1", opted_out=True)
    [out] = run(engine, ACCEPT, [item(txn(h, pan=None, card_token="TOK-1"))])
    assert out.result.alerts == 0


def test_terminal_not_allowed_to_supply_numbers(engine: Engine, tmp_path: Path) -> None:
    """A terminal that may not supply numbers: the registry's number is used."""
    h = hasher(tmp_path)
    _subscriber(engine, card_token="TOK-2")
    [out] = run(
        engine,
        ACCEPT,
        [item(txn(h, pan=None, card_token="TOK-2"), may_supply_msisdn=False)],
    )
    assert out.queued[0].destination == "+8613900000001"


def test_reversal_links_its_original(engine: Engine, tmp_path: Path) -> None:
    """A reversal is linked to the original transaction's ref."""
    h = hasher(tmp_path)
    [orig] = run(engine, ACCEPT, [item(txn(h))])
    [rev] = run(
        engine,
        ACCEPT,
        [item(txn(h, txn_id="000124", kind="reversal", orig_txn_id="000123"))],
    )
    with engine.connect() as conn:
        t = {r.ref: r for r in rows(conn, S.transactions)}
    assert t[rev.result.ref].orig_ref == orig.result.ref


def test_merchant_with_numbers_is_notified(engine: Engine, tmp_path: Path) -> None:
    """A registered merchant with a number gets a notice beside the cardholder's."""
    h = hasher(tmp_path)
    with engine.begin() as conn:
        conn.execute(
            insert(S.merchants),
            [
                {
                    "issuer": "default",
                    "merchant_id": "M001",
                    "name": "Starbucks",
                    "notify": test_vault().seal("+8613700000002", NOTIFY),
                    "lang": "en",
                    "templates": "{}",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            ],
        )
    [out] = run(engine, ACCEPT, [item(txn(h))])
    assert out.result.alerts == 2
    merchant = [q for q in out.queued if q.destination == "+8613700000002"]
    assert len(merchant) == 1
    assert "7894" in merchant[0].text
    assert PAN not in merchant[0].text


def test_numbers_are_sealed_and_indexed_at_rest(engine: Engine, tmp_path: Path) -> None:
    """The transaction's number and each alert's destination are stored only as
    ciphertexts under the newest key; the alert carries the blind index the
    reply matching looks up; the queued alert (for dispatch) has the number."""
    h = hasher(tmp_path)
    [out] = run(engine, ACCEPT, [item(txn(h))])
    v = test_vault()
    with engine.connect() as conn:
        [t] = rows(conn, S.transactions)
        [a] = rows(conn, S.alerts)
    assert out.queued[0].destination == "+8613800138000"
    assert "13800138000" not in repr(t) + repr(a)
    assert t.msisdn.startswith("k1:")
    assert v.open(t.msisdn) == "+8613800138000"
    assert v.open(a.destination) == "+8613800138000"
    assert a.dest_index == v.index("+8613800138000")


def test_an_opt_out_indexed_under_an_older_key_is_still_honoured(
    db_url: str, tmp_path: Path
) -> None:
    """During an index-key rotation (k2 added, rows not yet re-indexed) a number
    that opted out under k1 still gets no alert."""
    old = test_vault()
    new = Vault(
        {"k1": bytes(range(32))}, {"k1": bytes(range(32, 64)), "k2": b"\x07" * 32}
    )
    engine = make_engine(db_url, vault=new)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(S.opt_outs),
            [{"issuer": "default", "msisdn_index": old.index("+8613800138000"),
              "msisdn": old.seal("+8613800138000"), "at": NOW, "via": "sms",
              "mo_id": None}],
        )  # fmt: skip
    h = hasher(tmp_path)
    [out] = run(engine, ACCEPT, [item(txn(h))])
    assert (out.result.status, out.result.alerts) == ("accepted", 0)
    with engine.connect() as conn:
        # new rows are indexed under the newest key
        [t] = rows(conn, S.transactions)
    assert new.open(t.msisdn) == "+8613800138000"
    engine.dispose()


def test_after_a_card_hash_key_rotation_earlier_cards_and_requests_are_found(
    engine: Engine, tmp_path: Path
) -> None:
    """card-hash-k2.key added: a card enrolled under k1 still finds its
    subscriber, a retry of a request accepted under k1 is still a duplicate
    (a changed one a conflict), and new rows are hashed under k2."""
    keys = tmp_path / "keys"
    old = hasher(tmp_path)
    _subscriber(
        engine, card_hash=old.card_hash(PAN), lang="en", msisdn="+8613900000009"
    )
    [first] = run(engine, ACCEPT, [item(txn(old, msisdn=None, txn_id="A1"))])
    assert first.queued[0].destination == "+8613900000009"
    (keys / "card-hash-k2.key").write_text("22" * 32 + "\n")
    (keys / "card-hash-k2.key").chmod(0o600)
    new = load_card_hasher(keys)
    assert (new.key_id, new.rotating) == ("k2", True)
    assert new.old_card_hashes(PAN) == (old.card_hash(PAN),)
    retry, changed, fresh = run(
        engine,
        ACCEPT,
        [
            item(txn(new, msisdn=None, txn_id="A1")),
            item(txn(new, msisdn=None, txn_id="A1", amount="9.00")),
            item(txn(new, msisdn=None, txn_id="A2")),
        ],
    )
    assert (retry.result.status, retry.result.ref) == ("duplicate", first.result.ref)
    assert changed.result.status == "conflict"
    assert fresh.result.status == "accepted"
    assert fresh.queued[0].destination == "+8613900000009"
    with engine.connect() as conn:
        hashes = {r.txn_id: r.card_hash for r in rows(conn, S.transactions)}
    assert hashes["A1"].startswith("k1:")
    assert hashes["A2"].startswith("k2:")


def test_the_content_digest_carries_its_key_id_and_older_rows_still_match(
    engine: Engine, tmp_path: Path
) -> None:
    """Stored as b"k1:" + 32 bytes; a row from before key ids were stored
    (32 bare bytes) still answers a retry `duplicate` and a change `conflict`."""
    h = hasher(tmp_path)
    [first] = run(engine, ACCEPT, [item(txn(h))])
    with engine.begin() as conn:
        [t] = rows(conn, S.transactions)
        assert bytes(t.content_digest)[:3] == b"k1:"
        assert len(t.content_digest) == 35
        conn.execute(
            S.transactions.update().values(content_digest=bytes(t.content_digest)[3:])
        )
    retry, changed = run(engine, ACCEPT, [item(txn(h)), item(txn(h, amount="1.00"))])
    assert (retry.result.status, retry.result.ref) == ("duplicate", first.result.ref)
    assert changed.result.status == "conflict"
