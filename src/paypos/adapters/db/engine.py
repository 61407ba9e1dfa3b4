"""Engines for SQLite (embedded default) and PostgreSQL (production).

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed payment survives a
power cut) and foreign keys on. Write transactions start with ``BEGIN
IMMEDIATE`` so that two writers queue on the database lock up front instead of
failing on a lock upgrade halfway through; read-only units of work use a
deferred ``BEGIN`` and run beside a writer thanks to WAL.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from paypos import limits
from paypos.config import normalize_database_url

SQLITE_BEGIN_OPTION = "paypos_sqlite_begin"


def make_engine(url: str) -> Engine:
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    engine = sa.create_engine(
        url,
        pool_size=limits.db_pool_size_max,
        max_overflow=limits.db_pool_overflow_max,
        pool_timeout=limits.db_pool_timeout_s,
        # plan_cache_mode: psycopg prepares a statement run five times, and PostgreSQL may then
        # keep one generic plan for it. A generic plan of `col = ANY($1)` (the host's set-wise
        # loads, adapters.db.bulk.among) is costed for ten elements whatever the array
        # holds, and picked sequential scans of growing tables; a custom plan per execution
        # sees the real array (the parse is still saved).
        connect_args={"connect_timeout": limits.db_connect_timeout_s,
                      "options": "-c plan_cache_mode=force_custom_plan"},
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping``, but only for a connection idle over `limits.db_ping_idle_s`
    (SQLAlchemy's "pessimistic disconnect handling, custom" recipe: a DisconnectionError
    raised at checkout makes the pool retry with a fresh connection)."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is not None and time.monotonic() - idle_since <= limits.db_ping_idle_s:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # the driver's own error for a dead link
            raise sa_exc.DisconnectionError(str(error)) from error
        if not alive:
            raise sa_exc.DisconnectionError("ping failed")


_IDLE_SINCE = "paypos_idle_since"


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
