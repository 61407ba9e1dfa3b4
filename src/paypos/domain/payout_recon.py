"""The payout leg of reconciliation (issue 7, docs/console.md): each payout row against its
ledger transfers, and the exceptions a finance user must look at. Pure: no I/O.

A payout's ledger legs (services/settlement.py): ``payout:<merchant>:<yyyymmdd>`` (available →
payouts_in_transit, when the run creates it), ``payout_paid:<payout id>`` (in transit → the
platform's bank, when the statement says paid) and ``payout_return:<payout id>`` (in transit →
back to available, when returned). Amounts are compared exactly, in minor units.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum


class PayoutException(StrEnum):
    TRANSFER_MISSING = "payout_transfer_missing"  # no in-transit transfer of the payout's amount
    PAID_TRANSFER_MISSING = "paid_transfer_missing"  # status paid, no paid transfer of its amount
    RETURN_TRANSFER_MISSING = "return_transfer_missing"  # status returned, no return transfer
    STATUS_BEHIND_LEDGER = "status_behind_ledger"  # created/sent, yet a paid or return transfer posted
    PAID_AND_RETURNED = "paid_and_returned"  # both transfers posted: money moved twice
    RETURNED = "returned"  # the bank returned it: the merchant's account needs attention
    NOT_SENT = "not_sent"  # created, no clearing file for longer than the stale age
    SENT_UNANSWERED = "sent_unanswered"  # sent, no statement line for longer than the stale age


@dataclass(frozen=True, slots=True)
class Leg:
    """One ledger transfer of a payout: its amount (minor units) and currency."""

    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class PayoutLegs:
    payout_id: str
    merchant_id: str
    business_date: date
    amount_minor: int
    currency: str
    status: str  # created | sent | paid | returned
    updated_at: datetime
    return_code: str | None
    payout: Leg | None  # payout:<merchant>:<yyyymmdd>
    paid: Leg | None  # payout_paid:<payout id>
    returned: Leg | None  # payout_return:<payout id>


def transfer_ids(payout_id: str, merchant_id: str, business_date: date) -> tuple[str, str, str]:
    """The ids of the payout's three ledger transfers (in transit, paid, returned)."""
    return (f"payout:{merchant_id}:{business_date:%Y%m%d}", f"payout_paid:{payout_id}",
            f"payout_return:{payout_id}")


def exceptions(legs: PayoutLegs, now: datetime, stale_after: timedelta) -> list[PayoutException]:
    """What is wrong with one payout (empty: it reconciles), in the order of the enum."""
    def matches(leg: Leg | None) -> bool:
        return leg is not None and leg.amount_minor == legs.amount_minor and leg.currency == legs.currency

    found = []
    if not matches(legs.payout):
        found.append(PayoutException.TRANSFER_MISSING)
    if legs.status == "paid" and not matches(legs.paid):
        found.append(PayoutException.PAID_TRANSFER_MISSING)
    if legs.status == "returned" and not matches(legs.returned):
        found.append(PayoutException.RETURN_TRANSFER_MISSING)
    if legs.status in ("created", "sent") and (legs.paid is not None or legs.returned is not None):
        found.append(PayoutException.STATUS_BEHIND_LEDGER)
    if legs.paid is not None and legs.returned is not None:
        found.append(PayoutException.PAID_AND_RETURNED)
    if legs.status == "returned":
        found.append(PayoutException.RETURNED)
    stale = now - legs.updated_at > stale_after
    if legs.status == "created" and stale:
        found.append(PayoutException.NOT_SENT)
    if legs.status == "sent" and stale:
        found.append(PayoutException.SENT_UNANSWERED)
    return found
