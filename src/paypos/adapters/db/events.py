"""The events table: the online POS's transactional outbox (services/events.py decides)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paypos.adapters.db.schema import events


@dataclass(frozen=True, slots=True)
class EventRecord:
    seq: int
    id: str
    merchant_id: str
    type: str
    object_id: str
    data: dict[str, Any]
    created_at: datetime


class SqlEventStore:
    def __init__(self, connection: sa.Connection) -> None:
        self._c = connection

    def add_event(self, event_id: str, merchant_id: str, event_type: str, object_id: str,
                  data: dict[str, Any], now: datetime) -> int:
        """Insert in the caller's transaction; the event's ``seq``."""
        result = self._c.execute(sa.insert(events).values(
            id=event_id, merchant_id=merchant_id, type=event_type, object_id=object_id,
            data_json=json.dumps(data, sort_keys=True, separators=(",", ":")), created_at=now))
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def get_event(self, merchant_id: str, event_id: str) -> EventRecord | None:
        row = self._c.execute(sa.select(events).where(events.c.id == event_id,
                                                      events.c.merchant_id == merchant_id)).first()
        return _event(row) if row else None

    def list_events(self, merchant_id: str, *, after_seq: int = 0, limit: int = 100,
                    event_type: str | None = None) -> list[EventRecord]:
        """The merchant's events after ``after_seq``, oldest first."""
        query = sa.select(events).where(events.c.merchant_id == merchant_id, events.c.seq > after_seq)
        if event_type is not None:
            query = query.where(events.c.type == event_type)
        rows = self._c.execute(query.order_by(events.c.seq).limit(limit)).all()
        return [_event(row) for row in rows]


    def events_by_id(self, event_ids: list[str]) -> dict[str, EventRecord]:
        """Events by id, whoever's (the webhook delivery loop serves every merchant)."""
        rows = self._c.execute(sa.select(events).where(events.c.id.in_(event_ids)))
        return {row.id: _event(row) for row in rows}

    def list_events_newest_first(self, merchant_id: str, *, before_seq: int | None = None, limit: int = 100,
                                 event_type: str | None = None) -> list[EventRecord]:
        """The merchant's events before ``before_seq`` (all when None), newest first."""
        query = sa.select(events).where(events.c.merchant_id == merchant_id)
        if before_seq is not None:
            query = query.where(events.c.seq < before_seq)
        if event_type is not None:
            query = query.where(events.c.type == event_type)
        rows = self._c.execute(query.order_by(events.c.seq.desc()).limit(limit)).all()
        return [_event(row) for row in rows]


def _event(row: sa.Row[Any]) -> EventRecord:
    return EventRecord(seq=row.seq, id=row.id, merchant_id=row.merchant_id, type=row.type,
                       object_id=row.object_id, data=json.loads(row.data_json), created_at=row.created_at)
