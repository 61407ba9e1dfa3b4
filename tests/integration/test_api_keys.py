"""Secret API keys over REST (entrypoints/api_keys.py) on SQLite and PostgreSQL: a new key is
shown once and stored hashed, works at once, lists without secrets, and once revoked is a 401
from the next request on; a merchant keeps one active key (409); another merchant's key is a
404, like one that does not exist."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from httpx import Response

from paypos import limits
from paypos.adapters.db.schema import merchant_api_keys
from paypos.adapters.vault import hash_api_secret
from paypos.bootstrap import App
from paypos.entrypoints.api import PROBLEM_BASE
from paypos.networks.sandbox import catalog
from tests.conftest import FakeClock
from tests.integration.online_api import CAFE, CAFE_AUTH, SHOP_AUTH, TestClient, sandbox_client

PATH = "/v1/api_keys"
CAFE_KEY_ID = catalog.merchant_api_key(CAFE)[0]


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with sandbox_client(app) as test_client:
        yield test_client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def new_key(client: TestClient, auth: dict[str, str] = CAFE_AUTH, label: str = "shop-2") -> dict[str, Any]:
    response = client.post(PATH, json={"label": label}, headers=auth)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


def problem(response: Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == PROBLEM_BASE + slug and body["detail"]
    return body


def test_a_new_key_is_shown_once_stored_hashed_and_works_at_once(client: TestClient, app: App) -> None:
    created = new_key(client)
    assert created["secret"].startswith("sk_test_") and len(created["secret"]) == 48
    assert created["status"] == "active" and created["label"] == "shop-2" and created["prefix"] == "sk_test_"
    with app.engine.connect() as connection:
        stored = connection.execute(sa.select(merchant_api_keys).where(
            merchant_api_keys.c.key_id == created["id"])).one()
    assert stored.secret_hash == hash_api_secret(created["secret"]) and created["secret"] not in stored
    assert client.get("/v1/payment_requests", headers=bearer(created["secret"])).status_code == 200


def test_the_listing_shows_ids_and_status_newest_first_and_never_a_secret(client: TestClient,
                                                                          clock: FakeClock) -> None:
    clock.advance(1)
    created = new_key(client)
    listing = client.get(PATH, headers=CAFE_AUTH).json()
    assert [k["id"] for k in listing["data"]] == [created["id"], CAFE_KEY_ID] and listing["has_more"] is False
    assert all("secret" not in k and k["status"] == "active" for k in listing["data"])
    assert created["secret"] not in client.get(PATH, headers=CAFE_AUTH).text


def test_rotation_revokes_the_old_key_which_is_a_401_from_the_next_request_on(client: TestClient) -> None:
    fresh = new_key(client)
    revoked = client.post(f"{PATH}/{CAFE_KEY_ID}/revoke", headers=bearer(fresh["secret"]))
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked" and revoked.json()["revoked_at"]
    problem(client.get(PATH, headers=CAFE_AUTH), 401, "unauthorized")
    again = client.post(f"{PATH}/{CAFE_KEY_ID}/revoke", headers=bearer(fresh["secret"]))
    assert again.status_code == 200 and again.json() == revoked.json()  # revoking twice changes nothing
    assert client.get(PATH, headers=bearer(fresh["secret"])).status_code == 200


def test_the_last_active_key_cannot_be_revoked(client: TestClient) -> None:
    body = problem(client.post(f"{PATH}/{CAFE_KEY_ID}/revoke", headers=CAFE_AUTH), 409, "last-active-key")
    assert body["field"] == "key_id" and CAFE_KEY_ID in body["detail"]
    assert client.get(PATH, headers=CAFE_AUTH).status_code == 200


def test_another_merchants_key_is_a_404_like_an_unknown_one(client: TestClient) -> None:
    shop_key = new_key(client, auth=SHOP_AUTH)
    problem(client.post(f"{PATH}/{shop_key['id']}/revoke", headers=CAFE_AUTH), 404, "not-found")
    problem(client.post(f"{PATH}/key_test_0000000000000000/revoke", headers=CAFE_AUTH), 404, "not-found")
    assert shop_key["id"] not in client.get(PATH, headers=CAFE_AUTH).text
    assert client.get(PATH, headers=bearer(shop_key["secret"])).status_code == 200


def test_a_merchant_holds_a_bounded_number_of_active_keys(client: TestClient) -> None:
    for n in range(limits.api_keys_active_per_merchant_max - 1):  # the sandbox key is the first
        new_key(client, label=f"k{n}")
    problem(client.post(PATH, json={}, headers=CAFE_AUTH), 409, "too-many-keys")


@pytest.mark.parametrize(("body", "field"), [({"label": "x" * (limits.api_key_label_chars_max + 1)}, "label"),
                                             ({"secret": "sk_test_mine"}, "secret")])
def test_a_bad_create_body_is_a_422_naming_the_field(client: TestClient, body: dict[str, Any], field: str) -> None:
    assert problem(client.post(PATH, json=body, headers=CAFE_AUTH), 422, "validation-error")["field"] == field


def test_without_a_key_every_route_is_a_401(client: TestClient) -> None:
    problem(client.get(PATH), 401, "unauthorized")
    problem(client.post(PATH, json={}), 401, "unauthorized")
    problem(client.post(f"{PATH}/{CAFE_KEY_ID}/revoke"), 401, "unauthorized")
