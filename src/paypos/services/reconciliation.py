"""Reconciliation (issue 7, docs/reconciliation.md): differences between what a terminal
counted in a batch (its journal, whose totals it sent in its 0500) and the host's journal,
per transaction, stored as exceptions an operator resolves.

Transactions are matched by their ISO 8583 identity (field 41 terminal, 7 transmission
date-time, 11 STAN), written ``<terminal>:<transmission_dt>:<stan>`` as the ledger's transfer
ids are. Only money movements count, as in the 0500 totals: sales and completions (debits)
and refunds (credits), approved. Kinds:

- ``missing_at_host``: the terminal counts it, the host has no approved row for it;
- ``missing_at_terminal``: the host counts it, the terminal does not have it;
- ``amount_differs``: both count it with different amounts;
- ``reversed``: one side counts it, the other reversed it.

The bank leg (the payout statement against the ledger) adds kinds ``payout_missing``,
``payout_amount_differs`` and ``payout_unexpected`` with ``record_exception`` once the
settlement slice lands; listing and resolving are the same.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.schema import host_transactions, reconciliation_exceptions
from paypos.adapters.db.uow import UnitOfWork
from paypos.services import audit

TERMINAL_KINDS = ("missing_at_host", "missing_at_terminal", "amount_differs", "reversed")
# The payout leg (services/payout_recon.py): a ledger leg absent or of another amount, money
# moved against the payout's status, a payout the bank returned, one left unsent or unanswered.
PAYOUT_KINDS = ("payout_missing", "payout_amount_differs", "payout_unexpected", "payout_returned", "payout_stale")
KINDS = TERMINAL_KINDS + PAYOUT_KINDS
_MONEY_KINDS = ("purchase", "completion", "refund")
JOURNAL_CSV_COLUMNS = ("stan", "transmission_dt", "kind", "amount_minor", "status")


class ReconciliationError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


class ExceptionNotFound(LookupError):
    pass


class AlreadyResolved(Exception):
    pass


@dataclass(frozen=True, slots=True)
class TerminalLine:
    """One row of the terminal's journal for the batch (terminal/store.py JournalEntry)."""

    stan: str
    transmission_dt: str
    kind: str  # purchase | completion | refund | ...
    amount_minor: int
    status: str  # approved | declined | reversed | ...

    @property
    def counted(self) -> bool:
        return self.status == "approved" and self.kind in _MONEY_KINDS


@dataclass(frozen=True, slots=True)
class ReconException:
    id: int
    kind: str
    merchant_id: str
    terminal_id: str | None
    batch_no: int | None
    transaction_ref: str
    reason: str
    terminal_amount_minor: int | None
    host_amount_minor: int | None
    currency: str | None
    status: str
    resolution: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime

    def to_json(self) -> dict[str, object]:
        return {name: (value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value)
                for name, value in ((f, getattr(self, f)) for f in self.__slots__)}  # type: ignore[attr-defined]


def lines_from_store(store: object, batch_no: int) -> list[TerminalLine]:
    """The batch's lines from a terminal's store (terminal.store.TerminalStore)."""
    return [TerminalLine(e.stan, e.transmission_dt, e.kind, e.amount_minor, e.status)
            for e in store.journal(batch_no)]  # type: ignore[attr-defined]


