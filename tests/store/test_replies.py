# ruff: noqa: RUF001  (full-width input is what these tests feed in)
"""Replies in the store: reassembled, matched to their alert and acted on
(SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, text

from smsgw.feedback.classify import DEFAULT_KEYWORDS, Keywords
from smsgw.feedback.mo import MoPart
from smsgw.service.config_alerts import IssuerConfig
from smsgw.service.config_feedback import DEFAULT_REPLIES
from smsgw.store.accept import make_accept_op
from smsgw.store.db import make_engine
from smsgw.store.feedback_report import (
    alerts_to,
    set_opt_out,
    transaction_feedback,
    unmatched_replies,
)
from smsgw.store.pii import WEBHOOK, Vault, key_id
from smsgw.store.replies import (
    MoItem,
    MoOutcome,
    ReplyIssuer,
    ReplyRules,
    make_reply_ops,
    sender_e164,
)
from tests.store.helpers import ACCEPT, NOW, PAN, hasher, item, run, test_vault, txn

NUMBER = "+8613800138000"
VAULT = test_vault()  # the one the ``engine`` fixture carries
ISSUER = ReplyIssuer(
    name="default",
    signature={"zh": "示例银行", "en": "Demo Bank"},
    default_lang="zh",
    source_addr="95588",
    webhook_url="https://bank.example/fraud",
)


def rules(**changes: Any) -> ReplyRules:
    base: dict[str, Any] = {
        "keywords": Keywords.build(DEFAULT_KEYWORDS),
        "reply_window": 86400.0,
        "help_interval": 3600.0,
        "reassembly_timeout": 60.0,
        "replies": DEFAULT_REPLIES,
        "issuers": (ISSUER,),
        "node": "n1",
        "lease": 60.0,
        "ttl": 3600.0,
    }
    base.update(changes)
    return ReplyRules(**base)


MO, EXPIRE = make_reply_ops(rules())


def part(
    body: str | bytes,
    *,
    source: str = "8613800138000",
    coding: int = 8,
    ref: int | None = None,
    total: int = 1,
    seq: int = 1,
) -> MoPart:
    data = body if isinstance(body, bytes) else body.encode("utf-16-be")
    method = "udh" if total > 1 else "single"
    return MoPart(source, "95588", coding, ref, total, seq, data, method)  # type: ignore[arg-type]


def reply(engine: Engine, body: str, at: float = NOW + 60, **kw: Any) -> MoOutcome:
    [out] = run(engine, MO, [MoItem("sim", part(body, **kw), at)])
    assert isinstance(out, MoOutcome)
    return out


def one(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).one()


def accept(engine: Engine, tmp_path: Path, *ids: str, op: Any = ACCEPT) -> list[str]:
    """Accept transactions (one cardholder alert each to NUMBER); their refs."""
    h = hasher(tmp_path)
    out = run(engine, op, [item(txn(h, txn_id=i, rrn="123456789012")) for i in ids])
    return [o.result.ref for o in out]


def test_not_me_disputes_acknowledges_and_queues_the_webhook(
    engine: Engine, tmp_path: Path
) -> None:
    """'N' from the only alert's number: the transaction is disputed, the alert and
    the transaction carry the feedback, an acknowledgement is queued for this node
    and the issuer's webhook is pending with what it needs (card only masked)."""
    [ref] = accept(engine, tmp_path, "t1")
    out = reply(engine, "Ｎ！")
    assert out.mo_id is not None
    assert out.webhooks == 1
    [ack] = out.queued
    assert ack.destination == NUMBER
    assert ack.ref == ref
    assert ack.priority == 1
    assert "尾号7894" in ack.text
    assert "人民币128.50元" in ack.text
    mo = one(engine, "SELECT * FROM mo_messages WHERE id = :i", i=out.mo_id)
    assert (mo.classification, mo.matched_by, mo.action, mo.ref) == (
        "not_me",
        "single",
        "disputed",
        ref,
    )
    assert mo.msisdn_index == VAULT.index(NUMBER)
    assert VAULT.open(mo.source) == "8613800138000"
    t = one(engine, "SELECT * FROM transactions WHERE ref = :r", r=ref)
    assert (t.feedback, t.feedback_at, t.disputed_at) == ("not_me", NOW + 60, NOW + 60)
    a = one(
        engine,
        "SELECT feedback FROM alerts WHERE ref = :r AND audience = 'cardholder'",
        r=ref,
    )
    assert a.feedback == "not_me"
    sent = one(engine, "SELECT * FROM alerts WHERE id = :i", i=ack.id)
    assert (sent.audience, sent.status, sent.claimed_by) == ("reply", "queued", "n1")
    assert (VAULT.open(sent.destination), sent.dest_index) == (
        NUMBER,
        VAULT.index(NUMBER),
    )
    hook = one(engine, "SELECT * FROM webhooks")
    assert (hook.status, hook.attempts, hook.next_at, hook.url) == (
        "pending",
        0,
        NOW + 60,
        "https://bank.example/fraud",
    )
    body = VAULT.open_bytes(hook.body, WEBHOOK)
    event = orjson.loads(body)
    assert event["ref"] == ref
    assert event["masked_pan"] == "622202******7894"
    assert event["rrn"] == "123456789012"
    assert event["reply"]["from"] == NUMBER
    assert event["reply"]["matched_by"] == "single"
    assert PAN not in body.decode()
    audit = one(engine, "SELECT * FROM audit WHERE action = 'dispute'")
    assert audit.subject == ref


