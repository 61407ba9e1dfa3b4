"""Load generator for the ISO 8583 host (paypos ISO 8583 profile v1).

    paypos bench [--terminals 64] [--duration 30] [--database-url URL] [--host H --port P]

N concurrent terminals, each on its own TCP connection with its own sandbox
terminal and cards (KSNs and ATCs only rise), send the standard mix for D
seconds: 60 % contactless without PIN, 30 % chip with online PIN, 10 % refunds
and reversals. Prints approved/s, p50/p95/p99 latency and error counts. Without
--host it starts `paypos serve` itself on a fresh database (SQLite in a temp
dir, or the PostgreSQL --database-url given). On PostgreSQL it also runs
pgbench TPC-B (scale 10, 8 clients, same duration) on the same server, once
just before the load and once just after it, and prints the ratio to their
mean (a shared VM's speed, its disk's fsync above all, drifts over minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from iso8583 import decode as _decode

from bench import cpu
from paypos.protocol import emv, iso8583
from paypos.terminal.simulator import SoftTerminal

console = Console()


@dataclass
class Stats:
    latencies_s: list[float] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _paypos(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "paypos.entrypoints.cli", *args], capture_output=True, text=True,
                          env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"paypos {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, raw: bytes) -> dict[str, str]:
        self.writer.write(struct.pack(">H", len(raw)) + raw)
        await self.writer.drain()
        size = struct.unpack(">H", await self.reader.readexactly(2))[0]
        # pyiso8583's decoder alone (the profile's spec): the load generator shares the cores it
        # measures, and checking the host's answers is the end-to-end tests' job, not its own.
        fields, _ = _decode(await self.reader.readexactly(size), iso8583.SPEC)
        return fields


# --- the load script: built before the clock starts ---------------------------------
#
# Building a request costs the terminal side ~1 ms of Python (DUKPT, PIN block, ARQC,
# MAC); doing it inside the timed loop would measure the load generator, which shares
# this machine's two cores with the host and PostgreSQL (pgbench's C client costs next
# to nothing). So each terminal's requests are built up front, in a process pool, in
# the order the terminal sends them (its KSN counter and the cards' ATCs only rise).
# A refund needs its sale's RRN, known only from the response: its slot reserves a KSN
# counter and a STAN, and the message is built when its turn comes (5 % of the mix).


@dataclass
class Slot:
    kind: str  # contactless | chip+pin | reversal | refund
    raw: bytes | None = None  # built up front (all but refunds)
    sale: int | None = None  # refunds and reversals: the index of the sale slot they undo
    card: dict | None = None
    counter: int = 0  # refunds: the KSN counter and STAN kept for them
    stan: int = 0


def _purchase(t: SoftTerminal, card: dict, amount: int, contactless: bool) -> bytes:
    entry = "072" if contactless else "051"
    fields = {"3": "000000", "4": f"{amount:012d}", "22": entry, "23": card["psn"].zfill(3), "35": card["track2"],
              "55": emv.encode_field_55(t.icc(card, amount))}
    return t.message("0200", fields, pin=None if contactless else "1234", pan=card["pan"])


def _script(t: SoftTerminal, cards: list[dict], count: int, seed: int) -> tuple[SoftTerminal, list[Slot]]:
    """One terminal's requests, in sending order (run in a worker process)."""
    rng = random.Random(seed)
    slots: list[Slot] = []
    sales: list[int] = []
    sale_fields: dict[int, tuple[str, str, str]] = {}  # slot -> (11, 7, 4)
    while len(slots) < count:
        roll = rng.random()
        if roll < 0.10 and sales:
            sale = sales.pop(rng.randrange(len(sales)))
            if rng.random() < 0.5:
                stan, dt, amount = sale_fields[sale]
                original = iso8583.format_original_data_elements(iso8583.OriginalData("0200", stan, dt, "0", "0"))
                slots.append(Slot("reversal", t.message("0400", {"3": "000000", "4": amount, "90": original}),
                                  sale=sale))
            else:
                if t.mac_required:
                    t.advance_ksn()
                t.stan += 1
                slots.append(Slot("refund", sale=sale, card=slots[sale].card, counter=t.counter, stan=t.stan))
            continue
        kind = "contactless" if roll < 0.70 else "chip+pin"
        card = rng.choice(cards)
        raw = _purchase(t, card, rng.randint(100, 9_000), contactless=kind == "contactless")
        fields = iso8583.decode_message(raw)
        sale_fields[len(slots)] = (fields["11"], fields["7"], fields["4"])
        sales.append(len(slots))
        slots.append(Slot(kind, raw, card=card))
    return t, slots


