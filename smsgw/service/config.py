"""The gateway's configuration: YAML in, frozen dataclasses out.

`load_config` reads the file named on the command line; `parse_config` is the
pure part. Every problem is collected with its key path and raised together in
one `ConfigError`; unknown keys are errors. Secrets (`Secret`, `TerminalKeys`)
are resolved from inline values, ``*_file`` or ``*_env`` while loading and are
masked in every repr and in `format_config`. Key names follow
``spec/operations.md``; the schema and defaults are the dataclasses below.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TextIO

import yaml
from typing_extensions import override

from smsgw._validate import (
    MASK,
    Check,
    ConfigError,
    Ctx,
    Filled,
    Invalid,
    OneOf,
    Reported,
    Secret,
    TerminalKeys,
    Where,
    boolean,
    build,
    choice,
    endpoint,
    integer,
    list_of,
    number,
    optional,
    read_yaml,
    secret,
    section,
    show,
    sourced,
    text,
)
from smsgw.carrier.profile import (
    NAME_PATTERN,
    CarrierProfile,
    ProfileError,
    is_profile_path,
    load_profile,
)
from smsgw.codec.constants import RECEIPT_STAT
from smsgw.feedback.classify import Keywords
from smsgw.service.config_alerts import (
    DISPATCH,
    ISSUERS,
    DispatchConfig,
    IssuerConfig,
    check_terminal_issuers,
)
from smsgw.service.config_feedback import FEEDBACK, FeedbackConfig

__all__ = [
    "AdminConfig",
    "CarrierConfig",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "DispatchConfig",
    "IntakeConfig",
    "IssuerConfig",
    "LoggingConfig",
    "Secret",
    "SimulatorConfig",
    "TerminalConfig",
    "TerminalKeys",
    "format_config",
    "load_config",
    "main_check_config",
    "parse_config",
]

LISTEN_KINDS = ("tcp", "tcp6", "ssl", "tls", "unix")
CONNECT_KINDS = ("tcp", "tls", "ssl", "unix")
RECEIPT_STATES = tuple(RECEIPT_STAT)
SMPP_LIMIT = " (SMPP 3.4 limit)"
_SIMULATOR_PASSWORD = Secret("secret")


def mask_url(url: str) -> str:
    """Return a database URL with any password replaced by ``****``."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", rf"\g<1>{MASK}@", url)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class DatabaseConfig:
    """Where the store lives and how writes are grouped into commits."""

    url: str = "sqlite:///data/smsgw.db"
    commit_interval: float = 0.0
    commit_batch: int = 500
    writer: Literal["process", "thread"] = "process"

    @override
    def __repr__(self) -> str:
        return (
            f"DatabaseConfig(url={mask_url(self.url)!r}, "
            f"commit_interval={self.commit_interval!r}, "
            f"commit_batch={self.commit_batch!r}, writer={self.writer!r})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeConfig:
    """The POS intake listener (intake-v1)."""

    listen: str
    max_frame: int = 65536
    max_skew: int = 300
    idle_timeout: float = 300.0
    client_ca: Path | None = None
    retention_days: int = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class TerminalConfig:
    """One POS terminal (or acquirer switch) allowed to send transactions."""

    id: str
    keys: TerminalKeys
    cert_sha256: str | None = None
    rate: float | None = None
    may_supply_msisdn: bool = True
    enabled: bool = True
    issuer: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CarrierConfig:
    """One SMSC account: its binds, throughput, routes and profile.

    `tps`, `window` and `max_parts` are filled from the profile when not set.
    """

    name: str
    connect: str
    connect_rx: str | None = None
    system_id: str
    password: Secret
    system_type: str = ""
    bind: Literal["transceiver", "transmitter+receiver"] = "transceiver"
    binds: int = 1
    source_addr: str
    source_addr_ton: int | None = None
    source_addr_npi: int | None = None
    tps: float
    window: int
    routes: tuple[str, ...] = ("+",)
    profile: CarrierProfile
    enquire_interval: float = 30.0
    response_timeout: float = 10.0
    reconnect_initial: float = 1.0
    reconnect_max: float = 60.0
    max_parts: int
    priority: int = 0
    enabled: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminConfig:
    """The admin HTTP API; without `token`, actions are disabled."""

    listen: str = "tcp:8080:interface=127.0.0.1"
    token: Secret | None = None
    read_token: Secret | None = None
    metrics_public: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorConfig:
    """The built-in SMSC simulator run inside the gateway."""

    enabled: bool = False
    listen: str = "tcp:2775:interface=127.0.0.1"
    system_id: str = "smsgw"
    password: Secret = _SIMULATOR_PASSWORD
    id_format: Literal["decimal", "hex"] = "decimal"
    receipt_delay: float = 0.5
    receipt_state: str = "DELIVRD"
    throttle_fraction: float = 0.0
    max_tps: float | None = None
    control: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingConfig:
    """Log level and output format."""

    level: Literal["debug", "info", "warn", "error", "critical"] = "info"
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole, validated configuration."""

    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    keys_dir: Path = Path("data/keys")
    intake: IntakeConfig
    terminals: tuple[TerminalConfig, ...] = ()
    carriers: tuple[CarrierConfig, ...]
    issuers: tuple[IssuerConfig, ...] = (IssuerConfig(),)
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


# -- checks specific to this schema ---------------------------------------


def _database_url(value: object, where: Where) -> str:
    """Accept sqlite:///relative, sqlite:////absolute or postgresql+psycopg://..."""
    if not isinstance(value, str):
        raise Invalid(f"must be a database URL, got {show(value)}")
    scheme, _, rest = value.partition("://")
    if scheme in ("sqlite", "sqlite+pysqlite"):
        if not rest.startswith("/") or rest in ("/", "//"):
            raise Invalid(
                "a SQLite URL needs a file: sqlite:///relative/path.db or "
                f"sqlite:////absolute/path.db, got {show(value)}"
            )
    elif scheme != "postgresql+psycopg" or not rest:
        raise Invalid(
            "must start with sqlite:/// or postgresql+psycopg://, "
            f"got {show(mask_url(value))}"
        )
    return value


def _path(value: object, where: Where) -> Path:
    """A file path, resolved relative to the configuration file's folder."""
    if not isinstance(value, str) or not value:
        raise Invalid(f"must be a file path, got {show(value)}")
    return where.ctx.base_dir / value


def _directory(value: object, where: Where) -> Path:
    """A directory path, kept relative to the working directory."""
    if not isinstance(value, str) or not value:
        raise Invalid(f"must be a directory path, got {show(value)}")
    return Path(value)


def _hex_key(value: str) -> bytes:
    """Decode a terminal key: 16 to 64 bytes as hex (never echoed in errors)."""
    digits = value.strip()
    wanted = "must be 16 to 64 bytes of hex"
    if not re.fullmatch(r"[0-9A-Fa-f]*", digits):
        raise Invalid(f"{wanted}, got characters other than 0-9 a-f")
    if len(digits) % 2:
        raise Invalid(f"{wanted}, got an odd number of hex digits ({len(digits)})")
    if not 16 <= len(digits) // 2 <= 64:
        raise Invalid(f"{wanted}, got {len(digits) // 2} bytes")
    return bytes.fromhex(digits)


_KEY_SOURCES = sourced(
    "key", lambda value: TerminalKeys((_hex_key(value),)), required=True
)


@dataclass(frozen=True, slots=True)
class _KeyItem:
    """One entry of a terminal's ``keys`` list given as a mapping."""

    key: TerminalKeys


def _key_item(value: object, where: Where) -> bytes:
    """A ``keys`` entry: a hex string, or a mapping with key/key_file/key_env."""
    if isinstance(value, dict):
        item = build(_KeyItem, value, where, {"key": _KEY_SOURCES})
        if item is None:
            raise Reported
        return item.key.reveal()[0]
    if not isinstance(value, str):
        raise Invalid("must be a hex string (quote it in YAML) or a mapping with key")
    return _hex_key(value)


_KEY_LIST = list_of(_key_item, min_len=1, max_len=2, what="keys")
_TERMINAL_KEYS = OneOf(
    {
        **_KEY_SOURCES.alternatives,
        "keys": lambda value, where: TerminalKeys(_KEY_LIST(value, where)),
    },
    required=True,
)


def _fingerprint(value: object, where: Where) -> str:
    """A SHA-256 certificate fingerprint, normalised to lowercase without colons."""
    digits = value.replace(":", "").lower() if isinstance(value, str) else ""
    if not re.fullmatch(r"[0-9a-f]{64}", digits):
        raise Invalid(
            "must be a SHA-256 fingerprint (64 hex digits, colons allowed), "
            f"got {show(value)}"
        )
    return digits


def _profile(value: object, where: Where) -> CarrierProfile:
    """A profile name from carriers/, or a path relative to the config's folder."""
    if not isinstance(value, str) or not value:
        raise Invalid(f"must be a profile name or a .yaml path, got {show(value)}")
    if is_profile_path(value):
        value = str(where.ctx.base_dir / value)
    try:
        return load_profile(value)
    except ProfileError as exc:
        for error in exc.errors:
            where.error(error)
        raise Reported from None


def _route(value: object, where: Where) -> str:
    """A destination prefix: ``+`` then digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise Invalid(f'must be a string like "+{value}" (quote it in YAML)')
    if not isinstance(value, str) or not re.fullmatch(r"\+[0-9]*", value):
        raise Invalid(f'must be a prefix like "+" or "+86", got {show(value)}')
    return value


def _or_empty(check: Check) -> Check:
    """Accept null as an empty list."""
    return lambda value, where: () if value is None else check(value, where)


# -- cross-field rules ----------------------------------------------------


def _intake_post(values: dict[str, Any], raw: Mapping[str, object], at: Where) -> None:
    """client_ca only makes sense with a TLS listener."""
    listen = values.get("listen")
    if values.get("client_ca") is not None and listen is not None:
        kind = listen.partition(":")[0]
        if kind not in ("ssl", "tls"):
            at.key("client_ca").error(
                f"only meaningful with an ssl: or tls: listener, "
                f"but intake.listen is {kind}:"
            )


def _carrier_post(values: dict[str, Any], raw: Mapping[str, object], at: Where) -> None:
    """Fill profile defaults; check bind/connect_rx and the reconnect delays."""
    if "profile" not in raw:
        values["profile"] = _profile("generic", at.key("profile"))
    profile: CarrierProfile | None = values.get("profile")
    for name in ("tps", "window", "max_parts"):
        if values.get(name) is None and raw.get(name) is None and profile:
            values[name] = getattr(profile, name)
    bind, rx = values.get("bind"), values.get("connect_rx")
    if bind == "transceiver" and rx is not None:
        at.key("connect_rx").error(
            "only for bind: transmitter+receiver (a transceiver uses connect)"
        )
    elif bind == "transmitter+receiver" and rx is None and "connect" in values:
        values["connect_rx"] = values["connect"]
    low, high = values.get("reconnect_initial"), values.get("reconnect_max")
    if low is not None and high is not None and high < low:
        at.key("reconnect_max").error(
            f"must be at least reconnect_initial ({low:g}), got {high:g}"
        )


# -- the schema -----------------------------------------------------------

_POSITIVE = number(gt=0)
_POSITIVE_INT = integer(1)
_LISTEN = endpoint(*LISTEN_KINDS)
_CONNECT = endpoint(*CONNECT_KINDS)

DATABASE = section(
    DatabaseConfig,
    {
        "url": _database_url,
        "commit_interval": number(ge=0, le=1),
        "commit_batch": _POSITIVE_INT,
        "writer": choice("process", "thread"),
    },
)
INTAKE = section(
    IntakeConfig,
    {
        "listen": _LISTEN,
        "max_frame": integer(1, 16 * 1024 * 1024),
        "max_skew": _POSITIVE_INT,
        "idle_timeout": _POSITIVE,
        "client_ca": optional(_path),
        "retention_days": _POSITIVE_INT,
    },
    _intake_post,
)
TERMINAL = section(
    TerminalConfig,
    {
        "id": text(
            pattern=r"[A-Za-z0-9._:-]{1,32}", wanted="1 to 32 of A-Z a-z 0-9 . _ : -"
        ),
        "keys": _TERMINAL_KEYS,
        "cert_sha256": optional(_fingerprint),
        "rate": optional(_POSITIVE),
        "may_supply_msisdn": boolean,
        "enabled": boolean,
        "issuer": optional(text()),
    },
)
CARRIER = section(
    CarrierConfig,
    {
        "name": text(pattern=NAME_PATTERN, wanted="1 to 32 of A-Z a-z 0-9 _ -"),
        "connect": _CONNECT,
        "connect_rx": optional(_CONNECT),
        "system_id": text(max_len=15, reason=SMPP_LIMIT),
        "password": secret("password", required=True, max_len=8, reason=SMPP_LIMIT),
        "system_type": text(min_len=0, max_len=12, reason=SMPP_LIMIT),
        "bind": choice("transceiver", "transmitter+receiver"),
        "binds": integer(1, 32),
        "source_addr": text(max_len=20, reason=SMPP_LIMIT),
        "source_addr_ton": optional(integer(0, 6)),
        "source_addr_npi": optional(integer(0, 18)),
        "tps": Filled(optional(_POSITIVE)),
        "window": Filled(optional(integer(1, 1000))),
        "routes": list_of(_route, min_len=1, unique="", what="prefixes"),
        "profile": Filled(_profile),
        "enquire_interval": _POSITIVE,
        "response_timeout": _POSITIVE,
        "reconnect_initial": _POSITIVE,
        "reconnect_max": _POSITIVE,
        "max_parts": Filled(optional(integer(1, 255))),
        "priority": integer(),
        "enabled": boolean,
    },
    _carrier_post,
)
ADMIN = section(
    AdminConfig,
    {
        "listen": _LISTEN,
        "token": secret("token", required=False),
        "read_token": secret("read_token", required=False),
        "metrics_public": boolean,
    },
)
SIMULATOR = section(
    SimulatorConfig,
    {
        "enabled": boolean,
        "listen": _LISTEN,
        "system_id": text(max_len=15, reason=SMPP_LIMIT),
        "password": secret("password", required=False, max_len=8, reason=SMPP_LIMIT),
        "id_format": choice("decimal", "hex"),
        "receipt_delay": number(ge=0),
        "receipt_state": choice(*RECEIPT_STATES),
        "throttle_fraction": number(ge=0, le=1),
        "max_tps": optional(_POSITIVE),
        "control": optional(_LISTEN),
    },
)
LOGGING = section(
    LoggingConfig,
    {
        "level": choice("debug", "info", "warn", "error", "critical"),
        "format": choice("text", "json"),
    },
)
CONFIG = {
    "database": DATABASE,
    "keys_dir": _directory,
    "intake": INTAKE,
    "terminals": _or_empty(list_of(TERMINAL, unique="id", what="terminals")),
    "carriers": list_of(CARRIER, min_len=1, unique="name", what="carriers"),
    "issuers": ISSUERS,
    "dispatch": DISPATCH,
    "feedback": FEEDBACK,
    "admin": ADMIN,
    "simulator": SIMULATOR,
    "logging": LOGGING,
}


# -- entry points ---------------------------------------------------------


def parse_config(data: object, *, base_dir: Path, environ: Mapping[str, str]) -> Config:
    """Validate parsed YAML `data` and return the `Config`.

    ``*_file`` paths are read relative to `base_dir`, ``*_env`` names from
    `environ`. Raises `ConfigError` listing every problem.
    """
    if data is None:
        raise ConfigError(
            ["the file is empty: a configuration needs intake and carriers"]
        )
    if not isinstance(data, dict):
        raise ConfigError(
            [f"the top level must be a mapping of sections, got {show(data)}"]
        )
    ctx = Ctx(base_dir=base_dir, environ=environ)
    config = build(Config, data, Where(ctx, ""), CONFIG)
    if config is not None:
        check_terminal_issuers(config.terminals, config.issuers, Where(ctx, ""))
    if config is None or ctx.errors:
        raise ConfigError(ctx.errors)
    return config


def load_config(
    path: str | Path, *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read and validate the YAML configuration file at `path`.

    Raises `ConfigError` for an unreadable file, bad YAML or invalid content.
    """
    path = Path(path)
    try:
        source = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except IsADirectoryError:
        raise ConfigError(
            [f"{path}: is a directory, not a configuration file"]
        ) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None
    return parse_config(
        read_yaml(source),
        base_dir=path.resolve().parent,
        environ=os.environ if environ is None else environ,
    )


def _plain(value: object) -> object:
    """Turn config objects into YAML-ready data with every secret masked."""
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, TerminalKeys):
        return [MASK] * len(value)
    if isinstance(value, CarrierProfile):
        return value.name
    if isinstance(value, Keywords):
        return value.as_mapping()
    if isinstance(value, frozenset):
        return sorted(_plain(item) for item in value)  # type: ignore[type-var]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            item.name: mask_url(getattr(value, item.name))
            if isinstance(value, DatabaseConfig) and item.name == "url"
            else _plain(getattr(value, item.name))
            for item in dataclasses.fields(value)
        }
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    return value


def format_config(cfg: Config) -> str:
    """Return the effective configuration as YAML, defaults filled, secrets masked."""
    return yaml.safe_dump(
        _plain(cfg), sort_keys=False, allow_unicode=True, default_flow_style=False
    )


def main_check_config(path: str, out: TextIO, err: TextIO) -> int:
    """``smsgw check-config``: print the effective config and return 0, or
    print each error (prefixed by the file name) to `err` and return 2."""
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        for error in exc.errors:
            prefix = "" if error.startswith(f"{Path(path)}: ") else f"{path}: "
            err.write(f"{prefix}{error}\n")
        return 2
    out.write(f"# effective configuration of {path} (secrets masked)\n")
    out.write(format_config(cfg))
    return 0
