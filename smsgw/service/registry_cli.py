"""``smsgw subscribers|merchants|terminals``: the registries from the command line.

    smsgw subscribers add|remove|list|import|export
    smsgw merchants add|remove|list|import|export
    smsgw terminals list

Subscribers and merchants live in the database (smsgw.store.registry); every
change is audited with actor ``cli``. Their numbers are sealed there under
the msisdn keys in ``keys_dir`` (smsgw.store.pii), which the commands that
open the database load first (generating them when there are none, as the
gateway does on first start). Terminals come only from the
configuration and key files, so ``terminals list`` reads the configuration and
never shows key material. ``add`` inserts or replaces the whole record:
options not given take their defaults.

Exit status: 0 done; 1 the database failed, or the record to remove does not
exist; 2 bad input (arguments, CSV rows, configuration, key files or a stored
number they do not open, a schema that is not current).

The actions are in smsgw.service.registry_cli_handlers, their shared run
context and output in smsgw.service.registry_cli_common.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from typing import TYPE_CHECKING, TextIO

from smsgw.service.config import ConfigError, load_config
from smsgw.service.registry_cli_common import (
    BadInput,
    Handler,
    Run,
    show_import_errors,
)
from smsgw.service.registry_cli_handlers import (
    merchants_add,
    merchants_export,
    merchants_import,
    merchants_list,
    merchants_remove,
    subscribers_add,
    subscribers_export,
    subscribers_import,
    subscribers_list,
    subscribers_remove,
    terminals_list,
)

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

__all__ = ["add_registry_commands", "main_registry", "run_registry"]


def run_registry(
    ns: argparse.Namespace,
    out: TextIO | None = None,
    err: TextIO | None = None,
    inp: TextIO | None = None,
    clock: IReactorTime | None = None,
) -> int:
    """Run the registry command parsed into ``ns``; returns the exit status.

    Loads the configuration, opens the database (checking its schema) unless
    the command reads the configuration only, and reports every problem on
    ``err``: 2 for bad input, 1 for a database failure.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from smsgw.store.db import SchemaError, check_schema, make_engine
    from smsgw.store.keyring import attach_keyring
    from smsgw.store.keys import KeyFileError
    from smsgw.store.pii import PiiError
    from smsgw.store.registry_checks import RegistryError
    from smsgw.store.registry_csv import CsvImportError

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    inp = sys.stdin if inp is None else inp
    prog = f"smsgw {ns.registry} {ns.registry_action}"
    try:
        cfg = load_config(ns.config)
    except ConfigError as exc:
        err.write(f"{prog}: invalid config {ns.config}:\n{exc}\n")
        return 2
    engine = None
    try:
        run = Run(cfg, None, out, err, inp, clock)
        if ns.needs_db:
            engine = make_engine(cfg.database.url, hide_parameters=True)
            check_schema(engine)
            try:
                keyring = attach_keyring(engine, cfg.keys_dir)
            except OSError as exc:
                raise BadInput(f"keys_dir {cfg.keys_dir}: {exc}") from None
            run = Run(cfg, engine, out, err, inp, clock)
            run.use_hasher(keyring.card_hasher())
        handler: Handler = ns.handler
        return handler(run, ns)
    except CsvImportError as exc:
        show_import_errors(err, prog, ns.file, exc.errors)
        return 2
    except UnicodeDecodeError as exc:
        where = getattr(ns, "file", "input")
        err.write(f"{prog}: {where}: not UTF-8 text (byte {exc.start})\n")
        return 2
    except (RegistryError, SchemaError, KeyFileError, BadInput) as exc:
        err.write(f"{prog}: {exc}\n")
        return 2
    except PiiError as exc:
        err.write(
            f"{prog}: {exc}: check that keys_dir {cfg.keys_dir} holds the "
            "gateway's msisdn keys\n"
        )
        return 2
    except SQLAlchemyError as exc:
        lines = str(exc).splitlines()
        err.write(f"{prog}: database error: {type(exc).__name__}: {lines[0]}\n")
        return 1
    finally:
        if engine is not None:
            engine.dispose()


def _command(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Handler,
    text: str,
    *,
    needs_db: bool = True,
    details: str = "",
) -> argparse.ArgumentParser:
    p = actions.add_parser(name, help=text, description=f"{text}{details}")
    p.add_argument("--config", "-c", default="conf/smsgw.yaml", help="config file")
    p.set_defaults(func=run_registry, handler=handler, needs_db=needs_db)
    return p


def _issuer_option(p: argparse.ArgumentParser, *, filter_only: bool) -> None:
    what = "only this issuer profile" if filter_only else "issuer profile"
    default = "all" if filter_only else "the first configured"
    p.add_argument("--issuer", help=f"{what} (default: {default})")


def _card_options(p: argparse.ArgumentParser) -> None:
    card = p.add_mutually_exclusive_group(required=True)
    card.add_argument(
        "--pan",
        help="card number, stored only as a keyed hash and a masked form; "
        "'-' reads it from standard input (a PAN on the command line shows in "
        "ps and shell history)",
    )
    card.add_argument("--card-token", help="the card token terminals send")
    card.add_argument("--card-hash", help="a keyed hash as exported (k1:<hex>)")


