"""The hosted checkout pages (entrypoints/checkout.py) on SQLite and PostgreSQL through
FastAPI's TestClient: the form and its element ids, security headers, a card payment with and
without the challenge, form errors that never echo card data, the status JSON, the result
pages, and the wallet QR whose payment pays the request in the same transaction."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.schema import issuer_notifications
from paypos.bootstrap import App
from paypos.networks.sandbox import wallet_catalog as wcat
from paypos.services import sandbox, wallet
from paypos.services.checkout import OUT_TRADE_NO_PREFIX
from tests.conftest import FakeClock
from tests.integration.online_api import CAFE_AUTH, TestClient, sandbox_client

IDS = ("pan", "expiry", "cvv2", "name", "pay-card", "status")


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with sandbox_client(app, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def card(app: App, client: TestClient) -> dict[str, Any]:
    with app.uow(write=False) as uow:
        return next(c for c in sandbox.list_cards(uow, app.vault) if c["id"] == "visa-cvn18-approve")


def new_request(client: TestClient, amount: int = 1_234, **terms: Any) -> str:
    body = {"amount": amount, "currency": "CNY", "order_id": f"o-{amount}-{sorted(terms)}",
            "description": "2 coffees <b>hot</b>"} | terms
    response = client.post("/v1/payment_requests", json=body, headers=CAFE_AUTH)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def form(card: dict[str, Any], **change: str) -> dict[str, str]:
    return {"pan": card["pan"], "expiry": f"{card['expiry'][2:]}/{card['expiry'][:2]}", "cvv2": card["cvv2"],
            "name": "Test Buyer"} | change


def latest_otp(app: App) -> str:
    with app.engine.connect() as connection:
        text = connection.execute(sa.select(issuer_notifications.c.text).where(
            issuer_notifications.c.reference.like("%:otp")).order_by(issuer_notifications.c.id.desc())).first()[0]
    return re.search(r"\] (\d{6}) is your code", text).group(1)  # type: ignore[union-attr]


def test_the_page_shows_merchant_amount_description_form_and_wallet_with_strict_headers(
        client: TestClient) -> None:
    request_id = new_request(client)
    page = client.get(f"/pay/{request_id}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "Harbour Café" in text and "CNY 12.34" in text
    assert "2 coffees &lt;b&gt;hot&lt;/b&gt;" in text and "<b>hot" not in text  # escaped
    for element_id in IDS + ("wallet-qr",):
        assert f'id="{element_id}"' in text
    assert 'autocomplete="cc-number"' in text and 'autocomplete="cc-csc"' in text
    assert 'name="viewport"' in text and "<svg" in text
    headers = page.headers
    assert headers["cache-control"] == "no-store" and headers["x-frame-options"] == "DENY"
    csp = headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)  # type: ignore[union-attr]
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert text.count("<script") == 1 and f'<script nonce="{nonce}">' in text
    assert "http" not in re.sub(r'xmlns="[^"]*"', "", text).replace("http-equiv", "")  # no CDN, nothing remote
    css = client.get("/pay-assets/checkout.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    again = client.get(f"/pay/{request_id}")  # a refresh shows the same wallet QR
    assert re.search(r"<svg.*</svg>", again.text, re.S).group(0) == re.search(  # type: ignore[union-attr]
        r"<svg.*</svg>", text, re.S).group(0)  # type: ignore[union-attr]


def test_an_unknown_request_is_a_404_page(client: TestClient) -> None:
    for path in ("/pay/pr_aaaaaaaaaaaaaaaaaaaaaaaa", "/pay/nonsense", "/pay/pr_aaaaaaaaaaaaaaaaaaaaaaaa/challenge"):
        response = client.get(path)
        assert response.status_code == 404 and "not found" in response.text.lower()
    assert client.get("/pay/pr_aaaaaaaaaaaaaaaaaaaaaaaa/status").status_code == 404


def test_a_card_pays_and_the_result_and_status_say_paid(client: TestClient, card: dict[str, Any]) -> None:
    request_id = new_request(client)
    posted = client.post(f"/pay/{request_id}/card", data=form(card, pan="4761 7390 0101 0010"))
    assert posted.status_code == 303 and posted.headers["location"] == f"/pay/{request_id}/result"
    result = client.get(posted.headers["location"])
    assert result.status_code == 200 and ">Paid<" in result.text and "476173******0010" in result.text
    assert client.get(f"/pay/{request_id}/status").json() == {
        "payment_request": request_id, "status": "paid", "payment_status": "succeeded", "failure_code": None,
        "tries_left": None, "paid": True}
    assert client.get(f"/pay/{request_id}").headers["location"] == f"/pay/{request_id}/result"
    again = client.post(f"/pay/{request_id}/card", data=form(card))  # a double submit
    assert again.status_code == 303
    assert len(client.get("/v1/payments", headers=CAFE_AUTH).json()["data"]) == 1


@pytest.mark.parametrize(("change", "field_text"), [
    ({"pan": "4761739001010011"}, "card number"),
    ({"expiry": "13/30"}, "expiry"),
    ({"cvv2": "12"}, "CVV2"),
    ({"name": ""}, "name"),
])
def test_a_bad_field_re_renders_the_form_without_the_card_data(
        client: TestClient, card: dict[str, Any], change: dict[str, str], field_text: str) -> None:
    request_id = new_request(client)
    page = client.post(f"/pay/{request_id}/card", data=form(card, **change))
    assert page.status_code == 422 and 'id="error"' in page.text and field_text in page.text
    assert card["pan"] not in page.text and f'value="{card["cvv2"]}"' not in page.text
    assert client.get("/v1/payments", headers=CAFE_AUTH).json()["data"] == []


def test_a_declined_card_shows_why_and_offers_a_retry(client: TestClient, card: dict[str, Any]) -> None:
    request_id = new_request(client)
    wrong = "000" if card["cvv2"] != "000" else "001"
    posted = client.post(f"/pay/{request_id}/card", data=form(card, cvv2=wrong))
    result = client.get(posted.headers["location"])
    assert "Payment failed" in result.text and "security code" in result.text and 'id="retry"' in result.text
    assert client.get(f"/pay/{request_id}/status").json()["failure_code"] == "incorrect_cvv2"
    assert client.get(f"/pay/{request_id}").status_code == 200  # the form again


def test_the_challenge_page_takes_the_code_and_counts_wrong_ones(
        client: TestClient, app: App, card: dict[str, Any]) -> None:
    request_id = new_request(client, limits.checkout_challenge_threshold_minor)
    posted = client.post(f"/pay/{request_id}/card", data=form(card))
    assert posted.headers["location"] == f"/pay/{request_id}/challenge"
    page = client.get(posted.headers["location"])
    assert 'id="otp"' in page.text and 'id="submit-otp"' in page.text and "3 tries left" in page.text
    assert client.get(f"/pay/{request_id}").headers["location"] == f"/pay/{request_id}/challenge"
    otp = latest_otp(app)
    wrong = client.post(f"/pay/{request_id}/challenge", data={"otp": f"{(int(otp) + 1) % 10**6:06d}"})
    assert wrong.status_code == 422 and "2 tries left" in wrong.text
    assert client.get(f"/pay/{request_id}/status").json()["tries_left"] == 2
    right = client.post(f"/pay/{request_id}/challenge", data={"otp": otp})
    assert right.headers["location"] == f"/pay/{request_id}/result"
    assert client.get(f"/pay/{request_id}/status").json()["paid"] is True


def test_three_wrong_codes_end_on_a_failed_page(client: TestClient, app: App, card: dict[str, Any]) -> None:
    request_id = new_request(client, limits.checkout_challenge_threshold_minor)
    client.post(f"/pay/{request_id}/card", data=form(card))
    for _ in range(limits.checkout_otp_tries_max):
        last = client.post(f"/pay/{request_id}/challenge", data={"otp": "x"})
    assert last.headers["location"] == f"/pay/{request_id}/result"
    result = client.get(last.headers["location"])
    assert "Too many wrong codes" in result.text
    assert client.get(f"/pay/{request_id}/status").json()["status"] == "requires_payment"


def test_canceled_and_expired_requests_show_their_state(client: TestClient, clock: FakeClock) -> None:
    canceled = new_request(client, 1_000)
    client.post(f"/v1/payment_requests/{canceled}/cancel", headers=CAFE_AUTH)
    assert "Payment request canceled" in client.get(f"/pay/{canceled}/result").text
    expired = new_request(client, 2_000)
    clock.advance(limits.payment_request_expiry_s_default)
    assert client.get(f"/pay/{expired}").headers["location"] == f"/pay/{expired}/result"
    assert "Payment request expired" in client.get(f"/pay/{expired}/result").text


def test_paying_the_wallet_qr_pays_the_request_in_the_same_transaction(
        client: TestClient, app: App, card: dict[str, Any]) -> None:
    request_id = new_request(client, 888)
    client.get(f"/pay/{request_id}")  # shows (and makes) the QR
    with app.uow() as uow:
        app_id = wcat.APPS[0].app_id
        trade = uow.wallet.trade_by_out_trade_no(app_id, OUT_TRADE_NO_PREFIX + request_id)
        assert trade is not None
        wallet.scan(uow, app.vault, app.clock(), trade.qr_code or "", wcat.USERS[0].user_id)
        uow.commit()
    status = client.get(f"/pay/{request_id}/status").json()
    assert status["paid"] is True and status["payment_status"] == "succeeded"
    (payment,) = client.get("/v1/payments", headers=CAFE_AUTH).json()["data"]
    assert (payment["method"], payment["wallet_trade_no"], payment["amount_captured"]) == ("wallet", trade.trade_no, 888)
    refund = client.post("/v1/refunds", json={"payment_request": request_id, "amount": 88}, headers=CAFE_AUTH)
    assert refund.status_code == 201, refund.text
    with app.uow(write=False) as uow:
        assert uow.wallet.get_trade(trade.trade_no).refunded_minor == 88  # type: ignore[union-attr]
    client.post(f"/pay/{request_id}/card", data=form(card))  # a card after the wallet paid: no charge
    assert len(client.get("/v1/payments", headers=CAFE_AUTH).json()["data"]) == 1
