"""Pricing plans: create, assign, price a payment, bill a month (issue 7, docs/pricing.md).

Fees at authorization: :func:`fee_at` prices one payment from the plan in force for the
merchant at that instant (the newest assignment with ``effective_from <= at``; none, or a plan
in another currency: the built-in standard plan, 60 bps). The assignment history is read
through the process cache (``adapters.db.pricing``), so the host adds no statement per payment.

Billing (:func:`bill_month`) posts, each as one ledger transfer whose id is the charge's id
``bill:<merchant>:<YYYY-MM>:<item>`` (a second run answers ``exists``, never charges twice):

- ``monthly_fee``: the plan in force at the end of the month, merchant_available → fees_revenue;
- ``device_fee-a<n>``: a free device whose sales stayed under the threshold for the window
  after assignment ``n``, charged once the window has ended (month: the window's last month);
- ``buyout-a<n>``: the device price, once (month: the assignment's);
- ``deposit-a<n>``: taken when the plan is assigned, merchant_available → platform
  ``device_deposits``; ``deposit_return-a<n>``: back once sales reach the target within the
  window, once; ``deposit_kept-a<n>``: a target missed: device_deposits → fees_revenue.

A charge merchant_available cannot pay stays a ``pending`` row in ``pricing_charges`` (owed):
every billing run, and :func:`collect_outstanding` (settlement may call it after crediting
available funds), tries it again; :func:`outstanding_charges` lists them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from paypos.adapters.db.pricing import Assignment, Charge
from paypos.adapters.db.schema import ledger_accounts, ledger_transfers
from paypos.adapters.db.uow import UnitOfWork
from paypos.domain.ledger import AccountFlags, TransferRequest, TransferResult
from paypos.domain.pricing import (
    DeviceKind,
    PaymentMethod,
    PricingError,
    PricingPlan,
    fee_for,
    plan_to_json,
)
from paypos.services import audit

PLATFORM = "platform"
# Ledger transfers that count as a merchant's sales volume (device threshold, deposit target).
SALE_CODES = ("sale", "completion", "wallet_sale", "online_capture")
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
_FUNDS_REFUSED = {TransferResult.EXCEEDS_CREDITS, TransferResult.EXCEEDS_DEBITS}

__all__ = [
    "BillReport", "ConcurrentCharge", "PricingError", "assign", "bill_month", "collect_outstanding", "create_plan",
    "fee_at", "outstanding_charges", "plan_at", "quote", "sales_volume",
]


# --- plans and assignments ----------------------------------------------------------------


def create_plan(uow: UnitOfWork, plan: PricingPlan, now: datetime, actor: str) -> tuple[PricingPlan, bool]:
    """Store a plan (immutable). The same plan again is a no-op (``False``); another plan under
    an existing id is refused: create a new plan and assign it instead."""
    existing = uow.pricing.get_plan(plan.id)
    if existing is not None:
        if plan_to_json(existing) != plan_to_json(plan):
            raise PricingError(f"plan {plan.id!r} exists with other terms: plans are immutable, create a new id",
                               field="id")
        return existing, False
    uow.pricing.add_plan(plan, now)
    audit.record(uow, now, actor, "pricing_plan.create", "pricing_plan", plan.id, details=plan_to_json(plan))
    return plan, True


def assign(uow: UnitOfWork, merchant_id: str, plan_id: str, effective_from: datetime, now: datetime,
           actor: str) -> tuple[Assignment, bool]:
    """Put a merchant on a plan from ``effective_from`` (history kept). Idempotent: the same
    assignment again is a no-op (``False``); another plan at the same instant is refused.
    A deposit device model takes its deposit now (or records it owed)."""
    merchant = uow.registry.get_merchant(merchant_id)
    if merchant is None:
        raise PricingError(f"no merchant {merchant_id!r}", field="merchant")
    plan = uow.pricing.get_plan(plan_id)
    if plan is None:
        raise PricingError(f"no plan {plan_id!r}", field="plan")
    if plan.currency != merchant.currency:
        raise PricingError(f"plan {plan_id} is in {plan.currency}, merchant {merchant_id} in {merchant.currency}",
                           field="plan")
    if effective_from.tzinfo is None:
        raise PricingError("effective from: a time with a UTC offset", field="from")
    effective_from = effective_from.astimezone(UTC)
    if effective_from < now:
        raise PricingError("effective from is in the past: fees already charged never change", field="from")
    for existing in uow.pricing.assignments(merchant_id):
        if existing.effective_from == effective_from:
            if existing.plan_id != plan_id:
                raise PricingError(f"merchant {merchant_id} is already assigned plan {existing.plan_id} from "
                                   f"{_iso(effective_from)}", field="from")
            return existing, False
    assignment_id = uow.pricing.add_assignment(merchant_id, plan_id, effective_from, actor, now)
    audit.record(uow, now, actor, "pricing.assign", "merchant", merchant_id, merchant_id=merchant_id,
                 details={"plan_id": plan_id, "effective_from": _iso(effective_from)})
    assignment = next(a for a in uow.pricing.assignments(merchant_id) if a.id == assignment_id)
    if plan.device.kind is DeviceKind.DEPOSIT:
        _charge(uow, assignment, _month_of(effective_from), f"deposit-a{assignment.id}", plan.device.deposit_minor,
                plan.currency, "device_deposits", now, set())
    return assignment, True


def plan_at(uow: UnitOfWork, merchant_id: str, currency: str, at: datetime) -> PricingPlan:
    """The plan in force for a merchant at ``at`` (see ``SqlPricingStore.plan_at``)."""
    return uow.pricing.plan_at(merchant_id, currency, at)


def fee_at(uow: UnitOfWork, merchant_id: str, method: PaymentMethod, amount_minor: int, currency: str,
           at: datetime) -> int:
    """A payment's fee from the plan in force: what every payment path posts to fees_revenue."""
    return fee_for(plan_at(uow, merchant_id, currency, at), method, amount_minor, at)


