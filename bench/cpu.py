"""Where a benchmark's CPU went, read from Linux's /proc: per process group (the host's
processes, PostgreSQL's, the load generator) and for the whole machine.

The ISO host's benchmark target compares it with pgbench TPC-B on the same two cores, so
throughput is bought only with CPU per request. Dividing each group's CPU over the load
by the requests answered in it says what one request costs and who spends it; the same
reading around a pgbench run says what one TPC-B transaction costs the machine. Only
/proc is read (no psutil: six fields of two files, and nothing to install); where
/proc is missing (not Linux) every reading is None and the report says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
SNAPSHOT_ATTEMPTS = 5  # reads of the process table before a snapshot is taken as it is


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of /proc/<pid>/stat this module uses (proc(5))."""

    pid: int
    comm: str
    ppid: int
    own_ticks: int  # utime + stime
    children_ticks: int  # cutime + cstime: children it has waited for (a backend PostgreSQL reaped)

    @property
    def cpu_ticks(self) -> int:
        return self.own_ticks + self.children_ticks


def parse_pid_stat(line: str) -> ProcStat:
    """One /proc/<pid>/stat line. comm is in parentheses and may hold spaces and ')', so
    the fields are counted from the last ')' (proc(5): fields 1 pid, 2 comm, 4 ppid,
    14 utime, 15 stime, 16 cutime, 17 cstime)."""
    head, _, tail = line.rpartition(")")
    pid, _, comm = head.partition(" (")
    rest = tail.split()
    return ProcStat(int(pid), comm, int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14]))


@dataclass(frozen=True, slots=True)
class MachineStat:
    """The first ("cpu") line of /proc/stat, in clock ticks summed over all cores."""

    busy: int  # user + nice + system + irq + softirq + steal
    total: int  # busy + idle + iowait
    steal: int


def parse_machine_stat(line: str) -> MachineStat:
    """proc(5): cpu user nice system idle iowait irq softirq steal [guest guest_nice];
    guest time is already counted in user, so it is left out."""
    label, *values = line.split()
    if label != "cpu":
        raise ValueError(f"not the cpu summary line of /proc/stat: {line[:40]!r}")
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in values[:8])
    busy = user + nice + system + irq + softirq + steal
    return MachineStat(busy, busy + idle + iowait, steal)


def clock_ticks_per_s() -> int:
    return os.sysconf("SC_CLK_TCK")


def available() -> bool:
    return (PROC / "stat").is_file()


def processes() -> dict[int, ProcStat]:
    """Every process readable now (one that exits meanwhile is skipped)."""
    found = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = parse_pid_stat((entry / "stat").read_text())
            except (OSError, ValueError, IndexError):
                continue
    return found


def machine() -> MachineStat:
    return parse_machine_stat((PROC / "stat").read_text().split("\n", 1)[0])


def descendants(root: int, table: dict[int, ProcStat]) -> set[int]:
    """root and every process below it in table."""
    children: dict[int, list[int]] = {}
    for stat in table.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def named(comm: str, table: dict[int, ProcStat]) -> set[int]:
    return {pid for pid, stat in table.items() if stat.comm == comm}


@dataclass(frozen=True, slots=True)
class Snapshot:
    machine: MachineStat
    table: dict[int, ProcStat]


def snapshot(attempts: int = SNAPSHOT_ATTEMPTS) -> Snapshot | None:
    """Every process's times, consistent: /proc is read one process after another, so a child
    reaped meanwhile could be seen twice (alive, then in its parent's children's time) or
    not at all. The table is read again until no process read has gone and no parent's
    children's time has moved since (pgbench's eight backends end together)."""
    if not available():
        return None
    table = processes()
    for _ in range(attempts - 1):
        if _consistent(table):
            break
        table = processes()
    return Snapshot(machine(), table)


def _consistent(table: dict[int, ProcStat]) -> bool:
    parents = {stat.ppid for stat in table.values()}
    for pid, stat in table.items():
        try:
            now = parse_pid_stat((PROC / str(pid) / "stat").read_text())
        except (OSError, ValueError, IndexError):
            return False  # gone (a child reaped while the table was read)
        if pid in parents and now.children_ticks != stat.children_ticks:
            return False
    return True


Members = Callable[[dict[int, ProcStat]], set[int]]


def group_seconds(before: Snapshot, after: Snapshot, members: Members) -> float:
    """CPU a group of processes spent between two snapshots, the group chosen in each by
    ``members``: what its processes hold at the end, own time and their reaped children's,
    less what its processes held at the start. A process that ended in between is counted
    through the parent that reaped it (pgbench's backends through PostgreSQL's postmaster),
    one that started in between from zero."""
    def held(snap: Snapshot) -> int:
        return sum(snap.table[pid].cpu_ticks for pid in members(snap.table) if pid in snap.table)

    return (held(after) - held(before)) / clock_ticks_per_s()


def tree(root: int) -> Members:
    return lambda table: descendants(root, table)


def called(comm: str) -> Members:
    return lambda table: named(comm, table)


def only(pid: int) -> Members:
    return lambda table: {pid}


@dataclass(frozen=True, slots=True)
class MachineUse:
    busy_s: float
    busy_fraction: float
    steal_fraction: float


def machine_use(before: Snapshot, after: Snapshot) -> MachineUse:
    busy = after.machine.busy - before.machine.busy
    total = max(after.machine.total - before.machine.total, 1)
    return MachineUse(busy / clock_ticks_per_s(), busy / total,
                      (after.machine.steal - before.machine.steal) / total)


def per_unit_ms(seconds: float, units: int) -> float:
    return 1000 * seconds / units if units > 0 else float("nan")
