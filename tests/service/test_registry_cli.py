"""``smsgw subscribers|merchants|terminals`` on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import stat
from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, select
from twisted.internet.task import Clock

from smsgw.service.keyscli import keys_activate
from smsgw.service.registry_cli import add_registry_commands, main_registry
from smsgw.store import schema as S
from smsgw.store.db import make_engine
from smsgw.store.pii import NOTIFY

# Every database test runs on both backends: reuse the store fixtures.
from tests.store.conftest import db_url, engine, pg_url  # noqa: F401
from tests.store.helpers import test_vault

NOW = 1764417605.0
PAN = "6222021234567894"
PAN2 = "4111111111111111"
KEY = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
KEY2 = "202122232425262728292a2b2c2d2e2f"
CERT = "ab" * 32
TEMPLATE = "{{ signature }}: card {{ last4 }} paid {{ amount }}"
# The msisdn keys of tests.store.helpers.test_vault (the engine fixture's), so
# that the commands and the tests' engine seal and open alike.
MSISDN_KEYS = {
    "msisdn-k1.key": bytes(range(32)).hex(),
    "msisdn-index-k1.key": bytes(range(32, 64)).hex(),
}


@dataclass
class Result:
    """What one command did."""

    code: int
    out: str
    err: str


def write_config(tmp_path: Path, url: str) -> Path:
    """A configuration on ``url`` with two issuers and two terminals, and the
    test vault's msisdn keys in its keys_dir."""
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    for name, key in MSISDN_KEYS.items():
        (keys / name).write_text(key + "\n")
        (keys / name).chmod(0o600)
    data = {
        "database": {"url": url},
        "keys_dir": str(keys),
        "intake": {"listen": "tcp:7400:interface=127.0.0.1"},
        "terminals": [
            {"id": "T1", "key": KEY, "rate": 50},
            {
                "id": "T2",
                "keys": [KEY2, KEY[:32]],
                "cert_sha256": CERT,
                "issuer": "bank2",
                "may_supply_msisdn": False,
                "enabled": False,
            },
        ],
        "carriers": [
            {
                "name": "c1",
                "connect": "tcp:host=127.0.0.1:port=2775",
                "system_id": "smsgw",
                "password": "secret",
                "source_addr": "95588",
            }
        ],
        "issuers": [
            {"name": "default", "signature": "Demo Bank"},
            {"name": "bank2", "signature": "Bank Two"},
        ],
    }
    path = tmp_path / "smsgw.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


