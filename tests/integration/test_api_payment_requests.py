"""REST API v1 payment requests (entrypoints/api_online.py) on SQLite and PostgreSQL: create,
get, list, cancel; RFC 9457 problems naming the field or the state; a merchant's key sees only
its own requests; Idempotency-Key replays, refuses another body, answers 409 while in
progress, and concurrent duplicates make exactly one payment request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import Response

from paypos import limits
from paypos.adapters.db.online import IdempotencyRecord, SqlOnlineStore
from paypos.adapters.db.schema import idempotency_keys, payment_requests
from paypos.bootstrap import App
from paypos.entrypoints.api import PROBLEM_BASE
from paypos.entrypoints.api_online import CreatePaymentRequest, install_online_routes
from paypos.services import idempotency
from tests.conftest import FakeClock
from tests.integration.online_api import CAFE, CAFE_AUTH, SHOP_AUTH, TestClient, sandbox_client

PATH = "/v1/payment_requests"
BODY: dict[str, Any] = {"amount": 1234, "currency": "CNY", "order_id": "order-1", "description": "2 coffees",
                        "metadata": {"table": "7"}}


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with sandbox_client(app) as test_client:
        yield test_client


def create(client: TestClient, key: str | None = None, auth: dict[str, str] = CAFE_AUTH, **change: Any) -> Response:
    headers = {**auth, **({"Idempotency-Key": key} if key is not None else {})}
    return client.post(PATH, json=BODY | change, headers=headers)


def created(client: TestClient, **change: Any) -> dict[str, Any]:
    response = create(client, **change)
    assert response.status_code == 201, response.json()
    return response.json()


def problem(response: Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == PROBLEM_BASE + slug and body["status"] == status
    assert body["title"] and body["detail"]
    return body


def rows(app: App) -> int:
    with app.engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(payment_requests)).scalar_one()


# --- create and get ------------------------------------------------------------------------

def test_create_answers_201_with_id_status_amount_currency_and_checkout_url(client: TestClient) -> None:
    body = created(client, currency="cny", capture="manual", escrow=True)
    assert body["id"].startswith("pr_") and len(body["id"]) == 27
    assert (body["status"], body["amount"], body["currency"]) == ("requires_payment", 1234, "CNY")
    assert (body["capture"], body["escrow"], body["metadata"]) == ("manual", True, {"table": "7"})
    assert body["checkout_url"] == f"http://testserver/pay/{body['id']}"
    assert (body["created_at"], body["expires_at"]) == ("2026-11-22T09:00:00Z", "2026-11-23T09:00:00Z")
    shown = client.get(f"{PATH}/{body['id']}", headers=CAFE_AUTH)
    assert shown.status_code == 200 and shown.json() == body


def test_get_of_an_unknown_id_is_404(client: TestClient) -> None:
    problem(client.get(f"{PATH}/pr_aaaaaaaaaaaaaaaaaaaaaaaa", headers=CAFE_AUTH), 404, "not-found")


@pytest.mark.parametrize(("change", "field"), [
    ({"amount": 12.34}, "amount"),
    ({"amount": "1234"}, "amount"),
    ({"amount": -1}, "amount"),
    ({"amount": 0}, "amount"),
    ({"amount": limits.payment_request_amount_minor_max + 1}, "amount"),
    ({"currency": "XYZ"}, "currency"),
    ({"currency": "CN"}, "currency"),
    ({"order_id": ""}, "order_id"),
    ({"order_id": "with space"}, "order_id"),
    ({"capture": "later"}, "capture"),
    ({"escrow": "yes"}, "escrow"),
    ({"expires_at": "2026-11-22T08:00:00Z"}, "expires_at"),
    ({"expires_at": "2027-01-01T00:00:00Z"}, "expires_at"),
    ({"expires_at": "2026-11-23T09:00:00"}, "expires_at"),
    ({"metadata": {"note": "x" * 501}}, "metadata.note"),
    ({"tip": 5}, "tip"),
])
def test_a_bad_field_is_a_422_naming_it(client: TestClient, app: App, change: dict[str, Any], field: str) -> None:
    body = problem(create(client, **change), 422, "validation-error")
    assert body["field"] == field
    assert rows(app) == 0


def test_a_missing_order_id_is_a_422_naming_it(client: TestClient) -> None:
    body = {k: v for k, v in BODY.items() if k != "order_id"}
    assert problem(client.post(PATH, json=body, headers=CAFE_AUTH), 422, "validation-error")["field"] == "order_id"


def test_without_an_api_key_every_endpoint_is_401(client: TestClient) -> None:
    pr_id = created(client)["id"]
    for response in (client.post(PATH, json=BODY), client.get(PATH), client.get(f"{PATH}/{pr_id}"),
                     client.post(f"{PATH}/{pr_id}/cancel"),
                     client.get(PATH, headers={"Authorization": "Bearer sk_test_unknown"})):
        problem(response, 401, "unauthorized")


# --- one order, one request --------------------------------------------------------------------

def test_the_same_order_id_and_terms_without_a_key_answers_the_first_request(
        client: TestClient, app: App, clock: FakeClock) -> None:
    first = created(client)
    clock.advance(60)  # a buyer refreshing the page a minute later
    again = create(client)
    assert again.status_code == 200 and again.json() == first
    assert rows(app) == 1


def test_the_same_order_id_with_other_terms_is_a_409_naming_order_id(client: TestClient, app: App) -> None:
    first = created(client)
    body = problem(create(client, amount=999), 409, "order-id-conflict")
    assert body["field"] == "order_id" and body["payment_request"] == first["id"]
    assert rows(app) == 1


def test_order_ids_are_unique_per_merchant_not_globally(client: TestClient) -> None:
    cafe = created(client)
    shop = create(client, auth=SHOP_AUTH)
    assert shop.status_code == 201 and shop.json()["id"] != cafe["id"]


# --- cancel --------------------------------------------------------------------------------------

def test_cancel_moves_an_unpaid_request_to_canceled_and_twice_is_a_409_naming_the_state(
        client: TestClient) -> None:
    pr_id = created(client)["id"]
    first = client.post(f"{PATH}/{pr_id}/cancel", headers=CAFE_AUTH)
    assert first.status_code == 200 and first.json()["status"] == "canceled"
    body = problem(client.post(f"{PATH}/{pr_id}/cancel", headers=CAFE_AUTH), 409, "invalid-state")
    assert body["current_state"] == "canceled" and "canceled" in body["detail"]


def test_an_unpaid_request_past_its_expiry_reads_expired_and_cannot_be_canceled(
        client: TestClient, app: App, clock: FakeClock) -> None:
    pr_id = created(client)["id"]
    clock.advance(limits.payment_request_expiry_s_default)
    assert client.get(f"{PATH}/{pr_id}", headers=CAFE_AUTH).json()["status"] == "expired"
    listed = client.get(PATH, params={"status": "expired"}, headers=CAFE_AUTH).json()["data"]
    assert [r["id"] for r in listed] == [pr_id]
    assert client.get(PATH, params={"status": "requires_payment"}, headers=CAFE_AUTH).json()["data"] == []
    body = problem(client.post(f"{PATH}/{pr_id}/cancel", headers=CAFE_AUTH), 409, "invalid-state")
    assert body["current_state"] == "expired"


def test_cancel_of_an_unknown_id_is_404(client: TestClient) -> None:
    problem(client.post(f"{PATH}/pr_aaaaaaaaaaaaaaaaaaaaaaaa/cancel", headers=CAFE_AUTH), 404, "not-found")


# --- list: cursor pagination and filters ------------------------------------------------------------

def test_list_walks_every_request_newest_first_by_cursor(client: TestClient, app: App, clock: FakeClock) -> None:
    made = []
    for n in range(5):
        made.append(created(client, order_id=f"order-{n}")["id"])
        if n % 2:
            clock.advance(1)  # pairs share a created_at
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get(PATH, params=params, headers=CAFE_AUTH).json()
        assert page["object"] == "list" and len(page["data"]) <= 2
        seen += [(r["created_at"], r["id"]) for r in page["data"]]
        cursor = page["next_cursor"]
        assert page["has_more"] == (cursor is not None)
        if cursor is None:
            break
    assert sorted(i for _, i in seen) == sorted(made)
    assert seen == sorted(seen, reverse=True)


def test_list_filters_by_status_and_creation_time(client: TestClient, app: App, clock: FakeClock) -> None:
    early = created(client, order_id="early")["id"]
    clock.advance(3600)
    late = created(client, order_id="late")["id"]
    client.post(f"{PATH}/{early}/cancel", headers=CAFE_AUTH)

    def ids(**params: Any) -> list[str]:
        response = client.get(PATH, params=params, headers=CAFE_AUTH)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["data"]]

    assert ids(status="canceled") == [early]
    assert ids(**{"created[gte]": "2026-11-22T09:30:00Z"}) == [late]
    assert ids(**{"created[lte]": "2026-11-22T09:30:00Z"}) == [early]
    assert ids() == [late, early]


@pytest.mark.parametrize(("params", "field"), [
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"cursor": "WyJ4IiwieSJd"}, "cursor"),  # base64 of ["x","y"]
    ({"limit": 0}, "limit"),
    ({"limit": limits.payment_request_page_size_max + 1}, "limit"),
    ({"limit": 2.5}, "limit"),
    ({"status": "lost"}, "status"),
    ({"created[gte]": "yesterday"}, "created[gte]"),
])
def test_bad_list_parameters_are_a_422_naming_them(client: TestClient, params: dict[str, Any], field: str) -> None:
    assert problem(client.get(PATH, params=params, headers=CAFE_AUTH), 422, "validation-error")["field"] == field


# --- another merchant's requests are 404 everywhere ----------------------------------------------------

def test_another_merchants_key_gets_404_for_every_endpoint(client: TestClient, app: App) -> None:
    pr_id = created(client)["id"]
    problem(client.get(f"{PATH}/{pr_id}", headers=SHOP_AUTH), 404, "not-found")
    problem(client.post(f"{PATH}/{pr_id}/cancel", headers=SHOP_AUTH), 404, "not-found")
    problem(client.post(f"{PATH}/{pr_id}/cancel", headers={**SHOP_AUTH, "Idempotency-Key": "k"}), 404, "not-found")
    assert client.get(PATH, headers=SHOP_AUTH).json()["data"] == []
    # ... and the owner still sees it untouched.
    assert client.get(f"{PATH}/{pr_id}", headers=CAFE_AUTH).json()["status"] == "requires_payment"


def test_idempotency_keys_are_scoped_per_merchant(client: TestClient) -> None:
    cafe = create(client, key="same-key")
    shop = create(client, key="same-key", auth=SHOP_AUTH)
    assert cafe.status_code == shop.status_code == 201
    assert "idempotent-replayed" not in shop.headers and shop.json()["id"] != cafe.json()["id"]


# --- Idempotency-Key -------------------------------------------------------------------------------------

def test_the_same_key_and_body_replays_the_first_status_and_body(
        client: TestClient, app: App, clock: FakeClock) -> None:
    first = create(client, key="key-1")
    clock.advance(limits.idempotency_key_ttl_s - 1)
    again = create(client, key="key-1")
    assert (again.status_code, again.content) == (first.status_code, first.content) == (201, first.content)
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert rows(app) == 1


def test_a_replay_ignores_key_order_and_whitespace_of_the_body(client: TestClient) -> None:
    first = create(client, key="key-1")
    reordered = '{"order_id":"order-1", "metadata":{"table":"7"}, "description":"2 coffees", ' \
                '"currency":"CNY","amount":1234}'
    again = client.post(PATH, content=reordered,
                        headers={**CAFE_AUTH, "Idempotency-Key": "key-1", "Content-Type": "application/json"})
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"


def test_the_same_key_with_another_body_is_a_422(client: TestClient, app: App) -> None:
    create(client, key="key-1")
    body = problem(create(client, key="key-1", amount=999), 422, "idempotency-key-reused")
    assert body["field"] == "Idempotency-Key"
    problem(client.post(f"{PATH}/x/cancel", headers={**CAFE_AUTH, "Idempotency-Key": "key-1"}),
            422, "idempotency-key-reused")
    assert rows(app) == 1


def test_a_key_whose_first_request_is_still_running_is_a_409_until_it_is_abandoned(
        client: TestClient, app: App, clock: FakeClock) -> None:
    body = CreatePaymentRequest(**BODY).model_dump(mode="json")
    now = app.clock()
    with app.uow() as uow:
        SqlOnlineStore(uow.connection).add_idempotency_key(IdempotencyRecord(
            merchant_id=CAFE, key="key-1", request_method="POST", request_path=PATH,
            request_hash=idempotency.request_hash("POST", PATH, body), state="in_progress",
            response_status=None, response_body=None, created_at=now, expires_at=now + timedelta(days=1)))
        uow.commit()
    assert problem(create(client, key="key-1"), 409, "idempotency-in-progress")["field"] == "Idempotency-Key"
    assert rows(app) == 0
    clock.advance(limits.idempotency_in_progress_timeout_s)
    assert create(client, key="key-1").status_code == 201  # its worker died: the key is taken over
    assert rows(app) == 1


def test_a_key_past_its_ttl_is_new_again(client: TestClient, app: App, clock: FakeClock) -> None:
    create(client, key="key-1")
    clock.advance(limits.idempotency_key_ttl_s)
    again = create(client, key="key-1", order_id="order-2")
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert rows(app) == 2


def test_a_refused_request_is_replayed_but_an_invalid_one_frees_its_key(client: TestClient, app: App) -> None:
    pr_id = created(client)["id"]
    client.post(f"{PATH}/{pr_id}/cancel", headers=CAFE_AUTH)
    refused = client.post(f"{PATH}/{pr_id}/cancel", headers={**CAFE_AUTH, "Idempotency-Key": "cancel-1"})
    problem(refused, 409, "invalid-state")
    replayed = client.post(f"{PATH}/{pr_id}/cancel", headers={**CAFE_AUTH, "Idempotency-Key": "cancel-1"})
    assert (replayed.status_code, replayed.content) == (409, refused.content)
    assert replayed.headers["content-type"] == "application/problem+json"
    problem(create(client, key="key-2", currency="XYZ", order_id="o-2"), 422, "validation-error")
    assert create(client, key="key-2", order_id="o-2").status_code == 201


@pytest.mark.parametrize("key", ["", "k" * (limits.idempotency_key_chars_max + 1)])
def test_an_idempotency_key_of_bad_length_is_a_422(client: TestClient, key: str) -> None:
    assert problem(create(client, key=key), 422, "validation-error")["field"] == "Idempotency-Key"


def test_concurrent_duplicates_make_exactly_one_payment_request(client: TestClient, app: App) -> None:
    threads_n = 8
    barrier = threading.Barrier(threads_n)
    answers: list[Response] = []
    lock = threading.Lock()

    def post() -> None:
        barrier.wait()
        response = create(client, key="burst")
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=post) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == threads_n
    assert rows(app) == 1
    successes = [a for a in answers if a.status_code == 201]
    assert successes and len({a.content for a in successes}) == 1
    assert sum("idempotent-replayed" not in a.headers for a in successes) == 1
    for other in (a for a in answers if a.status_code != 201):
        problem(other, 409, "idempotency-in-progress")
    with app.engine.connect() as connection:
        state = connection.execute(sa.select(idempotency_keys.c.state)).scalar_one()
    assert state == "done"


def test_concurrent_same_order_without_keys_makes_exactly_one_payment_request(client: TestClient, app: App) -> None:
    threads_n = 8
    barrier = threading.Barrier(threads_n)
    codes: list[int] = []

    def post() -> None:
        barrier.wait()
        codes.append(create(client).status_code)

    threads = [threading.Thread(target=post) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(codes) == [200] * (threads_n - 1) + [201]
    assert rows(app) == 1


# --- OpenAPI -------------------------------------------------------------------------------------------------

def test_openapi_documents_the_payment_request_routes_and_their_models() -> None:
    api = FastAPI()
    install_online_routes(api)
    spec = api.openapi()
    assert spec["openapi"].startswith("3.1")
    create_op = spec["paths"][PATH]["post"]
    assert {p["name"] for p in create_op["parameters"]} == {"Idempotency-Key"}
    schema = spec["components"]["schemas"]["CreatePaymentRequest"]
    assert schema["properties"]["amount"]["type"] == "integer"
    assert set(schema["required"]) == {"amount", "currency", "order_id"}
    assert {"get", "post"} <= set(spec["paths"][PATH]) and "post" in spec["paths"][f"{PATH}/{{request_id}}/cancel"]
