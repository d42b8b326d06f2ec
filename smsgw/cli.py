"""The ``smsgw`` command: operator tools beside ``twistd smsgw``.

    smsgw check-config FILE          validate; print the effective config
    smsgw smsc [options]             run the built-in SMSC simulator
    smsgw send-test --to +E164 ...   send one SMS through a configured carrier
    smsgw db upgrade|status          schema migrations
    smsgw pos [options]              send signed transactions (one, or a load)
    smsgw subscribers|merchants ...  registries: add, remove, list, import, export
    smsgw terminals list             terminals from the configuration (no keys)
    smsgw feedback ...               replies: show, report, unmatched, opt-out/in
    smsgw audit verify|export        the signed audit chain
    smsgw keys new|status|reencrypt  key rotation (numbers re-sealed online)

Every command takes ``--help``; errors name what is wrong and exit non-zero.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from smsgw.pos.cli import add_pos_arguments
from smsgw.service.auditcli import add_audit_commands
from smsgw.service.dbcli import add_db_commands
from smsgw.service.feedback_cli import add_feedback_commands
from smsgw.service.keyscli import add_keys_commands
from smsgw.service.registry_cli import add_registry_commands
from smsgw.service.testcerts import add_test_certs_command
from smsgw.smsc.settings import add_smsc_arguments


def _check_config(ns: argparse.Namespace) -> int:
    from smsgw.service.config import main_check_config

    return main_check_config(ns.file, sys.stdout, sys.stderr)


def _smsc(ns: argparse.Namespace) -> int:
    from smsgw.service.run import run_smsc
    from smsgw.smsc.settings import settings_from_args

    try:
        settings = settings_from_args(ns)
    except ValueError as e:
        print(f"smsgw smsc: {e}", file=sys.stderr)
        return 2
    return run_smsc(settings, port_file=ns.port_file, log_level=ns.log_level)


def _send_test(ns: argparse.Namespace) -> int:
    from smsgw.service.run import run_send_test

    return run_send_test(
        ns.config, ns.to, ns.text, carrier=ns.carrier, wait=ns.wait, out=sys.stdout
    )


def _pos(ns: argparse.Namespace) -> int:
    from twisted.internet import reactor

    from smsgw.pos.cli import run_pos
    from smsgw.runtime import tune_gc

    tune_gc()
    return run_pos(ns, reactor)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``smsgw`` subcommand."""
    parser = argparse.ArgumentParser(
        prog="smsgw",
        description="SMPP gateway for card-transaction alerts: operator tools. "
        "The gateway itself runs under twistd: twistd -n smsgw --config FILE",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "check-config",
        help="validate a config file and print the effective values (secrets masked)",
    )
    p.add_argument("file", help="YAML configuration file")
    p.set_defaults(func=_check_config)

    p = sub.add_parser("smsc", help="run the built-in SMSC simulator in the foreground")
    add_smsc_arguments(p)
    p.add_argument(
        "--port-file",
        help="write the SMPP port listened on to this file (for --listen tcp:0)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warn", "error"),
        help="log level on stdout (default: %(default)s)",
    )
    p.set_defaults(func=_smsc)

    p = sub.add_parser(
        "send-test",
        help="send one SMS through a configured carrier and wait for its receipts",
    )
    p.add_argument("--config", "-c", default="conf/smsgw.yaml", help="config file")
    p.add_argument(
        "--to", required=True, help="destination in E.164, e.g. +8613800138000"
    )
    p.add_argument(
        "--text", default="smsgw test message", help="message text (any Unicode)"
    )
    p.add_argument("--carrier", help="carrier name (default: the first enabled)")
    p.add_argument(
        "--wait",
        type=float,
        default=10.0,
        help="seconds to wait for receipts (default: %(default)s)",
    )
    p.set_defaults(func=_send_test)
    add_db_commands(sub)

    p = sub.add_parser(
        "pos",
        help="POS terminal simulator: send one signed transaction, or a load",
    )
    add_pos_arguments(p)
    p.set_defaults(func=_pos)
    add_registry_commands(sub)
    add_feedback_commands(sub)
    add_test_certs_command(sub)
    add_audit_commands(sub)
    add_keys_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; return its exit status."""
    ns = build_parser().parse_args(argv)
    return int(ns.func(ns))


if __name__ == "__main__":
    sys.exit(main())
