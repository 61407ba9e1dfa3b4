"""Group commit for the acquiring host: many requests, one database transaction.

A `HostBatch` sits inside one write unit of work. The host locks and loads, in
a few set-based statements, the rows a batch of requests will touch (terminal
and card state, answered messages, reversal tombstones, velocity counts, ledger
accounts); each request then runs the unchanged participant pipeline against
`BatchView`, whose stores read and write that in-memory state; `flush` writes
everything with one executemany per table; the unit of work commits once.

Why: a request alone costs ~15 round trips and a commit (an fsync) and holds the
merchant's and the platform's hot ledger rows locked until that commit; a batch
of N pays a handful of round trips and one fsync, and takes each hot row's lock
once (docs/performance.md).

Rules that keep it exactly as safe as one transaction per request:

- Locks are taken in the same order as the per-request path (terminal state,
  card state, ledger accounts; ids ascending inside each), so batches on several
  host processes can only deadlock through a lazy load, which PostgreSQL breaks
  with an error the host answers by re-running the batch one request at a time.
- A request whose pipeline raises (a bug) is undone from the in-memory state by
  its undo log, so the batch never writes half of it.
- What the in-memory state cannot answer — journal reads by identity or RRN,
  batch totals, holds to post or void, a wallet's trades — raises `NeedsDatabase`:
  the request is undone and runs after the flush, on the plain stores, inside a
  savepoint of the same transaction. Wallet requests (0200 with field 22 = 03x,
  0600) go there without trying: the host knows their flow needs the database.
- The database's unique keys stay the last line: a twin on another process, or
  a transfer id seen before, fails the flush, the batch rolls back, and the host
  re-runs it one request per transaction (which reads the first outcome).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paypos.adapters.db.bulk import insert_rows, update_rows
from paypos.adapters.db.host import AnsweredMessage, CardState, SqlHostStore, TerminalState
from paypos.adapters.db.ledger import SqlLedger
from paypos.adapters.db.pricing import SqlPricingStore
from paypos.adapters.db.registry import SqlRegistry
from paypos.adapters.db.schema import (
    host_transactions,
    issuer_card_state,
    issuer_notifications,
    iso_messages,
    ledger_accounts,
    reversal_tombstones,
    terminal_state,
)
from paypos.adapters.db.uow import UnitOfWork
from paypos.domain.ledger import (
    Account,
    Failure,
    LedgerInvariantError,
    LedgerPlan,
    PendingState,
    Transfer,
    TransferKind,
    TransferOutcome,
    TransferRequest,
    limit_violated,
    plan_transfers,
)

Identity = tuple[str, str, str]  # ISO 8583 fields 41, 11, 7


class NeedsDatabase(Exception):
    """The request reads state the batch does not hold in memory: run it after the flush."""


_MISSING = object()


class HostBatch:
    def __init__(self, uow: UnitOfWork, now: datetime) -> None:
        self._uow = uow
        self._db = uow.connection
        self.now = now
        self._sql_host: SqlHostStore = uow.host
        self._sql_ledger: SqlLedger = uow.ledger
        self.terminals: dict[str, TerminalState] = {}
        self.cards: dict[str, CardState] = {}
        self.answers: dict[Identity, AnsweredMessage | None] = {}
        self.tombstones: dict[Identity, bool] = {}
        # Journal rows per card since the velocity window's start: stored ones, and this batch's.
        self.velocity_since: datetime | None = None
        self.velocity_stored: dict[str, int] = {}
        self.velocity_added: dict[str, int] = {}
        self.accounts: dict[int, Account] = {}
        self.dirty_terminals: set[str] = set()
        self.dirty_cards: set[str] = set()
        self.dirty_accounts: set[int] = set()
        self.new_answers: list[dict[str, Any]] = []
        self.new_transactions: list[dict[str, Any]] = []
        self.new_notifications: list[dict[str, Any]] = []
        self.new_transfers: list[Transfer] = []
        self.new_failures: list[Failure] = []
        self.transfer_ids: set[str] = set()
        self._free_ids: list[int] = []
        self._sqlite_next_id: int | None = None
        self._undo: list[Callable[[], None]] | None = None
        self.view = BatchView(uow.registry, BatchHostStore(self), BatchLedger(self), uow.pricing)

    # --- per-request isolation ---------------------------------------------------

    def begin_request(self) -> None:
        self._undo = []

    def end_request(self) -> None:
        self._undo = None

    def undo_request(self) -> None:
        """Forget everything the current request changed in memory."""
        undo, self._undo = self._undo or [], None
        for step in reversed(undo):
            step()

    def set_item(self, mapping: dict[Any, Any], key: Any, value: Any) -> None:
        old = mapping.get(key, _MISSING)
        if self._undo is not None:
            self._undo.append(lambda: mapping.pop(key) if old is _MISSING else mapping.__setitem__(key, old))
        mapping[key] = value

    def mark(self, dirty: set[Any], key: Any) -> None:
        if key in dirty:
            return
        if self._undo is not None:
            self._undo.append(lambda: dirty.discard(key))
        dirty.add(key)

    def append(self, rows: list[Any], row: Any) -> None:
        if self._undo is not None:
            size = len(rows)
            self._undo.append(lambda: rows.__delitem__(slice(size, None)))
        rows.append(row)

    # --- set-based loads (all optional: a miss is loaded one row at a time) -------

    def lock_terminal_states(self, terminal_ids: Iterable[str]) -> None:
        """Lock the terminals' state rows, creating the missing ones (a new terminal's first request)."""
        wanted = sorted(set(terminal_ids) - set(self.terminals))
        if not wanted:
            return
        query = (sa.select(terminal_state).where(terminal_state.c.terminal_id.in_(wanted))
                 .order_by(terminal_state.c.terminal_id).with_for_update())
        for row in self._db.execute(query):
            self.terminals[row.terminal_id] = TerminalState(row.terminal_id, row.ksn_counter_last,
                                                            bool(row.signed_on), row.batch_no)
        missing = [TerminalState(tid, -1, False, 1) for tid in wanted if tid not in self.terminals]
        # A row this transaction inserts is locked by it until commit; a twin insert by
        # another host process fails on the key and the batch re-runs one by one.
        insert_rows(self._db, terminal_state, [
            {"terminal_id": s.terminal_id, "ksn_counter_last": s.ksn_counter_last, "signed_on": s.signed_on,
             "batch_no": s.batch_no, "updated_at": self.now} for s in missing])
        self.terminals.update((s.terminal_id, s) for s in missing)

    def lock_card_states(self, card_ids: Iterable[str], pin_tries: int) -> None:
        """Lock the cards' issuer state rows, creating the missing ones (a card's first use)."""
        wanted = sorted(set(card_ids) - set(self.cards))
        if not wanted:
            return
        query = (sa.select(issuer_card_state).where(issuer_card_state.c.card_id.in_(wanted))
                 .order_by(issuer_card_state.c.card_id).with_for_update())
        for row in self._db.execute(query):
            self.cards[row.card_id] = CardState(row.card_id, row.atc_last, row.pin_tries_left)
        missing = [CardState(cid, -1, pin_tries) for cid in wanted if cid not in self.cards]
        insert_rows(self._db, issuer_card_state, [
            {"card_id": s.card_id, "atc_last": s.atc_last, "pin_tries_left": s.pin_tries_left,
             "updated_at": self.now} for s in missing])
        self.cards.update((s.card_id, s) for s in missing)

    def lock_accounts(self, account_ids: Iterable[int]) -> None:
        wanted = set(account_ids) - set(self.accounts)
        if wanted:
            self.accounts.update(self._sql_ledger.lock_accounts(wanted))

    def load_answers(self, identities: Iterable[Identity]) -> None:
        wanted = [i for i in set(identities) if i not in self.answers]
        if not wanted:
            return
        m = iso_messages
        query = sa.select(m).where(sa.tuple_(m.c.terminal_id, m.c.stan, m.c.transmission_dt).in_(wanted))
        for identity in wanted:
            self.answers[identity] = None
        for row in self._db.execute(query):
            self.answers[(row.terminal_id, row.stan, row.transmission_dt)] = AnsweredMessage(
                row.mti, row.fingerprint, json.loads(row.response_json), row.response_code)

    def load_tombstones(self, identities: Iterable[Identity]) -> None:
        wanted = [i for i in set(identities) if i not in self.tombstones]
        if not wanted:
            return
        t = reversal_tombstones
        query = sa.select(t.c.terminal_id, t.c.stan, t.c.transmission_dt).where(
            sa.tuple_(t.c.terminal_id, t.c.stan, t.c.transmission_dt).in_(wanted))
        for identity in wanted:
            self.tombstones[identity] = False
        for row in self._db.execute(query):
            self.tombstones[(row.terminal_id, row.stan, row.transmission_dt)] = True

    def load_velocity(self, card_ids: Iterable[str], since: datetime) -> None:
        if self.velocity_since is not None and self.velocity_since != since:
            raise NeedsDatabase("velocity window differs from the batch's")
        self.velocity_since = since
        wanted = sorted(set(card_ids) - set(self.velocity_stored))
        if not wanted:
            return
        t = host_transactions
        query = (sa.select(t.c.card_id, sa.func.count()).where(t.c.card_id.in_(wanted), t.c.created_at >= since)
                 .group_by(t.c.card_id))
        counts = {card_id: n for card_id, n in self._db.execute(query)}
        for card_id in wanted:
            self.velocity_stored[card_id] = int(counts.get(card_id, 0))

    def reserve_transaction_ids(self, count: int) -> None:
        """Journal ids taken up front, so a response can carry its RRN before the flush."""
        if count <= 0:
            return
        if self._db.dialect.name == "postgresql":
            ids = self._db.execute(
                sa.text("SELECT nextval(pg_get_serial_sequence('host_transactions', 'id')) "
                        "FROM generate_series(1, :n)"), {"n": count}).scalars().all()
            self._free_ids.extend(int(i) for i in ids)
            return
        # SQLite: this write transaction holds the database lock (BEGIN IMMEDIATE), so the
        # ids after the highest stored one are ours; read it once per batch.
        if self._sqlite_next_id is None:
            stored = self._db.execute(sa.select(sa.func.max(host_transactions.c.id))).scalar_one_or_none()
            self._sqlite_next_id = (stored or 0) + 1
        self._free_ids.extend(range(self._sqlite_next_id, self._sqlite_next_id + count))
        self._sqlite_next_id += count

    def next_transaction_id(self) -> int:
        if not self._free_ids:
            self.reserve_transaction_ids(16)
        return self._free_ids.pop(0)

    # --- one-row fallbacks ---------------------------------------------------------

    def terminal(self, terminal_id: str) -> TerminalState:
        if terminal_id not in self.terminals:
            self.terminals[terminal_id] = self._sql_host.terminal_state(terminal_id, self.now)
        return self.terminals[terminal_id]

    def card(self, card_id: str, pin_tries: int) -> CardState:
        if card_id not in self.cards:
            self.cards[card_id] = self._sql_host.card_state(card_id, self.now, pin_tries)
        return self.cards[card_id]

    def account(self, account_id: int) -> Account | None:
        self.lock_accounts({account_id})
        return self.accounts.get(account_id)

    # --- the flush -------------------------------------------------------------------

    def flush(self) -> None:
        """Write every row the batch produced, one statement per table (the caller commits)."""
        db = self._db
        update_rows(db, terminal_state, "terminal_id", [
            {"terminal_id": s.terminal_id, "ksn_counter_last": s.ksn_counter_last, "signed_on": s.signed_on,
             "batch_no": s.batch_no, "updated_at": self.now}
            for s in (self.terminals[t] for t in sorted(self.dirty_terminals))])
        update_rows(db, issuer_card_state, "card_id", [
            {"card_id": s.card_id, "atc_last": s.atc_last, "pin_tries_left": s.pin_tries_left, "updated_at": self.now}
            for s in (self.cards[c] for c in sorted(self.dirty_cards))])
        if self.new_transfers or self.new_failures or self.dirty_accounts:
            plan = LedgerPlan(
                outcomes=[], new_transfers=self.new_transfers,
                account_balances={i: self.accounts[i].balances for i in sorted(self.dirty_accounts)},
                pending_states={t.id: PendingState.PENDING for t in self.new_transfers
                                if t.kind is TransferKind.PENDING},
                failures=self.new_failures,
            )
            self._sql_ledger.apply_plan(plan, self.accounts, self.now)
        insert_rows(db, host_transactions, self.new_transactions)
        insert_rows(db, iso_messages, self.new_answers)
        insert_rows(db, issuer_notifications, self.new_notifications)
        self.dirty_terminals.clear()
        self.dirty_cards.clear()
        self.dirty_accounts.clear()
        self.new_transfers, self.new_failures = [], []
        self.new_transactions, self.new_answers, self.new_notifications = [], [], []


class BatchView:
    """What a participant sees as ``ctx.uow`` inside a batch."""

    def __init__(self, registry: SqlRegistry, host: BatchHostStore, ledger: BatchLedger,
                 pricing: SqlPricingStore) -> None:
        # Pricing plans are read through the process cache, like the registry (read-only here).
        self.registry, self.host, self.ledger, self.pricing = registry, host, ledger, pricing

    @property
    def wallet(self) -> Any:
        """A wallet's trades and ledger chains are the database's alone (the host routes wallet
        requests past the batch; this is the safety net)."""
        raise NeedsDatabase("the wallet's trades")

    @property
    def connection(self) -> Any:
        raise NeedsDatabase("a savepoint of the database transaction")


class BatchHostStore:
    """`SqlHostStore`'s interface over a `HostBatch`; the reads it cannot serve raise `NeedsDatabase`."""

    def __init__(self, batch: HostBatch) -> None:
        self._b = batch

    def terminal_state(self, terminal_id: str, now: datetime) -> TerminalState:
        return self._b.terminal(terminal_id)

    def update_terminal_state(self, terminal_id: str, now: datetime, **values: Any) -> None:
        b = self._b
        b.set_item(b.terminals, terminal_id, replace(b.terminal(terminal_id), **values))
        b.mark(b.dirty_terminals, terminal_id)

    def card_state(self, card_id: str, now: datetime, pin_tries: int) -> CardState:
        return self._b.card(card_id, pin_tries)

    def update_card_state(self, card_id: str, now: datetime, **values: Any) -> None:
        b = self._b
        b.set_item(b.cards, card_id, replace(b.cards[card_id], **values))
        b.mark(b.dirty_cards, card_id)

    def answered(self, terminal_id: str, stan: str, transmission_dt: str) -> AnsweredMessage | None:
        identity = (terminal_id, stan, transmission_dt)
        if identity not in self._b.answers:
            self._b.load_answers([identity])
        return self._b.answers[identity]

    def record_answer(self, terminal_id: str, stan: str, transmission_dt: str, mti: str, fingerprint: str,
                      response: dict[str, str], now: datetime) -> None:
        b = self._b
        identity = (terminal_id, stan, transmission_dt)
        b.set_item(b.answers, identity, AnsweredMessage(mti, fingerprint, dict(response), response.get("39", "")))
        b.append(b.new_answers, {
            "terminal_id": terminal_id, "stan": stan, "transmission_dt": transmission_dt, "mti": mti,
            "fingerprint": fingerprint, "response_json": json.dumps(response, sort_keys=True),
            "response_code": response.get("39", ""), "created_at": now})

    def has_tombstone(self, terminal_id: str, stan: str, transmission_dt: str) -> bool:
        identity = (terminal_id, stan, transmission_dt)
        if identity not in self._b.tombstones:
            self._b.load_tombstones([identity])
        return self._b.tombstones[identity]

    def recent_count_for_card(self, card_id: str, since: datetime) -> int:
        b = self._b
        if card_id not in b.velocity_stored or b.velocity_since != since:
            b.load_velocity([card_id], since)
        return b.velocity_stored[card_id] + b.velocity_added.get(card_id, 0)

    def add_transaction(self, **values: Any) -> int:
        b = self._b
        transaction_id = b.next_transaction_id()
        row = {"refunded_minor": 0, "completed_minor": 0, **values, "id": transaction_id}
        b.append(b.new_transactions, row)
        card_id = values.get("card_id")
        if card_id is not None:  # created now: inside any velocity window that ends now
            b.set_item(b.velocity_added, card_id, b.velocity_added.get(card_id, 0) + 1)
        return transaction_id

    def add_notification(self, card_id: str, channel: str, recipient: str, text: str, reference: str,
                         now: datetime) -> None:
        self._b.append(self._b.new_notifications, {
            "card_id": card_id, "channel": channel, "recipient": recipient, "text": text,
            "reference": reference, "created_at": now})

    def __getattr__(self, name: str) -> Any:
        # transaction_by_identity, transaction_by_rrn, update_transaction, batch_totals,
        # add_tombstone, ...: the journal's past, which only the database holds.
        return _needs_database(SqlHostStore, name)


