"""paypos.domain.creditpay: credit lines, installment plans, bills, interest, repayment.

The worked examples are computed by hand in the comments (amounts in CNY minor units,
i.e. fen: 100000 is CNY 1,000.00); docs/creditpay.md walks through the same numbers.
"""

from dataclasses import replace
from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypos import limits
from paypos.domain.creditpay import (
    CREDIT_LINE_TABLE,
    DECLINE_EXCEEDS_AVAILABLE_LIMIT,
    INSTALLMENT_FEE_BPS,
    MERCHANT_RATE_BPS,
    SCORE_MAX,
    SCORE_MIN,
    CreditPayError,
    CreditPayInvariantError,
    CreditPurchase,
    Due,
    FeePayer,
    Funding,
    Installment,
    PurchaseDecision,
    allocate_repayment,
    available_limit,
    billing_cycle,
    check_purchase,
    clamp_day,
    credit_line_for_score,
    days_overdue,
    early_payoff,
    fee_for,
    installment_plan,
    installments_billed,
    merchant_settlement,
    minimum_payment,
    overdue_interest,
    split_first_heavy,
    statement_for,
)

AMOUNT_MAX = limits.transfer_amount_minor_max


def _raises(field, call, *args, **kwargs):
    with pytest.raises(CreditPayError) as error:
        call(*args, **kwargs)
    assert error.value.field == field
    return error.value


# --- credit line from the score ------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "line_minor"),
    [
        (350, 50_000),  # CNY 500.00
        (549, 50_000),
        (550, 100_000),  # CNY 1,000.00
        (599, 100_000),
        (600, 300_000),
        (649, 300_000),
        (650, 800_000),
        (699, 800_000),
        (700, 1_500_000),
        (749, 1_500_000),
        (750, 3_000_000),  # CNY 30,000.00
        (950, 3_000_000),
    ],
)
def test_credit_line_follows_the_score_table_at_every_band_edge(score, line_minor):
    assert credit_line_for_score(score, "CNY") == line_minor


def test_credit_line_is_in_the_currencys_minor_units():
    assert credit_line_for_score(700, "JPY") == 15_000  # exponent 0
    assert credit_line_for_score(700, "BHD") == 15_000_000  # exponent 3


def test_score_table_covers_350_to_950_without_gaps_and_never_lowers_the_line():
    assert CREDIT_LINE_TABLE[0].score_min == SCORE_MIN == 350
    assert CREDIT_LINE_TABLE[-1].score_max == SCORE_MAX == 950
    for lower, upper in zip(CREDIT_LINE_TABLE, CREDIT_LINE_TABLE[1:]):
        assert upper.score_min == lower.score_max + 1
        assert upper.line_major > lower.line_major


@pytest.mark.parametrize("score", [349, 951, 0, -700, True, 700.0, "700", None])
def test_credit_line_rejects_scores_outside_350_to_950(score):
    _raises("score", credit_line_for_score, score, "CNY")


@pytest.mark.parametrize("code", ["XXX", "XAU", "CN"])
def test_credit_line_rejects_unknown_currencies(code):
    _raises("currency", credit_line_for_score, 700, code)


def test_a_table_that_misses_a_score_is_a_programmer_error():
    with pytest.raises(CreditPayInvariantError):
        credit_line_for_score(700, "CNY", table=CREDIT_LINE_TABLE[:4])


# --- fee rounding and splitting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "bps", "fee"),
    [
        (100_000, 250, 2_500),  # 1000.00 x 2.5 % = 25.00
        (1_001, 250, 25),  # 25.025 -> 25
        (1_002, 250, 25),  # 25.05 -> 25
        (1_019, 250, 25),  # 25.475 -> 25
        (1_020, 250, 26),  # 25.5 exactly -> half up: 26
        (12_345, 750, 926),  # 925.875 -> 926
        (100, 50, 1),  # 0.5 -> 1
        (99, 50, 0),  # 0.495 -> 0
        (0, 750, 0),
        (AMOUNT_MAX, 10_000, AMOUNT_MAX),
    ],
)
def test_fee_is_rounded_half_up_to_the_minor_unit(amount, bps, fee):
    assert fee_for(amount, bps) == fee


@pytest.mark.parametrize(
    ("amount", "bps", "field"),
    [
        (-1, 250, "amount_minor"),
        (100.0, 250, "amount_minor"),
        ("100", 250, "amount_minor"),
        (AMOUNT_MAX + 1, 250, "amount_minor"),
        (100, -1, "rate_bps"),
        (100, 10_001, "rate_bps"),
        (100, 2.5, "rate_bps"),
    ],
)
def test_fee_rejects_bad_input(amount, bps, field):
    _raises(field, fee_for, amount, bps)


