"""Consumer credit pay (Huabei style): the pure rules a credit-pay service applies.

No I/O and no clock: dates, amounts and rates come in, decisions and exact amounts go out.
Every amount is an ``int`` of minor units (CNY 12.30 is 1230); rates are integers in
basis points (1 bps = 0.01 %) or, for the daily overdue rate, parts per million.
``docs/creditpay.md`` documents every rule with worked examples.

- **Credit line** from a credit score 350-950 (:data:`CREDIT_LINE_TABLE`), available
  limit = line - outstanding principal; a purchase above it is declined.
- **Installments** of 3, 6 or 12 months at a total fee rate (:data:`INSTALLMENT_FEE_BPS`),
  paid by the buyer in monthly parts or by the merchant at purchase ("interest-free").
- **Bills**: a bill day and a due day each month, the minimum payment, daily overdue
  interest.
- **Repayment**: interest first, then the oldest amounts due; repaid principal restores
  the available limit. Early payoff of an installment plan waives its unbilled fees.
- **Merchant rates**: credit pay costs the merchant more than wallet balance.

Rounding, everywhere: a rate applied to an amount is rounded half up to the minor unit,
except the minimum payment's share of the revolving balance, which is rounded up.
Splitting an amount into parts puts the remainder on the first part.
"""

from __future__ import annotations

import calendar
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar

from paypos import limits
from paypos.domain.money import Currency, MoneyError
from paypos.domain.money import currency as lookup_currency
from paypos.protocol.errors import KeepsFields

__all__ = [
    "BILL_DAY_DEFAULT",
    "CREDIT_LINE_TABLE",
    "DECLINE_EXCEEDS_AVAILABLE_LIMIT",
    "DUE_DAY_DEFAULT",
    "INSTALLMENT_FEE_BPS",
    "INSTALLMENT_MONTHS",
    "MERCHANT_RATE_BPS",
    "MINIMUM_PAYMENT_BPS",
    "OVERDUE_DAILY_RATE_PPM",
    "SCORE_MAX",
    "SCORE_MIN",
    "Allocation",
    "BillingCycle",
    "CreditPayError",
    "CreditPayInvariantError",
    "CreditPurchase",
    "Due",
    "DuePayment",
    "EarlyPayoff",
    "FeePayer",
    "Funding",
    "Installment",
    "InstallmentPlan",
    "MerchantSettlement",
    "PurchaseDecision",
    "ScoreBand",
    "Statement",
    "StatementLine",
    "allocate_repayment",
    "available_limit",
    "billing_cycle",
    "check_purchase",
    "clamp_day",
    "credit_line_for_score",
    "days_overdue",
    "early_payoff",
    "fee_for",
    "installment_plan",
    "installments_billed",
    "merchant_settlement",
    "minimum_payment",
    "overdue_interest",
    "split_first_heavy",
    "statement_for",
]

BPS_PER_WHOLE = 10_000
PPM_PER_WHOLE = 1_000_000


class CreditPayError(KeepsFields, ValueError):
    """Input broke a credit-pay rule; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class CreditPayInvariantError(RuntimeError):
    """A computed or stored value broke an invariant: a programmer error, never bad input."""


class Funding(enum.StrEnum):
    """What pays a wallet purchase: the buyer's wallet balance or credit pay."""

    BALANCE = "balance"
    CREDIT = "credit"


class FeePayer(enum.StrEnum):
    """Who pays an installment plan's fee: the buyer monthly, or the merchant at purchase."""

    BUYER = "buyer"
    MERCHANT = "merchant"


# --- business tables ---------------------------------------------------------------------

SCORE_MIN = 350
SCORE_MAX = 950


@dataclass(frozen=True, slots=True)
class ScoreBand:
    """Scores ``score_min``..``score_max`` (inclusive) get a line of ``line_major`` major units."""

    score_min: int
    score_max: int
    line_major: int


