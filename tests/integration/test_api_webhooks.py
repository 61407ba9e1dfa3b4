"""REST API v1 webhooks and events (entrypoints/api_webhooks.py) on SQLite and PostgreSQL:
endpoints CRUD with the secret shown once, URL and event-type validation as RFC 9457 problems
naming the field, events by cursor and type, deliveries with their attempts, redelivery,
rotation, Idempotency-Key on every POST, and another merchant's ids answered 404 on every
route."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from httpx import Response

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from paypos import limits
from paypos.adapters.db.schema import webhook_endpoints
from paypos.bootstrap import App, init_database
from paypos.domain.webhook import RetrySchedule
from paypos.entrypoints.api import PROBLEM_BASE, create_app
from paypos.networks.sandbox import catalog
from paypos.services import events
from paypos.services import webhooks as service
from tests.conftest import FakeClock

CAFE = catalog.CAFE.merchant_id
CAFE_AUTH = {"Authorization": f"Bearer {catalog.merchant_api_key(CAFE)[1]}"}
SHOP_AUTH = {"Authorization": f"Bearer {catalog.merchant_api_key(catalog.SHOP.merchant_id)[1]}"}
ENDPOINTS = "/v1/webhook_endpoints"
BODY: dict[str, Any] = {"url": "https://merchant.example/hooks", "enabled_events": ["*"]}


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    init_database(app, sandbox=True)
    api = create_app(app, expiry_sweep_interval_s=None, notify_interval_s=None, webhook_interval_s=None)
    with TestClient(api) as test_client:
        yield test_client


def created(client: TestClient, auth: dict[str, str] = CAFE_AUTH, **change: Any) -> dict[str, Any]:
    response = client.post(ENDPOINTS, json=BODY | change, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def emit(app: App, event_type: str = "payment_request.paid", n: int = 1) -> list[str]:
    with app.uow() as uow:
        ids = [events.emit(uow, CAFE, event_type, {"id": f"pr_{i}"}, app.clock()) for i in range(n)]
        uow.commit()
    return ids


def problem(response: Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == PROBLEM_BASE + slug and body["status"] == status and body["title"] and body["detail"]
    return body


# --- endpoints -----------------------------------------------------------------------------

def test_an_endpoint_is_created_read_rotated_listed_and_deleted_its_secret_shown_once(client: TestClient) -> None:
    made = created(client, enabled_events=["payout.paid", "payment.failed", "payout.paid"])
    assert made["id"].startswith("we_") and made["secret"].startswith("whsec_")
    assert made["enabled_events"] == ["payment.failed", "payout.paid"] and made["status"] == "enabled"
    read = client.get(f"{ENDPOINTS}/{made['id']}", headers=CAFE_AUTH).json()
    assert "secret" not in read and read == {k: v for k, v in made.items() if k != "secret"}
    rotated = client.post(f"{ENDPOINTS}/{made['id']}/rotate_secret", headers=CAFE_AUTH)
    assert rotated.status_code == 200 and rotated.json()["secret"] not in ("", made["secret"])
    assert rotated.json() | {"secret": made["secret"]} == made
    listed = client.get(ENDPOINTS, headers=CAFE_AUTH).json()
    assert [e["id"] for e in listed["data"]] == [made["id"]] and "secret" not in listed["data"][0]
    gone = client.delete(f"{ENDPOINTS}/{made['id']}", headers=CAFE_AUTH)
    assert gone.status_code == 200 and gone.json() == {"id": made["id"], "object": "webhook_endpoint", "deleted": True}
    problem(client.get(f"{ENDPOINTS}/{made['id']}", headers=CAFE_AUTH), 404, "not-found")


BAD_ENDPOINTS: list[tuple[dict[str, Any], str]] = [
    ({"url": "ftp://merchant.example/hooks"}, "url"),
    ({"url": "merchant.example/hooks"}, "url"),
    ({"url": "https://"}, "url"),
    ({"url": "https://user:pw@merchant.example/"}, "url"),
    ({"url": "https://merchant.example/a b"}, "url"),
    ({"url": "https://merchant.example:99999/"}, "url"),
    ({"url": "https://merchant.example/" + "a" * limits.webhook_url_chars_max}, "url"),
    ({"enabled_events": []}, "enabled_events"),
    ({"enabled_events": ["payment.exploded"]}, "enabled_events"),
    ({"enabled_events": ["*", "payout.paid"]}, "enabled_events"),
    ({"secret": "whsec_mine"}, "secret"),
]


def test_a_bad_endpoint_is_a_422_naming_the_field(client: TestClient) -> None:
    for change, field in BAD_ENDPOINTS:  # one client for the table: each case is one request
        answer = problem(client.post(ENDPOINTS, json=BODY | change, headers=CAFE_AUTH), 422, "validation-error")
        assert answer["field"] == field, (change, answer)
    assert client.get(ENDPOINTS, headers=CAFE_AUTH).json()["data"] == []


def test_a_merchant_may_have_only_so_many_endpoints(client: TestClient, app: App) -> None:
    with app.uow() as uow:
        for _ in range(limits.webhook_endpoints_per_merchant_max):
            service.create_endpoint(uow, app.vault, CAFE, BODY["url"], ["*"], app.clock())
        uow.commit()
    problem(client.post(ENDPOINTS, json=BODY, headers=CAFE_AUTH), 409, "limit-reached")
    created(client, auth=SHOP_AUTH)  # per merchant


def test_a_post_with_an_idempotency_key_replays_the_first_answer(client: TestClient, app: App) -> None:
    key = {"Idempotency-Key": "create-1"}
    first = client.post(ENDPOINTS, json=BODY, headers=CAFE_AUTH | key)
    again = client.post(ENDPOINTS, json=BODY, headers=CAFE_AUTH | key)
    assert first.status_code == again.status_code == 201 and again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    with app.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(webhook_endpoints)).scalar_one() == 1
    problem(client.post(ENDPOINTS, json=BODY | {"url": "https://x.example/"}, headers=CAFE_AUTH | key),
            422, "idempotency-key-reused")
    endpoint_id = first.json()["id"]
    rotate = f"{ENDPOINTS}/{endpoint_id}/rotate_secret"
    r1 = client.post(rotate, headers=CAFE_AUTH | {"Idempotency-Key": "rot-1"})
    assert client.post(rotate, headers=CAFE_AUTH | {"Idempotency-Key": "rot-1"}).content == r1.content
    (event_id,) = emit(app)
    redeliver = f"/v1/events/{event_id}/redeliver"
    d1 = client.post(redeliver, json={}, headers=CAFE_AUTH | {"Idempotency-Key": "red-1"})
    d2 = client.post(redeliver, json={}, headers=CAFE_AUTH | {"Idempotency-Key": "red-1"})
    assert d1.status_code == 200 and d2.content == d1.content and d2.headers["Idempotent-Replayed"] == "true"


# --- events, deliveries, redelivery --------------------------------------------------------

def test_events_list_newest_first_by_cursor_and_filter_by_type(client: TestClient, app: App,
                                                               clock: FakeClock) -> None:
    paid = emit(app, n=3)
    failed = emit(app, "payment.failed")
    seen, cursor = [], None
    while True:
        page = client.get("/v1/events", params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                          headers=CAFE_AUTH).json()
        seen += [e["id"] for e in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == [*failed, *reversed(paid)]
    typed = client.get("/v1/events", params={"type": "payment.failed"}, headers=CAFE_AUTH).json()
    assert [e["id"] for e in typed["data"]] == failed and typed["next_cursor"] is None
    one = client.get(f"/v1/events/{failed[0]}", headers=CAFE_AUTH).json()
    assert one["object"] == "event" and one["type"] == "payment.failed" and one["data"]["object"]["id"] == "pr_0"
    problem(client.get("/v1/events", params={"type": "nope"}, headers=CAFE_AUTH), 422, "validation-error")
    assert problem(client.get("/v1/events", params={"cursor": "bad!"}, headers=CAFE_AUTH), 422,
                   "validation-error")["field"] == "cursor"
    problem(client.get("/v1/events", params={"limit": 0}, headers=CAFE_AUTH), 422, "validation-error")
    problem(client.get("/v1/events/evt_nope", headers=CAFE_AUTH), 404, "not-found")


def test_deliveries_list_their_attempts_and_redelivery_requeues(client: TestClient, app: App) -> None:
    made = created(client)
    (event_id,) = emit(app)
    service.deliver_due(app, RetrySchedule(), lambda url, body, headers: (500, "down"))
    (delivery,) = client.get(f"/v1/events/{event_id}/deliveries", headers=CAFE_AUTH).json()["data"]
    assert delivery["endpoint"] == made["id"] and delivery["url"] == BODY["url"] and delivery["state"] == "pending"
    assert [(a["status_code"], a["error"]) for a in delivery["attempts"]] == [(500, "HTTP 500: down")]
    requeued = client.post(f"/v1/events/{event_id}/redeliver", json={"endpoint": made["id"]}, headers=CAFE_AUTH)
    assert requeued.status_code == 200 and requeued.json()["data"][0]["next_attempt_at"] == (
        app.clock().isoformat().replace("+00:00", "Z"))
    (other,) = emit(app, "payout.paid")
    client.delete(f"{ENDPOINTS}/{made['id']}", headers=CAFE_AUTH)
    problem(client.post(f"/v1/events/{other}/redeliver", headers=CAFE_AUTH), 409, "nothing-to-redeliver")
    problem(client.post(f"/v1/events/{other}/redeliver", json={"endpoint": made["id"]}, headers=CAFE_AUTH),
            404, "not-found")


# --- authentication and other merchants ----------------------------------------------------

def routes(endpoint_id: str, event_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"{ENDPOINTS}/{endpoint_id}", None),
        ("DELETE", f"{ENDPOINTS}/{endpoint_id}", None),
        ("POST", f"{ENDPOINTS}/{endpoint_id}/rotate_secret", None),
        ("GET", f"/v1/events/{event_id}", None),
        ("GET", f"/v1/events/{event_id}/deliveries", None),
        ("POST", f"/v1/events/{event_id}/redeliver", {}),
        ("POST", f"/v1/events/{event_id}/redeliver", {"endpoint": endpoint_id}),
    ]


def test_another_merchants_ids_are_404_on_every_route(client: TestClient, app: App) -> None:
    made = created(client)
    (event_id,) = emit(app)
    for n, (method, path, body) in enumerate(routes(made["id"], event_id)):
        problem(client.request(method, path, json=body, headers=SHOP_AUTH), 404, "not-found")
        problem(client.request(method, path, json=body, headers=SHOP_AUTH | {"Idempotency-Key": f"k{n}"}),
                404, "not-found")
    shop_endpoint = created(client, auth=SHOP_AUTH)["id"]  # CAFE's event to SHOP's endpoint: 404 too
    problem(client.post(f"/v1/events/{event_id}/redeliver", json={"endpoint": shop_endpoint}, headers=CAFE_AUTH),
            404, "not-found")
    assert client.get(ENDPOINTS, headers=SHOP_AUTH).json()["data"][0]["id"] == shop_endpoint
    assert client.get("/v1/events", headers=SHOP_AUTH).json()["data"] == []
    assert client.get(f"{ENDPOINTS}/{made['id']}", headers=CAFE_AUTH).status_code == 200  # untouched


def test_without_an_api_key_every_route_is_401(client: TestClient) -> None:
    for method, path, body in [*routes("we_x", "evt_x"), ("GET", ENDPOINTS, None), ("POST", ENDPOINTS, BODY),
                               ("GET", "/v1/events", None)]:
        problem(client.request(method, path, json=body), 401, "unauthorized")