@given(amount=st.integers(0, AMOUNT_MAX), bps=st.integers(0, 10_000))
def test_fee_is_the_nearest_minor_unit_with_halves_rounded_up(amount, bps):
    fee = fee_for(amount, bps)
    exact_times_10000 = amount * bps
    # half up: fee - 1/2 <= exact < fee + 1/2, in integers scaled by 10000
    assert fee * 10_000 - 5_000 <= exact_times_10000 < fee * 10_000 + 5_000


@pytest.mark.parametrize(
    ("total", "parts", "split"),
    [
        (100_000, 3, (33_334, 33_333, 33_333)),  # 100000 = 3 x 33333 + 1
        (100_000, 6, (16_670, 16_666, 16_666, 16_666, 16_666, 16_666)),  # 6 x 16666 + 4
        (100, 12, (12,) + (8,) * 11),  # 12 x 8 + 4
        (2_500, 3, (834, 833, 833)),
        (0, 3, (0, 0, 0)),
        (7, 1, (7,)),
    ],
)
def test_split_puts_the_remainder_on_the_first_part(total, parts, split):
    assert split_first_heavy(total, parts) == split


@pytest.mark.parametrize(
    ("total", "parts", "field"), [(-1, 3, "total_minor"), (100, 0, "parts"), (100, 13, "parts")]
)
def test_split_rejects_bad_input(total, parts, field):
    _raises(field, split_first_heavy, total, parts)


# --- installment plans --------------------------------------------------------------------------


def test_fee_rates_are_the_documented_ones():
    assert dict(INSTALLMENT_FEE_BPS) == {3: 250, 6: 450, 12: 750}


def test_three_month_plan_paid_by_the_buyer():
    # CNY 1,000.00 over 3 months at 2.5 %: fee 25.00.
    # principal 100000 = 33334 + 33333 + 33333; fee 2500 = 834 + 833 + 833.
    plan = installment_plan(100_000, 3)
    assert plan.fee_minor == 2_500 and plan.fee_rate_bps == 250 and plan.fee_payer is FeePayer.BUYER
    assert plan.installments == (
        Installment(1, 33_334, 834),
        Installment(2, 33_333, 833),
        Installment(3, 33_333, 833),
    )
    assert [part.total_minor for part in plan.installments] == [34_168, 34_166, 34_166]
    assert plan.buyer_total_minor == 102_500 and plan.merchant_fee_minor == 0


def test_six_month_plan_splits_the_fee_evenly_when_it_divides():
    # CNY 6,000.00 at 4.5 %: fee 270.00 = 6 x 45.00; principal 6 x 1,000.00.
    plan = installment_plan(600_000, 6)
    assert plan.fee_minor == 27_000
    assert {(part.principal_minor, part.fee_minor) for part in plan.installments} == {(100_000, 4_500)}


def test_twelve_month_plan_with_an_awkward_amount():
    # CNY 123.45 at 7.5 %: 12345 x 750 / 10000 = 925.875 -> fee 926.
    # principal 12345 = 12 x 1028 + 9 -> 1037, then 11 x 1028;
    # fee 926 = 12 x 77 + 2 -> 79, then 11 x 77.
    plan = installment_plan(12_345, 12)
    assert plan.fee_minor == 926
    assert plan.installments[0] == Installment(1, 1_037, 79)
    assert all(part == Installment(part.number, 1_028, 77) for part in plan.installments[1:])


def test_interest_free_plan_charges_the_whole_fee_to_the_merchant():
    # CNY 3,000.00 over 12 months, merchant pays 7.5 % = 225.00 at purchase; the buyer
    # pays 12 x 250.00 and no fee.
    plan = installment_plan(300_000, 12, fee_payer=FeePayer.MERCHANT)
    assert plan.fee_minor == 22_500 and plan.merchant_fee_minor == 22_500
    assert plan.buyer_fee_minor == 0 and plan.buyer_total_minor == 300_000
    assert {(part.principal_minor, part.fee_minor) for part in plan.installments} == {(25_000, 0)}


def test_a_promotional_rate_table_can_be_passed_in():
    plan = installment_plan(100_000, 3, fee_rates_bps={3: 0, 6: 0, 12: 0})
    assert plan.fee_minor == 0 and plan.buyer_total_minor == 100_000


def test_fee_payer_may_be_given_by_name():
    assert installment_plan(100_000, 3, fee_payer="merchant").fee_payer is FeePayer.MERCHANT


@pytest.mark.parametrize(
    ("amount", "months", "kwargs", "field"),
    [
        (100_000, 4, {}, "months"),
        (100_000, 0, {}, "months"),
        (100_000, 24, {}, "months"),
        (100_000, "3", {}, "months"),
        (100_000, 3.0, {}, "months"),
        (100_000, True, {}, "months"),
        (-100, 3, {}, "amount_minor"),
        (0, 3, {}, "amount_minor"),
        (2, 3, {}, "amount_minor"),  # 2 fen cannot make 3 installments of at least 1 fen
        (11, 12, {}, "amount_minor"),
        (100.5, 3, {}, "amount_minor"),
        (100_000, 3, {"fee_payer": "bank"}, "fee_payer"),
        (100_000, 6, {"fee_rates_bps": {3: 250}}, "fee_rates_bps"),
        (100_000, 3, {"fee_rates_bps": {3: 10_001}}, "fee_rates_bps"),
    ],
)
def test_installment_plan_rejects_bad_input(amount, months, kwargs, field):
    _raises(field, installment_plan, amount, months, **kwargs)