def quote(uow: UnitOfWork, merchant_id: str, method: str, amount_minor: int, at: datetime) -> dict[str, Any]:
    merchant = uow.registry.get_merchant(merchant_id)
    if merchant is None:
        raise PricingError(f"no merchant {merchant_id!r}", field="merchant")
    try:
        chosen = PaymentMethod(method)
    except ValueError:
        raise PricingError(f"method: one of {', '.join(m.value for m in PaymentMethod)}", field="method") from None
    plan = plan_at(uow, merchant_id, merchant.currency, at)
    return {"merchant_id": merchant_id, "plan_id": plan.id, "method": chosen.value, "amount_minor": amount_minor,
            "currency": merchant.currency, "rate_bps": plan.rate_bps(chosen, at),
            "fee_minor": fee_for(plan, chosen, amount_minor, at), "at": _iso(at)}


# --- billing ------------------------------------------------------------------------------


@dataclass
class BillReport:
    month: str
    posted: list[dict[str, Any]] = field(default_factory=list)  # charged (or returned, waived) by this run
    pending: list[dict[str, Any]] = field(default_factory=list)  # owed: too little available
    changed: set[str] = field(default_factory=set)  # charge ids this run posted or waived

    def as_json(self) -> dict[str, Any]:
        return {"month": self.month, "posted": self.posted, "pending": self.pending}


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) in UTC of ``YYYY-MM``."""
    match = _MONTH.fullmatch(month or "")
    if not match:
        raise PricingError("month: YYYY-MM, e.g. 2026-12", field="month")
    year, number = int(match.group(1)), int(match.group(2))
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end


def bill_month(uow: UnitOfWork, month: str, now: datetime) -> BillReport:
    """Charge a month (see the module docstring). Running it again charges nothing twice; every
    run first retries the charges still owed."""
    start, end = month_bounds(month)
    if start > now:
        raise PricingError(f"month {month} has not begun", field="month")
    cutoff = min(end, now)
    report = BillReport(month)
    for charge in uow.pricing.charges(status="pending"):  # only merchant_available → ... can be owed
        _report(report, _retry(uow, charge, now, report.changed))
    by_merchant: dict[str, list[Assignment]] = {}
    for assignment in uow.pricing.assignments():
        by_merchant.setdefault(assignment.merchant_id, []).append(assignment)
    for merchant_id, assignments in by_merchant.items():
        for assignment in assignments:
            if assignment.effective_from <= cutoff:
                _bill_device(uow, report, assignment, cutoff, now)
        in_force = [a for a in assignments if a.effective_from < end and a.effective_from <= now]
        if in_force:
            plan = uow.pricing.get_plan(in_force[-1].plan_id)
            if plan is not None and plan.monthly_fee_minor:
                _report(report, _charge(uow, in_force[-1], month, "monthly_fee", plan.monthly_fee_minor,
                                        plan.currency, "fees_revenue", now, report.changed))
    return report


def _bill_device(uow: UnitOfWork, report: BillReport, assignment: Assignment, cutoff: datetime,
                 now: datetime) -> None:
    plan = uow.pricing.get_plan(assignment.plan_id)
    if plan is None or plan.device.kind is DeviceKind.NONE:
        return
    device, start, n = plan.device, assignment.effective_from, assignment.id
    window_end = start + timedelta(days=device.window_days)
    if device.kind is DeviceKind.BUYOUT:
        _report(report, _charge(uow, assignment, _month_of(start), f"buyout-a{n}", device.price_minor,
                                plan.currency, "fees_revenue", now, report.changed))
    elif device.kind is DeviceKind.FREE_WITH_THRESHOLD and window_end <= cutoff:
        if sales_volume(uow, assignment.merchant_id, plan.currency, start, window_end) < device.threshold_minor:
            _report(report, _charge(uow, assignment, _month_of(window_end - timedelta(microseconds=1)),
                                    f"device_fee-a{n}", device.device_fee_minor, plan.currency, "fees_revenue", now,
                                    report.changed))
    elif device.kind is DeviceKind.DEPOSIT:
        _settle_deposit(uow, report, assignment, plan, min(cutoff, window_end), window_end <= cutoff, now)


def _settle_deposit(uow: UnitOfWork, report: BillReport, assignment: Assignment, plan: PricingPlan,
                    until: datetime, window_over: bool, now: datetime) -> None:
    n, month = assignment.id, _month_of(assignment.effective_from)
    deposit = uow.pricing.get_charge(_charge_id(assignment.merchant_id, month, f"deposit-a{n}"))
    done = [uow.pricing.get_charge(_charge_id(assignment.merchant_id, month, f"{item}-a{n}"))
            for item in ("deposit_return", "deposit_kept")]
    if deposit is None or deposit.status == "waived" or any(done):
        return
    met = sales_volume(uow, assignment.merchant_id, plan.currency, assignment.effective_from,
                       until) >= plan.device.target_minor
    if not met and not window_over:
        return
    if deposit.status == "pending":  # never paid: nothing to return or keep, and no longer owed
        uow.pricing.mark(deposit.id, "waived", now)
        report.changed.add(deposit.id)
        _report(report, uow.pricing.get_charge(deposit.id))
        return
    accounts = _accounts(uow, assignment.merchant_id, plan.currency)
    item, debit, credit = ((f"deposit_return-a{n}", accounts["device_deposits"], accounts["merchant_available"])
                           if met else (f"deposit_kept-a{n}", accounts["device_deposits"], accounts["fees_revenue"]))
    charge_id = _charge_id(assignment.merchant_id, month, item)
    uow.pricing.add_charge(id=charge_id, merchant_id=assignment.merchant_id, month=month, item=item,
                           amount_minor=deposit.amount_minor, currency=plan.currency, status="pending",
                           created_at=now, posted_at=None)
    if _post(uow, charge_id, debit, credit, deposit.amount_minor, plan.currency, item, now):
        uow.pricing.mark(charge_id, "posted", now)
        report.changed.add(charge_id)
    _report(report, uow.pricing.get_charge(charge_id))


def sales_volume(uow: UnitOfWork, merchant_id: str, currency: str, start: datetime, end: datetime) -> int:
    """Sales into the merchant's pending or escrow account in [start, end) (transfer codes
    ``SALE_CODES``), less their reversals: the volume device thresholds and targets count."""
    owner = f"merchant:{merchant_id}"
    ids = list(uow.connection.execute(sa.select(ledger_accounts.c.id).where(
        ledger_accounts.c.owner_ref == owner, ledger_accounts.c.currency == currency,
        ledger_accounts.c.code.in_(("merchant_pending", "merchant_escrow")))).scalars())
    if not ids:
        return 0
    t = ledger_transfers
    in_window = sa.and_(t.c.created_at >= start, t.c.created_at < end)
    sales = uow.connection.execute(sa.select(sa.func.coalesce(sa.func.sum(t.c.amount), 0)).where(
        in_window, t.c.credit_account_id.in_(ids), t.c.code.in_(SALE_CODES))).scalar_one()
    reversed_ = uow.connection.execute(sa.select(sa.func.coalesce(sa.func.sum(t.c.amount), 0)).where(
        in_window, t.c.debit_account_id.in_(ids), t.c.code == "reversal")).scalar_one()
    return int(sales) - int(reversed_)


# --- charges ------------------------------------------------------------------------------


def outstanding_charges(uow: UnitOfWork, merchant_id: str, currency: str) -> list[Charge]:
    """Charges a merchant still owes (status ``pending``), oldest first — for settlement to net."""
    return uow.pricing.charges(merchant_id, status="pending", currency=currency)


def collect_outstanding(uow: UnitOfWork, merchant_id: str, currency: str, now: datetime) -> list[Charge]:
    """Try to post a merchant's owed charges from merchant_available now (oldest first, each
    whole or not at all); returns those still owed."""
    for charge in outstanding_charges(uow, merchant_id, currency):
        _retry(uow, charge, now, set())
    return outstanding_charges(uow, merchant_id, currency)


def charges_payable_from(uow: UnitOfWork, merchant_id: str, currency: str, available_minor: int,
                         now: datetime) -> list[TransferRequest]:
    """The owed charges (oldest first, each whole or not at all) that ``available_minor`` pays,
    as ledger transfers under the charges' own ids, and marked posted — for the settlement run,
    which posts them in its batch before the payout, in the same transaction (both or neither).
    Under its own id a charge can never be collected twice, by billing or by settlement."""
    moves: list[TransferRequest] = []
    for charge in outstanding_charges(uow, merchant_id, currency):
        if charge.item.startswith(("deposit_return-", "deposit_kept-")) or charge.amount_minor > available_minor:
            continue
        if uow.ledger.get_transfer(charge.id) is None:
            credit_code = "device_deposits" if charge.item.startswith("deposit-") else "fees_revenue"
            accounts = _accounts(uow, merchant_id, currency)
            moves.append(TransferRequest(charge.id, accounts["merchant_available"], accounts[credit_code],
                                         charge.amount_minor, currency, code=("pricing_" + charge.item.split("-")[0])[:32]))
            available_minor -= charge.amount_minor
        uow.pricing.mark(charge.id, "posted", now)
    return moves


def _charge(uow: UnitOfWork, assignment: Assignment, month: str, item: str, amount: int, currency: str,
            credit_code: str, now: datetime, changed: set[str]) -> Charge:
    """merchant_available → ``credit_code``, recorded first; owed (pending) when funds lack."""
    charge_id = _charge_id(assignment.merchant_id, month, item)
    existing = uow.pricing.get_charge(charge_id)
    if existing is not None:
        return existing
    uow.pricing.add_charge(id=charge_id, merchant_id=assignment.merchant_id, month=month, item=item,
                           amount_minor=amount, currency=currency, status="pending", created_at=now, posted_at=None)
    accounts = _accounts(uow, assignment.merchant_id, currency)
    if _post(uow, charge_id, accounts["merchant_available"], accounts[credit_code], amount, currency, item, now):
        uow.pricing.mark(charge_id, "posted", now)
        changed.add(charge_id)
    charge = uow.pricing.get_charge(charge_id)
    assert charge is not None  # noqa: S101 - just written in this transaction
    return charge


def _retry(uow: UnitOfWork, charge: Charge, now: datetime, changed: set[str]) -> Charge:
    if charge.item.startswith(("deposit_return-", "deposit_kept-")):  # from device_deposits: never owed
        raise RuntimeError(f"pricing charge {charge.id} cannot be pending")
    credit_code = "device_deposits" if charge.item.startswith("deposit-") else "fees_revenue"
    accounts = _accounts(uow, charge.merchant_id, charge.currency)
    if _post(uow, charge.id, accounts["merchant_available"], accounts[credit_code], charge.amount_minor,
             charge.currency, charge.item, now):
        uow.pricing.mark(charge.id, "posted", now)
        changed.add(charge.id)
    return uow.pricing.get_charge(charge.id) or charge


class ConcurrentCharge(RuntimeError):
    """merchant_available changed between the check and the posting: the run is rolled back
    (so the ledger does not remember the refusal) and can simply be run again."""


def _post(uow: UnitOfWork, transfer_id: str, debit: int, credit: int, amount: int, currency: str, item: str,
          now: datetime) -> bool:
    """True once posted (now or before); False, posting nothing, when the debit account lacks
    the funds. The balance is checked first: the ledger remembers a refused id forever, and a
    charge keeps its id until it is paid."""
    if uow.ledger.get_transfer(transfer_id) is None:
        account = uow.ledger.get_account(debit)
        if account is None:
            raise RuntimeError(f"pricing charge {transfer_id}: account {debit} missing")
        if account.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS and \
                account.balances.available_credit_balance < amount:
            return False
    code = "pricing_" + item.split("-")[0]
    [outcome] = uow.ledger.create_transfers([TransferRequest(transfer_id, debit, credit, amount, currency,
                                                             code=code[:32])], now)
    if outcome.result in _FUNDS_REFUSED:
        raise ConcurrentCharge(f"pricing charge {transfer_id}: merchant_available changed meanwhile, run again")
    if not outcome.result.ok:
        raise RuntimeError(f"ledger refused pricing charge {transfer_id}: {outcome.result.value}")
    return True


def _accounts(uow: UnitOfWork, merchant_id: str, currency: str) -> dict[str, int]:
    owner = f"merchant:{merchant_id}"
    return {
        "merchant_available": uow.ledger.open_account(owner, owner, "merchant_available", currency,
                                                      AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS).id,
        "fees_revenue": uow.ledger.open_account(PLATFORM, PLATFORM, "fees_revenue", currency).id,
        "device_deposits": uow.ledger.open_account(PLATFORM, PLATFORM, "device_deposits", currency).id,
    }


def _report(report: BillReport, charge: Charge | None) -> None:
    """Owed charges go to ``pending``; charges this run posted (or waived) to ``posted``;
    those an earlier run settled are left out (a second run reports nothing new)."""
    if charge is None:
        return
    row = _json(charge)
    if any(r["id"] == row["id"] for r in report.pending + report.posted):
        return
    if charge.status == "pending":
        report.pending.append(row)
    elif charge.id in report.changed:
        report.posted.append(row)


def charge_json(charge: Charge) -> dict[str, Any]:
    return _json(charge)


def _json(charge: Charge) -> dict[str, Any]:
    row = asdict(charge)
    row["created_at"] = _iso(charge.created_at)
    row["posted_at"] = _iso(charge.posted_at) if charge.posted_at else None
    return row


def _charge_id(merchant_id: str, month: str, item: str) -> str:
    return f"bill:{merchant_id}:{month}:{item}"


def _month_of(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