def lines_from_csv(path: Path) -> list[TerminalLine]:
    """A terminal journal exported as CSV with the header JOURNAL_CSV_COLUMNS."""
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != JOURNAL_CSV_COLUMNS:
                raise ReconciliationError("journal", f"the header must be {','.join(JOURNAL_CSV_COLUMNS)}")
            lines = [TerminalLine(r["stan"], r["transmission_dt"], r["kind"], int(r["amount_minor"]), r["status"])
                     for r in reader]
    except OSError as error:
        raise ReconciliationError("journal", f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        if isinstance(error, ReconciliationError):
            raise
        raise ReconciliationError("journal", f"line {reader.line_num}: amount_minor must be an integer") from None
    for line in lines:
        if len(line.stan) != 6 or not line.stan.isdigit() or len(line.transmission_dt) != 10 \
                or not line.transmission_dt.isdigit() or line.amount_minor < 0:
            raise ReconciliationError("journal", "stan is 6 digits, transmission_dt 10, amount_minor ≥ 0")
    return lines


def journal_csv(lines: Iterable[TerminalLine]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(JOURNAL_CSV_COLUMNS)
    writer.writerows((x.stan, x.transmission_dt, x.kind, x.amount_minor, x.status) for x in lines)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class Difference:
    kind: str
    stan: str
    transmission_dt: str
    reason: str
    terminal_amount_minor: int | None
    host_amount_minor: int | None


def differences(terminal: Iterable[TerminalLine], host: Iterable[sa.Row]) -> list[Difference]:
    """Per transaction, what differs between the terminal's lines and the host's rows (pure)."""
    mine = {(x.stan, x.transmission_dt): x for x in terminal}
    theirs = {(r.stan, r.transmission_dt): r for r in host if r.kind in _MONEY_KINDS}
    found: list[Difference] = []
    for key in sorted(mine.keys() | theirs.keys()):
        line, row = mine.get(key), theirs.get(key)
        t_counts = line is not None and line.counted
        h_counts = row is not None and row.status in ("approved", "completed")
        t_amount = None if line is None else line.amount_minor
        h_amount = None if row is None else int(row.amount_minor)
        if t_counts and h_counts:
            if t_amount != h_amount:
                found.append(Difference("amount_differs", *key, f"terminal {t_amount}, host {h_amount}",
                                        t_amount, h_amount))
        elif t_counts and row is not None and row.status == "reversed":
            found.append(Difference("reversed", *key, "the host reversed it; the terminal still counts it",
                                    t_amount, h_amount))
        elif h_counts and line is not None and line.status == "reversed":
            found.append(Difference("reversed", *key, "the terminal reversed it; the host still counts it",
                                    t_amount, h_amount))
        elif t_counts:
            status = "no row" if row is None else f"status {row.status}"
            found.append(Difference("missing_at_host", *key, f"the host has {status}", t_amount, h_amount))
        elif h_counts:
            status = "no line" if line is None else f"status {line.status}"
            found.append(Difference("missing_at_terminal", *key, f"the terminal has {status}", t_amount, h_amount))
    return found


def reconcile_batch(uow: UnitOfWork, terminal_id: str, batch_no: int, lines: list[TerminalLine],
                    now: datetime) -> list[ReconException]:
    """Compare, store each difference once (a rerun adds none twice), return the batch's exceptions."""
    t = host_transactions
    rows = uow.connection.execute(sa.select(t.c.stan, t.c.transmission_dt, t.c.kind, t.c.status, t.c.amount_minor,
                                            t.c.currency, t.c.merchant_id)
                                  .where(t.c.terminal_id == terminal_id, t.c.batch_no == batch_no)).all()
    if batch_no < 1:
        raise ReconciliationError("batch", "batch must be 1 or more")
    terminal = uow.registry.get_terminal(terminal_id)
    if terminal is None:
        raise ReconciliationError("terminal", f"no terminal {terminal_id}")
    merchant_id = terminal.merchant_id
    currency = rows[0].currency if rows else None
    for found in differences(lines, rows):
        record_exception(uow, found.kind, merchant_id, f"{terminal_id}:{found.transmission_dt}:{found.stan}",
                         found.reason, now, terminal_id=terminal_id, batch_no=batch_no,
                         terminal_amount_minor=found.terminal_amount_minor,
                         host_amount_minor=found.host_amount_minor, currency=currency)
    return list_exceptions(uow, terminal_id=terminal_id, batch_no=batch_no, status=None)


def record_exception(uow: UnitOfWork, kind: str, merchant_id: str, transaction_ref: str, reason: str,
                     now: datetime, *, terminal_id: str | None = None, batch_no: int | None = None,
                     terminal_amount_minor: int | None = None, host_amount_minor: int | None = None,
                     currency: str | None = None) -> bool:
    """Store an exception unless one of this kind for this transaction exists; True if new.
    The seam for the bank leg (kinds ``payout_*``)."""
    if kind not in KINDS:
        raise ReconciliationError("kind", f"kind must be one of {', '.join(KINDS)}")
    e = reconciliation_exceptions
    exists = uow.connection.execute(sa.select(e.c.id).where(e.c.kind == kind, e.c.transaction_ref == transaction_ref)
                                    ).first()
    if exists is not None:
        return False
    uow.connection.execute(e.insert().values(
        kind=kind, merchant_id=merchant_id, terminal_id=terminal_id, batch_no=batch_no,
        transaction_ref=transaction_ref, reason=reason[:200], terminal_amount_minor=terminal_amount_minor,
        host_amount_minor=host_amount_minor, currency=currency, status="open", created_at=now))
    return True


def list_exceptions(uow: UnitOfWork, *, status: str | None = "open", merchant_id: str | None = None,
                    terminal_id: str | None = None, batch_no: int | None = None, after_id: int = 0,
                    limit: int = 100) -> list[ReconException]:
    if status not in (None, "open", "resolved"):
        raise ReconciliationError("status", "status must be open or resolved")
    if not 1 <= limit <= limits.recon_page_size_max:
        raise ReconciliationError("limit", f"limit must be 1..{limits.recon_page_size_max}")
    e = reconciliation_exceptions
    query = sa.select(e).where(e.c.id > after_id).order_by(e.c.id).limit(limit)
    for column, value in ((e.c.status, status), (e.c.merchant_id, merchant_id), (e.c.terminal_id, terminal_id),
                          (e.c.batch_no, batch_no)):
        if value is not None:
            query = query.where(column == value)
    return [ReconException(**row._mapping) for row in uow.connection.execute(query)]


def resolve(uow: UnitOfWork, exception_id: int, resolution: str, actor: str, now: datetime) -> ReconException:
    """open → resolved with the note and who; audit-logged in the same transaction."""
    note = resolution.strip()
    if not 1 <= len(note) <= limits.recon_resolution_chars_max:
        raise ReconciliationError("resolution", f"resolution must be 1..{limits.recon_resolution_chars_max} characters")
    e = reconciliation_exceptions
    row = uow.connection.execute(sa.select(e).where(e.c.id == exception_id).with_for_update()).one_or_none()
    if row is None:
        raise ExceptionNotFound(f"no reconciliation exception {exception_id}")
    if row.status == "resolved":
        if row.resolution == note:
            return ReconException(**row._mapping)  # a retry of the same resolution
        raise AlreadyResolved(f"exception {exception_id} is already resolved")
    uow.connection.execute(e.update().where(e.c.id == exception_id).values(
        status="resolved", resolution=note, resolved_by=actor, resolved_at=now))
    audit.record(uow, now, actor, "recon_exception.resolve", "recon_exception", str(exception_id),
                 merchant_id=row.merchant_id, details={"kind": row.kind, "transaction_ref": row.transaction_ref,
                                                       "resolution": note})
    done = uow.connection.execute(sa.select(e).where(e.c.id == exception_id)).one()
    return ReconException(**done._mapping)