class BatchLedger:
    """`SqlLedger`'s interface over a `HostBatch`: single-phase and pending transfers
    between accounts locked by the batch; posting or voiding a hold needs the database."""

    def __init__(self, batch: HostBatch) -> None:
        self._b = batch

    def find_account_id(self, owner_ref: str, code: str, currency: str) -> int | None:
        return self._b._sql_ledger.find_account_id(owner_ref, code, currency)

    def get_account(self, account_id: int) -> Account | None:
        return self._b.account(account_id)

    def create_transfers(self, requests: Sequence[TransferRequest], now: datetime) -> list[TransferOutcome]:
        b = self._b
        if any(r.pending_id or r.kind in (TransferKind.POST_PENDING, TransferKind.VOID_PENDING) for r in requests):
            raise NeedsDatabase("ledger: a hold to post or void")
        if any(r.id in b.transfer_ids for r in requests):
            raise NeedsDatabase("ledger: a transfer id this batch already used")
        wanted = {i for r in requests for i in (r.debit_account_id, r.credit_account_id) if i is not None}
        b.lock_accounts(wanted)
        # Ids derive from the request's identity, whose first answer the duplicate check
        # found absent; a prior the database does hold fails the flush's unique key.
        plan = plan_transfers(requests, b.accounts, {}, {}, now)
        for account_id, balances in plan.account_balances.items():
            if limit_violated(b.accounts[account_id].flags, balances) is not None:
                raise LedgerInvariantError(f"plan breaks the limit flags of account {account_id}")
            b.set_item(b.accounts, account_id, replace(b.accounts[account_id], balances=balances))
            b.mark(b.dirty_accounts, account_id)
        for transfer in plan.new_transfers:
            b.append(b.new_transfers, transfer)
        for failure in plan.failures:
            b.append(b.new_failures, failure)
        for request in requests:
            b.mark(b.transfer_ids, request.id)
        return plan.outcomes

    def __getattr__(self, name: str) -> Any:
        return _needs_database(SqlLedger, name)


def _needs_database(store: type, name: str) -> Callable[..., Any]:
    """Stand-in for a method of ``store`` the batch cannot serve from memory."""
    if not hasattr(store, name):
        raise AttributeError(name)

    def needs_database(*args: object, **kwargs: object) -> Any:
        raise NeedsDatabase(f"{store.__name__}.{name}")

    return needs_database
