"""Query helpers shared by the batch operations."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_
from sqlalchemy.sql.elements import ColumnClause


def pairs_in(
    a: ColumnClause[str] | ColumnElement[str],
    b: ColumnClause[str] | ColumnElement[str],
    pairs: Iterable[tuple[str, str]],
) -> ColumnElement[bool]:
    """``a IN (...) AND b IN (...)`` covering every pair in ``pairs``.

    SQLite scans the whole table for a row-value ``(a, b) IN (VALUES ...)``
    but uses a two-column index for two IN lists, so look-ups stay cheap as
    tables grow. The result may hold extra combinations: callers keep only
    the rows whose pair they asked for.
    """
    firsts: set[str] = set()
    seconds: set[str] = set()
    for x, y in pairs:
        firsts.add(x)
        seconds.add(y)
    return and_(a.in_(sorted(firsts)), b.in_(sorted(seconds)))


_INSERT_SQL: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}


def insert_sql(conn: Connection, table: Table) -> tuple[str, tuple[str, ...]]:
    """A plain driver-level INSERT for every column of ``table``, and the
    column order its parameter tuples follow."""
    dialect = conn.dialect.name
    key = (dialect, table.name)
    found = _INSERT_SQL.get(key)
    if found is None:
        columns = tuple(c.name for c in table.columns)
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join([mark] * len(columns))})"
        )
        found = _INSERT_SQL[key] = (sql, columns)
    return found


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (every column given) with one driver executemany.

    SQLAlchemy Core's executemany costs ~15 µs of parameter processing per
    row here; the hot path's inserts are plain values (str, int, float,
    bytes, bool, None) that the drivers take as they are.
    """
    if not rows:
        return
    sql, columns = insert_sql(conn, table)
    conn.exec_driver_sql(sql, [tuple(row[c] for c in columns) for row in rows])
