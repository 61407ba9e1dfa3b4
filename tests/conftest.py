"""Shared fixtures: databases on both backends, a fixed data key, a fake clock.

PostgreSQL: ``PAYPOS_TEST_DATABASE_URL`` names a scratch database (``.ci/run``
makes one). Without it, a scratch database is created on the local server
(postgresql://postgres@127.0.0.1:5432) and dropped afterwards. When no server is
reachable the PostgreSQL tests skip with one line — except under ``CI=true``,
where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from paypos.adapters.db import migrate
from paypos.adapters.db.engine import make_engine
from paypos.adapters.db.schema import metadata
from paypos.adapters.vault import Vault
from paypos.bootstrap import App
from paypos.config import Settings

TEST_DATA_KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

# python-escpos caches its printer capabilities in a new temporary directory per process
# unless told where: one place per test run and xdist worker keeps runs from littering /tmp
# (the CLI subprocesses a worker starts reuse it). Never one place for every process: the
# library writes the pickle in place, so a process reading while another writes gets EOFError.
# Set in every process that imports this (the xdist controller's value is inherited by its
# workers, so each worker replaces it with its own).
os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = os.path.join(tempfile.gettempdir(), f"paypos-escpos-{os.getpid()}")
os.makedirs(os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"], exist_ok=True)
PG_ADMIN_URL = os.environ.get("PAYPOS_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 22, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def vault() -> Vault:
    return Vault(bytes.fromhex(TEST_DATA_KEY))


def _pg_unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not reachable ({reason})")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL scratch database for the whole session."""
    url = os.environ.get("PAYPOS_TEST_DATABASE_URL")
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # under pytest-xdist: gw0, gw1, ...
    created: str | None = None
    admin = make_engine(PG_ADMIN_URL)
    try:
        if not url or worker:
            # Each xdist worker truncates tables between tests: it gets a database of its own,
            # named after the scratch database .ci/run gave (dropped with it) or after the pid.
            named = url.rsplit("/", 1)[1] if url else f"paypos_test_{os.getpid()}"
            created = f"{named}_{worker or uuid.uuid4().hex[:6]}"
            try:
                with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql(f'CREATE DATABASE "{created}"')
            except sa.exc.OperationalError as error:
                _pg_unavailable(str(error.orig).strip().splitlines()[0])
            url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + created
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
        except sa.exc.OperationalError as error:
            _pg_unavailable(str(error.orig).strip().splitlines()[0])
        finally:
            engine.dispose()
        yield url
    finally:
        if created:
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')
        admin.dispose()


def truncate_all(engine: Engine) -> None:
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'paypos.db'}"


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session (per xdist worker): each test's
    database is a copy of it, which is the same schema as running the migrations again
    (test_migrations.py runs them for real) at a fraction of the cost."""
    path = tmp_path_factory.mktemp("sqlite-template") / "paypos.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()  # the last connection closed: the WAL is checkpointed into the file
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database on each backend."""
    if request.param == "sqlite":
        target = tmp_path / "paypos.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite_template"), target)
        return f"sqlite:///{target}"
    url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    truncate_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def app(database_url: str, tmp_path: Path, clock: FakeClock, vault: Vault) -> Iterator[App]:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, data_key=TEST_DATA_KEY)
    paypos = App(settings=settings, engine=make_engine(database_url), vault=vault, clock=clock)
    yield paypos
    paypos.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove this process's python-escpos cache (see ESCPOS_CAPABILITIES_PICKLE_DIR above)."""
    shutil.rmtree(os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"], ignore_errors=True)
