"""Credit pay (Huabei style) on the wallet: monthly bills, overdue interest, repayment,
early payoff of installment plans. The rules are `domain.creditpay`; this module keeps
bills in step with the ledger and posts every movement as ledger transfers:

- purchase (services.wallet): ``creditpay_principal`` -> merchant; a buyer-paid installment
  fee ``creditpay_charges`` -> ``wallet`` ``creditpay_fee_income`` at purchase;
- overdue interest: ``creditpay_charges`` -> ``wallet`` ``creditpay_interest_income``;
- repayment (balance or a linked card): source -> ``creditpay_charges`` (interest, fees)
  and source -> ``creditpay_principal`` (principal: the limit comes back);
- early payoff: balance -> ``creditpay_principal`` for the unbilled principal, and the
  unbilled buyer fees waived (``creditpay_fee_income`` -> ``creditpay_charges``).

Bills follow the ledger: a new bill never asks for more principal or fees than the ledger
says are still owed and unbilled, so refunds (credited to ``creditpay_principal``) and
prepayments shrink later bills by themselves; a refund larger than what is unbilled is a
statement credit on the open bills, oldest first.

Days are the wallet's local days (GMT+8, where its buyers live).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from paypos.adapters.db.uow import UnitOfWork
from paypos.domain import creditpay as rules
from paypos.domain.ledger import Balances, TransferRequest, TransferResult
from paypos.domain.wallet import WalletError, WalletUser
from paypos.services import wallet as wallet_service

_GMT8 = timezone(timedelta(hours=8))
OPEN, PAID, OVERDUE = "open", "paid", "overdue"


def local_day(now: datetime) -> date:
    return now.astimezone(_GMT8).date()


@dataclass
class _Bill:
    """A bill row with its breakdown (kept in ``lines_json``)."""

    id: int
    bill_date: date
    due_date: date
    currency: str
    lines: list[dict[str, Any]]
    principal: int
    fee: int
    minimum: int
    interest: int
    interest_through: date | None
    principal_paid: int = 0
    fee_paid: int = 0
    interest_paid: int = 0
    state: str = OPEN
    changed: bool = field(default=False, repr=False)

    @property
    def unpaid_principal(self) -> int:
        return self.principal - self.principal_paid

    @property
    def unpaid_fee(self) -> int:
        return self.fee - self.fee_paid

    @property
    def unpaid_interest(self) -> int:
        return self.interest - self.interest_paid

    @property
    def unpaid(self) -> int:
        return self.unpaid_principal + self.unpaid_fee + self.unpaid_interest

    def view(self) -> dict[str, Any]:
        return {"bill_id": self.id, "bill_date": self.bill_date.isoformat(), "due_date": self.due_date.isoformat(),
                "currency": self.currency, "amount_minor": self.principal + self.fee,
                "principal_minor": self.principal, "fee_minor": self.fee, "interest_minor": self.interest,
                "minimum_minor": self.minimum,
                "paid_minor": self.principal_paid + self.fee_paid + self.interest_paid,
                "unpaid_minor": self.unpaid, "state": self.state, "lines": self.lines}


# --- bills -----------------------------------------------------------------------------------


def bills(uow: UnitOfWork, now: datetime, user_id: str) -> dict[str, Any]:
    """The buyer's credit-pay account: bills (issuing any that are due and charging overdue
    interest up to today first), installment plans, owed and available amounts."""
    user = _user(uow, user_id)
    today = local_day(now)
    open_bills = _refresh(uow, now, user, today)
    all_bills = [_load(row) for row in uow.wallet.bills_of(user.user_id)]
    by_id = {b.id: b for b in open_bills}
    views = [by_id.get(b.id, b).view() for b in all_bills]
    return {"user_id": user.user_id, "currency": user.currency, "credit_limit_minor": user.credit_line_minor,
            "available_minor": wallet_service.available_credit(uow, user), "owed_minor": _owed(uow, user),
            "bills": views, "plans": _plans(uow, user, today)}


def _refresh(uow: UnitOfWork, now: datetime, user: WalletUser, today: date) -> list[_Bill]:
    """Issue due bills, apply statement credits, charge overdue interest; return the open bills."""
    uow.wallet.get_user(user.user_id, lock=True)  # one writer per buyer's credit account
    _issue_due_bills(uow, now, user, today)
    open_bills = [_load(row) for row in uow.wallet.bills_of(user.user_id) if row["state"] != PAID]
    _apply_statement_credit(uow, user, open_bills)
    for bill in open_bills:
        _charge_interest(uow, now, user, bill, today)
    for bill in open_bills:
        _settle_state(bill, today)
        _save(uow, bill)
    return [b for b in open_bills if b.state != PAID]


def _issue_due_bills(uow: UnitOfWork, now: datetime, user: WalletUser, today: date) -> None:
    purchases = uow.wallet.purchases_of(user.user_id)
    if not purchases:
        return
    first = min(p["posted_on"] for p in purchases)
    year, month = first.year, first.month
    credit_purchases = [_credit_purchase(p) for p in purchases]
    while (year, month) <= (today.year, today.month):
        cycle = rules.billing_cycle(year, month, bill_day=user.bill_day, due_day=user.due_day)
        if cycle.bill_date <= today and cycle.bill_date > first and uow.wallet.get_bill(user.user_id, cycle.bill_date) is None:
            _issue(uow, now, user, credit_purchases, year, month)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _issue(uow: UnitOfWork, now: datetime, user: WalletUser, purchases: list[rules.CreditPurchase],
           year: int, month: int) -> None:
    statement = rules.statement_for(purchases, currency=user.currency, year=year, month=month,
                                    bill_day=user.bill_day, due_day=user.due_day)
    open_bills = [_load(row) for row in uow.wallet.bills_of(user.user_id) if row["state"] != PAID]
    principal_billed = sum(b.unpaid_principal for b in open_bills)
    fees_billed = sum(b.unpaid_fee for b in open_bills)
    interest_unpaid = sum(b.unpaid_interest for b in open_bills)
    principal_left = max(0, _net_debit(uow, user, "creditpay_principal") - principal_billed)
    fees_left = max(0, _net_debit(uow, user, "creditpay_charges") - fees_billed - interest_unpaid)
    principal = min(statement.pay_in_full_minor + statement.installment_principal_minor, principal_left)
    fee = min(statement.installment_fee_minor, fees_left)
    if principal == 0 and fee == 0:
        return
    carried = sum(b.unpaid_principal + b.unpaid_fee for b in open_bills)
    installments = sum(line.total_minor for line in statement.lines if line.installment_no is not None)
    minimum = rules.minimum_payment(currency=user.currency,
                                    pay_in_full_minor=max(0, principal + fee - installments),
                                    installments_minor=min(installments, principal + fee),
                                    carried_over_minor=carried, overdue_interest_minor=interest_unpaid)
    lines = [{"trade_no": line.ref, "principal_minor": line.principal_minor, "fee_minor": line.fee_minor,
              "installment_no": line.installment_no, "installments": line.installments} for line in statement.lines]
    uow.wallet.add_bill({
        "user_id": user.user_id, "bill_date": statement.cycle.bill_date, "due_date": statement.cycle.due_date,
        "currency": user.currency, "amount_minor": principal + fee, "minimum_minor": minimum, "paid_minor": 0,
        "interest_minor": 0, "interest_through": None, "state": OPEN, "created_at": now,
        "lines_json": json.dumps({"lines": lines, "principal": principal, "fee": fee, "principal_paid": 0,
                                  "fee_paid": 0, "interest_paid": 0})})


def _apply_statement_credit(uow: UnitOfWork, user: WalletUser, open_bills: list[_Bill]) -> None:
    """Open bills never ask for more principal than the ledger says is owed (a refund)."""
    excess = sum(b.unpaid_principal for b in open_bills) - _net_debit(uow, user, "creditpay_principal")
    for bill in sorted(open_bills, key=lambda b: b.bill_date):
        if excess <= 0:
            break
        take = min(excess, bill.unpaid_principal)
        bill.principal_paid += take
        bill.changed = True
        excess -= take


def _charge_interest(uow: UnitOfWork, now: datetime, user: WalletUser, bill: _Bill, today: date) -> None:
    """Daily simple interest on a bill's unpaid principal and fees after its due date."""
    since = bill.interest_through or bill.due_date
    days = (today - since).days
    unpaid = bill.unpaid_principal + bill.unpaid_fee
    if days <= 0 or today <= bill.due_date:
        return
    interest = rules.overdue_interest(unpaid, days) if unpaid > 0 else 0
    if interest > 0:
        charges = _account(uow, user, "creditpay_charges")
        income = _wallet_account(uow, "creditpay_interest_income", user.currency)
        _post(uow, [TransferRequest(f"creditpay:interest:{bill.id}:{today.isoformat()}", charges, income, interest,
                                    user.currency, code="creditpay_interest")], now)
        bill.interest += interest
    bill.interest_through = today
    bill.changed = True