# Credit line by score, in major units of the account's currency (CNY in the sandbox).
CREDIT_LINE_TABLE: tuple[ScoreBand, ...] = (
    ScoreBand(350, 549, 500),
    ScoreBand(550, 599, 1_000),
    ScoreBand(600, 649, 3_000),
    ScoreBand(650, 699, 8_000),
    ScoreBand(700, 749, 15_000),
    ScoreBand(750, 950, 30_000),
)
INSTALLMENT_MONTHS = (3, 6, 12)
# Total fee of a plan over its whole term, as a share of the amount (Huabei's rates).
INSTALLMENT_FEE_BPS: Mapping[int, int] = {3: 250, 6: 450, 12: 750}
# Merchant discount rate by funding: credit pay costs the merchant more than balance.
MERCHANT_RATE_BPS: Mapping[Funding, int] = {Funding.BALANCE: 60, Funding.CREDIT: 80}
# Minimum payment: 10 % of the revolving part of a bill (rounded up), plus the rest.
MINIMUM_PAYMENT_BPS = 1_000
# Overdue interest: 0.05 % of the unpaid amount per day (500 ppm), simple interest.
OVERDUE_DAILY_RATE_PPM = 500
BILL_DAY_DEFAULT = 1
DUE_DAY_DEFAULT = 10
# Days 28-31 can collapse onto a month's last day; the earlier of bill and due day must not.
_EARLIER_DAY_MAX = 27
DECLINE_EXCEEDS_AVAILABLE_LIMIT = "exceeds_available_limit"
_E = TypeVar("_E", bound=enum.Enum)


# --- checks --------------------------------------------------------------------------------


