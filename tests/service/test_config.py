"""Tests for the configuration loader (smsgw.service.config)."""

from __future__ import annotations

import copy
import dataclasses
import io
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from smsgw.service.config import (
    Config,
    ConfigError,
    Secret,
    TerminalKeys,
    format_config,
    load_config,
    main_check_config,
    parse_config,
)

ROOT = Path(__file__).resolve().parents[2]
CONF_FILES = sorted((ROOT / "conf").glob("*.yaml"))
TEST_KEY = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

MINIMAL: dict[str, Any] = {
    "intake": {"listen": "tcp:7400:interface=127.0.0.1"},
    "terminals": [{"id": "T1", "key": TEST_KEY}],
    "carriers": [
        {
            "name": "c1",
            "connect": "tcp:host=127.0.0.1:port=2775",
            "system_id": "smsgw",
            "password": "secret",
            "source_addr": "95588",
        }
    ],
}


def minimal(change: Callable[[dict[str, Any]], object] | None = None) -> dict[str, Any]:
    """Return a fresh copy of the minimal valid config, passed through `change`."""
    data = copy.deepcopy(MINIMAL)
    if change is not None:
        change(data)
    return data


def load(tmp_path: Path, data: object, environ: dict[str, str] | None = None) -> Config:
    """Write `data` as YAML to tmp_path/smsgw.yaml and load it."""
    path = tmp_path / "smsgw.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path, environ=environ or {})


