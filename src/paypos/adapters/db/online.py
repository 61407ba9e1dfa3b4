"""The online payments store: payment requests and Idempotency-Key records.

Plain reads and writes; every decision is in ``services.payment_requests`` and
``services.idempotency``. Rows come back as the records of ``domain.payment_request``
(payment requests) or :class:`IdempotencyRecord`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paypos.adapters.db.schema import idempotency_keys, payment_requests
from paypos.domain.payment_request import Capture, PaymentRequest, PaymentRequestTerms, Status


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    merchant_id: str
    key: str
    request_method: str
    request_path: str
    request_hash: str
    state: str  # in_progress | done
    response_status: int | None
    response_body: str | None
    created_at: datetime
    expires_at: datetime


class SqlOnlineStore:
    def __init__(self, connection: sa.Connection) -> None:
        self._c = connection
        self._postgres = connection.dialect.name == "postgresql"

    # --- payment requests ------------------------------------------------------------

    def add_payment_request(self, request: PaymentRequest) -> None:
        t = request.terms
        self._c.execute(sa.insert(payment_requests).values(
            id=request.id, merchant_id=request.merchant_id, order_id=t.order_id, amount_minor=t.amount_minor,
            currency=t.currency, description=t.description, capture=t.capture.value, escrow=t.escrow,
            status=request.status.value, metadata_json=json.dumps(dict(t.metadata), sort_keys=True),
            expires_at=t.expires_at, created_at=request.created_at, updated_at=request.updated_at))

    def get_payment_request(self, merchant_id: str | None, request_id: str, *,
                            lock: bool = False) -> PaymentRequest | None:
        """The merchant's own request; another merchant's is ``None``, like a missing one.
        ``merchant_id=None`` is the buyer's hosted checkout, which knows only the id."""
        query = sa.select(payment_requests).where(payment_requests.c.id == request_id)
        if merchant_id is not None:
            query = query.where(payment_requests.c.merchant_id == merchant_id)
        if lock and self._postgres:
            query = query.with_for_update()
        row = self._c.execute(query).first()
        return payment_request_of(row) if row else None

    def payment_request_by_order(self, merchant_id: str, order_id: str) -> PaymentRequest | None:
        row = self._c.execute(sa.select(payment_requests).where(
            payment_requests.c.merchant_id == merchant_id, payment_requests.c.order_id == order_id)).first()
        return payment_request_of(row) if row else None

    def set_payment_request_status(self, request_id: str, status: Status, now: datetime) -> None:
        self._c.execute(sa.update(payment_requests).where(payment_requests.c.id == request_id)
                        .values(status=status.value, updated_at=now))

    def list_payment_requests(
        self,
        merchant_id: str,
        *,
        limit: int,
        after: tuple[datetime, str] | None = None,
        status: Status | None = None,
        created_gte: datetime | None = None,
        created_lte: datetime | None = None,
        now: datetime,
    ) -> list[PaymentRequest]:
        """Newest first, by (created_at, id) descending; ``after`` is the last row of the page before.
        An unpaid request past its expiry counts as expired (``now``) before the sweep writes it."""
        t = payment_requests.c
        query = sa.select(payment_requests).where(t.merchant_id == merchant_id)
        if status is not None:
            query = query.where(_status_is(status, now))
        if created_gte is not None:
            query = query.where(t.created_at >= created_gte)
        if created_lte is not None:
            query = query.where(t.created_at <= created_lte)
        return [payment_request_of(r) for r in self._c.execute(newest_first(query, payment_requests, limit, after))]

    def due_to_expire(self, now: datetime, limit: int) -> list[str]:
        """Ids of requests past ``expires_at`` still unpaid or in an attempt, oldest expiry first."""
        t = payment_requests.c
        query = (sa.select(t.id).where(t.status.in_((Status.REQUIRES_PAYMENT.value, Status.PROCESSING.value)),
                                       t.expires_at <= now).order_by(t.expires_at, t.id).limit(limit))
        return list(self._c.execute(query).scalars())

    # --- idempotency keys ------------------------------------------------------------

    def get_idempotency_key(self, merchant_id: str, key: str) -> IdempotencyRecord | None:
        row = self._c.execute(sa.select(idempotency_keys).where(
            idempotency_keys.c.merchant_id == merchant_id, idempotency_keys.c.key == key)).first()
        return IdempotencyRecord(**row._mapping) if row else None

    def add_idempotency_key(self, record: IdempotencyRecord) -> None:
        """Raises ``sqlalchemy.exc.IntegrityError`` when the merchant already holds the key."""
        self._c.execute(sa.insert(idempotency_keys).values(**_fields(record)))

    def replace_idempotency_key(self, old: IdempotencyRecord, new: IdempotencyRecord) -> bool:
        """Take over an expired or abandoned record, only if it is still exactly ``old``."""
        k = idempotency_keys.c
        result = self._c.execute(sa.update(idempotency_keys).where(
            k.merchant_id == old.merchant_id, k.key == old.key, k.state == old.state,
            k.created_at == old.created_at).values(**_fields(new)))
        return result.rowcount == 1

    def finish_idempotency_key(self, merchant_id: str, key: str, status: int, body: str) -> None:
        k = idempotency_keys.c
        self._c.execute(sa.update(idempotency_keys).where(k.merchant_id == merchant_id, k.key == key)
                        .values(state="done", response_status=status, response_body=body))

    def delete_idempotency_key(self, merchant_id: str, key: str) -> None:
        k = idempotency_keys.c
        self._c.execute(sa.delete(idempotency_keys).where(k.merchant_id == merchant_id, k.key == key,
                                                          k.state == "in_progress"))


def newest_first(query: sa.Select[Any], table: sa.Table, limit: int,
                 after: tuple[datetime, str] | None) -> sa.Select[Any]:
    """A cursor page: newest first by (created_at, id); ``after`` is the last row of the page before."""
    if after is not None:
        created_at, last_id = after
        query = query.where(sa.or_(table.c.created_at < created_at,
                                   sa.and_(table.c.created_at == created_at, table.c.id < last_id)))
    return query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)


def _status_is(status: Status, now: datetime) -> sa.ColumnElement[bool]:
    t = payment_requests.c
    unpaid = t.status == Status.REQUIRES_PAYMENT.value
    if status is Status.EXPIRED:
        return sa.or_(t.status == status.value, sa.and_(unpaid, t.expires_at <= now))
    if status is Status.REQUIRES_PAYMENT:
        return sa.and_(unpaid, t.expires_at > now)
    return t.status == status.value


def _fields(record: IdempotencyRecord) -> dict[str, Any]:
    return {f: getattr(record, f) for f in IdempotencyRecord.__slots__}


def payment_request_of(row: sa.Row[Any]) -> PaymentRequest:
    terms = PaymentRequestTerms(
        amount_minor=row.amount_minor, currency=row.currency, description=row.description,
        order_id=row.order_id, capture=Capture(row.capture), escrow=bool(row.escrow),
        metadata=json.loads(row.metadata_json), expires_at=row.expires_at)
    return PaymentRequest(id=row.id, merchant_id=row.merchant_id, terms=terms, status=Status(row.status),
                          created_at=row.created_at, updated_at=row.updated_at)
