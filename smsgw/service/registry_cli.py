"""``smsgw subscribers|merchants|terminals``: the registries from the command line.

    smsgw subscribers add|remove|list|import|export
    smsgw merchants add|remove|list|import|export
    smsgw terminals list

Subscribers and merchants live in the database (smsgw.store.registry); every
change is audited with actor ``cli``. Terminals come only from the
configuration and key files, so ``terminals list`` reads the configuration and
never shows key material. ``add`` inserts or replaces the whole record:
options not given take their defaults.

Exit status: 0 done; 1 the database failed, or the record to remove does not
exist; 2 bad input (arguments, CSV rows, configuration, key files, a schema
that is not current).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from smsgw.service.config import ConfigError, load_config

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from twisted.internet.interfaces import IReactorTime

    from smsgw.service.config import Config
    from smsgw.store.keys import CardHasher

__all__ = ["add_registry_commands", "main_registry", "run_registry"]

MAX_ERRORS_SHOWN = 100
_Handler = Callable[["_Run", argparse.Namespace], int]


class _BadInput(Exception):
    """A problem with the command's input (exit status 2)."""


@dataclass
class _Run:
    """What a command works with: config, engine, streams and clock."""

    cfg: Config
    engine: Engine | None
    out: TextIO
    err: TextIO
    inp: TextIO
    clock: IReactorTime | None
    _hasher: CardHasher | None = field(default=None, init=False)

    @property
    def issuers(self) -> tuple[str, ...]:
        """The configured issuer profile names, the default first."""
        return tuple(i.name for i in self.cfg.issuers)

    def now(self) -> float:
        """The current time from the clock (the reactor's when none was given)."""
        if self.clock is None:
            from twisted.internet import reactor

            self.clock = cast("IReactorTime", reactor)
        return self.clock.seconds()

    def hasher(self) -> CardHasher:
        """The card-hash key from ``keys_dir``, generated as on first start."""
        if self._hasher is None:
            from smsgw.store.keys import load_card_hasher

            try:
                self._hasher = load_card_hasher(self.cfg.keys_dir)
            except OSError as exc:
                raise _BadInput(f"keys_dir {self.cfg.keys_dir}: {exc}") from None
        return self._hasher

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in one transaction (committed unless an error escapes)."""
        assert self.engine is not None
        with self.engine.begin() as conn:
            yield conn


# -- output -------------------------------------------------------------------


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Write ``rows`` as a left-aligned text table under ``header``."""
    widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [c + " " * (w - _width(c)) for c, w in zip(row, widths, strict=True)]
        out.write("  ".join(cells).rstrip() + "\n")


def _json_lines(out: TextIO, items: Sequence[dict[str, Any]]) -> None:
    for item in items:
        out.write(json.dumps(item, ensure_ascii=False) + "\n")


@contextmanager
def _writing(run: _Run, path: str) -> Iterator[TextIO]:
    """``path`` ("-": standard output) to write CSV to; a file gets mode 0600
    (phone numbers are personal data). Raises _BadInput when it cannot."""
    if path == "-":
        yield run.out
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise _BadInput(f"{path}: cannot write: {exc.strerror}") from None
    with open(fd, "w", encoding="utf-8", newline="") as f:
        yield f


@contextmanager
def _reading(run: _Run, path: str) -> Iterator[TextIO]:
    """``path`` ("-": standard input) to read CSV from, a UTF-8 BOM tolerated.

    Raises _BadInput when it cannot be opened.
    """
    if path == "-":
        yield run.inp
        return
    try:
        # Opened apart from the `with` below so that only a failed open, not
        # an error while reading, is reported as "cannot read".
        f = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115
    except OSError as exc:
        raise _BadInput(f"{path}: cannot read: {exc.strerror}") from None
    with f:
        yield f


def _show_import_errors(
    err: TextIO, prog: str, path: str, errors: Sequence[str]
) -> None:
    err.write(f"{prog}: {path}: {len(errors)} problem(s), nothing imported:\n")
    for error in errors[:MAX_ERRORS_SHOWN]:
        err.write(f"  {error}\n")
    if len(errors) > MAX_ERRORS_SHOWN:
        err.write(f"  ... and {len(errors) - MAX_ERRORS_SHOWN} more\n")