def _settle_state(bill: _Bill, today: date) -> None:
    state = PAID if bill.unpaid <= 0 else (OVERDUE if today > bill.due_date else OPEN)
    if state != bill.state:
        bill.state, bill.changed = state, True


# --- repayment and early payoff ------------------------------------------------------------------


def repay(uow: UnitOfWork, now: datetime, user_id: str, amount_minor: int, *, source: str = "balance",
          card_id: str | None = None, repayment_id: str) -> dict[str, Any]:
    """Repay: interest first, then the oldest bills (fees before principal), then principal
    not yet billed. Idempotent by ``repayment_id``; never more than is owed."""
    user = _user(uow, user_id)
    if not repayment_id or len(repayment_id) > 64:
        raise WalletError("invalid_repayment_id", "repayment_id is required (at most 64 characters)",
                          field="repayment_id")
    prior = uow.wallet.get_repayment(repayment_id)
    if prior is not None:
        if prior["user_id"] != user.user_id or prior["amount_minor"] != amount_minor or prior["source"] != source:
            raise WalletError("idempotency_mismatch", "repayment_id was used for another repayment",
                              field="repayment_id")
        return _repayment_view(uow, user, prior)
    if not isinstance(amount_minor, int) or amount_minor <= 0:
        raise WalletError("invalid_amount", "amount must be above zero", field="amount")
    today = local_day(now)
    open_bills = _refresh(uow, now, user, today)
    owed = _owed(uow, user)
    if owed <= 0:
        raise WalletError("nothing_owed", "there is nothing to repay", field="amount")
    if amount_minor > owed:
        raise WalletError("overpayment", f"you owe {owed} minor units; repay at most that", field="amount")
    dues = [rules.Due(str(b.id), b.due_date, b.unpaid_principal, b.unpaid_fee) for b in open_bills]
    allocation = rules.allocate_repayment(amount_minor, dues, interest_minor=sum(b.unpaid_interest for b in open_bills))
    prepaid = allocation.unapplied_minor
    unbilled_principal = _net_debit(uow, user, "creditpay_principal") - sum(b.unpaid_principal for b in open_bills)
    if prepaid > max(0, unbilled_principal):
        raise WalletError("overpayment", "that is more than you owe before unbilled fees are due", field="amount")
    to_charges = allocation.interest_paid_minor + allocation.fees_paid_minor
    to_principal = allocation.principal_paid_minor + prepaid
    source_account = _source(uow, user, source, card_id)
    base = f"creditpay:repay:{_digest(user.user_id, repayment_id)}"
    chain = []
    if to_charges:
        chain.append(TransferRequest(f"{base}:charges", source_account, _account(uow, user, "creditpay_charges"),
                                     to_charges, user.currency, code="creditpay_repayment", linked=bool(to_principal)))
    if to_principal:
        chain.append(TransferRequest(f"{base}:principal", source_account, _account(uow, user, "creditpay_principal"),
                                     to_principal, user.currency, code="creditpay_repayment"))
    _post(uow, chain, now)
    _apply_allocation(open_bills, allocation)
    for bill in open_bills:
        _settle_state(bill, today)
        _save(uow, bill)
    record = {"repayment_id": repayment_id, "user_id": user.user_id, "amount_minor": amount_minor,
              "currency": user.currency, "source": source, "card_id": card_id,
              "allocation_json": json.dumps({"interest_minor": allocation.interest_paid_minor,
                                             "fees_minor": allocation.fees_paid_minor,
                                             "principal_minor": allocation.principal_paid_minor,
                                             "unbilled_principal_minor": prepaid}),
              "created_at": now}
    uow.wallet.add_repayment(record)
    return _repayment_view(uow, user, record)


