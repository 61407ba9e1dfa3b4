"""Escrow of online payment requests (issue 6, docs/escrow-disputes.md): the shipping record,
the buyer's refund request and the money rules. Pure: no I/O; time is passed in. The states
themselves live in ``domain.payment_request`` (``held``, ``shipped``, ``refund_requested``,
``refund_disputed``, ``released``), moved only by its ``transition``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from paypos import limits
from paypos.domain.payment_request import PaymentRequestError
from paypos.domain.pricing import fee_minor


class ReleaseReason(StrEnum):
    BUYER_CONFIRMED = "buyer_confirmed"
    AUTO = "auto"  # shipped longer than the auto-release period without an answer
    OPERATOR = "operator"  # the operator decided a rejected refund request for the merchant


class OperatorDecision(StrEnum):
    REFUND = "refund"
    RELEASE = "release"


@dataclass(frozen=True, slots=True)
class Escrow:
    payment_request_id: str
    merchant_id: str
    payment_id: str
    carrier: str | None
    tracking_number: str | None
    held_at: datetime
    shipped_at: datetime | None
    release_due_at: datetime | None
    released_at: datetime | None
    release_reason: str | None
    refund_reason: str | None
    refund_requested_at: datetime | None
    merchant_answer: str | None  # accepted | rejected
    operator_decision: str | None  # refund | release
    updated_at: datetime


def new_escrow(payment_request_id: str, merchant_id: str, payment_id: str, now: datetime) -> Escrow:
    return Escrow(payment_request_id, merchant_id, payment_id, None, None, now, None, None, None, None, None, None,
                  None, None, now)


def shipping(carrier: object, tracking_number: object) -> tuple[str, str]:
    """The merchant's carrier and tracking number, checked; a :class:`PaymentRequestError` names the field."""
    return (_text(carrier, "carrier", limits.escrow_carrier_chars_max),
            _text(tracking_number, "tracking_number", limits.escrow_tracking_number_chars_max))


def refund_reason(text: object) -> str:
    """The buyer's reason for asking a refund: 1 to ``escrow_refund_reason_chars_max`` characters."""
    return _text(text, "reason", limits.escrow_refund_reason_chars_max)


def _text(value: object, field: str, chars_max: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PaymentRequestError(f"{field} must not be empty", field=field)
    value = value.strip()
    if len(value) > chars_max or not value.isprintable():
        raise PaymentRequestError(f"{field} must be at most {chars_max} printable characters", field=field)
    return value


def release_due_at(shipped_at: datetime, auto_release_s: int) -> datetime:
    return shipped_at + timedelta(seconds=auto_release_s)


def release_amount(captured_minor: int, refunded_minor: int, sale_fee_minor: int | None = None) -> int:
    """What leaves ``merchant_escrow`` for ``merchant_pending`` on release: what the sale put in
    (captured less the fee the sale chain already took, by the merchant's pricing plan; None:
    the standard 60 bps) less what was refunded from escrow."""
    fee = fee_minor(captured_minor) if sale_fee_minor is None else sale_fee_minor
    amount = captured_minor - fee - refunded_minor
    if amount < 0:
        raise PaymentRequestError("refunds exceed what the escrow holds", field="amount")
    return amount