def test_a_smallest_plan_has_one_minor_unit_a_month():
    assert [part.principal_minor for part in installment_plan(3, 3).installments] == [1, 1, 1]


@pytest.mark.parametrize(
    "broken",
    [
        {"amount_minor": 100_001},  # parts no longer sum to the amount
        {"fee_minor": 2_501},  # fee parts no longer sum to the fee
        {"months": 6},  # 3 installments for 6 months
        {"fee_payer": FeePayer.MERCHANT},  # buyer fee parts on a merchant-paid plan
    ],
)
def test_an_inconsistent_plan_is_a_programmer_error(broken):
    with pytest.raises(CreditPayInvariantError):
        replace(installment_plan(100_000, 3), **broken)


plans = st.builds(
    lambda months, extra, payer: installment_plan(months + extra, months, fee_payer=payer),
    st.sampled_from([3, 6, 12]),
    st.integers(0, AMOUNT_MAX - 12),
    st.sampled_from(list(FeePayer)),
)


@given(plan=plans)
def test_schedules_sum_exactly_and_only_the_first_part_carries_the_remainder(plan):
    principal = [part.principal_minor for part in plan.installments]
    fees = [part.fee_minor for part in plan.installments]
    assert sum(principal) == plan.amount_minor
    assert sum(fees) == plan.buyer_fee_minor
    assert plan.fee_minor == fee_for(plan.amount_minor, plan.fee_rate_bps)
    assert plan.buyer_fee_minor + plan.merchant_fee_minor == plan.fee_minor
    for parts in (principal, fees):
        assert len(set(parts[1:])) <= 1
        assert 0 <= parts[0] - parts[-1] < plan.months


# --- merchant settlement ---------------------------------------------------------------------------


def test_credit_pay_costs_the_merchant_more_than_balance():
    assert MERCHANT_RATE_BPS[Funding.CREDIT] > MERCHANT_RATE_BPS[Funding.BALANCE]


@pytest.mark.parametrize(
    ("funding", "plan", "discount", "subsidy", "net"),
    [
        (Funding.BALANCE, None, 600, 0, 99_400),  # 0.60 % of 1,000.00
        (Funding.CREDIT, None, 800, 0, 99_200),  # 0.80 %
        (Funding.CREDIT, installment_plan(100_000, 12), 800, 0, 99_200),  # buyer pays the fee
        # interest-free: 0.80 % + the plan's 7.5 % fee = 8.00 + 75.00
        (Funding.CREDIT, installment_plan(100_000, 12, fee_payer=FeePayer.MERCHANT), 800, 7_500, 91_700),
    ],
)
def test_merchant_settlement_worked_examples(funding, plan, discount, subsidy, net):
    settlement = merchant_settlement(100_000, funding, plan=plan)
    assert settlement.discount_minor == discount
    assert settlement.installment_fee_minor == subsidy
    assert settlement.net_minor == net == 100_000 - discount - subsidy


@pytest.mark.parametrize(
    ("amount", "funding", "kwargs", "field"),
    [
        (0, Funding.CREDIT, {}, "amount_minor"),
        (-100, Funding.CREDIT, {}, "amount_minor"),
        (100_000, "cash", {}, "funding"),
        (100_000, Funding.BALANCE, {"plan": installment_plan(100_000, 3)}, "plan"),
        (100_001, Funding.CREDIT, {"plan": installment_plan(100_000, 3)}, "plan"),
        (100_000, Funding.CREDIT, {"rates_bps": {Funding.BALANCE: 60}}, "rates_bps"),
        (
            100_000,
            Funding.CREDIT,
            {
                "rates_bps": {Funding.CREDIT: 9_500},  # 95 % + the plan's 7.5 % fee > the amount
                "plan": installment_plan(100_000, 12, fee_payer="merchant"),
            },
            "rates_bps",
        ),
    ],
)
def test_merchant_settlement_rejects_bad_input(amount, funding, kwargs, field):
    _raises(field, merchant_settlement, amount, funding, **kwargs)


# --- available limit ---------------------------------------------------------------------------------


def test_available_limit_is_the_line_less_the_outstanding_principal():
    # line CNY 3,000.00, outstanding 1,200.00 -> 1,800.00 available
    assert available_limit(300_000, 120_000) == 180_000
    assert available_limit(300_000, 0) == 300_000


def test_available_limit_never_goes_negative_when_the_line_is_cut():
    assert available_limit(50_000, 120_000) == 0


def test_a_purchase_up_to_the_available_limit_is_approved():
    decision = check_purchase(180_000, line_minor=300_000, outstanding_principal_minor=120_000)
    assert decision == PurchaseDecision(True, 180_000)
    assert decision.reason is None


