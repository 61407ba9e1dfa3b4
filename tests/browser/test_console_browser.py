"""The web console (/console/) in a real browser: `paypos serve` (a real process) on a copy of
the sandbox, headless Debian Chromium driven by Playwright. The owner signs in, sees the
dashboard's charts of a card payment made in this test, opens it and refunds part; a cashier is
refused the owner's pages; five wrong passwords lock an account; an operator turns on TOTP and
signs in with a code. Every step is a screenshot in the test artifacts."""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from paypos import limits
from paypos.domain import totp
from paypos.networks.sandbox import catalog
from paypos.networks.sandbox.console_catalog import by_role
from tests.browser.chromium import require_browser, shot
from tests.e2e.conftest import PayposCli
from tests.e2e.hostproc import running_host

require_browser()  # else skipped with one line (a failure under CI=true)

if TYPE_CHECKING:
    from playwright.sync_api import Page

CAFE = catalog.CAFE.merchant_id
CAFE_KEY = catalog.merchant_api_key(CAFE)[1]


@dataclass(frozen=True)
class Host:
    base_url: str
    data_dir: Path
    cli: PayposCli

    def paid_card_payment(self, amount: int) -> str:
        """A payment request paid by the sandbox's approving card; the payment's id."""
        created = httpx.post(f"{self.base_url}/v1/payment_requests", timeout=10,
                             headers={"Authorization": f"Bearer {CAFE_KEY}", "Idempotency-Key": str(uuid.uuid4())},
                             json={"amount": amount, "currency": "CNY", "order_id": f"console-{uuid.uuid4().hex[:8]}"})
        assert created.status_code == 201, created.text
        result = self.cli.run("sandbox", "cards", "--json", "--data-dir", str(self.data_dir))
        card = next(c for c in json.loads(result.stdout) if c["id"] == "visa-cvn18-approve")
        paid = httpx.post(f"{self.base_url}/pay/{created.json()['id']}/card", timeout=10, follow_redirects=True,
                          data={"pan": card["pan"], "expiry": f"{card['expiry'][2:]}/{card['expiry'][:2]}",
                                "cvv2": card["cvv2"], "name": "Browser Buyer"})
        assert paid.status_code == 200, paid.text
        payments = httpx.get(f"{self.base_url}/v1/payments", timeout=10,
                             headers={"Authorization": f"Bearer {CAFE_KEY}"}).json()["data"]
        return str(next(p["id"] for p in payments if p["status"] == "succeeded" and p["amount"] == amount))


@pytest.fixture(scope="module")
def host(cli: PayposCli, sandbox_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    folder = tmp_path_factory.mktemp("console")
    data_dir = Path(shutil.copytree(sandbox_dir, folder / "data"))
    with running_host(cli.command, data_dir, folder / "serve.log") as (_iso, http_port):
        yield Host(f"http://127.0.0.1:{http_port}", data_dir, cli)


def sign_in(page: Page, host: Host, email: str, password: str) -> None:
    page.goto(f"{host.base_url}/console/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_an_owner_sees_todays_sale_in_the_charts_opens_it_and_refunds_part(
        host: Host, page: Page, artifacts: Path) -> None:
    payment_id = host.paid_card_payment(8_800)
    owner = by_role("owner", CAFE)
    sign_in(page, host, owner.email, owner.password)
    page.wait_for_url(re.compile(r"/console/dashboard$"))
    assert page.locator("svg.chart").count() == 3
    assert page.inner_text("#today-total") == "CNY 88.00"  # the fresh sandbox's one sale today
    assert page.locator("svg.chart rect.bar").count() > 0
    shot(page, artifacts, "1-dashboard")
    page.click("nav >> text=Transactions")
    page.click(f"a:has-text('{payment_id}')")
    page.wait_for_url(re.compile(rf"/console/payments/{payment_id}$"))
    assert page.inner_text("#payment-status") == "succeeded"
    assert re.fullmatch(r"\d{6}\*+\d{4}", page.inner_text("dl.detail dd:nth-of-type(6)"))  # masked PAN only
    shot(page, artifacts, "2-payment")
    page.fill("#refund-form input[name=amount]", "12.00")
    page.fill("#refund-form input[name=reason]", "one cup returned")
    page.click("#refund-form button[type=submit]")
    page.wait_for_selector(".flash")
    assert "Refunded CNY 12.00" in page.inner_text(".flash")
    assert page.inner_text("#payment-refunded") == "CNY 12.00"
    shot(page, artifacts, "3-refunded")


def test_a_cashier_sees_sales_but_cannot_open_the_owners_pages(host: Host, page: Page, artifacts: Path) -> None:
    cashier = by_role("cashier", CAFE)
    sign_in(page, host, cashier.email, cashier.password)
    page.wait_for_url(re.compile(r"/console/transactions$"))
    assert page.locator("nav >> text=Dashboard").count() == 0 and page.locator("nav >> text=Team").count() == 0
    shot(page, artifacts, "1-transactions")
    page.select_option("#filters select[name=status]", "failed")  # htmx swaps the table in place
    page.wait_for_url(re.compile(r"status=failed"))
    page.wait_for_selector("#transactions td.empty")
    shot(page, artifacts, "1b-filtered")
    for path in ("/console/dashboard", "/console/team", "/console/api-keys", "/console/ops/audit"):
        response = page.goto(f"{host.base_url}{path}")
        assert response is not None and response.status == 403, path
        assert "Forbidden" in page.inner_text("h1")
    shot(page, artifacts, "2-forbidden")


def test_five_wrong_passwords_lock_the_account(host: Host, page: Page, artifacts: Path) -> None:
    reviewer = by_role("reviewer")
    for attempt in range(limits.console_login_failures_max):
        sign_in(page, host, reviewer.email, f"wrong-password-{attempt}")
        page.wait_for_selector("#login-error")
    shot(page, artifacts, "1-fifth-failure")
    sign_in(page, host, reviewer.email, reviewer.password)  # the right one, now refused
    assert "locked for 15 minutes" in page.inner_text("#login-error")
    assert page.url.endswith("/console/login")
    shot(page, artifacts, "2-locked")


def test_an_operator_turns_on_totp_and_signs_in_with_a_code(host: Host, page: Page, artifacts: Path) -> None:
    finance = by_role("finance")
    sign_in(page, host, finance.email, finance.password)
    page.wait_for_url(re.compile(r"/console/ops/merchants$"))
    page.click("nav >> text=Security")
    page.click("text=Set up two-step sign-in")
    secret = page.inner_text("#totp-secret")
    assert page.locator(".qr svg").count() == 1
    shot(page, artifacts, "1-enrol-qr")
    page.fill("input[name=code]", totp.code_at(secret, time.time()))
    page.click("button:has-text('Turn on')")
    assert "is on" in page.inner_text("#totp-status")
    shot(page, artifacts, "2-totp-on")
    page.click("text=Sign out")
    sign_in(page, host, finance.email, finance.password)
    page.wait_for_url(re.compile(r"/console/login/totp$"))
    shot(page, artifacts, "3-code-asked")
    # The next step's code: within the ±1-step window and newer than the one just used.
    page.fill("input[name=code]", totp.code_at(secret, time.time() + limits.console_totp_step_s))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/console/ops/merchants$"))
    assert page.locator("table#merchants").count() == 1
    shot(page, artifacts, "4-signed-in")


