"""The load generator, transaction bodies and the ``smsgw pos`` command.

Everything runs on a `task.Clock` against the in-memory fake intake server of
tests/pos/test_client.py, except the last test: the real command in its own
process against a tiny real server on 127.0.0.1 port 0.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import re
import sys
from collections import Counter
from collections.abc import Generator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_twisted
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory

from smsgw.intake.envelope import TerminalKey
from smsgw.pos import cards
from smsgw.pos.cli import (
    DEFAULT_CONNECT,
    UsageProblem,
    add_pos_arguments,
    pos_main,
    read_key,
)
from smsgw.pos.client import IntakeClientFactory, IntakeClientProtocol
from smsgw.pos.load import LoadStats, run_load
from smsgw.pos.report import format_progress
from smsgw.pos.txns import DEFAULT_MSISDNS, MERCHANTS, make_txn_body
from tests.pos.test_client import (
    KEY,
    SECRET,
    FakeEndpoint,
    FakeIntake,
    FakeIntakeServer,
    ack,
    failure_of,
    no_result,
    success_of,
)

ROOT = Path(__file__).resolve().parents[2]
NOW = 1764417605.0  # intake-v1.md test vector's ts
AMOUNT = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,3})?$")
TXN_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
)
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
PAN = "6222021234567894"


def simple_body(i: int) -> dict[str, Any]:
    return {"type": "txn", "txn_id": f"L{i}", "ts": 0, "kind": "purchase"}


def start_load(
    intake: FakeIntake, **kwargs: Any
) -> tuple[Deferred[LoadStats], FakeEndpoint]:
    """run_load against ``intake`` with terminal T1001 and the demo key."""
    endpoint = FakeEndpoint(intake, refuse_after=kwargs.pop("refuse_after", None))
    factory = IntakeClientFactory("T1001", KEY, intake.clock)

    def connect() -> Deferred[IntakeClientProtocol]:
        return endpoint.connect(factory)

    kwargs.setdefault("make_body", simple_body)
    d = run_load(intake.clock, connect, terminal="T1001", key=KEY, **kwargs)
    return d, endpoint


def step(clock: task.Clock, until: float, dt: float = 0.001) -> None:
    """Advance ``clock`` in small steps until it reads ``until``."""
    while clock.seconds() < until - 1e-9:
        clock.advance(min(dt, until - clock.seconds()))


# -- LoadStats -----------------------------------------------------------------


def test_percentiles_are_exact_nearest_rank() -> None:
    """p50/p90/p99/max of 1..100 ms (any order) are exactly 50, 90, 99, 100 ms."""
    latencies = [k / 1000 for k in range(1, 101)]
    random.Random(5).shuffle(latencies)
    stats = LoadStats(latencies=latencies)
    assert (stats.p50, stats.p90, stats.p99, stats.max) == (0.05, 0.09, 0.099, 0.1)
    assert stats.percentile(0.5) == 0.001


def test_percentiles_of_few_or_no_latencies() -> None:
    """One latency is every percentile; none gives 0.0; p outside (0, 100] raises."""
    assert LoadStats(latencies=[0.25]).p99 == 0.25
    four = LoadStats(latencies=[0.4, 0.1, 0.3, 0.2])
    assert (four.p50, four.p90, four.max) == (0.2, 0.4, 0.4)
    assert LoadStats().p50 == 0.0
    for p in (0, -1, 100.5):
        with pytest.raises(ValueError, match="percentile must be in"):
            LoadStats().percentile(p)


def test_percentiles_follow_new_latencies() -> None:
    """Latencies added after a percentile was read are included in the next read."""
    stats = LoadStats(latencies=[0.1, 0.2])
    assert stats.max == 0.2
    stats.latencies.append(0.3)
    assert stats.max == 0.3


def test_rate_and_outstanding() -> None:
    """rate is answered/elapsed (0.0 at elapsed 0); outstanding excludes failures."""
    stats = LoadStats(count=10, sent=8, answered=5, elapsed=2.0)
    stats.failures["timeout"] = 1
    assert (stats.rate, stats.failed, stats.outstanding) == (2.5, 1, 2)
    assert LoadStats(answered=3).rate == 0.0


# -- run_load ------------------------------------------------------------------


def test_rate_100_sends_100_in_the_first_second() -> None:
    """At rate 100/s, 100 requests go in the first second, 10 ms apart."""
    clock = task.Clock()
    intake = FakeIntake(clock)
    d, _ = start_load(intake, count=250, rate=100, window=10)
    step(clock, 0.999)
    assert len(intake.received) == 100
    times = [t for t, _, _ in intake.received]
    for k, t in enumerate(times):
        assert k / 100 <= t < k / 100 + 0.0015, (k, t)
    step(clock, 1.999)
    assert len(intake.received) == 200
    step(clock, 2.5)
    stats = success_of(d)
    assert (stats.sent, stats.answered, stats.by_status) == (
        250,
        250,
        Counter(accepted=250),
    )
    assert stats.alerts == 250
    assert 2.49 <= stats.elapsed <= 2.5
    assert [b["txn_id"] for _, _, b in intake.received] == [f"L{i}" for i in range(250)]
    assert clock.getDelayedCalls() == []


def test_rate_with_one_big_clock_step_still_counts_exactly() -> None:
    """Advancing the clock 0.999 s at once releases exactly the 100 due requests."""
    clock = task.Clock()
    intake = FakeIntake(clock)
    d, _ = start_load(intake, count=150, rate=100, window=200)
    clock.advance(0.999)
    assert len(intake.received) == 100
    clock.advance(1.0)
    assert success_of(d).answered == 150
    assert clock.getDelayedCalls() == []


def test_window_limits_outstanding_per_connection() -> None:
    """With window 3 on 2 connections and 1 s answers, 6 go per second, 3 each."""
    clock = task.Clock()
    intake = FakeIntake(clock, delay=lambda n: 1.0)
    d, endpoint = start_load(intake, count=20, connections=2, window=3)
    assert len(intake.received) == 6
    assert Counter(conn for _, conn, _ in intake.received) == Counter({0: 3, 1: 3})
    assert [c.outstanding for c in endpoint.clients] == [3, 3]
    clock.advance(1.0)
    assert len(intake.received) == 12
    clock.advance(1.0)
    assert len(intake.received) == 18
    clock.advance(1.0)
    assert len(intake.received) == 20
    no_result(d)
    clock.advance(1.0)
    stats = success_of(d)
    assert (stats.answered, stats.elapsed, stats.rate) == (20, 4.0, 5.0)
    assert stats.latencies == [1.0] * 20
    assert [c.open for c in endpoint.clients] == [False, False]
    assert clock.getDelayedCalls() == []


def test_window_caps_a_rate_the_server_cannot_follow() -> None:
    """Rate 100/s with window 1 and 1/16 s answers achieves 16/s, backlog after."""
    clock = task.Clock()
    intake = FakeIntake(clock, delay=lambda n: 1 / 16)
    d, _ = start_load(intake, count=24, rate=100, window=1)
    step(clock, 1023 / 1024, dt=1 / 1024)  # binary-exact steps: exact times
    assert [t for t, _, _ in intake.received] == [k / 16 for k in range(16)]
    step(clock, 1.5, dt=1 / 1024)
    stats = success_of(d)
    assert (stats.answered, stats.elapsed) == (24, 1.5)
    assert clock.getDelayedCalls() == []


def test_latencies_statuses_and_alerts_are_exact() -> None:
    """Known answer delays give exact percentiles; statuses and alerts are counted."""

    def respond(body: dict[str, Any], n: int) -> dict[str, Any]:
        if n == 5:
            return {"type": "error", "txn_id": body["txn_id"], "code": "invalid",
                    "message": "amount: too many decimals"}  # fmt: skip
        answer = ack(body, n)
        answer["alerts"] = 2
        if n % 4 == 3:
            answer["status"] = "duplicate"
        return answer

    clock = task.Clock()
    intake = FakeIntake(clock, respond=respond, delay=lambda n: (n + 1) / 64)
    d, _ = start_load(intake, count=8, window=8)
    for _ in range(8):
        clock.advance(1 / 64)
    stats = success_of(d)
    assert stats.latencies == [k / 64 for k in range(1, 9)]
    assert (stats.p50, stats.p90, stats.p99, stats.max) == (
        4 / 64,
        8 / 64,
        8 / 64,
        8 / 64,
    )
    assert stats.by_status == Counter(accepted=5, duplicate=2, invalid=1)
    assert stats.alerts == 10  # accepted only: a duplicate sent no new alert
    assert stats.elapsed == 8 / 64


def test_lost_connection_counts_failures_and_the_rest_continue() -> None:
    """Requests outstanding on a lost connection fail; the others finish the run."""
    clock = task.Clock()
    intake = FakeIntake(clock, delay=lambda n: 0.1)
    d, _ = start_load(intake, count=40, connections=2, window=4)
    intake.servers[0].transport.loseConnection()  # type: ignore[union-attr]
    step(clock, 2.0, dt=0.1)
    stats = success_of(d)
    assert stats.failures == Counter(connection_lost=4)
    assert (stats.sent, stats.answered) == (40, 36)
    assert {conn for _, conn, _ in intake.received[8:]} == {1}
    assert clock.getDelayedCalls() == []


def test_all_connections_lost_ends_the_run_early() -> None:
    """When every connection is gone the run ends with fewer sent than count."""
    clock = task.Clock()
    intake = FakeIntake(clock, delay=lambda n: 0.1)
    d, _ = start_load(intake, count=100, rate=50, window=2)
    step(clock, 0.5, dt=0.01)
    intake.servers[0].transport.loseConnection()  # type: ignore[union-attr]
    stats = success_of(d)
    assert stats.sent < 100
    assert stats.answered + stats.failed == stats.sent
    assert stats.failures["connection_lost"] >= 1
    assert clock.getDelayedCalls() == []


def test_connect_failure_fails_the_run_and_closes_the_others() -> None:
    """A refused connection fails run_load; connections already made are closed."""
    clock = task.Clock()
    d, endpoint = start_load(FakeIntake(clock), count=5, connections=3, refuse_after=1)
    failure_of(d, ConnectionRefusedError)
    assert [c.open for c in endpoint.clients] == [False]
    assert clock.getDelayedCalls() == []


def test_make_body_error_fails_the_run() -> None:
    """An exception from make_body fails the run with it and closes connections."""

    def make_body(i: int) -> dict[str, Any]:
        if i == 3:
            raise KeyError("no body 3")
        return simple_body(i)

    clock = task.Clock()
    d, endpoint = start_load(FakeIntake(clock), count=10, make_body=make_body)
    assert "no body 3" in str(failure_of(d, KeyError).value)
    assert not endpoint.clients[0].open
    clock.advance(1)
    assert clock.getDelayedCalls() == []


def test_progress_every_interval_and_at_the_end() -> None:
    """progress gets the live stats every 0.2 s of clock and once when done."""
    seen: list[tuple[float, int]] = []

    def progress(stats: LoadStats) -> None:
        seen.append((round(clock.seconds(), 6), stats.answered))

    clock = task.Clock()
    intake = FakeIntake(clock)
    d, _ = start_load(intake, count=50, rate=100, progress=progress)
    step(clock, 0.5, dt=0.01)
    assert success_of(d).answered == 50
    assert seen == [(0.2, 20), (0.4, 40), (0.49, 50)]
    assert clock.getDelayedCalls() == []


def test_zero_count_finishes_at_once() -> None:
    """A count of 0 sends nothing and fires with empty stats."""
    clock = task.Clock()
    d, endpoint = start_load(FakeIntake(clock), count=0, rate=10)
    stats = success_of(d)
    assert (stats.sent, stats.answered, stats.p99) == (0, 0, 0.0)
    assert not endpoint.clients[0].open


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": -1}, "count must be >= 0"),
        ({"rate": 0}, "rate must be > 0 or None"),
        ({"connections": 0}, "connections must be >= 1"),
        ({"window": 0}, "window must be >= 1"),
        ({"progress_interval": 0}, "progress_interval must be > 0"),
    ],
)
def test_run_load_rejects_bad_parameters(kwargs: dict[str, Any], message: str) -> None:
    """Out-of-range parameters raise ValueError naming the parameter."""
    kwargs.setdefault("count", 1)
    with pytest.raises(ValueError, match=message):
        start_load(FakeIntake(task.Clock()), **kwargs)


# -- make_txn_body -------------------------------------------------------------


def check_txn(body: dict[str, Any]) -> list[str]:
    """A simple intake-v1 validity check; returns the names of bad fields."""
    bad = []
    if body.get("type") != "txn":
        bad.append("type")
    if not TXN_ID.match(str(body.get("txn_id"))):
        bad.append("txn_id")
    if not isinstance(body.get("ts"), int):
        bad.append("ts")
    if body.get("kind") not in {
        "purchase",
        "refund",
        "reversal",
        "preauth",
        "withdrawal",
    }:
        bad.append("kind")
    amount = str(body.get("amount"))
    if not AMOUNT.match(amount) or float(amount) <= 0 or len(amount.split(".")[1]) != 2:
        bad.append("amount")
    if body.get("currency") != "CNY":
        bad.append("currency")
    pan = str(body.get("pan"))
    if not (12 <= len(pan) <= 19 and cards.luhn_valid(pan)):
        bad.append("pan")
    merchant_id = str(body.get("merchant_id"))
    if not (1 <= len(merchant_id) <= 32 and merchant_id.isascii()):
        bad.append("merchant_id")
    if len(str(body.get("merchant_name", ""))) > 100:
        bad.append("merchant_name")
    if not RFC3339.match(str(body.get("time"))):
        bad.append("time")
    if not E164.match(str(body.get("msisdn"))):
        bad.append("msisdn")
    if body.get("result", "approved") not in {"approved", "declined"}:
        bad.append("result")
    return bad


def test_make_txn_body_passes_a_validity_check() -> None:
    """2,000 generated bodies are valid intake-v1 transactions with unique ids."""
    rng = random.Random(42)
    bodies = [make_txn_body(i, rng, terminal="T1001", now=NOW) for i in range(2000)]
    assert [(i, check_txn(b)) for i, b in enumerate(bodies) if check_txn(b)] == []
    ids = [b["txn_id"] for b in bodies]
    assert len(set(ids)) == 2000
    assert ids[7] == "T1001-load-000007"
    earlier = set()
    for b in bodies:
        if b["kind"] in ("refund", "reversal"):
            assert b["orig_txn_id"] in earlier
        earlier.add(b["txn_id"])


def test_make_txn_body_time_and_ts_are_now_at_plus_8() -> None:
    """ts is int(now) and time is the same instant as RFC 3339 at +08:00."""
    body = make_txn_body(0, random.Random(1), terminal="T1001", now=NOW + 0.7)
    assert body["ts"] == 1764417605
    assert body["time"] == "2025-11-29T20:00:05+08:00"
    assert datetime.fromisoformat(body["time"]).timestamp() == 1764417605


def test_make_txn_body_mix_is_realistic() -> None:
    """Mostly purchases, every kind present, Chinese and English merchants,
    subscribers repeating from the pool, a few declines."""
    rng = random.Random(7)
    bodies = [make_txn_body(i, rng, terminal="T1001", now=NOW) for i in range(2000)]
    kinds = Counter(b["kind"] for b in bodies)
    assert kinds["purchase"] > 1500
    assert set(kinds) == {"purchase", "refund", "reversal", "preauth", "withdrawal"}
    names = {b["merchant_name"] for b in bodies}
    assert {name for _, name in MERCHANTS} <= names
    assert any(re.search(r"[\u4e00-\u9fff]", n) for n in names)
    assert any(n.isascii() for n in names)
    msisdns = Counter(b["msisdn"] for b in bodies)
    assert set(msisdns) <= set(DEFAULT_MSISDNS)
    assert msisdns.most_common(1)[0][1] > 1
    assert 0 < sum(b.get("result") == "declined" for b in bodies) < 100
    withdrawals = [b for b in bodies if b["kind"] == "withdrawal"]
    assert all(b["amount"].endswith("00.00") for b in withdrawals)


def test_make_txn_body_is_reproducible_and_takes_a_pool() -> None:
    """The same seed gives the same bodies; msisdns come from the given pool."""
    a = make_txn_body(3, random.Random(9), terminal="T1", now=NOW, run_id="r1")
    b = make_txn_body(3, random.Random(9), terminal="T1", now=NOW, run_id="r1")
    assert a == b
    c = make_txn_body(
        3, random.Random(9), terminal="T1", now=NOW, msisdns=["+8613800138000"]
    )
    assert c["msisdn"] == "+8613800138000"


def test_make_txn_body_txn_id_drops_characters_the_spec_forbids() -> None:
    """A terminal id with spaces or slashes still yields a spec-valid txn_id."""
    body = make_txn_body(1, random.Random(0), terminal="Shop 1/A", now=NOW)
    assert body["txn_id"] == "Shop1A-load-000001"


# -- the command ---------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="smsgw pos")
    add_pos_arguments(parser)
    return parser.parse_args(argv)


def run_cli(
    intake: FakeIntake, *argv: str, refuse: bool = False
) -> tuple[int, str, str]:
    """pos_main against ``intake``; runs the clock until it finishes."""
    out, err = io.StringIO(), io.StringIO()
    endpoint = FakeEndpoint(intake, refuse_after=0 if refuse else None)
    d = pos_main(parse(*argv), intake.clock, endpoint, out=out, err=err)
    for _ in range(100_000):
        if d.called:
            break
        intake.clock.advance(0.01)
    code = success_of(d)
    assert intake.clock.getDelayedCalls() == []
    return code, out.getvalue(), err.getvalue()


def test_defaults_and_help() -> None:
    """Defaults: local port, T1001, one txn, window 10; help shows the demo key."""
    ns = parse()
    assert (ns.connect, ns.terminal, ns.count, ns.window, ns.connections) == (
        DEFAULT_CONNECT,
        "T1001",
        1,
        10,
        1,
    )
    assert (ns.key, ns.key_file, ns.rate, ns.amount) == (None, None, None, None)
    parser = argparse.ArgumentParser()
    add_pos_arguments(parser)
    assert "default: the DEMO key" in " ".join(parser.format_help().split())
    ns = parse("--count", "500", "--rate", "250.5", "--kind", "refund", "--progress")
    assert (ns.count, ns.rate, ns.kind, ns.progress) == (500, 250.5, "refund", True)


def test_key_and_key_file_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    """Giving both --key and --key-file is a usage error (exit status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        parse("--key", "00" * 16, "--key-file", "k.hex")
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_bad_choice_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown --kind is a usage error naming the option."""
    with pytest.raises(SystemExit):
        parse("--kind", "cashback")
    assert "--kind" in capsys.readouterr().err


def test_read_key_default_file_and_errors(tmp_path: Path) -> None:
    """The demo key is the default; key files may have whitespace; bad keys named."""
    body = b'{"type":"ping"}'
    assert read_key(parse()).sign(body) == KEY.sign(body)
    other = "ab" * 20
    path = tmp_path / "t.hex"
    path.write_text(f"  {other}\n")
    assert read_key(parse("--key-file", str(path))).sign(body) == TerminalKey(
        bytes.fromhex(other)
    ).sign(body)
    with pytest.raises(UsageProblem, match=r"^--key: the key must be hex digits$"):
        read_key(parse("--key", "zz" * 16))
    with pytest.raises(
        UsageProblem, match="--key: the key must be 16 to 64 bytes, got 8"
    ):
        read_key(parse("--key", "00" * 8))
    with pytest.raises(UsageProblem, match="--key-file: cannot read"):
        read_key(parse("--key-file", str(tmp_path / "missing.hex")))
    path.write_text("00" * 65)
    with pytest.raises(UsageProblem, match=r"--key-file: .* got 65"):
        read_key(parse("--key-file", str(path)))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--count", "0"], "--count must be at least 1, got 0"),
        (["--count", "5", "--rate", "-1"], "--rate must be above 0, got -1"),
        (["--count", "5", "--connections", "0"], "--connections must be at least 1"),
        (["--count", "5", "--window", "0"], "--window must be at least 1"),
        (["--timeout", "0"], "--timeout must be above 0"),
        (["--count", "5", "--txn-id", "X1"], "--txn-id applies to one transaction"),
        (["--key", "0011"], "--key: the key must be 16 to 64 bytes, got 2"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str) -> None:
    """A bad option value exits 2 with a message naming the option."""
    code, out, err = run_cli(FakeIntake(task.Clock()), *argv)
    assert (code, out) == (2, "")
    assert err == f"smsgw pos: {message}\n" or message in err


def test_one_txn_prints_the_ack_and_exits_0() -> None:
    """One transaction prints the response body as JSON and exits 0 when accepted."""
    clock = task.Clock()
    clock.advance(NOW)
    intake = FakeIntake(clock)
    code, out, err = run_cli(
        intake, "--amount", "88.00", "--msisdn", "+8613800138000", "--txn-id", "A1",
        "--seed", "1",
    )  # fmt: skip
    assert code == 0
    assert orjson.loads(out) == {
        "type": "ack",
        "txn_id": "A1",
        "status": "accepted",
        "ref": "R0",
        "alerts": 1,
    }
    [(_, _, body)] = intake.received
    assert body["amount"] == "88.00"
    assert body["msisdn"] == "+8613800138000"
    assert (body["ts"], body["time"]) == (1764417605, "2025-11-29T20:00:05+08:00")
    assert (body["merchant_id"], body["merchant_name"]) == (
        "M001",
        "星巴克(南京西路店)",
    )
    assert cards.luhn_valid(body["pan"])
    assert body["pan"] not in out + err
    assert cards.mask_pan(body["pan"]) in err
    assert "T1001 -> tcp:host=127.0.0.1:port=7400: txn A1 purchase 88.00 CNY" in err


def test_one_txn_never_prints_the_given_pan() -> None:
    """A PAN echoed by the gateway in an error message is printed masked; exit 1."""

    def respond(body: dict[str, Any], n: int) -> dict[str, Any]:
        return {"type": "error", "txn_id": body["txn_id"], "code": "invalid",
                "message": f"pan: {body['pan']} fails the Luhn check"}  # fmt: skip

    code, out, err = run_cli(
        FakeIntake(task.Clock(), respond=respond), "--pan", PAN, "--txn-id", "B2"
    )
    assert code == 1
    assert PAN not in out + err
    assert orjson.loads(out)["message"] == "pan: 622202******7894 fails the Luhn check"


def test_one_txn_duplicate_exits_0_and_unsigned_exits_1() -> None:
    """A duplicate ack exits 0; an ack without a MAC is untrusted and exits 1."""

    def duplicate(body: dict[str, Any], n: int) -> dict[str, Any]:
        return {**ack(body, n), "status": "duplicate"}

    assert run_cli(FakeIntake(task.Clock(), respond=duplicate))[0] == 0
    unknown = FakeIntake(task.Clock(), keys={})
    code, out, err = run_cli(unknown)
    assert code == 1
    assert orjson.loads(out)["code"] == "unknown_terminal"
    assert "no MAC: untrusted" in err


def test_one_txn_card_token_only_sends_no_pan() -> None:
    """With --card-token and no --pan the body carries the token and no PAN."""
    intake = FakeIntake(task.Clock())
    code, _, err = run_cli(intake, "--card-token", "tok_42", "--merchant-id", "M9")
    assert code == 0
    [(_, _, body)] = intake.received
    assert "pan" not in body
    assert body["card_token"] == "tok_42"
    assert (body["merchant_id"], "merchant_name" in body) == ("M9", False)
    assert "card tok_42" in err


def test_one_txn_refused_connection_exits_1() -> None:
    """A refused connection is reported on stderr with exit status 1."""
    code, out, err = run_cli(FakeIntake(task.Clock()), refuse=True)
    assert (code, out) == (1, "")
    assert "smsgw pos: cannot connect to tcp:host=127.0.0.1:port=7400" in err


def test_load_prints_a_summary_and_exits_0() -> None:
    """A load prints counts, alerts, rate, latencies; no progress line without a TTY."""
    intake = FakeIntake(task.Clock(), delay=lambda n: 0.01)
    code, out, err = run_cli(
        intake, "--count", "50", "--rate", "100", "--connections", "2", "--seed", "3"
    )
    assert code == 0
    assert out == (
        "sent 50 of 50, answered 50 in 0.500 s: 100.0 tx/s\n"
        "status: accepted 50\n"
        "alerts: 50\n"
        "ack latency ms: p50 10.00  p90 10.00  p99 10.00  max 10.00\n"
    )
    assert "\r" not in err
    assert (
        "T1001 -> tcp:host=127.0.0.1:port=7400: 50 txns, 100/s, 2 connection(s)" in err
    )
    assert len({b["txn_id"] for _, _, b in intake.received}) == 50
    assert {conn for _, conn, _ in intake.received} == {0, 1}
    assert all(not check_txn(b) for _, _, b in intake.received)


def test_load_progress_line_and_failures() -> None:
    """--progress draws carriage-return lines; errors are counted and exit 1."""

    def respond(body: dict[str, Any], n: int) -> dict[str, Any]:
        if n % 10 == 0:
            return {"type": "error", "txn_id": body["txn_id"], "code": "rate_limited",
                    "message": "slow down"}  # fmt: skip
        return ack(body, n)

    intake = FakeIntake(task.Clock(), respond=respond)
    code, out, err = run_cli(intake, "--count", "100", "--rate", "200", "--progress")
    assert code == 1
    assert "status: accepted 90, rate_limited 10\n" in out
    lines = err.split("\r")[1:]
    assert len(lines) == 3  # at 0.2 s, 0.4 s and the end (0.495 s)
    assert lines[-1].startswith("[" + "#" * 20 + "] 100/100 100%")
    assert lines[-1].endswith("ok 90  other 10  in flight 0\n")


def test_load_overrides_apply_to_every_txn() -> None:
    """Given fields override generated ones in every txn; a given PAN is masked."""
    intake = FakeIntake(task.Clock())
    code, out, err = run_cli(
        intake, "--count", "20", "--msisdn", "+8613900000000", "--pan", PAN,
        "--amount", "1.00",
    )  # fmt: skip
    assert code == 0
    bodies = [b for _, _, b in intake.received]
    assert {(b["msisdn"], b["pan"], b["amount"]) for b in bodies} == {
        ("+8613900000000", PAN, "1.00")
    }
    assert PAN not in out + err


def test_load_card_token_override_drops_the_generated_pan() -> None:
    """--card-token in a load sends the token instead of generated PANs."""
    intake = FakeIntake(task.Clock())
    assert run_cli(intake, "--count", "5", "--card-token", "tok")[0] == 0
    assert all(
        "pan" not in b and b["card_token"] == "tok" for _, _, b in intake.received
    )


def test_format_progress_partial() -> None:
    """The progress bar shows the done fraction, rate, ok/other and in flight."""
    stats = LoadStats(count=200, sent=60, answered=50, elapsed=2.0)
    stats.by_status.update(accepted=45, invalid=5)
    assert format_progress(stats, width=10) == (
        "[##........] 50/200  25%  25 tx/s  ok 45  other 5  in flight 10"
    )


# -- loopback: the real command against a real server --------------------------

CLI = (
    "import argparse, sys\n"
    "from twisted.internet import reactor\n"
    "from smsgw.pos.cli import add_pos_arguments, run_pos\n"
    "p = argparse.ArgumentParser(prog='smsgw pos')\n"
    "add_pos_arguments(p)\n"
    "sys.exit(run_pos(p.parse_args(sys.argv[1:]), reactor))\n"
)


class AckFactory(Factory[FakeIntakeServer]):
    """A real listener whose connections are `FakeIntake` servers."""

    def __init__(self, intake: FakeIntake) -> None:
        self.intake = intake

    def buildProtocol(self, addr: object) -> FakeIntakeServer:
        return self.intake.protocol()


@pytest.mark.loopback
@pytest_twisted.inlineCallbacks
def test_run_pos_against_a_real_server() -> Generator[Deferred[Any], Any, None]:
    """run_pos, in its own process, sends one txn then a load to a port-0 server."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.utils import getProcessOutputAndValue

    intake = FakeIntake(reactor)  # type: ignore[arg-type]
    port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
        AckFactory(intake)
    )
    connect = f"tcp:host=127.0.0.1:port={port.getHost().port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        out, err, code = yield getProcessOutputAndValue(
            sys.executable,
            ["-c", CLI, "--connect", connect, "--key", SECRET.hex(), "--pan", PAN,
             "--txn-id", "LOOP1"],
            env=env, path=str(ROOT),
        )  # fmt: skip
        assert (code, orjson.loads(out)) == (
            0,
            {"type": "ack", "txn_id": "LOOP1", "status": "accepted", "ref": "R0",
             "alerts": 1},
        ), err  # fmt: skip
        assert PAN.encode() not in out + err
        out, err, code = yield getProcessOutputAndValue(
            sys.executable,
            ["-c", CLI, "--connect", connect, "--count", "300", "--connections", "3",
             "--window", "20", "--progress"],
            env=env, path=str(ROOT),
        )  # fmt: skip
        assert code == 0, err
        assert b"status: accepted 300\n" in out
        assert b"alerts: 300\n" in out
        assert b"\r[" in err
        assert len(intake.received) == 301
        assert len(intake.servers) == 4
    finally:
        yield port.stopListening()
