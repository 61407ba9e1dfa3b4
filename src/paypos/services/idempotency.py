"""Idempotency-Key for every POST of the REST API: a retry gets the first answer.

A merchant's key names one request (method, path and a hash of its body):

* first time: :func:`begin` inserts an ``in_progress`` row and the caller commits it at
  once — that insert, on the (merchant, key) primary key, is the lock. The work then runs
  and :func:`finish` stores its answer *in the work's own transaction*, so the object and
  the answer commit together (a crash leaves no object and a stale ``in_progress`` row);
* the same key and body again: the stored answer (:class:`Replay`), for
  ``limits.idempotency_key_ttl_s``; while the first is still running, :class:`InProgress`;
* the same key with another method, path or body: :class:`Mismatch`.

Concurrent duplicates: on PostgreSQL a second insert of the key waits for the first
transaction, then fails on the primary key, and the row it then reads is ``in_progress`` or
``done``; on SQLite writers queue on ``BEGIN IMMEDIATE``. Either way one request does the work.
A key older than its TTL, or ``in_progress`` longer than
``limits.idempotency_in_progress_timeout_s`` (its worker died before committing), is taken over.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.online import IdempotencyRecord, SqlOnlineStore
from paypos.adapters.db.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class New:
    """Do the work, then :func:`finish` (or :func:`abandon`)."""


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    body: str  # JSON, exactly as first answered


@dataclass(frozen=True, slots=True)
class InProgress:
    """The first request with this key has not finished yet."""


@dataclass(frozen=True, slots=True)
class Mismatch:
    """The key was first used for another request."""

    method: str
    path: str


Outcome = New | Replay | InProgress | Mismatch


def request_hash(method: str, path: str, body: Any) -> str:
    """SHA-256 of the request's method, path and canonical JSON body (key order and
    whitespace do not matter)."""
    canonical = json.dumps([method.upper(), path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def begin(uow: UnitOfWork, merchant_id: str, key: str, method: str, path: str, body_hash: str,
          now: datetime) -> Outcome:
    """Claim ``key`` for this request, or say what became of its first use. The caller
    commits ``uow`` straight after a :class:`New`, before it starts the work."""
    store = SqlOnlineStore(uow.connection)
    mine = IdempotencyRecord(
        merchant_id=merchant_id, key=key, request_method=method.upper(), request_path=path,
        request_hash=body_hash, state="in_progress", response_status=None, response_body=None,
        created_at=now, expires_at=now + timedelta(seconds=limits.idempotency_key_ttl_s))
    existing = store.get_idempotency_key(merchant_id, key)
    if existing is None:
        savepoint = uow.connection.begin_nested()
        try:
            store.add_idempotency_key(mine)
        except sa.exc.IntegrityError:
            savepoint.rollback()  # a concurrent duplicate holds the key: see what it became
            existing = store.get_idempotency_key(merchant_id, key)
            if existing is None:  # it was abandoned meanwhile; the client may retry
                return InProgress()
        else:
            savepoint.commit()
            return New()
    return _judge(store, existing, mine, now)


def _judge(store: SqlOnlineStore, existing: IdempotencyRecord, mine: IdempotencyRecord, now: datetime) -> Outcome:
    stale_after = existing.created_at + timedelta(seconds=limits.idempotency_in_progress_timeout_s)
    if existing.expires_at <= now or (existing.state == "in_progress" and stale_after <= now):
        return New() if store.replace_idempotency_key(existing, mine) else InProgress()
    same = (existing.request_method, existing.request_path, existing.request_hash) == (
        mine.request_method, mine.request_path, mine.request_hash)
    if not same:
        return Mismatch(existing.request_method, existing.request_path)
    if existing.state == "done" and existing.response_status is not None and existing.response_body is not None:
        return Replay(existing.response_status, existing.response_body)
    return InProgress()


def finish(uow: UnitOfWork, merchant_id: str, key: str, status: int, body: Any) -> str:
    """Store the answer to replay (in the same transaction as the work); returns its JSON."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    SqlOnlineStore(uow.connection).finish_idempotency_key(merchant_id, key, status, text)
    return text


def abandon(uow: UnitOfWork, merchant_id: str, key: str) -> None:
    """Release a key whose work failed unexpectedly, so that a retry runs it again."""
    SqlOnlineStore(uow.connection).delete_idempotency_key(merchant_id, key)
