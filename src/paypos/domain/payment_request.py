"""Payment requests (online POS, issue 6): what a merchant asks a buyer to pay, and the
state machine it moves through. Pure: no I/O; time and randomness are passed in.

States and the events that move them (anything else is an :class:`IllegalTransition`)::

    requires_payment --pay--> processing --succeed--> paid            (capture=automatic)
                                         --authorize--> requires_capture --capture--> paid
                                         --fail--> requires_payment
    requires_payment --cancel--> canceled      requires_capture --void--> canceled
    requires_payment --expire--> expired
    paid | partially_refunded --refund_partial--> partially_refunded
    paid | partially_refunded --refund_full--> refunded

Escrow (docs/escrow-disputes.md), for requests with ``escrow: true``; :func:`transition`
gates these too::

    paid --hold--> held --ship--> shipped --release--> released
    held | shipped --refund_partial--> (same)        --refund_full--> refunded
    held | shipped --request_refund--> refund_requested
    refund_requested --refund_full--> refunded            (the merchant accepts)
    refund_requested --reject_refund--> refund_disputed   (the merchant rejects: the operator decides)
    refund_disputed --refund_full--> refunded | --release--> released
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from paypos import limits
from paypos.domain.money import MoneyError, currency

ID_PREFIX = "pr_"
ID_RANDOM_BYTES = 15  # 120 bits: 24 base32 characters
_ID = re.compile(r"pr_[a-z2-7]{24}")
_PRINTABLE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces


class Status(StrEnum):
    REQUIRES_PAYMENT = "requires_payment"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CANCELED = "canceled"
    EXPIRED = "expired"
    # Escrow (docs/escrow-disputes.md).
    HELD = "held"
    SHIPPED = "shipped"
    RELEASED = "released"
    REFUND_REQUESTED = "refund_requested"
    REFUND_DISPUTED = "refund_disputed"


class Event(StrEnum):
    PAY = "pay"
    SUCCEED = "succeed"
    AUTHORIZE = "authorize"
    FAIL = "fail"
    CAPTURE = "capture"
    VOID = "void"
    CANCEL = "cancel"
    EXPIRE = "expire"
    REFUND_PARTIAL = "refund_partial"
    REFUND_FULL = "refund_full"
    # Escrow (docs/escrow-disputes.md).
    HOLD = "hold"
    SHIP = "ship"
    RELEASE = "release"
    REQUEST_REFUND = "request_refund"
    REJECT_REFUND = "reject_refund"


class Capture(StrEnum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


S, E = Status, Event
TRANSITIONS: Mapping[tuple[Status, Event], Status] = {
    (S.REQUIRES_PAYMENT, E.PAY): S.PROCESSING,
    (S.REQUIRES_PAYMENT, E.CANCEL): S.CANCELED,
    (S.REQUIRES_PAYMENT, E.EXPIRE): S.EXPIRED,
    (S.PROCESSING, E.SUCCEED): S.PAID,
    (S.PROCESSING, E.AUTHORIZE): S.REQUIRES_CAPTURE,
    (S.PROCESSING, E.FAIL): S.REQUIRES_PAYMENT,
    (S.REQUIRES_CAPTURE, E.CAPTURE): S.PAID,
    (S.REQUIRES_CAPTURE, E.VOID): S.CANCELED,
    (S.PAID, E.REFUND_PARTIAL): S.PARTIALLY_REFUNDED,
    (S.PAID, E.REFUND_FULL): S.REFUNDED,
    (S.PARTIALLY_REFUNDED, E.REFUND_PARTIAL): S.PARTIALLY_REFUNDED,
    (S.PARTIALLY_REFUNDED, E.REFUND_FULL): S.REFUNDED,
}
ESCROW_TRANSITIONS: Mapping[tuple[Status, Event], Status] = {
    (S.PAID, E.HOLD): S.HELD,
    (S.HELD, E.SHIP): S.SHIPPED,
    (S.SHIPPED, E.RELEASE): S.RELEASED,
    (S.HELD, E.REFUND_PARTIAL): S.HELD,
    (S.SHIPPED, E.REFUND_PARTIAL): S.SHIPPED,
    (S.HELD, E.REFUND_FULL): S.REFUNDED,
    (S.SHIPPED, E.REFUND_FULL): S.REFUNDED,
    (S.HELD, E.REQUEST_REFUND): S.REFUND_REQUESTED,
    (S.SHIPPED, E.REQUEST_REFUND): S.REFUND_REQUESTED,
    (S.REFUND_REQUESTED, E.REFUND_FULL): S.REFUNDED,
    (S.REFUND_REQUESTED, E.REJECT_REFUND): S.REFUND_DISPUTED,
    (S.REFUND_DISPUTED, E.REFUND_FULL): S.REFUNDED,
    (S.REFUND_DISPUTED, E.RELEASE): S.RELEASED,
}
ALL_TRANSITIONS: Mapping[tuple[Status, Event], Status] = {**TRANSITIONS, **ESCROW_TRANSITIONS}
ESCROW_STATES = frozenset({S.HELD, S.SHIPPED, S.REFUND_REQUESTED, S.REFUND_DISPUTED})
TERMINAL = frozenset({S.REFUNDED, S.CANCELED, S.EXPIRED, S.RELEASED})


class IllegalTransition(Exception):
    """An event the current state does not allow; names the state (a 409 at the API)."""

    def __init__(self, current: Status, event: Event) -> None:
        super().__init__(f"payment request is {current.value}; cannot {event.value}")
        self.current, self.event = current, event


class PaymentRequestError(ValueError):
    """A field of a payment request broke a rule; ``field`` names it (a 422 at the API)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def transition(current: Status, event: Event) -> Status:
    """The state after ``event``, or :class:`IllegalTransition` naming ``current``."""
    after = ALL_TRANSITIONS.get((current, event))
    if after is None:
        raise IllegalTransition(current, event)
    return after


