"""Events of the online POS (issue 6), written as a transactional outbox.

``emit`` inserts the event in the caller's unit of work: it commits with the state change
it describes or not at all, so an event exists iff its change committed. Webhook delivery
(services/webhooks.py) reads committed events; nothing is sent from inside a transaction.

Event types (docs/webhooks.md): payment_request.paid, payment.failed, refund.succeeded,
escrow.shipped, escrow.released, dispute.opened, dispute.closed, payout.paid.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Any

from paypos.adapters.db.events import EventRecord, SqlEventStore
from paypos.adapters.db.uow import UnitOfWork

EVENT_TYPES = frozenset({
    "payment_request.paid", "payment.failed", "refund.succeeded", "escrow.shipped", "escrow.released",
    "dispute.opened", "dispute.closed", "payout.paid",
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
    return event_id


def to_json(event: EventRecord) -> dict[str, Any]:
    """An event as the API and webhooks show it."""
    return {"id": event.id, "object": "event", "type": event.type,
            "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
            "data": {"object": event.data}}