def test_two_alerts_awaiting_leave_a_plain_n_unmatched(
    engine: Engine, tmp_path: Path
) -> None:
    """With two alerts awaiting a reply, 'N' is ambiguous: kept for review,
    nothing disputed, nothing sent."""
    accept(engine, tmp_path, "t1", "t2")
    out = reply(engine, "N")
    assert (out.queued, out.webhooks) == ((), 0)
    mo = one(engine, "SELECT * FROM mo_messages")
    assert (mo.matched_by, mo.action, mo.ref) == ("ambiguous", "unmatched", None)
    disputed = one(
        engine, "SELECT COUNT(*) AS n FROM transactions WHERE disputed_at IS NOT NULL"
    )
    assert disputed.n == 0


def test_a_reply_code_picks_its_alert_and_an_unknown_one_matches_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    """Alerts whose template shows a reply code get 1, 2 for one number; 'N2'
    disputes the second; 'N9' (no alert showed it) is unmatched."""
    issuer = IssuerConfig(
        signature={"zh": "示例银行", "en": "Demo Bank"},
        templates={"zh": "尾号{{ last4 }}消费{{ amount }}，非本人回N{{ reply_code }}"},
    )
    op = make_accept_op(node="n1", lease=60.0, ttl=3600.0, issuers=[issuer])
    h = hasher(tmp_path)
    refs = [
        o.result.ref
        for o in run(
            engine, op, [item(txn(h, txn_id=i), issuer="default") for i in ("a", "b")]
        )
    ]
    with engine.connect() as conn:
        shown = {
            r.ref: r
            for r in conn.execute(text("SELECT ref, reply_code, text FROM alerts"))
        }
    assert [shown[r].reply_code for r in refs] == ["1", "2"]
    assert shown[refs[1]].text.endswith("非本人回N2")
    out = reply(engine, "n 2")
    mo = one(engine, "SELECT * FROM mo_messages WHERE id = :i", i=out.mo_id)
    assert (mo.matched_by, mo.ref, mo.action) == ("code", refs[1], "disputed")
    out = reply(engine, "N9")
    mo = one(engine, "SELECT * FROM mo_messages WHERE id = :i", i=out.mo_id)
    assert (mo.matched_by, mo.action) == ("unknown_code", "unmatched")
    # A third alert reuses no code still awaiting a reply: "1" is, "2" was answered.
    [third] = run(engine, op, [item(txn(h, txn_id="c"), issuer="default")])
    code = one(
        engine, "SELECT reply_code FROM alerts WHERE ref = :r", r=third.result.ref
    )
    assert code.reply_code == "2"


