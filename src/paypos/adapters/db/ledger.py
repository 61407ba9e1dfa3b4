"""The ledger in SQL: loads and locks state, runs the pure planner, applies its plan.

Concurrency: every account a batch touches is locked with ``SELECT ... FOR
UPDATE`` in ascending id order (so two batches can never deadlock on each
other's accounts) before anything else is read, on PostgreSQL; on SQLite the
write transaction itself (``BEGIN IMMEDIATE``) is the lock. Balances are then
read, checked, updated and written inside that one transaction, so no update is
lost and no limit flag can be raced past.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.bulk import among, among_rows, among_rows_values, among_values, built, insert_rows, update_rows
from paypos.adapters.db.cache import NoCache, TtlCache
from paypos.adapters.db.schema import (
    ledger_accounts,
    ledger_pending,
    ledger_transfer_failures,
    ledger_transfers,
)
from paypos.domain.clock import utc_now
from paypos.domain.ledger import (
    Account,
    AccountFlags,
    Balances,
    LedgerInvariantError,
    LedgerPlan,
    PendingHold,
    PendingState,
    PriorOutcome,
    Transfer,
    TransferKind,
    TransferOutcome,
    TransferRequest,
    TransferResult,
    limit_violated,
    plan_expiry,
    plan_transfers,
)


class AccountError(ValueError):
    """Opening an account was refused; the message says why."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant found by `SqlLedger.check`."""

    rule: str
    subject: str  # "account 12 (merchant:M1 merchant_pending CNY)" or "transfer t-1"
    detail: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.subject}: {self.detail}"


