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
- Journal rows named by a reversal (field 90) or a refund (field 37) are locked and
  loaded up front too, after the card states and before the accounts (the
  per-request path's order); their updates and new reversal tombstones are flushed
  with the rest.
- What the in-memory state cannot answer — a journal row the batch did not load or
  writes itself, batch totals, holds to post or void, a wallet's trades — raises `NeedsDatabase`:
  the request is undone and runs after the flush, on the plain stores, inside a
  savepoint of the same transaction. Wallet requests (0200 with field 22 = 03x,
  0600) go there without trying: the host knows their flow needs the database.
- The database's unique keys stay the last line: a twin on another process, or
  a transfer id seen before, fails the flush, the batch rolls back, and the host
  re-runs it one request per transaction (which reads the first outcome).
"""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.bulk import among, among_rows, among_rows_values, among_values, built, insert_rows, update_rows
from paypos.adapters.db.host import (
    AnsweredMessage,
    CardState,
    HostTransaction,
    SqlHostStore,
    TerminalState,
    answered_from_row,
    id_of_rrn,
)
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
    AccountFlags,
    Balances,
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


def _identity(table: sa.Table) -> tuple[sa.Column[Any], ...]:
    """A message's identity columns: terminal (41), STAN (11), transmission date-time (7)."""
    return (table.c.terminal_id, table.c.stan, table.c.transmission_dt)


class JournalIds:
    """Journal ids a host process draws from PostgreSQL's sequence a block at a time, so that
    a batch rarely spends a round trip on them (`limits.journal_ids_block`). Ids only need
    to be unique (an RRN is the id): one taken and never used, by a batch rolled back or a
    process stopped, is a gap, as with any sequence."""

    def __init__(self, block: int = limits.journal_ids_block) -> None:
        self._block = block
        self._free: collections.deque[int] = collections.deque()
        self._lock = threading.Lock()

    def take(self, db: sa.Connection, count: int) -> list[int]:
        with self._lock:
            if len(self._free) < count:
                more = max(self._block, count - len(self._free))
                self._free.extend(int(i) for i in db.execute(
                    sa.text("SELECT nextval(pg_get_serial_sequence('host_transactions', 'id')) "
                            "FROM generate_series(1, :n)"), {"n": more}).scalars())
            return [self._free.popleft() for _ in range(count)]


class HostBatch:
    def __init__(self, uow: UnitOfWork, now: datetime, journal_ids: JournalIds | None = None) -> None:
        self._uow = uow
        self._journal_ids = journal_ids or JournalIds(block=0)
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
        # Accounts with no limit flag (a merchant's pending, the platform's fees: every sale
        # credits them): nothing the batch decides depends on their balances, so they are not
        # locked up front. Their in-memory balances start at zero and add up the batch's
        # postings; the flush locks them last, briefly, and adds those sums to the stored ones.
        self.unlimited: set[int] = set()
        self.dirty_terminals: set[str] = set()
        self.dirty_cards: set[str] = set()
        self.dirty_accounts: set[int] = set()
        self.new_answers: list[dict[str, Any]] = []
        self.new_transactions: list[dict[str, Any]] = []
        self.new_notifications: list[dict[str, Any]] = []
        self.new_transfers: list[Transfer] = []
        self.new_failures: list[Failure] = []
        self.transfer_ids: set[str] = set()
        # Journal rows named by this batch's reversals and refunds (field 90 / field 37),
        # locked and loaded up front; None: looked for and absent.
        self.originals: dict[int, HostTransaction] = {}
        self.original_by_identity: dict[Identity, int | None] = {}
        self.original_ids_loaded: set[int] = set()
        self.original_updates: dict[int, dict[str, Any]] = {}
        self.new_tombstones: list[dict[str, Any]] = []
        # What this batch journals: a request naming one of these runs after the flush.
        self.new_identities: set[Identity] = set()
        self.new_ids: set[int] = set()
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
        query = built(self._db, "batch.terminal_states", lambda d: sa.select(terminal_state).where(
            among(d, terminal_state.c.terminal_id, "ids")).order_by(terminal_state.c.terminal_id).with_for_update())
        for row in self._db.execute(query, among_values("ids", wanted)):
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
        query = built(self._db, "batch.card_states", lambda d: sa.select(issuer_card_state).where(
            among(d, issuer_card_state.c.card_id, "ids")).order_by(issuer_card_state.c.card_id).with_for_update())
        for row in self._db.execute(query, among_values("ids", wanted)):
            self.cards[row.card_id] = CardState(row.card_id, row.atc_last, row.pin_tries_left)
        missing = [CardState(cid, -1, pin_tries) for cid in wanted if cid not in self.cards]
        insert_rows(self._db, issuer_card_state, [
            {"card_id": s.card_id, "atc_last": s.atc_last, "pin_tries_left": s.pin_tries_left,
             "updated_at": self.now} for s in missing])
        self.cards.update((s.card_id, s) for s in missing)

    def lock_accounts(self, account_ids: Iterable[int]) -> None:
        """Lock and read the accounts that carry a limit flag; hold the others (see
        ``unlimited``) at zero, to be added to the stored balances by the flush."""
        wanted = set(account_ids) - set(self.accounts)
        if not wanted:
            return
        shapes = self._sql_ledger.account_shapes(wanted)
        unlimited = {i for i, shape in shapes.items() if shape.flags == AccountFlags.NONE}
        self.accounts.update(self._sql_ledger.lock_accounts(wanted - unlimited))
        self.accounts.update((i, shapes[i]) for i in unlimited)
        self.unlimited |= unlimited

    def load_answers_and_tombstones(self, identities: Iterable[Identity]) -> None:
        """The recorded answers and reversal tombstones of these identities (41, 11, 7) the
        batch does not hold yet, in one statement (a UNION ALL): one round trip per batch, on
        the path every request takes."""
        identities = set(identities)
        wanted_answers = [i for i in identities if i not in self.answers]
        wanted_tombstones = [i for i in identities if i not in self.tombstones]
        if not wanted_answers and not wanted_tombstones:
            return
        m, t = iso_messages, reversal_tombstones

        def build(d: str) -> Any:
            answers = sa.select(sa.literal("answer").label("kind"), *_identity(m),
                                m.c.mti, m.c.fingerprint, m.c.response_json, m.c.response_code).where(
                among_rows(d, _identity(m), "answers"))
            tombstones = sa.select(sa.literal("tombstone"), *_identity(t),
                                   sa.null(), sa.null(), sa.null(), sa.null()).where(
                among_rows(d, _identity(t), "tombstones"))
            return sa.union_all(answers, tombstones)

        for identity in wanted_answers:
            self.answers[identity] = None
        for identity in wanted_tombstones:
            self.tombstones[identity] = False
        params = {**among_rows_values(self._db, "answers", wanted_answers, 3),
                  **among_rows_values(self._db, "tombstones", wanted_tombstones, 3)}
        for row in self._db.execute(built(self._db, "batch.answers_and_tombstones", build), params):
            identity = (row.terminal_id, row.stan, row.transmission_dt)
            if row.kind == "tombstone":
                self.tombstones[identity] = True
            else:
                self.answers[identity] = answered_from_row(row)

    def load_originals(self, identities: Iterable[Identity], ids: Iterable[int]) -> None:
        """Lock and load the journal rows named by identity (41, 11, 7 of field 90) or by id
        (an RRN in field 37), in id order like the per-request path's row locks."""
        wanted_identities = [i for i in set(identities) if i not in self.original_by_identity]
        wanted_ids = [i for i in set(ids) if i not in self.original_ids_loaded and i >= 0]
        if not wanted_identities and not wanted_ids:
            return
        t = host_transactions

        def build(d: str) -> Any:
            by_identity = sa.select(t.c.id).where(among_rows(d, _identity(t), "keys"))
            by_id = sa.select(t.c.id).where(among(d, t.c.id, "ids"))
            # The ids as a UNION: an OR of the two would scan the whole journal.
            return sa.select(t).where(t.c.id.in_(sa.union(by_identity, by_id))).order_by(t.c.id).with_for_update()

        for identity in wanted_identities:
            self.original_by_identity[identity] = None
        self.original_ids_loaded.update(wanted_ids)
        params = {**among_rows_values(self._db, "keys", wanted_identities, 3), **among_values("ids", wanted_ids)}
        for row in self._db.execute(built(self._db, "batch.originals", build), params):
            original = HostTransaction(**row._mapping)
            self.originals[original.id] = original
            self.original_ids_loaded.add(original.id)
            identity = (original.terminal_id, original.stan, original.transmission_dt)
            if self.original_by_identity.get(identity, _MISSING) is None:  # the first (lowest id) wins
                self.original_by_identity[identity] = original.id

    def load_velocity(self, card_ids: Iterable[str], since: datetime) -> None:
        if self.velocity_since is not None and self.velocity_since != since:
            raise NeedsDatabase("velocity window differs from the batch's")
        self.velocity_since = since
        wanted = sorted(set(card_ids) - set(self.velocity_stored))
        if not wanted:
            return
        t = host_transactions
        query = built(self._db, "batch.velocity", lambda d: sa.select(t.c.card_id, sa.func.count()).where(
            among(d, t.c.card_id, "ids"), t.c.created_at >= sa.bindparam("since", type_=t.c.created_at.type))
            .group_by(t.c.card_id))
        counts = {card_id: n for card_id, n in self._db.execute(query, {**among_values("ids", wanted), "since": since})}
        for card_id in wanted:
            self.velocity_stored[card_id] = int(counts.get(card_id, 0))

    def reserve_transaction_ids(self, count: int) -> None:
        """Journal ids taken up front, so a response can carry its RRN before the flush."""
        if count <= 0:
            return
        if self._db.dialect.name == "postgresql":
            self._free_ids.extend(self._journal_ids.take(self._db, count))
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
        """An account with its stored balances (one without a limit flag is not read by the
        batch: its balance is the database's)."""
        self.lock_accounts({account_id})
        if account_id in self.unlimited:
            raise NeedsDatabase("the balance of an account the batch does not lock")
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
        insert_rows(db, host_transactions, self.new_transactions)
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for transaction_id in sorted(self.original_updates):
            values = self.original_updates[transaction_id]
            by_columns.setdefault(tuple(sorted(values)), []).append({"id": transaction_id, **values})
        for rows in by_columns.values():
            update_rows(db, host_transactions, "id", rows)
        insert_rows(db, reversal_tombstones, self.new_tombstones)
        insert_rows(db, iso_messages, self.new_answers)
        insert_rows(db, issuer_notifications, self.new_notifications)
        # The ledger last: the unlimited accounts' row locks, taken here, are held only for
        # the rest of the flush and the commit, so other host processes' batches overlap.
        if self.new_transfers or self.new_failures or self.dirty_accounts:
            dirty = sorted(self.dirty_accounts)
            stored = self._sql_ledger.lock_accounts({i for i in dirty if i in self.unlimited})
            balances = {i: _plus(stored[i].balances, self.accounts[i].balances) if i in self.unlimited
                        else self.accounts[i].balances for i in dirty}
            plan = LedgerPlan(
                outcomes=[], new_transfers=self.new_transfers, account_balances=balances,
                pending_states={t.id: PendingState.PENDING for t in self.new_transfers
                                if t.kind is TransferKind.PENDING},
                failures=self.new_failures,
            )
            self._sql_ledger.apply_plan(plan, {**self.accounts, **stored}, self.now)
            for i in self.unlimited:  # written: the batch's sums start again from zero
                self.accounts[i] = self.accounts[i].with_balances(Balances(0, 0, 0, 0))
        self.dirty_terminals.clear()
        self.dirty_cards.clear()
        self.dirty_accounts.clear()
        self.new_transfers, self.new_failures = [], []
        self.new_transactions, self.new_answers, self.new_notifications = [], [], []
        self.original_updates, self.new_tombstones = {}, []


def _plus(stored: Balances, added: Balances) -> Balances:
    return Balances(stored.debits_pending + added.debits_pending, stored.debits_posted + added.debits_posted,
                    stored.credits_pending + added.credits_pending, stored.credits_posted + added.credits_posted)


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
            self._b.load_answers_and_tombstones([identity])
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
            self._b.load_answers_and_tombstones([identity])
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
        b.mark(b.new_ids, transaction_id)
        b.mark(b.new_identities, (values["terminal_id"], values["stan"], values["transmission_dt"]))
        card_id = values.get("card_id")
        if card_id is not None:  # created now: inside any velocity window that ends now
            b.set_item(b.velocity_added, card_id, b.velocity_added.get(card_id, 0) + 1)
        return transaction_id

    def transaction_by_identity(self, terminal_id: str, stan: str, transmission_dt: str) -> HostTransaction | None:
        b = self._b
        identity = (terminal_id, stan, transmission_dt)
        if identity in b.new_identities or identity not in b.original_by_identity:
            raise NeedsDatabase("a journal row this batch writes or did not load")
        transaction_id = b.original_by_identity[identity]
        return None if transaction_id is None else b.originals[transaction_id]

    def transaction_by_rrn(self, merchant_id: str, rrn: str) -> HostTransaction | None:
        b = self._b
        transaction_id = id_of_rrn(rrn)
        if transaction_id in b.new_ids or transaction_id not in b.original_ids_loaded:
            raise NeedsDatabase("a journal row this batch writes or did not load")
        original = b.originals.get(transaction_id)
        return original if original is not None and original.merchant_id == merchant_id else None

    def update_transaction(self, transaction_id: int, **values: Any) -> None:
        b = self._b
        if transaction_id not in b.originals:
            raise NeedsDatabase("updating a journal row the batch did not load")
        b.set_item(b.originals, transaction_id, replace(b.originals[transaction_id], **values))
        b.set_item(b.original_updates, transaction_id, {**b.original_updates.get(transaction_id, {}), **values})

    def add_tombstone(self, terminal_id: str, stan: str, transmission_dt: str, now: datetime) -> None:
        b = self._b
        if self.has_tombstone(terminal_id, stan, transmission_dt):
            return
        b.set_item(b.tombstones, (terminal_id, stan, transmission_dt), True)
        b.append(b.new_tombstones, {"terminal_id": terminal_id, "stan": stan, "transmission_dt": transmission_dt,
                                    "created_at": now})

    def add_notification(self, card_id: str, channel: str, recipient: str, text: str, reference: str,
                         now: datetime) -> None:
        self._b.append(self._b.new_notifications, {
            "card_id": card_id, "channel": channel, "recipient": recipient, "text": text,
            "reference": reference, "created_at": now})

    def __getattr__(self, name: str) -> Any:
        # batch_totals, transaction, ...: the journal's past, which only the database holds.
        return _needs_database(SqlHostStore, name)


class BatchLedger:
    """`SqlLedger`'s interface over a `HostBatch`: single-phase and pending transfers
    between accounts locked by the batch; posting or voiding a hold needs the database."""

    def __init__(self, batch: HostBatch) -> None:
        self._b = batch

    def find_account_id(self, owner_ref: str, code: str, currency: str) -> int | None:
        return self._b._sql_ledger.find_account_id(owner_ref, code, currency)

    def prime_account_ids(self, keys: Iterable[tuple[str, str, str]]) -> None:
        self._b._sql_ledger.prime_account_ids(keys)

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
            b.set_item(b.accounts, account_id, b.accounts[account_id].with_balances(balances))
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
