"""The acquiring host's store: terminal counters and batches, issuer card state,
answered messages (idempotency), the transaction journal, reversal tombstones.

Rows that concurrent requests contend on (a terminal's state, a card's state)
are read ``FOR UPDATE`` on PostgreSQL; on SQLite the write transaction is the lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paypos.adapters.db.schema import (
    host_transactions,
    issuer_notifications,
    iso_messages,
    issuer_card_state,
    reversal_tombstones,
    terminal_state,
)


@dataclass(frozen=True, slots=True)
class TerminalState:
    terminal_id: str
    ksn_counter_last: int
    signed_on: bool
    batch_no: int


@dataclass(frozen=True, slots=True)
class CardState:
    card_id: str
    atc_last: int
    pin_tries_left: int


@dataclass(frozen=True, slots=True)
class AnsweredMessage:
    mti: str
    fingerprint: str
    response: dict[str, str]
    response_code: str


@dataclass(frozen=True, slots=True)
class HostTransaction:
    id: int
    terminal_id: str
    merchant_id: str
    batch_no: int
    mti: str
    processing_code: str
    kind: str
    stan: str
    transmission_dt: str
    amount_minor: int
    currency: str
    fee_minor: int
    card_id: str | None
    pan_masked: str | None
    entry_mode: str | None
    response_code: str
    approval_code: str | None
    status: str
    original_id: int | None
    refunded_minor: int
    completed_minor: int
    transfer_ref: str | None
    created_at: datetime
    method: str | None = None  # domain.pricing.PaymentMethod, when priced at authorization

    @property
    def rrn(self) -> str:
        """ISO 8583 field 37: the journal id, zero-padded to 12 digits (unique, never reused)."""
        return rrn_of(self.id)


@dataclass(frozen=True, slots=True)
class BatchTotals:
    credits_count: int
    debits_count: int
    credits_minor: int
    debits_minor: int


def answered_from_row(row: Any) -> AnsweredMessage:
    """An ``iso_messages`` row as the answer it recorded."""
    return AnsweredMessage(row.mti, row.fingerprint, json.loads(row.response_json), row.response_code)


def rrn_of(transaction_id: int) -> str:
    return f"{transaction_id:012d}"


def id_of_rrn(rrn: str) -> int:
    """The journal id an RRN stands for (-1, which matches nothing, for one that is not ours)."""
    return int(rrn) if len(rrn) == 12 and rrn.isdigit() else -1


class SqlHostStore:
    def __init__(self, connection: sa.Connection) -> None:
        self._db = connection

    # --- terminal state --------------------------------------------------------

    def terminal_state(self, terminal_id: str, now: datetime) -> TerminalState:
        """The terminal's state, locked for this transaction; created on first use."""
        query = sa.select(terminal_state).where(terminal_state.c.terminal_id == terminal_id).with_for_update()
        row = self._db.execute(query).one_or_none()
        if row is None:
            self._db.execute(
                terminal_state.insert().values(
                    terminal_id=terminal_id, ksn_counter_last=-1, signed_on=False, batch_no=1, updated_at=now
                )
            )
            row = self._db.execute(query).one()
        return TerminalState(row.terminal_id, row.ksn_counter_last, bool(row.signed_on), row.batch_no)

    def update_terminal_state(self, terminal_id: str, now: datetime, **values: object) -> None:
        self._db.execute(
            terminal_state.update().where(terminal_state.c.terminal_id == terminal_id).values(**values, updated_at=now)
        )

    # --- issuer card state -----------------------------------------------------

    def card_state(self, card_id: str, now: datetime, pin_tries: int) -> CardState:
        query = sa.select(issuer_card_state).where(issuer_card_state.c.card_id == card_id).with_for_update()
        row = self._db.execute(query).one_or_none()
        if row is None:
            self._db.execute(
                issuer_card_state.insert().values(card_id=card_id, atc_last=-1, pin_tries_left=pin_tries, updated_at=now)
            )
            row = self._db.execute(query).one()
        return CardState(row.card_id, row.atc_last, row.pin_tries_left)

    def update_card_state(self, card_id: str, now: datetime, **values: object) -> None:
        self._db.execute(
            issuer_card_state.update().where(issuer_card_state.c.card_id == card_id).values(**values, updated_at=now)
        )

    # --- answered messages -----------------------------------------------------

    def answered(self, terminal_id: str, stan: str, transmission_dt: str) -> AnsweredMessage | None:
        row = self._db.execute(
            sa.select(iso_messages).where(
                iso_messages.c.terminal_id == terminal_id,
                iso_messages.c.stan == stan,
                iso_messages.c.transmission_dt == transmission_dt,
            )
        ).one_or_none()
        return None if row is None else answered_from_row(row)

    def record_answer(
        self, terminal_id: str, stan: str, transmission_dt: str, mti: str, fingerprint: str,
        response: dict[str, str], now: datetime,
    ) -> None:
        self._db.execute(
            iso_messages.insert().values(
                terminal_id=terminal_id, stan=stan, transmission_dt=transmission_dt, mti=mti,
                fingerprint=fingerprint, response_json=json.dumps(response, sort_keys=True),
                response_code=response.get("39", ""), created_at=now,
            )
        )

    # --- transactions ----------------------------------------------------------

    def add_transaction(self, **values: object) -> int:
        result = self._db.execute(host_transactions.insert().values(**values))
        return int(result.inserted_primary_key[0])

    def update_transaction(self, transaction_id: int, **values: object) -> None:
        self._db.execute(host_transactions.update().where(host_transactions.c.id == transaction_id).values(**values))

    def transaction(self, transaction_id: int) -> HostTransaction | None:
        row = self._db.execute(
            sa.select(host_transactions).where(host_transactions.c.id == transaction_id).with_for_update()
        ).one_or_none()
        return None if row is None else HostTransaction(**row._mapping)

    def transaction_by_identity(self, terminal_id: str, stan: str, transmission_dt: str) -> HostTransaction | None:
        row = self._db.execute(
            sa.select(host_transactions)
            .where(
                host_transactions.c.terminal_id == terminal_id,
                host_transactions.c.stan == stan,
                host_transactions.c.transmission_dt == transmission_dt,
            )
            .order_by(host_transactions.c.id)
            .limit(1)
            .with_for_update()
        ).one_or_none()
        return None if row is None else HostTransaction(**row._mapping)

    def transaction_by_rrn(self, merchant_id: str, rrn: str) -> HostTransaction | None:
        row = self._db.execute(
            sa.select(host_transactions)
            .where(host_transactions.c.merchant_id == merchant_id, host_transactions.c.id == id_of_rrn(rrn))
            .with_for_update()
        ).one_or_none()
        return None if row is None else HostTransaction(**row._mapping)

    def receipt(self, rrn: str) -> HostTransaction | None:
        """A journal row by RRN, read-only (the e-receipt page)."""
        row = self._db.execute(
            sa.select(host_transactions).where(host_transactions.c.id == id_of_rrn(rrn))
        ).one_or_none()
        return None if row is None else HostTransaction(**row._mapping)

    def recent_count_for_card(self, card_id: str, since: datetime) -> int:
        return int(self._db.execute(
            sa.select(sa.func.count()).select_from(host_transactions).where(
                host_transactions.c.card_id == card_id, host_transactions.c.created_at >= since
            )
        ).scalar_one())

    def batch_totals(self, terminal_id: str, batch_no: int) -> BatchTotals:
        """Approved money movements of a batch: debits = sales, credits = refunds (ISO 8583 74/76/86/88)."""
        t = host_transactions
        rows = self._db.execute(
            sa.select(t.c.kind, sa.func.count(), sa.func.coalesce(sa.func.sum(t.c.amount_minor), 0))
            .where(t.c.terminal_id == terminal_id, t.c.batch_no == batch_no,
                   t.c.status.in_(["approved", "completed"]), t.c.kind.in_(["purchase", "completion", "refund"]))
            .group_by(t.c.kind)
        ).all()
        credits = [(n, s) for kind, n, s in rows if kind == "refund"]
        debits = [(n, s) for kind, n, s in rows if kind != "refund"]
        return BatchTotals(
            credits_count=sum(n for n, _ in credits),
            debits_count=sum(n for n, _ in debits),
            credits_minor=int(sum(s for _, s in credits)),
            debits_minor=int(sum(s for _, s in debits)),
        )

    # --- reversal tombstones ---------------------------------------------------

    def add_tombstone(self, terminal_id: str, stan: str, transmission_dt: str, now: datetime) -> None:
        if not self.has_tombstone(terminal_id, stan, transmission_dt):
            self._db.execute(reversal_tombstones.insert().values(
                terminal_id=terminal_id, stan=stan, transmission_dt=transmission_dt, created_at=now))

    def has_tombstone(self, terminal_id: str, stan: str, transmission_dt: str) -> bool:
        return self._db.execute(
            sa.select(reversal_tombstones.c.stan).where(
                reversal_tombstones.c.terminal_id == terminal_id,
                reversal_tombstones.c.stan == stan,
                reversal_tombstones.c.transmission_dt == transmission_dt,
            )
        ).first() is not None

    # --- the sandbox issuer's outbox ----------------------------------------------

    def add_notification(self, card_id: str, channel: str, recipient: str, text: str, reference: str,
                         now: datetime) -> None:
        self._db.execute(issuer_notifications.insert().values(
            card_id=card_id, channel=channel, recipient=recipient, text=text, reference=reference, created_at=now))

    def notifications(self, card_id: str | None = None) -> list[dict[str, object]]:
        query = sa.select(issuer_notifications).order_by(issuer_notifications.c.id)
        if card_id is not None:
            query = query.where(issuer_notifications.c.card_id == card_id)
        return [dict(row._mapping) for row in self._db.execute(query)]
