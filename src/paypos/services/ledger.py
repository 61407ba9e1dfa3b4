"""Ledger use cases: transfers with retry, balances, expiry, the integrity check."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from paypos import limits
from paypos.adapters.db.ledger import Violation
from paypos.adapters.db.ledger_check import check_ledger
from paypos.adapters.db.uow import UnitOfWork
from paypos.domain.clock import Clock, utc_now
from paypos.domain.ledger import Account, TransferOutcome, TransferRequest

# PostgreSQL SQLSTATEs worth a retry: serialization_failure, deadlock_detected.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}

T = TypeVar("T")


def create_transfers(
    engine: Engine, requests: Sequence[TransferRequest], clock: Clock = utc_now
) -> list[TransferOutcome]:
    """Commit a batch in one transaction; retried when a concurrent writer raced us.

    A retry is always safe: transfer ids make the batch idempotent, so a batch
    that did commit before the failure answers ``exists`` on the next attempt.
    """
    return _with_retries(lambda: _create_once(engine, requests, clock()))


def _create_once(engine: Engine, requests: Sequence[TransferRequest], now: datetime) -> list[TransferOutcome]:
    with UnitOfWork(engine) as uow:
        outcomes = uow.ledger.create_transfers(requests, now)
        uow.commit()
        return outcomes


def _with_retries(attempt: Callable[[], T]) -> T:
    for tries_left in range(limits.ledger_write_retries_max, -1, -1):
        try:
            return attempt()
        except sa_exc.IntegrityError:
            # Two writers chose the same new transfer id at once: the loser retries
            # and now sees the winner's transfer (exists / different fields).
            if tries_left == 0:
                raise
        except sa_exc.OperationalError as error:
            sqlstate = getattr(error.orig, "sqlstate", None)
            if tries_left == 0 or sqlstate not in _RETRYABLE_SQLSTATES:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def expire_pending(engine: Engine, clock: Clock = utc_now) -> int:
    """Release every hold past its timeout, in bounded batches; returns how many."""
    total = 0
    while True:
        now = clock()

        def sweep() -> int:
            with UnitOfWork(engine) as uow:
                count = uow.ledger.expire_pending(now)
                uow.commit()
                return count

        count = _with_retries(sweep)
        total += count
        if count < limits.expire_batch_size_max:
            return total


def check(engine: Engine, clock: Clock = utc_now) -> list[Violation]:
    with UnitOfWork(engine, write=False) as uow:
        return check_ledger(uow.connection, clock())


def accounts(engine: Engine, owner_refs: Sequence[str] | None = None) -> list[Account]:
    with UnitOfWork(engine, write=False) as uow:
        return uow.ledger.list_accounts(owner_refs)


def balance_row(account: Account) -> dict[str, object]:
    """The `paypos ledger balances --json` / API shape of one account."""
    b = account.balances
    return {
        "account_id": account.id,
        "owner": account.owner,
        "code": account.code,
        "currency": account.currency,
        "flags": int(account.flags),
        "debits_posted": b.debits_posted,
        "credits_posted": b.credits_posted,
        "debits_pending": b.debits_pending,
        "credits_pending": b.credits_pending,
        "net_minor": b.net_posted,
    }
