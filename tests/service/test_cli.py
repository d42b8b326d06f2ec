"""The smsgw command: check-config, smsc (as a real process), send-test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from smsgw.cli import build_parser, main
from smsgw.codec import pdu as P
from smsgw.session.esme import EsmeSession, SessionSettings

ROOT = Path(__file__).resolve().parents[2]


def test_check_config_prints_effective_config_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """check-config on the default config exits 0 and never shows a secret."""
    assert main(["check-config", str(ROOT / "conf/smsgw.yaml")]) == 0
    out = capsys.readouterr().out
    assert "sim" in out
    assert "000102030405060708090a0b0c0d0e0f" not in out
    assert "password: secret" not in out


def test_check_config_names_each_bad_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad config exits 2 with one line per problem, each with its key path."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "intake: {listen: 'tcp:7400', max_skew: -1}\ncarriers: []\nbogus: 1\n"
    )
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "intake.max_skew" in err
    assert "bogus: unknown key" in err


def test_every_subcommand_has_help() -> None:
    """Each subcommand answers --help with a usage line and exit status 0."""
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"])
        assert exit_info.value.code == 0


def test_send_test_rejects_a_bad_number(capsys: pytest.CaptureFixture[str]) -> None:
    """send-test refuses a destination that is not E.164, before connecting."""
    code = main(["send-test", "--config", str(ROOT / "conf/smsgw.yaml"), "--to", "12"])
    assert code == 2
    assert "E.164" in capsys.readouterr().err


@pytest.mark.loopback
@pytest_twisted.inlineCallbacks
def test_smsc_command_serves_smpp(tmp_path: Path) -> Generator[Any, Any, None]:
    """`smsgw smsc --listen tcp:0 --port-file F` runs a simulator we can bind to."""
    port_file = tmp_path / "port"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smsgw.cli",
            "smsc",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--port-file",
            str(port_file),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text()):
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "simulator did not start"
            yield task.deferLater(reactor, 0.05, lambda: None)
        port = int(port_file.read_text())
        session = EsmeSession(
            SessionSettings(system_id="smsgw", password="secret"), reactor
        )
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), session)
        yield session.bind()
        resp = yield session.send(P.SubmitSm(destination_addr="8613800138000"))
        assert resp.command_status == 0
        assert resp.message_id == "1"
        yield session.unbind()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert proc.returncode == 0
