"""Wiring: settings -> engine, vault, clock. The only module that knows them all."""

from __future__ import annotations

import gc

from sqlalchemy.engine import Engine

from paypos import limits
from paypos.adapters.db import migrate
from paypos.adapters.db.cache import TtlCache
from paypos.adapters.db.engine import make_engine
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import Vault
from paypos.config import Settings
from paypos.domain.clock import Clock, utc_now
from paypos.services.sandbox import SeedReport, seed_sandbox


class NotInitialisedError(RuntimeError):
    """The database has no (or an old) schema: run `paypos init`."""


class App:
    """The wired application: settings, database engine, card-data vault, clock."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        vault: Vault | None = None,
        clock: Clock = utc_now,
        *,
        initialising: bool = True,
    ) -> None:
        self.settings = settings
        self.engine = engine
        # Shared by every unit of work of this process (see adapters.db.cache).
        self.cache = TtlCache()
        self.clock = clock
        self._vault = vault
        self._initialising = initialising

    @property
    def vault(self) -> Vault:
        """Opened on first use, so a command that fails earlier never creates a key."""
        if self._vault is None:
            self._vault = Vault(self.settings.resolved_data_key(create=self._initialising))
        return self._vault

    def require_data_key(self) -> None:
        """Open the card-data vault now and one stored card's PAN with it: a `ConfigError` /
        `VaultError` naming the fix when the data key is missing, malformed or another
        database's (a host without it could only answer 96; with another key, 14: no PAN's
        lookup hash would match)."""
        vault = self.vault
        with self.uow(write=False) as uow:
            sealed = uow.registry.a_sealed_pan()
        if sealed is not None:
            vault.open(sealed, "pan")

    def uow(self, *, write: bool = True) -> UnitOfWork:
        return UnitOfWork(self.engine, write=write, cache=self.cache)

    def close(self) -> None:
        self.engine.dispose()


def bootstrap(settings: Settings, clock: Clock = utc_now, *, initialising: bool = True) -> App:
    """Wire the app. Unless ``initialising``, nothing is created on disk: a missing
    SQLite file or data key is a `NotInitialisedError` / `ConfigError` naming `paypos init`."""
    if not initialising:
        sqlite_file = settings.sqlite_file()
        if sqlite_file is not None and not sqlite_file.exists():
            raise NotInitialisedError(f"no database at {sqlite_file}: run `paypos init`")
    engine = make_engine(settings.resolved_database_url())
    return App(settings=settings, engine=engine, clock=clock, initialising=initialising)


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


def settle_for_serving() -> None:
    """Once a serving process has started: freeze what start-up built out of the cyclic
    collector's reach and collect the young generation less often
    (`limits.gc_gen0_threshold`). Modules, settings, pools and caches built at start-up live as
    long as the process; every full collection walked them again."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(limits.gc_gen0_threshold, middle, oldest)
