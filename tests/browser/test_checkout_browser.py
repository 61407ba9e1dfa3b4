"""Issue 6's hosted checkout in a real browser: `paypos serve` (a real process), payment
requests made over REST with a sandbox merchant's key, then headless Chromium (Debian's, driven
by Playwright) pays by card without the challenge, by card with the one-time code (read from the
sandbox issuer's outbox with `paypos sandbox notifications`), and by wallet: the page's QR is
read back from its pixels, paid by a sandbox wallet user through the wallet app API, and the
open page turns to paid by itself. Every step is a screenshot in the test artifacts."""

from __future__ import annotations

import io
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import zxingcpp
from PIL import Image

from paypos import limits
from paypos.networks.sandbox import catalog, wallet_catalog
from paypos.networks.sandbox.wallet_tokens import wallet_user_token
from tests.browser.chromium import new_page, require_browser, shot
from tests.e2e.conftest import PayposCli
from tests.e2e.hostproc import running_host

require_browser()  # else skipped with one line (a failure under CI=true)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CAFE_KEY = catalog.merchant_api_key(catalog.CAFE.merchant_id)[1]
WALLET_USER = wallet_catalog.USERS[0].user_id  # a CNY wallet user with a balance
# The page polls /pay/{id}/status every checkout_status_poll_ms: a few polls at most.
SELF_UPDATE_TIMEOUT_MS = 5 * limits.checkout_status_poll_ms


@dataclass(frozen=True)
class Host:
    base_url: str
    data_dir: Path
    cli: PayposCli

    def new_request(self, amount: int, order_id: str) -> dict[str, Any]:
        created = httpx.post(f"{self.base_url}/v1/payment_requests", timeout=10,
                             headers={"Authorization": f"Bearer {CAFE_KEY}", "Idempotency-Key": str(uuid.uuid4())},
                             json={"amount": amount, "currency": "CNY", "order_id": order_id,
                                   "description": "A teapot"})
        assert created.status_code == 201, created.text
        return dict(created.json())

    def status(self, request_id: str) -> str:
        got = httpx.get(f"{self.base_url}/v1/payment_requests/{request_id}", timeout=10,
                        headers={"Authorization": f"Bearer {CAFE_KEY}"})
        return str(got.json()["status"])

    def cli_json(self, *args: str) -> Any:
        result = self.cli.run(*args, "--json", "--data-dir", str(self.data_dir))
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture(scope="module")
def host(cli: PayposCli, sandbox_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    folder = tmp_path_factory.mktemp("browser")
    data_dir = Path(shutil.copytree(sandbox_dir, folder / "data"))
    with running_host(cli.command, data_dir, folder / "serve.log") as (_iso, http_port):
        yield Host(f"http://127.0.0.1:{http_port}", data_dir, cli)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """Phone-sized: the hosted checkout is what a buyer sees on a phone."""
    opened = new_page(browser, width=480)
    yield opened
    opened.context.close()


def card(host: Host, card_id: str) -> dict[str, Any]:
    return next(c for c in host.cli_json("sandbox", "cards") if c["id"] == card_id)


def fill_card(page: Page, data: dict[str, Any]) -> None:
    page.fill("#pan", data["pan"])
    page.fill("#expiry", f"{data['expiry'][2:]}/{data['expiry'][:2]}")
    page.fill("#cvv2", data["cvv2"])
    page.fill("#name", "Browser Buyer")


def assert_paid(page: Page, host: Host, request_id: str) -> None:
    page.wait_for_url(re.compile(r"/result$"))
    assert page.inner_text("#result") == "Paid"
    assert host.status(request_id) == "paid"


def test_a_card_pays_without_the_challenge(host: Host, page: Page, artifacts: Path) -> None:
    request = host.new_request(1_234, "browser-card")
    page.goto(request["checkout_url"])
    assert "CNY 12.34" in page.inner_text("#pay-card")
    shot(page, artifacts, "1-checkout")
    fill_card(page, card(host, "visa-cvn18-approve"))
    shot(page, artifacts, "2-card-entered")
    page.click("#pay-card")
    assert_paid(page, host, request["id"])
    shot(page, artifacts, "3-paid")


def test_a_card_pays_with_the_one_time_code(host: Host, page: Page, artifacts: Path) -> None:
    request = host.new_request(2_345, "browser-challenge")
    page.goto(request["checkout_url"])
    shot(page, artifacts, "1-checkout")
    fill_card(page, card(host, "visa-cvn18-challenge"))
    page.click("#pay-card")
    page.wait_for_url(re.compile(r"/challenge$"))
    shot(page, artifacts, "2-challenge")
    notices = host.cli_json("sandbox", "notifications", "--card", "visa-cvn18-challenge")
    (text,) = [n["text"] for n in notices if str(n["reference"]).endswith(":otp")]
    page.fill("#otp", re.search(r"\] (\d{6}) is your code", text).group(1))  # type: ignore[union-attr]
    shot(page, artifacts, "3-code-entered")
    page.click("#submit-otp")
    assert_paid(page, host, request["id"])
    shot(page, artifacts, "4-paid")


def test_the_wallet_pays_the_qr_and_the_open_page_turns_paid_by_itself(
        host: Host, page: Page, artifacts: Path) -> None:
    request = host.new_request(888, "browser-wallet")
    page.goto(request["checkout_url"])
    page.click("#wallet summary")
    qr = page.locator("#wallet-qr svg")
    qr.wait_for(state="visible")
    shot(page, artifacts, "1-wallet-qr")
    (decoded,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.screenshot())))  # the pixels, not the markup
    scanned = httpx.post(f"{host.base_url}/v1/wallet/scan", json={"payload": decoded.text}, timeout=10,
                         headers={"Authorization": f"Bearer {wallet_user_token(WALLET_USER)}"})
    assert scanned.status_code == 200 and scanned.json()["state"] == "TRADE_SUCCESS", scanned.text
    page.wait_for_url(re.compile(r"/result$"), timeout=SELF_UPDATE_TIMEOUT_MS)  # no click: the page polls
    assert_paid(page, host, request["id"])
    shot(page, artifacts, "2-paid")
