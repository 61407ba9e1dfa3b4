"""Many rows in one statement: COPY and UPDATE ... FROM unnest(...) on PostgreSQL.

SQLAlchemy's executemany costs ~50 µs of Python per row on psycopg (each row is
bound, processed and sent as its own pipelined statement), which made writing a
group-committed batch of host requests cost more than answering them. COPY
streams rows in one command and an unnest-based UPDATE sets any number of rows in
one statement; both run on the unit of work's own connection, inside its
transaction, and raise the same IntegrityError on a unique key. SQLite (the
embedded default, where executemany is already a C loop) keeps executemany.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql


def _is_postgresql(connection: sa.Connection) -> bool:
    return connection.dialect.name == "postgresql"


def _same_columns(rows: Sequence[Mapping[str, Any]]) -> list[str] | None:
    columns = list(rows[0])
    keys = set(columns)
    return columns if all(set(row) == keys for row in rows) else None


# --- statements built once ------------------------------------------------------------
#
# Building a select (columns, an IN of values, FOR UPDATE) and deriving SQLAlchemy's cache key
# for it costs ~0.3 ms of Python per execution, about half of what the statement costs the
# host in all; a batch runs about ten of them. The set-wise loads therefore build each
# statement once per process and dialect, with named parameters for the values (`among`,
# `among_rows`), and pass the values at execution (`among_values`, `among_rows_values`).

_BUILT: dict[tuple[str, str], Any] = {}
T = TypeVar("T")


def built(connection: sa.Connection, key: str, build: Callable[[str], T]) -> T:
    """The statement ``build(dialect name)`` returns, built once per process and dialect."""
    dialect = connection.dialect.name
    statement = _BUILT.get((key, dialect))
    if statement is None:
        statement = _BUILT.setdefault((key, dialect), build(dialect))
    return statement  # type: ignore[no-any-return]


def among(dialect: str, column: sa.ColumnElement[Any], name: str) -> sa.ColumnElement[bool]:
    """``column IN :name`` for a statement built once (`built`). On PostgreSQL one array
    parameter (``= ANY(:name)``): the statement's text is the same whatever the count, so
    psycopg prepares it once, where an expanded IN list of N values is a new text to build
    and parse for every N. Elsewhere (SQLite) an expanding parameter."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(sa.bindparam(name, expanding=True))


def among_values(name: str, values: Iterable[Any]) -> dict[str, list[Any]]:
    return {name: list(values)}


def among_rows(dialect: str, columns: Sequence[sa.ColumnElement[Any]], name: str) -> sa.ColumnElement[bool]:
    """``(a, b, ...) IN :name`` for a statement built once (`built`); on PostgreSQL one array
    per column, zipped by unnest. A semi-join: never OR it with another condition
    (PostgreSQL then scans the whole table and runs the subquery per row); take a UNION of
    ids instead."""
    if dialect == "postgresql":
        arrays = [sa.bindparam(f"{name}_{i}", type_=postgresql.ARRAY(column.type)) for i, column in enumerate(columns)]
        return sa.tuple_(*columns).in_(sa.select(*(sa.func.unnest(array) for array in arrays)))
    return sa.tuple_(*columns).in_(sa.bindparam(name, expanding=True))


def among_rows_values(connection: sa.Connection, name: str, rows: Iterable[Sequence[Any]],
                      width: int) -> dict[str, list[Any]]:
    rows = [tuple(row) for row in rows]
    if _is_postgresql(connection):
        return {f"{name}_{i}": [row[i] for row in rows] for i in range(width)}
    return {name: rows}


def insert_rows(connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT every row (dicts of column values; all with the same keys on PostgreSQL's COPY)."""
    if not rows:
        return
    columns = _same_columns(rows) if _is_postgresql(connection) else None
    if columns is None:
        connection.execute(table.insert(), list(rows))
        return
    for name in columns:
        table.c[name]  # noqa: B018 — a KeyError for a column the table does not have
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    with _driver_errors_as_sqlalchemy(connection, statement):
        with connection.connection.driver_connection.cursor() as cursor, \
                cursor.copy(statement) as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row([row[name] for name in columns])


def update_rows(connection: sa.Connection, table: sa.Table, key: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """UPDATE ``table`` SET the rows' other columns WHERE ``key`` = the row's ``key``."""
    if not rows:
        return
    columns = _same_columns(rows) if _is_postgresql(connection) else None
    if columns is None or key not in columns:
        values = [name for name in rows[0] if name != key]
        statement = (table.update().where(table.c[key] == sa.bindparam(f"b_{key}"))
                     .values({name: sa.bindparam(f"b_{name}") for name in values}))
        connection.execute(statement, [{f"b_{name}": value for name, value in row.items()} for row in rows])
        return
    dialect = connection.dialect
    types = {name: table.c[name].type.compile(dialect=dialect) for name in columns}
    arrays = ", ".join(f"%s::{types[name]}[]" for name in columns)
    assignments = ", ".join(f"{name} = v.{name}" for name in columns if name != key)
    statement = (f"UPDATE {table.name} AS t SET {assignments} FROM unnest({arrays}) AS v({', '.join(columns)}) "
                 f"WHERE t.{key} = v.{key}")
    with _driver_errors_as_sqlalchemy(connection, statement):
        with connection.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(statement, [[row[name] for row in rows] for name in columns])


@contextlib.contextmanager
def _driver_errors_as_sqlalchemy(connection: sa.Connection, statement: str) -> Iterator[None]:
    """The driver's errors as SQLAlchemy's (IntegrityError, OperationalError, ...), as
    ``connection.execute`` would raise them, so callers handle one family."""
    dbapi = connection.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as error:
        raise sa_exc.DBAPIError.instance(statement, None, error, dbapi.Error) from error