# -- subscribers -------------------------------------------------------------


def _pan(run: _Run, ns: argparse.Namespace) -> str | None:
    """The PAN given, read from standard input for ``--pan -``."""
    pan: str | None = ns.pan
    if pan == "-":
        pan = run.inp.readline().strip()
    return pan


def _subscribers_add(run: _Run, ns: argparse.Namespace) -> int:
    from smsgw.store.registry import add_subscriber, subscriber_record

    pan = _pan(run, ns)
    quiet_start = quiet_end = None
    if ns.quiet:
        quiet_start, sep, quiet_end = ns.quiet.partition("-")
        if not sep:
            raise _BadInput("--quiet: must be HH:MM-HH:MM, like 22:00-07:00")
    record = subscriber_record(
        issuers=run.issuers,
        hasher=run.hasher() if pan else None,
        issuer=ns.issuer,
        pan=pan,
        card_token=ns.card_token,
        card_hash=ns.card_hash,
        msisdn=ns.msisdn,
        lang=ns.lang,
        min_amount=ns.min_amount,
        kinds=ns.kinds,
        opted_out=ns.opted_out,
        quiet_start=quiet_start,
        quiet_end=quiet_end,
        timezone=ns.timezone,
    )
    with run.begin() as conn:
        outcome = add_subscriber(conn, record, now=run.now())
    run.out.write(f"subscriber {record.card} ({record.issuer}): {outcome}\n")
    return 0


def _subscribers_remove(run: _Run, ns: argparse.Namespace) -> int:
    from smsgw.store.registry import remove_subscriber, subscriber_key

    pan = _pan(run, ns)
    key = subscriber_key(
        issuers=run.issuers,
        hasher=run.hasher() if pan else None,
        issuer=ns.issuer,
        pan=pan,
        card_token=ns.card_token,
        card_hash=ns.card_hash,
    )
    with run.begin() as conn:
        removed = remove_subscriber(conn, key, now=run.now())
    if not removed:
        run.err.write(f"no such subscriber for issuer {key.issuer}\n")
        return 1
    run.out.write(f"subscriber removed ({key.issuer})\n")
    return 0


def _subscribers_list(run: _Run, ns: argparse.Namespace) -> int:
    from smsgw.store.registry import list_subscribers, resolve_issuer

    issuer = resolve_issuer(ns.issuer, run.issuers) if ns.issuer else None
    with run.begin() as conn:
        records = list_subscribers(conn, issuer=issuer, msisdn=ns.msisdn)
    if ns.json:
        _json_lines(run.out, [asdict(r) for r in records])
        return 0
    header = (
        "ISSUER",
        "CARD",
        "MSISDN",
        "LANG",
        "MIN_AMOUNT",
        "KINDS",
        "OPTED_OUT",
        "QUIET",
        "TIMEZONE",
    )
    rows = [
        (
            r.issuer,
            r.card if len(r.card) <= 24 else r.card[:23] + "…",
            r.msisdn,
            r.lang or "-",
            r.min_amount or "-",
            (r.kinds or "all").replace(" ", ","),
            "yes" if r.opted_out else "no",
            f"{r.quiet_start}-{r.quiet_end}" if r.quiet_start else "-",
            r.timezone or "-",
        )
        for r in records
    ]
    _table(run.out, header, rows)
    return 0


def _subscribers_import(run: _Run, ns: argparse.Namespace) -> int:
    from smsgw.store.registry import import_subscribers

    with _reading(run, ns.file) as f, run.begin() as conn:
        counts = import_subscribers(
            conn, f, issuers=run.issuers, hasher=run.hasher(), now=run.now()
        )
    run.out.write(f"{ns.file}: {counts.added} added, {counts.updated} updated\n")
    return 0


def _subscribers_export(run: _Run, ns: argparse.Namespace) -> int:
    from smsgw.store.registry import export_subscribers, resolve_issuer

    issuer = resolve_issuer(ns.issuer, run.issuers) if ns.issuer else None
    with run.begin() as conn, _writing(run, ns.file) as f:
        n = export_subscribers(conn, f, issuer=issuer)
    if ns.file != "-":
        run.out.write(f"{ns.file}: {n} subscribers exported\n")
    return 0


