"""The payout leg of reconciliation (domain/payout_recon.py): for the reconciliation slice and
the console's *Payout exceptions* page.

``payout_legs(uow, ...)`` — each payout with its three ledger transfers;
``payout_exceptions(uow, now, ...)`` — only the payouts that do not reconcile, with why;
``record_payout_exceptions(uow, now, ...)`` — those stored as reconciliation exceptions (kinds
``payout_*``, docs/reconciliation.md), once per payout and problem, to be resolved with a note
like the terminal leg's.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from paypos import limits
from paypos.adapters.db.payout_recon import payout_legs as _payout_legs
from paypos.adapters.db.uow import UnitOfWork
from paypos.domain import payout_recon as rules
from paypos.domain.payout_recon import Leg, PayoutException, PayoutLegs
from paypos.services import reconciliation

_LEG = {PayoutException.TRANSFER_MISSING: "payout", PayoutException.PAID_TRANSFER_MISSING: "paid",
        PayoutException.RETURN_TRANSFER_MISSING: "returned"}
_KIND = {PayoutException.STATUS_BEHIND_LEDGER: "payout_unexpected", PayoutException.PAID_AND_RETURNED: "payout_unexpected",
         PayoutException.RETURNED: "payout_returned", PayoutException.NOT_SENT: "payout_stale",
         PayoutException.SENT_UNANSWERED: "payout_stale"}


def payout_legs(uow: UnitOfWork, *, business_date: date | None = None, merchant_id: str | None = None,
                limit: int = limits.settlement_page_size_max) -> list[PayoutLegs]:
    return _payout_legs(uow.connection, business_date=business_date, merchant_id=merchant_id, limit=limit)


def payout_exceptions(uow: UnitOfWork, now: datetime, *, business_date: date | None = None,
                      merchant_id: str | None = None, limit: int = limits.settlement_page_size_max,
                      stale_after: timedelta = timedelta(days=limits.payout_stale_after_days)) -> list[dict[str, Any]]:
    """The payouts among the newest ``limit`` that do not reconcile: JSON-ready dicts with
    ``exceptions`` (a list of ``PayoutException`` values) and the legs' amounts (None: absent)."""
    found = []
    for legs in payout_legs(uow, business_date=business_date, merchant_id=merchant_id, limit=limit):
        wrong = rules.exceptions(legs, now, stale_after)
        if wrong:
            found.append({"payout_id": legs.payout_id, "merchant_id": legs.merchant_id,
                          "business_date": legs.business_date.isoformat(), "amount_minor": legs.amount_minor,
                          "currency": legs.currency, "status": legs.status, "return_code": legs.return_code,
                          "exceptions": [e.value for e in wrong],
                          "payout_transfer_minor": legs.payout.amount_minor if legs.payout else None,
                          "paid_transfer_minor": legs.paid.amount_minor if legs.paid else None,
                          "return_transfer_minor": legs.returned.amount_minor if legs.returned else None})
    return found


def record_payout_exceptions(uow: UnitOfWork, now: datetime, *, business_date: date | None = None,
                             merchant_id: str | None = None, limit: int = limits.settlement_page_size_max,
                             stale_after: timedelta = timedelta(days=limits.payout_stale_after_days)) -> int:
    """Store each problem of the newest ``limit`` payouts as a reconciliation exception (the
    transaction ref is ``<payout id>:<problem>``, so a problem is stored once however often
    this runs); returns how many are new."""
    new = 0
    for legs in payout_legs(uow, business_date=business_date, merchant_id=merchant_id, limit=limit):
        for problem in rules.exceptions(legs, now, stale_after):
            kind, reason, posted = _classify(legs, problem)
            new += reconciliation.record_exception(
                uow, kind, legs.merchant_id, f"{legs.payout_id}:{problem.value}", reason, now,
                terminal_amount_minor=legs.amount_minor, host_amount_minor=posted, currency=legs.currency)
    return new


def _classify(legs: PayoutLegs, problem: PayoutException) -> tuple[str, str, int | None]:
    """(kind, reason, the ledger leg's amount) of one problem; the payout's own amount is the other side."""
    if problem in _LEG:
        leg: Leg | None = getattr(legs, _LEG[problem])
        if leg is None:
            return "payout_missing", f"{problem.value}: no {_LEG[problem]} transfer for payout {legs.payout_id}", None
        return ("payout_amount_differs", f"{problem.value}: the {_LEG[problem]} transfer is {leg.amount_minor} "
                f"{leg.currency}, the payout {legs.amount_minor} {legs.currency}", leg.amount_minor)
    reason = {PayoutException.RETURNED: f"returned by the bank ({legs.return_code or 'no code'})",
              PayoutException.NOT_SENT: "created, in no clearing file yet",
              PayoutException.SENT_UNANSWERED: "sent, no bank statement line yet",
              PayoutException.STATUS_BEHIND_LEDGER: f"status {legs.status}, yet a paid or return transfer posted",
              PayoutException.PAID_AND_RETURNED: "both paid and returned transfers posted"}[problem]
    return _KIND[problem], reason, None
