"""Webhooks of the online POS (issue 6, docs/webhooks.md): endpoints, the delivery loop,
redelivery and secret rotation.

Every event (services/events.py) gets one delivery per endpoint that asked for its type,
made in the event's own transaction. The delivery loop then POSTs each due delivery:

- claim: in one short transaction, take the due pending deliveries (``FOR UPDATE SKIP
  LOCKED`` on PostgreSQL, so several host processes can share the outbox), stamp them with a
  random lease token and move ``next_attempt_at`` past the time their POSTs can take;
- POST the event as JSON, signed (``Paypos-Signature``, domain/webhook.py), outside any
  transaction;
- record: the attempt (time, status, duration, error excerpt) and the delivery's next state —
  only while the lease is still this loop's (a compare on the token): 2xx is ``succeeded``;
  anything else (another status, a timeout, no connection) waits per the retry schedule,
  and after its last step the delivery is ``failed``.

A loop that dies mid-batch leaves its deliveries to be claimed again when the lease ends:
delivery is at least once, and a receiver recognises a repeat by ``Paypos-Event-Id``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from paypos import __version__, limits
from paypos.adapters.db.events import EventRecord, SqlEventStore
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.db.webhooks import (
    ENABLED,
    ENDPOINT_DELETED,
    AttemptRecord,
    DeliveryRecord,
    EndpointRecord,
    SqlWebhookStore,
)
from paypos.adapters.outbound_http import post_bounded
from paypos.adapters.vault import Vault
from paypos.bootstrap import App
from paypos.domain import webhook
from paypos.domain.webhook import EndpointError, RetrySchedule
from paypos.services import events
from paypos.services.background import run_batches

log = logging.getLogger("paypos.webhooks")

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
SECRET_PURPOSE = "webhook-secret"
# A POST is bounded by the timeout for each of connect, send and read (post_json).
LEASE_S_PER_DELIVERY = 3 * limits.webhook_timeout_s

# POST (url, body, headers) -> (HTTP status, the answer's first bytes as text).
Post = Callable[[str, bytes, Mapping[str, str]], tuple[int, str]]

class NotFound(LookupError):
    """No such object for this merchant (another merchant's is not found either)."""


class Refused(ValueError):
    """A well-formed request the current state refuses; ``slug`` names the rule."""

    def __init__(self, slug: str, message: str) -> None:
        super().__init__(message)
        self.slug = slug


@dataclass(frozen=True, slots=True)
class EventPage:
    data: list[EventRecord]
    has_more: bool
    next_cursor: str | None


# --- endpoints ----------------------------------------------------------------------------

def create_endpoint(uow: UnitOfWork, vault: Vault, merchant_id: str, url: str, enabled_events: Sequence[str],
                    now: datetime) -> tuple[EndpointRecord, str]:
    """A new enabled endpoint and its secret (shown to the merchant this once)."""
    checked_url = webhook.check_url(url)
    wanted = webhook.check_enabled_events(enabled_events, events.EVENT_TYPES)
    store = SqlWebhookStore(uow.connection)
    if len(store.list_endpoints(merchant_id)) >= limits.webhook_endpoints_per_merchant_max:
        raise Refused("limit-reached", f"a merchant may have at most {limits.webhook_endpoints_per_merchant_max} "
                                       "webhook endpoints; delete one first")
    secret = webhook.new_secret(secrets.token_bytes(webhook.SECRET_RANDOM_BYTES))
    endpoint = EndpointRecord(
        id=webhook.new_id(webhook.ENDPOINT_ID_PREFIX, secrets.token_bytes(15)), merchant_id=merchant_id,
        url=checked_url, secret_enc=vault.seal(secret, SECRET_PURPOSE), previous_secret_enc=None,
        previous_secret_expires_at=None, enabled_events=wanted, status=ENABLED, created_at=now)
    store.add_endpoint(endpoint)
    return endpoint, secret


def get_endpoint(uow: UnitOfWork, merchant_id: str, endpoint_id: str, *, lock: bool = False) -> EndpointRecord:
    found = SqlWebhookStore(uow.connection).get_endpoint(merchant_id, endpoint_id, lock=lock)
    if found is None:
        raise NotFound(f"no webhook endpoint {endpoint_id!r}")
    return found


def list_endpoints(uow: UnitOfWork, merchant_id: str) -> list[EndpointRecord]:
    return SqlWebhookStore(uow.connection).list_endpoints(merchant_id)


def delete_endpoint(uow: UnitOfWork, merchant_id: str, endpoint_id: str, now: datetime) -> EndpointRecord:
    """The endpoint is gone for the merchant and nothing more is sent to it: its pending
    deliveries fail (their history stays listed under their events)."""
    found = get_endpoint(uow, merchant_id, endpoint_id, lock=True)
    SqlWebhookStore(uow.connection).delete_endpoint(found.id, now)
    return found


def rotate_secret(uow: UnitOfWork, vault: Vault, merchant_id: str, endpoint_id: str,
                  now: datetime) -> tuple[EndpointRecord, str]:
    """A new secret for the endpoint (returned this once); the one it replaces still signs, as
    a second ``v1``, for ``limits.webhook_secret_rotation_grace_s``."""
    found = get_endpoint(uow, merchant_id, endpoint_id, lock=True)
    secret = webhook.new_secret(secrets.token_bytes(webhook.SECRET_RANDOM_BYTES))
    sealed = vault.seal(secret, SECRET_PURPOSE)
    grace_ends = now + timedelta(seconds=limits.webhook_secret_rotation_grace_s)
    SqlWebhookStore(uow.connection).set_secrets(found.id, sealed, found.secret_enc, grace_ends)
    return replace(found, secret_enc=sealed, previous_secret_enc=found.secret_enc,
                   previous_secret_expires_at=grace_ends), secret


def signing_secrets(endpoint: EndpointRecord, vault: Vault, now: datetime) -> list[str]:
    """The secrets that sign for ``endpoint`` now: the current one, then the previous one
    while its grace period lasts."""
    live = [vault.open(endpoint.secret_enc, SECRET_PURPOSE)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_enc is not None and expires is not None and now < expires:
        live.append(vault.open(endpoint.previous_secret_enc, SECRET_PURPOSE))
    return live


def endpoint_to_json(endpoint: EndpointRecord, secret: str | None = None) -> dict[str, Any]:
    """An endpoint as the API shows it; ``secret`` only right after creation or rotation."""
    shown: dict[str, Any] = {
        "id": endpoint.id, "object": "webhook_endpoint", "url": endpoint.url,
        "enabled_events": endpoint.enabled_events, "status": endpoint.status,
        "created_at": _iso(endpoint.created_at)}
    if secret is not None:
        shown["secret"] = secret
    return shown


# --- events and their deliveries ----------------------------------------------------------

def list_events(uow: UnitOfWork, merchant_id: str, *, limit: int, cursor: str | None = None,
                event_type: str | None = None) -> EventPage:
    """One page of the merchant's events, newest first; ``next_cursor`` continues after it."""
    if event_type is not None and event_type not in events.EVENT_TYPES:
        raise EndpointError(f"type: unknown event type {event_type!r}", "type")
    before = _decode_cursor(cursor) if cursor else None
    rows = SqlEventStore(uow.connection).list_events_newest_first(
        merchant_id, before_seq=before, limit=limit + 1, event_type=event_type)
    data = rows[:limit]
    has_more = len(rows) > limit
    return EventPage(data, has_more, _encode_cursor(data[-1].seq) if has_more else None)


def get_event(uow: UnitOfWork, merchant_id: str, event_id: str) -> EventRecord:
    found = SqlEventStore(uow.connection).get_event(merchant_id, event_id)
    if found is None:
        raise NotFound(f"no event {event_id!r}")
    return found


def deliveries_of(uow: UnitOfWork, merchant_id: str, event_id: str) -> list[dict[str, Any]]:
    """The event's deliveries as the API shows them, each with its attempts, oldest first."""
    get_event(uow, merchant_id, event_id)
    store = SqlWebhookStore(uow.connection)
    found = store.deliveries_of_event(merchant_id, event_id)
    attempts = store.attempts_of([d.id for d in found])
    urls = {e.id: e.url for e in store.endpoints_by_id([d.endpoint_id for d in found]).values()}
    return [delivery_to_json(d, urls.get(d.endpoint_id, ""), [a for a in attempts if a.delivery_id == d.id])
            for d in found]


def redeliver(uow: UnitOfWork, merchant_id: str, event_id: str, endpoint_id: str | None,
              now: datetime) -> list[dict[str, Any]]:
    """Send the event again now, to one endpoint (a delivery is made if it had none) or to every
    endpoint it went to, with a fresh retry schedule; a delivery in flight is left to finish."""
    get_event(uow, merchant_id, event_id)
    store = SqlWebhookStore(uow.connection)
    existing = store.deliveries_of_event(merchant_id, event_id)
    if endpoint_id is not None:
        endpoint = get_endpoint(uow, merchant_id, endpoint_id)
        existing = [d for d in existing if d.endpoint_id == endpoint.id]
        if not existing:
            delivery_id = webhook.new_id(webhook.DELIVERY_ID_PREFIX, secrets.token_bytes(15))
            store.add_delivery(delivery_id, merchant_id, event_id, endpoint.id, now)
    else:
        live = {e.id for e in store.list_endpoints(merchant_id, enabled_only=True)}
        existing = [d for d in existing if d.endpoint_id in live]
        if not existing:
            raise Refused("nothing-to-redeliver",
                          f"event {event_id!r} went to no endpoint that still exists; name one in 'endpoint'")
    for delivery in existing:
        if delivery.state == PENDING and delivery.lease_token is not None and delivery.next_attempt_at > now:
            continue  # in flight: its own answer decides
        store.update_delivery(delivery.id, state=PENDING, schedule_step=0, next_attempt_at=now, lease_token=None,
                              updated_at=now)
    chosen = deliveries_of(uow, merchant_id, event_id)
    return [d for d in chosen if endpoint_id is None or d["endpoint"] == endpoint_id]


def delivery_to_json(delivery: DeliveryRecord, url: str, attempts: Sequence[AttemptRecord]) -> dict[str, Any]:
    return {
        "id": delivery.id, "object": "webhook_delivery", "event": delivery.event_id,
        "endpoint": delivery.endpoint_id, "url": url, "state": delivery.state,
        "attempt_count": delivery.attempts,
        "next_attempt_at": _iso(delivery.next_attempt_at) if delivery.state == PENDING else None,
        "last_status_code": delivery.last_status_code, "last_error": delivery.last_error,
        "created_at": _iso(delivery.created_at),
        "attempts": [{"attempted_at": _iso(a.attempted_at), "status_code": a.status_code,
                      "duration_ms": a.duration_ms, "error": a.error} for a in attempts]}


# --- the delivery loop --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Job:
    """One claimed delivery, ready to POST."""
    delivery_id: str
    lease_token: str
    event_id: str
    url: str
    body: bytes
    secrets: list[str]


def event_body(event: EventRecord) -> bytes:
    """The bytes POSTed (and signed) for ``event``: the same on every attempt."""
    return json.dumps(events.to_json(event), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def post_json(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
    """POST ``body`` as given; (HTTP status, the answer's first ``webhook_response_bytes_max``
    bytes as text). Redirects are not followed (an answer, not a success); proxies from the
    environment are not used."""
    return post_bounded(url, body, headers, timeout_s=limits.webhook_timeout_s,
                        answer_bytes_max=limits.webhook_response_bytes_max)


def deliver_due(app: App, schedule: RetrySchedule, post: Post = post_json) -> int:
    """Send every delivery due now (one batch of at most ``webhook_batch_max``); returns how
    many were tried."""
    jobs = _claim(app, app.clock())
    for job in jobs:
        status, duration_ms, error = _attempt(post, job, int(app.clock().timestamp()))
        _record(app, job, app.clock(), schedule, status, duration_ms, error)
    return len(jobs)


async def run_deliveries(app: App, interval_s: float, schedule: RetrySchedule, post: Post = post_json) -> None:
    """``deliver_due`` forever, off the event loop; a full batch is followed at once by the next."""
    await run_batches(lambda: deliver_due(app, schedule, post), batch_max=limits.webhook_batch_max,
                      interval_s=interval_s, what="delivering webhooks", log=log)


def _claim(app: App, now: datetime) -> list[_Job]:
    with app.uow(write=False) as uow:  # a cheap look first: no write lock when nothing is due
        if not SqlWebhookStore(uow.connection).due_deliveries(now, 1):
            return []
    with app.uow() as uow:
        store = SqlWebhookStore(uow.connection)
        due = store.due_deliveries(now, limits.webhook_batch_max)
        if not due:
            return []
        endpoints = store.endpoints_by_id([d.endpoint_id for d in due])
        gone = [e.id for e in endpoints.values() if e.status != ENABLED]
        if gone:  # made as its endpoint was being deleted
            store.fail_pending_deliveries(gone, ENDPOINT_DELETED, now)
            due = [d for d in due if d.endpoint_id not in gone]
        token = secrets.token_hex(16)
        store.lease_deliveries([d.id for d in due], token,
                               now + timedelta(seconds=LEASE_S_PER_DELIVERY * len(due)))
        found = SqlEventStore(uow.connection).events_by_id([d.event_id for d in due])
        jobs = [_Job(d.id, token, d.event_id, endpoints[d.endpoint_id].url, event_body(found[d.event_id]),
                     signing_secrets(endpoints[d.endpoint_id], app.vault, now)) for d in due]
        uow.commit()
    return jobs


def _attempt(post: Post, job: _Job, timestamp: int) -> tuple[int | None, int, str]:
    """POST one delivery: (HTTP status or None, milliseconds taken, why it failed or "")."""
    headers = {"Content-Type": "application/json", "User-Agent": f"paypos-webhooks/{__version__}",
               webhook.SIGNATURE_HEADER: webhook.sign(job.body, job.secrets, timestamp),
               webhook.EVENT_ID_HEADER: job.event_id}
    started = time.monotonic()
    try:
        status, answer = post(job.url, job.body, headers)
    except Exception as error:  # a merchant's endpoint never stops the loop
        return None, _ms_since(started), f"{type(error).__name__}: {error}"[:limits.webhook_error_chars_max]
    if webhook.is_success(status):
        return status, _ms_since(started), ""
    excerpt = " ".join(answer.split())  # one line, whatever the receiver sent
    return status, _ms_since(started), f"HTTP {status}: {excerpt}".rstrip(": ")[:limits.webhook_error_chars_max]


def _record(app: App, job: _Job, now: datetime, schedule: RetrySchedule, status: int | None, duration_ms: int,
            error: str) -> None:
    with app.uow() as uow:
        store = SqlWebhookStore(uow.connection)
        current = store.get_delivery(job.delivery_id, lock=True)
        if current is None or current.state != PENDING or current.lease_token != job.lease_token:
            return  # deleted, redelivered, or claimed again after this loop's lease ran out
        store.add_attempt(AttemptRecord(job.delivery_id, now, status, duration_ms, error))
        values = _next_state(current, now, schedule, status, error)
        store.update_delivery(job.delivery_id, **values)
        uow.commit()
    _log(job, current.attempts + 1, values["state"], error)


def _next_state(current: DeliveryRecord, now: datetime, schedule: RetrySchedule, status: int | None,
                error: str) -> dict[str, Any]:
    common = {"attempts": current.attempts + 1, "last_status_code": status, "last_error": error,
              "lease_token": None, "updated_at": now}
    if status is not None and webhook.is_success(status):
        return {**common, "state": SUCCEEDED, "next_attempt_at": now}
    step = current.schedule_step + 1
    delay = schedule.delay_after(step)
    if delay is None:
        return {**common, "state": FAILED, "schedule_step": step, "next_attempt_at": now}
    return {**common, "state": PENDING, "schedule_step": step, "next_attempt_at": now + timedelta(seconds=delay)}


def _log(job: _Job, attempts: int, state: str, error: str) -> None:
    what = f"event {job.event_id} to {job.url} (delivery {job.delivery_id})"
    if state == SUCCEEDED:
        log.info("%s delivered (attempt %d)", what, attempts)
    elif state == FAILED:
        log.warning("%s failed for good after %d attempts: %s", what, attempts, error)
    else:
        log.info("%s not delivered (attempt %d): %s", what, attempts, error)


# --- helpers ------------------------------------------------------------------------------

def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([seq]).encode("ascii")).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str) -> int:
    bad = EndpointError("cursor: not one this API returned", "cursor")
    if len(cursor) > limits.api_cursor_chars_max:
        raise bad
    try:
        (seq,) = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError):
        raise bad from None
    if type(seq) is not int or seq < 1:
        raise bad
    return seq