def _apply_allocation(open_bills: list[_Bill], allocation: rules.Allocation) -> None:
    interest = allocation.interest_paid_minor
    for bill in sorted(open_bills, key=lambda b: b.bill_date):
        take = min(interest, bill.unpaid_interest)
        bill.interest_paid += take
        interest -= take
        bill.changed = bill.changed or take > 0
    by_id = {str(b.id): b for b in open_bills}
    for paid in allocation.dues:
        bill = by_id[paid.ref]
        bill.fee_paid += paid.fee_paid_minor
        bill.principal_paid += paid.principal_paid_minor
        bill.changed = True


def payoff(uow: UnitOfWork, now: datetime, user_id: str, trade_no: str, *, source: str = "balance",
           card_id: str | None = None) -> dict[str, Any]:
    """Pay off an installment plan now: its unbilled principal from the source; its
    unbilled buyer fees waived. Installments already billed stay on their bills."""
    user = _user(uow, user_id)
    purchase = uow.wallet.get_purchase(trade_no)
    if purchase is None or purchase["user_id"] != user.user_id or purchase["installments"] <= 1:
        raise WalletError("plan_not_found", "no installment plan of yours for this trade", field="trade_no")
    if purchase["paid_off_on"] is not None:
        raise WalletError("plan_paid_off", "this plan is already paid off", field="trade_no")
    today = local_day(now)
    _refresh(uow, now, user, today)
    plan = _plan(purchase)
    billed = rules.installments_billed(purchase["posted_on"], today, bill_day=user.bill_day, months=plan.months)
    result = rules.early_payoff(plan, installments_billed=billed)
    unbilled_principal = max(0, _net_debit(uow, user, "creditpay_principal")
                             - sum(b.unpaid_principal for b in _open(uow, user)))
    principal = min(result.principal_minor, unbilled_principal)
    waived = min(result.fee_waived_minor, purchase["buyer_fee_minor"]) if purchase["fee_payer"] == "buyer" else 0
    base = f"creditpay:payoff:{trade_no}"
    chain = []
    if principal:
        chain.append(TransferRequest(f"{base}:principal", _source(uow, user, source, card_id),
                                     _account(uow, user, "creditpay_principal"), principal, user.currency,
                                     code="creditpay_payoff", linked=bool(waived)))
    if waived:
        chain.append(TransferRequest(f"{base}:waiver", _wallet_account(uow, "creditpay_fee_income", user.currency),
                                     _account(uow, user, "creditpay_charges"), waived, user.currency,
                                     code="creditpay_fee_waiver"))
    _post(uow, chain, now)
    uow.wallet.update_purchase(trade_no, paid_off_on=today)
    return {"trade_no": trade_no, "installments_left": result.installments_left, "principal_paid_minor": principal,
            "fee_waived_minor": waived, "owed_minor": _owed(uow, user),
            "available_minor": wallet_service.available_credit(uow, user)}


