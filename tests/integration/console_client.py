"""Shared by the console tests: sign in as a sandbox console user on a TestClient of its own
(its own cookie jar), and read the session's CSRF token from a page."""

from __future__ import annotations

import re
from typing import Any

from paypos.networks.sandbox.console_catalog import CONSOLE_USERS, SandboxConsoleUser
from tests.integration.online_api import TestClient

_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def user(role: str, merchant_id: str | None = None) -> SandboxConsoleUser:
    return next(u for u in CONSOLE_USERS if u.role == role and (merchant_id is None or u.merchant_id == merchant_id))


def login_post(client: TestClient, email: str, password: str) -> Any:
    client.get("/console/login")
    return client.post("/console/login", follow_redirects=False, data={
        "email": email, "password": password, "login_token": client.cookies.get("paypos_console_login") or ""})


def signed_in(api: Any, who: SandboxConsoleUser, password: str | None = None) -> TestClient:
    client = TestClient(api, follow_redirects=False)
    response = login_post(client, who.email, password or who.password)
    assert response.status_code == 303, response.text
    return client


def csrf(client: TestClient, path: str = "/console/account/security") -> str:
    page = client.get(path)
    found = _CSRF.search(page.text)
    assert found, page.text[:500]
    return found.group(1)
