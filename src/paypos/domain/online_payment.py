"""Payments (attempts) and refunds of the online POS (issue 6). Pure: no I/O; time and
randomness are passed in.

A payment request is paid by one *payment* (attempt) at a time. A card attempt moves::

    (new) --challenge--> requires_challenge --pass--> authorized | succeeded
          --authorize--> authorized --capture--> succeeded
          --succeed--> succeeded                  authorized --void--> canceled
          --fail--> failed                        requires_challenge --fail--> failed

``authorized`` is a hold (manual capture); ``succeeded`` is captured money. Refunds never
change a payment's status: they add to ``refunded_minor``, at most ``captured_minor``.

The challenge (3-D Secure style): a one-time code of ``limits.checkout_otp_digits`` digits
sent to the cardholder's phone, stored only as a keyed hash, valid for
``limits.checkout_otp_ttl_s``; ``limits.checkout_otp_tries_max`` wrong codes fail the attempt.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from paypos import limits
from paypos.domain.payment_request import PaymentRequestError
from paypos.protocol.card import luhn_valid, mask_pan

PAYMENT_PREFIX = "pay_"
REFUND_PREFIX = "re_"
ID_RANDOM_BYTES = 15  # 120 bits: 24 base32 characters
OTP_RANDOM_BYTES = 8  # 64 bits reduced mod 10^6: a bias below 10^-13
_PAYMENT_ID = re.compile(r"pay_[a-z2-7]{24}")
_REFUND_ID = re.compile(r"re_[a-z2-7]{24}")


class Method(StrEnum):
    CARD = "card"
    WALLET = "wallet"


class PaymentStatus(StrEnum):
    REQUIRES_CHALLENGE = "requires_challenge"
    AUTHORIZED = "authorized"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class PaymentEvent(StrEnum):
    CHALLENGE = "challenge"
    AUTHORIZE = "authorize"
    SUCCEED = "succeed"
    CAPTURE = "capture"
    VOID = "void"
    FAIL = "fail"


P, PE = PaymentStatus, PaymentEvent
NEW: None = None  # the state before the attempt exists
PAYMENT_TRANSITIONS: Mapping[tuple[PaymentStatus | None, PaymentEvent], PaymentStatus] = {
    (NEW, PE.CHALLENGE): P.REQUIRES_CHALLENGE,
    (NEW, PE.AUTHORIZE): P.AUTHORIZED,
    (NEW, PE.SUCCEED): P.SUCCEEDED,
    (NEW, PE.FAIL): P.FAILED,
    (P.REQUIRES_CHALLENGE, PE.AUTHORIZE): P.AUTHORIZED,
    (P.REQUIRES_CHALLENGE, PE.SUCCEED): P.SUCCEEDED,
    (P.REQUIRES_CHALLENGE, PE.FAIL): P.FAILED,
    (P.AUTHORIZED, PE.CAPTURE): P.SUCCEEDED,
    (P.AUTHORIZED, PE.VOID): P.CANCELED,
}
OPEN = frozenset({P.REQUIRES_CHALLENGE})  # an attempt still waiting for the buyer


class IllegalPaymentTransition(Exception):
    def __init__(self, current: PaymentStatus | None, event: PaymentEvent) -> None:
        super().__init__(f"payment is {current.value if current else 'new'}; cannot {event.value}")
        self.current, self.event = current, event


def payment_transition(current: PaymentStatus | None, event: PaymentEvent) -> PaymentStatus:
    after = PAYMENT_TRANSITIONS.get((current, event))
    if after is None:
        raise IllegalPaymentTransition(current, event)
    return after


@dataclass(frozen=True, slots=True)
class Challenge:
    code_hash: str  # keyed hash of the one-time code, never the code
    expires_at: datetime
    tries_left: int


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    payment_request_id: str
    merchant_id: str
    method: Method
    status: PaymentStatus
    amount_minor: int  # what was asked (and authorized)
    currency: str  # ISO 4217 alpha
    captured_minor: int
    refunded_minor: int
    escrow: bool  # funds go to merchant_escrow rather than merchant_pending
    settled: bool  # seam for settlement (a later issue): refunds then come from merchant_available
    card_id: str | None
    masked_pan: str | None
    pan_enc: bytes | None  # sealed by the vault; never the clear PAN
    pan_hash: str | None  # keyed lookup hash: tells a double submit of the same card
    wallet_trade_no: str | None
    failure_code: str | None
    failure_reason: str | None
    challenge: Challenge | None
    created_at: datetime
    updated_at: datetime

    @property
    def refundable_minor(self) -> int:
        return self.captured_minor - self.refunded_minor


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    payment_id: str
    payment_request_id: str
    merchant_id: str
    amount_minor: int
    currency: str
    reason: str
    source: str  # the merchant ledger account the money came from
    status: str  # succeeded
    created_at: datetime


# --- ids ------------------------------------------------------------------------------------

def new_payment_id(random: bytes) -> str:
    return PAYMENT_PREFIX + _b32(random)


def new_refund_id(random: bytes) -> str:
    return REFUND_PREFIX + _b32(random)


def is_payment_id(value: str) -> bool:
    return bool(_PAYMENT_ID.fullmatch(value))


def is_refund_id(value: str) -> bool:
    return bool(_REFUND_ID.fullmatch(value))


def _b32(random: bytes) -> str:
    if len(random) != ID_RANDOM_BYTES:
        raise ValueError(f"an id needs {ID_RANDOM_BYTES} random bytes")
    return base64.b32encode(random).decode("ascii").lower()


# --- the challenge --------------------------------------------------------------------------

class ChallengeOutcome(StrEnum):
    PASSED = "passed"
    WRONG_CODE = "wrong_code"  # tries left
    TRIES_EXCEEDED = "tries_exceeded"  # the attempt fails
    EXPIRED = "expired"  # the attempt fails


def needs_challenge(amount_minor: int, *, card_flagged: bool) -> bool:
    """At or above ``limits.checkout_challenge_threshold_minor``, or when the issuer's risk
    flags the card, the cardholder must enter a one-time code."""
    return card_flagged or amount_minor >= limits.checkout_challenge_threshold_minor


def new_otp(random: bytes) -> str:
    """A one-time code of ``limits.checkout_otp_digits`` decimal digits from ``random``."""
    if len(random) != OTP_RANDOM_BYTES:
        raise ValueError(f"a one-time code needs {OTP_RANDOM_BYTES} random bytes")
    digits = limits.checkout_otp_digits
    return f"{int.from_bytes(random, 'big') % 10**digits:0{digits}d}"


def new_challenge(code_hash: str, now: datetime) -> Challenge:
    return Challenge(code_hash, now + timedelta(seconds=limits.checkout_otp_ttl_s), limits.checkout_otp_tries_max)


def is_otp_shaped(value: str) -> bool:
    return len(value) == limits.checkout_otp_digits and value.isascii() and value.isdigit()


def check_code(challenge: Challenge, entered_hash: str, now: datetime) -> tuple[ChallengeOutcome, Challenge]:
    """The outcome of one entry and the challenge after it (one try fewer when wrong)."""
    if now >= challenge.expires_at:
        return ChallengeOutcome.EXPIRED, challenge
    if challenge.tries_left <= 0:
        return ChallengeOutcome.TRIES_EXCEEDED, challenge
    if hmac.compare_digest(challenge.code_hash, entered_hash):
        return ChallengeOutcome.PASSED, challenge
    after = replace(challenge, tries_left=challenge.tries_left - 1)
    return (ChallengeOutcome.TRIES_EXCEEDED if after.tries_left <= 0 else ChallengeOutcome.WRONG_CODE), after


# --- capture and refund amounts ---------------------------------------------------------------

def capture_amount(payment: Payment, asked: int | None) -> int:
    """What a capture posts: all of the authorization, or ``asked`` (1 .. authorized)."""
    if asked is None:
        return payment.amount_minor
    if type(asked) is not int or not 0 < asked <= payment.amount_minor:
        raise PaymentRequestError(
            f"amount must be from 1 to the authorized {payment.amount_minor} minor units", field="amount")
    return asked


def refund_amount(payment: Payment, asked: int | None) -> int:
    """What a refund returns: the rest of what was captured, or ``asked`` (1 .. that rest)."""
    left = payment.refundable_minor
    if asked is None:
        return left
    if type(asked) is not int or asked <= 0:
        raise PaymentRequestError("amount must be a positive integer of minor units", field="amount")
    if asked > left:
        raise PaymentRequestError(
            f"amount {asked} is above what is left to refund ({left} of {payment.captured_minor} minor units "
            "captured)", field="amount")
    return asked


def refund_reason(value: str | None) -> str:
    text = value or ""
    if not isinstance(text, str) or len(text) > limits.refund_reason_chars_max:
        raise PaymentRequestError(f"reason must be at most {limits.refund_reason_chars_max} characters",
                                  field="reason")
    return text


# --- the buyer's card form ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CardEntry:
    """What the buyer typed, checked for shape only (the issuer decides the rest). Lives in
    memory for one request: the PAN is sealed before it is stored, the CVV2 never is."""

    pan: str
    expiry: str  # YYMM
    cvv2: str
    name: str

    def __repr__(self) -> str:  # never print card data, not even in a traceback
        return f"CardEntry(pan={mask_pan(self.pan) if len(self.pan) >= 10 else '***'}, expiry=**, cvv2=***)"


_EXPIRY = re.compile(r"(0[1-9]|1[0-2])\s*/?\s*(\d{2})")


def card_entry(*, pan: str, expiry: str, cvv2: str, name: str) -> CardEntry:
    """The form's fields, or a :class:`PaymentRequestError` naming the first bad one."""
    digits = re.sub(r"[\s-]", "", pan or "")
    if not (limits.pan_digits_min <= len(digits) <= limits.pan_digits_max) or not digits.isdigit() \
            or not luhn_valid(digits):
        raise PaymentRequestError("card number is not valid", field="pan")
    matched = _EXPIRY.fullmatch((expiry or "").strip())
    if matched is None:
        raise PaymentRequestError("expiry must be MM/YY", field="expiry")
    if not re.fullmatch(r"\d{3}", cvv2 or ""):
        raise PaymentRequestError("security code (CVV2) must be 3 digits", field="cvv2")
    cleaned = " ".join((name or "").split())
    if not 0 < len(cleaned) <= limits.checkout_cardholder_name_chars_max:
        raise PaymentRequestError(
            f"name on card must be 1 to {limits.checkout_cardholder_name_chars_max} characters", field="name")
    return CardEntry(digits, matched.group(2) + matched.group(1), cvv2, cleaned)
