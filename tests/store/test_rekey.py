"""Key rotation at rest: after new msisdn keys, every stored number is sealed
and indexed again under them (online, idempotent, never over a newer value),
and `smsgw keys` drives it."""

from __future__ import annotations

import io
from argparse import Namespace
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from smsgw.service.dbcli import db_upgrade
from smsgw.service.keyscli import (
    keys_activate,
    keys_new,
    keys_reencrypt,
    keys_retire,
    keys_status,
)
from smsgw.store.db import make_engine
from smsgw.store.keyring import open_keyring
from smsgw.store.keys import KeyFileError
from smsgw.store.pii import NOTIFY, WEBHOOK, Vault, load_vault
from smsgw.store.rekey import COLUMNS, _update, reencrypt, usage
from tests.store.helpers import test_vault

A, B, C = "+8613800138000", "+8613911112222", "+8613922223333"
K2_ENC, K2_INDEX = b"\x21" * 32, b"\x22" * 32


def _two_key() -> Vault:
    """`test_vault`'s keys and a k2 of each kind."""
    return Vault(
        {"k1": bytes(range(32)), "k2": K2_ENC},
        {"k1": bytes(range(32, 64)), "k2": K2_INDEX},
    )


def _fill(engine: Engine, v: Vault) -> None:
    """One row holding a number in every place that keeps one, under ``v``."""
    rows = [
        (
            "INSERT INTO transactions (ref, issuer, terminal_id, txn_id, "
            "content_digest, kind, result, amount, amount_minor, currency, last4, "
            "merchant_id, local_time, msisdn, alerts, received_at, card_hash) VALUES "
            "('r1', 'default', 'T1', 'x1', :d, 'purchase', 'approved', '1.00', 100, "
            "'CNY', '7894', 'M1', 't', :a_sealed, 1, 1.0, 'k1:abc')"
        ),
        (
            "INSERT INTO alerts (id, ref, issuer, audience, destination, dest_index, "
            "lang, text, encoding, parts, priority, status, attempts, created_at, "
            "updated_at, not_before, expires_at) VALUES ('r1.1', 'r1', 'default', "
            "'cardholder', :a_sealed, :a_index, 'en', 'hi', 'gsm7', 1, 1, "
            "'delivered', 1, 1.0, 1.0, 1.0, 9.0)"
        ),
        (
            "INSERT INTO mo_messages (carrier, source, destination, text, "
            "received_at, msisdn_index) VALUES ('sim', :a_raw, '95588', 'N', 1.0, "
            ":a_index)"
        ),
        (
            "INSERT INTO mo_messages (carrier, source, destination, text, "
            "received_at) VALUES ('sim', :name, '95588', 'hi', 2.0)"
        ),
        (
            "INSERT INTO mo_parts (group_key, carrier, source, destination, "
            "data_coding, ref, total, seq, method, data, received_at) VALUES "
            "(:group, 'sim', :b_raw, '95588', 0, 7, 2, 1, 'udh', :d, 1.0)"
        ),
        (
            "INSERT INTO opt_outs (issuer, msisdn_index, msisdn, at, via) VALUES "
            "('default', :a_index, :a_sealed, 1.0, 'sms')"
        ),
        (
            "INSERT INTO subscribers (issuer, card_token, msisdn, msisdn_index, "
            "opted_out, created_at, updated_at) VALUES ('default', 'tok', :b_sealed, "
            ":b_index, false, 1.0, 1.0)"
        ),
        (
            "INSERT INTO merchants (issuer, merchant_id, name, notify, templates, "
            "created_at, updated_at) VALUES ('default', 'M1', 'Shop', :notify, '{}', "
            "1.0, 1.0)"
        ),
        (
            "INSERT INTO webhooks (issuer, event, ref, url, body, status, attempts, "
            "created_at, next_at) VALUES ('default', 'not_me', 'r1', 'https://x', "
            ":body, 'pending', 0, 1.0, 1.0)"
        ),
    ]
    params = {
        "d": b"\x00" * 32,
        "a_sealed": v.seal(A),
        "a_index": v.index(A),
        "a_raw": v.seal(A[1:]),
        "name": v.seal("BANK"),
        "b_raw": v.seal(B[1:]),
        "group": v.index(f"{B[1:]}|95588|7|2|udh"),
        "b_sealed": v.seal(B),
        "b_index": v.index(B),
        "notify": v.seal(C, NOTIFY),
        "body": v.seal_bytes(f'{{"from":"{A}"}}'.encode(), WEBHOOK),
    }
    with engine.begin() as conn:
        for sql in rows:
            conn.execute(text(sql), params)


