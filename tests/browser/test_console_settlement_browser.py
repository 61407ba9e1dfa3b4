"""A payment's payout on the next cycle, in a real browser: `paypos serve` (a real process) on a
copy of the sandbox, headless Debian Chromium driven by Playwright. A card sale was taken
yesterday (posted in process before the server starts, stamped yesterday noon in Shanghai, as
the host posts a sale chain); the café's owner binds a bank account and confirms the two
micro-deposits; finance runs clearing for today (T+1: yesterday's sales) after confirming; the
owner sees the payout on the settlements page; finance downloads the clearing file. Every step
is a screenshot in the test artifacts.

``payout_on_next_cycle(page, base_url, data_dir, artifacts)`` is the journey's settlement leg,
for other journey tests (apply → approve → activate → pay → dashboard → payout) to call."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from paypos import limits
from paypos.bootstrap import bootstrap
from paypos.config import load_settings
from paypos.domain.ledger import TransferRequest
from paypos.networks.sandbox import catalog
from paypos.networks.sandbox.console_catalog import by_role
from paypos.services import settlement
from paypos.services.sandbox import merchant_owner
from tests.browser.chromium import require_browser, shot
from tests.e2e.conftest import PayposCli
from tests.e2e.hostproc import running_host

require_browser()  # else skipped with one line (a failure under CI=true)

if TYPE_CHECKING:
    from playwright.sync_api import Page

CAFE = catalog.CAFE.merchant_id
BANK_CARD = "6222021234567890128"  # 19 digits, Luhn valid: the sandbox bank pays it
SALE_MINOR, FEE_MINOR = 8_800, 53


def yesterday_noon_utc() -> datetime:
    """Noon yesterday in the default settlement zone: inside the window today's T+1 run closes."""
    zone = ZoneInfo(limits.settlement_time_zone_default)
    yesterday = datetime.now(zone).date() - timedelta(days=1)
    return datetime.combine(yesterday, time(12), tzinfo=zone).astimezone(UTC)


def card_sale_yesterday(data_dir: Path, merchant_id: str, amount_minor: int, fee_minor: int) -> None:
    """A card-present sale chain (card → merchant_pending, fee → fees_revenue) stamped yesterday."""
    stamped = yesterday_noon_utc()
    app = bootstrap(load_settings(data_dir, None), lambda: stamped, initialising=False)
    try:
        with app.uow() as uow:
            owner = merchant_owner(merchant_id)
            card = uow.ledger.open_account("test:cards", "test", "card_funding", "CNY").id
            pending = uow.ledger.find_account_id(owner, "merchant_pending", "CNY") or uow.ledger.open_account(
                owner, owner, "merchant_pending", "CNY").id
            fees = uow.ledger.find_account_id("platform", "fees_revenue", "CNY") or uow.ledger.open_account(
                "platform", "platform", "fees_revenue", "CNY").id
            uow.ledger.create_transfers([
                TransferRequest("browser-yesterday:sale", card, pending, amount_minor, "CNY", code="sale",
                                linked=True),
                TransferRequest("browser-yesterday:fee", pending, fees, fee_minor, "CNY", code="fee")], stamped)
            uow.commit()
    finally:
        app.close()


def micro_deposit_amounts(data_dir: Path, bank_account_id: str) -> tuple[str, str]:
    """What the sandbox bank "sent" (a real owner reads it on the bank statement), in major units."""
    app = bootstrap(load_settings(data_dir, None), lambda: datetime.now(UTC), initialising=False)
    try:
        with app.uow(write=False) as uow:
            first, second = settlement.micro_deposits(uow, bank_account_id)["amounts_minor"]
    finally:
        app.close()
    return f"0.{first:02d}", f"0.{second:02d}"


def sign_in(page: Page, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/console/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def sign_out(page: Page) -> None:
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r"/console/login"))