class SqlLedger:
    def __init__(self, connection: sa.Connection, cache: TtlCache | None = None) -> None:
        self._db = connection
        self._cache = cache if cache is not None else NoCache()

    # --- accounts ------------------------------------------------------------

    def open_account(
        self, owner_ref: str, owner: str, code: str, currency: str, flags: AccountFlags = AccountFlags.NONE
    ) -> Account:
        """Open an account, or return the one already open for (owner_ref, code, currency)."""
        _check_account_fields(owner_ref, owner, code, currency)
        existing = self.find_account(owner_ref, code, currency)
        if existing is not None:
            if existing.flags != flags:
                raise AccountError(
                    f"account {existing.id} ({owner_ref} {code} {currency}) exists with flags "
                    f"{int(existing.flags)}, not {int(flags)}"
                )
            return existing
        result = self._db.execute(
            ledger_accounts.insert().values(
                owner_ref=owner_ref, owner=owner, code=code, currency=currency,
                flags=int(flags), created_at=utc_now(),
            )
        )
        account_id = result.inserted_primary_key[0]
        return Account(account_id, owner_ref, owner, code, currency, flags, Balances())

    def find_account(self, owner_ref: str, code: str, currency: str) -> Account | None:
        row = self._db.execute(
            sa.select(ledger_accounts).where(
                ledger_accounts.c.owner_ref == owner_ref,
                ledger_accounts.c.code == code,
                ledger_accounts.c.currency == currency,
            )
        ).one_or_none()
        return None if row is None else _account(row)

    def find_account_id(self, owner_ref: str, code: str, currency: str) -> int | None:
        """The id of an account (ids never change, so they are cached for good)."""
        def load() -> int | None:
            return self._db.execute(
                sa.select(ledger_accounts.c.id).where(
                    ledger_accounts.c.owner_ref == owner_ref,
                    ledger_accounts.c.code == code,
                    ledger_accounts.c.currency == currency,
                )
            ).scalar_one_or_none()

        return self._cache.get(("account", owner_ref, code, currency), load, forever=True)

    def prime_account_ids(self, keys: Iterable[tuple[str, str, str]]) -> None:
        """`find_account_id` of many (owner_ref, code, currency) keys in one statement."""
        wanted = sorted({k for k in keys if not self._cache.fresh(("account", *k))})
        if not wanted or isinstance(self._cache, NoCache):
            return
        a = ledger_accounts.c
        query = built(self._db, "ledger.account_ids", lambda d: sa.select(
            a.id, a.owner_ref, a.owner, a.code, a.currency, a.flags).where(among_rows(d, (a.owner_ref, a.code, a.currency), "keys")))
        for row in self._db.execute(query, among_rows_values(self._db, "keys", wanted, 3)):
            self._cache.put(("account", row.owner_ref, row.code, row.currency), row.id, forever=True)
            self._cache.put(("shape", row.id), _shape(row), forever=True)  # saves `account_shapes` a trip

    def get_account(self, account_id: int) -> Account | None:
        row = self._db.execute(sa.select(ledger_accounts).where(ledger_accounts.c.id == account_id)).one_or_none()
        return None if row is None else _account(row)

    def list_accounts(self, owner_refs: Iterable[str] | None = None) -> list[Account]:
        query = sa.select(ledger_accounts).order_by(ledger_accounts.c.id)
        if owner_refs is not None:
            query = query.where(ledger_accounts.c.owner_ref.in_(list(owner_refs)))
        return [_account(row) for row in self._db.execute(query)]

    def get_transfer(self, transfer_id: str) -> Transfer | None:
        row = self._db.execute(
            sa.select(ledger_transfers).where(ledger_transfers.c.id == transfer_id)
        ).one_or_none()
        return None if row is None else _transfer(row)

    def pending_state(self, transfer_id: str) -> PendingState | None:
        state = self._db.execute(
            sa.select(ledger_pending.c.state).where(ledger_pending.c.transfer_id == transfer_id)
        ).scalar_one_or_none()
        return None if state is None else PendingState(state)

    # --- transfers -----------------------------------------------------------

    def create_transfers(self, requests: Sequence[TransferRequest], now: datetime) -> list[TransferOutcome]:
        """Plan and write a batch inside the caller's transaction (the caller commits)."""
        pending_ids = {r.pending_id for r in requests if r.pending_id}
        holds = self._load_holds_unlocked(pending_ids)
        account_ids = {i for r in requests for i in (r.debit_account_id, r.credit_account_id) if i is not None}
        account_ids |= {i for h in holds.values() for i in (h.debit_account_id, h.credit_account_id)}
        accounts = self.lock_accounts(account_ids)
        pendings = self._load_hold_states(holds)
        priors = self._load_priors({r.id for r in requests})
        plan = plan_transfers(requests, accounts, pendings, priors, now)
        self.apply_plan(plan, accounts, now)
        return plan.outcomes

    def expire_pending(self, now: datetime, batch_size: int = limits.expire_batch_size_max) -> int:
        """Release holds past their timeout; returns how many expired."""
        due = self._db.execute(
            sa.select(ledger_transfers)
            .join(ledger_pending, ledger_pending.c.transfer_id == ledger_transfers.c.id)
            .where(ledger_pending.c.state == PendingState.PENDING.value, ledger_pending.c.expires_at <= now)
            .order_by(ledger_pending.c.expires_at)
            .limit(batch_size)
        ).all()
        if not due:
            return 0
        transfers = {row.id: _transfer(row) for row in due}
        accounts = self.lock_accounts({i for t in transfers.values() for i in (t.debit_account_id, t.credit_account_id)})
        holds = self._load_hold_states(transfers)  # re-read under the locks
        plan = plan_expiry(holds.values(), accounts, now)
        self.apply_plan(plan, accounts, now)
        return len(plan.new_transfers)

    def _load_holds_unlocked(self, pending_ids: set[str]) -> dict[str, Transfer]:
        """The pending transfers named (immutable rows: safe to read before locking)."""
        if not pending_ids:
            return {}
        rows = self._db.execute(
            sa.select(ledger_transfers).where(
                ledger_transfers.c.id.in_(pending_ids), ledger_transfers.c.kind == TransferKind.PENDING.value
            )
        )
        return {row.id: _transfer(row) for row in rows}

    def account_shapes(self, account_ids: Iterable[int]) -> dict[int, Account]:
        """The accounts with their balances left at zero, read without a lock and cached for
        good: an account's identity and limit flags never change (`open_account` refuses a
        change), only its balances, which this never returns."""
        shapes: dict[int, Account] = {}
        wanted = []
        for account_id in set(account_ids):
            key = ("shape", account_id)
            if self._cache.fresh(key):
                shapes[account_id] = self._cache.get(key, lambda: None)  # type: ignore[arg-type,return-value]
            else:
                wanted.append(account_id)
        if wanted:
            a = ledger_accounts.c
            query = built(self._db, "ledger.shapes", lambda d: sa.select(
                a.id, a.owner_ref, a.owner, a.code, a.currency, a.flags).where(among(d, a.id, "ids")))
            for row in self._db.execute(query, among_values("ids", sorted(wanted))):
                shapes[row.id] = _shape(row)
                self._cache.put(("shape", row.id), shapes[row.id], forever=True)
        return shapes

    def lock_accounts(self, account_ids: set[int]) -> dict[int, Account]:
        """Lock (PostgreSQL: FOR UPDATE) and read accounts: those with a limit flag first, then
        those without, each by ascending id. The host's batches lock in that order too (the
        flagged accounts when they load, the unflagged ones — a merchant's pending, the
        platform's fees — at their flush), so a batch and a one-request transaction in
        another process can never wait for each other in a cycle."""
        if not account_ids:
            return {}
        a = ledger_accounts.c
        query = built(self._db, "ledger.lock", lambda d: sa.select(ledger_accounts).where(among(d, a.id, "ids"))
                      .order_by(a.flags == int(AccountFlags.NONE), a.id).with_for_update())
        accounts = {row.id: _account(row) for row in self._db.execute(query, among_values("ids", sorted(account_ids)))}
        for account in accounts.values():
            _check_stored_account(account)
        return accounts

    def _load_hold_states(self, holds: dict[str, Transfer]) -> dict[str, PendingHold]:
        if not holds:
            return {}
        rows = self._db.execute(
            sa.select(ledger_pending.c.transfer_id, ledger_pending.c.state).where(
                ledger_pending.c.transfer_id.in_(list(holds))
            )
        )
        states = {row.transfer_id: PendingState(row.state) for row in rows}
        missing = set(holds) - set(states)
        if missing:
            raise LedgerInvariantError(f"pending transfers without a hold state: {sorted(missing)}")
        return {tid: PendingHold(holds[tid], states[tid]) for tid in holds}

    def _load_priors(self, ids: set[str]) -> dict[str, PriorOutcome]:
        priors: dict[str, PriorOutcome] = {}
        for row in self._db.execute(sa.select(ledger_transfers).where(ledger_transfers.c.id.in_(ids))):
            priors[row.id] = PriorOutcome(row.fingerprint, TransferResult.OK, _transfer(row))
        failures = self._db.execute(
            sa.select(ledger_transfer_failures).where(ledger_transfer_failures.c.id.in_(ids))
        )
        for row in failures:
            priors[row.id] = PriorOutcome(row.fingerprint, TransferResult(row.result))
        return priors

    def apply_plan(self, plan: LedgerPlan, accounts: dict[int, Account], now: datetime) -> None:
        """Write a plan decided over ``accounts`` (locked by this transaction)."""
        for account_id, balances in plan.account_balances.items():
            account = accounts[account_id]
            if limit_violated(account.flags, balances) is not None:
                raise LedgerInvariantError(f"plan breaks the limit flags of account {account_id}")
        insert_rows(self._db, ledger_transfers, [_transfer_row(t) for t in plan.new_transfers])
        new_holds = [
            {"transfer_id": t.id, "state": plan.pending_states.get(t.id, PendingState.PENDING).value,
             "expires_at": t.expires_at}
            for t in plan.new_transfers
            if t.kind is TransferKind.PENDING
        ]
        insert_rows(self._db, ledger_pending, new_holds)
        created_holds = {row["transfer_id"] for row in new_holds}
        for transfer_id, state in plan.pending_states.items():
            if transfer_id not in created_holds:
                self._db.execute(
                    ledger_pending.update()
                    .where(ledger_pending.c.transfer_id == transfer_id)
                    .values(state=state.value)
                )
        # One statement for every account touched (ids ascending, the lock order).
        update_rows(self._db, ledger_accounts, "id", [
            {"id": account_id, "debits_pending": b.debits_pending, "debits_posted": b.debits_posted,
             "credits_pending": b.credits_pending, "credits_posted": b.credits_posted}
            for account_id, b in sorted(plan.account_balances.items())
        ])
        insert_rows(self._db, ledger_transfer_failures, [
            {"id": f.id, "fingerprint": f.fingerprint, "result": f.result.value, "created_at": now}
            for f in plan.failures])


