"""Real Chromium for the browser tests (tests/browser/chromium.py says which), driven by
Playwright's sync API; screenshots go to ``$PAYPOS_TEST_ARTIFACTS/browser`` (default
``test-artifacts/browser`` in the repository, which git ignores)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, new_page
from tests.e2e.conftest import cli, sandbox_copy, sandbox_dir  # noqa: F401 — the e2e fixtures, shared

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A desktop-sized page in its own context (modules that need another size override it)."""
    opened = new_page(browser)
    yield opened
    opened.context.close()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """This test's screenshot folder (emptied first)."""
    root = Path(os.environ.get("PAYPOS_TEST_ARTIFACTS", REPO / "test-artifacts")) / "browser"
    folder = root / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder
