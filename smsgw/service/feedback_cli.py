"""``smsgw feedback``: what cardholders answered, from the command line.

    smsgw feedback show REF            a transaction's alerts, replies, dispute
                                       and fraud webhooks (with every attempt)
    smsgw feedback report              per merchant and day: alerted, confirm,
        [--from DATE] [--to DATE]      not-me, stop, no reply, and their rates
        [--issuer NAME] [--merchant ID]
    smsgw feedback unmatched           replies kept for review (matched to no
        [--days N] [--limit N]         alert, or free text)
    smsgw feedback opt-out|opt-in      a number's alerts stopped (as by STOP) or
        --msisdn N [--issuer NAME]     sent again; audited

``--json`` writes JSON (lines) instead of a table. Phone numbers are shown
masked (the store keeps them sealed: the msisdn keys in ``keys_dir`` open
them). Exit status: 0 done; 1 no such transaction or a database failure;
2 bad input (arguments, configuration, a schema that is not current, a
stored number that the keys in ``keys_dir`` do not open).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import zoneinfo
from typing import Any

from smsgw.service.registry_cli import run_registry
from smsgw.service.registry_cli_common import BadInput, Run, json_lines, table

__all__ = ["add_feedback_commands"]


def _when(ts: float | None, zone: zoneinfo.ZoneInfo) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M:%S")


def _issuer(run: Run, name: str | None) -> Any:
    if name is None:
        return run.cfg.issuers[0]
    for issuer in run.cfg.issuers:
        if issuer.name == name:
            return issuer
    raise BadInput(f"--issuer: no issuer profile {name!r} ({', '.join(run.issuers)})")


def feedback_show(run: Run, ns: argparse.Namespace) -> int:
    """``feedback show REF``: 0, or 1 when there is no such transaction."""
    from smsgw.store.feedback_report import transaction_feedback

    with run.begin() as conn:
        found = transaction_feedback(conn, ns.ref)
    if found is None:
        run.err.write(f"smsgw feedback show: no transaction {ns.ref}\n")
        return 1
    if ns.json:
        run.out.write(json.dumps(found, ensure_ascii=False, default=str) + "\n")
        return 0
    zone = zoneinfo.ZoneInfo(_issuer(run, found["issuer"]).timezone)
    out = run.out
    card = found["masked_pan"] or "*" + found["last4"]
    answered = _when(found["feedback_at"], zone)
    out.write(
        f"transaction {found['ref']}  {found['kind']} {found['result']}  "
        f"{found['amount']} {found['currency']}  card {card}\n"
        f"  merchant {found['merchant_id']} {found['merchant_name'] or ''}  "
        f"terminal {found['terminal_id']}  txn_id {found['txn_id']}\n"
        f"  feedback {found['feedback'] or 'none'} at {answered}"
        f"  disputed {_when(found['disputed_at'], zone)}\n"
    )
    out.write("alerts:\n")
    table(
        out,
        ("ID", "AUDIENCE", "TO", "STATUS", "CODE", "FEEDBACK"),
        [
            (
                a["id"],
                a["audience"],
                a["destination"] or "-",
                a["status"],
                a["reply_code"] or "-",
                a["feedback"] or "-",
            )
            for a in found["alerts"]
        ],
    )
    out.write("replies:\n")
    table(
        out,
        ("RECEIVED", "FROM", "CLASS", "MATCHED_BY", "ACTION", "TEXT"),
        [
            (
                _when(r["received_at"], zone),
                r["from"],
                r["classification"],
                r["matched_by"],
                r["action"],
                r["text"],
            )
            for r in found["replies"]
        ],
    )
    for hook in found["webhooks"]:
        out.write(
            f"webhook {hook['id']} {hook['event']}: {hook['status']}, "
            f"{len(hook['attempts'])} attempt(s)\n"
        )
        for a in hook["attempts"]:
            out.write(
                f"  #{a['attempt']} {_when(a['at'], zone)} "
                f"{a['status_code'] or '-'} {a['outcome']} {a['error'] or ''}\n"
            )
    return 0


def _day(value: str, what: str, zone: zoneinfo.ZoneInfo) -> float:
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{what}: a date like 2026-11-29, got {value!r}") from None
    return dt.datetime.combine(day, dt.time(), zone).timestamp()


def feedback_report(run: Run, ns: argparse.Namespace) -> int:
    """``feedback report``: per merchant and day; returns 0."""
    from smsgw.store.feedback_report import feedback_report as report

    issuer = _issuer(run, ns.issuer)
    zone = zoneinfo.ZoneInfo(issuer.timezone)
    today = dt.datetime.fromtimestamp(run.now(), zone).date()
    until = (
        _day(ns.to, "--to", zone) + 86400
        if ns.to
        else _day(today.isoformat(), "today", zone) + 86400
    )
    since = _day(ns.since, "--from", zone) if ns.since else until - 7 * 86400
    if since >= until:
        raise BadInput("--from must be on or before --to")
    with run.begin() as conn:
        rows = report(
            conn,
            issuer=issuer.name,
            since=since,
            until=until,
            timezone=issuer.timezone,
            merchant_id=ns.merchant,
        )
    if ns.json:
        json_lines(run.out, [r.as_json() for r in rows])
        return 0

    def pct(row: Any, count: int) -> str:
        return f"{count} ({row.rate(count):.0%})"

    table(
        run.out,
        ("MERCHANT", "DAY", "ALERTED", "CONFIRM", "NOT_ME", "STOP", "NO_REPLY"),
        [
            (
                r.merchant_id,
                r.day,
                str(r.alerted),
                pct(r, r.confirm),
                pct(r, r.not_me),
                pct(r, r.stop),
                pct(r, r.no_reply),
            )
            for r in rows
        ],
    )
    return 0


def feedback_unmatched(run: Run, ns: argparse.Namespace) -> int:
    """``feedback unmatched``: replies kept for review; returns 0."""
    from smsgw.store.feedback_report import unmatched_replies

    if ns.days <= 0 or ns.limit <= 0:
        raise BadInput("--days and --limit must be positive")
    issuer = _issuer(run, ns.issuer) if ns.issuer else None
    with run.begin() as conn:
        replies = unmatched_replies(
            conn,
            since=run.now() - ns.days * 86400,
            limit=ns.limit,
            issuer=issuer.name if issuer else None,
        )
    if ns.json:
        json_lines(run.out, list(replies))
        return 0
    zone = zoneinfo.ZoneInfo((issuer or run.cfg.issuers[0]).timezone)
    table(
        run.out,
        ("ID", "RECEIVED", "FROM", "CLASS", "MATCHED_BY", "TEXT"),
        [
            (
                str(r["id"]),
                _when(r["received_at"], zone),
                r["from"],
                r["classification"],
                r["matched_by"],
                r["text"],
            )
            for r in replies
        ],
    )
    return 0


def feedback_opt(run: Run, ns: argparse.Namespace) -> int:
    """``feedback opt-out|opt-in --msisdn N``: 0 (also when nothing changed)."""
    from smsgw.alerts.plan import e164
    from smsgw.store.feedback_report import mask_msisdn, set_opt_out

    number = e164(ns.msisdn)
    if number is None:
        raise BadInput(f"--msisdn: not a possible phone number: {ns.msisdn!r}")
    issuer = _issuer(run, ns.issuer).name
    out = ns.registry_action == "opt-out"
    with run.begin() as conn:
        changed = set_opt_out(
            conn, issuer=issuer, msisdn=number, opted_out=out, now=run.now()
        )
    state = "opted out" if out else "opted in"
    run.out.write(
        f"{mask_msisdn(number)} ({issuer}): {state}"
        + ("" if changed else " already")
        + "\n"
    )
    return 0


def add_feedback_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register ``smsgw feedback show|report|unmatched|opt-out|opt-in``."""
    p = sub.add_parser(
        "feedback", help="cardholders' replies: per transaction, reports"
    )
    f = p.add_subparsers(dest="registry_action", metavar="ACTION", required=True)
    p.set_defaults(registry="feedback")

    def command(
        name: str, handler: Any, text: str, *, json: bool = True
    ) -> argparse.ArgumentParser:
        q = f.add_parser(name, help=text, description=text)
        q.add_argument("--config", "-c", default="conf/smsgw.yaml", help="config file")
        if json:
            q.add_argument("--json", action="store_true", help="JSON, not a table")
        q.set_defaults(func=run_registry, handler=handler, needs_db=True)
        return q

    q = command("show", feedback_show, "a transaction's alerts, replies and webhooks")
    q.add_argument("ref", help="the transaction's reference (the intake's ref)")
    q = command(
        "report",
        feedback_report,
        "per merchant and day: alerted, confirm, not-me, stop and no-reply counts",
    )
    q.add_argument(
        "--from", dest="since", help="first day, YYYY-MM-DD (default: 7 days ago)"
    )
    q.add_argument("--to", help="last day, YYYY-MM-DD (default: today)")
    q.add_argument("--issuer", help="issuer profile (default: the first configured)")
    q.add_argument("--merchant", help="one merchant id only")
    for name, text in (
        ("opt-out", "stop a number's alerts from an issuer, as a STOP reply does"),
        ("opt-in", "send a number alerts again after a STOP (the cardholder asked)"),
    ):
        q = command(name, feedback_opt, text, json=False)
        q.add_argument(
            "--msisdn", required=True, help="the number, e.g. +8613800138000"
        )
        q.add_argument(
            "--issuer", help="issuer profile (default: the first configured)"
        )
    q = command("unmatched", feedback_unmatched, "replies kept for review")
    q.add_argument("--days", type=int, default=7, help="how far back (default: 7)")
    q.add_argument("--limit", type=int, default=100, help="at most (default: 100)")
    q.add_argument("--issuer", help="only this issuer profile")