class Cli:
    """Runs registry commands against one configuration, recording all output."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.clock = Clock()
        self.clock.advance(NOW)
        self.seen: list[str] = []

    def __call__(self, *argv: str, stdin: str = "") -> Result:
        """Run ``smsgw ARGV --config FILE``; returns its status and output."""
        out, err = io.StringIO(), io.StringIO()
        args = [*argv, "--config", str(self.config)]
        code = main_registry(args, out, err, inp=io.StringIO(stdin), clock=self.clock)
        self.seen += [out.getvalue(), err.getvalue()]
        return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli(tmp_path: Path, db_url: str, engine: Engine) -> Cli:  # noqa: F811
    """The CLI on a migrated database of each backend."""
    return Cli(write_config(tmp_path, db_url))


def test_subscriber_add_list_update_remove(cli: Cli, engine: Engine) -> None:  # noqa: F811
    """A subscriber is added, listed masked, replaced, then removed (exit 1 after)."""
    r = cli(
        "subscribers", "add", "--pan", PAN, "--msisdn", "+86 138 0013 8000",
        "--kinds", "purchase,refund", "--quiet", "22:00-07:00",
        "--timezone", "Asia/Shanghai", "--lang", "zh",
    )  # fmt: skip
    assert (r.code, r.out, r.err) == (
        0,
        "subscriber 622202******7894 (default): added\n",
        "",
    )
    r = cli("subscribers", "list")
    assert r.code == 0
    assert r.out.splitlines() == [
        "ISSUER   CARD              MSISDN          LANG  MIN_AMOUNT  KINDS"
        "            OPTED_OUT  QUIET        TIMEZONE",
        "default  622202******7894  +8613800138000  zh    -           purchase,refund"
        "  no         22:00-07:00  Asia/Shanghai",
    ]
    r = cli(
        "subscribers", "add", "--pan", PAN, "--msisdn", "+8613900139000", "--opt-out"
    )
    assert r.out == "subscriber 622202******7894 (default): updated\n"
    (item,) = [
        json.loads(line)
        for line in cli("subscribers", "list", "--json").out.splitlines()
    ]
    assert item["msisdn"] == "+8613900139000"
    assert item["opted_out"] is True
    assert item["kinds"] is None
    assert item["masked_pan"] == "622202******7894"
    r = cli("subscribers", "remove", "--pan", PAN)
    assert (r.code, r.out) == (0, "subscriber removed (default)\n")
    r = cli("subscribers", "remove", "--pan", PAN)
    assert (r.code, r.err) == (1, "no such subscriber for issuer default\n")
    with engine.connect() as conn:
        audit = list(conn.execute(select(S.audit).order_by(S.audit.c.id)))
    assert [(a.actor, a.action, a.at) for a in audit] == [
        ("cli", "subscriber.add", NOW),
        ("cli", "subscriber.update", NOW),
        ("cli", "subscriber.remove", NOW),
    ]
    assert all(PAN not in text for text in cli.seen)


def test_pan_can_be_read_from_stdin(cli: Cli) -> None:
    """``--pan -`` takes the card number from standard input, not the command line."""
    r = cli(
        "subscribers",
        "add",
        "--pan",
        "-",
        "--msisdn",
        "+8613800138000",
        stdin=PAN + "\n",
    )
    assert (r.code, r.out) == (0, "subscriber 622202******7894 (default): added\n")
    r = cli("subscribers", "remove", "--pan", "-", stdin=PAN + "\n")
    assert r.code == 0


def test_bad_subscriber_input_names_each_field(cli: Cli) -> None:
    """Bad options exit 2 with every bad field named and nothing written."""
    r = cli(
        "subscribers", "add", "--card-token", "tok-1", "--msisdn", PAN,
        "--lang", "fr", "--issuer", "nobank", "--min-amount", "1e2",
        "--kinds", "gifts", "--quiet", "25:00-07:00",
    )  # fmt: skip
    assert r.code == 2
    assert r.out == ""
    assert r.err == (
        "smsgw subscribers add: issuer: no issuer profile 'nobank' (issuers: "
        "default, bank2); msisdn: must be a possible phone number in international "
        "form, like +86 138 0013 8000, got a value that could be a card number (not "
        "shown); lang: must be one of zh, en, got 'fr'; min_amount: must be a "
        "decimal like 100.00, got '1e2'; kinds: unknown kind 'gifts' (kinds: "
        "purchase refund reversal preauth withdrawal); quiet_start: must be HH:MM "
        "(00:00 to 23:59), got '25:00'\n"
    )
    r = cli(
        "subscribers",
        "add",
        "--card-token",
        "t",
        "--msisdn",
        "+8613800138000",
        "--quiet",
        "22:00",
    )
    assert (r.code, r.err) == (
        2,
        "smsgw subscribers add: --quiet: must be HH:MM-HH:MM, like 22:00-07:00\n",
    )
    r = cli("subscribers", "add", "--pan", PAN, "--card-token", "t", "--msisdn", "+861")
    assert r.code == 2
    assert "not allowed with argument" in r.err
    r = cli("subscribers", "list", "--msisdn", "12")
    assert (r.code, r.err.split(": ")[1]) == (2, "msisdn")
    assert cli("subscribers", "list").out.count("\n") == 1
    assert all(PAN not in text for text in cli.seen)


def test_subscriber_csv_round_trip(cli: Cli, tmp_path: Path) -> None:
    """import then export: the export has no PAN, mode 0600, and imports again."""
    source = tmp_path / "in.csv"
    source.write_text(
        "\ufeffissuer,pan,card_token,msisdn,kinds,opted_out,quiet_start,quiet_end\n"
        f"default,{PAN},,+8613800138000,purchase,no,,\n"
        f"bank2,{PAN2},,+8613800138001,,yes,22:00,07:00\n"
        "bank2,,tok-9,+12025550123,refund withdrawal,,,\n",
        encoding="utf-8",
    )
    r = cli("subscribers", "import", str(source))
    assert (r.code, r.out, r.err) == (0, f"{source}: 3 added, 0 updated\n", "")
    exported = tmp_path / "out.csv"
    r = cli("subscribers", "export", str(exported))
    assert (r.code, r.out) == (0, f"{exported}: 3 subscribers exported\n")
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    text = exported.read_bytes().decode("utf-8")
    assert PAN not in text
    assert PAN2 not in text
    assert cli("subscribers", "export").out == text
    before = cli("subscribers", "list", "--json").out
    r = cli("subscribers", "import", str(exported))
    assert (r.code, r.out) == (0, f"{exported}: 0 added, 3 updated\n")
    assert cli("subscribers", "list", "--json").out == before
    only = cli("subscribers", "export", "--issuer", "bank2").out
    assert only.count("\n") == 3
    assert all(PAN not in t and PAN2 not in t for t in cli.seen)


def test_import_with_bad_rows_writes_nothing(cli: Cli) -> None:
    """A CSV with bad rows exits 2, names each line, and imports none of it."""
    r = cli(
        "subscribers", "import", "-",
        stdin=(
            "pan,msisdn\n"
            f"{PAN},+8613800138000\n"
            "6222021234567895,+8613800138001\n"
            f"{PAN2},{PAN2}\n"
        ),
    )  # fmt: skip
    assert r.code == 2
    assert r.err == (
        "smsgw subscribers import: -: 2 problem(s), nothing imported:\n"
        "  line 3: pan: fails the Luhn check\n"
        "  line 4: msisdn: must be a possible phone number in international form, "
        "like +86 138 0013 8000, got a value that could be a card number (not shown)\n"
    )
    assert cli("subscribers", "list", "--json").out == ""
    r = cli("subscribers", "import", "/nonexistent.csv")
    assert (r.code, r.err) == (
        2,
        "smsgw subscribers import: /nonexistent.csv: cannot read: "
        "No such file or directory\n",
    )
    r = cli("subscribers", "import", "-", stdin="\xff")
    assert r.code == 2


def test_merchant_add_list_remove(cli: Cli, tmp_path: Path) -> None:
    """Merchants take repeated --notify and template files; list shows them."""
    template = tmp_path / "en.j2"
    template.write_text(TEMPLATE, encoding="utf-8")
    r = cli(
        "merchants", "add", "--merchant-id", "M001", "--name", "星巴克",
        "--notify", "+86 138 0013 8000", "--notify", "+8613800138001,+8613800138002",
        "--template-zh", "【{{ signature }}】{{ last4 }} {{ amount }}",
        "--template-file", f"en={template}", "--lang", "zh",
    )  # fmt: skip
    assert (r.code, r.out, r.err) == (0, "merchant M001 (default): added\n", "")
    r = cli(
        "merchants", "add", "--merchant-id", "M2", "--name", "Shop", "--issuer", "bank2"
    )
    assert r.out == "merchant M2 (bank2): added\n"
    assert cli("merchants", "list").out.splitlines() == [
        "ISSUER   MERCHANT_ID  NAME    NOTIFY"
        "                                        LANG  TEMPLATES",
        "bank2    M2           Shop    -"
        "                                             -     -",
        "default  M001         星巴克  +8613800138000,+8613800138001,+8613800138002"
        "  zh    en,zh",
    ]
    item = json.loads(cli("merchants", "list", "--issuer", "default", "--json").out)
    assert item["notify"] == ["+8613800138000", "+8613800138001", "+8613800138002"]
    assert item["templates"]["en"] == TEMPLATE
    r = cli("merchants", "remove", "--merchant-id", "M001")
    assert (r.code, r.out) == (0, "merchant M001 (default): removed\n")
    r = cli("merchants", "remove", "--merchant-id", "M001")
    assert (r.code, r.err) == (1, "no merchant 'M001' for issuer default\n")


def test_merchant_templates_are_checked(cli: Cli, tmp_path: Path) -> None:
    """An unsafe or unreadable template exits 2 naming the field; nothing is added."""
    r = cli(
        "merchants",
        "add",
        "--merchant-id",
        "M1",
        "--name",
        "S",
        "--template-en",
        "{{ amount }}{{ last4 }}{{ x.y }}",
    )
    assert r.code == 2
    assert r.err.startswith("smsgw merchants add: template_en: ")
    assert "'.y'" in r.err
    r = cli(
        "merchants",
        "add",
        "--merchant-id",
        "M1",
        "--name",
        "S",
        "--template-file",
        "fr",
    )
    assert (r.code, r.err) == (
        2,
        "smsgw merchants add: --template-file: must be LANG=PATH, got 'fr'\n",
    )
    r = cli(
        "merchants",
        "add",
        "--merchant-id",
        "M1",
        "--name",
        "S",
        "--template-file",
        f"de={tmp_path / 'x'}",
    )
    assert r.code == 2
    assert "cannot read" in r.err
    assert cli("merchants", "list", "--json").out == ""


def test_merchant_csv_round_trip(cli: Cli, tmp_path: Path) -> None:
    """Merchants export to CSV and import back to the same registry."""
    cli(
        "merchants",
        "add",
        "--merchant-id",
        "M,1",
        "--name",
        'Café "A"',
        "--notify",
        "+8613800138000",
        "--template-en",
        TEMPLATE,
    )
    exported = tmp_path / "m.csv"
    assert cli("merchants", "export", str(exported)).code == 0
    before = cli("merchants", "list", "--json").out
    r = cli("merchants", "import", str(exported))
    assert (r.code, r.out) == (0, f"{exported}: 0 added, 1 updated\n")
    assert cli("merchants", "list", "--json").out == before
    r = cli("merchants", "import", "-", stdin="merchant_id,name\nM9,\n")
    assert r.code == 2
    assert "line 2: name: " in r.err


def test_no_clear_number_at_rest(cli: Cli, engine: Engine) -> None:  # noqa: F811
    """Numbers added, imported and changed through the commands are sealed in
    subscribers and merchants and masked in audit; the commands show them and
    export them in clear."""
    numbers = [f"+86138001380{n:02d}" for n in range(6)]
    assert cli("subscribers", "add", "--pan", PAN, "--msisdn", numbers[0]).code == 0
    assert cli("subscribers", "add", "--pan", PAN, "--msisdn", numbers[1]).code == 0
    r = cli(
        "subscribers", "import", "-",
        stdin=f"card_token,msisdn\ntok-1,{numbers[2]}\n",
    )  # fmt: skip
    assert r.code == 0
    r = cli(
        "merchants", "add", "--merchant-id", "M1", "--name", "Shop",
        "--notify", numbers[3], "--notify", numbers[4],
    )  # fmt: skip
    assert r.code == 0
    r = cli(
        "merchants", "import", "-",
        stdin=f"merchant_id,name,notify\nM1,Shop,{numbers[5]}\nM2,Bar,\n",
    )  # fmt: skip
    assert r.code == 0
    with engine.connect() as conn:
        values = [
            str(value)
            for table in (S.subscribers, S.merchants, S.audit)
            for row in conn.execute(select(table))
            for value in row
            if value is not None
        ]
        notify = conn.execute(
            select(S.merchants.c.notify).order_by(S.merchants.c.merchant_id)
        ).scalars()
        assert [test_vault().open_opt(n, NOTIFY) for n in notify] == [numbers[5], ""]
        details = " ".join(conn.execute(select(S.audit.c.detail)).scalars())
    assert len(values) > 40
    for value in values:
        for number in numbers:
            assert number[-9:] not in value
    for n in range(6):
        assert f"+86138****80{n:02d}" in details
    r = cli("subscribers", "list", "--msisdn", numbers[1])
    assert numbers[1] in r.out
    assert "622202******7894" in r.out
    assert cli("subscribers", "list", "--msisdn", numbers[0]).out.count("\n") == 1
    export = cli("subscribers", "export").out
    assert numbers[1] in export
    assert numbers[2] in export
    assert f"M1,Shop,{numbers[5]}," in cli("merchants", "export").out


def test_list_by_number_during_an_index_key_rotation(
    cli: Cli,
    engine: Engine,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A subscriber indexed under msisdn-index-k1 is still found by number
    once msisdn-index-k2 is added and activated, and is re-indexed when it is
    replaced."""
    r = cli("subscribers", "add", "--pan", PAN, "--msisdn", "+8613800138000")
    assert r.code == 0
    k2 = tmp_path / "keys" / "msisdn-index-k2.key"
    k2.write_text(bytes(range(64, 96)).hex() + "\n")
    k2.chmod(0o600)
    r = cli("subscribers", "list", "--msisdn", "+86 138 0013 8000", "--json")
    assert (r.code, json.loads(r.out)["msisdn"]) == (0, "+8613800138000")
    out, err = io.StringIO(), io.StringIO()
    activate = Namespace(config=str(cli.config), kind="msisdn-index")
    assert keys_activate(activate, out, err) == 0, err.getvalue()
    r = cli("subscribers", "list", "--msisdn", "+86 138 0013 8000", "--json")
    assert (r.code, json.loads(r.out)["msisdn"]) == (0, "+8613800138000")
    r = cli(
        "subscribers", "add", "--pan", PAN, "--msisdn", "+8613800138000", "--lang", "en"
    )
    assert r.out == "subscriber 622202******7894 (default): updated\n"
    r = cli("subscribers", "list", "--msisdn", "+8613800138000", "--json")
    assert json.loads(r.out)["lang"] == "en"
    with engine.connect() as conn:
        (ix,) = conn.execute(select(S.subscribers.c.msisdn_index)).scalars()
    assert ix.startswith("k2:")