# --- helpers ---------------------------------------------------------------------------------------


def _plans(uow: UnitOfWork, user: WalletUser, today: date) -> list[dict[str, Any]]:
    rows = []
    for p in uow.wallet.purchases_of(user.user_id):
        if p["installments"] <= 1:
            continue
        billed = rules.installments_billed(p["posted_on"], today, bill_day=user.bill_day, months=p["installments"])
        rows.append({"trade_no": p["trade_no"], "principal_minor": p["principal_minor"],
                     "installments": p["installments"], "installments_billed": billed, "fee_payer": p["fee_payer"],
                     "buyer_fee_minor": p["buyer_fee_minor"], "merchant_fee_minor": p["merchant_fee_minor"],
                     "refunded_minor": p["refunded_minor"],
                     "paid_off_on": p["paid_off_on"].isoformat() if p["paid_off_on"] else None})
    return rows


def _plan(purchase: dict[str, Any]) -> rules.InstallmentPlan:
    return rules.installment_plan(purchase["principal_minor"], purchase["installments"],
                                  fee_payer=rules.FeePayer(purchase["fee_payer"]))


def _credit_purchase(purchase: dict[str, Any]) -> rules.CreditPurchase:
    plan = _plan(purchase) if purchase["installments"] > 1 else None
    return rules.CreditPurchase(purchase["trade_no"], purchase["posted_on"], purchase["principal_minor"], plan,
                                purchase["paid_off_on"])


