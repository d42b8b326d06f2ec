"""Carrier profiles: what one kind of SMSC expects and sends back.

A profile records the things SMSCs disagree on: the format of message ids in
submit_sm_resp and in receipts, data_coding values, how long messages are
concatenated, TON/NPI defaults and a few documented quirks. Profiles are YAML
files in ``carriers/`` (packaged as ``smsgw.profiles``) or anywhere on disk,
and are validated with the same discipline as the main configuration.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import smsgw
from smsgw._validate import (
    ConfigError,
    Ctx,
    Invalid,
    Where,
    boolean,
    build,
    choice,
    integer,
    number,
    read_yaml,
    section,
    show,
    text,
)

IdFormat = Literal["decimal", "hex", "string"]
ID_FORMATS: tuple[IdFormat, ...] = ("decimal", "hex", "string")
NAME_PATTERN = r"[A-Za-z0-9_-]{1,32}"
_DECIMAL = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9A-Fa-f]+")


class ProfileError(ConfigError):
    """A profile could not be found or is invalid; each error names the file."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageIdFormats:
    """How the SMSC writes message ids in submit_sm_resp and in receipts."""

    submit_resp: IdFormat = "decimal"
    receipt: IdFormat = "decimal"


@dataclass(frozen=True, slots=True, kw_only=True)
class DataCodings:
    """The data_coding value this SMSC expects for each of our encodings."""

    gsm7: int = 0
    latin1: int = 3
    ucs2: int = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceTon:
    """source_addr_ton for each kind of sender address."""

    alphanumeric: int = 5
    short: int = 3
    international: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceNpi:
    """source_addr_npi for each kind of sender address."""

    alphanumeric: int = 0
    short: int = 0
    international: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class CarrierProfile:
    """Everything smsgw needs to know about one kind of SMSC."""

    name: str
    description: str = ""
    message_id: MessageIdFormats = field(default_factory=MessageIdFormats)
    data_coding: DataCodings = field(default_factory=DataCodings)
    latin1: bool = False
    gsm7_packing: Literal["unpacked", "packed"] = "unpacked"
    concatenation: Literal["udh8", "udh16", "sar", "payload"] = "udh8"
    max_parts: int = 10
    source_ton: SourceTon = field(default_factory=SourceTon)
    source_npi: SourceNpi = field(default_factory=SourceNpi)
    dest_ton: int = 1
    dest_npi: int = 1
    dest_plus: bool = False
    tps: float = 100.0
    window: int = 10
    registered_delivery: int = 1
    receipt_per_part: bool = True
    quirks: tuple[tuple[str, bool], ...] = ()

    def quirk(self, name: str) -> bool:
        """Return whether quirk `name` is switched on (absent means off)."""
        return dict(self.quirks).get(name, False)


