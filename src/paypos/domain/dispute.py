"""Disputes (chargebacks) of card payments of the online POS (issue 6, docs/escrow-disputes.md).
Pure: no I/O; time and randomness are passed in.

States::

    needs_response --submit_evidence--> under_review
    needs_response | under_review --win--> won      --lose--> lost

Reason codes are a small subset of the Visa dispute reason codes ("Visa Core Rules and Visa
Product and Service Rules", dispute condition categories 10 fraud, 11 authorization, 12
processing errors, 13 consumer disputes).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from paypos import limits
from paypos.protocol.errors import KeepsFields

ID_PREFIX = "dp_"
ID_RANDOM_BYTES = 15
_ID = re.compile(r"dp_[a-z2-7]{24}")

# Visa dispute reason codes (Visa Core Rules, dispute condition categories 10 to 13).
REASON_CODES: Mapping[str, str] = {
    "10.4": "Other fraud: card-absent environment",
    "11.3": "No authorization",
    "12.5": "Incorrect amount",
    "12.6.1": "Duplicate processing",
    "13.1": "Merchandise / services not received",
    "13.3": "Not as described or defective merchandise",
    "13.6": "Credit not processed",
    "13.7": "Cancelled merchandise / services",
}


class DisputeStatus(StrEnum):
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"


class DisputeEvent(StrEnum):
    SUBMIT_EVIDENCE = "submit_evidence"
    WIN = "win"
    LOSE = "lose"


D, V = DisputeStatus, DisputeEvent
DISPUTE_TRANSITIONS: Mapping[tuple[DisputeStatus, DisputeEvent], DisputeStatus] = {
    (D.NEEDS_RESPONSE, V.SUBMIT_EVIDENCE): D.UNDER_REVIEW,
    (D.NEEDS_RESPONSE, V.WIN): D.WON,
    (D.NEEDS_RESPONSE, V.LOSE): D.LOST,
    (D.UNDER_REVIEW, V.WIN): D.WON,
    (D.UNDER_REVIEW, V.LOSE): D.LOST,
}


class IllegalDisputeTransition(Exception):
    """An event the dispute's state does not allow (a 409 naming the state at the API)."""

    def __init__(self, current: DisputeStatus, event: DisputeEvent, why: str = "") -> None:
        super().__init__(f"dispute is {current.value}; cannot {event.value}{why}")
        self.current, self.event = current, event


class DisputeError(KeepsFields, ValueError):
    """A field broke a rule; ``field`` names it (a 422 at the API)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Dispute:
    id: str
    payment_id: str
    payment_request_id: str
    merchant_id: str
    amount_minor: int
    currency: str
    fee_minor: int
    reason_code: str
    status: DisputeStatus
    source: str  # the merchant account debited: merchant_pending | merchant_available | merchant_escrow
    evidence_text: str | None
    evidence_submitted_at: datetime | None
    evidence_due_by: datetime
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime


def dispute_transition(current: DisputeStatus, event: DisputeEvent) -> DisputeStatus:
    after = DISPUTE_TRANSITIONS.get((current, event))
    if after is None:
        raise IllegalDisputeTransition(current, event)
    return after


def new_id(random: bytes) -> str:
    if len(random) != ID_RANDOM_BYTES:
        raise ValueError(f"a dispute id needs {ID_RANDOM_BYTES} random bytes")
    return ID_PREFIX + base64.b32encode(random).decode("ascii").lower()


def is_id(value: str) -> bool:
    return bool(_ID.fullmatch(value))


def reason_code(value: object) -> str:
    if not isinstance(value, str) or value not in REASON_CODES:
        raise DisputeError(f"reason_code must be one of {', '.join(REASON_CODES)} (Visa)", field="reason_code")
    return value


def disputed_amount(asked: int | None, disputable_minor: int) -> int:
    """The disputed amount: all that is left (captured − refunded − already disputed) by default."""
    if disputable_minor <= 0:
        raise DisputeError("nothing left to dispute: the payment is refunded or disputed in full", field="amount")
    if asked is None:
        return disputable_minor
    if type(asked) is not int or not 0 < asked <= disputable_minor:
        raise DisputeError(f"amount must be from 1 to {disputable_minor} minor units", field="amount")
    return asked


def evidence_due_by(opened_at: datetime) -> datetime:
    return opened_at + timedelta(seconds=limits.dispute_evidence_window_s)


def evidence(dispute: Dispute, text: object, now: datetime) -> str:
    """The merchant's evidence, checked against the deadline and the state."""
    if now >= dispute.evidence_due_by:
        raise IllegalDisputeTransition(dispute.status, DisputeEvent.SUBMIT_EVIDENCE,
                                       f": evidence was due by {dispute.evidence_due_by.isoformat()}")
    dispute_transition(dispute.status, DisputeEvent.SUBMIT_EVIDENCE)
    if (not isinstance(text, str) or not text.strip() or len(text) > limits.dispute_evidence_chars_max
            or "\x00" in text):
        raise DisputeError(f"text must be 1 to {limits.dispute_evidence_chars_max} characters, no NUL",
                           field="text")
    return text.strip()