def _csv_commands(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    what: str,
    handlers: tuple[Handler, Handler],
    columns: str,
) -> None:
    p = _command(
        actions,
        "import",
        handlers[0],
        f"add or replace {what} from CSV, all or nothing",
        details=f". The first row names the columns among {columns}. Every bad "
        "row is reported by its line and then nothing is written.",
    )
    p.add_argument("file", metavar="FILE.csv", help="CSV file, '-' for standard input")
    p = _command(
        actions,
        "export",
        handlers[1],
        f"write {what} as CSV (no card number: the export imports again)",
    )
    p.add_argument("file", nargs="?", default="-", metavar="FILE", help="default: -")
    _issuer_option(p, filter_only=True)


def add_registry_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register ``smsgw subscribers``, ``smsgw merchants`` and ``smsgw terminals``."""
    from smsgw.store.registry_csv import MERCHANT_COLUMNS, SUBSCRIBER_IMPORT_COLUMNS

    p = sub.add_parser("subscribers", help="subscriber registry: cards and numbers")
    s = p.add_subparsers(dest="registry_action", metavar="ACTION", required=True)
    p.set_defaults(registry="subscribers")
    q = _command(
        s, "add", subscribers_add, "add a subscriber or replace its whole record"
    )
    _issuer_option(q, filter_only=False)
    _card_options(q)
    q.add_argument(
        "--msisdn", required=True, help="phone number, like +86 138 0013 8000"
    )
    q.add_argument("--lang", help="zh or en (default: the request's or the issuer's)")
    q.add_argument("--min-amount", help="no alert for approved amounts below this")
    q.add_argument(
        "--kinds",
        help="kinds to notify, comma separated, among purchase refund reversal "
        "preauth withdrawal (default: all; declines and reversals always go)",
    )
    opt = q.add_mutually_exclusive_group()
    opt.add_argument("--opt-out", dest="opted_out", action="store_true", default=False)
    opt.add_argument("--opt-in", dest="opted_out", action="store_false")
    q.set_defaults(opted_out=False)
    q.add_argument(
        "--quiet",
        metavar="HH:MM-HH:MM",
        help="quiet hours: low-priority alerts wait until they end; declines, "
        "reversals and large amounts never wait",
    )
    q.add_argument("--timezone", help="IANA zone of the quiet hours (default: issuer)")
    q = _command(s, "remove", subscribers_remove, "remove a subscriber (exit 1: none)")
    _issuer_option(q, filter_only=False)
    _card_options(q)
    q = _command(s, "list", subscribers_list, "list subscribers (masked cards)")
    _issuer_option(q, filter_only=True)
    q.add_argument("--msisdn", help="only this phone number")
    q.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    _csv_commands(
        s,
        "subscribers",
        (subscribers_import, subscribers_export),
        ",".join(SUBSCRIBER_IMPORT_COLUMNS)
        + " (one of pan, card_token, card_hash per row)",
    )

    p = sub.add_parser("merchants", help="merchant registry: names, numbers, templates")
    m = p.add_subparsers(dest="registry_action", metavar="ACTION", required=True)
    p.set_defaults(registry="merchants")
    q = _command(m, "add", merchants_add, "add a merchant or replace its whole record")
    _issuer_option(q, filter_only=False)
    q.add_argument("--merchant-id", required=True, help="as terminals send it")
    q.add_argument("--name", required=True, help="display name (1 to 100 characters)")
    q.add_argument(
        "--notify",
        action="append",
        metavar="NUMBER",
        help="a number to notify of each transaction (repeatable)",
    )
    q.add_argument("--lang", help="language of the merchant's notices: zh or en")
    q.add_argument("--template-zh", metavar="TEMPLATE", help="cardholder template, zh")
    q.add_argument("--template-en", metavar="TEMPLATE", help="cardholder template, en")
    q.add_argument(
        "--template-file",
        action="append",
        metavar="LANG=PATH",
        help="cardholder template read from a file (repeatable)",
    )
    q = _command(m, "remove", merchants_remove, "remove a merchant (exit 1: none)")
    _issuer_option(q, filter_only=False)
    q.add_argument("--merchant-id", required=True)
    q = _command(m, "list", merchants_list, "list merchants")
    _issuer_option(q, filter_only=True)
    q.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    _csv_commands(
        m,
        "merchants",
        (merchants_import, merchants_export),
        ",".join(MERCHANT_COLUMNS),
    )

    p = sub.add_parser("terminals", help="terminals from the configuration (no keys)")
    t = p.add_subparsers(dest="registry_action", metavar="ACTION", required=True)
    p.set_defaults(registry="terminals")
    q = _command(
        t,
        "list",
        terminals_list,
        "list the configured terminals (never key material)",
        needs_db=False,
    )
    q.add_argument("--json", action="store_true", help="JSON lines instead of a table")


def main_registry(
    argv: Sequence[str],
    out: TextIO,
    err: TextIO,
    *,
    inp: TextIO | None = None,
    clock: IReactorTime | None = None,
) -> int:
    """Parse ``argv`` (e.g. ``["subscribers", "list"]``, ``["feedback", "report"]``)
    and run it.

    Returns the exit status; usage errors (status 2) and help go to ``err``
    and ``out``.
    """
    from smsgw.service.feedback_cli import add_feedback_commands

    parser = argparse.ArgumentParser(prog="smsgw")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_registry_commands(sub)
    add_feedback_commands(sub)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            ns = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    return run_registry(ns, out, err, inp, clock)
