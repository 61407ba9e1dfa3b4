"""domain.pricing: plans, fee_for (rate half up, min, cap, fixed fee, promotions), JSON form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypos.domain.pricing import (
    DeviceKind,
    DeviceModel,
    MethodPrice,
    PaymentMethod,
    PricingError,
    PricingPlan,
    Promotion,
    fee_for,
    fee_minor,
    plan_from_json,
    plan_to_json,
    standard_plan,
    standard_plan_id,
)

AT = datetime(2026, 12, 1, tzinfo=UTC)
LATER = AT + timedelta(days=60)


def plan(rate: int = 60, *, min_minor: int = 0, cap: int | None = None, fixed: int = 0,
         promotions: tuple[Promotion, ...] = (), device: DeviceModel | None = None) -> PricingPlan:
    prices = {m: MethodPrice(rate, min_minor, cap) for m in PaymentMethod}
    return PricingPlan("p1", "Plan one", "CNY", prices, fixed, 0, device or DeviceModel(), promotions)


@pytest.mark.parametrize(("amount", "rate", "fee"), [
    (10_000, 60, 60),  # 0.60 % of CNY 100.00
    (1_001, 250, 25),  # 25.025 rounds down
    (1_002, 250, 25),  # 25.05 rounds down
    (1_020, 250, 26),  # 25.5 rounds half up
    (83, 60, 0),  # 0.498 rounds down
    (84, 60, 1),  # 0.504 rounds up
    (0, 60, 0),
])
def test_the_rate_part_rounds_half_up_in_integers(amount: int, rate: int, fee: int) -> None:
    assert fee_for(plan(rate), PaymentMethod.DEBIT_CARD, amount, AT) == fee


def test_the_minimum_raises_a_small_fee_and_the_cap_lowers_a_large_one() -> None:
    priced = plan(60, min_minor=50, cap=2_000)
    assert fee_for(priced, PaymentMethod.CREDIT_CARD, 1_000, AT) == 50  # 6 → minimum 50
    assert fee_for(priced, PaymentMethod.CREDIT_CARD, 100_000, AT) == 600
    assert fee_for(priced, PaymentMethod.CREDIT_CARD, 10_000_000, AT) == 2_000  # 60 000 → cap


def test_the_fixed_fee_is_added_after_min_and_cap_but_never_above_the_amount() -> None:
    priced = plan(60, cap=2_000, fixed=30)
    assert fee_for(priced, PaymentMethod.PREPAID, 10_000_000, AT) == 2_030
    assert fee_for(priced, PaymentMethod.PREPAID, 10_000, AT) == 90
    assert fee_for(priced, PaymentMethod.PREPAID, 20, AT) == 20  # 0 + 30, but only 20 was paid


def test_a_promotion_applies_until_its_end_and_only_to_its_methods() -> None:
    promo = Promotion("launch", {PaymentMethod.CONTACTLESS: 0}, LATER)
    priced = plan(60, promotions=(promo,))
    assert fee_for(priced, PaymentMethod.CONTACTLESS, 10_000, AT) == 0
    assert fee_for(priced, PaymentMethod.CONTACTLESS, 10_000, LATER - timedelta(microseconds=1)) == 0
    assert fee_for(priced, PaymentMethod.CONTACTLESS, 10_000, LATER) == 60  # ended
    assert fee_for(priced, PaymentMethod.DEBIT_CARD, 10_000, AT) == 60  # another method


def test_the_lowest_of_overlapping_promotions_wins() -> None:
    priced = plan(60, promotions=(Promotion("a", {"debit_card": 40}, LATER),
                                  Promotion("b", {"debit_card": 20}, AT + timedelta(days=1))))
    assert priced.rate_bps(PaymentMethod.DEBIT_CARD, AT) == 20
    assert priced.rate_bps(PaymentMethod.DEBIT_CARD, AT + timedelta(days=2)) == 40


def test_the_standard_plan_charges_what_paypos_charged_before_plans() -> None:
    standard = standard_plan("CNY")
    for amount in (1, 83, 84, 10_000, 123_456_789):
        for method in PaymentMethod:
            expected = fee_minor(amount, 80 if method is PaymentMethod.CREDIT_PAY else 60)
            assert fee_for(standard, method, amount, AT) == expected
    assert standard_plan_id("CNY") == "standard" and standard_plan_id("USD") == "standard-usd"


def test_a_negative_or_float_amount_is_refused() -> None:
    with pytest.raises(PricingError):
        fee_for(plan(), PaymentMethod.DEBIT_CARD, -1, AT)
    with pytest.raises(PricingError):
        fee_for(plan(), PaymentMethod.DEBIT_CARD, 10.0, AT)  # type: ignore[arg-type]


def test_a_plan_round_trips_through_its_json_form() -> None:
    original = plan(55, min_minor=10, cap=900, fixed=5, device=DeviceModel(
        DeviceKind.FREE_WITH_THRESHOLD, threshold_minor=1_000_000, window_days=90, device_fee_minor=29_900),
        promotions=(Promotion("launch", {"contactless": 0}, LATER),))
    assert plan_from_json(plan_to_json(original)) == original


def test_a_star_rate_prices_every_method_not_named() -> None:
    parsed = plan_from_json({"id": "p2", "name": "Two", "currency": "CNY",
                             "rates": {"*": 50, "credit_pay": {"rate_bps": 90, "cap_minor": 500}}})
    assert parsed.prices[PaymentMethod.DEBIT_CARD] == MethodPrice(50)
    assert parsed.prices[PaymentMethod.CREDIT_PAY] == MethodPrice(90, 0, 500)


@pytest.mark.parametrize(("change", "field"), [
    ({"id": "Bad Id"}, "id"),
    ({"name": ""}, "name"),
    ({"currency": "cny"}, "currency"),
    ({"rates": {"debit_card": 60}}, "rates"),  # the other methods are unpriced
    ({"rates": {"*": 10_001}}, "rate_bps"),
    ({"rates": {"*": -1}}, "rate_bps"),
    ({"rates": {"*": {"rate_bps": 60, "min_minor": 100, "cap_minor": 50}}}, "cap_minor"),
    ({"rates": {"*": 60, "bitcoin": 10}}, "rates"),
    ({"fixed_fee_minor": -5}, "fixed_fee_minor"),
    ({"device": {"kind": "deposit", "deposit_minor": 100, "window_days": 30}}, "device.target_minor"),
    ({"device": {"kind": "none", "price_minor": 100}}, "device.price_minor"),
    ({"device": {"kind": "lease"}}, "device.kind"),
    ({"promotions": [{"name": "x", "rates_bps": {"debit_card": 0}, "ends_at": "2027-01-01T00:00:00"}]},
     "promotion.ends_at"),
    ({"promotions": [{"name": "x", "rates_bps": {}, "ends_at": "2027-01-01T00:00:00Z"}]}, "promotion.rates_bps"),
])
def test_a_bad_plan_is_refused_naming_its_field(change: dict, field: str) -> None:
    spec = {"id": "p3", "name": "Three", "currency": "CNY", "rates": {"*": 60}} | change
    with pytest.raises(PricingError) as refused:
        plan_from_json(spec)
    assert refused.value.field == field


def test_a_plan_without_its_fields_is_a_pricing_error_not_a_crash() -> None:
    with pytest.raises(PricingError):
        plan_from_json({"rates": {"*": 60}})


# --- properties ---------------------------------------------------------------------------------

rates = st.integers(0, 10_000)
amounts = st.integers(0, 10**12)
optional_cap = st.none() | st.integers(0, 10**6)


@st.composite
def plans(draw: st.DrawFn) -> PricingPlan:
    min_minor = draw(st.integers(0, 10_000))
    cap = draw(optional_cap)
    if cap is not None and cap < min_minor:
        cap = min_minor
    ends = AT + timedelta(days=draw(st.integers(-30, 30)))
    promos = (Promotion("p", {PaymentMethod.DEBIT_CARD: draw(rates)}, ends),) if draw(st.booleans()) else ()
    return plan(draw(rates), min_minor=min_minor, cap=cap, fixed=draw(st.integers(0, 10_000)), promotions=promos)


@given(plans(), amounts, amounts)
def test_the_fee_never_falls_as_the_amount_grows(priced: PricingPlan, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert fee_for(priced, PaymentMethod.DEBIT_CARD, low, AT) <= fee_for(priced, PaymentMethod.DEBIT_CARD, high, AT)


@given(plans(), amounts)
def test_the_fee_is_a_non_negative_int_within_amount_and_cap_plus_fixed(priced: PricingPlan, amount: int) -> None:
    fee = fee_for(priced, PaymentMethod.DEBIT_CARD, amount, AT)
    assert type(fee) is int and 0 <= fee <= amount
    price = priced.prices[PaymentMethod.DEBIT_CARD]
    if price.cap_minor is not None:
        assert fee <= price.cap_minor + priced.fixed_fee_minor


@given(rates, amounts)
def test_without_min_cap_or_fixed_fee_the_fee_is_the_half_up_rate(rate: int, amount: int) -> None:
    assert fee_for(plan(rate), PaymentMethod.WALLET_BALANCE, amount, AT) == (amount * rate + 5_000) // 10_000