def test_reencrypt_moves_every_value_to_the_newest_keys(engine: Engine) -> None:
    """With k2 added, every sealed number and blind index moves to k2, opens
    to the same number and indexes as k2 does; a second run changes nothing;
    a vault holding only the k2 keys then reads everything."""
    old = test_vault()
    _fill(engine, old)
    new = _two_key()
    url = engine.url.render_as_string(hide_password=False)
    rotated = make_engine(url, vault=new)
    before = usage(rotated)
    assert before["alerts.destination"] == {"k1": 1}
    assert before["transactions.card_hash"] == {"k1": 1}

    done = reencrypt(rotated, batch=1)
    assert done["alerts.destination"] == done["alerts.dest_index"] == 1
    assert done["mo_messages.source"] == 2
    assert done["mo_messages.msisdn_index"] == 1
    after = usage(rotated)
    for c in COLUMNS:
        counts = after[f"{c.table}.{c.column}"]
        if c.kind != "card-hash":
            assert set(counts) <= {"k2"}, (c, counts)
    assert after["transactions.card_hash"] == {"k1": 1}  # a PAN hash stays
    assert set(reencrypt(rotated).values()) == {0}

    only_k2 = Vault({"k2": K2_ENC}, {"k2": K2_INDEX})
    with rotated.connect() as conn:
        alert = conn.execute(text("SELECT destination, dest_index FROM alerts")).one()
        mo = list(
            conn.execute(
                text("SELECT source, msisdn_index FROM mo_messages ORDER BY id")
            )
        )
        part = conn.execute(text("SELECT source, group_key FROM mo_parts")).one()
        opt = conn.execute(text("SELECT msisdn, msisdn_index FROM opt_outs")).one()
        sub = conn.execute(text("SELECT msisdn, msisdn_index FROM subscribers")).one()
        notify = conn.execute(text("SELECT notify FROM merchants")).scalar_one()
        body = conn.execute(text("SELECT body FROM webhooks")).scalar_one()
        txn = conn.execute(text("SELECT msisdn FROM transactions")).scalar_one()
    assert only_k2.open(alert.destination) == only_k2.open(txn) == A
    assert (
        alert.dest_index == opt.msisdn_index == mo[0].msisdn_index == only_k2.index(A)
    )
    assert [only_k2.open(m.source) for m in mo] == [A[1:], "BANK"]
    assert mo[1].msisdn_index is None
    assert only_k2.open(part.source) == B[1:]
    assert part.group_key == only_k2.index(f"{B[1:]}|95588|7|2|udh")
    assert only_k2.open(opt.msisdn) == A
    assert (only_k2.open(sub.msisdn), sub.msisdn_index) == (B, only_k2.index(B))
    assert only_k2.open(notify, NOTIFY) == C
    assert only_k2.open_bytes(body, WEBHOOK) == f'{{"from":"{A}"}}'.encode()
    rotated.dispose()


def test_a_value_changed_meanwhile_is_not_overwritten(engine: Engine) -> None:
    """An update lands only on the value it read; an opt-out the number gave
    again under the new index (STOP after the new key) absorbs the old row."""
    old = test_vault()
    _fill(engine, old)
    new = _two_key()
    column = next(
        c for c in COLUMNS if c.table == "alerts" and c.column == "destination"
    )
    with engine.begin() as conn:
        row = conn.execute(text("SELECT * FROM alerts")).one()
        conn.execute(text("UPDATE alerts SET destination = :d"), {"d": old.seal(B)})
        assert _update(conn, column, row, new.seal(A)) == 0
        conn.execute(
            text(
                "INSERT INTO opt_outs (issuer, msisdn_index, msisdn, at, via) VALUES "
                "('default', :x, :m, 2.0, 'sms')"
            ),
            {"x": new.index(A), "m": new.seal(A)},
        )
    url = engine.url.render_as_string(hide_password=False)
    rotated = make_engine(url, vault=new)
    reencrypt(rotated)
    with rotated.connect() as conn:
        opts = list(conn.execute(text("SELECT msisdn_index, at FROM opt_outs")))
        dest = conn.execute(text("SELECT destination FROM alerts")).scalar_one()
    assert [(o.msisdn_index, o.at) for o in opts] == [(new.index(A), 2.0)]
    assert new.open(dest) == B
    rotated.dispose()


