"""Payment request expiry (services/online_payments.expire_due, run by `paypos serve`'s sweep)
on SQLite and PostgreSQL with a FakeClock: unpaid requests past ``expires_at`` are written
``expired`` and nothing else is; an attempt waiting for its one-time code on an expired request
fails (the code is refused afterwards); an open checkout page's status says expired."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.schema import payment_requests
from paypos.bootstrap import App
from paypos.entrypoints.api import create_app
from paypos.services import online_payments
from tests.conftest import FakeClock
from tests.integration.online_api import CAFE_AUTH, TestClient, sandbox_client
from tests.integration.test_checkout import form, latest_otp, new_request

DAY_S = limits.payment_request_expiry_s_default


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with sandbox_client(app, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def card(client: TestClient) -> dict[str, Any]:
    return next(c for c in client.get("/v1/sandbox/cards").json() if c["id"] == "visa-cvn18-approve")


def stored_status(app: App, request_id: str) -> str:
    with app.engine.connect() as connection:
        return str(connection.execute(sa.select(payment_requests.c.status).where(
            payment_requests.c.id == request_id)).scalar_one())


def test_the_sweep_writes_unpaid_requests_past_their_expiry_and_nothing_else(
        client: TestClient, app: App, clock: FakeClock, card: dict[str, Any]) -> None:
    due = new_request(client, 1_000)
    paid = new_request(client, 2_000)
    assert client.post(f"/pay/{paid}/card", data=form(card)).headers["location"].endswith("/result")
    later = new_request(client, 3_000, expires_at=(clock() + timedelta(seconds=2 * DAY_S)).isoformat())
    clock.advance(DAY_S)
    assert online_payments.expire_all_due(app.uow, clock) == 1
    assert [stored_status(app, r) for r in (due, paid, later)] == ["expired", "paid", "requires_payment"]
    assert online_payments.expire_all_due(app.uow, clock) == 0  # nothing left: the sweep is idempotent
    got = client.get(f"/v1/payment_requests/{due}", headers=CAFE_AUTH).json()
    assert got["status"] == "expired" and got["updated_at"] == clock().isoformat().replace("+00:00", "Z")


def test_the_sweep_works_in_batches_until_none_is_due(client: TestClient, app: App, clock: FakeClock) -> None:
    ids = [new_request(client, 100 + n) for n in range(5)]
    clock.advance(DAY_S)
    assert online_payments.expire_all_due(app.uow, clock, batch_max=2) == 5
    assert {stored_status(app, r) for r in ids} == {"expired"}


def test_an_attempt_waiting_for_its_code_fails_when_the_request_expires(
        client: TestClient, app: App, clock: FakeClock, card: dict[str, Any]) -> None:
    request_id = new_request(client, limits.checkout_challenge_threshold_minor,
                             expires_at=(clock().replace(microsecond=0) + timedelta(seconds=120)).isoformat())
    assert client.post(f"/pay/{request_id}/card", data=form(card)).headers["location"].endswith("/challenge")
    otp = latest_otp(app)
    clock.advance(120)  # the code (300 s) is still valid; the request is not
    assert online_payments.expire_all_due(app.uow, clock) == 1
    assert stored_status(app, request_id) == "expired"
    (attempt,) = client.get("/v1/payments", headers=CAFE_AUTH).json()["data"]
    assert (attempt["status"], attempt["failure_code"]) == ("failed", "request_expired")
    late = client.post(f"/pay/{request_id}/challenge", data={"otp": otp})
    assert late.headers["location"] == f"/pay/{request_id}/result"
    assert client.get(f"/pay/{request_id}/status").json()["status"] == "expired"


def test_the_right_code_after_the_expiry_fails_even_before_the_sweep(
        client: TestClient, app: App, clock: FakeClock, card: dict[str, Any]) -> None:
    request_id = new_request(client, limits.checkout_challenge_threshold_minor,
                             expires_at=(clock().replace(microsecond=0) + timedelta(seconds=60)).isoformat())
    client.post(f"/pay/{request_id}/card", data=form(card))
    clock.advance(60)
    client.post(f"/pay/{request_id}/challenge", data={"otp": latest_otp(app)})
    status = client.get(f"/pay/{request_id}/status").json()
    assert (status["status"], status["payment_status"], status["failure_code"]) == (
        "expired", "failed", "request_expired")
    assert "Payment request expired" in client.get(f"/pay/{request_id}/result").text


def test_an_open_checkout_page_polls_into_expired(client: TestClient, clock: FakeClock) -> None:
    request_id = new_request(client, 1_500)
    page = client.get(f"/pay/{request_id}")
    assert 's.status === "expired"' in page.text  # the page's poll leaves for the result page
    clock.advance(DAY_S)
    assert client.get(f"/pay/{request_id}/status").json()["status"] == "expired"
    assert "Payment request expired" in client.get(f"/pay/{request_id}/result").text


def test_serve_runs_the_sweep_in_the_background(app: App, clock: FakeClock) -> None:
    with sandbox_client(app) as client:
        request_id = new_request(client, 1_700)
    clock.advance(DAY_S)
    with TestClient(create_app(app, expiry_sweep_interval_s=0.05, notify_interval_s=None, webhook_interval_s=None)):
        deadline = time.monotonic() + 10
        while stored_status(app, request_id) != "expired" and time.monotonic() < deadline:
            time.sleep(0.05)
    assert stored_status(app, request_id) == "expired"