def test_stop_opts_the_number_out_once_and_the_next_alert_is_not_sent(
    engine: Engine, tmp_path: Path
) -> None:
    """STOP (full-width TD here) opts the number out with one confirmation; a second
    STOP sends nothing; the next transaction to that number gets no alert."""
    accept(engine, tmp_path, "t1")
    first = reply(engine, "ＴＤ")
    assert len(first.queued) == 1
    assert "退订" in first.queued[0].text
    again = reply(engine, "stop", at=NOW + 120)
    assert again.queued == ()
    actions = [
        r.action for r in one_all(engine, "SELECT action FROM mo_messages ORDER BY id")
    ]
    assert actions == ["opted_out", "already_opted_out"]
    out = one(engine, "SELECT * FROM opt_outs")
    assert (out.issuer, VAULT.open(out.msisdn), out.via, out.mo_id) == (
        "default",
        NUMBER,
        "sms",
        first.mo_id,
    )
    assert out.msisdn_index == VAULT.index(NUMBER)
    h = hasher(tmp_path)
    [later] = run(engine, ACCEPT, [item(txn(h, txn_id="t9"), now=NOW + 600)])
    assert later.result.status == "accepted"
    assert later.queued == ()


def one_all(engine: Engine, sql: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql)))


def test_help_is_answered_at_most_once_an_interval(engine: Engine) -> None:
    """HELP / 帮助 get the help text; another within help_interval gets none."""
    first = reply(engine, "帮助")
    assert "回复N" in first.queued[0].text
    assert reply(engine, "help", at=NOW + 600).queued == ()
    assert len(reply(engine, "HELP", at=NOW + 4000).queued) == 1


def test_confirm_and_free_text(engine: Engine, tmp_path: Path) -> None:
    """Free text is kept and consumes nothing; a later 'Y' confirms."""
    [ref] = accept(engine, tmp_path, "t1")
    kept = reply(engine, "谁发的短信?")
    assert kept.queued == ()
    yes = reply(engine, "是", at=NOW + 90)
    mo = one(engine, "SELECT * FROM mo_messages WHERE id = :i", i=yes.mo_id)
    assert (mo.action, mo.matched_by) == ("confirmed", "single")
    t = one(
        engine, "SELECT feedback, disputed_at FROM transactions WHERE ref = :r", r=ref
    )
    assert (t.feedback, t.disputed_at) == ("confirm", None)
    free = one(engine, "SELECT * FROM mo_messages WHERE id = :i", i=kept.mo_id)
    assert (free.classification, free.action, free.text) == (
        "text",
        "kept",
        "谁发的短信?",
    )


def test_a_reply_outside_the_window_matches_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    """After reply_window an alert awaits no reply."""
    accept(engine, tmp_path, "t1")
    out = reply(engine, "N", at=NOW + 86400 + 1)
    mo = one(engine, "SELECT * FROM mo_messages WHERE id = :i", i=out.mo_id)
    assert (mo.matched_by, mo.action) == ("none", "unmatched")


def test_parts_out_of_order_are_reassembled_then_handled(
    engine: Engine, tmp_path: Path
) -> None:
    """A two-part UCS-2 reply arriving last part first waits, then is handled whole."""
    accept(engine, tmp_path, "t1")
    words = "不是我" * 30
    data = words.encode("utf-16-be")
    half = len(data) // 2
    p2 = part(data[half:], ref=7, total=2, seq=2)
    p1 = part(data[:half], ref=7, total=2, seq=1)
    [waiting] = run(engine, MO, [MoItem("sim", p2, NOW + 60)])
    assert waiting == MoOutcome(None)
    [done] = run(engine, MO, [MoItem("other", p1, NOW + 61)])
    mo = one(engine, "SELECT * FROM mo_messages WHERE id = :i", i=done.mo_id)
    assert (mo.text, mo.parts, bool(mo.complete), mo.classification) == (
        words,
        2,
        True,
        "text",
    )
    assert one(engine, "SELECT COUNT(*) AS n FROM mo_parts").n == 0


def test_a_reply_missing_parts_is_kept_as_it_is_after_the_timeout(
    engine: Engine,
) -> None:
    """Part 1 of 3 alone: nothing before the timeout, then kept incomplete."""
    p1 = part("第一部分", ref=9, total=3, seq=1)
    run(engine, MO, [MoItem("sim", p1, NOW)])
    assert run(engine, EXPIRE, [NOW + 59]) == [[]]
    [[out]] = run(engine, EXPIRE, [NOW + 61])
    mo = one(engine, "SELECT * FROM mo_messages WHERE id = :i", i=out.mo_id)
    assert (mo.text, mo.parts, bool(mo.complete)) == ("第一部分", 1, False)
    assert one(engine, "SELECT COUNT(*) AS n FROM mo_parts").n == 0