def _refund(t: SoftTerminal, slot: Slot, sale_response: dict[str, str]) -> bytes:
    card = slot.card or {}
    # Sent under the counter kept for it: from the value below it, the next valid one is it.
    t.counter, t.stan = slot.counter - (1 if t.mac_required else 0), slot.stan - 1
    fields = {"3": "200000", "4": sale_response["4"], "22": "072", "23": card["psn"].zfill(3),
              "35": card["track2"], "37": sale_response["37"]}
    return t.message("0200", fields, pan=card["pan"])


def _build_scripts(terminals: list[SoftTerminal], cards: list[list[dict]], count: int,
                   seed: int) -> list[tuple[SoftTerminal, list[Slot]]]:
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} terminals"))
    with Progress(*columns, console=console, transient=True) as progress, \
            ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        task = progress.add_task(f"building {count} requests per terminal", total=len(terminals))
        futures = [pool.submit(_script, t, c, count, seed + i) for i, (t, c) in enumerate(zip(terminals, cards))]
        scripts = []
        for future in futures:
            scripts.append(future.result())
            progress.advance(task)
    return scripts


async def _terminal_loop(t: SoftTerminal, slots: list[Slot], host: str, port: int, deadline: float,
                         stats: Stats) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    conn = Connection(reader, writer)
    responses: dict[int, dict[str, str]] = {}
    try:
        for index, slot in enumerate(slots):
            if time.monotonic() >= deadline:
                return
            raw = slot.raw
            if slot.kind == "refund":
                sale = responses.get(slot.sale if slot.sale is not None else -1)
                if sale is None or sale.get("39") != "00":
                    continue  # its sale was declined: nothing to refund
                raw = _refund(t, slot, sale)
            assert raw is not None
            started = time.perf_counter()
            try:
                response = await asyncio.wait_for(conn.exchange(raw), timeout=30)
            except (TimeoutError, ConnectionError, asyncio.IncompleteReadError) as error:
                stats.errors[type(error).__name__] += 1
                return
            stats.latencies_s.append(time.perf_counter() - started)
            stats.kinds[slot.kind] += 1
            stats.codes[response.get("39", "??")] += 1
            if slot.kind in ("contactless", "chip+pin"):
                responses[index] = response
        stats.errors["script exhausted (raise --requests-per-terminal)"] += 1
    finally:
        writer.close()


def _provision(count: int, cards_per_terminal: int,
               env: dict[str, str]) -> tuple[list[SoftTerminal], list[list[dict]]]:
    terminals = json.loads(_paypos("sandbox", "add-terminals", str(count), "--json", env=env))
    cards = json.loads(_paypos("sandbox", "add-cards", str(count * cards_per_terminal), "--available-minor",
                               "100000000", "--interfaces", "chip,contactless", "--json", env=env))
    softs = [SoftTerminal(r["terminal_id"], r["merchant_id"], r["currency"], r["bdk"], r["initial_ksn"],
                          r["mac_required"]) for r in terminals]
    n = cards_per_terminal
    return softs, [cards[n * i: n * i + n] for i in range(count)]


