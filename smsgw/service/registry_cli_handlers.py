"""The registry commands' actions: subscribers, merchants and terminals.

Each takes the `Run` and the parsed arguments and returns the exit status;
bad input raises (RegistryError, BadInput), for run_registry to report.
The store modules are imported only when a command runs.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from smsgw.service.registry_cli_common import (
    BadInput,
    Run,
    json_lines,
    reading,
    table,
    writing,
)

__all__ = [
    "merchants_add",
    "merchants_export",
    "merchants_import",
    "merchants_list",
    "merchants_remove",
    "subscribers_add",
    "subscribers_export",
    "subscribers_import",
    "subscribers_list",
    "subscribers_remove",
    "terminals_list",
]


# -- subscribers -------------------------------------------------------------


def _pan(run: Run, ns: argparse.Namespace) -> str | None:
    """The PAN given, read from standard input for ``--pan -``."""
    pan: str | None = ns.pan
    if pan == "-":
        pan = run.inp.readline().strip()
    return pan


def subscribers_add(run: Run, ns: argparse.Namespace) -> int:
    """``subscribers add``: insert or replace a subscriber; returns 0."""

    from smsgw.store.registry import add_subscriber
    from smsgw.store.registry_checks import subscriber_record

    pan = _pan(run, ns)
    quiet_start = quiet_end = None
    if ns.quiet:
        quiet_start, sep, quiet_end = ns.quiet.partition("-")
        if not sep:
            raise BadInput("--quiet: must be HH:MM-HH:MM, like 22:00-07:00")
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


def subscribers_remove(run: Run, ns: argparse.Namespace) -> int:
    """``subscribers remove``: returns 0, or 1 when there is no such subscriber."""

    from smsgw.store.registry import remove_subscriber
    from smsgw.store.registry_checks import subscriber_key

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


def subscribers_list(run: Run, ns: argparse.Namespace) -> int:
    """``subscribers list``: a table or JSON lines of masked records; returns 0."""

    from smsgw.store.registry import list_subscribers
    from smsgw.store.registry_checks import resolve_issuer

    issuer = resolve_issuer(ns.issuer, run.issuers) if ns.issuer else None
    with run.begin() as conn:
        records = list_subscribers(conn, issuer=issuer, msisdn=ns.msisdn)
    if ns.json:
        json_lines(run.out, [asdict(r) for r in records])
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
    table(run.out, header, rows)
    return 0


def subscribers_import(run: Run, ns: argparse.Namespace) -> int:
    """``subscribers import``: CSV, all or nothing; returns 0."""

    from smsgw.store.registry_csv import import_subscribers

    with reading(run, ns.file) as f, run.begin() as conn:
        counts = import_subscribers(
            conn, f, issuers=run.issuers, hasher=run.hasher(), now=run.now()
        )
    run.out.write(f"{ns.file}: {counts.added} added, {counts.updated} updated\n")
    return 0


def subscribers_export(run: Run, ns: argparse.Namespace) -> int:
    """``subscribers export``: CSV without card numbers; returns 0."""

    from smsgw.store.registry_checks import resolve_issuer
    from smsgw.store.registry_csv import export_subscribers

    issuer = resolve_issuer(ns.issuer, run.issuers) if ns.issuer else None
    with run.begin() as conn, writing(run, ns.file) as f:
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
            raise BadInput(f"--template-file: must be LANG=PATH, got {spec!r}")
        if lang in templates:
            raise BadInput(f"--template-file: a template for {lang!r} is given twice")
        try:
            templates[lang] = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"--template-file: {path}: cannot read: {exc}") from None
    return templates


def merchants_add(run: Run, ns: argparse.Namespace) -> int:
    """``merchants add``: insert or replace a merchant; returns 0."""

    from smsgw.store.registry import add_merchant
    from smsgw.store.registry_checks import merchant_record

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


def merchants_remove(run: Run, ns: argparse.Namespace) -> int:
    """``merchants remove``: returns 0, or 1 when there is no such merchant."""

    from smsgw.store.registry import remove_merchant
    from smsgw.store.registry_checks import resolve_issuer

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


def merchants_list(run: Run, ns: argparse.Namespace) -> int:
    """``merchants list``: a table or JSON lines; returns 0."""

    from smsgw.store.registry import list_merchants
    from smsgw.store.registry_checks import resolve_issuer

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
        json_lines(run.out, items)
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
    table(run.out, header, rows)
    return 0


def merchants_import(run: Run, ns: argparse.Namespace) -> int:
    """``merchants import``: CSV, all or nothing; returns 0."""

    from smsgw.store.registry_csv import import_merchants

    with reading(run, ns.file) as f, run.begin() as conn:
        counts = import_merchants(conn, f, issuers=run.issuers, now=run.now())
    run.out.write(f"{ns.file}: {counts.added} added, {counts.updated} updated\n")
    return 0


def merchants_export(run: Run, ns: argparse.Namespace) -> int:
    """``merchants export``: CSV; returns 0."""

    from smsgw.store.registry_checks import resolve_issuer
    from smsgw.store.registry_csv import export_merchants

    issuer = resolve_issuer(ns.issuer, run.issuers) if ns.issuer else None
    with run.begin() as conn, writing(run, ns.file) as f:
        n = export_merchants(conn, f, issuer=issuer)
    if ns.file != "-":
        run.out.write(f"{ns.file}: {n} merchants exported\n")
    return 0


# -- terminals ---------------------------------------------------------------


def terminals_list(run: Run, ns: argparse.Namespace) -> int:
    """``terminals list``: the configured terminals, no key material; returns 0."""

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
        json_lines(run.out, items)
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
    table(run.out, header, rows)
    return 0
