"""The payout leg of reconciliation (domain/payout_recon.py): for the reconciliation slice and
the console's *Payout exceptions* page.

``payout_legs(uow, ...)`` — each payout with its three ledger transfers;
``payout_exceptions(uow, now, ...)`` — only the payouts that do not reconcile, with why.
Reads only.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from paypos import limits
from paypos.adapters.db.payout_recon import payout_legs as _payout_legs
from paypos.adapters.db.uow import UnitOfWork
from paypos.domain import payout_recon as rules
from paypos.domain.payout_recon import PayoutLegs


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
