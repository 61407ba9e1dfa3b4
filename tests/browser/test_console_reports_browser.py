"""Reports in a real browser: `paypos serve` (a real process) on a copy of the sandbox, headless
Chromium driven by Playwright. A card payment is made over REST; the café's owner sees it on the
dashboard, opens *Statements* (today, local) and downloads the PDF (read back with pypdf); finance
opens the operator's *Reports* with its charts. Every step is a screenshot in the test artifacts."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pypdf import PdfReader

from paypos.networks.sandbox.console_catalog import by_role
from tests.browser.chromium import require_browser, shot
from tests.browser.test_console_browser import CAFE, Host, sign_in
from tests.e2e.conftest import PayposCli
from tests.e2e.hostproc import running_host

require_browser()  # else skipped with one line (a failure under CI=true)

if TYPE_CHECKING:
    from playwright.sync_api import Page


@pytest.fixture(scope="module")
def host(cli: PayposCli, sandbox_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    folder = tmp_path_factory.mktemp("console-reports")
    data_dir = Path(shutil.copytree(sandbox_dir, folder / "data"))
    with running_host(cli.command, data_dir, folder / "serve.log") as (_iso, http_port):
        yield Host(f"http://127.0.0.1:{http_port}", data_dir, cli)


def test_an_owner_sees_the_dashboard_and_downloads_todays_statement_and_finance_opens_the_report(
        host: Host, page: Page, artifacts: Path) -> None:
    host.paid_card_payment(6_600)
    owner = by_role("owner", CAFE)
    sign_in(page, host, owner.email, owner.password)
    page.wait_for_url(re.compile(r"/console/dashboard$"))
    assert page.inner_text("#today-total") == "CNY 66.00" and page.locator("svg.chart rect.bar").count() > 0
    shot(page, artifacts, "1-dashboard")
    page.click("nav >> text=Statements")
    page.wait_for_url(re.compile(r"/console/statements$"))
    assert page.inner_text("#sales-total") == "CNY 66.00"
    assert "card not present" in page.inner_text("#by-method").replace("_", " ")
    shot(page, artifacts, "2-statement")
    with page.expect_download() as download:
        page.click("#download-pdf")
    saved = download.value.path()
    assert download.value.suggested_filename.startswith(f"statement-{CAFE}-") and saved is not None
    text = "".join(p.extract_text() for p in PdfReader(str(saved)).pages)
    assert "66.00" in text and CAFE in text
    page.click("text=Sign out")
    finance = by_role("finance")
    sign_in(page, host, finance.email, finance.password)
    page.wait_for_url(re.compile(r"/console/ops/merchants$"))
    page.click("nav >> text=Reports")
    page.wait_for_url(re.compile(r"/console/ops/reports$"))
    assert page.locator("svg.chart").count() == 2 and int(page.inner_text("#approved-count")) >= 1
    assert CAFE in page.inner_text("#top-merchants")
    shot(page, artifacts, "3-operator-report")
