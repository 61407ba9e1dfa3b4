"""Ledger throughput: sale chains (cardholder debit + merchant credit + fee) per second.

    python -m bench.ledger [--database-url URL] [--chains 2000] [--threads 4]

Prints chains/s, transfers/s and p50/p95/p99 latency per chain. Defaults to a fresh
SQLite file in a temporary directory; pass a PostgreSQL URL of a scratch database to
measure it (the benchmark creates its own accounts; it never deletes anything).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from paypos.adapters.db import migrate
from paypos.adapters.db.engine import make_engine
from paypos.adapters.db.uow import UnitOfWork
from paypos.domain.ledger import AccountFlags, TransferRequest, TransferResult
from paypos.services import ledger as ledger_service


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def run(database_url: str, chains: int, threads: int) -> dict[str, float]:
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    run_id = uuid.uuid4().hex[:8]
    with UnitOfWork(engine) as uow:
        issuer = uow.ledger.open_account(f"bench:{run_id}:issuer", "bench", "issuer_funding", "CNY")
        fees = uow.ledger.open_account(f"bench:{run_id}:platform", "bench", "fees_revenue", "CNY")
        cards = [uow.ledger.open_account(f"bench:{run_id}:card{i}", "bench", "cardholder_funds", "CNY",
                                         AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS) for i in range(threads)]
        merchants = [uow.ledger.open_account(f"bench:{run_id}:m{i}", "bench", "merchant_pending", "CNY")
                     for i in range(threads)]
        uow.commit()
    funding = [TransferRequest(f"{run_id}-fund-{i}", issuer.id, c.id, 10**12, "CNY") for i, c in enumerate(cards)]
    ledger_service.create_transfers(engine, funding)
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = chains // threads

    def worker(index: int, progress: Progress, task: int) -> None:
        for n in range(per_thread):
            chain = [
                TransferRequest(f"{run_id}-{index}-{n}-s", cards[index].id, merchants[index].id, 1250, "CNY",
                                code="sale", linked=True),
                TransferRequest(f"{run_id}-{index}-{n}-f", merchants[index].id, fees.id, 8, "CNY", code="fee"),
            ]
            started = time.perf_counter()
            outcomes = ledger_service.create_transfers(engine, chain)
            elapsed = time.perf_counter() - started
            if any(o.result is not TransferResult.OK for o in outcomes):
                raise RuntimeError(f"benchmark transfer refused: {outcomes}")
            with lock:
                latencies.append(elapsed)
            progress.advance(task)

    with Progress(transient=True) as progress:
        task = progress.add_task(f"{engine.dialect.name}: {per_thread * threads} sale chains", total=per_thread * threads)
        workers = [threading.Thread(target=worker, args=(i, progress, task)) for i in range(threads)]
        started = time.perf_counter()
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        wall = time.perf_counter() - started
    engine.dispose()
    done = len(latencies)
    return {
        "chains_per_s": done / wall,
        "transfers_per_s": 2 * done / wall,
        "p50_ms": _percentile(latencies, 50) * 1000,
        "p95_ms": _percentile(latencies, 95) * 1000,
        "p99_ms": _percentile(latencies, 99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--chains", type=int, default=2000, help="sale chains to post (default 2000)")
    parser.add_argument("--threads", type=int, default=4, help="concurrent writers (default 4)")
    args = parser.parse_args()
    if args.chains < 1 or not 1 <= args.threads <= 64:
        parser.error("--chains must be >= 1 and --threads 1..64")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        result = run(url, args.chains, args.threads)
    console = Console()
    backend = url.split(":", 1)[0]
    console.print(f"ledger sale chains on {backend}, {args.threads} threads, {args.chains} chains")
    for key, value in result.items():
        console.print(f"  {key:>16}: {value:10.1f}")


if __name__ == "__main__":
    main()
