"""`paypos bench` (bench/iso.py): the load generator the performance figures of
docs/performance.md come from, run for a couple of seconds against a self-started host.
Only its working is tested here (it answers, it reports, nothing errs); its numbers are
measurements, never asserted."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import PayposCli

BENCH_TIMEOUT_S = 300


def bench(cli: PayposCli, tmp_path: Path, *args: str) -> str:
    done = subprocess.run([*cli.command, "bench", "--terminals", "2", "--duration", "2", *args],
                          capture_output=True, text=True, timeout=BENCH_TIMEOUT_S, env=cli.env(COLUMNS="200"),
                          cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def figure(out: str, name: str) -> float:
    match = re.search(rf"{name}\s*:\s*([0-9.]+)", out)
    assert match, out
    return float(match.group(1))


def test_bench_loads_a_self_started_host_on_sqlite_and_reports(cli: PayposCli, tmp_path: Path) -> None:
    out = bench(cli, tmp_path)
    assert "paypos ISO 8583 host on sqlite (1 host process): 2 terminals" in out
    assert figure(out, "approved/s") > 0
    assert re.search(r"latency ms\s*: p50 [0-9.]+\s+p95 [0-9.]+\s+p99 [0-9.]+", out), out
    assert "errors      : none" in out
    assert "pgbench" not in out  # the TPC-B comparison is PostgreSQL's
    # CPU per request by party, from /proc: the host it started, no PostgreSQL on SQLite.
    cpu = re.search(r"cpu ms/req\s*: host ([0-9.]+)\s+postgresql n/a\s+load generator ([0-9.]+)\s+machine ([0-9.]+)",
                    out)
    assert cpu, out
    host, generator, machine = (float(cpu.group(i)) for i in (1, 2, 3))
    assert host > 0 and generator > 0 and machine >= 0.9 * host  # /proc/stat and per-process ticks round apart


@pytest.mark.postgres
def test_bench_on_postgresql_runs_one_host_process_per_core_and_compares_with_pgbench(
        cli: PayposCli, postgres_url: str, tmp_path: Path) -> None:
    import os

    from tests.conftest import truncate_all

    from paypos.adapters.db.engine import make_engine

    engine = make_engine(postgres_url)
    truncate_all(engine)
    engine.dispose()
    out = bench(cli, tmp_path, "--database-url", postgres_url)
    cores = os.cpu_count() or 1
    assert f"paypos ISO 8583 host on postgresql ({cores} host process{'es' if cores != 1 else ''})" in out
    assert figure(out, "approved/s") > 0
    assert "errors      : none" in out
    assert re.search(r"pgbench TPC-B \(scale 10, 8 clients, 2 s, run before and after\): [0-9.]+ and [0-9.]+ tps, "
                     r"mean [0-9.]+; .* = [0-9.]+×", out.replace("\n", " ")), out
    cpu = re.search(r"cpu ms/req\s*: host ([0-9.]+)\s+postgresql ([0-9.]+)\s+load generator [0-9.]+\s+machine ([0-9.]+)",
                    out)
    assert cpu, out
    host, postgresql, machine = (float(cpu.group(i)) for i in (1, 2, 3))
    assert host > 0 and postgresql > 0 and machine >= 0.9 * (host + postgresql)
    assert re.search(r"pgbench cpu ms/transaction, before \| after: postgresql [0-9.]+\s+pgbench [0-9.]+\s+machine "
                     r"[0-9.]+ \([0-9]+ % busy\) \| postgresql [0-9.]+", out.replace("\n", " ")), out


def test_bench_sweep_loads_each_terminal_count_and_names_the_best_within_the_p99_bound(
        cli: PayposCli, tmp_path: Path) -> None:
    out = bench(cli, tmp_path, "--sweep", "1,2", "--p99-max-ms", "10000")  # --sweep's counts, not --terminals
    assert "paypos ISO 8583 host on sqlite (1 host process): 1 terminals" in out
    assert "paypos ISO 8583 host on sqlite (1 host process): 2 terminals" in out
    assert out.count("errors      : none") == 2
    assert "sweep (p99 bound 10000 ms):" in out
    rows = re.findall(r"^\s+([12])\s+([0-9.]+)\s+([0-9.]+)\s+-$", out, re.MULTILINE)
    assert [row[0] for row in rows] == ["1", "2"], out
    best = max(rows, key=lambda row: float(row[1]))
    assert re.search(rf"best within p99 ≤ 10000 ms: {best[0]} terminals, {best[1]} approved/s$", out, re.MULTILINE), out


@pytest.mark.parametrize(("sweep", "reason"), [
    ("0,8", "each terminal count is 1 to 1000"),
    ("8,x", "comma-separated whole numbers"),
    ("8,\u00b2", "comma-separated whole numbers"),  # a digit to str.isdigit, not to int()
    (",".join(["2"] * 13), "at most 12 terminal counts"),
])
def test_bench_refuses_a_bad_sweep_before_starting_anything(cli: PayposCli, tmp_path: Path, sweep: str,
                                                           reason: str) -> None:
    done = subprocess.run([*cli.command, "bench", "--sweep", sweep], capture_output=True, text=True, timeout=60,
                          env=cli.env(COLUMNS="200"), cwd=tmp_path)
    assert done.returncode == 2
    assert reason in done.stderr + done.stdout
    assert "paypos ISO 8583 host" not in done.stdout