def payout_on_next_cycle(page: Page, base_url: str, data_dir: Path, artifacts: Path, *,
                         merchant_id: str = CAFE, holder_name: str = catalog.CAFE.name,
                         account_number: str = BANK_CARD, owner_email: str | None = None,
                         owner_password: str | None = None, prefix: str = "payout") -> str:
    """The owner binds and confirms a bank account, finance runs clearing for today, the owner
    sees the payout of yesterday's sales: its row's text (status ``created``). Signs out after.

    The sales must be in the merchant's pending balance before yesterday's cut-off (23:00 in
    Asia/Shanghai by default); the owner defaults to the sandbox's café owner."""
    owner = by_role("owner", merchant_id) if owner_email is None else None
    email = owner_email or (owner.email if owner else "")
    password = owner_password or (owner.password if owner else "")
    sign_in(page, base_url, email, password)
    page.wait_for_url(re.compile(r"/console/(dashboard|transactions)"))
    page.click("nav >> text=Bank account")
    page.fill("#bind-form input[name=account_number]", account_number)
    page.fill("#bind-form input[name=holder_name]", holder_name)
    shot(page, artifacts, f"{prefix}-1-bind")
    page.click("#bind-form button[type=submit]")
    page.wait_for_selector(".flash")
    account_id = page.get_attribute(".confirm-form input[name=bank_account_id]", "value") or ""
    first, second = micro_deposit_amounts(data_dir, account_id)
    page.fill(".confirm-form input[name=amount_1]", first)
    page.fill(".confirm-form input[name=amount_2]", second)
    shot(page, artifacts, f"{prefix}-2-micro-deposits")
    page.click(".confirm-form button[type=submit]")
    page.wait_for_selector("#verified-account strong")
    masked = page.inner_text("#verified-account strong")
    assert account_number not in page.content() and masked.endswith(account_number[-4:])
    shot(page, artifacts, f"{prefix}-3-verified")
    sign_out(page)

    finance = by_role("finance")
    sign_in(page, base_url, finance.email, finance.password)
    page.wait_for_url(re.compile(r"/console/ops/merchants$"))
    page.click("nav >> text=Settlement runs")
    today = datetime.now(ZoneInfo(limits.settlement_time_zone_default)).date().isoformat()
    assert page.input_value("#run-form input[name=business_date]") == today
    page.check("#run-form input[name=confirm]")
    shot(page, artifacts, f"{prefix}-4-run-confirm")
    page.click("#run-form button[type=submit]")
    page.wait_for_selector("#run-summary")
    assert page.inner_text("#run-status") == "done" and int(page.inner_text("#run-payouts")) >= 1
    shot(page, artifacts, f"{prefix}-5-run-done")
    sign_out(page)

    sign_in(page, base_url, email, password)
    page.wait_for_url(re.compile(r"/console/(dashboard|transactions)"))
    page.click("nav >> text=Settlements")
    row = page.locator("#payouts tbody tr", has_text=f"po_{merchant_id}_{today.replace('-', '')}")
    assert row.count() == 1
    text = row.inner_text()
    assert "created" in text and masked in text
    shot(page, artifacts, f"{prefix}-6-owner-sees-payout")
    sign_out(page)
    return text


@pytest.fixture(scope="module")
def host_dir(cli: PayposCli, sandbox_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("console-settlement")
    data_dir = Path(shutil.copytree(sandbox_dir, folder / "data"))
    card_sale_yesterday(data_dir, CAFE, SALE_MINOR, FEE_MINOR)
    with running_host(cli.command, data_dir, folder / "serve.log") as (_iso, http_port):
        yield f"http://127.0.0.1:{http_port}", data_dir


def test_yesterdays_card_sale_is_paid_out_on_the_next_cycle_and_finance_downloads_the_clearing_file(
        host_dir: tuple[str, Path], page: Page, artifacts: Path) -> None:
    base_url, data_dir = host_dir
    row = payout_on_next_cycle(page, base_url, data_dir, artifacts)
    assert "CNY 87.47" in row  # 88.00 sold yesterday less its 0.53 fee

    finance = by_role("finance")
    sign_in(page, base_url, finance.email, finance.password)
    page.wait_for_url(re.compile(r"/console/ops/merchants$"))
    page.click("nav >> text=Payouts")
    with page.expect_download() as download:
        page.click("#clearing-form button[type=submit]")
    saved = Path(download.value.path())
    assert download.value.suggested_filename.startswith("CF") and f"po_{CAFE}_".encode() in saved.read_bytes()
    page.goto(f"{base_url}/console/ops/settlement/payouts?merchant={CAFE}")
    assert "sent" in page.inner_text("#payouts")
    shot(page, artifacts, "7-clearing-file-sent")