def test_msisdn_key_readable_by_others_exits_2(cli: Cli, tmp_path: Path) -> None:
    """An msisdn key file others can read is refused before the database is used."""
    (tmp_path / "keys" / "msisdn-index-k1.key").chmod(0o644)
    r = cli("subscribers", "list")
    assert (r.code, r.out) == (2, "")
    assert r.err.startswith("smsgw subscribers list: ")
    assert "msisdn-index-k1.key: readable by group or others" in r.err


def test_numbers_sealed_under_other_keys_exit_2(cli: Cli, tmp_path: Path) -> None:
    """A keys_dir whose msisdn key is not the one the database was written
    with is refused before any number is read: exit 2."""
    r = cli("subscribers", "add", "--card-token", "t", "--msisdn", "+8613800138000")
    assert r.code == 0
    (tmp_path / "keys" / "msisdn-k1.key").write_text("ab" * 32 + "\n")
    r = cli("subscribers", "list")
    assert (r.code, r.out) == (2, "")
    assert r.err.startswith(
        f"smsgw subscribers list: {tmp_path / 'keys' / 'msisdn-k1.key'}: not the "
        "msisdn key k1 this database was written with"
    )
    assert "+8613800138000" not in r.err


def test_terminals_list_shows_no_key(tmp_path: Path) -> None:
    """terminals list reads the configuration only and never shows key material."""
    cli = Cli(write_config(tmp_path, f"sqlite:///{tmp_path}/never-created.db"))
    r = cli("terminals", "list")
    assert (r.code, r.err) == (0, "")
    assert r.out.splitlines() == [
        "ID  ENABLED  ISSUER   RATE  MAY_SUPPLY_MSISDN  KEYS  CERT_PINNED",
        "T1  yes      default  50    yes                1     no",
        "T2  no       bank2    -     no                 2     yes",
    ]
    r = cli("terminals", "list", "--json")
    assert [json.loads(line) for line in r.out.splitlines()][1] == {
        "id": "T2",
        "enabled": False,
        "issuer": "bank2",
        "rate": None,
        "may_supply_msisdn": False,
        "keys": 2,
        "cert_pinned": True,
    }
    for text in cli.seen:
        for secret in (KEY, KEY[:32], KEY2, CERT):
            assert secret not in text
    assert not (tmp_path / "never-created.db").exists()


