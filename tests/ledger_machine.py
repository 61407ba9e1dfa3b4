"""A hypothesis state machine for the ledger: random transfers, holds, posts,
voids, expiries, chains and replays, checked step by step against a small,
independent reference model. Run against the pure planner (tests/unit) and the
SQL ledger on SQLite and PostgreSQL (tests/integration)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy.engine import Engine

from paypos.adapters.db.ledger_check import check_ledger
from paypos.adapters.db.uow import UnitOfWork
from paypos.domain.ledger import (
    Account,
    AccountFlags,
    LedgerPlan,
    PendingHold,
    PendingState,
    PriorOutcome,
    TransferKind,
    TransferRequest,
    TransferResult,
    limit_violated,
    plan_expiry,
    plan_transfers,
)
from paypos.services import ledger as ledger_service

R = TransferResult
DMNEC = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
CMNED = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
FLAGS = [DMNEC, DMNEC, CMNED, AccountFlags.NONE, AccountFlags.NONE]


@dataclass
class RefAccount:
    flags: AccountFlags
    currency: str
    dp: int = 0
    dpo: int = 0
    cp: int = 0
    cpo: int = 0


@dataclass
class RefLedger:
    """The rules written the plain way, independently of paypos.domain.ledger."""

    accounts: dict[int, RefAccount] = field(default_factory=dict)
    seen: dict[str, tuple[str, TransferResult]] = field(default_factory=dict)  # id -> (fingerprint, result)
    holds: dict[str, dict] = field(default_factory=dict)

    def breaks_limits(self, a: RefAccount) -> TransferResult | None:
        if a.flags & DMNEC and a.dp + a.dpo > a.cpo:
            return R.EXCEEDS_CREDITS
        if a.flags & CMNED and a.cp + a.cpo > a.dpo:
            return R.EXCEEDS_DEBITS
        return None

    def apply_one(self, req: TransferRequest, now: datetime) -> TransferResult:
        if req.kind in (TransferKind.SINGLE, TransferKind.PENDING):
            d, c = self.accounts[req.debit_account_id], self.accounts[req.credit_account_id]
            if d.currency != req.currency or c.currency != req.currency:
                return R.CURRENCY_MISMATCH
            if req.kind is TransferKind.SINGLE:
                d.dpo += req.amount
                c.cpo += req.amount
            else:
                d.dp += req.amount
                c.cp += req.amount
                expires = now + timedelta(seconds=req.timeout_s) if req.timeout_s else None
                self.holds[req.id] = {"state": "pending", "amount": req.amount, "d": req.debit_account_id,
                                      "c": req.credit_account_id, "expires": expires}
            return self.breaks_limits(d) if self.breaks_limits(d) is R.EXCEEDS_CREDITS else (
                R.EXCEEDS_DEBITS if self.breaks_limits(c) is R.EXCEEDS_DEBITS else R.OK)
        hold = self.holds.get(req.pending_id)
        if hold is None:
            return R.PENDING_TRANSFER_NOT_FOUND
        if hold["state"] == "posted":
            return R.PENDING_TRANSFER_ALREADY_POSTED
        if hold["state"] == "voided":
            return R.PENDING_TRANSFER_ALREADY_VOIDED
        if hold["state"] == "expired" or (hold["expires"] is not None and hold["expires"] <= now):
            return R.PENDING_TRANSFER_EXPIRED
        amount = hold["amount"] if req.amount is None else req.amount
        if req.kind is TransferKind.POST_PENDING and amount > hold["amount"]:
            return R.EXCEEDS_PENDING_TRANSFER_AMOUNT
        d, c = self.accounts[hold["d"]], self.accounts[hold["c"]]
        d.dp -= hold["amount"]
        c.cp -= hold["amount"]
        if req.kind is TransferKind.POST_PENDING:
            d.dpo += amount
            c.cpo += amount
            hold["state"] = "posted"
        else:
            hold["state"] = "voided"
        return R.OK

    def apply_chain(self, chain: list[TransferRequest], now: datetime) -> list[TransferResult]:
        if all(r.id in self.seen for r in chain):
            return [R.EXISTS if self.seen[r.id][1] is R.OK else self.seen[r.id][1] for r in chain]
        import copy

        backup = copy.deepcopy((self.accounts, self.holds))
        for index, req in enumerate(chain):
            result = self.apply_one(req, now)
            if result is not R.OK:
                self.accounts, self.holds = backup
                results = [R.LINKED_EVENT_FAILED] * len(chain)
                results[index] = result
                for r, res in zip(chain, results):
                    self.seen[r.id] = (r.fingerprint(), res)
                return results
        for req in chain:
            self.seen[req.id] = (req.fingerprint(), R.OK)
        return [R.OK] * len(chain)

    def expire(self, now: datetime) -> int:
        count = 0
        for hold in self.holds.values():
            if hold["state"] == "pending" and hold["expires"] is not None and hold["expires"] <= now:
                self.accounts[hold["d"]].dp -= hold["amount"]
                self.accounts[hold["c"]].cp -= hold["amount"]
                hold["state"] = "expired"
                count += 1
        return count


class SqlBackend:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(self, owner_ref: str, currency: str, flags: AccountFlags) -> int:
        with UnitOfWork(self.engine) as uow:
            account = uow.ledger.open_account(owner_ref, "test", "funds", currency, flags)
            uow.commit()
        return account.id

    def create(self, chain: list[TransferRequest], clock) -> list[TransferResult]:
        return [o.result for o in ledger_service.create_transfers(self.engine, chain, clock)]

    def expire(self, clock) -> int:
        return ledger_service.expire_pending(self.engine, clock)

    def balances(self, account_id: int) -> tuple[int, int, int, int]:
        with UnitOfWork(self.engine, write=False) as uow:
            return uow.ledger.get_account(account_id).balances.values()

    def check(self, now: datetime) -> list:
        with UnitOfWork(self.engine, write=False) as uow:
            return check_ledger(uow.connection, now)


class LedgerMachine(RuleBasedStateMachine):
    backend: SqlBackend  # set by the test (any object with the SqlBackend methods)

    def __init__(self) -> None:
        super().__init__()
        self.ref = RefLedger()
        self.ids: list[int] = []
        self.requests: list[list[TransferRequest]] = []
        self.prefix = uuid.uuid4().hex[:8]
        self.counter = 0
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def clock(self) -> datetime:
        return self.now

    def new_id(self) -> str:
        self.counter += 1
        return f"{self.prefix}-{self.counter}"

    @initialize()
    def open_accounts(self) -> None:
        for index, flags in enumerate(FLAGS):
            currency = "USD" if index == len(FLAGS) - 1 else "CNY"
            account_id = self.backend.open(f"t:{self.prefix}:{index}", currency, flags)
            self.ids.append(account_id)
            self.ref.accounts[account_id] = RefAccount(flags, currency)
        # Fund the no-overdraft accounts and give the credit-limited one debits.
        source = self.ids[3]
        self.submit([TransferRequest(self.new_id(), source, self.ids[0], 500, "CNY", linked=True),
                     TransferRequest(self.new_id(), source, self.ids[1], 200, "CNY", linked=True),
                     TransferRequest(self.new_id(), self.ids[2], source, 300, "CNY")])

    def submit(self, batch: list[TransferRequest]) -> list[TransferResult]:
        got = self.backend.create(batch, self.clock)
        want: list[TransferResult] = []
        chain: list[TransferRequest] = []
        for request in batch:  # a batch is a run of chains, each ended by an unlinked event
            chain.append(request)
            if not request.linked:
                want += self.ref.apply_chain(chain, self.now)
                chain = []
        assert got == want, (batch, got, want)
        self.requests.append(batch)
        return got

    accounts_idx = st.integers(min_value=0, max_value=len(FLAGS) - 1)
    amounts = st.integers(min_value=1, max_value=400)

    pairs = st.tuples(accounts_idx, accounts_idx).filter(lambda p: p[0] != p[1])

    @rule(pair=pairs, amount=amounts, pending=st.booleans(), timeout=st.sampled_from([0, 60, 3600]))
    def transfer(self, pair: tuple[int, int], amount: int, pending: bool, timeout: int) -> None:
        d, c = pair
        kind = TransferKind.PENDING if pending else TransferKind.SINGLE
        currency = self.ref.accounts[self.ids[d]].currency
        self.submit([TransferRequest(self.new_id(), self.ids[d], self.ids[c], amount, currency, kind=kind,
                                     timeout_s=timeout if pending else 0)])

    @precondition(lambda self: self.ref.holds)
    @rule(data=st.data(), post=st.booleans(), partial=st.booleans())
    def resolve(self, data: st.DataObject, post: bool, partial: bool) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.ref.holds)))
        hold = self.ref.holds[hold_id]
        amount = None
        if post and partial:
            held = hold["amount"]
            amount = data.draw(st.sampled_from([held, held + 1]) | st.integers(min_value=1, max_value=held + 5))
        kind = TransferKind.POST_PENDING if post else TransferKind.VOID_PENDING
        self.submit([TransferRequest(self.new_id(), amount=amount, kind=kind, pending_id=hold_id)])

    @rule(first=accounts_idx, amount=amounts, size=st.integers(min_value=2, max_value=3))
    def chain(self, first: int, amount: int, size: int) -> None:
        chain = []
        for step in range(size):
            d, c = self.ids[(first + step) % 4], self.ids[(first + step + 1) % 4]  # CNY accounts only
            chain.append(TransferRequest(self.new_id(), d, c, amount, "CNY", linked=step < size - 1))
        self.submit(chain)

    @rule(pair=pairs, amount=amounts)
    def same_id_twice_in_one_batch(self, pair: tuple[int, int], amount: int) -> None:
        """The second copy is a replay of the first, whether the first succeeded or not."""
        d, c = pair
        currency = self.ref.accounts[self.ids[d]].currency
        request = TransferRequest(self.new_id(), self.ids[d], self.ids[c], amount, currency)
        self.submit([request, request])

    @precondition(lambda self: self.requests)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        """Any earlier batch sent again answers as the first time and changes nothing."""
        chain = data.draw(st.sampled_from(self.requests))
        self.submit(chain)

    @precondition(lambda self: any(len(c) == 1 for c in self.requests))
    @rule(data=st.data())
    def reuse_id_with_other_fields(self, data: st.DataObject) -> None:
        original = data.draw(st.sampled_from([c[0] for c in self.requests if len(c) == 1]))
        changed = TransferRequest(original.id, self.ids[0], self.ids[3], 1, "CNY", code="other")
        assert self.backend.create([changed], self.clock) == [R.ID_EXISTS_WITH_DIFFERENT_FIELDS]

    @rule(seconds=st.sampled_from([30, 61, 3601]))
    def time_passes_and_holds_expire(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)
        expired = self.backend.expire(self.clock)
        # Other examples' holds share the database: count ours only.
        assert expired >= self.ref.expire(self.now)

    @invariant()
    def balances_match_the_reference(self) -> None:
        if not self.ids:
            return
        for account_id in self.ids:
            want = self.ref.accounts[account_id]
            assert self.backend.balances(account_id) == (want.dp, want.dpo, want.cp, want.cpo)
            assert self.ref.breaks_limits(want) is None

    def teardown(self) -> None:
        if self.ids:
            self.now += timedelta(days=1)
            self.backend.expire(self.clock)
            assert self.backend.check(self.now) == []


class MemoryBackend:
    """The pure planner over dicts: the in-memory twin of the SQL ledger."""

    def __init__(self) -> None:
        self.accounts: dict[int, Account] = {}
        self.holds: dict[str, PendingHold] = {}
        self.priors: dict[str, PriorOutcome] = {}

    def open(self, owner_ref: str, currency: str, flags: AccountFlags) -> int:
        account_id = len(self.accounts) + 1
        self.accounts[account_id] = Account(account_id, owner_ref, "test", "funds", currency, flags)
        return account_id

    def apply(self, plan: LedgerPlan) -> None:
        for account_id, balances in plan.account_balances.items():
            self.accounts[account_id] = replace(self.accounts[account_id], balances=balances)
        for transfer in plan.new_transfers:
            self.priors[transfer.id] = PriorOutcome(transfer.fingerprint, TransferResult.OK, transfer)
            if transfer.kind is TransferKind.PENDING:
                self.holds[transfer.id] = PendingHold(transfer, PendingState.PENDING)
        for hold_id, state in plan.pending_states.items():
            self.holds[hold_id] = replace(self.holds[hold_id], state=state)
        for failure in plan.failures:
            self.priors[failure.id] = PriorOutcome(failure.fingerprint, failure.result)

    def create(self, chain: list[TransferRequest], clock) -> list[TransferResult]:
        plan = plan_transfers(chain, self.accounts, self.holds, self.priors, clock())
        self.apply(plan)
        return [o.result for o in plan.outcomes]

    def expire(self, clock) -> int:
        plan = plan_expiry(list(self.holds.values()), self.accounts, clock())
        self.apply(plan)
        return len(plan.new_transfers)

    def balances(self, account_id: int) -> tuple[int, int, int, int]:
        return self.accounts[account_id].balances.values()

    def check(self, now: datetime) -> list[str]:
        problems = [f"account {a.id}" for a in self.accounts.values() if limit_violated(a.flags, a.balances)]
        for currency in {a.currency for a in self.accounts.values()}:
            rows = [a.balances for a in self.accounts.values() if a.currency == currency]
            if sum(b.debits_posted for b in rows) != sum(b.credits_posted for b in rows):
                problems.append(f"{currency} posted unbalanced")
            if sum(b.debits_pending for b in rows) != sum(b.credits_pending for b in rows):
                problems.append(f"{currency} pending unbalanced")
        return problems
