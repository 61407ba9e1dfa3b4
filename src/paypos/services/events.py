"""Events of the online POS (issue 6), written as a transactional outbox.

``emit`` inserts the event in the caller's unit of work: it commits with the state change
it describes or not at all, so an event exists iff its change committed. Webhook delivery
(services/webhooks.py) reads committed events; nothing is sent from inside a transaction.

Event types (docs/webhooks.md): payment_request.paid, payment.failed, refund.succeeded,
escrow.shipped, escrow.released, dispute.opened, dispute.closed, payout.paid, payout.returned
(docs/settlement.md); merchant.approved, merchant.activated, terminal.activated
(docs/merchant-lifecycle.md).
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Any

from paypos.adapters.db.events import EventRecord, SqlEventStore
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.db.webhooks import SqlWebhookStore
from paypos.domain import webhook

EVENT_TYPES = frozenset({
    "payment_request.paid", "payment.failed", "refund.succeeded", "escrow.shipped", "escrow.released",
    "dispute.opened", "dispute.closed", "payout.paid", "payout.returned",
    # issue 7, merchant lifecycle (docs/merchant-lifecycle.md)
    "merchant.approved", "merchant.activated", "terminal.activated",
})


def new_event_id() -> str:
    return "evt_" + base64.b32encode(secrets.token_bytes(15)).decode().lower()


def emit(uow: UnitOfWork, merchant_id: str, event_type: str, data: dict[str, Any], now: datetime) -> str:
    """Record ``event_type`` about ``data`` (the object as the API shows it, with an ``id``)
    in ``uow``'s transaction; the new event's id."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    object_id = str(data.get("id", ""))
    if not object_id:
        raise ValueError("an event's data must carry the object's id")
    event_id = new_event_id()
    SqlEventStore(uow.connection).add_event(event_id, merchant_id, event_type, object_id, data, now)
    fan_out(uow, merchant_id, event_id, event_type, now)
    return event_id


def fan_out(uow: UnitOfWork, merchant_id: str, event_id: str, event_type: str, now: datetime) -> list[str]:
    """One pending webhook delivery per enabled endpoint of the merchant that asks for
    ``event_type``, in the event's own transaction; the new deliveries' ids.

    Fan-out happens here rather than in the delivery loop after a per-endpoint cursor over
    ``events.seq``: on PostgreSQL a sequence value is taken at INSERT but becomes visible at
    COMMIT, so concurrent transactions commit their events out of ``seq`` order and a cursor
    could step over one that commits late. Made in the same transaction, a delivery exists iff
    its event does, and an endpoint created later sees only later events. The price, one
    indexed read of the merchant's few endpoints per event, is paid by the writer.
    """
    store = SqlWebhookStore(uow.connection)
    made = []
    for endpoint in store.list_endpoints(merchant_id, enabled_only=True):
        if webhook.subscribes(endpoint.enabled_events, event_type):
            delivery_id = webhook.new_id(webhook.DELIVERY_ID_PREFIX, secrets.token_bytes(15))
            store.add_delivery(delivery_id, merchant_id, event_id, endpoint.id, now)
            made.append(delivery_id)
    return made


def to_json(event: EventRecord) -> dict[str, Any]:
    """An event as the API and webhooks show it."""
    return {"id": event.id, "object": "event", "type": event.type,
            "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
            "data": {"object": event.data}}
