"""paypos.domain.escrow: shipping fields, the buyer's reason, what a release moves."""

from datetime import UTC, datetime, timedelta

import pytest

from paypos import limits
from paypos.domain.escrow import refund_reason, release_amount, release_due_at, shipping
from paypos.domain.payment_request import PaymentRequestError
from paypos.domain.pricing import fee_minor

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_shipping_fields_are_trimmed_and_kept() -> None:
    assert shipping(" SF Express ", "SF1234567890") == ("SF Express", "SF1234567890")


@pytest.mark.parametrize(("carrier", "tracking", "field"), [
    ("", "1", "carrier"),
    ("   ", "1", "carrier"),
    ("x" * (limits.escrow_carrier_chars_max + 1), "1", "carrier"),
    ("SF", "", "tracking_number"),
    ("SF", "12\n34", "tracking_number"),
    (None, "1", "carrier"),
])
def test_a_bad_shipping_field_is_refused_naming_it(carrier: object, tracking: object, field: str) -> None:
    with pytest.raises(PaymentRequestError) as caught:
        shipping(carrier, tracking)
    assert caught.value.field == field


def test_the_buyer_must_give_a_reason_for_a_refund() -> None:
    assert refund_reason("box empty") == "box empty"
    with pytest.raises(PaymentRequestError, match="reason"):
        refund_reason("")


@pytest.mark.parametrize(("captured", "refunded"), [(2_000, 0), (2_000, 500), (1, 0), (10**9, 10**6)])
def test_a_release_moves_what_the_sale_left_in_escrow(captured: int, refunded: int) -> None:
    assert release_amount(captured, refunded) == captured - fee_minor(captured) - refunded


def test_a_release_never_moves_a_negative_amount() -> None:
    with pytest.raises(PaymentRequestError):
        release_amount(2_000, 1_999)


def test_auto_release_falls_due_the_configured_period_after_shipping() -> None:
    assert release_due_at(NOW, limits.escrow_auto_release_s) == NOW + timedelta(days=10)