def errors_of(
    tmp_path: Path, data: object, environ: dict[str, str] | None = None
) -> list[str]:
    """Return the errors loading `data` raises."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, data, environ)
    return info.value.errors


def second_carrier(data: dict[str, Any], **fields: object) -> None:
    """Append a second carrier, copied from the first with `fields` changed."""
    data["carriers"].append({**data["carriers"][0], "name": "c2", **fields})


def test_minimal_config_gets_every_default(tmp_path: Path) -> None:
    """A config with only the required keys gets the documented defaults."""
    cfg = load(tmp_path, minimal())
    assert cfg.database.url == "sqlite:///data/smsgw.db"
    assert (cfg.database.commit_interval, cfg.database.commit_batch) == (0.0, 500)
    assert cfg.database.writer == "process"
    assert cfg.keys_dir == Path("data/keys")
    assert (cfg.intake.max_frame, cfg.intake.max_skew) == (65536, 300)
    assert (cfg.intake.idle_timeout, cfg.intake.retention_days) == (300.0, 30)
    assert cfg.intake.client_ca is None
    terminal = cfg.terminals[0]
    assert terminal.keys.reveal() == (bytes(range(32)),)
    assert (terminal.may_supply_msisdn, terminal.enabled) == (True, True)
    assert (terminal.rate, terminal.issuer, terminal.cert_sha256) == (None, None, None)
    carrier = cfg.carriers[0]
    assert carrier.password.reveal() == "secret"
    assert (carrier.bind, carrier.binds, carrier.connect_rx) == ("transceiver", 1, None)
    assert (carrier.tps, carrier.window, carrier.max_parts) == (100.0, 10, 10)
    assert carrier.routes == ("+",)
    assert carrier.profile.name == "generic"
    assert (carrier.source_addr_ton, carrier.source_addr_npi) == (None, None)
    assert (carrier.enquire_interval, carrier.response_timeout) == (30.0, 10.0)
    assert (carrier.reconnect_initial, carrier.reconnect_max) == (1.0, 60.0)
    assert (carrier.priority, carrier.enabled, carrier.system_type) == (0, True, "")
    assert cfg.admin.listen == "tcp:8080:interface=127.0.0.1"
    assert (cfg.admin.token, cfg.admin.read_token) == (None, None)
    assert cfg.admin.metrics_public is True
    assert cfg.simulator.enabled is False
    assert cfg.simulator.password.reveal() == "secret"
    assert (cfg.simulator.id_format, cfg.simulator.receipt_state) == (
        "decimal",
        "DELIVRD",
    )
    assert (cfg.logging.level, cfg.logging.format) == ("info", "text")


def test_config_is_frozen_and_uses_tuples(tmp_path: Path) -> None:
    """The loaded config is immutable: frozen dataclasses holding tuples."""
    cfg = load(tmp_path, minimal())
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.intake.max_frame = 1  # type: ignore[misc]
    assert isinstance(cfg.carriers, tuple)
    assert isinstance(cfg.terminals, tuple)


def test_terminals_may_be_absent_or_null(tmp_path: Path) -> None:
    """A config without terminals, or with `terminals:` left empty, has none."""
    assert load(tmp_path, minimal(lambda d: d.pop("terminals"))).terminals == ()
    data = minimal(lambda d: d.update(terminals=None))
    assert load(tmp_path, data).terminals == ()


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """Return a change setting the dotted `path` (list indexes as numbers)."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        node[last] = value

    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    """Return a change removing the dotted `path`."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return change


ERROR_CASES = [
    (
        lambda d: second_carrier(d, tps="fast"),
        "carriers[1].tps: must be a positive number, got 'fast'",
    ),
    (_drop("intake.listen"), "intake.listen: required"),
    (_drop("intake"), "intake: required"),
    (_drop("carriers"), "carriers: required"),
    (_set("carriers", []), "carriers: must list at least 1 of carriers, got 0"),
    (
        _set("terminals.0.key", "00" * 10),
        "terminals[0].key: must be 16 to 64 bytes of hex, got 10 bytes",
    ),
    (
        _set("terminals.0.key", "00" * 65),
        "terminals[0].key: must be 16 to 64 bytes of hex, got 65 bytes",
    ),
    (
        _set("terminals.0.key", "zz" * 16),
        "terminals[0].key: must be 16 to 64 bytes of hex, "
        "got characters other than 0-9 a-f",
    ),
    (
        _set("terminals.0.key", "0" * 33),
        "terminals[0].key: must be 16 to 64 bytes of hex, "
        "got an odd number of hex digits (33)",
    ),
    (
        _set("terminals.0.key", 1234),
        "terminals[0].key: must be a string (quote it in YAML), got a number",
    ),
    (
        _set("admin", {"tokn": "x"}),
        "admin.tokn: unknown key (did you mean 'token'?)",
    ),
    (
        _set("carrier", []),
        "carrier: unknown key (did you mean 'carriers'?)",
    ),
    (
        _set("intake.max_skew", True),
        "intake.max_skew: must be a positive integer, got true",
    ),
    (
        _set("intake.max_skew", 1.5),
        "intake.max_skew: must be a positive integer, got 1.5",
    ),
    (
        _set("intake.max_frame", 0),
        "intake.max_frame: must be an integer from 1 to 16777216, got 0",
    ),
    (
        _set("intake.listen", "http://0.0.0.0:80"),
        "intake.listen: must be an endpoint string "
        "(tcp:, tcp6:, ssl:, tls:, unix:...), got 'http://0.0.0.0:80'",
    ),
    (
        _set("intake.client_ca", "ca.pem"),
        "intake.client_ca: only meaningful with an ssl: or tls: listener, "
        "but intake.listen is tcp:",
    ),
    (
        _set("carriers.0.binds", 0),
        "carriers[0].binds: must be an integer from 1 to 32, got 0",
    ),
    (
        _set("carriers.0.password", "123456789"),
        "carriers[0].password: must be at most 8 characters (SMPP 3.4 limit), got 9",
    ),
    (
        _set("carriers.0.password", 12345678),
        "carriers[0].password: must be a string (quote it in YAML), got a number",
    ),
    (
        _drop("carriers.0.password"),
        "carriers[0].password: required "
        "(give one of password, password_file, password_env)",
    ),
    (
        _set("carriers.0.system_id", "x" * 16),
        "carriers[0].system_id: must be at most 15 characters (SMPP 3.4 limit), got 16",
    ),
    (
        _set("carriers.0.source_addr", 95588),
        "carriers[0].source_addr: must be a string (quote it in YAML), got 95588",
    ),
    (
        _set("carriers.0.routes", [86]),
        'carriers[0].routes[0]: must be a string like "+86" (quote it in YAML)',
    ),
    (
        _set("carriers.0.routes", ["+86", "86"]),
        'carriers[0].routes[1]: must be a prefix like "+" or "+86", got \'86\'',
    ),
    (
        _set("carriers.0.routes", ["+86", "+86"]),
        "carriers[0].routes[1]: duplicate '+86' (already at carriers[0].routes[0])",
    ),
    (
        _set("carriers.0.connect_rx", "tcp:host=rx.example:port=2776"),
        "carriers[0].connect_rx: only for bind: transmitter+receiver "
        "(a transceiver uses connect)",
    ),
    (
        _set("carriers.0.bind", "transmitter"),
        "carriers[0].bind: must be one of transceiver, transmitter+receiver, "
        "got 'transmitter'",
    ),
    (
        _set("carriers.0.reconnect_max", 0.5),
        "carriers[0].reconnect_max: must be at least reconnect_initial (1), got 0.5",
    ),
    (
        _set("carriers.0.source_addr_ton", 7),
        "carriers[0].source_addr_ton: must be an integer from 0 to 6, got 7",
    ),
    (
        _set("carriers.0.profile", "genric"),
        "carriers[0].profile: unknown profile 'genric' "
        "(did you mean 'generic'?; or give a path to a .yaml file)",
    ),
    (
        lambda d: second_carrier(d, name="c1"),
        "carriers[1].name: duplicate 'c1' (already at carriers[0])",
    ),
    (
        lambda d: d["terminals"].append({"id": "T1", "key": TEST_KEY}),
        "terminals[1].id: duplicate 'T1' (already at terminals[0])",
    ),
    (
        _set("terminals.0.id", "bad id"),
        "terminals[0].id: must be 1 to 32 of A-Z a-z 0-9 . _ : -, got 'bad id'",
    ),
    (
        _set("terminals.0.cert_sha256", "abc"),
        "terminals[0].cert_sha256: must be a SHA-256 fingerprint "
        "(64 hex digits, colons allowed), got 'abc'",
    ),
    (
        _set("terminals.0.key_env", "K"),
        "terminals[0].key_env: conflicts with key: "
        "give exactly one of key, key_file, key_env, keys",
    ),
    (
        _drop("terminals.0.key"),
        "terminals[0].keys: required (give one of key, key_file, key_env, keys)",
    ),
    (
        lambda d: d["terminals"][0].update(key=None, keys=[TEST_KEY] * 3),
        "terminals[0].keys: must list 1 to 2 keys, got 3",
    ),
    (
        _set("terminals.0.rate", 0),
        "terminals[0].rate: must be a positive number, got 0",
    ),
    (
        _set("terminals.0.enabled", "yes please"),
        "terminals[0].enabled: must be true or false, got 'yes please'",
    ),
    (
        _set("database.url", "postgresql://u:hunter2@db/x"),
        "database.url: must start with sqlite:/// or postgresql+psycopg://, "
        "got 'postgresql://u:****@db/x'",
    ),
    (
        _set("database.url", "sqlite://"),
        "database.url: a SQLite URL needs a file: sqlite:///relative/path.db or "
        "sqlite:////absolute/path.db, got 'sqlite://'",
    ),
    (
        _set("database.commit_interval", 2),
        "database.commit_interval: must be a number from 0 to 1, got 2",
    ),
    (
        _set("logging.level", "verbose"),
        "logging.level: must be one of debug, info, warn, error, critical, "
        "got 'verbose'",
    ),
    (
        _set("simulator.throttle_fraction", 1.5),
        "simulator.throttle_fraction: must be a number from 0 to 1, got 1.5",
    ),
    (
        _set("simulator.receipt_delay", -1),
        "simulator.receipt_delay: must be a number of at least 0, got -1",
    ),
    (
        _set("simulator.receipt_state", "OK"),
        "simulator.receipt_state: must be one of ENROUTE, DELIVRD, EXPIRED, DELETED, "
        "UNDELIV, ACCEPTD, UNKNOWN, REJECTD, got 'OK'",
    ),
    (_set("admin", ["x"]), "admin: must be a mapping, got a list"),
]


@pytest.mark.parametrize(("change", "expected"), ERROR_CASES)
def test_each_error_names_its_key_path(
    tmp_path: Path, change: Callable[[dict[str, Any]], object], expected: str
) -> None:
    """Each kind of mistake is reported exactly once, with its key path."""
    assert errors_of(tmp_path, minimal(change)) == [expected]


def test_all_errors_are_collected(tmp_path: Path) -> None:
    """Several mistakes in different sections are all reported in one ConfigError."""

    def change(data: dict[str, Any]) -> None:
        data["intake"]["max_skew"] = "5m"
        data["carriers"][0]["tps"] = -1
        data["admin"] = {"tokn": "x"}
        data["logging"] = {"format": "xml"}

    errors = errors_of(tmp_path, minimal(change))
    assert len(errors) == 4
    assert str(ConfigError(errors)).splitlines() == errors


def test_unknown_key_without_close_match_lists_known_keys(tmp_path: Path) -> None:
    """An unknown key with no close match lists the keys that are allowed."""
    errors = errors_of(tmp_path, minimal(_set("logging.zzz", 1)))
    assert errors == ["logging.zzz: unknown key (expected one of: level, format)"]


def test_yaml_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    """A YAML syntax error is reported with its 1-based line and column."""
    path = tmp_path / "bad.yaml"
    path.write_text("intake:\n  listen: tcp:1\n carriers: x\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert len(info.value.errors) == 1
    assert info.value.errors[0].startswith("line 3, column 2: expected <block end>")


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    """A key given twice in one mapping is an error instead of last-one-wins."""
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump(minimal()) + "intake: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert len(info.value.errors) == 1
    assert "duplicate key 'intake' (first at line" in info.value.errors[0]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("", "the file is empty: a configuration needs intake and carriers"),
        (
            "# only a comment\n",
            "the file is empty: a configuration needs intake and carriers",
        ),
        ("- a\n- b\n", "the top level must be a mapping of sections, got a list"),
        ("just text\n", "the top level must be a mapping of sections, got 'just text'"),
    ],
)
def test_empty_or_non_mapping_file_is_an_error(
    tmp_path: Path, source: str, expected: str
) -> None:
    """An empty file or a top level that is not a mapping is a clear error."""
    path = tmp_path / "x.yaml"
    path.write_text(source, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.errors == [expected]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """Loading a file that does not exist raises ConfigError naming the path."""
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml", environ={})
    assert info.value.errors == [f"{tmp_path / 'nope.yaml'}: file not found"]


def test_parse_config_is_pure(tmp_path: Path) -> None:
    """parse_config validates already-parsed data with the given environment."""
    data = minimal(_drop("carriers.0.password"))
    data["carriers"][0]["password_env"] = "PW"
    cfg = parse_config(data, base_dir=tmp_path, environ={"PW": "s3cret"})
    assert cfg.carriers[0].password.reveal() == "s3cret"


# -- secrets --------------------------------------------------------------


def test_secret_is_masked_and_immutable() -> None:
    """A Secret shows **** in repr, str and f-strings, and reveals its value."""
    secret = Secret("hunter2")
    assert repr(secret) == str(secret) == f"{secret}" == "****"
    assert secret.reveal() == "hunter2"
    assert secret == Secret("hunter2")
    assert secret != Secret("other")
    assert copy.deepcopy(secret) is secret
    assert pickle.loads(pickle.dumps(secret)) == secret
    with pytest.raises(AttributeError):
        secret._value = "x"


def test_terminal_keys_are_masked() -> None:
    """TerminalKeys never show the key bytes in repr or str."""
    keys = TerminalKeys((b"\x01" * 16, b"\x02" * 16))
    assert repr(keys) == str(keys) == "TerminalKeys(****, ****)"
    assert len(keys) == 2
    assert keys.reveal() == (b"\x01" * 16, b"\x02" * 16)
    assert pickle.loads(pickle.dumps(keys)) == keys


def test_secrets_never_appear_in_repr_or_format(tmp_path: Path) -> None:
    """No secret (password, token, terminal key, database password) is shown."""

    def change(data: dict[str, Any]) -> None:
        data["database"] = {"url": "postgresql+psycopg://smsgw:dbpass77@db/smsgw"}
        data["carriers"][0]["password"] = "pw5x9zq"
        data["admin"] = {"token": "admintoken-abc123", "read_token": "readtoken-xyz"}
        data["simulator"] = {"password": "simpw8"}
        data["terminals"][0]["key"] = "a1b2c3d4" * 8

    cfg = load(tmp_path, minimal(change))
    shown = [repr(cfg), str(cfg), format_config(cfg)]
    secrets = ["dbpass77", "pw5x9zq", "admintoken-abc123", "readtoken-xyz"]
    secrets += ["simpw8", "a1b2c3d4", repr(bytes.fromhex("a1b2c3d4" * 8))[2:20]]
    for text in shown:
        for secret in secrets:
            assert secret not in text
    assert cfg.admin.token is not None
    assert cfg.admin.token.reveal() == "admintoken-abc123"
    assert "postgresql+psycopg://smsgw:****@db/smsgw" in format_config(cfg)


def test_key_file_is_read_relative_to_config_folder(tmp_path: Path) -> None:
    """key_file is resolved against the config file's folder, whitespace stripped."""
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "t1.hex").write_text(f"  {TEST_KEY.upper()}\n\n")
    data = minimal(_drop("terminals.0.key"))
    data["terminals"][0]["key_file"] = "keys/t1.hex"
    cfg = load(tmp_path, data)
    assert cfg.terminals[0].keys.reveal() == (bytes(range(32)),)


