"""Acceptance (issue 4): a cashier at the Textual terminal, driven by Textual's pilot,
against a real `paypos serve` on a fresh SQLite sandbox.

The cashier's day on CAFE0001 (CNY, contactless CVM limit CNY 1,000.00) with the card
visa-cvn18-approve: a chip + PIN sale, a tap under the CVM limit (no PIN asked), a tap over
it (the PIN pad appears), a refund of the chip sale picked from the journal, end of day.
Then `paypos ledger check` passes and the card's available balance moved by exactly the
sales minus the refund. The tests run in file order and share the day's record (`Day`).

Each test is a plain function that runs the app with ``asyncio.run``: no async plugin.
"""

from __future__ import annotations
from tests.e2e.hostproc import free_port, running_host

import asyncio
import json
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Button, DataTable

from paypos.domain.money import money
from paypos.terminal.session import open_session
from paypos.terminal.tui import (
    AmountScreen,
    CashierApp,
    HomeScreen,
    JournalScreen,
    MethodScreen,
    PinScreen,
    ReaderScreen,
    ResultScreen,
    SettleScreen,
)

if TYPE_CHECKING:
    from conftest import PayposCli

TERMINAL = "CAFE0001"
CARD = "visa-cvn18-approve"
PIN = "1234"
STEP_TIMEOUT_S = 20  # one screen change, including a round trip to the host
SCREEN_SIZE = (100, 40)
T = TypeVar("T")


# --- the host process ---------------------------------------------------------------------------


