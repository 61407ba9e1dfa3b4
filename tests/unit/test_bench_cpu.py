"""bench/cpu.py: the /proc readings `paypos bench` divides by the requests it answered
(proc(5) gives the field layouts used here); bench/iso.py's report of them, of pgbench's
output, and of a --sweep."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bench import cpu
from bench.iso import PartyCpu, Probe, Stats, _cpu_line, _is_local, _pgbench_cpu_line, parse_pgbench, sweep_summary

# A real /proc/<pid>/stat line (PostgreSQL's postmaster): utime 1234, stime 56, cutime 300, cstime 21.
BACKEND = ("4242 (postgres) S 700 700 700 0 -1 4194560 1016 0 0 0 1234 56 300 21 20 0 1 0 "
           "3141 224002048 5631 18446744073709551615 1 1 0 0 0 0 4194304 19935232 536890375 0 0 0 17 1 0 0 0 0 0")


def test_pid_stat_fields_are_counted_from_the_last_parenthesis() -> None:
    stat = cpu.parse_pid_stat(BACKEND)
    assert (stat.pid, stat.comm, stat.ppid, stat.own_ticks, stat.children_ticks) == (4242, "postgres", 700, 1290, 321)
    assert stat.cpu_ticks == 1290 + 321
    # comm may hold spaces and ')' (a thread or program can name itself so).
    odd = cpu.parse_pid_stat(BACKEND.replace("(postgres)", "(a) b (c))"))
    assert (odd.pid, odd.comm, odd.ppid, odd.cpu_ticks) == (4242, "a) b (c)", 700, 1611)


def test_machine_stat_busy_leaves_idle_and_iowait_out_and_guest_in_user() -> None:
    #               user nice system idle iowait irq softirq steal guest guest_nice
    line = "cpu  100 5 20 800 30 3 2 7 40 0"
    got = cpu.parse_machine_stat(line)
    assert got == cpu.MachineStat(busy=100 + 5 + 20 + 3 + 2 + 7, total=100 + 5 + 20 + 3 + 2 + 7 + 800 + 30, steal=7)


def test_machine_stat_refuses_a_per_core_line() -> None:
    with pytest.raises(ValueError, match="cpu summary"):
        cpu.parse_machine_stat("cpu0 1 2 3 4 5 6 7 8")


def table(*rows: tuple[int, str, int, int] | tuple[int, str, int, int, int]) -> dict[int, cpu.ProcStat]:
    return {row[0]: cpu.ProcStat(*row, *((0,) if len(row) == 4 else ())) for row in rows}


def test_descendants_and_named_groups() -> None:
    procs = table((1, "init", 0, 0), (10, "python", 1, 5), (11, "python", 10, 7), (12, "python", 11, 9),
                  (20, "postgres", 1, 3), (21, "postgres", 20, 4), (30, "python", 1, 1))
    assert cpu.descendants(10, procs) == {10, 11, 12}
    assert cpu.descendants(12, procs) == {12}
    assert cpu.named("postgres", procs) == {20, 21}


def test_group_seconds_follow_a_process_into_the_parent_that_reaped_it() -> None:
    hz = cpu.clock_ticks_per_s()
    before = cpu.Snapshot(cpu.MachineStat(0, 0, 0), table(
        (20, "postgres", 1, 10 * hz, 2 * hz),  # postmaster: own, reaped children
        (21, "postgres", 20, 4 * hz),  # a backend that exits in the window, 1 s more spent
        (22, "postgres", 20, 1 * hz),  # one that stays, 2 s more
        (30, "python", 1, 7 * hz)))
    after = cpu.Snapshot(cpu.MachineStat(3 * hz, 4 * hz, hz // 2), table(
        (20, "postgres", 1, 10 * hz, 2 * hz + 5 * hz),  # reaped 21 (its 5 s lifetime)
        (22, "postgres", 20, 3 * hz),
        (23, "postgres", 20, 1 * hz),  # new in the window
        (30, "python", 1, 9 * hz)))
    assert cpu.group_seconds(before, after, cpu.called("postgres")) == 1 + 2 + 1
    assert cpu.group_seconds(before, after, cpu.tree(20)) == 4
    assert cpu.group_seconds(before, after, cpu.only(30)) == 2
    assert cpu.group_seconds(before, after, cpu.only(99)) == 0
    use = cpu.machine_use(before, after)
    assert (use.busy_s, use.busy_fraction, use.steal_fraction) == (3.0, 0.75, (hz // 2) / (4 * hz))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_a_snapshot_sees_this_process_spend_cpu() -> None:
    before = cpu.snapshot()
    assert before is not None and os.getpid() in before.table
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    after = cpu.snapshot()
    assert after is not None
    assert 0.2 <= cpu.group_seconds(before, after, cpu.only(os.getpid())) <= 5
    assert cpu.machine_use(before, after).busy_s >= 0.2


def test_per_unit_ms() -> None:
    assert cpu.per_unit_ms(1.5, 1000) == 1.5
    assert cpu.per_unit_ms(1.0, 0) != cpu.per_unit_ms(1.0, 0)  # nan: nothing answered


PGBENCH_OUT = """pgbench (15.19 (Debian 15.19-0+deb12u1))
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 10
query mode: simple
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 15 s
number of transactions actually processed: 60418
number of failed transactions: 0 (0.000%)
latency average = 1.987 ms
initial connection time = 12.324 ms
tps = 4025.522739 (without initial connection time)
"""


def test_pgbench_output_gives_tps_and_cpu_per_transaction() -> None:
    use = cpu.MachineUse(busy_s=27.5, busy_fraction=0.93, steal_fraction=0.0)
    run = parse_pgbench(PGBENCH_OUT, PartyCpu(use, postgresql_s=18.1, client_s=4.8))
    assert (run.tps, run.transactions) == (4025.522739, 60418)
    assert _pgbench_cpu_line([run, run]) == (
        "pgbench cpu ms/transaction, before | after: "
        "postgresql 0.300  pgbench 0.079  machine 0.455 (93 % busy) | "
        "postgresql 0.300  pgbench 0.079  machine 0.455 (93 % busy)")


def test_pgbench_output_without_figures_is_nan_not_a_crash() -> None:
    run = parse_pgbench("pgbench: error: connection refused", PartyCpu(None, None, None))
    assert run.tps != run.tps and run.transactions == 0
    assert _pgbench_cpu_line([run]) == "pgbench cpu ms/transaction: not measured (no /proc on this system)"


def test_cpu_line_per_answered_request() -> None:
    use = cpu.MachineUse(busy_s=13.68, busy_fraction=0.86, steal_fraction=0.001)
    line = _cpu_line(PartyCpu(use, postgresql_s=3.78, client_s=0.91, host_s=9.02), 10_000)
    assert line == ("  cpu ms/req  : host 0.902  postgresql 0.378  load generator 0.091  machine 1.368 "
                    "(86 % busy, steal 0.1 %)")
    external = _cpu_line(PartyCpu(use, postgresql_s=None, client_s=0.91), 10_000)
    assert "host n/a  postgresql n/a  load generator 0.091" in external
    assert _cpu_line(PartyCpu(None, None, None), 10) == "  cpu ms/req  : not measured (no /proc on this system)"


@pytest.mark.parametrize(("url", "local"), [
    ("postgresql://postgres@127.0.0.1/paypos_bench", True),
    ("postgresql+psycopg://postgres@localhost:5432/x", True),
    ("postgresql:///x", True),  # the Unix socket
    ("postgresql://postgres@db.example/x", False),
    ("sqlite:///paypos.db", False),
    (None, False),
])
def test_only_a_local_postgresql_is_measured(url: str | None, local: bool) -> None:
    assert _is_local(url) is local


def _stat_line(pid: int, comm: str, ppid: int, own: int, children: int) -> str:
    return (f"{pid} ({comm}) S {ppid} 1 1 0 -1 0 0 0 0 0 {own} 0 {children} 0 20 0 1 0 1 1 1 "
            "0 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0")


def test_a_snapshot_reads_again_when_a_child_is_reaped_while_it_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc = tmp_path
    (proc / "stat").write_text("cpu  1 0 1 10 0 0 0 0 0 0\ncpu0 1 0 1 10 0 0 0 0 0 0\n")
    for pid, line in ((1, _stat_line(1, "postgres", 0, 5, 100)), (2, _stat_line(2, "postgres", 1, 40, 0))):
        (proc / str(pid)).mkdir()
        (proc / str(pid) / "stat").write_text(line)
    monkeypatch.setattr(cpu, "PROC", proc)
    reads = []
    real = cpu.processes

    def racing() -> dict[int, cpu.ProcStat]:
        table = real()
        if not reads:  # the backend read alive, then reaped before its postmaster was read
            (proc / "2" / "stat").unlink()
            (proc / "2").rmdir()
            (proc / "1" / "stat").write_text(_stat_line(1, "postgres", 0, 5, 140))
            table[1] = cpu.parse_pid_stat((proc / "1" / "stat").read_text())
        reads.append(table)
        return table

    monkeypatch.setattr(cpu, "processes", racing)
    snap = cpu.snapshot()
    assert snap is not None and len(reads) == 2
    assert set(snap.table) == {1} and snap.table[1].cpu_ticks == 5 + 140  # the backend's 40 ticks once
    assert sum(s.cpu_ticks for s in reads[0].values()) == 5 + 140 + 40  # the torn read: counted twice


def _probe(terminals: int, approved: int, p99_ms: float, errors: int = 0) -> Probe:
    stats = Stats(latencies_s=[p99_ms / 1000] * 100, codes=Counter({"00": approved}),
                  errors=Counter({"ConnectionError": errors} if errors else {}))
    return Probe(terminals, stats, 1.0, PartyCpu(None, None, None))


def test_sweep_summary_names_the_best_throughput_within_the_bound() -> None:
    probes = [_probe(8, 400, 20.0), _probe(16, 700, 45.0), _probe(32, 900, 80.0), _probe(64, 950, 49.0, errors=3)]
    lines = sweep_summary(probes, 50, pgbench_tps=2000.0)
    assert lines[0] == "sweep (p99 bound 50 ms):"
    assert lines[2] == "          8       400.0      20.0  0.20×"
    # 32 is over the bound, 64 lost connections: 16 is the best that counts.
    assert lines[-1] == "  best within p99 ≤ 50 ms: 16 terminals, 700.0 approved/s, 0.35× pgbench"
    assert sweep_summary(probes[2:3], 50, None)[-1] == "  best within p99 ≤ 50 ms: none"
    assert sweep_summary(probes[:1], 50, None)[-1] == "  best within p99 ≤ 50 ms: 8 terminals, 400.0 approved/s"
