"""Reads for the payout leg of reconciliation (domain/payout_recon.py): payout rows and their
ledger transfers, two indexed queries (SQLAlchemy Core; SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from paypos.adapters.db.schema import ledger_transfers, payouts
from paypos.domain.payout_recon import Leg, PayoutLegs, transfer_ids


def payout_legs(connection: sa.Connection, *, business_date: date | None = None, merchant_id: str | None = None,
                statuses: tuple[str, ...] | None = None, limit: int) -> list[PayoutLegs]:
    """Payouts (newest business date first) each with its ledger transfers, by transfer id."""
    query = sa.select(payouts).order_by(payouts.c.business_date.desc(), payouts.c.id).limit(limit)
    if business_date is not None:
        query = query.where(payouts.c.business_date == business_date)
    if merchant_id is not None:
        query = query.where(payouts.c.merchant_id == merchant_id)
    if statuses is not None:
        query = query.where(payouts.c.status.in_(statuses))
    rows = list(connection.execute(query))
    wanted = [tid for row in rows for tid in transfer_ids(row.id, row.merchant_id, row.business_date)]
    legs: dict[str, Leg] = {}
    for first in range(0, len(wanted), 300):  # bounded IN lists
        for tid, amount, code in connection.execute(sa.select(
                ledger_transfers.c.id, ledger_transfers.c.amount, ledger_transfers.c.currency).where(
                ledger_transfers.c.id.in_(wanted[first:first + 300]))):
            legs[tid] = Leg(int(amount), code)
    found = []
    for row in rows:
        out, paid, back = transfer_ids(row.id, row.merchant_id, row.business_date)
        found.append(PayoutLegs(row.id, row.merchant_id, row.business_date, row.amount_minor, row.currency,
                                row.status, row.updated_at, row.return_code, legs.get(out), legs.get(paid),
                                legs.get(back)))
    return found