def test_missing_secret_file_names_the_path(tmp_path: Path) -> None:
    """An unreadable *_file is an error naming the resolved path."""
    data = minimal(_drop("carriers.0.password"))
    data["carriers"][0]["password_file"] = "secrets/pw.txt"
    path = tmp_path / "secrets" / "pw.txt"
    assert errors_of(tmp_path, data) == [
        f"carriers[0].password_file: cannot read {str(path)!r}: "
        "No such file or directory"
    ]


def test_bad_content_in_secret_file_names_the_file(tmp_path: Path) -> None:
    """A secret file with an invalid value says which file it came from."""
    (tmp_path / "pw.txt").write_text("far-too-long-password\n")
    data = minimal(_drop("carriers.0.password"))
    data["carriers"][0]["password_file"] = "pw.txt"
    assert errors_of(tmp_path, data) == [
        "carriers[0].password_file: must be at most 8 characters "
        f"(SMPP 3.4 limit), got 21 (in {str(tmp_path / 'pw.txt')!r})"
    ]


def test_env_secrets_are_resolved(tmp_path: Path) -> None:
    """*_env keys take their values from the given environment."""

    def change(data: dict[str, Any]) -> None:
        del data["carriers"][0]["password"], data["terminals"][0]["key"]
        data["carriers"][0]["password_env"] = "SMSC_PW"
        data["terminals"][0]["key_env"] = "T1_KEY"
        data["admin"] = {"token_env": "ADMIN_TOKEN"}

    environ = {"SMSC_PW": "pw", "T1_KEY": TEST_KEY, "ADMIN_TOKEN": "tok"}
    cfg = load(tmp_path, minimal(change), environ)
    assert cfg.carriers[0].password.reveal() == "pw"
    assert cfg.terminals[0].keys.reveal() == (bytes(range(32)),)
    assert cfg.admin.token is not None
    assert cfg.admin.token.reveal() == "tok"


