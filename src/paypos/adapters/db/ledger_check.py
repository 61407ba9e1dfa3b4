"""`paypos ledger check`: recompute the ledger from its journal and compare.

Rules checked (each violation names the account or transfer):
- ``currency``: every transfer's debit and credit accounts are in its currency;
- ``balanced``: per currency, total debits equal total credits (posted, and pending);
- ``stored-balance``: every account's stored balances equal the sums of its postings;
- ``limit-flag``: no account is past its debits/credits limit flag;
- ``hold-state``: every pending transfer has one hold state consistent with the
  transfers that resolved it;
- ``expired-hold``: no hold past its timeout is still pending.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import sqlalchemy as sa

from paypos.adapters.db.ledger import Violation
from paypos.adapters.db.schema import ledger_accounts, ledger_pending, ledger_transfers
from paypos.domain.ledger import AccountFlags, Balances, PendingState, TransferKind, limit_violated

_RESOLUTION = {
    TransferKind.POST_PENDING.value: PendingState.POSTED.value,
    TransferKind.VOID_PENDING.value: PendingState.VOIDED.value,
    TransferKind.EXPIRE_PENDING.value: PendingState.EXPIRED.value,
}


def check_ledger(db: sa.Connection, now: datetime) -> list[Violation]:
    accounts = {row.id: row for row in db.execute(sa.select(ledger_accounts).order_by(ledger_accounts.c.id))}
    violations = _check_currencies(db)
    violations += _check_balanced(accounts)
    violations += _check_stored_balances(db, accounts)
    violations += _check_limit_flags(accounts)
    violations += _check_holds(db, now)
    return violations


def _describe(row: sa.Row) -> str:
    return f"account {row.id} ({row.owner} {row.code} {row.currency})"


def _check_currencies(db: sa.Connection) -> list[Violation]:
    debit = ledger_accounts.alias("debit")
    credit = ledger_accounts.alias("credit")
    rows = db.execute(
        sa.select(ledger_transfers.c.id, ledger_transfers.c.currency, debit.c.currency, credit.c.currency)
        .join(debit, debit.c.id == ledger_transfers.c.debit_account_id)
        .join(credit, credit.c.id == ledger_transfers.c.credit_account_id)
        .where(
            sa.or_(
                debit.c.currency != ledger_transfers.c.currency,
                credit.c.currency != ledger_transfers.c.currency,
            )
        )
    )
    return [
        Violation("currency", f"transfer {tid}", f"transfer in {cur} between accounts in {dcur} and {ccur}")
        for tid, cur, dcur, ccur in rows
    ]


def _check_balanced(accounts: dict[int, sa.Row]) -> list[Violation]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in accounts.values():
        total = totals[row.currency]
        total[0] += row.debits_posted
        total[1] += row.credits_posted
        total[2] += row.debits_pending
        total[3] += row.credits_pending
    violations = []
    for currency, (dpo, cpo, dpe, cpe) in sorted(totals.items()):
        if dpo != cpo:
            violations.append(Violation("balanced", f"currency {currency}", f"posted debits {dpo} != credits {cpo}"))
        if dpe != cpe:
            violations.append(Violation("balanced", f"currency {currency}", f"pending debits {dpe} != credits {cpe}"))
    return violations


def _journal_sums(db: sa.Connection) -> dict[int, list[int]]:
    """Per account [debits_pending, debits_posted, credits_pending, credits_posted] from the journal."""
    sums: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    t = ledger_transfers
    posted_kinds = [TransferKind.SINGLE.value, TransferKind.POST_PENDING.value]
    for side, slot in ((t.c.debit_account_id, 1), (t.c.credit_account_id, 3)):
        for account_id, amount in db.execute(
            sa.select(side, sa.func.sum(t.c.amount)).where(t.c.kind.in_(posted_kinds)).group_by(side)
        ):
            sums[account_id][slot] = int(amount)
        held = (
            sa.select(side, sa.func.sum(t.c.amount))
            .join(ledger_pending, ledger_pending.c.transfer_id == t.c.id)
            .where(ledger_pending.c.state == PendingState.PENDING.value)
            .group_by(side)
        )
        for account_id, amount in db.execute(held):
            sums[account_id][slot - 1] = int(amount)
    return sums


def _check_stored_balances(db: sa.Connection, accounts: dict[int, sa.Row]) -> list[Violation]:
    sums = _journal_sums(db)
    names = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
    violations = []
    for account_id, row in accounts.items():
        expected = sums.get(account_id, [0, 0, 0, 0])
        for name, want in zip(names, expected):
            stored = getattr(row, name)
            if stored != want:
                violations.append(
                    Violation("stored-balance", _describe(row), f"{name} stored {stored}, journal says {want}")
                )
    return violations


def _check_limit_flags(accounts: dict[int, sa.Row]) -> list[Violation]:
    violations = []
    for row in accounts.values():
        balances = Balances(row.debits_pending, row.debits_posted, row.credits_pending, row.credits_posted)
        broken = limit_violated(AccountFlags(row.flags), balances)
        if broken is not None:
            violations.append(Violation("limit-flag", _describe(row), f"{broken.value}: {balances}"))
    return violations


def _check_holds(db: sa.Connection, now: datetime) -> list[Violation]:
    t = ledger_transfers
    holds = db.execute(
        sa.select(t.c.id, ledger_pending.c.state, ledger_pending.c.expires_at)
        .outerjoin(ledger_pending, ledger_pending.c.transfer_id == t.c.id)
        .where(t.c.kind == TransferKind.PENDING.value)
    ).all()
    resolutions: dict[str, list[str]] = defaultdict(list)
    for pending_id, kind in db.execute(sa.select(t.c.pending_id, t.c.kind).where(t.c.pending_id.is_not(None))):
        resolutions[pending_id].append(kind)
    violations = []
    for hold_id, state, expires_at in holds:
        subject = f"transfer {hold_id}"
        resolved = resolutions.get(hold_id, [])
        if state is None:
            violations.append(Violation("hold-state", subject, "pending transfer has no hold state"))
            continue
        expected = PendingState.PENDING.value if not resolved else _RESOLUTION.get(resolved[0])
        if len(resolved) > 1 or state != expected:
            violations.append(Violation("hold-state", subject, f"state {state} but resolved by {resolved or 'nothing'}"))
        if state == PendingState.PENDING.value and expires_at is not None and expires_at <= now:
            violations.append(Violation("expired-hold", subject, f"expired at {expires_at.isoformat()} but still pending"))
    return violations