def test_a_purchase_above_the_available_limit_is_declined_with_a_reason():
    decision = check_purchase(180_001, line_minor=300_000, outstanding_principal_minor=120_000)
    assert decision == PurchaseDecision(False, 180_000, DECLINE_EXCEEDS_AVAILABLE_LIMIT)
    assert decision.reason == "exceeds_available_limit"


@pytest.mark.parametrize(
    ("amount", "line", "outstanding", "field"),
    [
        (0, 300_000, 0, "amount_minor"),
        (-1, 300_000, 0, "amount_minor"),
        (1.5, 300_000, 0, "amount_minor"),
        (1, -1, 0, "line_minor"),
        (1, 300_000, -1, "outstanding_principal_minor"),
    ],
)
def test_check_purchase_rejects_bad_input(amount, line, outstanding, field):
    _raises(field, check_purchase, amount, line_minor=line, outstanding_principal_minor=outstanding)


@given(
    score=st.integers(SCORE_MIN, SCORE_MAX),
    events=st.lists(st.tuples(st.booleans(), st.integers(1, 5_000_000)), max_size=40),
)
def test_limit_never_goes_above_the_line_or_below_zero(score, events):
    # A random run of purchases (approved only when check_purchase says so) and repayments.
    line = credit_line_for_score(score, "CNY")
    outstanding = 0
    for is_purchase, amount in events:
        if is_purchase:
            if check_purchase(amount, line_minor=line, outstanding_principal_minor=outstanding).approved:
                outstanding += amount
        elif outstanding:
            due = Due("bill", date(2026, 5, 10), outstanding)
            outstanding -= allocate_repayment(amount, [due]).limit_restored_minor
        assert 0 <= outstanding <= line
        assert 0 <= available_limit(line, outstanding) <= line


# --- billing dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "month", "day", "expected"),
    [
        (2026, 2, 31, date(2026, 2, 28)),  # day 31 in February falls on its last day
        (2024, 2, 31, date(2024, 2, 29)),  # leap year
        (2026, 4, 31, date(2026, 4, 30)),
        (2026, 1, 31, date(2026, 1, 31)),
        (2026, 2, 1, date(2026, 2, 1)),
    ],
)
def test_clamp_day_moves_a_missing_day_to_the_months_last_day(year, month, day, expected):
    assert clamp_day(year, month, day) == expected


@pytest.mark.parametrize(
    ("year", "month", "day", "field"),
    [
        (2026, 2, 0, "day"),
        (2026, 2, 32, "day"),
        (2026, 13, 1, "month"),
        (2026, 0, 1, "month"),
        (0, 1, 1, "year"),
    ],
)
def test_clamp_day_rejects_days_no_month_has(year, month, day, field):
    _raises(field, clamp_day, year, month, day)


def test_default_cycle_bills_on_the_1st_and_is_due_on_the_10th():
    cycle = billing_cycle(2026, 5)
    assert cycle.start == date(2026, 4, 1)
    assert cycle.bill_date == date(2026, 5, 1)
    assert cycle.due_date == date(2026, 5, 10)
    assert cycle.covers(date(2026, 4, 1)) and cycle.covers(date(2026, 4, 30))
    assert not cycle.covers(date(2026, 5, 1)) and not cycle.covers(date(2026, 3, 31))


@pytest.mark.parametrize(
    ("year", "month", "bill_day", "due_day", "start", "bill", "due"),
    [
        # due day before bill day: due next month
        (2026, 1, 25, 5, date(2025, 12, 25), date(2026, 1, 25), date(2026, 2, 5)),
        # bill day 31 in February: billed on the 28th; the March cycle starts there
        (2026, 2, 31, 5, date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 5)),
        (2026, 3, 31, 5, date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 5)),
        # due day 31 in a leap February
        (2024, 2, 5, 31, date(2024, 1, 5), date(2024, 2, 5), date(2024, 2, 29)),
        (2026, 12, 20, 3, date(2026, 11, 20), date(2026, 12, 20), date(2027, 1, 3)),
    ],
)
def test_billing_cycle_clamps_bill_and_due_days_to_the_month(
    year, month, bill_day, due_day, start, bill, due
):
    cycle = billing_cycle(year, month, bill_day=bill_day, due_day=due_day)
    assert (cycle.start, cycle.bill_date, cycle.due_date) == (start, bill, due)


@pytest.mark.parametrize(
    ("bill_day", "due_day", "field"),
    [
        (0, 10, "bill_day"),
        (32, 10, "bill_day"),
        (1, 0, "due_day"),
        (1, 32, "due_day"),
        (10, 10, "due_day"),
        (28, 31, "due_day"),  # in February both fall on the 28th
        (31, 30, "due_day"),  # January 31 bill, due "February 30" = 28 = February's bill date
    ],
)
def test_billing_cycle_rejects_day_pairs_that_collide(bill_day, due_day, field):
    _raises(field, billing_cycle, 2026, 2, bill_day=bill_day, due_day=due_day)