async def _run_load(host: str, port: int, scripts: list[tuple[SoftTerminal, list[Slot]]],
                    duration_s: float) -> tuple[Stats, float]:
    stats = Stats()
    started = time.monotonic()
    deadline = started + duration_s
    loops = [asyncio.create_task(_terminal_loop(t, slots, host, port, deadline, stats)) for t, slots in scripts]
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[done]} answered"),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"{len(scripts)} terminals", total=duration_s, done=0)
        while not all(loop.done() for loop in loops):
            await asyncio.sleep(0.25)
            progress.update(task, completed=min(time.monotonic() - started, duration_s),
                            done=len(stats.latencies_s))
    await asyncio.gather(*loops, return_exceptions=True)
    return stats, time.monotonic() - started


def _percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass(frozen=True)
class PartyCpu:
    """CPU seconds each party spent over a window (None: not measured: no /proc, a host not
    started by the bench, or a PostgreSQL on another machine)."""

    use: cpu.MachineUse | None  # the whole machine
    postgresql_s: float | None
    client_s: float | None  # the load generator, or pgbench's client
    host_s: float | None = None


def _is_local(database_url: str | None) -> bool:
    return bool(database_url and database_url.startswith("postgres")
                and urlsplit(database_url).hostname in (None, "", "127.0.0.1", "localhost", "::1"))


def _party_cpu(before: cpu.Snapshot | None, after: cpu.Snapshot | None, *, local_postgresql: bool,
               server_pid: int | None = None) -> PartyCpu:
    if before is None or after is None:
        return PartyCpu(None, None, None)
    return PartyCpu(
        use=cpu.machine_use(before, after),
        postgresql_s=cpu.group_seconds(before, after, cpu.called("postgres")) if local_postgresql else None,
        # This process, and the children it reaped in the window (pgbench's client).
        client_s=cpu.group_seconds(before, after, cpu.only(os.getpid())),
        host_s=cpu.group_seconds(before, after, cpu.tree(server_pid)) if server_pid else None,
    )


@dataclass(frozen=True)
class PgBenchRun:
    tps: float
    transactions: int
    cpu: PartyCpu


class PgBench:
    """TPC-B (pgbench's default script), scale 10, 8 clients, in a scratch database on the same
    server, initialised once and run as often as asked (before and after the load)."""

    def __init__(self, database_url: str) -> None:
        base = database_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
        self._admin = base + "/postgres"
        self._scratch = f"paypos_pgbench_{os.getpid()}"
        self._url = base + "/" + self._scratch
        self._local = _is_local(database_url)

    def __enter__(self) -> PgBench:
        subprocess.run(["psql", self._admin, "-qc", f'CREATE DATABASE "{self._scratch}"'], check=True,
                       capture_output=True)
        try:
            subprocess.run(["pgbench", "-i", "-q", "-s", "10", self._url], check=True, capture_output=True)
        except BaseException:
            self.__exit__()
            raise
        return self

    def run(self, duration_s: int) -> PgBenchRun:
        before = cpu.snapshot()
        done = subprocess.run(["pgbench", "-c", "8", "-j", "2", "-T", str(duration_s), self._url],
                              check=True, capture_output=True, text=True)
        return parse_pgbench(done.stdout, _party_cpu(before, cpu.snapshot(), local_postgresql=self._local))

    def __exit__(self, *_: object) -> None:
        subprocess.run(["psql", self._admin, "-qc", f'DROP DATABASE IF EXISTS "{self._scratch}" WITH (FORCE)'],
                       capture_output=True)


def parse_pgbench(stdout: str, party: PartyCpu) -> PgBenchRun:
    tps = re.search(r"tps = ([0-9.]+)", stdout)
    done = re.search(r"number of transactions actually processed: ([0-9]+)", stdout)
    return PgBenchRun(float(tps.group(1)) if tps else float("nan"), int(done.group(1)) if done else 0, party)