def test_os_environ_is_the_default_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an explicit environ, load_config reads os.environ."""
    monkeypatch.setenv("SMSGW_TEST_PW", "fromenv")
    data = minimal(_drop("carriers.0.password"))
    data["carriers"][0]["password_env"] = "SMSGW_TEST_PW"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_config(path).carriers[0].password.reveal() == "fromenv"


def test_missing_env_variable_is_named(tmp_path: Path) -> None:
    """An unset *_env variable is an error naming the variable."""
    data = minimal(_drop("carriers.0.password"))
    data["carriers"][0]["password_env"] = "SMSC_PW"
    assert errors_of(tmp_path, data) == [
        "carriers[0].password_env: environment variable SMSC_PW is not set"
    ]


def test_bad_env_value_names_the_variable_not_the_value(tmp_path: Path) -> None:
    """An invalid value from the environment names the variable, never the value."""
    data = minimal(_drop("terminals.0.key"))
    data["terminals"][0]["key_env"] = "T1_KEY"
    errors = errors_of(tmp_path, data, {"T1_KEY": "abcd" * 5})
    assert errors == [
        "terminals[0].key_env: must be 16 to 64 bytes of hex, got 10 bytes "
        "(in environment variable T1_KEY)"
    ]


def test_explicit_null_secret_counts_as_absent(tmp_path: Path) -> None:
    """`token:` left empty means no token, not an error."""
    cfg = load(tmp_path, minimal(_set("admin", {"token": None})))
    assert cfg.admin.token is None


def test_rotation_keys_accept_hex_and_sources(tmp_path: Path) -> None:
    """`keys` takes one or two entries: hex strings or key/key_file/key_env maps."""
    (tmp_path / "old.hex").write_text("11" * 16)
    data = minimal(_drop("terminals.0.key"))
    data["terminals"][0]["keys"] = [{"key_env": "NEW"}, {"key_file": "old.hex"}]
    cfg = load(tmp_path, data, {"NEW": "22" * 32})
    assert cfg.terminals[0].keys.reveal() == (b"\x22" * 32, b"\x11" * 16)
    data["terminals"][0]["keys"] = [TEST_KEY]
    assert load(tmp_path, data).terminals[0].keys.reveal() == (bytes(range(32)),)


def test_rotation_key_errors_have_nested_paths(tmp_path: Path) -> None:
    """Errors inside a `keys` entry name the entry and its key."""
    data = minimal(_drop("terminals.0.key"))
    data["terminals"][0]["keys"] = [TEST_KEY, {"key_env": "OLD", "kye": 1}]
    assert errors_of(tmp_path, data) == [
        "terminals[0].keys[1].kye: unknown key (did you mean 'key'?)",
        "terminals[0].keys[1].key_env: environment variable OLD is not set",
    ]


# -- cross-field rules and profiles ---------------------------------------


def test_cert_fingerprint_is_normalised(tmp_path: Path) -> None:
    """cert_sha256 with colons and capitals becomes 64 lowercase hex digits."""
    fingerprint = ":".join(["AB"] * 32)
    cfg = load(tmp_path, minimal(_set("terminals.0.cert_sha256", fingerprint)))
    assert cfg.terminals[0].cert_sha256 == "ab" * 32


def test_client_ca_with_tls_listener_is_resolved(tmp_path: Path) -> None:
    """client_ca is accepted with an ssl: listener and resolved to the config folder."""

    def change(data: dict[str, Any]) -> None:
        data["intake"] = {
            "listen": "ssl:7401:privateKey=k.pem:certKey=c.pem",
            "client_ca": "certs/ca.pem",
        }

    cfg = load(tmp_path, minimal(change))
    assert cfg.intake.client_ca == tmp_path / "certs" / "ca.pem"


def test_transmitter_receiver_defaults_rx_to_connect(tmp_path: Path) -> None:
    """With bind transmitter+receiver and no connect_rx, the receiver uses connect."""
    cfg = load(tmp_path, minimal(_set("carriers.0.bind", "transmitter+receiver")))
    assert cfg.carriers[0].connect_rx == cfg.carriers[0].connect


def test_profile_fills_tps_window_and_max_parts(tmp_path: Path) -> None:
    """A carrier takes tps, window and max_parts from its profile unless set."""
    cfg = load(tmp_path, minimal(_set("carriers.0.profile", "smsgw-sim")))
    carrier = cfg.carriers[0]
    assert (carrier.tps, carrier.window) == (1000.0, 100)
    assert carrier.profile.name == "smsgw-sim"

    def change(data: dict[str, Any]) -> None:
        data["carriers"][0].update(profile="smsgw-sim", tps=5, window=2, max_parts=None)

    carrier = load(tmp_path, minimal(change)).carriers[0]
    assert (carrier.tps, carrier.window, carrier.max_parts) == (5.0, 2, 10)


def test_profile_path_is_relative_to_config(tmp_path: Path) -> None:
    """A profile given as a path is loaded relative to the config file's folder."""
    (tmp_path / "acme.yaml").write_text("name: acme\nmax_parts: 4\n")
    cfg = load(tmp_path, minimal(_set("carriers.0.profile", "acme.yaml")))
    assert (cfg.carriers[0].profile.name, cfg.carriers[0].max_parts) == ("acme", 4)