@dataclass
class Host:
    cli: PayposCli
    data_dir: Path
    iso_port: int

    def paypos(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.cli.run(*args, "--data-dir", str(self.data_dir))

    def available_minor(self, card_id: str) -> int:
        cards = self.paypos("sandbox", "cards", "--json")
        assert cards.returncode == 0, cards.stderr
        return int(next(c for c in json.loads(cards.stdout) if c["id"] == card_id)["available_minor"])


@dataclass
class Day:
    """What the cashier did, for the tests that come later in the day."""

    card_available_before_minor: int
    sales_minor: list[int] = field(default_factory=list)
    refunds_minor: list[int] = field(default_factory=list)
    chip_sale: dict[str, Any] | None = None


@pytest.fixture(scope="module")
def host(cli: PayposCli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    work = tmp_path_factory.mktemp("terminal-tui")
    data_dir = work / "data"
    init = cli.run("init", "--sandbox", "--data-dir", str(data_dir))
    assert init.returncode == 0, init.stderr
    with running_host(cli.command, data_dir, work / "serve.log", env=cli.env()) as (iso_port, _http_port):
        yield Host(cli, data_dir, iso_port)


@pytest.fixture(scope="module")
def day(host: Host) -> Day:
    return Day(card_available_before_minor=host.available_minor(CARD))


# --- the cashier --------------------------------------------------------------------------------


class Cashier:
    """A cashier's hands on the app: keys, clicks, and what the screen says."""

    def __init__(self, app: CashierApp, pilot: Pilot[None]) -> None:
        self.app, self.pilot = app, pilot

    @property
    def screen(self) -> Screen[Any]:
        return self.app.screen

    def text(self, selector: str) -> str:
        return str(self.screen.query_one(selector).render())

    async def press(self, *keys: str) -> None:
        await self.pilot.press(*keys)

    async def wait_for(self, *screens: type[Screen[Any]]) -> Screen[Any]:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while not isinstance(self.screen, screens):
            if time.monotonic() > deadline:
                raise AssertionError(f"waited for {[s.__name__ for s in screens]}, still on {self.screen!r}")
            await self.pilot.pause(0.05)
        await self.pilot.pause()
        return self.screen

    async def signed_on(self) -> str:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while self.app.session is None or not isinstance(self.screen, HomeScreen) \
                or self.text("#signon-status").startswith("Opening"):
            if time.monotonic() > deadline:
                raise AssertionError(f"not signed on: {self.screen!r}")
            await self.pilot.pause(0.05)
        return self.text("#signon-status")

    async def start(self, menu_key: str, digits: str, method_key: str, card_id: str) -> Screen[Any]:
        """From home: the amount on the keypad, the method, the card at the reader.
        Returns the next screen: the PIN pad, or the result when no PIN is needed."""
        await self.press(menu_key)
        await self.wait_for(AmountScreen)
        await self.press(*digits, "enter")
        await self.wait_for(MethodScreen)
        await self.press(method_key)
        await self.wait_for(ReaderScreen)
        await self.pilot.click(f"#card-{card_id}")
        return await self.wait_for(PinScreen, ResultScreen)

    async def enter_pin(self, pin: str) -> dict[str, Any]:
        assert self.text("#pin-display") == "Cardholder: enter PIN"
        await self.press(*pin)
        assert self.text("#pin-display") == "•" * len(pin)  # masked: never a digit on screen
        await self.press("enter")
        await self.wait_for(ResultScreen)
        return self.result()

    def result(self) -> dict[str, Any]:
        assert isinstance(self.screen, ResultScreen)
        return {"status": self.text("#result-status"), "detail": self.text("#result-detail"),
                "receipt": self.text("#receipt"), **self.screen.result}

    async def done(self) -> None:
        await self.press("enter")
        await self.wait_for(HomeScreen)


def at_the_terminal(host: Host, script: Callable[[Cashier], Awaitable[T]], *, port: int | None = None,
                    terminal: str = TERMINAL) -> T:
    """Start the cashier's app, wait for sign-on, run ``script``, close the app."""

    async def run() -> T:
        app = CashierApp(lambda: open_session(host.data_dir, None, terminal, "127.0.0.1", port or host.iso_port))
        async with app.run_test(size=SCREEN_SIZE) as pilot:
            cashier = Cashier(app, pilot)
            await cashier.signed_on()
            return await script(cashier)

    return asyncio.run(run())


# --- the cashier's day --------------------------------------------------------------------------


def chip_and_pin_sale(host: Host, day: Day) -> dict[str, Any]:
    """The day's CNY 25.00 chip + PIN sale, rung up once per day (the refund needs it, and under
    pytest-xdist the refund's test may run in a process where the sale's test did not)."""
    if day.chip_sale is not None:
        return day.chip_sale

    async def script(cashier: Cashier) -> dict[str, Any]:
        assert cashier.text("#signon-status").startswith("SIGNED ON")
        await cashier.press("s")
        await cashier.wait_for(AmountScreen)
        await cashier.press("2", "5", "9", "backspace", "0", "0")
        assert cashier.text("#amount") == "CNY 25.00"
        await cashier.press("enter")
        await cashier.wait_for(MethodScreen)
        await cashier.press("i")
        await cashier.wait_for(ReaderScreen)
        await cashier.pilot.click(f"#card-{CARD}")
        assert isinstance(await cashier.wait_for(PinScreen, ResultScreen), PinScreen)  # chip: online PIN
        result = await cashier.enter_pin(PIN)
        await cashier.done()
        return result

    sale = at_the_terminal(host, script)
    if sale["status"] == "APPROVED":
        day.sales_minor.append(2500)
        day.chip_sale = sale
    return sale


def test_a_cashier_completes_a_chip_and_pin_sale(host: Host, day: Day) -> None:
    sale = chip_and_pin_sale(host, day)

    assert sale["status"] == "APPROVED", sale
    assert f"Approval code {sale['approval_code']}" in sale["detail"] and f"RRN {sale['rrn']}" in sale["detail"]
    assert "CNY 25.00" in sale["receipt"] and "PIN VERIFIED" in sale["receipt"] and PIN not in sale["receipt"]


def test_a_contactless_sale_under_the_cvm_limit_asks_for_no_pin(host: Host, day: Day) -> None:
    async def script(cashier: Cashier) -> dict[str, Any]:
        after_tap = await cashier.start("s", "8800", "t", CARD)  # CNY 88.00 <= CNY 1,000.00
        assert isinstance(after_tap, ResultScreen), "no PIN pad under the CVM limit"
        result = cashier.result()
        await cashier.done()
        return result

    sale = at_the_terminal(host, script)
    assert sale["status"] == "APPROVED", sale
    assert "CNY 88.00" in sale["receipt"] and "NO SIGNATURE REQUIRED" in sale["receipt"]
    day.sales_minor.append(8800)


def test_a_contactless_sale_over_the_cvm_limit_asks_for_the_pin(host: Host, day: Day) -> None:
    async def script(cashier: Cashier) -> dict[str, Any]:
        after_tap = await cashier.start("s", "120000", "t", CARD)  # CNY 1,200.00 > CNY 1,000.00
        assert isinstance(after_tap, PinScreen), "the PIN pad above the CVM limit"
        result = await cashier.enter_pin(PIN)
        await cashier.done()
        return result

    sale = at_the_terminal(host, script)
    assert sale["status"] == "APPROVED", sale
    assert "CNY 1200.00" in sale["receipt"] and "PIN VERIFIED" in sale["receipt"]
    day.sales_minor.append(120000)


def test_a_swiped_chip_card_is_refused_and_nothing_is_sent(host: Host, day: Day) -> None:
    async def script(cashier: Cashier) -> tuple[dict[str, Any], int]:
        await cashier.press("s")
        await cashier.wait_for(AmountScreen)
        await cashier.press("enter")  # no amount yet: the keypad stays
        assert isinstance(cashier.screen, AmountScreen)
        await cashier.press("escape")
        await cashier.wait_for(HomeScreen)
        after_swipe = await cashier.start("s", "1000", "s", CARD)
        assert isinstance(after_swipe, ResultScreen)
        result = cashier.result()
        await cashier.done()
        assert cashier.app.session is not None
        return result, len(cashier.app.session.engine.store.journal())

    refused, journal_size = at_the_terminal(host, script)
    assert (refused["status"], refused["detail"]) == ("NOT COMPLETED", "insert chip card")
    assert journal_size == len(day.sales_minor)


def test_a_wrong_pin_is_declined_with_the_reason_in_words(host: Host) -> None:
    async def script(cashier: Cashier) -> dict[str, Any]:
        await cashier.start("s", "1000", "i", "visa-cvn10-approve")
        result = await cashier.enter_pin("9999")
        await cashier.done()
        return result

    declined = at_the_terminal(host, script)
    assert declined["status"] == "DECLINED" and declined["detail"] == "INCORRECT PIN (response code 55)", declined
    assert "DECLINED" in declined["receipt"] and "INCORRECT PIN" in declined["receipt"]


def test_a_refund_of_the_chip_sale_is_picked_from_the_journal(host: Host, day: Day) -> None:
    sale = chip_and_pin_sale(host, day)
    assert sale["status"] == "APPROVED", sale
    sale_id = sale["journal_id"]

    async def script(cashier: Cashier) -> dict[str, Any]:
        await cashier.press("j")
        journal = await cashier.wait_for(JournalScreen)
        assert isinstance(journal, JournalScreen)
        table = journal.query_one("#journal-table", DataTable)
        for _ in range(table.row_count):  # newest first: arrow down to the chip sale
            if (selected := journal.selected()) is not None and selected.id == sale_id:
                break
            await cashier.press("down")
        assert journal.selected() is not None and journal.selected().id == sale_id  # type: ignore[union-attr]
        assert not journal.query_one("#journal-refund", Button).disabled
        await cashier.press("r")
        await cashier.wait_for(AmountScreen)
        assert cashier.text("#amount") == "CNY 25.00"  # the sale's amount, at most
        await cashier.press("enter")
        assert isinstance(await cashier.wait_for(PinScreen, ResultScreen), ResultScreen)
        result = cashier.result()
        await cashier.done()
        return result

    refund = at_the_terminal(host, script)
    assert refund["status"] == "APPROVED", refund
    assert "REFUND" in refund["receipt"] and "CNY 25.00" in refund["receipt"]
    day.refunds_minor.append(2500)


def test_end_of_day_closes_the_batch_with_both_sides_agreeing(host: Host, day: Day) -> None:
    async def script(cashier: Cashier) -> dict[str, str]:
        await cashier.press("e")
        await cashier.wait_for(SettleScreen)
        shown = {name: cashier.text(f"#settle-{name}") for name in ("status", "terminal", "host")}
        await cashier.press("enter")
        await cashier.wait_for(HomeScreen)
        return shown

    shown = at_the_terminal(host, script)
    assert shown["status"] == "BATCH CLOSED — APPROVED (00)", shown
    sales = f"Sales    {len(day.sales_minor):>4}  {money(sum(day.sales_minor), 'CNY')}"
    refunds = f"Refunds  {len(day.refunds_minor):>4}  {money(sum(day.refunds_minor), 'CNY')}"
    for side in ("terminal", "host"):
        assert sales in shown[side] and refunds in shown[side] and "≠" not in shown[side], shown


def test_the_books_balance_after_the_cashiers_day(host: Host, day: Day) -> None:
    check = host.paypos("ledger", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    moved = host.available_minor(CARD) - day.card_available_before_minor
    assert moved == -sum(day.sales_minor) + sum(day.refunds_minor)


# --- sign-on -------------------------------------------------------------------------------------


def test_sign_on_reports_an_unreachable_host_and_keeps_the_menu(host: Host) -> None:
    async def script(cashier: Cashier) -> tuple[str, bool]:
        return cashier.text("#signon-status"), cashier.screen.query_one("#menu-sale", Button).disabled

    status, sale_disabled = at_the_terminal(host, script, port=free_port())
    assert status.startswith("NOT SIGNED ON") and "(91)" in status, status
    assert not sale_disabled  # offline sales stay possible


def test_an_unknown_terminal_cannot_open_and_the_menu_stays_closed(host: Host) -> None:
    async def script(cashier: Cashier) -> tuple[str, bool]:
        return cashier.text("#signon-status"), cashier.screen.query_one("#menu-sale", Button).disabled

    async def run() -> tuple[str, bool]:
        app = CashierApp(lambda: open_session(host.data_dir, None, "NOPE0001", "127.0.0.1", host.iso_port))
        async with app.run_test(size=SCREEN_SIZE) as pilot:
            cashier = Cashier(app, pilot)
            await cashier.wait_for(HomeScreen)
            deadline = time.monotonic() + STEP_TIMEOUT_S
            while cashier.text("#signon-status").startswith("Opening") and time.monotonic() < deadline:
                await pilot.pause(0.05)
            return await script(cashier)

    status, sale_disabled = asyncio.run(run())
    assert status == "Cannot open the terminal: --terminal: no sandbox terminal 'NOPE0001'", status
    assert sale_disabled
