"""Query helpers shared by the batch operations."""

from __future__ import annotations

import collections
import operator
from collections.abc import Iterable, Iterator, Sequence
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


def _generated(column: Any) -> bool:
    """An integer primary key the database numbers itself."""
    return bool(column.primary_key and column.autoincrement is True)


def insert_sql(conn: Connection, table: Table) -> tuple[str, tuple[str, ...]]:
    """A plain driver-level INSERT for the columns of ``table`` (all but a
    self-numbered key), and the column order its parameter tuples follow."""
    key = (conn.dialect.name, table.name)
    found = _INSERT_SQL.get(key)
    if found is None:
        columns = tuple(c.name for c in table.columns if not _generated(c))
        sql = driver_sql(
            conn,
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join(['?'] * len(columns))})",
        )
        found = _INSERT_SQL[key] = (sql, columns)
    return found


def driver_sql(conn: Connection, sql: str) -> str:
    """``sql`` written with ``?`` placeholders, in the driver's own style."""
    return sql if conn.dialect.paramstyle == "qmark" else sql.replace("?", "%s")


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` with one driver executemany.

    SQLAlchemy Core's executemany costs ~15 µs of parameter processing per
    row here; the hot path's values are plain (str, int, float, bytes, bool,
    None) and the drivers take them as they are.
    """
    if not rows:
        return
    sql, columns = insert_sql(conn, table)
    values = operator.itemgetter(*columns)
    _executemany(conn, sql, [values(row) for row in rows])


def run_many(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Run ``sql`` (``?`` placeholders) once per parameter tuple, at driver level."""
    if rows:
        _executemany(conn, driver_sql(conn, sql), list(rows))


def update_ids(
    conn: Connection,
    sql: str,
    params: tuple[Any, ...],
    ids: Sequence[Any],
    chunk: int = 500,
) -> int:
    """Run ``sql`` (``?`` marks, ``{ids}`` where the id list goes) for
    ``ids`` in chunks of ``chunk``, at driver level; returns the rows changed.

    Lease renewals and releases name thousands of alerts: through SQLAlchemy
    each chunk's expanding IN is rendered anew and leaves reference cycles
    that an idle store process's collector may not reach for a long time.
    """
    return sum(
        max(cursor.rowcount, 0) for cursor in _by_chunks(conn, sql, params, ids, chunk)
    )


def select_ids(
    conn: Connection, sql: str, ids: Sequence[Any], chunk: int = 500
) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` (``{ids}`` where the id list goes) for ``ids`` in
    chunks of ``chunk``, at driver level (as `update_ids`)."""
    return [
        tuple(row)
        for cursor in _by_chunks(conn, sql, (), ids, chunk)
        for row in cursor.fetchall()
    ]


def _by_chunks(
    conn: Connection,
    sql: str,
    params: tuple[Any, ...],
    ids: Sequence[Any],
    chunk: int,
) -> Iterator[Any]:
    """Execute ``sql`` once per chunk of ``ids`` on one DBAPI cursor, yielding
    the cursor after each execution."""
    cursor = conn.connection.cursor()
    try:
        for start in range(0, len(ids), chunk):
            part = tuple(ids[start : start + chunk])
            cursor.execute(
                driver_sql(conn, sql.format(ids=", ".join(["?"] * len(part)))),
                params + part,
            )
            yield cursor
    finally:
        cursor.close()


def _executemany(conn: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    # The DBAPI cursor of this transaction's connection: SQLAlchemy's own
    # execution (even exec_driver_sql) adds ~50-100 µs per statement, which
    # small batches pay several times per commit.
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


_ROW_TYPES: dict[tuple[str, ...], Any] = {}


def _row_type(description: Any) -> Any:
    names = tuple(column[0] for column in description)
    found = _ROW_TYPES.get(names)
    if found is None:
        found = _ROW_TYPES[names] = collections.namedtuple("Row", names, rename=True)
    return found


def select_pairs(
    conn: Connection, sql: str, a: str, b: str, pairs: Iterable[tuple[str, str]]
) -> list[Any]:
    """Run ``sql`` (with ``{where}`` where the pair condition goes) for
    ``a IN (...) AND b IN (...)`` at driver level; return only the rows whose
    first two columns are one of ``pairs``.

    Driver-level: SQLAlchemy renders an expanding IN of 500 values anew on
    every call, which costs more than the query here.
    """
    wanted = set(pairs)
    if not wanted:
        return []
    firsts = sorted({x for x, _ in wanted})
    seconds = sorted({y for _, y in wanted})
    where = (
        f"{a} IN ({', '.join(['?'] * len(firsts))}) "
        f"AND {b} IN ({', '.join(['?'] * len(seconds))})"
    )
    cursor = conn.connection.cursor()
    try:
        cursor.execute(
            driver_sql(conn, sql.format(where=where)), tuple(firsts + seconds)
        )
        rows = cursor.fetchall()
        make = _row_type(cursor.description)._make
    finally:
        cursor.close()
    return [make(row) for row in rows if (row[0], row[1]) in wanted]