def _quirks(value: object, where: Where) -> tuple[tuple[str, bool], ...]:
    """Check the quirks map: snake_case names to booleans, returned sorted."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise Invalid(f"must be a mapping of names to true/false, got {show(value)}")
    result: list[tuple[str, bool]] = []
    for name, flag in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            where.error(f"quirk names must be snake_case text, got {show(name)}")
        else:
            try:
                result.append((name, boolean(flag, where.key(name))))
            except Invalid as exc:
                where.key(name).error(exc.message)
    return tuple(sorted(result))


_TON = integer(0, 6)
_NPI = integer(0, 18)
_CODING = integer(0, 255)
_ID_FORMAT = choice(*ID_FORMATS)

PROFILE_SPEC = {
    "name": text(pattern=NAME_PATTERN, wanted="1 to 32 characters of A-Z a-z 0-9 _ -"),
    "description": text(min_len=0),
    "message_id": section(
        MessageIdFormats, {"submit_resp": _ID_FORMAT, "receipt": _ID_FORMAT}
    ),
    "data_coding": section(
        DataCodings, {"gsm7": _CODING, "latin1": _CODING, "ucs2": _CODING}
    ),
    "latin1": boolean,
    "gsm7_packing": choice("unpacked", "packed"),
    "concatenation": choice("udh8", "udh16", "sar", "payload"),
    "max_parts": integer(1, 255),
    "source_ton": section(
        SourceTon, {"alphanumeric": _TON, "short": _TON, "international": _TON}
    ),
    "source_npi": section(
        SourceNpi, {"alphanumeric": _NPI, "short": _NPI, "international": _NPI}
    ),
    "dest_ton": _TON,
    "dest_npi": _NPI,
    "dest_plus": boolean,
    "tps": number(gt=0),
    "window": integer(1, 1000),
    "registered_delivery": integer(0, 255),
    "receipt_per_part": boolean,
    "quirks": _quirks,
}


def parse_profile(data: object, label: str) -> CarrierProfile:
    """Validate parsed YAML `data` as a profile; `label` prefixes each error.

    Raises `ProfileError` listing every problem.
    """
    ctx = Ctx(base_dir=Path("."), environ={})
    if data is None:
        raise ProfileError([f"{label}: the file is empty (a profile needs a name)"])
    profile = build(CarrierProfile, data, Where(ctx, ""), PROFILE_SPEC)
    if profile is None:
        raise ProfileError([f"{label}: {error}" for error in ctx.errors])
    return profile


def _checkout_dir() -> Path:
    """Return the ``carriers/`` folder of a source checkout (may not exist)."""
    return Path(smsgw.__file__).resolve().parents[1] / "carriers"


def _packaged() -> Any:
    """Return the installed ``smsgw.profiles`` folder, or None without one."""
    try:
        return resources.files("smsgw.profiles")
    except ModuleNotFoundError:
        return None


def list_profiles() -> list[str]:
    """Return the names of every shipped profile, sorted."""
    names = {path.stem for path in _checkout_dir().glob("*.yaml")}
    packaged = _packaged()
    if packaged is not None:
        names.update(
            entry.name.removesuffix(".yaml")
            for entry in packaged.iterdir()
            if entry.name.endswith(".yaml")
        )
    return sorted(names)


def is_profile_path(name_or_path: str) -> bool:
    """Return whether a carrier's ``profile`` value is a file path, not a name."""
    return (
        "/" in name_or_path
        or "\\" in name_or_path
        or name_or_path.endswith((".yaml", ".yml"))
    )


def load_profile(name_or_path: str) -> CarrierProfile:
    """Load a shipped profile by name, or a profile file by path.

    Names are looked up in the checkout's ``carriers/`` folder, then in the
    installed ``smsgw.profiles`` package. Raises `ProfileError`.
    """
    if is_profile_path(name_or_path):
        label = name_or_path
        try:
            source = Path(name_or_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ProfileError([f"{label}: cannot read profile: {reason}"]) from None
    else:
        label = f"{name_or_path}.yaml"
        source = _read_shipped(name_or_path)
    try:
        data = read_yaml(source)
    except ConfigError as exc:
        raise ProfileError([f"{label}: {error}" for error in exc.errors]) from None
    return parse_profile(data, label)


def _read_shipped(name: str) -> str:
    """Return the text of shipped profile `name`; raise `ProfileError` if none."""
    if re.fullmatch(NAME_PATTERN, name):
        local = _checkout_dir() / f"{name}.yaml"
        if local.is_file():
            return local.read_text(encoding="utf-8")
        packaged = _packaged()
        if packaged is not None and (packaged / f"{name}.yaml").is_file():
            return str((packaged / f"{name}.yaml").read_text(encoding="utf-8"))
    known = list_profiles()
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
    raise ProfileError(
        [f"unknown profile {name!r} ({hint}; or give a path to a .yaml file)"]
    )


def normalize_message_id(raw: str, fmt: str) -> str:
    """Return the canonical form of an SMSC message id, for matching receipts.

    "decimal" and "hex" ids become lower-case hex without leading zeros, so an
    SMSC that answers hex in submit_sm_resp and decimal in receipts still
    matches; an id that does not parse in its declared format falls back to
    the stripped text lower-cased. "string" ids are only stripped.
    Raises ValueError for an unknown format.
    """
    stripped = raw.strip()
    if fmt == "string":
        return stripped
    if fmt == "decimal":
        # Python refuses int() of very long decimal strings; no real id is that long.
        if len(stripped) <= 64 and _DECIMAL.fullmatch(stripped):
            return format(int(stripped, 10), "x")
    elif fmt == "hex":
        if _HEX.fullmatch(stripped):
            return format(int(stripped, 16), "x")
    else:
        raise ValueError(f"unknown message id format {fmt!r}")
    return stripped.lower()
