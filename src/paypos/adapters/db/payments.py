"""The store of payments (attempts) and refunds of the online POS (issue 6).

Plain reads and writes; every decision is in ``services.online_payments``. Rows come back as
the records of ``domain.online_payment``. Every merchant-facing read is scoped to one
merchant: another merchant's row is ``None``, like a missing one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paypos.adapters.db.online import newest_first
from paypos.adapters.db.schema import payments, refunds
from paypos.domain.online_payment import Challenge, Method, Payment, PaymentStatus, Refund

_CHALLENGE_COLUMNS = ("challenge_hash", "challenge_expires_at", "challenge_tries_left")


class SqlPaymentStore:
    def __init__(self, connection: sa.Connection) -> None:
        self._c = connection
        self._postgres = connection.dialect.name == "postgresql"

    # --- payments ---------------------------------------------------------------------------

    def add_payment(self, payment: Payment) -> None:
        self._c.execute(sa.insert(payments).values(**_payment_row(payment)))

    def update_payment(self, payment: Payment) -> None:
        row = _payment_row(payment)
        del row["id"], row["created_at"]
        self._c.execute(sa.update(payments).where(payments.c.id == payment.id).values(**row))

    def get_payment(self, payment_id: str, merchant_id: str | None = None, *, lock: bool = False) -> Payment | None:
        query = sa.select(payments).where(payments.c.id == payment_id)
        if merchant_id is not None:
            query = query.where(payments.c.merchant_id == merchant_id)
        if lock and self._postgres:
            query = query.with_for_update()
        row = self._c.execute(query).first()
        return _payment(row) if row else None

    def payments_of_request(self, request_id: str) -> list[Payment]:
        """Every attempt of a request, oldest first."""
        query = (sa.select(payments).where(payments.c.payment_request_id == request_id)
                 .order_by(payments.c.created_at, payments.c.id))
        return [_payment(r) for r in self._c.execute(query)]

    def payment_by_wallet_trade(self, trade_no: str) -> Payment | None:
        row = self._c.execute(sa.select(payments).where(payments.c.wallet_trade_no == trade_no)).first()
        return _payment(row) if row else None

    def list_payments(self, merchant_id: str, *, limit: int, after: tuple[datetime, str] | None,
                      request_id: str | None) -> list[Payment]:
        query = sa.select(payments).where(payments.c.merchant_id == merchant_id)
        if request_id is not None:
            query = query.where(payments.c.payment_request_id == request_id)
        return [_payment(r) for r in self._c.execute(newest_first(query, payments, limit, after))]

    # --- refunds ----------------------------------------------------------------------------

    def add_refund(self, refund: Refund) -> None:
        self._c.execute(sa.insert(refunds).values(
            {f: getattr(refund, f) for f in Refund.__slots__}))  # type: ignore[attr-defined]

    def get_refund(self, refund_id: str, merchant_id: str) -> Refund | None:
        row = self._c.execute(sa.select(refunds).where(refunds.c.id == refund_id,
                                                       refunds.c.merchant_id == merchant_id)).first()
        return Refund(**row._mapping) if row else None

    def list_refunds(self, merchant_id: str, *, limit: int, after: tuple[datetime, str] | None,
                     payment_id: str | None, request_id: str | None) -> list[Refund]:
        query = sa.select(refunds).where(refunds.c.merchant_id == merchant_id)
        if payment_id is not None:
            query = query.where(refunds.c.payment_id == payment_id)
        if request_id is not None:
            query = query.where(refunds.c.payment_request_id == request_id)
        return [Refund(**r._mapping) for r in self._c.execute(newest_first(query, refunds, limit, after))]


def _payment_row(payment: Payment) -> dict[str, Any]:
    row = {f: getattr(payment, f) for f in Payment.__slots__ if f != "challenge"}  # type: ignore[attr-defined]
    row["method"], row["status"] = payment.method.value, payment.status.value
    challenge = payment.challenge
    values = (challenge.code_hash, challenge.expires_at, challenge.tries_left) if challenge else (None,) * 3
    row.update(zip(_CHALLENGE_COLUMNS, values, strict=True))
    return row


def _payment(row: sa.Row[Any]) -> Payment:
    data = dict(row._mapping)
    values = [data.pop(c) for c in _CHALLENGE_COLUMNS]
    challenge = Challenge(*values) if values[0] is not None else None
    data["method"], data["status"] = Method(data["method"]), PaymentStatus(data["status"])
    data["escrow"], data["settled"] = bool(data["escrow"]), bool(data["settled"])
    return Payment(**data, challenge=challenge)