def _start_host(database_url: str | None, tmp: Path,
                iso_processes: int = 1) -> tuple[subprocess.Popen[bytes], int, dict[str, str]]:
    env = {**os.environ, "PAYPOS_DATA_DIR": str(tmp / "data")}
    if database_url:
        env["PAYPOS_DATABASE_URL"] = database_url
    _paypos("init", "--sandbox", env=env)
    iso_port, http_port = _free_port(), _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "paypos.entrypoints.cli", "serve", "--iso-port", str(iso_port),
         "--http-port", str(http_port), "--iso-processes", str(iso_processes)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", iso_port), timeout=0.2).close()
            return server, iso_port, env
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("paypos serve did not open its ISO port")


@dataclass
class Probe:
    """One load at one terminal count (a plain run is a sweep of one)."""

    terminals: int
    stats: Stats
    wall_s: float
    cpu: PartyCpu

    @property
    def approved_s(self) -> float:
        return self.stats.codes["00"] / self.wall_s

    @property
    def p99_ms(self) -> float:
        return _percentile([s * 1000 for s in self.stats.latencies_s], 99)


def run(terminals: int, duration_s: int, database_url: str | None, host: str | None, port: int | None,
        seed: int = 1, requests_per_terminal: int | None = None, cards_per_terminal: int = 32,
        iso_processes: int = 1, sweep: list[int] | None = None, p99_max_ms: float = 50.0) -> None:
    """One load of ``terminals`` terminals, or with ``sweep`` one load per terminal count in
    it (each with terminals and cards of its own, against the same host and database), and
    the best throughput whose p99 stays within ``p99_max_ms`` (the issue's latency bound)."""
    counts = sweep or [terminals]
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        server_started = host is None
        if host is None:
            server, port, env = _start_host(database_url, Path(tmp), iso_processes)
            host = "127.0.0.1"
        else:
            env = {**os.environ}
        on_postgresql = bool(database_url and database_url.startswith("postgres"))
        pgbench_runs: list[PgBenchRun] = []
        probes: list[Probe] = []
        with contextlib.ExitStack() as stack:
            try:
                pgbench = None
                for index, n in enumerate(counts):
                    # Enough for ~3000 requests/s; a terminal that runs out stops and says so.
                    count = requests_per_terminal or max(100, duration_s * 3000 // n)
                    softs, cards = _provision(n, cards_per_terminal, env)
                    scripts = _build_scripts(softs, cards, count, seed + 1000 * index)
                    if index == 0 and on_postgresql:  # the reference brackets the loads: this machine's speed drifts
                        pgbench = stack.enter_context(PgBench(str(database_url)))
                        pgbench_runs.append(pgbench.run(duration_s))
                    before = cpu.snapshot()
                    stats, wall_s = asyncio.run(_run_load(host, int(port or 0), scripts, duration_s))
                    probes.append(Probe(n, stats, wall_s, _party_cpu(
                        before, cpu.snapshot(), local_postgresql=_is_local(database_url),
                        server_pid=server.pid if server else None)))
            finally:
                if server is not None:
                    server.terminate()
                    server.wait(timeout=30)
            if pgbench is not None:
                pgbench_runs.append(pgbench.run(duration_s))
    mean_tps = statistics.fmean(r.tps for r in pgbench_runs) if pgbench_runs else None
    for probe in probes:
        _report(probe.stats, probe.wall_s, probe.terminals, database_url, iso_processes if server_started else None)
        console.print(_cpu_line(probe.cpu, len(probe.stats.latencies_s)))
    if mean_tps is not None:
        tps = [r.tps for r in pgbench_runs]
        ratio = "" if sweep else f"; paypos approved/s ÷ pgbench tps = {probes[0].approved_s / mean_tps:.2f}×"
        console.print(f"pgbench TPC-B (scale 10, 8 clients, {duration_s} s, run before and after): "
                      f"{tps[0]:.1f} and {tps[1]:.1f} tps, mean {mean_tps:.1f}{ratio}")
        console.print(_pgbench_cpu_line(pgbench_runs))
    if sweep:
        for line in sweep_summary(probes, p99_max_ms, mean_tps):
            console.print(line)


def sweep_summary(probes: list[Probe], p99_max_ms: float, pgbench_tps: float | None) -> list[str]:
    """A row per terminal count, then the best approved/s whose p99 is within the bound."""
    def ratio(probe: Probe) -> str:
        return f"{probe.approved_s / pgbench_tps:.2f}×" if pgbench_tps else "-"

    lines = [f"sweep (p99 bound {p99_max_ms:g} ms):",
             "  terminals  approved/s    p99 ms  ratio"]
    lines += [f"  {p.terminals:9d}  {p.approved_s:10.1f}  {p.p99_ms:8.1f}  {ratio(p)}" for p in probes]
    within = [p for p in probes if p.p99_ms <= p99_max_ms and not p.stats.errors]
    if not within:
        lines.append(f"  best within p99 ≤ {p99_max_ms:g} ms: none")
    else:
        best = max(within, key=lambda p: p.approved_s)
        lines.append(f"  best within p99 ≤ {p99_max_ms:g} ms: {best.terminals} terminals, "
                     f"{best.approved_s:.1f} approved/s" + (f", {ratio(best)} pgbench" if pgbench_tps else ""))
    return lines


def _ms(seconds: float | None, units: int) -> str:
    return "n/a" if seconds is None else f"{cpu.per_unit_ms(seconds, units):.3f}"


def _cpu_line(load: PartyCpu, answered: int) -> str:
    """CPU per answered request by party: on a CPU-bound machine throughput is bought only
    with less of it (docs/performance.md). n/a: a host not started by the bench, or a
    PostgreSQL on another machine."""
    if load.use is None:
        return "  cpu ms/req  : not measured (no /proc on this system)"
    return (f"  cpu ms/req  : host {_ms(load.host_s, answered)}  postgresql {_ms(load.postgresql_s, answered)}  "
            f"load generator {_ms(load.client_s, answered)}  machine {_ms(load.use.busy_s, answered)} "
            f"({100 * load.use.busy_fraction:.0f} % busy, steal {100 * load.use.steal_fraction:.1f} %)")


def _pgbench_cpu_line(runs: list[PgBenchRun]) -> str:
    """The same for each pgbench run, per TPC-B transaction: the comparison the ratio rests on."""
    if any(r.cpu.use is None for r in runs):
        return "pgbench cpu ms/transaction: not measured (no /proc on this system)"
    shown = " | ".join(
        f"postgresql {_ms(r.cpu.postgresql_s, r.transactions)}  pgbench {_ms(r.cpu.client_s, r.transactions)}  "
        f"machine {_ms(r.cpu.use.busy_s, r.transactions)} ({100 * r.cpu.use.busy_fraction:.0f} % busy)"
        for r in runs if r.cpu.use is not None)
    return f"pgbench cpu ms/transaction, before | after: {shown}"


def _report(stats: Stats, wall_s: float, terminals: int, database_url: str | None,
            iso_processes: int | None = None) -> None:
    backend = "postgresql" if database_url and database_url.startswith("postgres") else "sqlite"
    lat_ms = [s * 1000 for s in stats.latencies_s]
    processes = f" ({iso_processes} host process{'es' if iso_processes != 1 else ''})" if iso_processes else ""
    console.print(f"paypos ISO 8583 host on {backend}{processes}: {terminals} terminals, {wall_s:.1f} s")
    console.print(f"  answered/s  : {len(lat_ms) / wall_s:10.1f}")
    console.print(f"  approved/s  : {stats.codes['00'] / wall_s:10.1f}")
    console.print(f"  latency ms  : p50 {_percentile(lat_ms, 50):.1f}  p95 {_percentile(lat_ms, 95):.1f}  "
                  f"p99 {_percentile(lat_ms, 99):.1f}")
    console.print(f"  mix         : {dict(stats.kinds)}")
    console.print(f"  codes       : {dict(stats.codes)}")
    console.print(f"  errors      : {dict(stats.errors) or 'none'}")
