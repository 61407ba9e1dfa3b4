"""Unit of work: one database transaction that rolls back unless committed."""

from __future__ import annotations

from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from paypos.adapters.db.cache import TtlCache
from paypos.adapters.db.engine import SQLITE_BEGIN_OPTION
from paypos.adapters.db.host import SqlHostStore
from paypos.adapters.db.ledger import SqlLedger
from paypos.adapters.db.pricing import SqlPricingStore
from paypos.adapters.db.registry import SqlRegistry
from paypos.adapters.db.wallet import SqlWalletStore


class UnitOfWork:
    """``with UnitOfWork(engine) as uow: ...; uow.commit()`` — no commit, no change.

    ``write=False`` opens a read-only transaction (on SQLite a deferred BEGIN,
    which does not take the write lock).
    """

    def __init__(self, engine: Engine, *, write: bool = True, cache: TtlCache | None = None) -> None:
        self._engine = engine
        self._write = write
        self._cache = cache
        self._connection: sa.Connection | None = None
        self._transaction: sa.RootTransaction | None = None

    def __enter__(self) -> UnitOfWork:
        self._committed = False
        options = {} if self._write else {SQLITE_BEGIN_OPTION: "DEFERRED"}
        self._connection = self._engine.connect().execution_options(**options)
        self._transaction = self._connection.begin()
        self.ledger = SqlLedger(self._connection, self._cache)
        self.registry = SqlRegistry(self._connection, self._cache)
        self.host = SqlHostStore(self._connection)
        self.wallet = SqlWalletStore(self._connection)
        self.pricing = SqlPricingStore(self._connection, self._cache)
        return self

    @property
    def connection(self) -> sa.Connection:
        if self._connection is None:
            raise RuntimeError("unit of work used outside its with-block")
        return self._connection

    def commit(self) -> None:
        if self._transaction is None:
            raise RuntimeError("unit of work used outside its with-block")
        if not self._write:
            raise RuntimeError("a read-only unit of work cannot commit")
        self._transaction.commit()
        self._committed = True

    def rollback(self) -> None:
        if self._transaction is not None and self._transaction.is_active:
            self._transaction.rollback()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._write and not self._committed and self._cache is not None:
                # Rows read inside a transaction that is now undone may sit in the cache.
                self._cache.clear()
            self.rollback()
        finally:
            if self._connection is not None:
                self._connection.close()
            self._connection = None
            self._transaction = None
