"""bench/cpu.py: the /proc readings `paypos bench` divides by the requests it answered
(proc(5) gives the field layouts used here), and pgbench's output it divides by."""

from __future__ import annotations

import os
import sys
import time

import pytest

from bench import cpu
from bench.iso import LoadCpu, _cpu_line, _pgbench_cpu_line, parse_pgbench

# A real /proc/<pid>/stat line (a PostgreSQL backend), utime 1234 and stime 56.
BACKEND = ("4242 (postgres) S 700 700 700 0 -1 4194560 1016 0 0 0 1234 56 0 0 20 0 1 0 "
           "3141 224002048 5631 18446744073709551615 1 1 0 0 0 0 4194304 19935232 536890375 0 0 0 17 1 0 0 0 0 0")


def test_pid_stat_fields_are_counted_from_the_last_parenthesis() -> None:
    stat = cpu.parse_pid_stat(BACKEND)
    assert (stat.pid, stat.comm, stat.ppid, stat.cpu_ticks) == (4242, "postgres", 700, 1234 + 56)
    # comm may hold spaces and ')' (a thread or program can name itself so).
    odd = cpu.parse_pid_stat(BACKEND.replace("(postgres)", "(a) b (c))"))
    assert (odd.pid, odd.comm, odd.ppid, odd.cpu_ticks) == (4242, "a) b (c)", 700, 1290)


def test_machine_stat_busy_leaves_idle_and_iowait_out_and_guest_in_user() -> None:
    #               user nice system idle iowait irq softirq steal guest guest_nice
    line = "cpu  100 5 20 800 30 3 2 7 40 0"
    got = cpu.parse_machine_stat(line)
    assert got == cpu.MachineStat(busy=100 + 5 + 20 + 3 + 2 + 7, total=100 + 5 + 20 + 3 + 2 + 7 + 800 + 30, steal=7)


def test_machine_stat_refuses_a_per_core_line() -> None:
    with pytest.raises(ValueError, match="cpu summary"):
        cpu.parse_machine_stat("cpu0 1 2 3 4 5 6 7 8")


def table(*rows: tuple[int, str, int, int]) -> dict[int, cpu.ProcStat]:
    return {pid: cpu.ProcStat(pid, comm, ppid, ticks) for pid, comm, ppid, ticks in rows}


def test_descendants_and_named_groups() -> None:
    procs = table((1, "init", 0, 0), (10, "python", 1, 5), (11, "python", 10, 7), (12, "python", 11, 9),
                  (20, "postgres", 1, 3), (21, "postgres", 20, 4), (30, "python", 1, 1))
    assert cpu.descendants(10, procs) == {10, 11, 12}
    assert cpu.descendants(12, procs) == {12}
    assert cpu.named("postgres", procs) == {20, 21}


def test_group_seconds_counts_new_processes_from_zero_and_skips_gone_ones() -> None:
    hz = cpu.clock_ticks_per_s()
    machine = cpu.MachineStat(0, 0, 0)
    before = cpu.Snapshot(machine, {1: 10 * hz, 2: 5 * hz, 3: 1 * hz})
    after = cpu.Snapshot(cpu.MachineStat(3 * hz, 4 * hz, hz // 2), {1: 12 * hz, 2: 5 * hz, 4: 3 * hz})
    assert cpu.group_seconds(before, after, [1, 2]) == 2.0
    assert cpu.group_seconds(before, after, [3, 4]) == 3.0  # 3 ended; 4 started in the window
    use = cpu.machine_use(before, after)
    assert (use.busy_s, use.busy_fraction, use.steal_fraction) == (3.0, 0.75, (hz // 2) / (4 * hz))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_a_snapshot_sees_this_process_spend_cpu() -> None:
    before = cpu.snapshot()
    assert before is not None and os.getpid() in before.ticks
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    after = cpu.snapshot()
    assert after is not None
    assert 0.2 <= cpu.group_seconds(before, after, [os.getpid()]) <= 5
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


def test_pgbench_output_gives_tps_and_machine_cpu_per_transaction() -> None:
    use = cpu.MachineUse(busy_s=27.5, busy_fraction=0.93, steal_fraction=0.0)
    run = parse_pgbench(PGBENCH_OUT, use)
    assert (run.tps, run.transactions) == (4025.522739, 60418)
    assert run.machine_ms_per_transaction == pytest.approx(1000 * 27.5 / 60418)
    assert _pgbench_cpu_line([run, run]) == ("pgbench machine cpu per transaction: 0.455 ms (93 % busy) and "
                                             "0.455 ms (93 % busy)")


def test_pgbench_output_without_figures_is_nan_not_a_crash() -> None:
    run = parse_pgbench("pgbench: error: connection refused", None)
    assert run.tps != run.tps and run.transactions == 0
    assert _pgbench_cpu_line([run]) == "pgbench machine cpu: not measured (no /proc on this system)"


def test_cpu_line_per_answered_request() -> None:
    use = cpu.MachineUse(busy_s=13.68, busy_fraction=0.86, steal_fraction=0.001)
    line = _cpu_line(LoadCpu(host_s=9.02, postgresql_s=3.78, generator_s=0.91, use=use), 10_000)
    assert line == ("  cpu ms/req  : host 0.902  postgresql 0.378  load generator 0.091  machine 1.368 "
                    "(86 % busy, steal 0.1 %)")
    external = _cpu_line(LoadCpu(host_s=None, postgresql_s=None, generator_s=0.91, use=use), 10_000)
    assert "host n/a  postgresql n/a  load generator 0.091" in external
    assert _cpu_line(None, 10) == "  cpu ms/req  : not measured (no /proc on this system)"

