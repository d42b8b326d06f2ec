"""CSV import and export of the subscriber and merchant registries (sync).

Import is all or nothing: every row is checked first and each bad one is
reported with its line number; nothing is written unless all are good. Export
writes ``card_token, masked_pan, card_hash`` in place of the PAN, so an export
imports again unchanged.

Numbers cross the CSV in clear: import seals them as every add does
(smsgw.store.registry), and export opens them, for an export is the
operator's own copy of the registry (the CLI writes export files with mode
0600).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from typing import Final, TextIO

from sqlalchemy import Connection

from smsgw.alerts.plan import Merchant
from smsgw.service.config_alerts import LANGUAGES
from smsgw.store.registry import (
    ImportCounts,
    add_merchants,
    add_subscribers,
    list_merchants,
    list_subscribers,
)
from smsgw.store.registry_checks import (
    Hasher,
    RegistryError,
    SubscriberKey,
    SubscriberRecord,
    merchant_record,
    subscriber_record,
)

__all__ = [
    "MERCHANT_COLUMNS",
    "SUBSCRIBER_EXPORT_COLUMNS",
    "SUBSCRIBER_IMPORT_COLUMNS",
    "CsvImportError",
    "export_merchants",
    "export_subscribers",
    "import_merchants",
    "import_subscribers",
]

SUBSCRIBER_EXPORT_COLUMNS: Final = (
    "issuer",
    "card_token",
    "masked_pan",
    "card_hash",
    "msisdn",
    "lang",
    "min_amount",
    "kinds",
    "opted_out",
    "quiet_start",
    "quiet_end",
    "timezone",
)
SUBSCRIBER_IMPORT_COLUMNS: Final = ("pan", *SUBSCRIBER_EXPORT_COLUMNS)
MERCHANT_COLUMNS: Final = (
    "issuer",
    "merchant_id",
    "name",
    "notify",
    "lang",
    "template_zh",
    "template_en",
)


class CsvImportError(RegistryError):
    """A CSV import refused as a whole; ``errors`` has one entry per bad row."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = tuple(errors)


def _csv_rows(
    lines: Iterable[str],
    allowed: Sequence[str],
    required: Sequence[str],
    errors: list[str],
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield the data rows with their first line numbers; problems go to
    ``errors`` as they are met, so all errors come in line order."""
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    line = 1
    try:
        for cells in reader:
            if header is None:
                header = [c.strip() for c in cells]
                bad = [c for c in header if c not in allowed or header.count(c) > 1]
                missing = [c for c in required if c not in header]
                if bad or missing or not header:
                    errors.append(
                        f"line {line}: the header must name each column at most "
                        f"once, among {','.join(allowed)}, including "
                        f"{','.join(required)}"
                    )
                    return
            elif not cells:
                pass
            elif len(cells) != len(header):
                errors.append(
                    f"line {line}: {len(cells)} fields, the header has {len(header)}"
                )
            else:
                yield line, dict(zip(header, cells, strict=True))
            line = reader.line_num + 1
    except csv.Error as exc:
        errors.append(f"line {reader.line_num}: not valid CSV ({exc})")
    if header is None:
        errors.append("line 1: the header row is missing")


def import_subscribers(
    conn: Connection,
    lines: Iterable[str],
    *,
    issuers: Sequence[str],
    hasher: Hasher | None,
    now: float,
    actor: str = "cli",
) -> ImportCounts:
    """Import subscribers from CSV (SUBSCRIBER_IMPORT_COLUMNS), all or nothing;
    numbers are stored sealed.

    Returns the counts; raises CsvImportError listing every bad row by line.
    """
    errors: list[str] = []
    records: list[SubscriberRecord] = []
    seen: dict[SubscriberKey, int] = {}
    for line, row in _csv_rows(lines, SUBSCRIBER_IMPORT_COLUMNS, ("msisdn",), errors):
        try:
            record = subscriber_record(
                issuers=issuers,
                hasher=hasher,
                issuer=row.get("issuer"),
                pan=row.get("pan"),
                card_token=row.get("card_token"),
                card_hash=row.get("card_hash"),
                masked_pan=row.get("masked_pan"),
                msisdn=row.get("msisdn"),
                lang=row.get("lang"),
                min_amount=row.get("min_amount"),
                kinds=row.get("kinds"),
                opted_out=row.get("opted_out", ""),
                quiet_start=row.get("quiet_start"),
                quiet_end=row.get("quiet_end"),
                timezone=row.get("timezone"),
            )
        except RegistryError as exc:
            errors.append(f"line {line}: {exc}")
            continue
        first = seen.setdefault(record.key, line)
        if first != line:
            errors.append(f"line {line}: card: the same card as line {first}")
        records.append(record)
    if errors:
        raise CsvImportError(errors)
    return add_subscribers(conn, records, now=now, actor=actor, via="import")


def export_subscribers(
    conn: Connection, out: TextIO, *, issuer: str | None = None
) -> int:
    """Write subscribers as CSV (SUBSCRIBER_EXPORT_COLUMNS, no PAN); returns rows.

    Numbers are written in clear (opened): the export is the operator's copy
    of the registry, to import again.
    """
    writer = csv.writer(out)
    writer.writerow(SUBSCRIBER_EXPORT_COLUMNS)
    records = list_subscribers(conn, issuer=issuer)
    for r in records:
        values = asdict(r)
        values["opted_out"] = "true" if r.opted_out else "false"
        writer.writerow([values[c] or "" for c in SUBSCRIBER_EXPORT_COLUMNS])
    return len(records)


def import_merchants(
    conn: Connection,
    lines: Iterable[str],
    *,
    issuers: Sequence[str],
    now: float,
    actor: str = "cli",
) -> ImportCounts:
    """Import merchants from CSV (MERCHANT_COLUMNS), all or nothing; notify
    numbers are stored sealed.

    Returns the counts; raises CsvImportError listing every bad row by line.
    """
    errors: list[str] = []
    merchants: list[Merchant] = []
    seen: dict[tuple[str, str], int] = {}
    for line, row in _csv_rows(
        lines, MERCHANT_COLUMNS, ("merchant_id", "name"), errors
    ):
        templates = {lang: row.get(f"template_{lang}") for lang in LANGUAGES}
        try:
            merchant = merchant_record(
                issuers=issuers,
                issuer=row.get("issuer"),
                merchant_id=row.get("merchant_id"),
                name=row.get("name"),
                notify=row.get("notify"),
                lang=row.get("lang"),
                templates=templates,
            )
        except RegistryError as exc:
            errors.append(f"line {line}: {exc}")
            continue
        first = seen.setdefault((merchant.issuer, merchant.merchant_id), line)
        if first != line:
            errors.append(
                f"line {line}: merchant_id: the same merchant as line {first}"
            )
        merchants.append(merchant)
    if errors:
        raise CsvImportError(errors)
    return add_merchants(conn, merchants, now=now, actor=actor, via="import")


def export_merchants(
    conn: Connection, out: TextIO, *, issuer: str | None = None
) -> int:
    """Write merchants as CSV (MERCHANT_COLUMNS); returns the number of rows.

    Notify numbers are written in clear (opened): the export is the
    operator's copy of the registry, to import again.
    """
    writer = csv.writer(out)
    writer.writerow(MERCHANT_COLUMNS)
    merchants = list_merchants(conn, issuer=issuer)
    for m in merchants:
        templates = m.templates or {}
        writer.writerow(
            [m.issuer, m.merchant_id, m.name, " ".join(m.notify), m.lang or ""]
            + [templates.get(lang, "") for lang in LANGUAGES]
        )
    return len(merchants)
