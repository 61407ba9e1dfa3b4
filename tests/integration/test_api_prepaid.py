"""The prepaid REST routes (entrypoints/api_prepaid.py) on SQLite and PostgreSQL: a merchant's
API key manages its own program's cards only; Idempotency-Key makes every write replayable;
refusals are RFC 9457 problems (404 unknown, 409 state, 422 input, 402 payment refused)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from paypos.bootstrap import App, init_database
from paypos.domain.pricing import fee_minor
from paypos.entrypoints.api import PROBLEM_BASE, create_app
from paypos.entrypoints.api_prepaid import install_prepaid_routes
from paypos.networks.sandbox import catalog
from paypos.protocol.card import luhn_valid
from paypos.services import ledger as ledger_service

CAFE = catalog.CAFE.merchant_id
CAFE_AUTH = {"Authorization": f"Bearer {catalog.merchant_api_key(CAFE)[1]}"}
SHOP_AUTH = {"Authorization": f"Bearer {catalog.merchant_api_key(catalog.SHOP.merchant_id)[1]}"}


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    init_database(app, sandbox=True)
    api = create_app(app, expiry_sweep_interval_s=None)
    install_prepaid_routes(api)
    with TestClient(api) as test_client:
        yield test_client


def issue(client: TestClient, key: str = "issue-1", **body: Any) -> dict[str, Any]:
    response = client.post("/v1/prepaid_cards", json={"kind": "reloadable", "initial_load_minor": 10_000,
                                                      "pin": "1234", **body},
                           headers={**CAFE_AUTH, "Idempotency-Key": key})
    assert response.status_code == 201, response.json()
    return response.json()


def problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == PROBLEM_BASE + slug, body
    return body


def test_issue_answers_the_pan_once_and_get_shows_only_the_masked_pan(app: App, client: TestClient) -> None:
    card = issue(client)
    assert luhn_valid(card["pan"]) and card["pan"].startswith("6299990") and card["balance_minor"] == 10_000
    assert issue(client) == card  # the same Idempotency-Key: the same answer, one card
    shown = client.get(f"/v1/prepaid_cards/{card['card_id']}", headers=CAFE_AUTH)
    assert shown.status_code == 200
    body = shown.json()
    assert "pan" not in body and "cvv2" not in body and body["masked_pan"] == card["masked_pan"]
    assert (body["status"], body["balance_minor"], body["expired"]) == ("active", 10_000, False)
    assert ledger_service.check(app.engine, app.clock) == []


def test_another_merchant_gets_404_for_every_route_of_a_card_not_its_own(client: TestClient) -> None:
    card_id = issue(client)["card_id"]
    amount = {"amount_minor": 100, "currency": "CNY"}
    for method, path, body in [
        ("GET", "", None), ("POST", "/freeze", None), ("POST", "/unfreeze", None),
        ("POST", "/top_ups", {**amount, "source": "cash"}), ("POST", "/payments", amount), ("POST", "/refunds", amount),
    ]:
        theirs = client.request(method, f"/v1/prepaid_cards/{card_id}{path}", json=body, headers=SHOP_AUTH)
        missing = client.request(method, f"/v1/prepaid_cards/prepaid-nope{path}", json=body, headers=CAFE_AUTH)
        assert problem(theirs, 404, "not-found")["detail"].replace(card_id, "X") == \
            problem(missing, 404, "not-found")["detail"].replace("prepaid-nope", "X")
    assert client.get("/v1/prepaid/float", headers=SHOP_AUTH).json()["data"] == []


def test_requests_without_a_key_are_401(client: TestClient) -> None:
    assert client.post("/v1/prepaid_cards", json={}).status_code == 401
    assert client.get("/v1/prepaid/float").status_code == 401


def test_a_top_up_is_idempotent_by_key_and_a_gift_card_top_up_is_409(app: App, client: TestClient) -> None:
    card_id = issue(client)["card_id"]
    headers = {**CAFE_AUTH, "Idempotency-Key": "topup-1"}
    body = {"amount_minor": 2_500, "currency": "CNY", "source": "cash"}
    first = client.post(f"/v1/prepaid_cards/{card_id}/top_ups", json=body, headers=headers)
    again = client.post(f"/v1/prepaid_cards/{card_id}/top_ups", json=body, headers=headers)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert first.json()["balance_minor"] == 12_500
    other = client.post(f"/v1/prepaid_cards/{card_id}/top_ups", json={**body, "amount_minor": 1}, headers=headers)
    problem(other, 409, "idempotency-mismatch")
    gift_id = issue(client, "gift", kind="gift")["card_id"]
    problem(client.post(f"/v1/prepaid_cards/{gift_id}/top_ups", json=body, headers=CAFE_AUTH), 409,
            "gift-card-not-reloadable")
    assert ledger_service.check(app.engine, app.clock) == []


@pytest.mark.parametrize(("body", "slug"), [
    ({"amount_minor": 0, "currency": "CNY", "source": "cash"}, "validation-error"),
    ({"amount_minor": 1.5, "currency": "CNY", "source": "cash"}, "validation-error"),
    ({"amount_minor": "100", "currency": "CNY", "source": "cash"}, "validation-error"),
    ({"amount_minor": 100, "currency": "USD", "source": "cash"}, "currency-mismatch"),
    ({"amount_minor": 100, "currency": "CNY", "source": "card"}, "validation-error"),
    ({"amount_minor": 100, "currency": "CNY", "source": "wallet"}, "invalid-source"),
    ({"amount_minor": 100, "currency": "CNY", "source": "wallet", "wallet_user_id": "nobody"}, "wallet-not-found"),
])
def test_bad_top_up_bodies_are_422(client: TestClient, body: dict[str, Any], slug: str) -> None:
    card_id = issue(client)["card_id"]
    problem(client.post(f"/v1/prepaid_cards/{card_id}/top_ups", json=body, headers=CAFE_AUTH), 422, slug)


def test_a_frozen_card_refuses_top_ups_and_payments_with_409_until_unfrozen(client: TestClient) -> None:
    card_id = issue(client)["card_id"]
    assert client.post(f"/v1/prepaid_cards/{card_id}/freeze", headers=CAFE_AUTH).json()["status"] == "frozen"
    amount = {"amount_minor": 100, "currency": "CNY"}
    problem(client.post(f"/v1/prepaid_cards/{card_id}/top_ups", json={**amount, "source": "cash"},
                        headers=CAFE_AUTH), 409, "card-frozen")
    problem(client.post(f"/v1/prepaid_cards/{card_id}/payments", json=amount, headers=CAFE_AUTH), 409, "card-frozen")
    assert client.post(f"/v1/prepaid_cards/{card_id}/unfreeze", headers=CAFE_AUTH).json()["status"] == "active"
    assert client.post(f"/v1/prepaid_cards/{card_id}/payments", json=amount, headers=CAFE_AUTH).status_code == 201


def test_pay_online_and_refund_move_money_and_the_float_shows_it(app: App, client: TestClient) -> None:
    card = issue(client)
    card_id = card["card_id"]
    paid = client.post(f"/v1/prepaid_cards/{card_id}/payments",
                       json={"amount_minor": 4_000, "currency": "CNY", "cvv2": card["cvv2"]},
                       headers={**CAFE_AUTH, "Idempotency-Key": "order-7"})
    assert paid.status_code == 201, paid.json()
    assert (paid.json()["balance_minor"], paid.json()["fee_minor"]) == (6_000, fee_minor(4_000))
    problem(client.post(f"/v1/prepaid_cards/{card_id}/payments", json={"amount_minor": 6_001, "currency": "CNY"},
                        headers=CAFE_AUTH), 402, "insufficient-funds")
    wrong = "000" if card["cvv2"] != "000" else "001"
    problem(client.post(f"/v1/prepaid_cards/{card_id}/payments",
                        json={"amount_minor": 1, "currency": "CNY", "cvv2": wrong}, headers=CAFE_AUTH),
            402, "invalid-cvv2")
    refunded = client.post(f"/v1/prepaid_cards/{card_id}/refunds", json={"amount_minor": 1_000, "currency": "CNY"},
                           headers={**CAFE_AUTH, "Idempotency-Key": "order-7-refund"})
    assert refunded.status_code == 201 and refunded.json()["balance_minor"] == 7_000
    (row,) = client.get("/v1/prepaid/float", headers=CAFE_AUTH).json()["data"]
    assert (row["unspent_minor"], row["float_minor"], row["redeemed_minor"], row["agrees"]) == \
        (7_000, 10_000, 3_000, True)
    assert ledger_service.check(app.engine, app.clock) == []


@pytest.mark.parametrize(("body", "status", "slug"), [
    ({"kind": "gift", "initial_load_minor": 0}, 422, "invalid-amount"),
    ({"pin": "12"}, 422, "invalid-pin"),
    ({"expiry": "2013"}, 422, "invalid-expiry"),
    ({"kind": "debit"}, 422, "validation-error"),
    ({"interfaces": ["nfc"]}, 422, "validation-error"),
    ({"initial_load_minor": 10**12}, 409, "balance-limit"),
])
def test_bad_issue_bodies_are_refused(client: TestClient, body: dict[str, Any], status: int, slug: str) -> None:
    response = client.post("/v1/prepaid_cards", json={"kind": "reloadable", "initial_load_minor": 100, "pin": "1234",
                                                      **body}, headers=CAFE_AUTH)
    problem(response, status, slug)
