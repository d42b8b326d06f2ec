"""Tests for carrier profiles (smsgw.carrier.profile) and the shipped carriers/."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from smsgw.carrier import profile as profile_module
from smsgw.carrier.profile import (
    CarrierProfile,
    DataCodings,
    MessageIdFormats,
    ProfileError,
    SourceNpi,
    SourceTon,
    list_profiles,
    load_profile,
    normalize_message_id,
    parse_profile,
)

ROOT = Path(__file__).resolve().parents[2]
PROFILE_FILES = sorted((ROOT / "carriers").glob("*.yaml"))
SHIPPED = ["generic", "hex-ids", "packed-gsm", "payload", "sar", "smsgw-sim"]


def write(tmp_path: Path, source: str) -> str:
    """Write a profile file and return its path as a string."""
    path = tmp_path / "acme.yaml"
    path.write_text(source, encoding="utf-8")
    return str(path)


def errors_of(path: str) -> list[str]:
    """Return the errors loading the profile at `path` raises."""
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    return info.value.errors


@pytest.mark.parametrize("path", PROFILE_FILES, ids=[p.name for p in PROFILE_FILES])
def test_every_shipped_profile_loads(path: Path) -> None:
    """Every carriers/*.yaml loads by name, is named after its file, and says why."""
    profile = load_profile(path.stem)
    assert profile.name == path.stem
    assert profile.description
    assert path.read_text(encoding="utf-8").startswith("# ")
    assert load_profile(str(path)) == profile


def test_shipped_profiles_are_listed() -> None:
    """list_profiles names every shipped profile, sorted."""
    assert list_profiles() == SHIPPED


def test_generic_profile_has_the_documented_defaults() -> None:
    """The generic profile is decimal/decimal with the schema's defaults."""
    assert load_profile("generic") == CarrierProfile(
        name="generic",
        description=load_profile("generic").description,
        message_id=MessageIdFormats(submit_resp="decimal", receipt="decimal"),
        data_coding=DataCodings(gsm7=0, latin1=3, ucs2=8),
        latin1=False,
        gsm7_packing="unpacked",
        concatenation="udh8",
        max_parts=10,
        source_ton=SourceTon(alphanumeric=5, short=3, international=1),
        source_npi=SourceNpi(alphanumeric=0, short=0, international=1),
        dest_ton=1,
        dest_npi=1,
        dest_plus=False,
        tps=100.0,
        window=10,
        registered_delivery=1,
        receipt_per_part=True,
        quirks=(),
    )


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        (
            "hex-ids",
            "message_id",
            MessageIdFormats(submit_resp="hex", receipt="decimal"),
        ),
        ("smsgw-sim", "message_id", MessageIdFormats()),
        ("sar", "concatenation", "sar"),
        ("payload", "concatenation", "payload"),
        ("packed-gsm", "gsm7_packing", "packed"),
    ],
)
def test_each_profile_has_its_distinguishing_setting(
    name: str, field: str, value: object
) -> None:
    """Each shipped profile sets the one thing it exists for."""
    assert getattr(load_profile(name), field) == value


def test_profile_is_frozen() -> None:
    """A loaded profile cannot be changed."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        load_profile("generic").max_parts = 3  # type: ignore[misc]


def test_partial_nested_mapping_keeps_other_defaults(tmp_path: Path) -> None:
    """A nested mapping given in part keeps the defaults of the keys it omits."""
    path = write(
        tmp_path, "name: acme\nsource_ton: {short: 2}\ndata_coding: {gsm7: 1}\n"
    )
    profile = load_profile(path)
    assert profile.source_ton == SourceTon(alphanumeric=5, short=2, international=1)
    assert profile.data_coding == DataCodings(gsm7=1, latin1=3, ucs2=8)


def test_quirks_are_looked_up_by_name(tmp_path: Path) -> None:
    """quirk() is true only for quirks switched on."""
    path = write(tmp_path, "name: acme\nquirks: {receipt_text_only: true, b: false}\n")
    profile = load_profile(path)
    assert profile.quirk("receipt_text_only")
    assert not profile.quirk("b")
    assert not profile.quirk("absent")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "name: acme\nmax_parts: 0\n",
            "max_parts: must be an integer from 1 to 255, got 0",
        ),
        (
            "name: acme\nmessage_id: {submit_resp: octal}\n",
            "message_id.submit_resp: must be one of decimal, hex, string, got 'octal'",
        ),
        (
            "name: acme\nmax_prts: 5\n",
            "max_prts: unknown key (did you mean 'max_parts'?)",
        ),
        ("name: acme\nlatin1: 1\n", "latin1: must be true or false, got 1"),
        ("name: acme\ntps: 0\n", "tps: must be a positive number, got 0"),
        (
            "name: acme\ndest_ton: 9\n",
            "dest_ton: must be an integer from 0 to 6, got 9",
        ),
        (
            "name: acme\nconcatenation: udh\n",
            "concatenation: must be one of udh8, udh16, sar, payload, got 'udh'",
        ),
        (
            "name: acme\nquirks: {x: maybe}\n",
            "quirks.x: must be true or false, got 'maybe'",
        ),
        (
            "name: acme\nquirks: [x]\n",
            "quirks: must be a mapping of names to true/false, got a list",
        ),
        ("description: no name\n", "name: required"),
        (
            "name: a b\n",
            "name: must be 1 to 32 characters of A-Z a-z 0-9 _ -, got 'a b'",
        ),
        ("- a\n", "must be a mapping, got a list"),
        ("", "the file is empty (a profile needs a name)"),
    ],
)
def test_profile_errors_are_prefixed_by_file(
    tmp_path: Path, source: str, expected: str
) -> None:
    """Each profile error names the file and the key path."""
    path = write(tmp_path, source)
    assert errors_of(path) == [f"{path}: {expected}"]


def test_profile_yaml_error_is_prefixed_by_file(tmp_path: Path) -> None:
    """A YAML syntax error in a profile names the file, line and column."""
    path = write(tmp_path, "name: acme\ntps: [1\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}: line 3, column 1: ")


def test_shipped_profile_errors_use_the_file_name() -> None:
    """parse_profile prefixes errors with the label it is given."""
    with pytest.raises(ProfileError) as info:
        parse_profile({"name": "x", "window": 0}, "x.yaml")
    assert info.value.errors == [
        "x.yaml: window: must be an integer from 1 to 1000, got 0"
    ]


def test_unknown_profile_name_suggests_a_close_one() -> None:
    """An unknown profile name suggests the closest shipped one."""
    with pytest.raises(ProfileError) as info:
        load_profile("hexids")
    assert info.value.errors == [
        "unknown profile 'hexids' (did you mean 'hex-ids'?; "
        "or give a path to a .yaml file)"
    ]


def test_unknown_profile_name_lists_known_ones() -> None:
    """An unknown profile name with nothing close lists the shipped profiles."""
    with pytest.raises(ProfileError) as info:
        load_profile("zzzzzz")
    assert info.value.errors == [
        f"unknown profile 'zzzzzz' (known: {', '.join(SHIPPED)}; "
        "or give a path to a .yaml file)"
    ]


def test_missing_profile_path_is_an_error(tmp_path: Path) -> None:
    """A profile path that does not exist is a clear error naming it."""
    path = str(tmp_path / "none.yaml")
    assert errors_of(path) == [
        f"{path}: cannot read profile: No such file or directory"
    ]


def test_installed_package_is_searched_after_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a checkout carriers/ folder, names come from smsgw.profiles."""
    packaged = tmp_path / "profiles"
    packaged.mkdir()
    (packaged / "only-installed.yaml").write_text("name: only-installed\n")
    monkeypatch.setattr(profile_module, "_checkout_dir", lambda: tmp_path / "none")
    monkeypatch.setattr(profile_module, "_packaged", lambda: packaged)
    assert list_profiles() == ["only-installed"]
    assert load_profile("only-installed").name == "only-installed"


def test_no_packaged_profiles_outside_an_install() -> None:
    """_packaged returns None or the folder, never raises, whether installed or not."""
    packaged = profile_module._packaged()
    assert packaged is None or packaged.is_dir()


# -- message id normalisation ---------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fmt", "expected"),
    [
        ("0001A", "hex", "1a"),
        ("26", "decimal", "1a"),
        ("000123", "decimal", "7b"),
        ("123", "decimal", "7b"),
        ("ABCDEF", "hex", "abcdef"),
        ("abcdef", "hex", "abcdef"),
        ("0", "decimal", "0"),
        ("000", "hex", "0"),
        (" 42\n", "decimal", "2a"),
        ("12ab", "decimal", "12ab"),
        ("ID-XyZ", "hex", "id-xyz"),
        ("1_000", "decimal", "1_000"),
        ("  AbC-1 ", "string", "AbC-1"),
        ("1" * 100, "decimal", "1" * 100),
    ],
)
def test_normalize_message_id(raw: str, fmt: str, expected: str) -> None:
    """Ids become canonical lower-case hex, or fall back to stripped lower-case text."""
    assert normalize_message_id(raw, fmt) == expected


def test_hex_resp_matches_decimal_receipt() -> None:
    """A hex submit_sm_resp id and the same id in decimal in a receipt match."""
    profile = load_profile("hex-ids")
    resp = normalize_message_id("0001A", profile.message_id.submit_resp)
    receipt = normalize_message_id("26", profile.message_id.receipt)
    assert resp == receipt


def test_normalize_rejects_unknown_format() -> None:
    """An unknown id format is a programming error."""
    with pytest.raises(ValueError, match="unknown message id format 'octal'"):
        normalize_message_id("1", "octal")