def _require_int(value: object, field: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise CreditPayError(f"must be an int from {low} to {high}", field=field)
    return value


def _require_amount(value: object, field: str, *, low: int = 0) -> int:
    """An int of minor units from ``low`` to the largest single transfer."""
    if isinstance(value, float):
        raise CreditPayError("must be an int of minor units, not a float", field=field)
    return _require_int(value, field, low, limits.transfer_amount_minor_max)


def _require_bps(value: object, field: str) -> int:
    return _require_int(value, field, 0, BPS_PER_WHOLE)


def _require_date(value: object, field: str) -> date:
    # A datetime is a date subclass, but does not compare with one: calendar days only.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise CreditPayError(f"must be a date, not {type(value).__name__}", field=field)
    return value


def _as_choice(kind: type[_E], value: object, field: str) -> _E:
    try:
        return kind(value)
    except ValueError as error:
        choices = ", ".join(str(member.value) for member in kind)
        raise CreditPayError(f"must be one of {choices}", field=field) from error


def _as_currency(value: Currency | str) -> Currency:
    if isinstance(value, Currency):
        return value
    try:
        return lookup_currency(value)
    except MoneyError as error:
        raise CreditPayError(str(error), field="currency") from error


# --- amounts and rates -----------------------------------------------------------------------


def fee_for(amount_minor: int, rate_bps: int) -> int:
    """``amount * rate_bps / 10000`` rounded half up to the minor unit, integers only.

    The same rule as :func:`paypos.domain.pricing.fee_minor`: 1001 at 250 bps is 25.025,
    so 25; 1002 is 25.05, so 25; 1020 is 25.5, so 26.
    """
    amount = _require_amount(amount_minor, "amount_minor")
    rate = _require_bps(rate_bps, "rate_bps")
    return (amount * rate + BPS_PER_WHOLE // 2) // BPS_PER_WHOLE


def split_first_heavy(total_minor: int, parts: int) -> tuple[int, ...]:
    """``total`` in ``parts`` equal parts, the remainder added to the FIRST part.

    100000 in 3 is (33334, 33333, 33333); the parts always sum to ``total`` exactly.
    """
    total = _require_amount(total_minor, "total_minor")
    count = _require_int(parts, "parts", 1, max(INSTALLMENT_MONTHS))
    base, remainder = divmod(total, count)
    return (base + remainder,) + (base,) * (count - 1)


def credit_line_for_score(
    score: int, currency: Currency | str, *, table: Sequence[ScoreBand] = CREDIT_LINE_TABLE
) -> int:
    """The credit line, in minor units of ``currency``, for a score of 350-950."""
    _require_int(score, "score", SCORE_MIN, SCORE_MAX)
    unit = 10 ** _as_currency(currency).exponent
    for band in table:
        if band.score_min <= score <= band.score_max:
            return band.line_major * unit
    raise CreditPayInvariantError(f"credit line table does not cover score {score}")


# --- installment plans -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Installment:
    """Month ``number`` (1-based) of a plan: a principal part and the buyer's fee part."""

    number: int
    principal_minor: int
    fee_minor: int

    @property
    def total_minor(self) -> int:
        return self.principal_minor + self.fee_minor


@dataclass(frozen=True, slots=True)
class InstallmentPlan:
    """A purchase of ``amount_minor`` split over ``months``; see :func:`installment_plan`.

    ``fee_minor`` is the plan's whole fee. When the buyer pays it, it is split over the
    installments like the principal; when the merchant pays it, every installment's fee
    part is 0 and the merchant's settlement is reduced by ``fee_minor`` at purchase.
    """

    amount_minor: int
    months: int
    fee_rate_bps: int
    fee_payer: FeePayer
    fee_minor: int
    installments: tuple[Installment, ...]

    def __post_init__(self) -> None:
        parts = self.installments
        if len(parts) != self.months or [p.number for p in parts] != list(range(1, self.months + 1)):
            raise CreditPayInvariantError("a plan has one installment per month, numbered from 1")
        if sum(p.principal_minor for p in parts) != self.amount_minor:
            raise CreditPayInvariantError("installment principal must sum to the amount")
        if sum(p.fee_minor for p in parts) != self.buyer_fee_minor:
            raise CreditPayInvariantError("installment fees must sum to the buyer's fee")
        if any(p.principal_minor < 1 or p.fee_minor < 0 for p in parts):
            raise CreditPayInvariantError("installment parts must be positive principal, fee >= 0")

    @property
    def buyer_fee_minor(self) -> int:
        return self.fee_minor if self.fee_payer is FeePayer.BUYER else 0

    @property
    def merchant_fee_minor(self) -> int:
        return self.fee_minor if self.fee_payer is FeePayer.MERCHANT else 0

    @property
    def buyer_total_minor(self) -> int:
        return self.amount_minor + self.buyer_fee_minor


def installment_plan(
    amount_minor: int,
    months: int,
    *,
    fee_payer: FeePayer = FeePayer.BUYER,
    fee_rates_bps: Mapping[int, int] = INSTALLMENT_FEE_BPS,
) -> InstallmentPlan:
    """Split a purchase over 3, 6 or 12 months.

    fee = ``fee_for(amount, fee_rates_bps[months])``; principal and (buyer-paid) fee are
    each split with :func:`split_first_heavy`. Each month needs at least one minor unit
    of principal, so ``amount_minor >= months``.
    """
    if type(months) is not int or months not in INSTALLMENT_MONTHS:
        raise CreditPayError(f"must be one of {INSTALLMENT_MONTHS}", field="months")
    amount = _require_amount(amount_minor, "amount_minor", low=months)
    payer = _as_choice(FeePayer, fee_payer, "fee_payer")
    if months not in fee_rates_bps:
        raise CreditPayError(f"no fee rate for {months} months", field="fee_rates_bps")
    rate = _require_bps(fee_rates_bps[months], "fee_rates_bps")
    fee = fee_for(amount, rate)
    buyer_fee = fee if payer is FeePayer.BUYER else 0
    principal_parts = split_first_heavy(amount, months)
    fee_parts = split_first_heavy(buyer_fee, months)
    installments = tuple(
        Installment(number, principal, part_fee)
        for number, (principal, part_fee) in enumerate(zip(principal_parts, fee_parts, strict=True), 1)
    )
    return InstallmentPlan(amount, months, rate, payer, fee, installments)


@dataclass(frozen=True, slots=True)
class MerchantSettlement:
    """What the merchant gets for a purchase: amount - discount - subsidised installment fee."""

    amount_minor: int
    merchant_rate_bps: int
    discount_minor: int
    installment_fee_minor: int
    net_minor: int


def merchant_settlement(
    amount_minor: int,
    funding: Funding,
    *,
    plan: InstallmentPlan | None = None,
    rates_bps: Mapping[Funding, int] = MERCHANT_RATE_BPS,
) -> MerchantSettlement:
    """The merchant's side of a purchase.

    discount = ``fee_for(amount, rates_bps[funding])``; an "interest-free" plan (fee paid
    by the merchant) also takes the plan's whole fee, at purchase. A plan needs credit
    funding and the purchase's amount.
    """
    amount = _require_amount(amount_minor, "amount_minor", low=1)
    source = _as_choice(Funding, funding, "funding")
    if plan is not None and (source is not Funding.CREDIT or plan.amount_minor != amount):
        raise CreditPayError("an installment plan needs credit funding and the same amount", field="plan")
    if source not in rates_bps:
        raise CreditPayError(f"no merchant rate for {source.value}", field="rates_bps")
    rate = _require_bps(rates_bps[source], "rates_bps")
    discount = fee_for(amount, rate)
    subsidy = plan.merchant_fee_minor if plan is not None else 0
    net = amount - discount - subsidy
    if net < 0:
        raise CreditPayError("discount and installment fee exceed the amount", field="rates_bps")
    return MerchantSettlement(amount, rate, discount, subsidy, net)


# --- availability ------------------------------------------------------------------------------


def available_limit(line_minor: int, outstanding_principal_minor: int) -> int:
    """line - outstanding principal, never below 0 (a line cut below the balance gives 0).

    Outstanding principal counts every purchase not yet repaid, an installment plan's
    whole unpaid principal included; fees and interest do not use the line.
    """
    line = _require_amount(line_minor, "line_minor")
    outstanding = _require_amount(outstanding_principal_minor, "outstanding_principal_minor")
    return max(0, line - outstanding)


@dataclass(frozen=True, slots=True)
class PurchaseDecision:
    """``approved``, or declined with ``reason``; ``available_minor`` before the purchase."""

    approved: bool
    available_minor: int
    reason: str | None = None


def check_purchase(
    amount_minor: int, *, line_minor: int, outstanding_principal_minor: int
) -> PurchaseDecision:
    """Approve a credit purchase of at most the available limit; decline anything above it."""
    amount = _require_amount(amount_minor, "amount_minor", low=1)
    available = available_limit(line_minor, outstanding_principal_minor)
    if amount > available:
        return PurchaseDecision(False, available, DECLINE_EXCEEDS_AVAILABLE_LIMIT)
    return PurchaseDecision(True, available)


# --- billing dates -----------------------------------------------------------------------------


def clamp_day(year: int, month: int, day: int) -> date:
    """``day`` (1-31) of the month, or the month's last day if it is shorter (Feb 31 -> 28/29)."""
    _require_int(year, "year", 1, 9999)
    _require_int(month, "month", 1, 12)
    _require_int(day, "day", 1, 31)
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _month_index(year: int, month: int) -> int:
    return year * 12 + month - 1


def _month_of(index: int) -> tuple[int, int]:
    year, month0 = divmod(index, 12)
    return year, month0 + 1


def _require_billing_days(bill_day: object, due_day: object) -> tuple[int, int]:
    bill = _require_int(bill_day, "bill_day", 1, 31)
    due = _require_int(due_day, "due_day", 1, 31)
    if bill == due:
        raise CreditPayError("must differ from bill_day", field="due_day")
    if min(bill, due) > _EARLIER_DAY_MAX:
        raise CreditPayError(
            f"the earlier of bill_day and due_day must be at most {_EARLIER_DAY_MAX}, or "
            "February's clamping could put the due date on a bill date",
            field="due_day",
        )
    return bill, due


@dataclass(frozen=True, slots=True)
class BillingCycle:
    """Purchases posted from ``start`` up to the day before ``bill_date`` are billed on it.

    ``start`` is the previous bill date; the bill is due on ``due_date``.
    """

    start: date
    bill_date: date
    due_date: date

    def covers(self, day: date) -> bool:
        return self.start <= day < self.bill_date


def billing_cycle(
    year: int, month: int, *, bill_day: int = BILL_DAY_DEFAULT, due_day: int = DUE_DAY_DEFAULT
) -> BillingCycle:
    """The cycle whose bill is issued in ``year``-``month``.

    bill date = ``bill_day`` of the month, due date = ``due_day`` of the same month if it
    is later than ``bill_day``, else of the next month; both clamped to the month's
    length. Bill day 1 / due day 10: the May cycle runs 1 April - 30 April, billed 1 May,
    due 10 May.
    """
    bill, due = _require_billing_days(bill_day, due_day)
    index = _month_index(_require_int(year, "year", 2, 9998), _require_int(month, "month", 1, 12))
    due_index = index if due > bill else index + 1
    return BillingCycle(
        start=clamp_day(*_month_of(index - 1), bill),
        bill_date=clamp_day(year, month, bill),
        due_date=clamp_day(*_month_of(due_index), due),
    )


def _first_bill_index(posted_on: date, bill_day: int) -> int:
    """Month index of the first bill after ``posted_on`` (a purchase on a bill date waits a month)."""
    index = _month_index(posted_on.year, posted_on.month)
    return index if posted_on < clamp_day(posted_on.year, posted_on.month, bill_day) else index + 1


def _last_bill_index(on: date, bill_day: int) -> int:
    """Month index of the last bill date on or before ``on``."""
    index = _month_index(on.year, on.month)
    return index if on >= clamp_day(on.year, on.month, bill_day) else index - 1


def installments_billed(posted_on: date, on: date, *, bill_day: int, months: int) -> int:
    """How many installments of a plan bought on ``posted_on`` are billed by ``on`` (inclusive)."""
    start = _require_date(posted_on, "posted_on")
    end = _require_date(on, "on")
    _require_int(bill_day, "bill_day", 1, 31)
    count = _last_bill_index(end, bill_day) - _first_bill_index(start, bill_day) + 1
    return min(max(count, 0), _require_int(months, "months", 1, max(INSTALLMENT_MONTHS)))


# --- statements --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreditPurchase:
    """A credit-pay purchase: paid in full on the next bill, or by ``plan``.

    ``paid_off_on`` is the day an installment plan was paid off early: installments not
    billed by then are never billed.
    """

    ref: str
    posted_on: date
    amount_minor: int
    plan: InstallmentPlan | None = None
    paid_off_on: date | None = None

    def __post_init__(self) -> None:
        _require_date(self.posted_on, "posted_on")
        _require_amount(self.amount_minor, "amount_minor", low=1)
        if self.plan is not None and self.plan.amount_minor != self.amount_minor:
            raise CreditPayError("plan amount must equal the purchase amount", field="plan")
        if self.paid_off_on is not None:
            if self.plan is None:
                raise CreditPayError("only an installment plan is paid off early", field="paid_off_on")
            if _require_date(self.paid_off_on, "paid_off_on") < self.posted_on:
                raise CreditPayError("must not be before posted_on", field="paid_off_on")


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One line of a bill: a purchase in full, or installment ``installment_no`` of ``installments``."""

    ref: str
    principal_minor: int
    fee_minor: int = 0
    installment_no: int | None = None
    installments: int | None = None

    @property
    def total_minor(self) -> int:
        return self.principal_minor + self.fee_minor


@dataclass(frozen=True, slots=True)
class Due:
    """An amount owed by ``due_on``: principal (restores the line when repaid) and fees."""

    ref: str
    due_on: date
    principal_minor: int
    fee_minor: int = 0

    def __post_init__(self) -> None:
        _require_date(self.due_on, "due_on")
        _require_amount(self.principal_minor, "principal_minor")
        _require_amount(self.fee_minor, "fee_minor")


@dataclass(frozen=True, slots=True)
class Statement:
    """A monthly bill. ``total_minor`` = new charges + carried over + overdue interest."""

    currency: Currency
    cycle: BillingCycle
    lines: tuple[StatementLine, ...]
    pay_in_full_minor: int
    installment_principal_minor: int
    installment_fee_minor: int
    carried_over_minor: int
    overdue_interest_minor: int
    total_minor: int
    minimum_payment_minor: int

    @property
    def new_charges_minor(self) -> int:
        return self.pay_in_full_minor + self.installment_principal_minor + self.installment_fee_minor

    def due(self, ref: str) -> Due:
        """This bill's new charges as a :class:`Due` (carried-over amounts keep their own)."""
        principal = self.pay_in_full_minor + self.installment_principal_minor
        return Due(ref, self.cycle.due_date, principal, self.installment_fee_minor)


def _lines_for(purchase: CreditPurchase, cycle: BillingCycle, bill_day: int) -> list[StatementLine]:
    plan = purchase.plan
    if plan is None:
        if not cycle.covers(purchase.posted_on):
            return []
        return [StatementLine(purchase.ref, purchase.amount_minor)]
    bill_index = _month_index(cycle.bill_date.year, cycle.bill_date.month)
    number = bill_index - _first_bill_index(purchase.posted_on, bill_day) + 1
    if not 1 <= number <= plan.months:
        return []
    if purchase.paid_off_on is not None and cycle.bill_date > purchase.paid_off_on:
        return []
    part = plan.installments[number - 1]
    return [StatementLine(purchase.ref, part.principal_minor, part.fee_minor, number, plan.months)]


def minimum_payment(
    *,
    currency: Currency | str,
    pay_in_full_minor: int,
    installments_minor: int = 0,
    carried_over_minor: int = 0,
    overdue_interest_minor: int = 0,
) -> int:
    """10 % of the revolving part (pay-in-full + carried over), rounded UP, plus every
    installment due and the overdue interest; at least ``min(total, 1 major unit)``."""
    unit = 10 ** _as_currency(currency).exponent
    revolving = _require_amount(pay_in_full_minor, "pay_in_full_minor") + _require_amount(
        carried_over_minor, "carried_over_minor"
    )
    fixed = _require_amount(installments_minor, "installments_minor") + _require_amount(
        overdue_interest_minor, "overdue_interest_minor"
    )
    share = -(-revolving * MINIMUM_PAYMENT_BPS // BPS_PER_WHOLE)
    total = revolving + fixed
    return max(share + fixed, min(total, unit))


def statement_for(
    purchases: Sequence[CreditPurchase],
    *,
    currency: Currency | str,
    year: int,
    month: int,
    bill_day: int = BILL_DAY_DEFAULT,
    due_day: int = DUE_DAY_DEFAULT,
    carried_over_minor: int = 0,
    overdue_interest_minor: int = 0,
) -> Statement:
    """The bill issued in ``year``-``month``: pay-in-full purchases posted in its cycle,
    each plan's installment due on it, and what earlier bills left unpaid.

    ``carried_over_minor`` is principal and fees of earlier bills still unpaid;
    ``overdue_interest_minor`` the interest accrued on them and not yet paid.
    """
    unit = _as_currency(currency)
    cycle = billing_cycle(year, month, bill_day=bill_day, due_day=due_day)
    if len(purchases) > limits.creditpay_statement_purchases_max:
        raise CreditPayError(
            f"at most {limits.creditpay_statement_purchases_max} purchases", field="purchases"
        )
    lines: list[StatementLine] = []
    for purchase in purchases:
        if not isinstance(purchase, CreditPurchase):
            raise CreditPayError("must be CreditPurchase values", field="purchases")
        lines.extend(_lines_for(purchase, cycle, bill_day))
    in_full = sum(line.principal_minor for line in lines if line.installment_no is None)
    principal = sum(line.principal_minor for line in lines if line.installment_no is not None)
    fees = sum(line.fee_minor for line in lines)
    carried = _require_amount(carried_over_minor, "carried_over_minor")
    interest = _require_amount(overdue_interest_minor, "overdue_interest_minor")
    minimum = minimum_payment(
        currency=unit,
        pay_in_full_minor=in_full,
        installments_minor=principal + fees,
        carried_over_minor=carried,
        overdue_interest_minor=interest,
    )
    total = in_full + principal + fees + carried + interest
    return Statement(unit, cycle, tuple(lines), in_full, principal, fees, carried, interest, total, minimum)


# --- overdue interest --------------------------------------------------------------------------


def days_overdue(due_date: date, today: date) -> int:
    """Days after the due date: 0 on the due date itself and before it."""
    return max(0, (_require_date(today, "today") - _require_date(due_date, "due_date")).days)


def overdue_interest(
    unpaid_minor: int, days: int, daily_rate_ppm: int = OVERDUE_DAILY_RATE_PPM
) -> int:
    """Simple interest ``unpaid * rate * days / 10**6``, rounded half up once for the period.

    The rate is parts per million a day (500 ppm = 0.05 % a day). Interest is charged on
    unpaid principal and fees, never on interest.
    """
    unpaid = _require_amount(unpaid_minor, "unpaid_minor")
    span = _require_int(days, "days", 0, limits.creditpay_overdue_days_max)
    rate = _require_int(daily_rate_ppm, "daily_rate_ppm", 0, PPM_PER_WHOLE)
    return (unpaid * rate * span + PPM_PER_WHOLE // 2) // PPM_PER_WHOLE


# --- repayment -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DuePayment:
    """What a repayment paid of the :class:`Due` named ``ref``."""

    ref: str
    fee_paid_minor: int
    principal_paid_minor: int


@dataclass(frozen=True, slots=True)
class Allocation:
    """How a repayment was applied; ``unapplied_minor`` is what exceeded everything owed."""

    payment_minor: int
    interest_paid_minor: int
    fees_paid_minor: int
    principal_paid_minor: int
    unapplied_minor: int
    dues: tuple[DuePayment, ...]

    def __post_init__(self) -> None:
        applied = self.interest_paid_minor + self.fees_paid_minor + self.principal_paid_minor
        if applied + self.unapplied_minor != self.payment_minor:
            raise CreditPayInvariantError("an allocation must account for the whole payment")

    @property
    def limit_restored_minor(self) -> int:
        """Repaid principal: the amount by which the available limit grows."""
        return self.principal_paid_minor


def allocate_repayment(
    payment_minor: int, dues: Sequence[Due], *, interest_minor: int = 0
) -> Allocation:
    """Apply a repayment (from wallet balance or a card alike): overdue interest first,
    then each :class:`Due` in order of ``due_on`` (oldest first, the current bill last;
    equal dates keep their given order), within a due its fee before its principal.

    ``dues`` in the result follow that order, one entry per due.
    """
    left = _require_amount(payment_minor, "payment_minor", low=1)
    if len(dues) > limits.creditpay_repayment_dues_max:
        raise CreditPayError(f"at most {limits.creditpay_repayment_dues_max} dues", field="dues")
    if not all(isinstance(due, Due) for due in dues):
        raise CreditPayError("must be Due values", field="dues")
    to_interest = min(left, _require_amount(interest_minor, "interest_minor"))
    left -= to_interest
    paid: list[DuePayment] = []
    for due in sorted(dues, key=lambda d: d.due_on):
        fee = min(left, due.fee_minor)
        principal = min(left - fee, due.principal_minor)
        left -= fee + principal
        paid.append(DuePayment(due.ref, fee, principal))
    fees = sum(p.fee_paid_minor for p in paid)
    principal_paid = sum(p.principal_paid_minor for p in paid)
    return Allocation(payment_minor, to_interest, fees, principal_paid, left, tuple(paid))


@dataclass(frozen=True, slots=True)
class EarlyPayoff:
    """Paying off a plan now: the unbilled principal is due; the unbilled fees are waived."""

    installments_left: int
    principal_minor: int
    fee_waived_minor: int

    @property
    def limit_restored_minor(self) -> int:
        return self.principal_minor


def early_payoff(plan: InstallmentPlan, *, installments_billed: int) -> EarlyPayoff:
    """Pay off ``plan`` after ``installments_billed`` of its installments were billed.

    Installments already billed stay on their bills. The rest is paid now: its principal,
    while its buyer fee parts are waived. A merchant-paid fee was taken at purchase and is
    not refunded.
    """
    if not isinstance(plan, InstallmentPlan):
        raise CreditPayError("must be an InstallmentPlan", field="plan")
    billed = _require_int(installments_billed, "installments_billed", 0, plan.months)
    rest = plan.installments[billed:]
    return EarlyPayoff(
        installments_left=len(rest),
        principal_minor=sum(part.principal_minor for part in rest),
        fee_waived_minor=sum(part.fee_minor for part in rest),
    )