def test_invalid_profile_errors_are_nested_under_the_carrier(tmp_path: Path) -> None:
    """Errors inside a carrier's profile file carry the carrier path and file name."""
    (tmp_path / "acme.yaml").write_text("name: acme\nmax_parts: 0\n")
    errors = errors_of(tmp_path, minimal(_set("carriers.0.profile", "acme.yaml")))
    assert errors == [
        f"carriers[0].profile: {tmp_path / 'acme.yaml'}: "
        "max_parts: must be an integer from 1 to 255, got 0"
    ]


# -- format_config and check-config ---------------------------------------


def test_format_config_is_yaml_with_every_default(tmp_path: Path) -> None:
    """format_config prints every section and default as YAML that parses back."""
    cfg = load(tmp_path, minimal())
    printed = yaml.safe_load(format_config(cfg))
    assert list(printed) == [
        "database",
        "keys_dir",
        "intake",
        "terminals",
        "carriers",
        "issuers",
        "dispatch",
        "feedback",
        "admin",
        "simulator",
        "logging",
    ]
    assert printed["database"]["commit_batch"] == 500
    assert printed["carriers"][0]["profile"] == "generic"
    assert printed["carriers"][0]["password"] == "****"
    assert printed["terminals"][0]["keys"] == ["****"]
    assert printed["simulator"]["password"] == "****"
    assert printed["carriers"][0]["routes"] == ["+"]


