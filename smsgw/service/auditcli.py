"""``smsgw audit verify|export``: the signed audit chain from the command line.

smsgw audit verify   walk the whole chain; name every altered, removed or
                     reordered record; exit 0 intact, 1 problems, 2 bad input
smsgw audit export   the latest signed head (seq, hash, key id, signature,
                     public key) as JSON, for a copy off the box
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from smsgw.service.config import ConfigError, load_config

__all__ = ["add_audit_commands", "audit_export", "audit_verify"]


def _open(
    ns: argparse.Namespace, err: TextIO, prog: str
) -> tuple[object, dict[str, str]] | None:
    """The database engine and the audit public keys by id; None (the reason
    written to ``err``) for an invalid config or an unusable key file."""
    from smsgw.store.chain import audit_public_keys
    from smsgw.store.db import make_engine
    from smsgw.store.keys import KeyFileError

    try:
        cfg = load_config(ns.config)
        public_keys = audit_public_keys(cfg.keys_dir)
    except ConfigError as e:
        err.write(f"{prog}: invalid config {ns.config}:\n{e}\n")
        return None
    except KeyFileError as e:
        err.write(f"{prog}: {e}\n")
        return None
    return make_engine(cfg.database.url, hide_parameters=True), public_keys


def audit_verify(
    ns: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Verify the chain; 0 intact, 1 with the problems listed."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from sqlalchemy import text

    from smsgw.store.chain import verify

    found = _open(ns, err, "smsgw audit verify")
    if found is None:
        return 2
    engine, public_keys = found
    with engine.connect() as conn:  # type: ignore[attr-defined]
        problems = verify(conn, public_keys)
        entries = conn.execute(text("SELECT COUNT(*) FROM audit_chain")).scalar_one()
    if problems:
        for problem in problems:
            out.write(f"{problem}\n")
        out.write(f"audit chain: {len(problems)} problem(s) in {entries} entries\n")
        return 1
    out.write(f"audit chain intact: {entries} entries, every head signature verifies\n")
    return 0


def audit_export(
    ns: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Print the latest signed head as JSON; 1 when there is none yet."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from sqlalchemy import text

    found = _open(ns, err, "smsgw audit export")
    if found is None:
        return 2
    engine, public_keys = found
    with engine.connect() as conn:  # type: ignore[attr-defined]
        head = conn.execute(
            text("SELECT * FROM audit_heads ORDER BY seq DESC LIMIT 1")
        ).first()
    if head is None:
        err.write("smsgw audit export: nothing chained yet\n")
        return 1
    out.write(
        json.dumps(
            {
                "seq": head.seq,
                "hash": head.hash,
                "key_id": head.key_id,
                "signature": head.signature,
                "public_key": public_keys.get(head.key_id),
                "at": head.at,
            }
        )
        + "\n"
    )
    return 0


def add_audit_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register ``smsgw audit verify|export``."""
    p = sub.add_parser("audit", help="the signed audit chain: verify, export")
    a = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    for name, func, help_text in (
        ("verify", audit_verify, "check the whole chain and every record it covers"),
        ("export", audit_export, "print the latest signed head (for an off-box copy)"),
    ):
        q = a.add_parser(name, help=help_text)
        q.add_argument("--config", "-c", default="conf/smsgw.yaml", help="config file")
        q.set_defaults(func=func)
