"""Payment requests of the online POS (issue 6): create, read, list, cancel.

Every call is scoped to one merchant: another merchant's request is :class:`NotFound`,
exactly like one that does not exist. The merchant's order id is unique per merchant:
asking again for the same order with the same terms answers the first request (a refreshed
checkout page never makes a second charge); other terms are an :class:`OrderConflict`.

An unpaid request past its ``expires_at`` reads as ``expired`` (the sweep that writes it is
a later slice); states change only through ``domain.payment_request.transition``.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.online import SqlOnlineStore
from paypos.adapters.db.uow import UnitOfWork
from paypos.domain import payment_request as pr
from paypos.domain.payment_request import Event, PaymentRequest, PaymentRequestError, Status


Row = TypeVar("Row")


class NotFound(LookupError):
    def __init__(self, request_id: str) -> None:
        super().__init__(f"no payment request {request_id!r}")


class OrderConflict(Exception):
    """The merchant already has a request for this order id, with other terms."""

    def __init__(self, order_id: str, existing_id: str) -> None:
        super().__init__(f"order_id {order_id!r} already belongs to payment request {existing_id} "
                         "with other terms")
        self.order_id, self.existing_id = order_id, existing_id


@dataclass(frozen=True, slots=True)
class Page(Generic[Row]):
    data: list[Row]
    has_more: bool
    next_cursor: str | None


def create(
    uow: UnitOfWork,
    merchant_id: str,
    *,
    amount_minor: object,
    currency: str,
    order_id: str,
    description: str = "",
    capture: str = "automatic",
    escrow: bool = False,
    metadata: Mapping[str, str] | None = None,
    expires_at: datetime | None = None,
    now: datetime,
    random: bytes | None = None,
) -> tuple[PaymentRequest, bool]:
    """The new request and ``True``, or the existing one for the same order and ``False``."""
    terms = pr.terms(amount_minor=amount_minor, currency_code=currency, description=description,
                     order_id=order_id, capture=capture, escrow=escrow, metadata=metadata,
                     expires_at=expires_at, now=now)
    store = SqlOnlineStore(uow.connection)
    existing = store.payment_request_by_order(merchant_id, terms.order_id)
    if existing is None:
        request = PaymentRequest(
            id=pr.new_id(random if random is not None else secrets.token_bytes(pr.ID_RANDOM_BYTES)),
            merchant_id=merchant_id, terms=terms, status=Status.REQUIRES_PAYMENT, created_at=now, updated_at=now)
        savepoint = uow.connection.begin_nested()
        try:
            store.add_payment_request(request)
        except sa.exc.IntegrityError:  # the same order, created concurrently
            savepoint.rollback()
            existing = store.payment_request_by_order(merchant_id, terms.order_id)
            if existing is None:
                raise
        else:
            savepoint.commit()
            return request, True
    if not pr.same_terms(existing.terms, terms, expiry_given=expires_at is not None):
        raise OrderConflict(terms.order_id, existing.id)
    return as_of(existing, now), False


def get(uow: UnitOfWork, merchant_id: str, request_id: str, now: datetime) -> PaymentRequest:
    found = SqlOnlineStore(uow.connection).get_payment_request(merchant_id, request_id)
    if found is None:
        raise NotFound(request_id)
    return as_of(found, now)


def list_requests(
    uow: UnitOfWork,
    merchant_id: str,
    *,
    now: datetime,
    limit: int = limits.payment_request_page_size_default,
    cursor: str | None = None,
    status: str | None = None,
    created_gte: datetime | None = None,
    created_lte: datetime | None = None,
) -> Page[PaymentRequest]:
    """One page, newest first; ``next_cursor`` continues after its last row."""
    if type(limit) is not int or not 1 <= limit <= limits.payment_request_page_size_max:
        raise PaymentRequestError(f"limit must be from 1 to {limits.payment_request_page_size_max}", field="limit")
    wanted = _status(status) if status is not None else None
    rows = SqlOnlineStore(uow.connection).list_payment_requests(
        merchant_id, limit=limit + 1, after=decode_cursor(cursor) if cursor else None, status=wanted,
        created_gte=created_gte, created_lte=created_lte, now=now)
    data = [as_of(r, now) for r in rows[:limit]]
    has_more = len(rows) > limit
    return Page(data, has_more, encode_cursor(data[-1]) if has_more else None)


def cancel(uow: UnitOfWork, merchant_id: str, request_id: str, now: datetime) -> PaymentRequest:
    """``requires_payment`` -> ``canceled``; any other state is an ``IllegalTransition``."""
    store = SqlOnlineStore(uow.connection)
    found = store.get_payment_request(merchant_id, request_id, lock=True)
    if found is None:
        raise NotFound(request_id)
    after = pr.transition(as_of(found, now).status, Event.CANCEL)
    store.set_payment_request_status(found.id, after, now)
    return replace(found, status=after, updated_at=now)


def as_of(request: PaymentRequest, now: datetime) -> PaymentRequest:
    """An unpaid request past its expiry is expired, whether or not the sweep wrote it yet."""
    if request.status is Status.REQUIRES_PAYMENT and request.terms.expires_at <= now:
        return replace(request, status=pr.transition(request.status, Event.EXPIRE))
    return request


def _status(value: str) -> Status:
    try:
        return Status(value)
    except ValueError:
        raise PaymentRequestError(f"unknown status {value!r}", field="status") from None


# --- cursors: opaque to clients, base64url of JSON [created_at, id] -------------------------

def encode_cursor(last: Any) -> str:
    """After ``last``, any row with ``created_at`` and ``id``."""
    raw = json.dumps([last.created_at.isoformat(), last.id], separators=(",", ":")).encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, is_id: Callable[[str], bool] = pr.is_id) -> tuple[datetime, str]:
    bad = PaymentRequestError("cursor is not one this API returned", field="cursor")
    if len(cursor) > limits.api_cursor_chars_max:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at_text, request_id = json.loads(raw)
        created_at = datetime.fromisoformat(created_at_text)
    except (binascii.Error, ValueError, TypeError):
        raise bad from None
    if created_at.tzinfo is None or not isinstance(request_id, str) or not is_id(request_id):
        raise bad
    return created_at, request_id


def to_json(request: PaymentRequest, base_url: str) -> dict[str, Any]:
    """The API's representation: amounts in minor units beside their currency."""
    t = request.terms
    return {
        "id": request.id, "object": "payment_request", "status": request.status.value,
        "amount": t.amount_minor, "currency": t.currency, "description": t.description,
        "order_id": t.order_id, "capture": t.capture.value, "escrow": t.escrow, "metadata": dict(t.metadata),
        "checkout_url": f"{base_url.rstrip('/')}/pay/{request.id}",
        "expires_at": _iso(t.expires_at), "created_at": _iso(request.created_at),
        "updated_at": _iso(request.updated_at),
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