def test_check_config_prints_effective_config(tmp_path: Path) -> None:
    """check-config prints the masked effective config to out and returns 0."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(minimal(_set("carriers.0.password", "pw9q7x"))))
    out, err = io.StringIO(), io.StringIO()
    assert main_check_config(str(path), out, err) == 0
    assert err.getvalue() == ""
    assert yaml.safe_load(out.getvalue())["carriers"][0]["name"] == "c1"
    assert "pw9q7x" not in out.getvalue()
    assert TEST_KEY not in out.getvalue()


def test_check_config_reports_errors(tmp_path: Path) -> None:
    """check-config prints each error with the file name to err and returns 2."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(minimal(_set("admin", {"tokn": "x"}))))
    out, err = io.StringIO(), io.StringIO()
    assert main_check_config(str(path), out, err) == 2
    assert out.getvalue() == ""
    assert (
        err.getvalue() == f"{path}: admin.tokn: unknown key (did you mean 'token'?)\n"
    )


def test_check_config_missing_file(tmp_path: Path) -> None:
    """check-config on a missing file says so and returns 2."""
    out, err = io.StringIO(), io.StringIO()
    path = tmp_path / "missing.yaml"
    assert main_check_config(str(path), out, err) == 2
    assert err.getvalue() == f"{path}: file not found\n"


# -- the shipped configs --------------------------------------------------

SAMPLE_SECRETS = {
    "key": "ab" * 32,
    "password": "pw123456",
    "token": "t" * 32,
    "read_token": "r" * 32,
    "secret": "s" * 32,
}


def provide_secrets(node: object, folder: Path, environ: dict[str, str]) -> None:
    """Create every *_file and set every *_env a config refers to."""
    if isinstance(node, list):
        for item in node:
            provide_secrets(item, folder, environ)
    elif isinstance(node, dict):
        for key, value in node.items():
            base, _, source = key.rpartition("_")
            if source == "env" and base in SAMPLE_SECRETS:
                environ[value] = SAMPLE_SECRETS[base]
            elif source == "file" and base in SAMPLE_SECRETS:
                (folder / value).parent.mkdir(parents=True, exist_ok=True)
                (folder / value).write_text(SAMPLE_SECRETS[base] + "\n")
            else:
                provide_secrets(value, folder, environ)


def test_conf_folder_has_the_documented_files() -> None:
    """conf/ ships the default config and the two examples."""
    names = {path.name for path in CONF_FILES}
    assert {"smsgw.yaml", "production.example.yaml", "two-binds.example.yaml"} <= names