def _load(row: dict[str, Any]) -> _Bill:
    data = json.loads(row["lines_json"])
    return _Bill(id=row["id"], bill_date=row["bill_date"], due_date=row["due_date"], currency=row["currency"],
                 lines=data["lines"], principal=data["principal"], fee=data["fee"], minimum=row["minimum_minor"],
                 interest=row["interest_minor"], interest_through=row["interest_through"],
                 principal_paid=data["principal_paid"], fee_paid=data["fee_paid"],
                 interest_paid=data["interest_paid"], state=row["state"])


def _save(uow: UnitOfWork, bill: _Bill) -> None:
    if not bill.changed:
        return
    uow.wallet.update_bill(
        bill.id, paid_minor=bill.principal_paid + bill.fee_paid + bill.interest_paid, interest_minor=bill.interest,
        interest_through=bill.interest_through, state=bill.state,
        lines_json=json.dumps({"lines": bill.lines, "principal": bill.principal, "fee": bill.fee,
                               "principal_paid": bill.principal_paid, "fee_paid": bill.fee_paid,
                               "interest_paid": bill.interest_paid}))
    bill.changed = False


def _open(uow: UnitOfWork, user: WalletUser) -> list[_Bill]:
    return [_load(row) for row in uow.wallet.bills_of(user.user_id) if row["state"] != PAID]


def _repayment_view(uow: UnitOfWork, user: WalletUser, record: dict[str, Any]) -> dict[str, Any]:
    return {"repayment_id": record["repayment_id"], "amount_minor": record["amount_minor"],
            "currency": record["currency"], "source": record["source"],
            "allocation": json.loads(record["allocation_json"]), "owed_minor": _owed(uow, user),
            "available_minor": wallet_service.available_credit(uow, user)}


def _user(uow: UnitOfWork, user_id: str) -> WalletUser:
    user = uow.wallet.get_user(user_id)
    if user is None:
        raise WalletError("user_not_found", f"no wallet user {user_id!r}", field="user")
    return user


def _balances(uow: UnitOfWork, user: WalletUser, code: str) -> Balances:
    account = uow.ledger.find_account(wallet_service.user_owner(user.user_id), code, user.currency)
    return account.balances if account else Balances()


def _net_debit(uow: UnitOfWork, user: WalletUser, code: str) -> int:
    b = _balances(uow, user, code)
    return b.debits_posted - b.credits_posted


def _owed(uow: UnitOfWork, user: WalletUser) -> int:
    return max(0, _net_debit(uow, user, "creditpay_principal")) + max(0, _net_debit(uow, user, "creditpay_charges"))


def _account(uow: UnitOfWork, user: WalletUser, code: str) -> int:
    account_id = uow.ledger.find_account_id(wallet_service.user_owner(user.user_id), code, user.currency)
    if account_id is None:
        raise WalletError("ACQ.SYSTEM_ERROR", f"ledger account {code} of {user.user_id} missing")
    return account_id


def _wallet_account(uow: UnitOfWork, code: str, alpha: str) -> int:
    account_id = uow.ledger.find_account_id(wallet_service.WALLET_OWNER, code, alpha)
    if account_id is None:
        raise WalletError("ACQ.SYSTEM_ERROR", f"ledger account wallet {code} {alpha} missing")
    return account_id


def _source(uow: UnitOfWork, user: WalletUser, source: str, card_id: str | None) -> int:
    if source == "balance":
        return _account(uow, user, "wallet_balance")
    if source == "card":
        return wallet_service._card_source(uow, user, card_id)
    raise WalletError("invalid_source", "source must be balance or card", field="source")


def _post(uow: UnitOfWork, chain: list[TransferRequest], now: datetime) -> None:
    if not chain:
        return
    for outcome in uow.ledger.create_transfers(chain, now):
        if outcome.result in (TransferResult.EXCEEDS_CREDITS, TransferResult.EXCEEDS_DEBITS):
            raise WalletError("insufficient_funds", "not enough funds in the repayment source", field="source")
        if not outcome.result.ok:
            raise WalletError("ACQ.SYSTEM_ERROR", f"ledger refused {outcome.id}: {outcome.result.value}")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]