def _shape(row: sa.Row) -> Account:
    """An account without its balances (left at zero): what never changes about it."""
    return Account(id=row.id, owner_ref=row.owner_ref, owner=row.owner, code=row.code, currency=row.currency,
                   flags=AccountFlags(row.flags), balances=Balances(0, 0, 0, 0))


def _check_account_fields(owner_ref: str, owner: str, code: str, currency: str) -> None:
    if not owner_ref or len(owner_ref.encode()) > limits.account_owner_bytes_max:
        raise AccountError(f"owner_ref must be 1-{limits.account_owner_bytes_max} bytes")
    if not owner or len(owner.encode()) > limits.account_owner_bytes_max:
        raise AccountError(f"owner must be 1-{limits.account_owner_bytes_max} bytes")
    if not code or len(code.encode()) > limits.account_code_bytes_max:
        raise AccountError(f"code must be 1-{limits.account_code_bytes_max} bytes")
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        raise AccountError(f"currency must be an ISO 4217 alpha code like 'CNY'; got {currency!r}")


def _check_stored_account(account: Account) -> None:
    """Invariants checked after every read of a locked account."""
    if any(value < 0 for value in account.balances.values()):
        raise LedgerInvariantError(f"account {account.id} has a negative balance column")
    if limit_violated(account.flags, account.balances) is not None:
        raise LedgerInvariantError(f"account {account.id} is stored past its limit flags")