@pytest.mark.parametrize("path", CONF_FILES, ids=[p.name for p in CONF_FILES])
def test_every_conf_file_loads(path: Path, tmp_path: Path) -> None:
    """Every conf/*.yaml is valid once the secrets it names exist."""
    shutil.copy(path, tmp_path / path.name)
    environ: dict[str, str] = {}
    provide_secrets(yaml.safe_load(path.read_text()), tmp_path, environ)
    cfg = load_config(tmp_path / path.name, environ=environ)
    assert cfg.carriers
    assert "****" in format_config(cfg)


def test_default_config_is_valid_on_a_fresh_checkout() -> None:
    """conf/smsgw.yaml loads as-is with nothing in the environment."""
    cfg = load_config(ROOT / "conf" / "smsgw.yaml", environ={})
    assert cfg.database.url == "sqlite:///data/smsgw.db"
    assert cfg.simulator.enabled
    assert cfg.simulator.listen == "tcp:2775:interface=127.0.0.1"
    (carrier,) = cfg.carriers
    assert (carrier.name, carrier.profile.name) == ("sim", "smsgw-sim")
    assert carrier.connect == "tcp:host=127.0.0.1:port=2775"
    assert carrier.system_id == cfg.simulator.system_id
    assert carrier.password == cfg.simulator.password
    (terminal,) = cfg.terminals
    assert terminal.id == "T1001"
    assert terminal.keys.reveal() == (bytes(range(32)),)
    assert cfg.admin.listen == "tcp:8080:interface=127.0.0.1"
    assert cfg.admin.token is None


def test_production_example_has_failover_and_tls(tmp_path: Path) -> None:
    """The production example has a TLS intake and two carriers sharing +86."""
    path = ROOT / "conf" / "production.example.yaml"
    shutil.copy(path, tmp_path / path.name)
    environ: dict[str, str] = {}
    provide_secrets(yaml.safe_load(path.read_text()), tmp_path, environ)
    cfg = load_config(tmp_path / path.name, environ=environ)
    assert cfg.intake.listen.startswith("ssl:")
    assert cfg.intake.client_ca is not None
    assert cfg.database.url.startswith("postgresql+psycopg://")
    by_name = {carrier.name: carrier for carrier in cfg.carriers}
    assert "+86" in by_name["domestic"].routes
    assert "+86" in by_name["aggregator"].routes
    assert by_name["domestic"].priority < by_name["aggregator"].priority
    assert cfg.admin.token is not None
    assert any(len(terminal.keys) == 2 for terminal in cfg.terminals)


def test_issuer_templates_are_checked_at_load(tmp_path: Path) -> None:
    """An issuer template breaking the sandbox rules is a config error with its path."""
    data = yaml.safe_load(Path("conf/smsgw.yaml").read_text())
    data["issuers"][0]["templates"] = {"en": "{{ signature }} {{ last4 }}"}
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=Path("conf"), environ={})
    [error] = info.value.errors
    assert error.startswith("issuers[0].templates.en: ")
    assert "amount" in error


# -- feedback (replies) and fraud webhooks ------------------------------------


def test_feedback_defaults_and_overrides(tmp_path: Path) -> None:
    """Without a feedback section the defaults apply; a keyword set given for a
    language and class replaces only that set; a reply text only that text."""
    from smsgw.feedback.classify import classify

    cfg = load(tmp_path, minimal())
    assert cfg.feedback.reply_window == 86400.0
    assert classify("N", cfg.feedback.keywords).kind == "not_me"
    data = minimal(
        _set(
            "feedback",
            {
                "reply_window": 3600,
                "keywords": {"en": {"not_me": ["N", "FRAUD"]}},
                "replies": {"en": {"help": "{signature}: call 95588"}},
            },
        )
    )
    cfg = load(tmp_path, data)
    assert classify("fraud", cfg.feedback.keywords).kind == "not_me"
    assert classify("no", cfg.feedback.keywords).kind is None  # replaced set
    assert classify("退订", cfg.feedback.keywords).kind == "stop"  # zh kept
    assert cfg.feedback.replies["en"]["help"] == "{signature}: call 95588"
    assert "退订" in cfg.feedback.replies["zh"]["stop"]


def test_feedback_errors_name_their_key_paths(tmp_path: Path) -> None:
    """Unknown languages, classes and placeholders, a word in two classes and a
    bare string for a list are each reported with its path."""
    data = minimal(
        _set(
            "feedback",
            {
                "keywords": {"fr": {}, "en": {"not_me": ["Y"], "stop": "STOP"}},
                "replies": {"zh": {"help": "{phone}"}, "en": {"thanks": "x"}},
                "reply_window": 0,
            },
        )
    )
    assert errors_of(tmp_path, data) == [
        "feedback.reply_window: must be a number above 0 and at most 2.592e+06, got 0",
        "feedback.keywords.en.stop: must be a list of words, got 'STOP'",
        "feedback.keywords.fr: unknown language (expected one of: zh, en)",
        "feedback.replies.en.thanks: unknown key (expected one of: not_me, stop, help)",
        "feedback.replies.zh.help: unknown placeholder {phone} "
        "(known: amount, last4, merchant, signature)",
    ]
    unquoted = minimal(_set("feedback", {"keywords": {"en": {"not_me": ["N", False]}}}))
    assert errors_of(tmp_path, unquoted) == [
        "feedback.keywords.en.not_me: got false in the list: YAML reads NO, YES, ON "
        'and OFF as true/false, quote the words ("NO")'
    ]
    words = minimal(_set("feedback", {"keywords": {"en": {"not_me": ["Y"]}}}))
    assert errors_of(tmp_path, words) == [
        "feedback.keywords.en.not_me: word 'Y' (normalised 'y') is already in "
        "en.confirm"
    ]


