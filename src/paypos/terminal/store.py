"""The terminal's own store: one SQLite file per terminal id under
``<data dir>/terminals/<TID>/terminal.db`` — its keys and counters, its journal,
its reversal queue and its store-and-forward queue.

Write-ahead discipline: a counter is advanced, and a journal row written, and
both committed *before* the request leaves the terminal, so a crash at any
point leaves either nothing sent or a row the restart can reverse.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from paypos import limits

_SCHEMA = """
CREATE TABLE IF NOT EXISTS config (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    terminal_id TEXT NOT NULL, merchant_id TEXT NOT NULL, currency TEXT NOT NULL,
    initial_ksn TEXT NOT NULL, ipek TEXT NOT NULL, mac_required INTEGER NOT NULL,
    floor_limit_minor INTEGER NOT NULL, contactless_txn_limit_minor INTEGER NOT NULL,
    contactless_cvm_limit_minor INTEGER NOT NULL, merchant_name TEXT NOT NULL, merchant_city TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    ksn_counter INTEGER NOT NULL, stan INTEGER NOT NULL, batch_no INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, mti TEXT NOT NULL, stan TEXT NOT NULL, transmission_dt TEXT NOT NULL,
    processing_code TEXT NOT NULL, amount_minor INTEGER NOT NULL, currency TEXT NOT NULL,
    card_id TEXT, pan_masked TEXT, entry TEXT, cvm TEXT, aid TEXT, batch_no INTEGER NOT NULL,
    status TEXT NOT NULL, response_code TEXT, approval_code TEXT, rrn TEXT, offline INTEGER NOT NULL DEFAULT 0,
    original_id INTEGER, note TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reversal_queue (
    journal_id INTEGER PRIMARY KEY REFERENCES journal(id),
    stan TEXT NOT NULL, transmission_dt TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS saf_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    journal_id INTEGER NOT NULL UNIQUE REFERENCES journal(id),
    fields_json TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL
);
"""


class TerminalStoreError(RuntimeError):
    """The terminal's store is missing or unusable; the message says what to do."""


@dataclass(frozen=True, slots=True)
class TerminalConfig:
    terminal_id: str
    merchant_id: str
    currency: str  # ISO 4217 numeric
    initial_ksn: str
    ipek: str  # the initial key the terminal was loaded with — never the BDK
    mac_required: bool
    floor_limit_minor: int
    contactless_txn_limit_minor: int
    contactless_cvm_limit_minor: int
    merchant_name: str
    merchant_city: str


@dataclass(frozen=True, slots=True)
class JournalEntry:
    id: int
    kind: str
    mti: str
    stan: str
    transmission_dt: str
    processing_code: str
    amount_minor: int
    currency: str
    card_id: str | None
    pan_masked: str | None
    entry: str | None
    cvm: str | None
    aid: str | None
    batch_no: int
    status: str
    response_code: str | None
    approval_code: str | None
    rrn: str | None
    offline: bool
    original_id: int | None
    note: str
    created_at: str
    updated_at: str


def terminal_dir(data_dir: Path, terminal_id: str) -> Path:
    return data_dir / "terminals" / terminal_id


class TerminalStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=limits.sqlite_busy_timeout_ms / 1000,
                                   check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error): one durable step."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- keys and counters -----------------------------------------------------

    def load_keys(self, config: TerminalConfig) -> None:
        """Key loading (the terminal's key injection): idempotent for the same initial KSN."""
        with self.transaction() as db:
            existing = db.execute("SELECT initial_ksn FROM config WHERE id = 1").fetchone()
            if existing is not None and existing["initial_ksn"] != config.initial_ksn:
                raise TerminalStoreError(
                    f"terminal {config.terminal_id} already holds keys for KSN {existing['initial_ksn']}")
            db.execute("INSERT OR REPLACE INTO config VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (
                config.terminal_id, config.merchant_id, config.currency, config.initial_ksn, config.ipek,
                int(config.mac_required), config.floor_limit_minor, config.contactless_txn_limit_minor,
                config.contactless_cvm_limit_minor, config.merchant_name, config.merchant_city,
            ))
            db.execute("INSERT OR IGNORE INTO counters VALUES (1, 0, 0, 1)")

    def config(self) -> TerminalConfig:
        row = self._db.execute("SELECT * FROM config WHERE id = 1").fetchone()
        if row is None:
            raise TerminalStoreError(f"no keys loaded in {self.path}")
        values = dict(row)
        values.pop("id")
        values["mac_required"] = bool(values["mac_required"])
        return TerminalConfig(**values)

    def next_stan(self, db: sqlite3.Connection) -> str:
        """The next STAN (000001-999999, wrapping), inside the caller's transaction."""
        stan = db.execute("SELECT stan FROM counters WHERE id = 1").fetchone()["stan"] % 999_999 + 1
        db.execute("UPDATE counters SET stan = ? WHERE id = 1", (stan,))
        return f"{stan:06d}"

    def ksn_counter(self) -> int:
        return int(self._db.execute("SELECT ksn_counter FROM counters WHERE id = 1").fetchone()["ksn_counter"])

    def set_ksn_counter(self, db: sqlite3.Connection, counter: int) -> None:
        db.execute("UPDATE counters SET ksn_counter = ? WHERE id = 1", (counter,))

    def batch_no(self) -> int:
        return int(self._db.execute("SELECT batch_no FROM counters WHERE id = 1").fetchone()["batch_no"])

    def close_batch(self) -> None:
        with self.transaction() as db:
            db.execute("UPDATE counters SET batch_no = batch_no + 1 WHERE id = 1")

    # --- journal ---------------------------------------------------------------

    def add_entry(self, db: sqlite3.Connection, now: str, **values: object) -> int:
        values = {"created_at": now, "updated_at": now, **values}
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cursor = db.execute(f"INSERT INTO journal ({names}) VALUES ({marks})", tuple(values.values()))
        return int(cursor.lastrowid or 0)

    def update_entry(self, db: sqlite3.Connection, entry_id: int, now: str, **values: object) -> None:
        sets = ", ".join(f"{name} = ?" for name in values)
        db.execute(f"UPDATE journal SET {sets}, updated_at = ? WHERE id = ?", (*values.values(), now, entry_id))

    def entry(self, entry_id: int) -> JournalEntry | None:
        row = self._db.execute("SELECT * FROM journal WHERE id = ?", (entry_id,)).fetchone()
        return None if row is None else _entry(row)

    def entry_by_rrn(self, rrn: str) -> JournalEntry | None:
        row = self._db.execute("SELECT * FROM journal WHERE rrn = ? ORDER BY id LIMIT 1", (rrn,)).fetchone()
        return None if row is None else _entry(row)

    def journal(self, batch_no: int | None = None) -> list[JournalEntry]:
        if batch_no is None:
            rows = self._db.execute("SELECT * FROM journal ORDER BY id").fetchall()
        else:
            rows = self._db.execute("SELECT * FROM journal WHERE batch_no = ? ORDER BY id", (batch_no,)).fetchall()
        return [_entry(row) for row in rows]

    def in_flight(self) -> list[JournalEntry]:
        """Requests sent (or about to be) with no answer recorded: a crash left them."""
        rows = self._db.execute("SELECT * FROM journal WHERE status = 'sending' ORDER BY id").fetchall()
        return [_entry(row) for row in rows]

    # --- queues ----------------------------------------------------------------

    def queue_reversal(self, db: sqlite3.Connection, journal_id: int, stan: str, transmission_dt: str, now: str) -> None:
        db.execute("INSERT OR IGNORE INTO reversal_queue (journal_id, stan, transmission_dt, created_at) "
                   "VALUES (?, ?, ?, ?)", (journal_id, stan, transmission_dt, now))

    def reversals(self) -> list[sqlite3.Row]:
        return self._db.execute("SELECT * FROM reversal_queue ORDER BY journal_id").fetchall()

    def reversal_attempted(self, journal_id: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE reversal_queue SET attempts = attempts + 1 WHERE journal_id = ?", (journal_id,))

    def drop_reversal(self, db: sqlite3.Connection, journal_id: int) -> None:
        db.execute("DELETE FROM reversal_queue WHERE journal_id = ?", (journal_id,))

    def queue_advice(self, db: sqlite3.Connection, journal_id: int, fields: dict[str, str], now: str) -> None:
        db.execute("INSERT INTO saf_queue (journal_id, fields_json, created_at) VALUES (?, ?, ?)",
                   (journal_id, json.dumps(fields, sort_keys=True), now))

    def advices(self) -> list[tuple[int, int, dict[str, str], int]]:
        rows = self._db.execute("SELECT * FROM saf_queue ORDER BY seq").fetchall()
        return [(row["seq"], row["journal_id"], json.loads(row["fields_json"]), row["attempts"]) for row in rows]

    def advice_attempted(self, seq: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE saf_queue SET attempts = attempts + 1 WHERE seq = ?", (seq,))

    def drop_advice(self, db: sqlite3.Connection, seq: int) -> None:
        db.execute("DELETE FROM saf_queue WHERE seq = ?", (seq,))


def _entry(row: sqlite3.Row) -> JournalEntry:
    values = dict(row)
    values["offline"] = bool(values["offline"])
    return JournalEntry(**values)
