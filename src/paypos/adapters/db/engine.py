"""Engines for SQLite (embedded default) and PostgreSQL (production).

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed payment survives a
power cut) and foreign keys on. Write transactions start with ``BEGIN
IMMEDIATE`` so that two writers queue on the database lock up front instead of
failing on a lock upgrade halfway through; read-only units of work use a
deferred ``BEGIN`` and run beside a writer thanks to WAL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from paypos import limits
from paypos.config import normalize_database_url

SQLITE_BEGIN_OPTION = "paypos_sqlite_begin"


def make_engine(url: str) -> Engine:
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return sa.create_engine(
        url,
        pool_size=limits.db_pool_size_max,
        max_overflow=limits.db_pool_overflow_max,
        pool_timeout=limits.db_pool_timeout_s,
        pool_pre_ping=True,
        # plan_cache_mode: psycopg prepares a statement run five times, and PostgreSQL may then
        # keep one generic plan for it. A generic plan of `col = ANY($1)` (the host's set-wise
        # loads, adapters.db.bulk.any_of) is costed for ten elements whatever the array
        # holds, and picked sequential scans of growing tables; a custom plan per execution
        # sees the real array (the parse is still saved).
        connect_args={"connect_timeout": limits.db_connect_timeout_s,
                      "options": "-c plan_cache_mode=force_custom_plan"},
    )


def _sqlite_engine(url: str) -> Engine:
    database = sa.engine.make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url, connect_args={"timeout": limits.sqlite_busy_timeout_ms / 1000, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, below, issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={limits.sqlite_busy_timeout_ms}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
