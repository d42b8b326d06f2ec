"""Every smsgw command answers --help, and refuses a missing configuration
with a message naming it and a non-zero exit."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from smsgw.cli import build_parser, main

COMMANDS = [
    ["check-config"], ["smsc"], ["send-test"], ["pos"],
    ["db", "upgrade"], ["db", "status"], ["db", "backup"], ["db", "restore"],
    ["subscribers", "add"], ["subscribers", "list"], ["subscribers", "remove"],
    ["subscribers", "import"], ["subscribers", "export"],
    ["merchants", "add"], ["merchants", "list"], ["merchants", "remove"],
    ["merchants", "import"], ["merchants", "export"], ["terminals", "list"],
    ["feedback", "show"], ["feedback", "report"], ["feedback", "unmatched"],
    ["feedback", "opt-out"], ["feedback", "opt-in"],
    ["audit", "verify"], ["audit", "export"], ["test-certs"],
    ["keys", "new"], ["keys", "status"], ["keys", "reencrypt"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help(command: list[str]) -> None:
    """--help prints a usage naming the command and exits 0."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        build_parser().parse_args([*command, "--help"])
    assert done.value.code == 0
    assert f"usage: smsgw {' '.join(command)}" in out.getvalue()


@pytest.mark.parametrize(
    "command",
    [
        ["db", "status"],
        ["db", "backup", "--to", "x.db"],
        ["terminals", "list"],
        ["feedback", "report"],
        ["audit", "verify"],
        ["keys", "new", "msisdn"],
        ["keys", "status"],
        ["keys", "reencrypt"],
        ["send-test", "--to", "+8613800138000"],
    ],
    ids=" ".join,
)
def test_a_missing_configuration_is_named(command: list[str], tmp_path: Path) -> None:
    """A command on a configuration file that is not there exits non-zero and
    says which file."""
    missing = str(tmp_path / "nope.yaml")
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main([*command, "--config", missing])
    assert code != 0
    assert "nope.yaml" in err.getvalue() + out.getvalue()
