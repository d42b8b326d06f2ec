"""``smsgw feedback show|report|unmatched|opt-out|opt-in`` on SQLite and
PostgreSQL (the CLI reads the test vault's keys from ``keys_dir``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from smsgw.feedback.classify import DEFAULT_KEYWORDS, Keywords
from smsgw.feedback.mo import MoPart
from smsgw.service.config_feedback import DEFAULT_REPLIES
from smsgw.store.accept import make_accept_op
from smsgw.store.replies import MoItem, ReplyIssuer, ReplyRules, make_reply_ops
from tests.service.test_registry_cli import NOW, Cli, write_config
from tests.store.conftest import db_url, engine, pg_url  # noqa: F401
from tests.store.helpers import hasher, item, run, txn

RULES = ReplyRules(
    keywords=Keywords.build(DEFAULT_KEYWORDS),
    reply_window=86400.0,
    help_interval=3600.0,
    reassembly_timeout=60.0,
    replies=DEFAULT_REPLIES,
    issuers=(ReplyIssuer("default", {"zh": "Demo Bank", "en": "Demo Bank"}, "zh",
                         "95588", None),),
    node="n1",
    lease=60.0,
    ttl=3600.0,
)  # fmt: skip
MO, _ = make_reply_ops(RULES)
ACCEPT = make_accept_op(node="n1", lease=60.0, ttl=3600.0)


def reply(engine: Engine, number: str, body: str, at: float) -> None:  # noqa: F811
    part = MoPart(number, "95588", 0, None, 1, 1, body.encode(), "single")
    run(engine, MO, [MoItem("c1", part, at)])


@pytest.fixture
def cli(tmp_path: Path, db_url: str, engine: Engine) -> Cli:  # noqa: F811
    """The CLI with the keys of the vault the ``engine`` fixture carries."""
    return Cli(write_config(tmp_path, db_url))


def test_show_report_and_unmatched(cli: Cli, engine: Engine, tmp_path: Path) -> None:  # noqa: F811
    """A disputed, a confirmed and an unanswered transaction of one merchant on one
    day; a reply nobody can match; each command shows them (numbers masked)."""
    h = hasher(tmp_path)
    refs = []
    for i, number in enumerate(("+8613800000001", "+8613800000002", "+8613800000003")):
        t = txn(h, txn_id=f"t{i}", msisdn=number)
        [out] = run(engine, ACCEPT, [item(t, now=NOW + i)])
        refs.append(out.result.ref)
    reply(engine, "8613800000001", "N", NOW + 100)
    reply(engine, "8613800000002", "Y", NOW + 100)
    reply(engine, "8613900000009", "who is this", NOW + 100)

    r = cli("feedback", "show", refs[0])
    assert r.code == 0
    assert "feedback not_me" in r.out
    assert "disputed 2025-11-29" in r.out
    assert "+86138****0001  not_me  single      disputed  N" in r.out
    assert "8613800000001" not in r.out  # masked
    shown = json.loads(cli("feedback", "show", refs[0], "--json").out)
    assert shown["replies"][0]["classification"] == "not_me"
    assert shown["alerts"][0]["feedback"] == "not_me"
    assert cli("feedback", "show", "nope").code == 1

    r = cli("feedback", "report", "--from", "2025-11-29", "--to", "2025-11-29")
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        "MERCHANT  DAY         ALERTED  CONFIRM  NOT_ME   STOP    NO_REPLY",
        "M001      2025-11-29  3        1 (33%)  1 (33%)  0 (0%)  1 (33%)",
    ]
    [row] = [
        json.loads(x)
        for x in cli(
            "feedback", "report", "--json", "--from", "2025-11-29"
        ).out.splitlines()
    ]
    assert (row["alerted"], row["not_me"], row["no_reply_rate"]) == (3, 1, 0.3333)
    assert (
        cli("feedback", "report", "--from", "2025-12-01", "--to", "2025-11-01").code
        == 2
    )
    assert cli("feedback", "report", "--from", "yesterday").code == 2

    r = cli("feedback", "unmatched", "--json")
    [kept] = [json.loads(x) for x in r.out.splitlines()]
    assert (kept["from"], kept["text"], kept["matched_by"]) == (
        "+86139****0009", "who is this", "none",
    )  # fmt: skip


def test_operators_opt_a_number_out_and_back_in(
    cli: Cli,
    engine: Engine,  # noqa: F811
    tmp_path: Path,
) -> None:
    """opt-out stops the number's alerts like a STOP reply; opt-in (the cardholder
    asked) sends them again; both are audited; a bad number is refused."""
    h = hasher(tmp_path)

    def alerts(txn_id: str) -> int:
        t = txn(h, txn_id=txn_id, msisdn="+8613800000001")
        [out] = run(engine, ACCEPT, [item(t, now=NOW)])
        return len(out.queued)

    r = cli("feedback", "opt-out", "--msisdn", "+86 138 0000 0001")
    assert (r.code, r.out) == (0, "+86138****0001 (default): opted out\n")
    assert cli("feedback", "opt-out", "--msisdn", "+8613800000001").out.endswith(
        "opted out already\n"
    )
    assert alerts("a") == 0
    r = cli("feedback", "opt-in", "--msisdn", "+8613800000001")
    assert r.out == "+86138****0001 (default): opted in\n"
    assert alerts("b") == 1
    with engine.connect() as conn:
        actions = [
            row.action
            for row in conn.execute(text("SELECT action FROM audit ORDER BY id"))
        ]
    assert actions == ["opt_out", "opt_in"]
    with engine.connect() as conn:
        for table in ("opt_outs", "audit", "subscribers"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                assert "8613800000001" not in str(tuple(row)), table
    bad = cli("feedback", "opt-in", "--msisdn", "12")
    assert (bad.code, bad.err) == (
        2,
        "smsgw feedback opt-in: --msisdn: not a possible phone number: '12'\n",
    )


def test_numbers_the_keys_do_not_open_exit_2(
    tmp_path: Path,
    db_url: str,  # noqa: F811
    engine: Engine,  # noqa: F811
) -> None:
    """With msisdn keys in keys_dir other than the ones the numbers were sealed
    with, showing them exits 2 naming keys_dir (never a traceback or a number)."""
    cli = Cli(write_config(tmp_path, db_url))
    (tmp_path / "keys" / "msisdn-k1.key").write_text("00" * 32 + "\n")  # not k1
    t = txn(hasher(tmp_path), txn_id="t0", msisdn="+8613800000001")
    [out] = run(engine, ACCEPT, [item(t, now=NOW)])
    r = cli("feedback", "show", out.result.ref)
    assert r.code == 2
    assert r.err.startswith("smsgw feedback show: ciphertext under key k1 does not")
    assert f"keys_dir {tmp_path / 'keys'}" in r.err
    assert "8613800000001" not in r.err + r.out
