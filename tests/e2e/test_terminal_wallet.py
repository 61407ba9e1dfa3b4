"""The terminal reaches the sandbox wallet through the real host process (`paypos serve`):
`paypos terminal pay --qr-code` with the buyer's payment code, and `paypos terminal qr` with
the merchant's collection code, each in its own process over TCP. The buyer acts through
the wallet's own use cases (`paypos.services.wallet`) on the same database, as the wallet
app would. After each scenario `paypos ledger check` passes and the buyer's balance moved
exactly as the terminal says."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from paypos.bootstrap import App, bootstrap
from paypos.config import load_settings
from paypos.domain.wallet import WalletError
from paypos.protocol import paycode, qr
from paypos.services import ledger as ledger_service
from paypos.services import wallet
from tests.e2e.hostproc import running_host

LIN = "2088100000000001"  # CNY 5000.00, confirms above CNY 200.00
ZHANG = "2088100000000002"  # CNY 10.00
STEP_S = 60  # limits.paycode_step_s
CLI = [sys.executable, "-m", "paypos.entrypoints.cli"]


def _paypos(*args: str, data_dir: Path, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args, "--data-dir", str(data_dir)], capture_output=True, text=True,
                          timeout=timeout_s)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, App]]:
    work = tmp_path_factory.mktemp("wallet")
    data_dir = work / "data"
    assert _paypos("init", "--sandbox", data_dir=data_dir).returncode == 0
    app = bootstrap(load_settings(data_dir, None), initialising=False)  # the buyer's side, same database
    try:
        with running_host(CLI, data_dir, work / "serve.log") as (iso_port, _http_port):
            yield data_dir, iso_port, app
    finally:
        app.close()


def terminal(data_dir: Path, iso_port: int, *args: str, terminal_id: str = "CAFE0001") -> dict[str, Any]:
    result = _paypos("terminal", *args, "--json", "--terminal", terminal_id, "--port", str(iso_port),
                     data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[0] if args[0] == "qr" else result.stdout)


def start_terminal(data_dir: Path, iso_port: int, *args: str, terminal_id: str = "CAFE0001") -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "terminal", *args, "--json", "--terminal", terminal_id, "--port", str(iso_port),
                             "--data-dir", str(data_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# --- the buyer -------------------------------------------------------------------------------


def as_buyer(app: App, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with app.uow() as uow:
        result = fn(uow, app.vault, datetime.now(UTC), *args, **kwargs)
        uow.commit()
        return result


def fresh_code(app: App, user_id: str) -> str:
    """The buyer's next usable code: one per time step, a step after the last one used and
    within the host's window (this step or the next); waits for the next step when both are used."""
    while True:
        with app.uow(write=False) as uow:
            last = uow.wallet.get_user(user_id).paycode_last_step
        current = paycode.time_step(datetime.now(UTC), STEP_S)
        step = current if last is None else max(current, last + 1)
        if step <= current + 1:
            return str(as_buyer_at(app, step, user_id))
        time.sleep(STEP_S - datetime.now(UTC).timestamp() % STEP_S + 0.1)


def as_buyer_at(app: App, step: int, user_id: str) -> str:
    moment = datetime.fromtimestamp(step * STEP_S + 1, UTC)
    with app.uow() as uow:
        return str(wallet.payment_code(uow, app.vault, moment, user_id)["code"])


def balance(app: App, user_id: str = LIN) -> int:
    with app.uow(write=False) as uow:
        return int(wallet.buyer_summary(uow, user_id)["balance_minor"])


def awaiting_confirmation(app: App, user_id: str) -> bool:
    with app.uow(write=False) as uow:  # a new transaction each time: a fresh snapshot
        return bool(wallet.buyer_summary(uow, user_id)["awaiting_confirmation"])


def ledger_ok(app: App) -> None:
    assert ledger_service.check(app.engine, lambda: datetime.now(UTC)) == []


