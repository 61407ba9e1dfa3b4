"""`paypos serve` and `paypos demo` as real processes, over real HTTP."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from paypos.networks.sandbox import catalog
from tests.conftest import TEST_DATA_KEY

if TYPE_CHECKING:
    from conftest import PayposCli

STARTUP_TIMEOUT_S = 20
SHUTDOWN_TIMEOUT_S = 15
CAFE = catalog.CAFE.merchant_id
CAFE_KEY = catalog.merchant_api_key(CAFE)[1]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port that another socket is listening on for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def wait_healthy(base_url: str, process: subprocess.Popen[str]) -> httpx.Response:
    """Poll /healthz until it answers 200, the process dies, or STARTUP_TIMEOUT_S passes."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"paypos serve exited with {process.returncode} during start-up")
        try:
            response = httpx.get(f"{base_url}/healthz", timeout=1.0)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{base_url}/healthz did not answer within {STARTUP_TIMEOUT_S} s")


def test_serve_answers_healthz_and_the_cafe_accounts_over_http_then_stops_cleanly(
    cli: PayposCli, sandbox_dir: Path, free_port: int, tmp_path: Path
) -> None:
    base_url = f"http://127.0.0.1:{free_port}"
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen(
        [*cli.command, "serve", "--http-port", str(free_port), "--iso-port", str(_another_free_port()),
         "--data-dir", str(sandbox_dir)],
        stdout=log, stderr=subprocess.STDOUT, text=True, env=cli.env(),
    )
    try:
        health = wait_healthy(base_url, process)
        accounts = httpx.get(f"{base_url}/v1/accounts", headers={"Authorization": f"Bearer {CAFE_KEY}"}, timeout=5)
        anonymous = httpx.get(f"{base_url}/v1/accounts", timeout=5)
    finally:
        process.terminate()  # SIGTERM, as a process manager stops it
        code = process.wait(timeout=SHUTDOWN_TIMEOUT_S)
        log.seek(0)
        output = log.read()
        log.close()

    assert health.json() == {"status": "ok", "database": "sqlite", "version": health.json()["version"]}
    assert accounts.status_code == 200
    rows = accounts.json()["data"]
    assert rows and {row["owner"] for row in rows} == {f"merchant:{CAFE}"}
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    # A graceful stop: uvicorn finishes the lifespan, then re-raises the SIGTERM it caught so
    # that a supervisor sees how the process ended (uvicorn >= 0.29); 0 is as clean.
    assert code in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output and "Finished server process" in output
    assert f"paypos HTTP API on {base_url}" in output
    assert "Traceback" not in output


def test_serve_on_a_port_already_in_use_fails_to_start_without_a_traceback(
    cli: PayposCli, sandbox_dir: Path, taken_port: int
) -> None:
    result = cli.run("serve", "--http-port", str(taken_port), "--iso-port", str(_another_free_port()),
                     "--data-dir", str(sandbox_dir))

    assert result.returncode != 0, result.stderr
    assert "address already in use" in result.stderr.lower()
    assert "Traceback" not in result.stderr


def test_serve_without_its_data_key_exits_2_before_opening_a_port(
    cli: PayposCli, sandbox_copy: Path, taken_port: int
) -> None:
    (sandbox_copy / "keys" / "data.key").unlink()
    free = _another_free_port()

    result = cli.run("serve", "--http-port", str(free), "--iso-port", str(taken_port),
                     "--data-dir", str(sandbox_copy))

    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no data key"), result.stderr
    assert "run `paypos init`" in lines[0]
    # Checked before listening: the taken ISO port was never tried, the HTTP one never opened.
    assert "address already in use" not in result.stderr


def test_serve_under_another_data_key_exits_2_before_opening_a_port(
    cli: PayposCli, sandbox_dir: Path, taken_port: int
) -> None:
    # Another well-formed key would open no sealed PAN and match no PAN's lookup hash: every
    # card request would be answered 14.
    result = cli.run("serve", "--http-port", str(_another_free_port()), "--iso-port", str(taken_port),
                     "--data-dir", str(sandbox_dir), env=cli.env(PAYPOS_DATA_KEY=TEST_DATA_KEY))

    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: pan: cannot be opened with this data key"], result.stderr