def test_issuer_fraud_webhook_and_mandatory_alerts(tmp_path: Path) -> None:
    """An issuer's fraud webhook takes its secret from a file (never shown);
    mandatory lists alerts sent even after an opt-out."""
    (tmp_path / "hook.secret").write_text("0123456789abcdef0123456789\n")
    data = minimal(
        _set(
            "issuers",
            [
                {
                    "name": "default",
                    "mandatory": ["declined", "large"],
                    "fraud_webhook": {
                        "url": "https://fraud.bank.example/smsgw",
                        "secret_file": "hook.secret",
                        "key_id": "k2",
                    },
                }
            ],
        )
    )
    issuer = load(tmp_path, data).issuers[0]
    hook = issuer.fraud_webhook
    assert hook is not None
    assert hook.secret.reveal() == "0123456789abcdef0123456789"
    assert (hook.url, hook.key_id, hook.timeout) == (
        "https://fraud.bank.example/smsgw",
        "k2",
        10.0,
    )
    assert "0123456789abcdef" not in repr(issuer)
    assert issuer.mandatory == frozenset({"declined", "large"})
    bad = minimal(
        _set(
            "issuers",
            [
                {
                    "name": "default",
                    "mandatory": ["always"],
                    "fraud_webhook": {
                        "url": "https://u:p@x.example/",
                        "secret": "short",
                    },
                }
            ],
        )
    )
    assert errors_of(tmp_path, bad) == [
        "issuers[0].mandatory[0]: must be one of declined, reversal, large, "
        "got 'always'",
        "issuers[0].fraud_webhook.url: must not carry credentials: give them as "
        "secret/secret_file",
        "issuers[0].fraud_webhook.secret: must be at least 16 characters, got 5",
    ]


def test_every_config_key_is_documented_in_the_examples() -> None:
    """Every key the loader knows appears in conf/*.example.yaml or conf/smsgw.yaml
    (as a key, a commented key, or its _file / _env form); carrier profile keys in
    carriers/*.yaml. The examples are the configuration reference."""
    import re
    import typing

    from smsgw.carrier.profile import CarrierProfile
    from smsgw.feedback.classify import Keywords
    from smsgw.service.config import Config

    docs = "".join(p.read_text() for p in sorted((ROOT / "conf").glob("*.yaml")))
    profiles = "".join(
        p.read_text() for p in sorted((ROOT / "carriers").glob("*.yaml"))
    )

    def keys(text: str) -> set[str]:
        found = set(re.findall(r"(?:^|[\s{,#])([a-z][a-z0-9_]*):", text, re.M))
        return found | {
            k.rsplit("_", 1)[0] for k in found if k.endswith(("_file", "_env"))
        }

    documented, in_profiles = keys(docs), keys(profiles)
    missing: list[str] = []

    def walk(cls: type, path: str, where: set[str]) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            here = f"{path}.{f.name}" if path else f.name
            if f.name not in where:
                missing.append(here)
            for arg in (hints[f.name], *typing.get_args(hints[f.name])):
                for inner in (arg, *typing.get_args(arg)):
                    if inner is Keywords or not dataclasses.is_dataclass(inner):
                        continue
                    inside = in_profiles if inner is CarrierProfile else where
                    walk(inner, here, inside)  # type: ignore[arg-type]

    walk(Config, "", documented)
    assert missing == []


def test_the_systemd_unit_runs_the_gateway_in_the_foreground() -> None:
    """conf/smsgw.service starts twistd -n smsgw with a config, stops it with
    SIGTERM (a graceful drain) and keeps secrets out of the unit."""
    import configparser

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(ROOT / "conf" / "smsgw.service")
    service = unit["Service"]
    assert " -n " in service["ExecStart"]
    assert service["ExecStart"].endswith("smsgw --config /etc/smsgw/smsgw.yaml")
    assert (service["KillSignal"], service["UMask"], service["User"]) == (
        "SIGTERM",
        "0077",
        "smsgw",
    )
    assert "password" not in (ROOT / "conf" / "smsgw.service").read_text().lower()
    assert unit["Install"]["WantedBy"] == "multi-user.target"
