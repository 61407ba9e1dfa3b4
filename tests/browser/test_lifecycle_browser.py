"""The merchant lifecycle in a real browser, end to end: `paypos serve` (a real process) on a copy
of the sandbox, headless Debian Chromium driven by Playwright.

A new applicant fills the public application form with a PNG document → a reviewer approves it
and creates the owner's login (one-time password) → the owner signs in and requests a terminal
→ the reviewer provisions it (the package, shown once) → `paypos terminals activate` with the
code → the terminal software, loaded with the package (IPEK, initial KSN), pays a chip sale
through the real ISO 8583 host over TCP → the owner sees it on the dashboard chart and in
transactions → finance puts the merchant on T+0 settlement, the owner binds a bank account
(micro-deposits), finance runs the clearing and the owner sees the payout. Every step is a
screenshot in the test artifacts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from paypos.networks.sandbox.console_catalog import by_role
from paypos.terminal.card import CardProfile, InMemoryAtcStore, SoftCard
from paypos.terminal.engine import TerminalEngine
from paypos.terminal.link import HostLink
from paypos.terminal.store import TerminalConfig, TerminalStore
from tests.browser.chromium import new_page, require_browser
from tests.browser.test_console_settlement_browser import payout_on_next_cycle
from tests.e2e.conftest import PayposCli
from tests.e2e.hostproc import running_host

require_browser()  # else skipped with one line (a failure under CI=true)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

# A minimal valid PNG (1×1, grey): what an applicant's phone photo of an ID card stands in for.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010800000000"
                    "3a7e9b550000000a49444154789c63680000008200814d2a4a3c0000000049454e44ae426082")
SALE_MINOR = 4_321
# The server's settlement in-flight margin, lowered from 60 s so the journey's T+0 run can settle
# a sale made seconds before.
MARGIN_S = 2


@dataclass
class Journey:
    """One applicant's way from the form to a paid sale; each step leaves a screenshot."""

    base_url: str
    data_dir: Path
    cli: PayposCli
    browser: Browser
    artifacts: Path
    work: Path
    facts: dict[str, Any] = field(default_factory=dict)
    _step: int = 0

    def page(self) -> Page:
        return new_page(self.browser)  # type: ignore[no-any-return]

    def shot(self, page: Page, name: str) -> None:
        self._step += 1
        page.screenshot(path=str(self.artifacts / f"{self._step:02d}-{name}.png"), full_page=True)

    def sign_in(self, page: Page, email: str, password: str) -> None:
        page.goto(f"{self.base_url}/console/login")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")

    # --- the steps -------------------------------------------------------------------------------

    def apply(self) -> None:
        page = self.page()
        page.goto(f"{self.base_url}/console/apply")
        self.shot(page, "apply-form")
        page.select_option("select[name=kind]", "individual")
        page.fill("input[name=legal_name]", "Lotus Tea Stall")
        page.fill("input[name=id_number]", "360426199101010071")
        page.fill("input[name=phone]", "13912345678")
        page.select_option("select[name=mcc]", "5814")
        page.fill("input[name=city]", "Hangzhou")
        page.fill("input[name=address]", "1 West Lake Road")
        document = self.work / "id-card.png"
        document.write_bytes(PNG)
        page.set_input_files("input[name=document]", str(document))
        page.click("#apply-submit")
        page.wait_for_selector("#application-id")
        assert page.inner_text("#application-status") == "submitted"
        self.facts["application_id"] = page.inner_text("#application-id")
        self.shot(page, "applied")
        page.context.close()

    def review(self) -> None:
        reviewer = by_role("reviewer")
        page = self.page()
        self.sign_in(page, reviewer.email, reviewer.password)
        page.wait_for_url(re.compile(r"/console/ops/merchants$"))
        page.click("nav >> text=Applications")
        page.click(f"a:has-text('{self.facts['application_id']}')")
        assert "360426********0071" in page.inner_text("#application")  # the ID number masked
        assert page.locator("#documents a:has-text('id-card.png')").count() == 1
        self.shot(page, "review")
        with page.expect_download() as download:
            page.click("#documents a:has-text('id-card.png')")
        assert Path(download.value.path()).read_bytes() == PNG
        page.click("#approve")
        page.wait_for_selector(".flash")
        assert page.inner_text("#application-status") == "approved"
        self.facts["merchant_id"] = page.inner_text("#application-merchant")
        self.shot(page, "approved")
        email = f"lotus-{uuid.uuid4().hex[:6]}@tea.example"
        page.fill("input[name=email]", email)
        page.click("#create-owner")
        page.wait_for_selector("#owner-password")
        self.facts["owner"] = (email, page.inner_text("#owner-password"))
        self.shot(page, "owner-login-shown-once")
        self.facts["reviewer_page"] = page

    def request_terminal(self) -> None:
        page = self.page()
        self.sign_in(page, *self.facts["owner"])
        page.wait_for_url(re.compile(r"/console/dashboard$"))
        page.click("nav >> text=Terminals")
        page.fill("input[name=location]", "Counter 1, 1 West Lake Road")
        page.click("button:has-text('Request a terminal')")
        page.wait_for_selector(".flash")
        assert page.locator("#terminals td:text-is('requested')").count() == 1
        self.shot(page, "terminal-requested")
        self.facts["owner_page"] = page

    def provision(self) -> None:
        page: Page = self.facts["reviewer_page"]
        page.click("nav >> text=Terminals")
        row = page.locator("#terminals tr", has_text=self.facts["merchant_id"])
        row.locator("button:has-text('Provision')").click()
        page.wait_for_selector("#package")
        package = {"terminal_id": page.inner_text("#package-terminal-id"), "ksn": page.inner_text("#package-ksn"),
                   "ipek": page.inner_text("#package-ipek"), "code": page.inner_text("#package-code")}
        assert "Shown once" in page.inner_text("main")
        self.shot(page, "provisioning-package")
        self.facts["package"] = package

    def activate(self) -> None:
        package = self.facts["package"]
        result = self.cli.run("terminals", "activate", package["terminal_id"], "--code", package["code"], "--json",
                              "--data-dir", str(self.data_dir))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["status"] == "active"

    def pay(self, iso_port: int) -> None:
        """The terminal software, loaded with the package alone, pays a chip sale over TCP."""
        package, merchant_id = self.facts["package"], self.facts["merchant_id"]
        store = TerminalStore(self.work / "terminal.db")
        store.load_keys(TerminalConfig(package["terminal_id"], merchant_id, "156", package["ksn"], package["ipek"],
                                       True, 10_000, 500_000, 100_000, "Lotus Tea Stall", "Hangzhou"))
        cards = json.loads(self.cli.run("sandbox", "cards", "--json", "--data-dir", str(self.data_dir)).stdout)
        card = CardProfile.from_sandbox(next(c for c in cards if c["id"] == "visa-cvn18-approve"))
        atc = InMemoryAtcStore()
        engine = TerminalEngine(store, HostLink("127.0.0.1", iso_port), lambda profile: SoftCard(profile, atc))
        try:
            paid = engine.pay(card, SALE_MINOR, "chip", pin="1234")
        finally:
            store.close()
        assert paid.approved, paid.message
        self.facts["paid_at"] = time.monotonic()

    def see_it(self) -> None:
        page: Page = self.facts["owner_page"]
        page.click("nav >> text=Dashboard")
        assert page.inner_text("#today-total") == "CNY 43.21"
        assert page.locator("svg.chart rect.bar").count() > 0
        self.shot(page, "dashboard")
        page.click("nav >> text=Transactions")
        page.select_option("#filters select[name=source]", "card_present")  # htmx swaps the table in place
        page.wait_for_url(re.compile(r"source=card_present"))
        page.wait_for_selector("#transactions td:has-text('CNY 43.21')")
        assert page.locator("#transactions td:has-text('CNY 43.21')").count() == 1
        assert re.fullmatch(r"\d{6}\*+\d{4}", page.inner_text("#transactions tbody tr td:nth-child(7)"))
        self.shot(page, "transactions")
        page.click("nav >> text=Terminals")
        assert page.locator("#terminals td:text-is('active')").count() == 1
        self.shot(page, "terminal-active")

    def after_the_sale(self) -> None:
        """The payout on the next settlement cycle: finance puts the new merchant on T+0
        (instant) settlement, the owner binds and confirms a bank account, and once the sale is
        older than the clearing run's in-flight margin (a window never closes on a transfer
        that may still be committing: docs/settlement.md), finance runs today's clearing and the
        owner sees the payout of the sale net of its fee and the T+0 charge."""
        for key in ("owner_page", "reviewer_page"):
            self.facts[key].context.close()
        merchant_id = self.facts["merchant_id"]
        page = self.page()
        finance = by_role("finance")
        self.sign_in(page, finance.email, finance.password)
        page.wait_for_url(re.compile(r"/console/ops/merchants$"))
        page.goto(f"{self.base_url}/console/ops/settlement/merchants/{merchant_id}")
        page.select_option("#settings-form select[name=cycle]", "T0")
        page.click("#settings-form button[type=submit]")
        page.wait_for_selector(".flash")
        self.shot(page, "finance-sets-t0")
        page.click("text=Sign out")
        page.wait_for_url(re.compile(r"/console/login"))
        wait_s = MARGIN_S + 1 - (time.monotonic() - self.facts["paid_at"])
        if wait_s > 0:
            time.sleep(wait_s)  # real time: the sale must be older than the run's in-flight margin
        email, password = self.facts["owner"]
        row = payout_on_next_cycle(page, self.base_url, self.data_dir, self.artifacts, merchant_id=merchant_id,
                                   holder_name="Lotus Tea Stall", owner_email=email, owner_password=password,
                                   prefix=f"{self._step + 1:02d}-payout")
        assert "created" in row
        page.context.close()


@pytest.fixture
def served(cli: PayposCli, sandbox_dir: Path, tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    data_dir = Path(shutil.copytree(sandbox_dir, tmp_path / "data"))
    env = {**os.environ, "PAYPOS_SETTLEMENT_IN_FLIGHT_MARGIN_S": str(MARGIN_S)}  # docs/settlement.md
    with running_host(cli.command, data_dir, tmp_path / "serve.log", env) as (iso_port, http_port):
        yield data_dir, iso_port, http_port


def test_apply_approve_activate_a_terminal_take_a_payment_see_it_on_the_dashboard_and_get_paid_out(
        served: tuple[Path, int, int], cli: PayposCli, browser: Browser, artifacts: Path, tmp_path: Path) -> None:
    data_dir, iso_port, http_port = served
    journey = Journey(f"http://127.0.0.1:{http_port}", data_dir, cli, browser, artifacts, tmp_path)
    journey.apply()
    journey.review()
    journey.request_terminal()
    journey.provision()
    journey.activate()
    journey.pay(iso_port)
    journey.see_it()
    journey.after_the_sale()