def test_database_without_schema_exits_2(tmp_path: Path) -> None:
    """A database never upgraded is refused with the upgrade command to run."""
    cli = Cli(write_config(tmp_path, f"sqlite:///{tmp_path}/empty.db"))
    r = cli("subscribers", "list")
    assert (r.code, r.out) == (2, "")
    assert r.err == (
        "smsgw subscribers list: the database has no smsgw schema yet: run "
        "`smsgw db upgrade --config FILE` first\n"
    )


def test_database_failure_exits_1(tmp_path: Path) -> None:
    """A database that cannot be opened is a store failure: exit 1."""
    (tmp_path / "dir.db").mkdir()
    cli = Cli(write_config(tmp_path, f"sqlite:///{tmp_path}/dir.db"))
    r = cli("merchants", "list")
    assert r.code == 1
    assert r.err.startswith("smsgw merchants list: database error: OperationalError: ")


def test_bad_config_exits_2(tmp_path: Path) -> None:
    """An invalid configuration exits 2 naming the key."""
    path = tmp_path / "bad.yaml"
    path.write_text("intake: {listen: 'tcp:7400'}\ncarriers: []\nbogus: 1\n")
    cli = Cli(path)
    r = cli("subscribers", "list")
    assert r.code == 2
    assert r.err.startswith(f"smsgw subscribers list: invalid config {path}:\n")
    assert "bogus: unknown key" in r.err


