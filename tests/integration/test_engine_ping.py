"""A pooled PostgreSQL connection is pinged before use only when it sat idle
(`limits.db_ping_idle_s`); a server that dropped it is then noticed before any
transaction starts on it, and the pool hands out a fresh connection."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.engine import make_engine

pytestmark = pytest.mark.postgres


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _kill(admin: sa.Engine, pid: int) -> None:
    with admin.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})").scalar_one()


@pytest.fixture
def engines(postgres_url: str):
    engine, admin = make_engine(postgres_url), make_engine(postgres_url)
    engine.pool = engine.pool.recreate()  # a pool of its own, nothing checked out
    yield engine, admin
    engine.dispose()
    admin.dispose()


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(engines, monkeypatch):
    engine, admin = engines
    monkeypatch.setattr(limits, "db_ping_idle_s", 0.0)  # every checkout counts as idle
    dropped = _backend_pid(engine)
    _kill(admin, dropped)
    assert _backend_pid(engine) != dropped  # the ping failed, the pool reconnected: no error


def test_a_connection_used_within_the_window_is_not_pinged(engines, monkeypatch):
    engine, admin = engines
    monkeypatch.setattr(limits, "db_ping_idle_s", 3600.0)
    dropped = _backend_pid(engine)
    _kill(admin, dropped)
    # No ping: the statement meets the dead link and fails as a disconnect, which
    # invalidates the pool; the next use gets a fresh connection.
    with pytest.raises(sa.exc.OperationalError) as failure:
        _backend_pid(engine)
    assert failure.value.connection_invalidated
    assert _backend_pid(engine) != dropped


def test_pinging_a_live_connection_keeps_it(engines, monkeypatch):
    engine, _ = engines
    monkeypatch.setattr(limits, "db_ping_idle_s", 0.0)
    assert _backend_pid(engine) == _backend_pid(engine)