VALID_DAY_PAIRS = [(b, d) for b in range(1, 32) for d in range(1, 32) if b != d and min(b, d) <= 27]


def test_every_accepted_day_pair_puts_the_due_date_between_two_bill_dates():
    # Every month of a common year, a leap year and the year after, for every accepted pair.
    for bill_day, due_day in VALID_DAY_PAIRS:
        for year in (2023, 2024, 2025):
            for month in range(1, 13):
                cycle = billing_cycle(year, month, bill_day=bill_day, due_day=due_day)
                after = billing_cycle(year + month // 12, month % 12 + 1, bill_day=bill_day, due_day=due_day)
                assert cycle.start < cycle.bill_date < cycle.due_date < after.bill_date
                assert after.start == cycle.bill_date  # cycles tile: no gap, no overlap


@pytest.mark.parametrize(
    ("posted_on", "on", "billed"),
    [
        (date(2026, 3, 15), date(2026, 3, 31), 0),
        (date(2026, 3, 15), date(2026, 4, 1), 1),  # first bill: 1 April
        (date(2026, 3, 15), date(2026, 4, 30), 1),
        (date(2026, 3, 15), date(2026, 5, 1), 2),
        (date(2026, 3, 15), date(2026, 6, 1), 3),
        (date(2026, 3, 15), date(2027, 1, 1), 3),  # a 3-month plan is fully billed
        (date(2026, 4, 1), date(2026, 4, 1), 0),  # bought on a bill date: first bill 1 May
        (date(2026, 4, 1), date(2026, 5, 1), 1),
    ],
)
def test_installments_billed_counts_bill_dates_after_the_purchase(posted_on, on, billed):
    assert installments_billed(posted_on, on, bill_day=1, months=3) == billed


def test_installments_billed_rejects_bad_input():
    _raises("on", installments_billed, date(2026, 3, 15), "2026-04-01", bill_day=1, months=3)
    _raises("bill_day", installments_billed, date(2026, 3, 15), date(2026, 4, 1), bill_day=0, months=3)
    _raises("months", installments_billed, date(2026, 3, 15), date(2026, 4, 1), bill_day=1, months=0)


# --- statements -----------------------------------------------------------------------------------------

PHONE = installment_plan(600_000, 6)  # 6 x (1,000.00 + 45.00 fee)
TV = installment_plan(300_000, 12, fee_payer=FeePayer.MERCHANT)  # 12 x 250.00, no fee
MAY_PURCHASES = [
    CreditPurchase("coffee", date(2026, 4, 3), 3_500),  # April cycle, in full
    CreditPurchase("groceries", date(2026, 4, 30), 12_345),  # last day of the cycle
    CreditPurchase("phone", date(2026, 3, 15), 600_000, PHONE),  # 2nd installment due in May
    CreditPurchase("tv", date(2026, 4, 20), 300_000, TV),  # 1st installment due in May
    CreditPurchase("shoes", date(2026, 5, 1), 8_000),  # bought on the bill date: June bill
    CreditPurchase("old", date(2026, 3, 31), 2_000),  # March cycle: April bill
    CreditPurchase("fridge", date(2026, 1, 10), 90_000, installment_plan(90_000, 3)),  # done in April
]


def test_statement_worked_example():
    # pay in full: 3500 + 12345 = 15845
    # installments: phone 2/6 = 100000 + 4500 fee; tv 1/12 = 25000 + 0 -> 125000 + 4500
    # total: 15845 + 125000 + 4500 = 145345 (CNY 1,453.45)
    # minimum: ceil(10 % of 15845 = 1584.5) = 1585, + 125000 + 4500 = 131085
    statement = statement_for(MAY_PURCHASES, currency="CNY", year=2026, month=5)
    assert [(line.ref, line.installment_no) for line in statement.lines] == [
        ("coffee", None),
        ("groceries", None),
        ("phone", 2),
        ("tv", 1),
    ]
    assert statement.pay_in_full_minor == 15_845
    assert (statement.installment_principal_minor, statement.installment_fee_minor) == (125_000, 4_500)
    assert statement.new_charges_minor == statement.total_minor == 145_345
    assert statement.minimum_payment_minor == 131_085
    assert statement.cycle.due_date == date(2026, 5, 10)


def test_statement_with_carried_over_balance_and_overdue_interest():
    # revolving: 15845 + 20000 carried = 35845; 10 % = 3584.5 -> 3585
    # minimum: 3585 + 129500 installments + 300 interest = 133385
    # total: 145345 + 20000 + 300 = 165645
    statement = statement_for(
        MAY_PURCHASES,
        currency="CNY",
        year=2026,
        month=5,
        carried_over_minor=20_000,
        overdue_interest_minor=300,
    )
    assert statement.total_minor == 165_645
    assert statement.minimum_payment_minor == 133_385
    assert statement.new_charges_minor == 145_345


def test_statement_due_holds_only_the_new_charges():
    statement = statement_for(MAY_PURCHASES, currency="CNY", year=2026, month=5, carried_over_minor=20_000)
    assert statement.due("bill-2026-05") == Due("bill-2026-05", date(2026, 5, 10), 15_845 + 125_000, 4_500)


def test_an_early_payoff_before_the_bill_drops_the_installment():
    paid_off = replace(MAY_PURCHASES[2], paid_off_on=date(2026, 4, 20))
    statement = statement_for([paid_off], currency="CNY", year=2026, month=5)
    assert statement.lines == () and statement.total_minor == 0 == statement.minimum_payment_minor


def test_an_early_payoff_on_the_bill_date_leaves_that_installment_billed():
    paid_off = replace(MAY_PURCHASES[2], paid_off_on=date(2026, 5, 1))
    statement = statement_for([paid_off], currency="CNY", year=2026, month=5)
    assert statement.installment_principal_minor == 100_000
    assert statement_for([paid_off], currency="CNY", year=2026, month=6).lines == ()


def test_statement_with_bill_day_31_in_february():
    purchases = [CreditPurchase("a", date(2026, 1, 31), 1_000), CreditPurchase("b", date(2026, 2, 28), 2_000)]
    february = statement_for(purchases, currency="CNY", year=2026, month=2, bill_day=31, due_day=10)
    march = statement_for(purchases, currency="CNY", year=2026, month=3, bill_day=31, due_day=10)
    assert [line.ref for line in february.lines] == ["a"]  # cycle 31 Jan - 27 Feb
    assert [line.ref for line in march.lines] == ["b"]  # cycle 28 Feb - 30 Mar
    assert february.cycle.due_date == date(2026, 3, 10)


@pytest.mark.parametrize(
    ("amount", "code", "minimum"),
    [
        (50, "CNY", 50),  # 0.50: 10 % is 5, but at least min(0.50, 1.00) = the whole 0.50
        (500, "CNY", 100),  # 5.00: 10 % is 0.50, at least 1.00
        (2_000, "CNY", 200),  # 20.00: 10 % is 2.00
        (7, "JPY", 1),  # 7 yen: 10 % rounds up to 1
        (1_234, "JPY", 124),  # 123.4 -> 124
    ],
)
def test_minimum_payment_is_ten_percent_but_at_least_one_major_unit(amount, code, minimum):
    purchases = [CreditPurchase("x", date(2026, 4, 3), amount)]
    statement = statement_for(purchases, currency=code, year=2026, month=5)
    assert statement.minimum_payment_minor == minimum


def test_an_empty_statement_owes_nothing():
    statement = statement_for([], currency="CNY", year=2026, month=5)
    assert (statement.total_minor, statement.minimum_payment_minor) == (0, 0)


@given(
    pay_in_full=st.integers(0, AMOUNT_MAX),
    installments=st.integers(0, AMOUNT_MAX),
    carried=st.integers(0, AMOUNT_MAX),
    interest=st.integers(0, AMOUNT_MAX),
    code=st.sampled_from(["CNY", "JPY", "BHD"]),
)
def test_minimum_never_exceeds_the_total_and_covers_what_must_be_paid(
    pay_in_full, installments, carried, interest, code
):
    total = pay_in_full + installments + carried + interest
    minimum = minimum_payment(
        currency=code,
        pay_in_full_minor=pay_in_full,
        installments_minor=installments,
        carried_over_minor=carried,
        overdue_interest_minor=interest,
    )
    assert minimum <= total
    assert minimum >= installments + interest
    assert minimum >= -(-(pay_in_full + carried) // 10) + installments + interest  # 10 %, rounded up
    assert minimum >= min(total, {"CNY": 100, "JPY": 1, "BHD": 1_000}[code])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"purchases": ["coffee"]}, "purchases"),
        ({"carried_over_minor": -1}, "carried_over_minor"),
        ({"overdue_interest_minor": -1}, "overdue_interest_minor"),
        ({"bill_day": 32}, "bill_day"),
        ({"month": 13}, "month"),
        ({"currency": "XXX"}, "currency"),
    ],
)
def test_statement_rejects_bad_input(kwargs, field):
    args = {"purchases": MAY_PURCHASES, "currency": "CNY", "year": 2026, "month": 5} | kwargs
    _raises(field, statement_for, args.pop("purchases"), **args)


