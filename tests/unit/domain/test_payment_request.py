"""paypos.domain.payment_request: the payment request state machine and field rules."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypos import limits
from paypos.domain.payment_request import (
    ALL_TRANSITIONS,
    ESCROW_TRANSITIONS,
    TERMINAL,
    TRANSITIONS,
    Capture,
    Event,
    IllegalTransition,
    PaymentRequestError,
    Status,
    is_id,
    new_id,
    same_terms,
    terms,
    transition,
)

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
GOOD: dict[str, Any] = {
    "amount_minor": 1234, "currency_code": "CNY", "description": "2 coffees", "order_id": "order-42",
    "capture": "automatic", "escrow": False, "metadata": {"table": "7"}, "expires_at": None, "now": NOW,
}

# --- the state machine ------------------------------------------------------------------

@pytest.mark.parametrize(("current", "event", "after"), [
    (Status.REQUIRES_PAYMENT, Event.PAY, Status.PROCESSING),
    (Status.PROCESSING, Event.SUCCEED, Status.PAID),
    (Status.PROCESSING, Event.AUTHORIZE, Status.REQUIRES_CAPTURE),
    (Status.PROCESSING, Event.FAIL, Status.REQUIRES_PAYMENT),
    (Status.REQUIRES_CAPTURE, Event.CAPTURE, Status.PAID),
    (Status.REQUIRES_CAPTURE, Event.VOID, Status.CANCELED),
    (Status.REQUIRES_PAYMENT, Event.CANCEL, Status.CANCELED),
    (Status.REQUIRES_PAYMENT, Event.EXPIRE, Status.EXPIRED),
    (Status.PAID, Event.REFUND_PARTIAL, Status.PARTIALLY_REFUNDED),
    (Status.PARTIALLY_REFUNDED, Event.REFUND_PARTIAL, Status.PARTIALLY_REFUNDED),
    (Status.PARTIALLY_REFUNDED, Event.REFUND_FULL, Status.REFUNDED),
])
def test_each_declared_transition_moves_to_its_state(current: Status, event: Event, after: Status) -> None:
    assert transition(current, event) is after


@pytest.mark.parametrize(("current", "event"), [
    (Status.REQUIRES_PAYMENT, Event.REFUND_FULL),  # refund an unpaid request
    (Status.PAID, Event.CAPTURE),  # capture twice
    (Status.PAID, Event.CANCEL),
    (Status.CANCELED, Event.CANCEL),
    (Status.EXPIRED, Event.PAY),
    (Status.REFUNDED, Event.REFUND_PARTIAL),
])
def test_an_illegal_transition_raises_naming_the_current_state(current: Status, event: Event) -> None:
    with pytest.raises(IllegalTransition, match=f"is {current.value}; cannot {event.value}") as caught:
        transition(current, event)
    assert caught.value.current is current and caught.value.event is event


def test_terminal_states_allow_no_event() -> None:
    for state in TERMINAL:
        for event in Event:
            with pytest.raises(IllegalTransition):
                transition(state, event)


@pytest.mark.parametrize(("current", "event", "after"), [(c, e, a) for (c, e), a in ESCROW_TRANSITIONS.items()])
def test_each_escrow_transition_moves_through_the_single_gate(current: Status, event: Event, after: Status) -> None:
    assert transition(current, event) is after


@pytest.mark.parametrize(("current", "event"), [
    (Status.PAID, Event.SHIP),  # ship before the hold
    (Status.HELD, Event.RELEASE),  # release what was never shipped
    (Status.RELEASED, Event.SHIP),
    (Status.RELEASED, Event.REQUEST_REFUND),  # too late: the merchant has the money
    (Status.REFUND_REQUESTED, Event.RELEASE),  # the refund request must be answered first
    (Status.REFUND_REQUESTED, Event.SHIP),
    (Status.SHIPPED, Event.REJECT_REFUND),  # nothing to reject
])
def test_an_illegal_escrow_transition_names_the_state(current: Status, event: Event) -> None:
    with pytest.raises(IllegalTransition, match=f"is {current.value}; cannot {event.value}"):
        transition(current, event)


@given(st.lists(st.sampled_from(list(Event)), max_size=40))
def test_random_event_sequences_only_reach_declared_states(events: list[Event]) -> None:
    state = Status.REQUIRES_PAYMENT
    reachable = {Status.REQUIRES_PAYMENT, *ALL_TRANSITIONS.values()}
    for event in events:
        try:
            after = transition(state, event)
        except IllegalTransition as error:
            assert error.current is state
            assert (state, event) not in ALL_TRANSITIONS
            continue
        assert (state, event) in ALL_TRANSITIONS
        assert after in reachable
        state = after


# --- ids ------------------------------------------------------------------------------------

def test_an_id_is_pr_and_24_base32_characters() -> None:
    made = new_id(bytes(range(15)))
    assert made.startswith("pr_") and len(made) == 27 and is_id(made)
    assert not is_id("pr_short") and not is_id(made.upper())


def test_an_id_needs_15_random_bytes() -> None:
    with pytest.raises(ValueError, match="15 random bytes"):
        new_id(b"\x00" * 8)


# --- field rules ----------------------------------------------------------------------------

def test_good_terms_are_normalised() -> None:
    made = terms(**(GOOD | {"currency_code": "cny"}))
    assert made.currency == "CNY" and made.capture is Capture.AUTOMATIC
    assert made.expires_at == NOW + timedelta(seconds=limits.payment_request_expiry_s_default)


@pytest.mark.parametrize(("change", "field"), [
    ({"amount_minor": 12.34}, "amount"),
    ({"amount_minor": True}, "amount"),
    ({"amount_minor": 0}, "amount"),
    ({"amount_minor": -1}, "amount"),
    ({"amount_minor": limits.payment_request_amount_minor_max + 1}, "amount"),
    ({"currency_code": "XYZ"}, "currency"),
    ({"currency_code": "156"}, "currency"),  # the numeric code is not accepted here
    ({"currency_code": "XAU"}, "currency"),  # no minor unit
    ({"order_id": ""}, "order_id"),
    ({"order_id": "has space"}, "order_id"),
    ({"order_id": "x" * 65}, "order_id"),
    ({"description": "d" * 501}, "description"),
    ({"capture": "later"}, "capture"),
    ({"metadata": {f"k{i}": "v" for i in range(21)}}, "metadata"),
    ({"metadata": {"note": "v" * 501}}, "metadata.note"),
    ({"metadata": {"": "v"}}, "metadata"),
    ({"expires_at": NOW}, "expires_at"),
    ({"expires_at": NOW + timedelta(days=31)}, "expires_at"),
    ({"expires_at": datetime(2026, 11, 23, 9, 0)}, "expires_at"),  # no time zone
])
def test_a_bad_field_is_an_error_naming_it(change: dict[str, Any], field: str) -> None:
    with pytest.raises(PaymentRequestError) as caught:
        terms(**(GOOD | change))
    assert caught.value.field == field


def test_limits_are_inclusive() -> None:
    made = terms(**(GOOD | {"amount_minor": limits.payment_request_amount_minor_max, "order_id": "x" * 64,
                           "expires_at": NOW + timedelta(days=30)}))
    assert made.amount_minor == limits.payment_request_amount_minor_max


def test_same_terms_ignore_a_default_expiry_but_not_a_given_one() -> None:
    first = terms(**GOOD)
    later = terms(**(GOOD | {"now": NOW + timedelta(minutes=5)}))
    assert same_terms(first, later, expiry_given=False)
    assert not same_terms(first, later, expiry_given=True)
    assert not same_terms(first, terms(**(GOOD | {"amount_minor": 1235})), expiry_given=False)