def _account(row: sa.Row) -> Account:
    return Account(
        id=row.id,
        owner_ref=row.owner_ref,
        owner=row.owner,
        code=row.code,
        currency=row.currency,
        flags=AccountFlags(row.flags),
        balances=Balances(row.debits_pending, row.debits_posted, row.credits_pending, row.credits_posted),
    )


def _transfer(row: sa.Row) -> Transfer:
    return Transfer(
        id=row.id,
        kind=TransferKind(row.kind),
        debit_account_id=row.debit_account_id,
        credit_account_id=row.credit_account_id,
        amount=row.amount,
        currency=row.currency,
        pending_id=row.pending_id,
        timeout_s=row.timeout_s,
        expires_at=row.expires_at,
        code=row.code,
        created_at=row.created_at,
        fingerprint=row.fingerprint,
    )


def _transfer_row(transfer: Transfer) -> dict[str, object]:
    return {
        "id": transfer.id,
        "kind": transfer.kind.value,
        "debit_account_id": transfer.debit_account_id,
        "credit_account_id": transfer.credit_account_id,
        "amount": transfer.amount,
        "currency": transfer.currency,
        "pending_id": transfer.pending_id,
        "timeout_s": transfer.timeout_s,
        "expires_at": transfer.expires_at,
        "code": transfer.code,
        "fingerprint": transfer.fingerprint,
        "created_at": transfer.created_at,
    }