# -- merchants ---------------------------------------------------------------


def _templates(ns: argparse.Namespace) -> dict[str, str]:
    """The templates given inline and as ``LANG=PATH`` files, by language."""
    templates: dict[str, str] = {}
    for lang, source in (("zh", ns.template_zh), ("en", ns.template_en)):
        if source is not None:
            templates[lang] = source
    for spec in ns.template_file or ():
        lang, sep, path = spec.partition("=")
        if not sep or not lang or not path:
            raise _BadInput(f"--template-file: must be LANG=PATH, got {spec!r}")
        if lang in templates:
            raise _BadInput(f"--template-file: a template for {lang!r} is given twice")
        try:
            templates[lang] = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _BadInput(f"--template-file: {path}: cannot read: {exc}") from None
    return templates


def _merchants_add(run: _Run, ns: argparse.Namespace) -> int:
    from smsgw.store.registry import add_merchant, merchant_record

    merchant = merchant_record(
        issuers=run.issuers,
        issuer=ns.issuer,
        merchant_id=ns.merchant_id,
        name=ns.name,
        notify=ns.notify or (),
        lang=ns.lang,
        templates=_templates(ns),
    )
    with run.begin() as conn:
        outcome = add_merchant(conn, merchant, now=run.now())
    run.out.write(f"merchant {merchant.merchant_id} ({merchant.issuer}): {outcome}\n")
    return 0


def _merchants_remove(run: _Run, ns: argparse.Namespace) -> int:
    from smsgw.store.registry import remove_merchant, resolve_issuer

    issuer = resolve_issuer(ns.issuer, run.issuers)
    with run.begin() as conn:
        removed = remove_merchant(
            conn, issuer=issuer, merchant_id=ns.merchant_id, now=run.now()
        )
    if not removed:
        run.err.write(f"no merchant {ns.merchant_id!r} for issuer {issuer}\n")
        return 1
    run.out.write(f"merchant {ns.merchant_id} ({issuer}): removed\n")
    return 0


def _merchants_list(run: _Run, ns: argparse.Namespace) -> int:
    from smsgw.store.registry import list_merchants, resolve_issuer

    issuer = resolve_issuer(ns.issuer, run.issuers) if ns.issuer else None
    with run.begin() as conn:
        merchants = list_merchants(conn, issuer=issuer)
    if ns.json:
        items = [
            {
                **asdict(m),
                "notify": list(m.notify),
                "templates": dict(m.templates or {}),
            }
            for m in merchants
        ]
        _json_lines(run.out, items)
        return 0
    header = ("ISSUER", "MERCHANT_ID", "NAME", "NOTIFY", "LANG", "TEMPLATES")
    rows = [
        (
            m.issuer,
            m.merchant_id,
            m.name,
            ",".join(m.notify) or "-",
            m.lang or "-",
            ",".join(sorted(m.templates or {})) or "-",
        )
        for m in merchants
    ]
    _table(run.out, header, rows)
    return 0


def _merchants_import(run: _Run, ns: argparse.Namespace) -> int:
    from smsgw.store.registry import import_merchants

    with _reading(run, ns.file) as f, run.begin() as conn:
        counts = import_merchants(conn, f, issuers=run.issuers, now=run.now())
    run.out.write(f"{ns.file}: {counts.added} added, {counts.updated} updated\n")
    return 0


def _merchants_export(run: _Run, ns: argparse.Namespace) -> int:
    from smsgw.store.registry import export_merchants, resolve_issuer

    issuer = resolve_issuer(ns.issuer, run.issuers) if ns.issuer else None
    with run.begin() as conn, _writing(run, ns.file) as f:
        n = export_merchants(conn, f, issuer=issuer)
    if ns.file != "-":
        run.out.write(f"{ns.file}: {n} merchants exported\n")
    return 0


# -- terminals ---------------------------------------------------------------