def test_an_alphanumeric_sender_is_kept_but_never_answered(engine: Engine) -> None:
    """A sender that is no number can be neither answered nor opted out."""
    out = reply(engine, "STOP", source="BANKTEST")
    assert out.queued == ()
    mo = one(engine, "SELECT * FROM mo_messages WHERE id = :i", i=out.mo_id)
    assert (mo.msisdn_index, mo.action) == (None, "unanswerable")
    assert VAULT.open(mo.source) == "BANKTEST"
    assert one(engine, "SELECT COUNT(*) AS n FROM opt_outs").n == 0


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("8613800138000", NUMBER),
        ("+8613800138000", NUMBER),
        ("008613800138000", NUMBER),
        ("BANK", None),
        ("12", None),
    ],
)
def test_sender_to_e164(source: str, expected: str | None) -> None:
    """SMSCs send the number with or without '+' or as 00...; names are no numbers."""
    assert sender_e164(source) == expected


# -- numbers at rest -----------------------------------------------------------


def test_no_clear_number_reaches_the_tables(engine: Engine, tmp_path: Path) -> None:
    """After a not-me reply (a webhook and an acknowledgement), a STOP (an opt-out
    and its confirmation), a HELP and a part still waiting for its sibling, no
    column of the reply tables holds the sender's digits: numbers are sealed,
    looked up by blind index, the webhook body sealed whole."""
    accept(engine, tmp_path, "t1")
    assert reply(engine, "N").webhooks == 1
    assert len(reply(engine, "STOP", at=NOW + 70).queued) == 1
    assert len(reply(engine, "HELP", source="+8613800138000", at=NOW + 80).queued) == 1
    waiting = part("第一部分", source="008613800138000", ref=3, total=2, seq=1)
    assert run(engine, MO, [MoItem("sim", waiting, NOW + 90)]) == [MoOutcome(None)]
    digits = NUMBER[1:]
    seen = 0
    with engine.connect() as conn:
        for table in ("mo_messages", "mo_parts", "opt_outs", "webhooks", "alerts"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                seen += 1
                for column, value in row._mapping.items():
                    if isinstance(value, bytes | memoryview):
                        assert digits.encode() not in bytes(value), (table, column)
                    else:
                        assert digits not in str(value), (table, column)
        subjects = [r.subject for r in conn.execute(text("SELECT subject FROM audit"))]
    assert seen == 3 + 1 + 1 + 1 + 4  # replies, part, opt-out, webhook, alerts
    assert "+86138****8000" in subjects  # the opt-out, audited masked


#: The test vault with a newer encryption key and a newer index key (k2).
NEWER = Vault(
    {"k1": bytes(range(32)), "k2": bytes(range(64, 96))},
    {"k1": bytes(range(32, 64)), "k2": bytes(range(96, 128))},
)


@pytest.fixture
def rotated(engine: Engine) -> Iterator[Engine]:
    """The same database through a vault with a newer index key (k2) and a
    newer encryption key: rows written through ``engine`` are under k1."""
    eng = make_engine(engine.url.render_as_string(hide_password=False), vault=NEWER)
    yield eng
    eng.dispose()


def test_rows_indexed_under_an_older_key_are_still_found(
    engine: Engine, rotated: Engine, tmp_path: Path
) -> None:
    """With a second index key, a reply still finds its alert, its opt-out and its
    recent HELP indexed under the first; the new reply is indexed under the second."""
    [ref] = accept(engine, tmp_path, "t1")
    [no] = run(rotated, MO, [MoItem("sim", part("N"), NOW + 60)])
    assert len(reply(engine, "STOP", at=NOW + 70).queued) == 1
    assert len(reply(engine, "HELP", at=NOW + 80).queued) == 1
    [again] = run(rotated, MO, [MoItem("sim", part("stop"), NOW + 90)])
    [help_again] = run(rotated, MO, [MoItem("sim", part("help"), NOW + 100)])
    assert (again.queued, help_again.queued) == ((), ())
    actions = [
        r.action for r in one_all(engine, "SELECT action FROM mo_messages ORDER BY id")
    ]
    assert actions == [
        "disputed",
        "opted_out",
        "help_sent",
        "already_opted_out",
        "help_suppressed",
    ]
    mo = one(rotated, "SELECT * FROM mo_messages WHERE id = :i", i=no.mo_id)
    assert (mo.ref, mo.matched_by) == (ref, "single")
    assert mo.msisdn_index.startswith("k2:")
    assert one(engine, "SELECT COUNT(*) AS n FROM opt_outs").n == 1


def test_parts_indexed_under_an_older_key_join_their_siblings(
    engine: Engine, rotated: Engine
) -> None:
    """A part whose group key was indexed under k1 is reassembled with a sibling
    arriving after k2 was added; parts of one reply under k1 and k2 expire as
    one reply."""
    data = ("不是我" * 30).encode("utf-16-be")
    half = len(data) // 2
    run(engine, MO, [MoItem("sim", part(data[:half], ref=5, total=2, seq=1), NOW)])
    [done] = run(
        rotated,
        MO,
        [MoItem("sim", part(data[half:], ref=5, total=2, seq=2), NOW + 1)],
    )
    mo = one(engine, "SELECT * FROM mo_messages WHERE id = :i", i=done.mo_id)
    assert (mo.text, mo.parts, bool(mo.complete)) == ("不是我" * 30, 2, True)
    run(engine, MO, [MoItem("sim", part("第一", ref=6, total=3, seq=1), NOW)])
    run(rotated, MO, [MoItem("sim", part("第二", ref=6, total=3, seq=2), NOW)])
    [[out]] = run(rotated, EXPIRE, [NOW + 61])  # one reply, not one per key
    mo = one(engine, "SELECT * FROM mo_messages WHERE id = :i", i=out.mo_id)
    assert (mo.text, mo.parts, bool(mo.complete)) == ("第一第二", 2, False)
    assert one(engine, "SELECT COUNT(*) AS n FROM mo_parts").n == 0


def test_operator_look_ups_find_rows_under_an_older_key(
    engine: Engine, rotated: Engine, tmp_path: Path
) -> None:
    """alerts_to, the operator's opt-out / opt-in and the review queries, through
    a vault with a second index key, find and show (masked) what was written
    under the first; a new opt-out is written under the newest keys."""
    [ref] = accept(engine, tmp_path, "t1")
    reply(engine, "STOP")
    reply(engine, "who is this?", at=NOW + 70)
    with rotated.begin() as conn:
        sent = alerts_to(conn, NUMBER)
        assert [(a["audience"], a["ref"]) for a in sent] == [
            ("reply", ref),
            ("cardholder", ref),
        ]
        assert {a["destination"] for a in sent} == {"+86138****8000"}
        shown = transaction_feedback(conn, ref)
        assert shown is not None
        assert [a["destination"] for a in shown["alerts"]] == ["+86138****8000"] * 2
        assert [r["from"] for r in shown["replies"]] == ["+86138****8000"]
        [kept] = unmatched_replies(conn, since=NOW, limit=10)
        assert (kept["from"], kept["text"]) == ("+86138****8000", "who is this?")
        assert not set_opt_out(
            conn, issuer="default", msisdn=NUMBER, opted_out=True, now=NOW + 80
        )
        assert set_opt_out(
            conn, issuer="default", msisdn=NUMBER, opted_out=False, now=NOW + 90
        )
        assert conn.execute(text("SELECT * FROM opt_outs")).first() is None
        assert set_opt_out(
            conn, issuer="default", msisdn=NUMBER, opted_out=True, now=NOW + 100
        )
        row = conn.execute(text("SELECT * FROM opt_outs")).one()
    assert (row.msisdn_index, row.via) == (NEWER.index(NUMBER), "cli")
    assert row.msisdn_index.startswith("k2:")
    assert (key_id(row.msisdn), NEWER.open(row.msisdn)) == ("k2", NUMBER)
