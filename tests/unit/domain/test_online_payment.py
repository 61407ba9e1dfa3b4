"""domain/online_payment.py: attempt transitions, the one-time-code challenge, capture and
refund amounts, the card form's shape checks. Pure: no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from paypos import limits
from paypos.domain import online_payment as op
from paypos.domain.online_payment import ChallengeOutcome, Method, Payment, PaymentEvent, PaymentStatus
from paypos.domain.payment_request import PaymentRequestError

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def payment(**change: object) -> Payment:
    base = Payment(
        id="pay_" + "a" * 24, payment_request_id="pr_" + "b" * 24, merchant_id="M", method=Method.CARD,
        status=PaymentStatus.SUCCEEDED, amount_minor=1_000, currency="CNY", captured_minor=1_000, refunded_minor=0,
        escrow=False, settled=False, card_id="c", masked_pan="476173******0010", pan_enc=b"x", pan_hash="h",
        wallet_trade_no=None, failure_code=None, failure_reason=None, challenge=None, created_at=NOW,
        updated_at=NOW)
    return replace(base, **change)  # type: ignore[arg-type]


@pytest.mark.parametrize(("before", "event", "after"), [
    (op.NEW, PaymentEvent.CHALLENGE, PaymentStatus.REQUIRES_CHALLENGE),
    (op.NEW, PaymentEvent.SUCCEED, PaymentStatus.SUCCEEDED),
    (PaymentStatus.REQUIRES_CHALLENGE, PaymentEvent.AUTHORIZE, PaymentStatus.AUTHORIZED),
    (PaymentStatus.REQUIRES_CHALLENGE, PaymentEvent.FAIL, PaymentStatus.FAILED),
    (PaymentStatus.AUTHORIZED, PaymentEvent.CAPTURE, PaymentStatus.SUCCEEDED),
    (PaymentStatus.AUTHORIZED, PaymentEvent.VOID, PaymentStatus.CANCELED),
])
def test_allowed_transitions(before: PaymentStatus | None, event: PaymentEvent, after: PaymentStatus) -> None:
    assert op.payment_transition(before, event) is after


@pytest.mark.parametrize(("before", "event"), [
    (PaymentStatus.SUCCEEDED, PaymentEvent.CAPTURE),
    (PaymentStatus.FAILED, PaymentEvent.AUTHORIZE),
    (PaymentStatus.CANCELED, PaymentEvent.CAPTURE),
])
def test_illegal_transitions_name_the_state(before: PaymentStatus, event: PaymentEvent) -> None:
    with pytest.raises(op.IllegalPaymentTransition, match=before.value):
        op.payment_transition(before, event)


def test_the_challenge_rule_is_the_threshold_or_a_flagged_card() -> None:
    threshold = limits.checkout_challenge_threshold_minor
    assert op.needs_challenge(threshold, card_flagged=False)
    assert not op.needs_challenge(threshold - 1, card_flagged=False)
    assert op.needs_challenge(1, card_flagged=True)


def test_a_one_time_code_is_six_digits_from_the_random_bytes() -> None:
    assert op.new_otp(bytes(8)) == "000000"
    assert op.new_otp((1_234_567).to_bytes(8, "big")) == "234567"
    with pytest.raises(ValueError):
        op.new_otp(bytes(4))
    assert op.is_otp_shaped("012345") and not op.is_otp_shaped("12345") and not op.is_otp_shaped("١٢٣٤٥٦")


def test_three_wrong_codes_exceed_the_tries_and_a_late_code_is_expired() -> None:
    challenge = op.new_challenge("right", NOW)
    outcomes = []
    for _ in range(limits.checkout_otp_tries_max):
        outcome, challenge = op.check_code(challenge, "wrong", NOW)
        outcomes.append(outcome)
    assert outcomes == [ChallengeOutcome.WRONG_CODE] * 2 + [ChallengeOutcome.TRIES_EXCEEDED]
    assert op.check_code(challenge, "right", NOW)[0] is ChallengeOutcome.TRIES_EXCEEDED
    fresh = op.new_challenge("right", NOW)
    assert op.check_code(fresh, "right", NOW)[0] is ChallengeOutcome.PASSED
    late = NOW + timedelta(seconds=limits.checkout_otp_ttl_s)
    assert op.check_code(fresh, "right", late)[0] is ChallengeOutcome.EXPIRED


def test_capture_is_at_most_the_authorization() -> None:
    held = payment(status=PaymentStatus.AUTHORIZED, captured_minor=0)
    assert op.capture_amount(held, None) == 1_000 and op.capture_amount(held, 600) == 600
    for bad in (0, 1_001):
        with pytest.raises(PaymentRequestError) as raised:
            op.capture_amount(held, bad)
        assert raised.value.field == "amount"


def test_refunds_are_at_most_what_is_left_of_the_capture() -> None:
    paid = payment(refunded_minor=600)
    assert op.refund_amount(paid, None) == 400 and op.refund_amount(paid, 400) == 400
    with pytest.raises(PaymentRequestError, match="above what is left"):
        op.refund_amount(paid, 401)
    with pytest.raises(PaymentRequestError):
        op.refund_amount(paid, 0)
    with pytest.raises(PaymentRequestError) as raised:
        op.refund_reason("x" * (limits.refund_reason_chars_max + 1))
    assert raised.value.field == "reason"


def test_the_card_form_normalises_and_hides_card_data() -> None:
    entry = op.card_entry(pan="4761 7390-0101 0010", expiry="12 / 30", cvv2="123", name="  Lin   Wei ")
    assert (entry.pan, entry.expiry, entry.cvv2, entry.name) == ("4761739001010010", "3012", "123", "Lin Wei")
    assert "4761739001010010" not in repr(entry) and "123" not in repr(entry)


@pytest.mark.parametrize(("field", "value"), [
    ("pan", "4761739001010011"), ("pan", "12345"), ("expiry", "13/30"), ("expiry", "1/30"), ("cvv2", "12"),
    ("cvv2", "12a"), ("name", " "), ("name", "x" * (limits.checkout_cardholder_name_chars_max + 1)),
])
def test_a_bad_card_field_is_named(field: str, value: str) -> None:
    good = {"pan": "4761739001010010", "expiry": "12/30", "cvv2": "123", "name": "A Buyer"}
    with pytest.raises(PaymentRequestError) as raised:
        op.card_entry(**(good | {field: value}))
    assert raised.value.field == field


def test_ids_have_their_prefix_and_24_base32_characters() -> None:
    assert op.is_payment_id(op.new_payment_id(bytes(15))) and op.is_refund_id(op.new_refund_id(bytes(15)))
    assert not op.is_payment_id("pay_x")