def test_demo_once_initialises_the_sandbox_prints_its_tables_and_healthz_then_exits_0(
    cli: PayposCli, free_port: int, tmp_path: Path
) -> None:
    result = cli.run(
        "demo", "--once", "--http-port", str(free_port), "--iso-port", str(_another_free_port()),
        "--data-dir", str(tmp_path / "data"),
        env=cli.env(COLUMNS="240"),  # wide enough that no table cell is folded
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"http://127.0.0.1:{free_port}" in result.stdout
    assert "(/healthz → ok)" in result.stdout
    for title in ("Sandbox merchants", "Sandbox terminals", "Sandbox cards (TEST)", "Ledger balances"):
        assert title in result.stdout
    for value in (CAFE, catalog.SHOP.merchant_id, "CAFE0002", "visa-cvn18-approve", "card:476173******0010"):
        assert value in result.stdout
    assert "Payments through the host (ISO 8583 over TCP)" in result.stdout
    payments = result.stdout.split("Payments through the host")[1].split("Collection QR")[0]
    codes = [line.split("│")[5].strip() for line in payments.splitlines() if line.startswith("│")]
    assert codes == ["00", "00", "00", "00", "00", "00", "51", "55", "00", "00"], payments
    wallet = result.stdout.split("Wallet payments")[1].split("Buyer's credit pay")[0]
    statuses = [line.split("│")[5].strip() for line in wallet.splitlines() if line.startswith("│")]
    assert statuses == ["TRADE_SUCCESS", "TRADE_SUCCESS"], wallet  # a QR from balance, one by credit pay
    assert "Buyer's credit pay" in result.stdout
    assert f"Web console http://127.0.0.1:{free_port}/console/" in result.stdout  # and its TEST logins
    for value in ("owner@cafe.example", "sandbox-cafe-owner", "admin@ops.example", "sandbox-admin"):
        assert value in result.stdout
    assert "Traceback" not in result.stderr


def test_demo_on_a_port_already_in_use_exits_1_naming_the_port(cli: PayposCli, taken_port: int, tmp_path: Path) -> None:
    result = cli.run("demo", "--once", "--http-port", str(taken_port), "--iso-port", str(_another_free_port()),
                     "--data-dir", str(tmp_path / "data"))

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"is the port of http://127.0.0.1:{taken_port}/healthz free?" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Sandbox cards" not in result.stdout


def _another_free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_several_iso_processes_share_the_port_post_every_sale_once_and_end_with_their_parent(
    cli: PayposCli, postgres_url: str, tmp_path: Path,
) -> None:
    """`paypos serve --iso-processes 3` on PostgreSQL: connections spread over the processes
    (SO_REUSEPORT), every sale is answered and posted once, the books balance; a kill -9 of the
    parent takes the worker processes down with it (they must not keep the port)."""
    import json

    from tests.conftest import truncate_all
    from tests.e2e.hostproc import free_port, wait_until_serving

    from paypos.adapters.db.engine import make_engine
    from paypos.protocol import emv
    from paypos.terminal.simulator import IsoClient, SoftTerminal

    data_dir = tmp_path / "data"
    db = ["--data-dir", str(data_dir), "--database-url", postgres_url]
    engine = make_engine(postgres_url)  # a clean scratch database
    truncate_all(engine)
    engine.dispose()
    assert cli.run("init", "--sandbox", *db).returncode == 0
    terminals = json.loads(cli.run("sandbox", "add-terminals", "6", "--no-mac", "--json", *db).stdout)
    cards = json.loads(cli.run("sandbox", "add-cards", "6", "--available-minor", "100000", "--json", *db).stdout)
    http_port, iso_port = free_port(), free_port()
    process = subprocess.Popen([*cli.command, "serve", "--http-port", str(http_port), "--iso-port", str(iso_port),
                                "--iso-processes", "3", *db], env=cli.env(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(process, http_port, iso_port)
        workers = subprocess.run(["pgrep", "-f", "-P", str(process.pid), "spawn_main"],
                                 capture_output=True, text=True).stdout.split()
        assert len(workers) >= 2, workers
        approved = 0
        for row, card in zip(terminals, cards, strict=True):
            t = SoftTerminal(row["terminal_id"], row["merchant_id"], row["currency"], row["bdk"],
                             row["initial_ksn"], row["mac_required"])
            client = IsoClient("127.0.0.1", iso_port)  # one connection per terminal, spread by the kernel
            for amount in (1_000, 2_000):
                raw = t.message("0200", {"3": "000000", "4": f"{amount:012d}", "22": "072",
                                         "23": card["psn"].zfill(3), "35": card["track2"],
                                         "55": emv.encode_field_55(t.icc(card, amount))})
                answer = client.exchange(raw)
                assert answer["39"] == "00", answer
                assert client.exchange(raw) == answer  # a retransmission: the first answer, posted once
                approved += 1
            client.close()
        check = cli.run("ledger", "check", *db)
        assert check.returncode == 0, check.stdout + check.stderr
        added = cli.run("sandbox", "cards", "--json", *db)
        left = {c["id"]: c["available_minor"] for c in json.loads(added.stdout)}
        assert all(left[card["id"]] == 100_000 - 3_000 for card in cards)
        assert approved == 12
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=SHUTDOWN_TIMEOUT_S)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", iso_port), timeout=0.5).close()
        except OSError:
            break  # nobody listens any more
        time.sleep(0.2)
    else:
        pytest.fail("ISO worker processes outlived their killed parent")