def test_keys_commands_rotate_end_to_end(tmp_path: Path) -> None:
    """`keys new` writes inactive keys (status still 0: nothing writes under
    them yet); `keys activate` makes them write (status 1: values under the
    old keys); `reencrypt` (audited) brings status to 0; `retire` refuses the
    active key and takes the old one; a key id is never used twice."""
    config = tmp_path / "smsgw.yaml"
    source = Path("conf/smsgw.yaml").read_text()
    config.write_text(
        source.replace(
            "sqlite:///data/smsgw.db", f"sqlite:///{tmp_path}/db/x.db"
        ).replace("keys_dir: data/keys", f"keys_dir: {tmp_path}/keys")
    )
    ns = Namespace(config=str(config), batch=500)
    out, err = io.StringIO(), io.StringIO()
    assert db_upgrade(ns, out, err) == 0, err.getvalue()
    engine = make_engine(
        f"sqlite:///{tmp_path}/db/x.db", vault=load_vault(tmp_path / "keys")
    )
    _fill(engine, load_vault(tmp_path / "keys"))
    assert keys_status(ns, out, err) == 0
    for kind in ("msisdn", "msisdn-index"):
        assert keys_new(Namespace(config=str(config), kind=kind), out, err) == 0
    assert "msisdn-index-k2.key: new msisdn-index key k2" in out.getvalue()
    out = io.StringIO()
    assert keys_status(ns, out, err) == 0  # k2 reads, k1 still writes
    assert "msisdn: k1, k2 (active k1)" in out.getvalue()
    for kind in ("msisdn", "msisdn-index"):
        out = io.StringIO()
        assert keys_activate(Namespace(config=str(config), kind=kind), out, err) == 0
        assert f"{kind} key k2 is active (was k1)" in out.getvalue()
    out = io.StringIO()
    assert keys_status(ns, out, err) == 1
    assert "alerts.destination (sealed): k1 1" in out.getvalue()
    assert "run `smsgw keys reencrypt`" in out.getvalue()
    retire = Namespace(config=str(config), kind="msisdn", key_id="k1")
    err = io.StringIO()
    assert keys_retire(retire, out, err) == 1
    assert (
        "still under msisdn key k1: run `smsgw keys reencrypt` first" in err.getvalue()
    )
    out = io.StringIO()
    assert keys_reencrypt(ns, out, err) == 0, err.getvalue()
    assert "under msisdn key k2 and index key k2" in out.getvalue()
    out = io.StringIO()
    assert keys_status(ns, out, err) == 0
    assert "alerts.destination (sealed): k2 1" in out.getvalue()
    assert keys_retire(retire, out, err) == 0
    err = io.StringIO()
    active = Namespace(config=str(config), kind="msisdn", key_id="k2")
    assert keys_retire(active, out, err) == 1
    assert "is the active one" in err.getvalue()
    with engine.connect() as conn:
        actions = [
            r.action for r in conn.execute(text("SELECT action, detail FROM audit"))
        ]
        details = " ".join(
            r.detail for r in conn.execute(text("SELECT detail FROM audit"))
        )
    assert actions == [
        "keys_activate",
        "keys_activate",
        "keys_reencrypt",
        "keys_retire",
    ]
    assert A[1:] not in details
    # the retired k1 file is moved away; the next key is k3, never k1 again
    (tmp_path / "keys" / "msisdn-k1.key").rename(tmp_path / "msisdn-k1.key.old")
    out = io.StringIO()
    assert keys_new(Namespace(config=str(config), kind="msisdn"), out, err) == 0
    assert "new msisdn key k3" in out.getvalue()
    out = io.StringIO()
    assert keys_new(Namespace(config=str(config), kind="card-hash"), out, err) == 0
    assert "then `smsgw keys activate card-hash`" in out.getvalue()
    engine.dispose()


def test_a_node_with_other_keys_under_the_same_ids_is_refused(
    engine: Engine, tmp_path: Path
) -> None:
    """The database keeps a check value per key id: a keys_dir whose k1 differs
    (another node's, or generated anew) is refused, as is one that lacks a key
    the database was written with; new keys wait inactive."""
    url = engine.url.render_as_string(hide_password=False)
    first = open_keyring(engine, tmp_path / "a")  # generates and registers k1s
    assert first.active == {"msisdn": "k1", "msisdn-index": "k1", "card-hash": "k1"}
    other = make_engine(url)
    with pytest.raises(KeyFileError, match=r"msisdn-k1.key: missing"):
        open_keyring(other, tmp_path / "b")  # a new node: nothing generated
    assert not (tmp_path / "b").exists()
    (tmp_path / "b").mkdir(mode=0o700)
    for kind in ("msisdn", "msisdn-index", "card-hash"):
        (tmp_path / "b" / f"{kind}-k1.key").write_text("44" * 32 + "\n")
        (tmp_path / "b" / f"{kind}-k1.key").chmod(0o600)
    with pytest.raises(KeyFileError, match=r"msisdn-k1.key: not the msisdn key k1"):
        open_keyring(other, tmp_path / "b")
    (tmp_path / "c").mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match=r"msisdn-k1.key: missing"):
        open_keyring(other, tmp_path / "c", create=False)
    assert not list((tmp_path / "c").iterdir())  # nothing generated over it
    (tmp_path / "a" / "msisdn-k2.key").write_text("33" * 32 + "\n")
    (tmp_path / "a" / "msisdn-k2.key").chmod(0o600)
    again = open_keyring(other, tmp_path / "a")
    assert again.active["msisdn"] == "k1"  # registered, not active
    assert again.vault().enc_id == "k1"
    assert set(again.vault().enc_ids) == {"k1", "k2"}
    other.dispose()