def test_unreadable_key_file_exits_2(tmp_path: Path) -> None:
    """A card-hash key readable by others is refused before anything is written."""
    url = f"sqlite:///{tmp_path}/db.sqlite"
    from smsgw.store.db import upgrade

    upgrade(make_engine(url))
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "card-hash-k1.key").write_text("00" * 32 + "\n")
    (keys / "card-hash-k1.key").chmod(0o644)
    cli = Cli(write_config(tmp_path, url))
    r = cli("subscribers", "add", "--pan", PAN, "--msisdn", "+8613800138000")
    assert r.code == 2
    assert "readable by group or others" in r.err


def test_usage_errors_and_help() -> None:
    """Usage errors exit 2 on err; every command's --help exits 0 on out."""
    out, err = io.StringIO(), io.StringIO()
    assert main_registry(["subscribers", "add", "--pan", PAN], out, err) == 2
    assert "--msisdn" in err.getvalue()
    assert PAN not in err.getvalue()
    for argv in (
        ["subscribers", "add"],
        ["subscribers", "import"],
        ["merchants", "add"],
        ["merchants", "export"],
        ["terminals", "list"],
    ):
        out = io.StringIO()
        assert main_registry([*argv, "--help"], out, io.StringIO()) == 0
        assert out.getvalue().startswith("usage: smsgw ")


def test_commands_plug_into_another_parser() -> None:
    """add_registry_commands registers the three commands on any subparsers."""
    import argparse

    parser = argparse.ArgumentParser(prog="smsgw")
    add_registry_commands(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args(["merchants", "list", "--json"])
    assert (ns.registry, ns.registry_action, ns.json) == ("merchants", "list", True)
    assert callable(ns.func)