def test_statement_refuses_more_purchases_than_the_limit():
    too_many = [CreditPurchase("x", date(2026, 4, 3), 1)] * (limits.creditpay_statement_purchases_max + 1)
    _raises("purchases", statement_for, too_many, currency="CNY", year=2026, month=5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"amount_minor": 0}, "amount_minor"),
        ({"amount_minor": -500}, "amount_minor"),
        ({"amount_minor": 12.5}, "amount_minor"),
        ({"posted_on": "2026-04-03"}, "posted_on"),
        ({"plan": installment_plan(1_000, 3)}, "plan"),  # plan for another amount
        ({"paid_off_on": date(2026, 4, 10)}, "paid_off_on"),  # a pay-in-full purchase
        # paid off before it was bought
        ({"plan": installment_plan(3_500, 3), "paid_off_on": date(2026, 4, 2)}, "paid_off_on"),
    ],
)
def test_credit_purchase_rejects_bad_input(kwargs, field):
    args = {"ref": "coffee", "posted_on": date(2026, 4, 3), "amount_minor": 3_500} | kwargs
    _raises(field, CreditPurchase, **args)


# --- overdue interest ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unpaid", "days", "interest"),
    [
        (100_000, 10, 500),  # 1,000.00 x 0.05 % x 10 days = 5.00
        (100_000, 1, 50),  # 0.50 a day
        (12_345, 1, 6),  # 6.1725 -> 6
        (3_000, 1, 2),  # 1.5 -> 2 (half up)
        (1_000, 1, 1),  # 0.5 -> 1
        (999, 1, 0),  # 0.4995 -> 0
        (999, 2, 1),  # 0.999 -> 1: rounded once for the period, not per day
        (100_000, 0, 0),
        (0, 30, 0),
    ],
)
def test_overdue_interest_is_simple_daily_interest_rounded_once(unpaid, days, interest):
    assert overdue_interest(unpaid, days) == interest