def wait_for(condition: Any, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("the condition did not come true in time")
        time.sleep(0.2)


# --- payment code (customer-presented) -------------------------------------------------------


def test_a_payment_code_is_paid_and_expired_reused_and_unknown_codes_are_told_apart(host) -> None:
    data_dir, iso_port, app = host
    before = balance(app, ZHANG)
    code = fresh_code(app, ZHANG)
    paid = terminal(data_dir, iso_port, "pay", "--amount", "1.50", "--qr-code", code)
    assert paid["approved"] is True and paid["response_code"] == "00" and len(paid["approval_code"]) == 6
    assert paid["account"] == code[:6] + "********" + code[-4:] and code not in json.dumps(paid)
    assert "PAYMENT CODE" in paid["receipt_text"]
    assert balance(app, ZHANG) == before - 150

    reused = terminal(data_dir, iso_port, "pay", "--amount", "1.50", "--qr-code", code)
    stale = as_buyer_at(app, paycode.time_step(datetime.now(UTC) - timedelta(minutes=5), STEP_S), LIN)
    expired = terminal(data_dir, iso_port, "pay", "--amount", "1.50", "--qr-code", stale)
    step = paycode.time_step(datetime.now(UTC), STEP_S)
    unknown = terminal(data_dir, iso_port, "pay", "--amount", "1.50", "--qr-code",
                       paycode.code_for_step(bytes(32), 1_000_001, step))
    assert (reused["response_code"], reused["wallet_detail"]) == ("62", "PAYCODEREUSED")
    assert (expired["response_code"], expired["wallet_detail"]) == ("54", "PAYCODEEXPIRED")
    assert (unknown["response_code"], unknown["wallet_detail"]) == ("14", "PAYCODEUNKNOWN")
    assert "ALREADY USED" in reused["message"] and "EXPIRED" in expired["message"] and "UNKNOWN" in unknown["message"]
    assert not any(o["approved"] for o in (reused, expired, unknown))
    assert balance(app, ZHANG) == before - 150
    mistyped = _paypos("terminal", "pay", "--amount", "1.50", "--qr-code", code[:-1] + str((int(code[-1]) + 1) % 10),
                       "--port", str(iso_port), data_dir=data_dir)
    assert mistyped.returncode == 2 and "check digit" in mistyped.stderr  # refused before sending
    ledger_ok(app)


def test_above_the_limit_the_terminal_waits_until_the_buyer_confirms(host) -> None:
    data_dir, iso_port, app = host
    before = balance(app)
    waiting = start_terminal(data_dir, iso_port, "pay", "--amount", "250.00", "--qr-code", fresh_code(app, LIN),
                             "--timeout", "40", terminal_id="CAFE0002")  # a MAC terminal
    try:
        wait_for(lambda: awaiting_confirmation(app, LIN))
        as_buyer(app, wallet.confirm, LIN)
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
    outcome = json.loads(out)
    assert outcome["approved"] is True and outcome["status"] == "approved" and len(outcome["approval_code"]) == 6, err
    assert balance(app) == before - 25_000
    ledger_ok(app)


def test_a_buyer_who_does_not_confirm_in_time_is_not_charged(host) -> None:
    data_dir, iso_port, app = host
    before = balance(app)
    outcome = terminal(data_dir, iso_port, "pay", "--amount", "300.00", "--qr-code", fresh_code(app, LIN),
                       "--timeout", "3")
    assert outcome["approved"] is False and outcome["status"] == "reversed"
    assert outcome["message"] == "CANCELLED — buyer did not confirm"
    with pytest.raises(WalletError):
        as_buyer(app, wallet.confirm, LIN)  # too late: the payment is closed
    assert balance(app) == before
    ledger_ok(app)


# --- collection code (merchant-presented) ----------------------------------------------------


def test_the_terminal_shows_a_collection_code_and_waits_until_the_buyer_pays(host) -> None:
    data_dir, iso_port, app = host
    before = balance(app)
    shown = start_terminal(data_dir, iso_port, "qr", "--amount", "18.80", "--timeout", "40", terminal_id="CAFE0002")
    try:
        first = json.loads(shown.stdout.readline())  # type: ignore[union-attr]
        assert first["status"] == "pending" and first["response_code"] == "09"
        assert qr.decode_mpm(first["qr_payload"])["54"] == "18.80"
        as_buyer(app, wallet.scan, first["qr_payload"], LIN)
        out, err = shown.communicate(timeout=60)
    finally:
        shown.kill()
    final = json.loads(out)
    assert final["approved"] is True and final["journal_id"] == first["journal_id"] and final["rrn"] == first["rrn"], err
    assert balance(app) == before - 1_880
    ledger_ok(app)


def test_a_collection_code_left_open_is_followed_by_qr_status_and_counted_at_end_of_day(host) -> None:
    data_dir, iso_port, app = host
    before = balance(app)
    shown = terminal(data_dir, iso_port, "qr", "--amount", "6.60", "--no-wait")
    assert shown["status"] == "pending" and shown["qr_payload"]
    assert terminal(data_dir, iso_port, "qr-status", str(shown["journal_id"]))["status"] == "pending"
    as_buyer(app, wallet.scan, shown["qr_payload"], LIN)
    paid = terminal(data_dir, iso_port, "qr-status", str(shown["journal_id"]))
    assert paid["approved"] is True and paid["status"] == "approved"
    assert balance(app) == before - 660

    cancelled = terminal(data_dir, iso_port, "qr", "--amount", "7.70", "--no-wait")
    assert terminal(data_dir, iso_port, "void", str(cancelled["journal_id"]))["approved"] is True
    with pytest.raises(WalletError):
        as_buyer(app, wallet.scan, cancelled["qr_payload"], LIN)

    settled = _paypos("terminal", "settle", "--json", "--terminal", "CAFE0001", "--port", str(iso_port),
                      data_dir=data_dir)
    assert settled.returncode == 0, settled.stdout + settled.stderr
    totals = json.loads(settled.stdout)["host_totals"]
    assert totals["debits_count"] >= 2 and totals == json.loads(settled.stdout)["terminal_totals"]
    assert balance(app) == before - 660
    ledger_ok(app)


# --- the cashier's screen --------------------------------------------------------------------


def at_the_tui(data_dir: Path, iso_port: int, script: Any) -> Any:
    """The cashier's app (Textual pilot) on CAFE0001 against the host; ``script(app, pilot)``."""
    import asyncio

    from paypos.terminal.session import open_session
    from paypos.terminal.tui import CashierApp, HomeScreen

    async def run() -> Any:
        app = CashierApp(lambda: open_session(data_dir, None, "CAFE0001", "127.0.0.1", iso_port))
        async with app.run_test(size=(100, 60)) as pilot:
            await until(pilot, lambda: app.session is not None and isinstance(app.screen, HomeScreen))
            return await script(app, pilot)

    return asyncio.run(run())


async def until(pilot: Any, condition: Any, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still on {pilot.app.screen!r}")
        await pilot.pause(0.05)


def test_the_cashier_shows_a_collection_qr_on_screen_and_the_buyer_pays_it(host) -> None:
    from paypos.terminal.tui import MethodScreen, QrScreen, ResultScreen

    data_dir, iso_port, app = host
    before = balance(app)

    async def script(tui: Any, pilot: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        results = []
        for pays in (True, False):
            await pilot.press("s", "1", "2", "3", "4", "enter")
            await until(pilot, lambda: isinstance(tui.screen, MethodScreen))
            await pilot.press("r")
            await until(pilot, lambda: isinstance(tui.screen, QrScreen))
            screen = tui.screen
            assert "█" in str(screen.query_one("#qr-code").render())
            if pays:
                as_buyer(app, wallet.scan, screen.payload, LIN)
            else:
                await pilot.press("escape")
            await until(pilot, lambda: isinstance(tui.screen, ResultScreen))
            results.append({**tui.screen.result, "headline": str(tui.screen.query_one("#result-status").render())})
            await pilot.press("enter")
        return results[0], results[1]

    paid, cancelled = at_the_tui(data_dir, iso_port, script)
    assert paid["headline"] == "APPROVED" and paid["approved"] is True and paid["amount_minor"] == 1_234
    assert cancelled["headline"] == "NOT COMPLETED" and cancelled["message"] == "CANCELLED — by the cashier"
    assert cancelled["status"] == "reversed"
    assert balance(app) == before - 1_234
    ledger_ok(app)
