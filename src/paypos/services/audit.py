"""The audit log: every state change a person makes (console, operator CLI) is recorded in
the same transaction as the change, so an entry exists exactly when the change does.

Details must never hold card data, secrets or keys: callers pass ids, amounts, states and
reasons. ``actor`` names who acted: ``user:<console user id>``, ``cli:<os user>`` or
``system`` for scheduled jobs.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paypos.adapters.db.schema import audit_log
from paypos.adapters.db.uow import UnitOfWork

ACTOR_BYTES_MAX = 96
PAGE_SIZE_MAX = 500


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: str
    merchant_id: str | None
    details: dict[str, Any]


def cli_actor() -> str:
    """The actor of an operator command run from a shell."""
    try:
        return f"cli:{getpass.getuser()}"[:ACTOR_BYTES_MAX]
    except (KeyError, OSError):  # no user name in a bare container
        return "cli:unknown"


def record(uow: UnitOfWork, now: datetime, actor: str, action: str, subject_type: str, subject_id: str, *,
           merchant_id: str | None = None, details: dict[str, Any] | None = None) -> int:
    """Append one entry in the caller's transaction; returns its sequence number."""
    if not actor or len(actor.encode()) > ACTOR_BYTES_MAX:
        raise ValueError(f"actor must be 1..{ACTOR_BYTES_MAX} bytes")
    row = {"at": now, "actor": actor, "action": action, "subject_type": subject_type,
           "subject_id": subject_id, "merchant_id": merchant_id,
           "details_json": json.dumps(details or {}, sort_keys=True, separators=(",", ":"))}
    result = uow.connection.execute(sa.insert(audit_log).values(**row).returning(audit_log.c.seq))
    return int(result.scalar_one())


def entries(uow: UnitOfWork, *, merchant_id: str | None = None, subject_type: str | None = None,
            subject_id: str | None = None, before_seq: int | None = None, limit: int = 50) -> list[AuditEntry]:
    """Newest first; ``before_seq`` pages backwards. ``merchant_id`` limits to one merchant's."""
    if not 1 <= limit <= PAGE_SIZE_MAX:
        raise ValueError(f"limit must be 1..{PAGE_SIZE_MAX}")
    query = sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
    if merchant_id is not None:
        query = query.where(audit_log.c.merchant_id == merchant_id)
    if subject_type is not None:
        query = query.where(audit_log.c.subject_type == subject_type)
    if subject_id is not None:
        query = query.where(audit_log.c.subject_id == subject_id)
    if before_seq is not None:
        query = query.where(audit_log.c.seq < before_seq)
    return [AuditEntry(r.seq, r.at, r.actor, r.action, r.subject_type, r.subject_id, r.merchant_id,
                       json.loads(r.details_json)) for r in uow.connection.execute(query)]
