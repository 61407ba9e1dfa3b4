"""Clearing throughput: one business date's clearing run over many posted transactions.

    python -m bench clearing [--transactions 1000000] [--merchants 1000] [--database-url URL]

Generates the journal fast (bulk inserts straight into ledger_transfers, balances set to
match, so `paypos ledger check` stays clean): each transaction is a card sale into a
merchant's merchant_pending, every 20th a refund out of it, all on the day before the
business date. Every merchant has a verified bank account. Then times `run_clearing` (the
number to watch; target ≤ 60 s for 1M transactions on a 2-core machine) and prints the
payouts. Defaults to a fresh SQLite file in a temporary directory; pass a PostgreSQL URL of a
scratch database to measure it there (the benchmark adds its own merchants; it never deletes).
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.progress import Progress

from paypos.adapters.db import migrate
from paypos.adapters.db.bulk import insert_rows
from paypos.adapters.db.engine import make_engine
from paypos.adapters.db.schema import bank_accounts, ledger_accounts, ledger_transfers
from paypos.adapters.vault import Vault
from paypos.bootstrap import App
from paypos.config import Settings
from paypos.domain.ledger import AccountFlags
from paypos.domain.registry import Acquirer, Merchant
from paypos.services import settlement
from paypos.services.sandbox import merchant_owner

BUSINESS_DATE = date(2026, 11, 23)
CHUNK_ROWS = 50_000
CARD_NUMBER = "6222021234567890128"


def _app(database_url: str, data_dir: Path) -> App:
    key = secrets.token_hex(32)
    return App(Settings(data_dir=data_dir, database_url=database_url, data_key=key), make_engine(database_url),
               vault=Vault(bytes.fromhex(key)))


def _merchants(app: App, count: int, tag: str) -> list[tuple[str, int, int]]:
    """``count`` merchants with accounts and a verified bank account: (id, pending id, card id)."""
    now = datetime.now(UTC)
    made = []
    with app.uow() as uow:
        if uow.registry.get_acquirer("99999999999") is None:
            uow.registry.add_acquirer(Acquirer("99999999999", "bench acquirer"), now)
        for n in range(count):
            merchant_id = f"B{tag}{n:08d}"[:15]
            uow.registry.add_merchant(Merchant(merchant_id, "99999999999", f"Bench {n}", "5999", "CNY", "156",
                                               "Shanghai"), now)
            owner = merchant_owner(merchant_id)
            pending = uow.ledger.open_account(owner, owner, "merchant_pending", "CNY").id
            uow.ledger.open_account(owner, owner, "merchant_available", "CNY",
                                    AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
            card = uow.ledger.open_account(f"bench:{tag}:card{n}", "bench", "card_funding", "CNY").id
            made.append((merchant_id, pending, card))
        number_hash = app.vault.lookup_hash(CARD_NUMBER, "bank_account")
        sealed = app.vault.seal(CARD_NUMBER, "bank_account")
        uow.connection.execute(bank_accounts.insert(), [
            {"id": f"ba_{merchant_id}", "merchant_id": merchant_id, "number_sealed": sealed,
             "number_hash": number_hash, "number_masked": "622202*********0128", "kind": "card",
             "holder_name": f"Bench {n}", "status": "verified", "micro_deposit_1": 1, "micro_deposit_2": 2,
             "attempts": 1, "created_at": now, "verified_at": now, "updated_at": now}
            for n, (merchant_id, _, _) in enumerate(made)])
        uow.commit()
    return made


def generate(app: App, transactions: int, merchant_count: int) -> int:
    """Bulk-insert the journal; returns the merchants' count. Balances are set to match."""
    tag = uuid.uuid4().hex[:6]
    merchants = _merchants(app, merchant_count, tag)
    credits: dict[int, int] = {}
    debits: dict[int, int] = {}
    start = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)  # Sunday 09:00 in Shanghai: before its cut-off
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("generating transfers", total=transactions)
        for first in range(0, transactions, CHUNK_ROWS):
            rows = []
            for i in range(first, min(first + CHUNK_ROWS, transactions)):
                _, pending, card = merchants[i % merchant_count]
                amount = 100 + (i * 7919) % 50_000
                refund = (i // merchant_count) % 20 == 19
                debit, credit = (pending, card) if refund else (card, pending)
                amount = amount // 4 if refund else amount
                debits[debit] = debits.get(debit, 0) + amount
                credits[credit] = credits.get(credit, 0) + amount
                rows.append({"id": f"bench:{tag}:{i}", "kind": "single", "debit_account_id": debit,
                             "credit_account_id": credit, "amount": amount, "currency": "CNY",
                             "pending_id": None, "timeout_s": 0, "expires_at": None,
                             "code": "refund" if refund else "sale", "fingerprint": "bench",
                             "created_at": start + timedelta(microseconds=i)})
            with app.uow() as uow:
                insert_rows(uow.connection, ledger_transfers, rows)
                uow.commit()
            bar.advance(task, len(rows))
    with app.uow() as uow:
        for account_id in set(credits) | set(debits):
            uow.connection.execute(ledger_accounts.update().where(ledger_accounts.c.id == account_id).values(
                credits_posted=ledger_accounts.c.credits_posted + credits.get(account_id, 0),
                debits_posted=ledger_accounts.c.debits_posted + debits.get(account_id, 0)))
        uow.commit()
    return merchant_count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench clearing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--transactions", type=int, default=100_000, help="transactions to clear (default 100000)")
    parser.add_argument("--merchants", type=int, default=1_000, help="merchants they spread over (default 1000)")
    args = parser.parse_args(argv)
    if args.transactions < 1 or args.merchants < 1:
        parser.error("--transactions and --merchants must be at least 1")
    data_dir = Path(tempfile.mkdtemp(prefix="paypos-bench-clearing-"))
    url = args.database_url or f"sqlite:///{data_dir / 'paypos.db'}"
    app = _app(url, data_dir)
    try:
        migrate.upgrade(app.engine)
        began = time.perf_counter()
        generate(app, args.transactions, args.merchants)
        generated = time.perf_counter() - began
        with app.uow(write=False) as uow:  # a date no earlier run of this database used
            last = uow.connection.execute(sa.text("SELECT max(business_date) FROM settlement_runs")).scalar()
        day = max(BUSINESS_DATE, (date.fromisoformat(str(last)) + timedelta(days=1)) if last else BUSINESS_DATE)
        began = time.perf_counter()
        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("clearing", total=None)
            summary = settlement.run_clearing(app, day, lambda done, total: bar.update(task, completed=done,
                                                                                       total=total))
        cleared = time.perf_counter() - began
        print(f"database            {make_engine(url).url.get_backend_name()}")
        print(f"transactions        {args.transactions}")
        print(f"merchants due       {summary['merchants_total']}")
        print(f"payouts             {summary['payouts']}")
        print(f"generate seconds    {generated:.1f}")
        print(f"clearing seconds    {cleared:.2f}")
        print(f"transactions/s      {args.transactions / cleared:,.0f}")
    finally:
        app.close()