def test_overdue_interest_takes_another_daily_rate_in_ppm():
    assert overdue_interest(100_000, 10, daily_rate_ppm=1_000) == 1_000  # 0.1 % a day


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((-1, 10), "unpaid_minor"),
        ((100.0, 10), "unpaid_minor"),
        ((100, -1), "days"),
        ((100, limits.creditpay_overdue_days_max + 1), "days"),
        ((100, 10, -1), "daily_rate_ppm"),
        ((100, 10, 1_000_001), "daily_rate_ppm"),
    ],
)
def test_overdue_interest_rejects_bad_input(args, field):
    _raises(field, overdue_interest, *args)


@pytest.mark.parametrize(
    ("today", "days"),
    [(date(2026, 5, 9), 0), (date(2026, 5, 10), 0), (date(2026, 5, 11), 1), (date(2026, 6, 9), 30)],
)
def test_days_overdue_start_the_day_after_the_due_date(today, days):
    assert days_overdue(date(2026, 5, 10), today) == days


def test_days_overdue_rejects_bad_input():
    _raises("today", days_overdue, date(2026, 5, 10), "2026-05-11")
    # a datetime does not compare with a date: calendar days only
    _raises("due_date", days_overdue, datetime(2026, 5, 10, 12, 0), date(2026, 5, 11))


# --- repayment ------------------------------------------------------------------------------------------

APRIL = Due("bill-2026-04", date(2026, 4, 10), 19_000, 1_000)
MAY = Due("bill-2026-05", date(2026, 5, 10), 140_845, 4_500)


def test_repayment_pays_interest_then_the_oldest_bill_then_the_current_one():
    # 30000: interest 300 -> 29700; April fee 1000 -> 28700; April principal 19000 -> 9700;
    # May fee 4500 -> 5200; May principal 5200 -> 0.
    allocation = allocate_repayment(30_000, [MAY, APRIL], interest_minor=300)
    assert allocation.interest_paid_minor == 300
    assert [(d.ref, d.fee_paid_minor, d.principal_paid_minor) for d in allocation.dues] == [
        ("bill-2026-04", 1_000, 19_000),
        ("bill-2026-05", 4_500, 5_200),
    ]
    assert allocation.fees_paid_minor == 5_500
    assert allocation.principal_paid_minor == 24_200
    assert allocation.unapplied_minor == 0
    assert allocation.limit_restored_minor == 24_200  # principal only: not the fees, not the interest


def test_a_repayment_smaller_than_the_interest_restores_no_limit():
    allocation = allocate_repayment(100, [APRIL], interest_minor=300)
    assert (allocation.interest_paid_minor, allocation.limit_restored_minor) == (100, 0)
    assert allocation.dues[0].fee_paid_minor == allocation.dues[0].principal_paid_minor == 0


def test_an_overpayment_is_left_unapplied():
    # owed: 300 + 20000 + 145345 = 165645; 200000 - 165645 = 34355 left over
    allocation = allocate_repayment(200_000, [APRIL, MAY], interest_minor=300)
    assert allocation.unapplied_minor == 34_355
    assert allocation.limit_restored_minor == 19_000 + 140_845


def test_dues_with_the_same_date_are_paid_in_the_given_order():
    first, second = Due("a", date(2026, 5, 10), 1_000), Due("b", date(2026, 5, 10), 1_000)
    allocation = allocate_repayment(1_500, [first, second])
    assert [(d.ref, d.principal_paid_minor) for d in allocation.dues] == [("a", 1_000), ("b", 500)]


