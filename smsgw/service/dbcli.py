"""``smsgw db upgrade|status``: schema migrations from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from smsgw.service.config import ConfigError, load_config, mask_url
from smsgw.store.remote import describe_error

if TYPE_CHECKING:
    from sqlalchemy import Engine


def _engine(ns: argparse.Namespace, err: TextIO) -> Engine | None:
    from smsgw.store.db import make_engine

    try:
        cfg = load_config(ns.config)
    except ConfigError as e:
        err.write(f"smsgw db: invalid config {ns.config}:\n{e}\n")
        return None
    ns.url_shown = mask_url(cfg.database.url)
    return make_engine(cfg.database.url, hide_parameters=True)


def db_upgrade(
    ns: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    """Migrate the configured database to the newest schema; 0 on success."""
    from smsgw.store.db import upgrade

    engine = _engine(ns, err)
    if engine is None:
        return 2
    try:
        before, after = upgrade(engine)
    except Exception as e:
        err.write(f"smsgw db upgrade: {ns.url_shown}: {describe_error(e)}\n")
        return 1
    if before == after:
        out.write(f"{ns.url_shown}: schema already at revision {after}\n")
    else:
        out.write(
            f"{ns.url_shown}: schema upgraded from {before or 'empty'} to {after}\n"
        )
    return 0


def db_status(
    ns: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    """Print the schema revision; 0 when current, 1 when an upgrade is needed."""
    from smsgw.store.db import current_revision, head_revision

    engine = _engine(ns, err)
    if engine is None:
        return 2
    try:
        current = current_revision(engine)
    except Exception as e:
        err.write(f"smsgw db status: {ns.url_shown}: {describe_error(e)}\n")
        return 1
    head = head_revision()
    state = "current" if current == head else "needs `smsgw db upgrade`"
    out.write(
        f"{ns.url_shown}: revision {current or 'none'} (newest {head}): {state}\n"
    )
    return 0 if current == head else 1


def add_db_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``smsgw db upgrade`` and ``smsgw db status``."""
    p = sub.add_parser("db", help="database schema: upgrade, status")
    db = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, func, text in (
        (
            "upgrade",
            db_upgrade,
            "migrate the database to the newest schema (back it up first)",
        ),
        (
            "status",
            db_status,
            "show the schema revision and whether an upgrade is needed",
        ),
    ):
        q = db.add_parser(name, help=text)
        q.add_argument("--config", "-c", default="conf/smsgw.yaml", help="config file")
        q.set_defaults(func=func)
