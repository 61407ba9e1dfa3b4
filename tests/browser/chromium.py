"""Which Chromium the browser tests drive, and what happens without one.

Chromium comes from Debian (``/usr/bin/chromium``; `.ci/run` installs it; ``PAYPOS_CHROMIUM``
overrides the path), never from Playwright's downloads. Without it, or without the playwright
package, a browser test module is skipped with one line — except under ``CI=true``, where that
is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

CHROMIUM = Path(os.environ.get("PAYPOS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def require_browser() -> None:
    """Call at the top of a browser test module."""
    reason = None
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "playwright is not installed (pip install -e '.[dev]')"
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"browser tests: {reason} (CI=true: they must run)", pytrace=False)
    pytest.skip(f"browser tests: {reason}", allow_module_level=True)


PAGE_TIMEOUT_MS = 15_000


def new_page(browser: Any, *, width: int = 1280) -> Any:
    """A page in a fresh context (its own cookies) of ``width`` x 900, downloads accepted;
    close it with ``page.context.close()``."""
    context = browser.new_context(viewport={"width": width, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    opened.set_default_timeout(PAGE_TIMEOUT_MS)
    return opened


def shot(page: Any, folder: Path, step: str) -> None:
    """A full-page screenshot ``step``.png in the test's artifacts folder."""
    page.screenshot(path=str(folder / f"{step}.png"), full_page=True)