@pytest.mark.parametrize(
    ("payment", "dues", "kwargs", "field"),
    [
        (0, [APRIL], {}, "payment_minor"),
        (-100, [APRIL], {}, "payment_minor"),
        (100.0, [APRIL], {}, "payment_minor"),
        (100, [APRIL], {"interest_minor": -1}, "interest_minor"),
        (100, [(date(2026, 4, 10), 100)], {}, "dues"),
        (100, [APRIL] * (limits.creditpay_repayment_dues_max + 1), {}, "dues"),
    ],
)
def test_allocate_repayment_rejects_bad_input(payment, dues, kwargs, field):
    _raises(field, allocate_repayment, payment, dues, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"principal_minor": -1}, "principal_minor"),
        ({"fee_minor": -1}, "fee_minor"),
        ({"due_on": None}, "due_on"),
    ],
)
def test_due_rejects_bad_input(kwargs, field):
    _raises(field, Due, **({"ref": "x", "due_on": date(2026, 5, 10), "principal_minor": 100} | kwargs))


dues_lists = st.lists(
    st.builds(
        Due,
        ref=st.text(max_size=3),
        due_on=st.dates(date(2026, 1, 1), date(2027, 12, 31)),
        principal_minor=st.integers(0, 10**9),
        fee_minor=st.integers(0, 10**7),
    ),
    max_size=8,
)


@given(payment=st.integers(1, 10**10), dues=dues_lists, interest=st.integers(0, 10**7))
def test_allocation_never_pays_more_than_is_owed(payment, dues, interest):
    allocation = allocate_repayment(payment, dues, interest_minor=interest)
    owed = interest + sum(d.principal_minor + d.fee_minor for d in dues)
    applied = payment - allocation.unapplied_minor
    assert applied == min(payment, owed)
    assert allocation.unapplied_minor == max(0, payment - owed)
    assert allocation.interest_paid_minor <= interest
    ordered = sorted(dues, key=lambda d: d.due_on)
    for due, paid in zip(ordered, allocation.dues, strict=True):
        assert paid.ref == due.ref
        assert 0 <= paid.fee_paid_minor <= due.fee_minor
        assert 0 <= paid.principal_paid_minor <= due.principal_minor
    assert allocation.limit_restored_minor <= sum(d.principal_minor for d in dues)
    # oldest first: once a due is short, nothing later gets anything
    short = [
        index
        for index, (due, paid) in enumerate(zip(ordered, allocation.dues))
        if paid.fee_paid_minor + paid.principal_paid_minor < due.fee_minor + due.principal_minor
    ]
    if short:
        later = allocation.dues[short[0] + 1 :]
        assert all(p.fee_paid_minor == p.principal_paid_minor == 0 for p in later)


# --- early payoff ----------------------------------------------------------------------------------------


def test_early_payoff_pays_the_unbilled_principal_and_waives_the_unbilled_fees():
    # phone: 6 x (100000 + 4500). Two installments billed; four left:
    # principal 4 x 100000 = 400000 paid now, fee 4 x 4500 = 18000 waived.
    payoff = early_payoff(PHONE, installments_billed=2)
    assert (payoff.installments_left, payoff.principal_minor, payoff.fee_waived_minor) == (4, 400_000, 18_000)
    assert payoff.limit_restored_minor == 400_000


def test_early_payoff_before_any_bill_is_the_whole_amount_without_fee():
    payoff = early_payoff(installment_plan(100_000, 3), installments_billed=0)
    assert (payoff.principal_minor, payoff.fee_waived_minor) == (100_000, 2_500)


def test_early_payoff_of_a_fully_billed_plan_is_nothing():
    payoff = early_payoff(PHONE, installments_billed=6)
    assert (payoff.installments_left, payoff.principal_minor, payoff.fee_waived_minor) == (0, 0, 0)


def test_early_payoff_of_an_interest_free_plan_waives_nothing_and_refunds_nothing():
    payoff = early_payoff(TV, installments_billed=1)
    assert (payoff.principal_minor, payoff.fee_waived_minor) == (11 * 25_000, 0)


@pytest.mark.parametrize(
    ("plan", "billed", "field"),
    [
        (PHONE, 7, "installments_billed"),
        (PHONE, -1, "installments_billed"),
        (PHONE, "2", "installments_billed"),
        (None, 0, "plan"),
    ],
)
def test_early_payoff_rejects_bad_input(plan, billed, field):
    _raises(field, early_payoff, plan, installments_billed=billed)


@given(plan=plans, billed=st.integers(0, 12))
def test_billed_principal_plus_payoff_is_the_whole_amount(plan, billed):
    billed = min(billed, plan.months)
    payoff = early_payoff(plan, installments_billed=billed)
    already = plan.installments[:billed]
    assert sum(p.principal_minor for p in already) + payoff.principal_minor == plan.amount_minor
    assert sum(p.fee_minor for p in already) + payoff.fee_waived_minor == plan.buyer_fee_minor
