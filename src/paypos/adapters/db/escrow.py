"""The store of escrows and disputes of the online POS (issue 6, docs/escrow-disputes.md).

Plain reads and writes; every decision is in ``services.escrow`` and ``services.disputes``.
Merchant-facing reads are scoped to one merchant: another merchant's row is ``None``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paypos.adapters.db.online import newest_first
from paypos.adapters.db.schema import disputes, escrows, payment_requests
from paypos.domain.dispute import Dispute, DisputeStatus
from paypos.domain.escrow import Escrow
from paypos.domain.payment_request import Status


class SqlEscrowStore:
    def __init__(self, connection: sa.Connection) -> None:
        self._c = connection
        self._postgres = connection.dialect.name == "postgresql"

    # --- escrows --------------------------------------------------------------------------

    def add_escrow(self, escrow: Escrow) -> None:
        self._c.execute(sa.insert(escrows).values(**_fields(escrow)))

    def update_escrow(self, escrow: Escrow) -> None:
        row = _fields(escrow)
        del row["payment_request_id"]
        self._c.execute(sa.update(escrows).where(escrows.c.payment_request_id == escrow.payment_request_id)
                        .values(**row))

    def get_escrow(self, request_id: str) -> Escrow | None:
        row = self._c.execute(sa.select(escrows).where(escrows.c.payment_request_id == request_id)).first()
        return Escrow(**row._mapping) if row else None

    def due_for_release(self, now: datetime, limit: int) -> list[str]:
        """Ids of shipped requests whose auto-release time has come, oldest due first."""
        query = (sa.select(escrows.c.payment_request_id)
                 .join(payment_requests, payment_requests.c.id == escrows.c.payment_request_id)
                 .where(escrows.c.release_due_at <= now, escrows.c.released_at.is_(None),
                        payment_requests.c.status == Status.SHIPPED.value)
                 .order_by(escrows.c.release_due_at, escrows.c.payment_request_id).limit(limit))
        return list(self._c.execute(query).scalars())

    # --- disputes -------------------------------------------------------------------------

    def add_dispute(self, dispute: Dispute) -> None:
        self._c.execute(sa.insert(disputes).values(**_dispute_row(dispute)))

    def update_dispute(self, dispute: Dispute) -> None:
        row = _dispute_row(dispute)
        del row["id"], row["created_at"]
        self._c.execute(sa.update(disputes).where(disputes.c.id == dispute.id).values(**row))

    def get_dispute(self, dispute_id: str, merchant_id: str | None = None, *, lock: bool = False) -> Dispute | None:
        query = sa.select(disputes).where(disputes.c.id == dispute_id)
        if merchant_id is not None:
            query = query.where(disputes.c.merchant_id == merchant_id)
        if lock and self._postgres:
            query = query.with_for_update()
        row = self._c.execute(query).first()
        return _dispute(row) if row else None

    def disputed_minor(self, payment_id: str) -> int:
        """What disputes of the payment took and did not give back (open or lost)."""
        return int(self._c.execute(sa.select(sa.func.coalesce(sa.func.sum(disputes.c.amount_minor), 0)).where(
            disputes.c.payment_id == payment_id, disputes.c.status != DisputeStatus.WON.value)).scalar_one())

    def list_disputes(self, merchant_id: str, *, limit: int, after: tuple[datetime, str] | None) -> list[Dispute]:
        query = sa.select(disputes).where(disputes.c.merchant_id == merchant_id)
        return [_dispute(r) for r in self._c.execute(newest_first(query, disputes, limit, after))]


def _fields(record: Any) -> dict[str, Any]:
    return {f: getattr(record, f) for f in type(record).__slots__}


def _dispute_row(dispute: Dispute) -> dict[str, Any]:
    row = _fields(dispute)
    row["status"] = dispute.status.value
    return row


def _dispute(row: sa.Row[Any]) -> Dispute:
    data = dict(row._mapping)
    data["status"] = DisputeStatus(data["status"])
    return Dispute(**data)
