"""The gateway assembled from conf/smsgw.yaml on a memory reactor."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

from smsgw.service.config import Config, DatabaseConfig, load_config
from smsgw.service.gateway import Gateway
from smsgw.store.db import SchemaError, make_engine, upgrade
from smsgw.testing import ThreadCalls


def first_run_config(tmp_path: Path, *, migrate: bool = True) -> Config:
    """conf/smsgw.yaml with its database and keys under ``tmp_path``."""
    cfg = load_config("conf/smsgw.yaml")
    url = f"sqlite:///{tmp_path}/data/smsgw.db"
    if migrate:
        upgrade(make_engine(url))
    return dataclasses.replace(
        cfg, database=DatabaseConfig(url=url), keys_dir=tmp_path / "keys"
    )


class Reactor(MemoryReactorClock, ThreadCalls):
    """A memory reactor that also takes the writer thread's calls."""

    def __init__(self) -> None:
        MemoryReactorClock.__init__(self)
        ThreadCalls.__init__(self)


def test_default_config_listens_for_terminals_and_binds_to_the_simulator(
    tmp_path: Path,
) -> None:
    """The first-run config listens on 7400 (intake) and 2775 (simulator) and binds."""
    reactor = Reactor()
    gateway = Gateway(first_run_config(tmp_path), reactor)
    gateway.privilegedStartService()
    gateway.startService()
    assert sorted((port, iface) for port, _, _, iface in reactor.tcpServers) == [
        (2775, "127.0.0.1"),
        (7400, "127.0.0.1"),
        (8080, "127.0.0.1"),  # the admin API
        (8081, "127.0.0.1"),  # the simulator's control API (inject replies)
    ]
    assert [(host, port) for host, port, *_ in reactor.tcpClients] == [
        ("127.0.0.1", 2775)
    ]
    assert set(gateway.carriers) == {"sim"}
    reactor.result(gateway.stopService())


def test_refuses_a_database_without_the_current_schema(tmp_path: Path) -> None:
    """A database not migrated to the current revision stops the start with a hint."""
    with pytest.raises(SchemaError, match="smsgw db upgrade"):
        Gateway(first_run_config(tmp_path, migrate=False), MemoryReactorClock())


def test_card_hash_key_is_generated_private_on_first_start(tmp_path: Path) -> None:
    """keys_dir gets a card-hash key readable by the owner only."""
    Gateway(first_run_config(tmp_path), MemoryReactorClock())
    key = tmp_path / "keys" / "card-hash-k1.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    assert len(key.read_text().strip()) == 64


def test_preflight_names_what_stops_the_start(tmp_path: Path) -> None:
    """twistd's option check reports the missing schema or a loose key file (card
    hash or audit) in one line, and nothing once both are right."""
    from smsgw.service.tap import preflight

    cfg = first_run_config(tmp_path, migrate=False)
    assert "run `smsgw db upgrade" in (preflight(cfg) or "")
    upgrade(make_engine(cfg.database.url))
    assert preflight(cfg) is None
    key = tmp_path / "keys" / "card-hash-k1.key"
    key.chmod(0o644)
    assert "readable by group or others" in (preflight(cfg) or "")
    key.chmod(0o600)
    audit_key = tmp_path / "keys" / "audit-k1.key"
    audit_key.chmod(0o604)
    assert f"{audit_key}: readable by group or others" in (preflight(cfg) or "")
    audit_key.chmod(0o600)
    assert preflight(cfg) is None
    bad = dataclasses.replace(
        cfg, database=DatabaseConfig(url="postgresql+psycopg://nobody@127.0.0.1:1/x")
    )
    assert (preflight(bad) or "").startswith("database postgresql+psycopg://")


def test_admin_pause_makes_a_carrier_look_down_to_dispatch(tmp_path: Path) -> None:
    """Paused by an operator, the carrier reports no bind to the dispatcher (its
    alerts wait or fail over) and the carriers view says so; resume undoes it."""
    from smsgw.service.admin_actions import GatewayActions

    gateway = Gateway(first_run_config(tmp_path), MemoryReactorClock())
    actions = GatewayActions(gateway)
    link = gateway.dispatcher.links["sim"]
    assert actions.has_carrier("sim")
    assert not actions.has_carrier("x")
    actions.pause("sim", True, "admin-api:admin")
    assert link.bound == 0
    [view] = actions.carriers()
    assert (view["name"], view["paused"], view["window"]) == ("sim", True, 100)
    actions.pause("sim", False, "admin-api:admin")
    assert actions.carriers()[0]["paused"] is False
    audits = [w for w in gateway.writer._urgent + gateway.writer._rest]  # type: ignore[attr-defined]
    assert [e[1].action for e in audits] == ["carrier.pause", "carrier.resume"]


def test_metrics_are_read_from_the_gateway_counters(tmp_path: Path) -> None:
    """/metrics text: every name starts with smsgw_, counters follow what the
    intake, dispatcher and carriers counted."""
    from smsgw.service.metrics import metrics_text

    gateway = Gateway(first_run_config(tmp_path), MemoryReactorClock())
    gateway.intake.counts.update({"accepted": 3, "invalid": 1})
    gateway.dispatcher.counts["submitted"] = 2
    gateway.alert_statuses = {"delivered": 5, "queued": 1}
    text = metrics_text(gateway).decode()
    assert 'smsgw_alerts_by_status{status="delivered"} 5.0' in text
    assert 'smsgw_intake_requests_total{result="accepted"} 3.0' in text
    assert 'smsgw_intake_requests_total{result="invalid"} 1.0' in text
    assert 'smsgw_alerts_total{outcome="submitted"} 2.0' in text
    assert 'smsgw_binds_up{carrier="sim"} 0.0' in text
    assert "smsgw_store_pending 0.0" in text
    assert 'smsgw_store_batch_seconds_bucket{le="+Inf"} 0.0' in text
    names = [
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    ]
    assert names
    assert all(n.startswith("smsgw_") for n in names)


def test_store_batch_histograms() -> None:
    """Batch time and size histograms: cumulative buckets, sum and count."""
    from smsgw.stats import WriterStats

    stats = WriterStats()
    for seconds, size in ((0.002, 1), (0.02, 300), (7.0, 2000)):
        stats.batch(seconds, size)
    buckets = dict(stats.seconds.cumulative())
    assert (buckets["0.001"], buckets["0.0025"], buckets["0.025"], buckets["+Inf"]) == (
        0,
        1,
        2,
        3,
    )
    assert dict(stats.sizes.cumulative())["500.0"] == 2
    assert (stats.sizes.count, stats.sizes.sum) == (3, 2301)


def test_the_operator_guide_names_only_real_metrics(tmp_path: Path) -> None:
    """Every smsgw_ metric the guide's alert rules use is exported."""
    import re

    from smsgw.service.metrics import metrics_text

    def base(name: str) -> str:
        return re.sub(r"_(total|bucket|count|sum)$", "", name)

    gateway = Gateway(first_run_config(tmp_path), MemoryReactorClock())
    text = metrics_text(gateway).decode()
    exported = {base(n) for n in re.findall(r"^# TYPE (smsgw_\w+)", text, re.M)}
    guide = (
        Path(__file__).resolve().parents[2] / "docs" / "operator-guide.md"
    ).read_text()
    used = {base(n) for n in re.findall(r"\b(smsgw_\w+)", guide)}
    assert used
    assert used <= exported