def _terminals_list(run: _Run, ns: argparse.Namespace) -> int:
    default = run.issuers[0]
    items = [
        {
            "id": t.id,
            "enabled": t.enabled,
            "issuer": t.issuer or default,
            "rate": t.rate,
            "may_supply_msisdn": t.may_supply_msisdn,
            "keys": len(t.keys),
            "cert_pinned": t.cert_sha256 is not None,
        }
        for t in run.cfg.terminals
    ]
    if ns.json:
        _json_lines(run.out, items)
        return 0

    def cell(value: object) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):
            return f"{value:g}"
        return "-" if value is None else str(value)

    header = (
        "ID",
        "ENABLED",
        "ISSUER",
        "RATE",
        "MAY_SUPPLY_MSISDN",
        "KEYS",
        "CERT_PINNED",
    )
    rows = [tuple(cell(v) for v in item.values()) for item in items]
    _table(run.out, header, rows)
    return 0


# -- argument parsing and the common run --------------------------------------


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
    from smsgw.store.keys import KeyFileError
    from smsgw.store.registry import CsvImportError, RegistryError

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
        if ns.needs_db:
            engine = make_engine(cfg.database.url, hide_parameters=True)
            check_schema(engine)
        handler: _Handler = ns.handler
        return handler(_Run(cfg, engine, out, err, inp, clock), ns)
    except CsvImportError as exc:
        _show_import_errors(err, prog, ns.file, exc.errors)
        return 2
    except UnicodeDecodeError as exc:
        where = getattr(ns, "file", "input")
        err.write(f"{prog}: {where}: not UTF-8 text (byte {exc.start})\n")
        return 2
    except (RegistryError, SchemaError, KeyFileError, _BadInput) as exc:
        err.write(f"{prog}: {exc}\n")
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
    handler: _Handler,
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
    handlers: tuple[_Handler, _Handler],
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
    from smsgw.store.registry import MERCHANT_COLUMNS, SUBSCRIBER_IMPORT_COLUMNS

    p = sub.add_parser("subscribers", help="subscriber registry: cards and numbers")
    s = p.add_subparsers(dest="registry_action", metavar="ACTION", required=True)
    p.set_defaults(registry="subscribers")
    q = _command(
        s, "add", _subscribers_add, "add a subscriber or replace its whole record"
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
    q = _command(s, "remove", _subscribers_remove, "remove a subscriber (exit 1: none)")
    _issuer_option(q, filter_only=False)
    _card_options(q)
    q = _command(s, "list", _subscribers_list, "list subscribers (masked cards)")
    _issuer_option(q, filter_only=True)
    q.add_argument("--msisdn", help="only this phone number")
    q.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    _csv_commands(
        s,
        "subscribers",
        (_subscribers_import, _subscribers_export),
        ",".join(SUBSCRIBER_IMPORT_COLUMNS)
        + " (one of pan, card_token, card_hash per row)",
    )

    p = sub.add_parser("merchants", help="merchant registry: names, numbers, templates")
    m = p.add_subparsers(dest="registry_action", metavar="ACTION", required=True)
    p.set_defaults(registry="merchants")
    q = _command(m, "add", _merchants_add, "add a merchant or replace its whole record")
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
    q = _command(m, "remove", _merchants_remove, "remove a merchant (exit 1: none)")
    _issuer_option(q, filter_only=False)
    q.add_argument("--merchant-id", required=True)
    q = _command(m, "list", _merchants_list, "list merchants")
    _issuer_option(q, filter_only=True)
    q.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    _csv_commands(
        m,
        "merchants",
        (_merchants_import, _merchants_export),
        ",".join(MERCHANT_COLUMNS),
    )

    p = sub.add_parser("terminals", help="terminals from the configuration (no keys)")
    t = p.add_subparsers(dest="registry_action", metavar="ACTION", required=True)
    p.set_defaults(registry="terminals")
    q = _command(
        t,
        "list",
        _terminals_list,
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
    """Parse ``argv`` (e.g. ``["subscribers", "list"]``) and run it.

    Returns the exit status; usage errors (status 2) and help go to ``err``
    and ``out``.
    """
    parser = argparse.ArgumentParser(prog="smsgw")
    add_registry_commands(
        parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    )
    try:
        with redirect_stdout(out), redirect_stderr(err):
            ns = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    return run_registry(ns, out, err, inp, clock)
