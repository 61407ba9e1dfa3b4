"""The ledger state machine (tests/ledger_machine.py) against the pure planner
with an in-memory store: many examples, fully shrunk on failure."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from hypothesis import HealthCheck, settings

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
from tests.ledger_machine import LedgerMachine


class MemoryBackend:
    def __init__(self) -> None:
        self.accounts: dict[int, Account] = {}
        self.holds: dict[str, PendingHold] = {}
        self.priors: dict[str, PriorOutcome] = {}

    def open(self, owner_ref: str, currency: str, flags: AccountFlags) -> int:
        account_id = len(self.accounts) + 1
        self.accounts[account_id] = Account(account_id, owner_ref, "test", "funds", currency, flags)
        return account_id

    def _apply(self, plan: LedgerPlan) -> None:
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
        self._apply(plan)
        return [o.result for o in plan.outcomes]

    def expire(self, clock) -> int:
        plan = plan_expiry(list(self.holds.values()), self.accounts, clock())
        self._apply(plan)
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


def test_random_ledger_histories_match_the_reference_model() -> None:
    LedgerMachine.backend = MemoryBackend()
    runner = LedgerMachine.TestCase
    runner.settings = settings(
        max_examples=300, stateful_step_count=40, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    runner().runTest()
