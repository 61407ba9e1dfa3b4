"""Webhook endpoints, deliveries and attempts (services/webhooks.py decides)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paypos.adapters.db.schema import webhook_attempts, webhook_deliveries, webhook_endpoints

ENABLED, DELETED = "enabled", "deleted"
ENDPOINT_DELETED = "the endpoint was deleted"


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    id: str
    merchant_id: str
    url: str
    secret_enc: bytes
    previous_secret_enc: bytes | None
    previous_secret_expires_at: datetime | None
    enabled_events: list[str]
    status: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: str
    merchant_id: str
    event_id: str
    endpoint_id: str
    state: str
    attempts: int
    schedule_step: int
    next_attempt_at: datetime
    lease_token: str | None
    last_status_code: int | None
    last_error: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    delivery_id: str
    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    error: str


class SqlWebhookStore:
    def __init__(self, connection: sa.Connection) -> None:
        self._c = connection
        self._postgres = connection.dialect.name == "postgresql"

    # --- endpoints ------------------------------------------------------------------------

    def add_endpoint(self, endpoint: EndpointRecord) -> None:
        self._c.execute(sa.insert(webhook_endpoints).values(
            id=endpoint.id, merchant_id=endpoint.merchant_id, url=endpoint.url, secret_enc=endpoint.secret_enc,
            previous_secret_enc=endpoint.previous_secret_enc,
            previous_secret_expires_at=endpoint.previous_secret_expires_at,
            enabled_events_json=json.dumps(endpoint.enabled_events), status=endpoint.status,
            created_at=endpoint.created_at))

    def get_endpoint(self, merchant_id: str, endpoint_id: str, *, lock: bool = False) -> EndpointRecord | None:
        query = sa.select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id,
                                                   webhook_endpoints.c.merchant_id == merchant_id,
                                                   webhook_endpoints.c.status != DELETED)
        if lock and self._postgres:
            query = query.with_for_update()
        row = self._c.execute(query).first()
        return _endpoint(row) if row else None

    def endpoints_by_id(self, endpoint_ids: Sequence[str]) -> dict[str, EndpointRecord]:
        rows = self._c.execute(sa.select(webhook_endpoints).where(webhook_endpoints.c.id.in_(endpoint_ids)))
        return {row.id: _endpoint(row) for row in rows}

    def list_endpoints(self, merchant_id: str, *, enabled_only: bool = False) -> list[EndpointRecord]:
        """The merchant's endpoints but the deleted, oldest first (a merchant has few: limits.py)."""
        query = sa.select(webhook_endpoints).where(webhook_endpoints.c.merchant_id == merchant_id,
                                                   webhook_endpoints.c.status != DELETED)
        if enabled_only:
            query = query.where(webhook_endpoints.c.status == ENABLED)
        rows = self._c.execute(query.order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id))
        return [_endpoint(row) for row in rows]

    def set_secrets(self, endpoint_id: str, secret_enc: bytes, previous_secret_enc: bytes | None,
                    previous_secret_expires_at: datetime | None) -> None:
        self._c.execute(sa.update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id).values(
            secret_enc=secret_enc, previous_secret_enc=previous_secret_enc,
            previous_secret_expires_at=previous_secret_expires_at))

    def delete_endpoint(self, endpoint_id: str, now: datetime) -> None:
        """Mark the endpoint deleted and fail its pending deliveries. The row stays: a delivery
        made by a transaction that read the endpoint just before still has its foreign key, so
        deleting an endpoint never makes a payment's transaction fail."""
        self._c.execute(sa.update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
                        .values(status=DELETED))
        self.fail_pending_deliveries([endpoint_id], ENDPOINT_DELETED, now)

    def fail_pending_deliveries(self, endpoint_ids: Sequence[str], error: str, now: datetime) -> None:
        self._c.execute(sa.update(webhook_deliveries).where(
            webhook_deliveries.c.endpoint_id.in_(endpoint_ids), webhook_deliveries.c.state == "pending",
        ).values(state="failed", lease_token=None, last_error=error, updated_at=now))

    # --- deliveries -----------------------------------------------------------------------

    def add_delivery(self, delivery_id: str, merchant_id: str, event_id: str, endpoint_id: str,
                     now: datetime) -> None:
        self._c.execute(sa.insert(webhook_deliveries).values(
            id=delivery_id, merchant_id=merchant_id, event_id=event_id, endpoint_id=endpoint_id, state="pending",
            attempts=0, schedule_step=0, next_attempt_at=now, lease_token=None, last_status_code=None,
            last_error="", created_at=now, updated_at=now))

    def due_deliveries(self, now: datetime, limit: int) -> list[DeliveryRecord]:
        query = (sa.select(webhook_deliveries)
                 .where(webhook_deliveries.c.state == "pending", webhook_deliveries.c.next_attempt_at <= now)
                 .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id).limit(limit))
        if self._postgres:
            query = query.with_for_update(skip_locked=True)  # several host processes share the outbox
        return [_delivery(row) for row in self._c.execute(query)]

    def get_delivery(self, delivery_id: str, *, lock: bool = False) -> DeliveryRecord | None:
        query = sa.select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
        if lock and self._postgres:
            query = query.with_for_update()
        row = self._c.execute(query).first()
        return _delivery(row) if row else None

    def deliveries_of_event(self, merchant_id: str, event_id: str) -> list[DeliveryRecord]:
        rows = self._c.execute(sa.select(webhook_deliveries).where(
            webhook_deliveries.c.merchant_id == merchant_id, webhook_deliveries.c.event_id == event_id,
        ).order_by(webhook_deliveries.c.created_at, webhook_deliveries.c.id))
        return [_delivery(row) for row in rows]

    def update_delivery(self, delivery_id: str, **values: Any) -> None:
        self._c.execute(sa.update(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id).values(**values))

    def lease_deliveries(self, delivery_ids: Sequence[str], token: str, until: datetime) -> None:
        self._c.execute(sa.update(webhook_deliveries).where(webhook_deliveries.c.id.in_(delivery_ids))
                        .values(lease_token=token, next_attempt_at=until))

    # --- attempts -------------------------------------------------------------------------

    def add_attempt(self, attempt: AttemptRecord) -> None:
        self._c.execute(sa.insert(webhook_attempts).values(
            delivery_id=attempt.delivery_id, attempted_at=attempt.attempted_at, status_code=attempt.status_code,
            duration_ms=attempt.duration_ms, error=attempt.error))

    def attempts_of(self, delivery_ids: Sequence[str]) -> list[AttemptRecord]:
        """Attempts of these deliveries, oldest first."""
        rows = self._c.execute(sa.select(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(delivery_ids))
                               .order_by(webhook_attempts.c.id))
        return [AttemptRecord(delivery_id=r.delivery_id, attempted_at=r.attempted_at, status_code=r.status_code,
                              duration_ms=r.duration_ms, error=r.error) for r in rows]


def _endpoint(row: sa.Row[Any]) -> EndpointRecord:
    return EndpointRecord(
        id=row.id, merchant_id=row.merchant_id, url=row.url, secret_enc=row.secret_enc,
        previous_secret_enc=row.previous_secret_enc, previous_secret_expires_at=row.previous_secret_expires_at,
        enabled_events=json.loads(row.enabled_events_json), status=row.status, created_at=row.created_at)


def _delivery(row: sa.Row[Any]) -> DeliveryRecord:
    return DeliveryRecord(
        id=row.id, merchant_id=row.merchant_id, event_id=row.event_id, endpoint_id=row.endpoint_id,
        state=row.state, attempts=row.attempts, schedule_step=row.schedule_step,
        next_attempt_at=row.next_attempt_at, lease_token=row.lease_token, last_status_code=row.last_status_code,
        last_error=row.last_error, created_at=row.created_at, updated_at=row.updated_at)
