"""Reports dashboard over a large card-present journal: generate, fold, query.

    python -m bench reports [--transactions 10000000] [--merchants 50] [--days 30]
                            [--tail 10000] [--queries 200] [--database-url URL]

Generates ``--transactions`` host_transactions rows (bulk insert; a fresh SQLite file in a
temporary directory unless ``--database-url`` names a scratch database): merchants with two
terminals each, spread over ``--days`` days, 3 % declined, 2 % refunds, 0.5 % reversed, a
mix of chip, contactless and wallet entry modes. Then folds them into report_rollups
(``services.reports.refresh_all``, timed), adds ``--tail`` more rows left unfolded (what the
dashboard reads live), and times ``services.reports.dashboard`` over the last 7 days for a
random merchant, ``--queries`` times, printing p50/p95/p99; then the operator-wide dashboard
(every merchant) a tenth as often. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.progress import Progress

from paypos.adapters.db import migrate
from paypos.adapters.db.engine import make_engine
from paypos.adapters.db.uow import UnitOfWork
from paypos.domain.pricing import fee_minor
from paypos.services import reports

CHUNK_ROWS = 50_000
NOW = datetime(2026, 12, 1, tzinfo=UTC)
_COLUMNS = ("terminal_id", "merchant_id", "batch_no", "mti", "processing_code", "kind", "stan", "transmission_dt",
            "amount_minor", "currency", "fee_minor", "card_id", "pan_masked", "entry_mode", "response_code",
            "approval_code", "status", "refunded_minor", "completed_minor", "transfer_ref", "created_at")


def _rows(count: int, merchants: int, days: int, start_index: int, rng: random.Random) -> Iterator[tuple]:
    span_s = days * 86_400
    base = NOW - timedelta(seconds=span_s)
    for i in range(start_index, start_index + count):
        m = rng.randrange(merchants)
        terminal = f"B{m:05d}{rng.randrange(2)}"
        at = base + timedelta(seconds=span_s * (i - start_index) / max(count, 1))
        roll = rng.random()
        kind, status, code = ("refund", "approved", "00") if roll < 0.02 else \
            ("purchase", "declined", rng.choice(("51", "05", "55", "54"))) if roll < 0.05 else \
            ("purchase", "reversed", "00") if roll < 0.055 else ("purchase", "approved", "00")
        amount = rng.randrange(100, 200_000)
        entry = rng.choice(("051", "071", "032"))
        stan, dt = f"{i % 1_000_000:06d}", at.strftime("%m%d%H%M%S")
        fee = fee_minor(amount) if kind == "purchase" and status != "declined" else 0
        yield (terminal, f"BENCH{m:010d}", 1, "0200", "200000" if kind == "refund" else "000000", kind, stan, dt,
               amount, "CNY", fee, None, "476173******0010", entry, code, "123456" if code == "00" else None, status,
               0, 0, f"{terminal}:{dt}:{stan}", at)


def _insert(engine: sa.Engine, count: int, merchants: int, days: int, start_index: int, progress: Progress) -> None:
    rng = random.Random(start_index or 7)
    task = progress.add_task(f"inserting {count:,} journal rows", total=count)
    sqlite = engine.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    # The driver's executemany, past SQLAlchemy's per-row processing: timestamps as SQLite's
    # naive UTC text, or aware datetimes for PostgreSQL.
    statement = f"INSERT INTO host_transactions ({', '.join(_COLUMNS)}) VALUES ({', '.join([mark] * len(_COLUMNS))})"
    with engine.begin() as connection:
        batch: list[tuple[object, ...]] = []
        for row in _rows(count, merchants, days, start_index, rng):
            at = row[-1]
            batch.append((*row[:-1], at.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else at))
            if len(batch) == CHUNK_ROWS:
                connection.exec_driver_sql(statement, batch)
                progress.advance(task, len(batch))
                batch = []
        if batch:
            connection.exec_driver_sql(statement, batch)
            progress.advance(task, len(batch))


def _percentiles(samples: list[float]) -> str:
    if len(samples) < 2:
        return f"{samples[0] * 1000:.1f} ms"
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return f"p50 {q[49] * 1000:.1f} ms, p95 {q[94] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms"


def run(url: str, transactions: int, merchants: int, days: int, tail: int, queries: int, console: Console) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    with Progress(console=console) as progress:
        started = time.perf_counter()
        _insert(engine, transactions, merchants, days, 0, progress)
        console.print(f"generated {transactions:,} rows in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        task = progress.add_task("folding into report_rollups", total=transactions)

        def uow() -> UnitOfWork:
            return UnitOfWork(engine)

        folded = reports.refresh_all(uow, lambda: NOW + timedelta(hours=1),
                                     on_batch=lambda r: progress.advance(task, r.rows_folded))
        refresh_s = time.perf_counter() - started
        _insert(engine, tail, merchants, 1, transactions, progress)
    with engine.connect() as connection:
        rollup_rows = connection.exec_driver_sql("SELECT count(*) FROM report_rollups").scalar_one()
    console.print(f"refresh folded {folded:,} rows into {rollup_rows:,} rollup rows in {refresh_s:.1f} s "
                  f"({folded / max(refresh_s, 1e-9):,.0f} rows/s); {tail:,} rows left in the tail")
    rng = random.Random(1)
    since, until = NOW - timedelta(days=7), NOW + timedelta(hours=1)
    for label, merchant_ids, n in (("one merchant, 7 days", [f"BENCH{m:010d}" for m in range(merchants)], queries),
                                   ("every merchant, 7 days", [None], max(queries // 10, 3))):
        samples: list[float] = []
        for _ in range(n):
            merchant_id = rng.choice(merchant_ids)
            started = time.perf_counter()
            with UnitOfWork(engine, write=False) as unit:
                data = reports.dashboard(unit, merchant_id, since, until)
            samples.append(time.perf_counter() - started)
        console.print(f"dashboard ({label}): {n} queries, {_percentiles(samples)}; "
                      f"last: {data.sales_count:,} sales, {len(data.sales_by_hour)} hours")
    engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench reports", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=10_000_000, help="journal rows (default 10 000 000)")
    parser.add_argument("--merchants", type=int, default=50, help="merchants, two terminals each (default 50)")
    parser.add_argument("--days", type=int, default=30, help="days the rows span (default 30)")
    parser.add_argument("--tail", type=int, default=10_000, help="rows left unfolded (default 10 000)")
    parser.add_argument("--queries", type=int, default=200, help="dashboard queries timed (default 200)")
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temp dir")
    args = parser.parse_args(argv)
    if args.transactions < 1 or not 1 <= args.merchants <= 99_999 or args.days < 1 or args.tail < 0 \
            or args.queries < 1:
        parser.error("--transactions, --merchants, --days and --queries must be >= 1, --tail >= 0")
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        console.print(f"reports bench on {url.split(':', 1)[0]}: {args.transactions:,} rows, "
                      f"{args.merchants} merchants, {args.days} days")
        run(url, args.transactions, args.merchants, args.days, args.tail, args.queries, console)


if __name__ == "__main__":
    main()
