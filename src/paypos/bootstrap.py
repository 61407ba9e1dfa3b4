"""Wiring: settings -> engine, vault, clock. The only module that knows them all."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from paypos.adapters.db import migrate
from paypos.adapters.db.engine import make_engine
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import Vault
from paypos.config import Settings
from paypos.domain.clock import Clock, utc_now
from paypos.services.sandbox import SeedReport, seed_sandbox


class NotInitialisedError(RuntimeError):
    """The database has no (or an old) schema: run `paypos init`."""


@dataclass
class App:
    settings: Settings
    engine: Engine
    vault: Vault
    clock: Clock = field(default=utc_now)

    def uow(self, *, write: bool = True) -> UnitOfWork:
        return UnitOfWork(self.engine, write=write)

    def close(self) -> None:
        self.engine.dispose()


def bootstrap(settings: Settings, clock: Clock = utc_now) -> App:
    engine = make_engine(settings.resolved_database_url())
    return App(settings=settings, engine=engine, vault=Vault(settings.resolved_data_key()), clock=clock)


def init_database(app: App, *, sandbox: bool) -> SeedReport | None:
    """Apply migrations (idempotent) and, with ``sandbox``, seed the sandbox (idempotent)."""
    migrate.upgrade(app.engine)
    if not sandbox:
        return None
    with app.uow() as uow:
        report = seed_sandbox(uow, app.vault, app.clock())
        uow.commit()
    return report


def require_schema(app: App) -> None:
    """Fail with a clear message when the database was never initialised."""
    current = migrate.current_revision(app.engine)
    head = migrate.head_revision()
    if current != head:
        where = app.engine.url.render_as_string(hide_password=True)  # never echo a password
        raise NotInitialisedError(
            f"database at {where} is at schema {current or 'none'}, need {head}: run `paypos init`"
        )
