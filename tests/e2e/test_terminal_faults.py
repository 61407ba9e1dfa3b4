"""The terminal against the real host process when the network misbehaves:
nothing lost, nothing doubled. After each scenario `paypos ledger check` passes
and the cardholder's and merchant's balances are exactly right."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from paypos.domain.pricing import fee_minor
from paypos.terminal.session import open_session
from tests.e2e.faulty_proxy import FaultyProxy
from tests.e2e.hostproc import free_port, running_host, wait_until_serving

CARD = "visa-cvn18-approve"


def _paypos(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "paypos.entrypoints.cli", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    work = tmp_path_factory.mktemp("faults")
    data_dir = work / "data"
    assert _paypos("init", "--sandbox", data_dir=data_dir).returncode == 0
    with running_host([sys.executable, "-m", "paypos.entrypoints.cli"], data_dir, work / "serve.log") as (iso_port, _):
        yield data_dir, iso_port


def available(data_dir: Path, card_id: str = CARD) -> int:
    cards = json.loads(_paypos("sandbox", "cards", "--json", data_dir=data_dir).stdout)
    return next(c["available_minor"] for c in cards if c["id"] == card_id)


def merchant_pending(data_dir: Path) -> int:
    rows = json.loads(_paypos("ledger", "balances", "--json", data_dir=data_dir).stdout)
    return next(r["net_minor"] for r in rows if r["owner"] == "merchant:PPCAFE000000001" and r["code"] == "merchant_pending")


def ledger_ok(data_dir: Path) -> None:
    check = _paypos("ledger", "check", data_dir=data_dir)
    assert check.returncode == 0, check.stdout + check.stderr


def test_an_answer_lost_mid_sale_is_reversed_and_the_cardholder_is_not_charged(host) -> None:
    data_dir, iso_port = host
    before, pending_before = available(data_dir), merchant_pending(data_dir)
    proxy = FaultyProxy(iso_port, mode="drop_answers")
    try:
        with open_session(data_dir, None, "CAFE0001", "127.0.0.1", proxy.port, timeout_s=2) as session:
            outcome = session.pay("42.50", CARD, "chip", "1234")
            assert outcome["approved"] is False and "NOT COMPLETED" in outcome["message"]
            assert session.engine.store.reversals(), "the reversal stays queued while answers are lost"
    finally:
        proxy.close()
    with open_session(data_dir, None, "CAFE0001", "127.0.0.1", iso_port) as session:  # the host is back
        assert session.engine.store.reversals() == []
        entry = session.engine.store.entry(outcome["journal_id"])
        assert entry is not None and entry.status == "reversed"
    assert available(data_dir) == before
    assert merchant_pending(data_dir) == pending_before
    ledger_ok(data_dir)


def test_offline_sales_under_the_floor_limit_are_forwarded_exactly_once(host) -> None:
    data_dir, iso_port = host
    before, pending_before = available(data_dir), merchant_pending(data_dir)
    closed = free_port()  # nothing listens here: the host is unreachable
    with open_session(data_dir, None, "CAFE0001", "127.0.0.1", closed, timeout_s=2) as session:
        first = session.pay("50.00", CARD, "chip", "1234")
        second = session.pay("30.00", CARD, "chip", "1234")
        above = session.pay("150.00", CARD, "chip", "1234")  # over the 100.00 floor limit
        assert first["offline"] and second["offline"] and first["approved"] and second["approved"]
        assert above["approved"] is False and above["response_code"] == "91"
        assert len(session.engine.store.advices()) == 2
    with open_session(data_dir, None, "CAFE0001", "127.0.0.1", iso_port) as session:
        assert session.engine.store.advices() == []
        assert session.engine.drain() == {"reversals": 0, "advices": 0}
    with open_session(data_dir, None, "CAFE0001", "127.0.0.1", iso_port) as session:
        assert session.engine.store.advices() == []  # forwarded once, never again
    assert available(data_dir) == before - 8_000
    assert merchant_pending(data_dir) == pending_before + 8_000 - fee_minor(5_000) - fee_minor(3_000)
    ledger_ok(data_dir)


def test_a_terminal_killed_between_request_and_answer_reverses_on_restart(host) -> None:
    data_dir, iso_port = host
    before, pending_before = available(data_dir), merchant_pending(data_dir)
    proxy = FaultyProxy(iso_port, mode="drop_answers")
    env = {**os.environ, "PAYPOS_TERMINAL_TIMEOUT_S": "60"}
    terminal = subprocess.Popen(
        [sys.executable, "-m", "paypos.entrypoints.cli", "terminal", "pay", "--amount", "61.00", "--card", CARD,
         "--entry", "chip", "--pin", "1234", "--terminal", "CAFE0001", "--port", str(proxy.port),
         "--data-dir", str(data_dir), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while proxy.requests == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the host has processed the sale; its answer is being withheld
        terminal.send_signal(signal.SIGKILL)
        terminal.wait(timeout=10)
    finally:
        proxy.close()
    assert proxy.requests >= 1
    assert available(data_dir) == before - 6_100  # the host did charge the card
    restart = _paypos("terminal", "saf", "--drain", "--terminal", "CAFE0001", "--port", str(iso_port), "--json",
                      data_dir=data_dir)
    assert restart.returncode == 0, restart.stderr
    assert available(data_dir) == before
    assert merchant_pending(data_dir) == pending_before
    journal = json.loads(_paypos("terminal", "journal", "--terminal", "CAFE0001", "--port", str(iso_port),
                                 "--json", data_dir=data_dir).stdout)
    assert journal[-1]["status"] == "reversed" and journal[-1]["amount_minor"] == 6_100
    ledger_ok(data_dir)


def _start_serve(data_dir: Path, iso_port: int, http_port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "paypos.entrypoints.cli", "serve", "--iso-port", str(iso_port),
         "--http-port", str(http_port), "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_until_serving(process, http_port, iso_port)
    return process


def test_a_host_killed_mid_sale_keeps_what_it_committed_and_the_terminal_reverses_it(tmp_path: Path) -> None:
    """kill -9 of the host after it committed a sale but before the terminal heard back."""
    data_dir = tmp_path / "data"
    assert _paypos("init", "--sandbox", data_dir=data_dir).returncode == 0
    iso_port, http_port = free_port(), free_port()
    server = _start_serve(data_dir, iso_port, http_port)
    before, pending_before = available(data_dir), merchant_pending(data_dir)
    proxy = FaultyProxy(iso_port, mode="drop_answers")
    try:
        with open_session(data_dir, None, "CAFE0001", "127.0.0.1", proxy.port, timeout_s=3) as session:
            def kill_host_when_the_request_has_arrived() -> None:
                deadline = time.monotonic() + 10
                while proxy.requests == 0 and time.monotonic() < deadline:
                    time.sleep(0.02)
                time.sleep(0.5)
                server.send_signal(signal.SIGKILL)

            import threading

            killer = threading.Thread(target=kill_host_when_the_request_has_arrived)
            killer.start()
            outcome = session.pay("33.00", CARD, "chip", "1234")
            killer.join()
            assert outcome["approved"] is False and "NOT COMPLETED" in outcome["message"]
    finally:
        proxy.close()
        server.wait(timeout=10)
    ledger_ok(data_dir)  # what the killed host committed is intact and balanced
    assert available(data_dir) == before - 3_300
    server = _start_serve(data_dir, iso_port, http_port)  # the host comes back
    try:
        with open_session(data_dir, None, "CAFE0001", "127.0.0.1", iso_port) as session:
            assert session.engine.store.reversals() == []
            assert session.engine.store.entry(outcome["journal_id"]).status == "reversed"
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert available(data_dir) == before
    assert merchant_pending(data_dir) == pending_before
    ledger_ok(data_dir)