@dataclass(frozen=True, slots=True)
class PaymentRequestTerms:
    """The validated fields a merchant sets; equal terms mean the same request."""

    amount_minor: int
    currency: str  # ISO 4217 alpha
    description: str
    order_id: str
    capture: Capture
    escrow: bool
    metadata: Mapping[str, str]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    id: str
    merchant_id: str
    terms: PaymentRequestTerms
    status: Status
    created_at: datetime
    updated_at: datetime


def new_id(random: bytes) -> str:
    """``pr_`` + 24 lowercase base32 characters of ``random`` (15 bytes)."""
    if len(random) != ID_RANDOM_BYTES:
        raise ValueError(f"a payment request id needs {ID_RANDOM_BYTES} random bytes")
    return ID_PREFIX + base64.b32encode(random).decode("ascii").lower()


def is_id(value: str) -> bool:
    return bool(_ID.fullmatch(value))


def terms(
    *,
    amount_minor: object,
    currency_code: str,
    description: str,
    order_id: str,
    capture: str,
    escrow: bool,
    metadata: Mapping[str, str] | None,
    expires_at: datetime | None,
    now: datetime,
) -> PaymentRequestTerms:
    """Validate a merchant's fields; the first rule broken is a :class:`PaymentRequestError`."""
    return PaymentRequestTerms(
        amount_minor=_amount(amount_minor),
        currency=_currency(currency_code),
        description=_description(description),
        order_id=_order_id(order_id),
        capture=_capture(capture),
        escrow=_escrow(escrow),
        metadata=_metadata(metadata or {}),
        expires_at=_expires_at(expires_at, now),
    )


def _amount(value: object) -> int:
    if type(value) is not int:
        raise PaymentRequestError("amount must be an integer of minor units", field="amount")
    if not 0 < value <= limits.payment_request_amount_minor_max:
        raise PaymentRequestError(
            f"amount must be from 1 to {limits.payment_request_amount_minor_max} minor units", field="amount")
    return value


def _currency(code: str) -> str:
    if not isinstance(code, str) or not re.fullmatch(r"[A-Za-z]{3}", code):
        raise PaymentRequestError("currency must be an ISO 4217 alphabetic code such as CNY", field="currency")
    try:
        return currency(code).alpha
    except MoneyError as error:
        raise PaymentRequestError(str(error), field="currency") from None


def _description(value: str) -> str:
    if not isinstance(value, str) or len(value) > limits.payment_request_description_chars_max:
        raise PaymentRequestError(
            f"description must be at most {limits.payment_request_description_chars_max} characters",
            field="description")
    return value


def _order_id(value: str) -> str:
    if (not isinstance(value, str) or not _PRINTABLE.fullmatch(value)
            or len(value) > limits.payment_request_order_id_chars_max):
        raise PaymentRequestError(
            f"order_id must be 1 to {limits.payment_request_order_id_chars_max} printable ASCII characters",
            field="order_id")
    return value


def _capture(value: str) -> Capture:
    try:
        return Capture(value)
    except ValueError:
        raise PaymentRequestError("capture must be 'automatic' or 'manual'", field="capture") from None


def _escrow(value: bool) -> bool:
    if type(value) is not bool:
        raise PaymentRequestError("escrow must be true or false", field="escrow")
    return value


def _metadata(value: Mapping[str, str]) -> dict[str, str]:
    if len(value) > limits.payment_request_metadata_keys_max:
        raise PaymentRequestError(
            f"metadata may hold at most {limits.payment_request_metadata_keys_max} keys", field="metadata")
    for key, item in value.items():
        if not isinstance(key, str) or not 0 < len(key) <= limits.payment_request_metadata_key_chars_max:
            raise PaymentRequestError(
                f"metadata keys must be 1 to {limits.payment_request_metadata_key_chars_max} characters",
                field="metadata")
        if not isinstance(item, str) or len(item) > limits.payment_request_metadata_value_chars_max:
            raise PaymentRequestError(
                f"metadata.{key} must be a string of at most "
                f"{limits.payment_request_metadata_value_chars_max} characters", field=f"metadata.{key}")
    return dict(sorted(value.items()))


def _expires_at(value: datetime | None, now: datetime) -> datetime:
    if value is None:
        return now + timedelta(seconds=limits.payment_request_expiry_s_default)
    if value.tzinfo is None:
        raise PaymentRequestError("expires_at must carry a time zone", field="expires_at")
    if value <= now:
        raise PaymentRequestError("expires_at must be in the future", field="expires_at")
    if value > now + timedelta(seconds=limits.payment_request_expiry_s_max):
        days = limits.payment_request_expiry_s_max // 86400
        raise PaymentRequestError(f"expires_at must be at most {days} days ahead", field="expires_at")
    return value


def same_terms(existing: PaymentRequestTerms, asked: PaymentRequestTerms, *, expiry_given: bool) -> bool:
    """Whether a second request for the same order asks for the same thing. An expiry the
    merchant left to the default (now + 1 day) moves with the clock, so it is not compared."""
    fields = ("amount_minor", "currency", "description", "capture", "escrow", "metadata")
    if any(getattr(existing, f) != getattr(asked, f) for f in fields):
        return False
    return not expiry_given or existing.expires_at == asked.expires_at
