"""Escrow of online payment requests on SQLite and PostgreSQL (services/escrow.py, the REST API
v1 and the buyer's signed page): held → shipped → released by the buyer or by the auto-release
sweep, the buyer's refund request accepted, rejected and decided by the operator; every
illegal move a 409 naming the state; balances exact and the ledger clean after each."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.schema import issuer_notifications
from paypos.bootstrap import App
from paypos.domain.pricing import fee_minor
from paypos.services import escrow
from tests.conftest import FakeClock
from tests.integration.online_api import CAFE_AUTH, SHOP_AUTH, TestClient
from tests.integration.test_online_payments import (  # noqa: F401 (fixtures)
    APPROVE,
    balances,
    card_available,
    cards,
    client,
    event_types,
    ledger_clean,
    pay,
    problem,
    refund,
    request_for,
    status_of,
)

SHIP = {"carrier": "SF Express", "tracking_number": "SF1234567890"}
OPERATOR = {"Authorization": "Bearer " + "operator-token-" * 3}


def buyer_link(app: App, request_id: str) -> str:
    """The signed link the cardholder's phone received (the sandbox outbox), as a path."""
    with app.engine.connect() as connection:
        text = connection.execute(sa.select(issuer_notifications.c.text).where(
            issuer_notifications.c.reference == f"{request_id}:escrow_link")).scalar_one()
    return re.search(r"https?://[^/]+(/pay/\S+)", text).group(1)  # type: ignore[union-attr]


def held(client: TestClient, app: App, cards: dict[str, dict[str, Any]], amount: int = 2_000) -> str:
    request_id = request_for(client, amount, escrow=True)
    pay(app, cards, request_id)
    assert status_of(client, request_id) == "held"
    return request_id


def ship(client: TestClient, request_id: str, auth: dict[str, str] = CAFE_AUTH, **headers: str) -> Any:
    return client.post(f"/v1/payment_requests/{request_id}/ship", json=SHIP, headers=auth | headers)


def buyer_post(client: TestClient, link: str, action: str, **form: str) -> Any:
    path, sig = link.split("?sig=")
    return client.post(path.replace("/confirm", f"/{action}"), data={"sig": sig} | form, follow_redirects=False)


# --- held → shipped → released --------------------------------------------------------------------

def test_the_buyer_confirms_receipt_and_the_escrow_is_released_to_pending(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    request_id = held(client, app, cards)
    net = 2_000 - fee_minor(2_000)
    assert balances(client) == {"pending": 0, "available": 0, "escrow": net, "authorized": 0}
    shipped = ship(client, request_id)
    assert shipped.status_code == 200, shipped.text
    body = shipped.json()
    assert (body["status"], body["carrier"], body["tracking_number"]) == ("shipped", "SF Express", "SF1234567890")
    assert body["release_due_at"] is not None and "sig" not in shipped.text  # the merchant never sees the link
    link = buyer_link(app, request_id)
    page = client.get(link)
    assert page.status_code == 200 and "I received my order" in page.text and "SF1234567890" in page.text
    assert client.get(link[:-4] + "0000").status_code == 404  # a wrong signature is a plain 404
    assert buyer_post(client, link[:-4] + "0000", "confirm").status_code == 404
    assert buyer_post(client, link, "confirm").status_code == 303
    assert status_of(client, request_id) == "released"
    assert balances(client) == {"pending": net, "available": 0, "escrow": 0, "authorized": 0}
    assert buyer_post(client, link, "confirm").status_code == 303  # a double click changes nothing
    assert balances(client)["pending"] == net
    assert event_types(app)[-2:] == ["escrow.shipped", "escrow.released"]
    assert problem(ship(client, request_id), 409, "invalid-state")["current_state"] == "released"
    assert problem(refund(client, request_id, 100), 409, "invalid-state")["current_state"] == "released"
    ledger_clean(app)


def test_illegal_escrow_moves_are_409_naming_the_state_and_bad_fields_422(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    unpaid = request_for(client, 1_000, escrow=True)
    assert problem(ship(client, unpaid), 409, "invalid-state")["current_state"] == "requires_payment"
    plain = request_for(client, 1_000)
    pay(app, cards, plain)
    assert problem(ship(client, plain), 409, "invalid-state")["current_state"] == "paid"
    assert problem(client.get(f"/v1/payment_requests/{plain}/escrow", headers=CAFE_AUTH), 404, "not-found")
    request_id = held(client, app, cards)
    for answer in ("accept", "reject"):
        response = client.post(f"/v1/payment_requests/{request_id}/refund_request/{answer}", headers=CAFE_AUTH)
        assert problem(response, 409, "invalid-state")["current_state"] == "held"
    bad = client.post(f"/v1/payment_requests/{request_id}/ship", json={"carrier": "", "tracking_number": "1"},
                      headers=CAFE_AUTH)
    assert problem(bad, 422, "validation-error")["field"] == "carrier"
    assert client.get(f"/v1/payment_requests/{request_id}/escrow", headers=CAFE_AUTH).json()["status"] == "held"
    ledger_clean(app)


def test_a_shipped_request_is_auto_released_after_the_period_and_a_held_one_is_not(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]], clock: FakeClock) -> None:
    shipped_id, waiting_id = held(client, app, cards, 2_000), held(client, app, cards, 3_000)
    ship(client, shipped_id)
    clock.advance(app.settings.escrow_auto_release_s - 1)
    with app.uow() as uow:
        assert escrow.release_due(uow, app.clock()) == []
        uow.commit()
    clock.advance(2)
    assert escrow.release_batch(app) == 1
    assert escrow.release_batch(app) == 0  # released once, never twice
    assert (status_of(client, shipped_id), status_of(client, waiting_id)) == ("released", "held")
    released = client.get(f"/v1/payment_requests/{shipped_id}/escrow", headers=CAFE_AUTH).json()
    assert released["release_reason"] == "auto"
    assert balances(client) == {"pending": 2_000 - fee_minor(2_000), "available": 0,
                                "escrow": 3_000 - fee_minor(3_000), "authorized": 0}
    ledger_clean(app)


# --- the buyer's refund request -----------------------------------------------------------------------

def test_a_refund_request_accepted_returns_everything_to_the_card_fee_included(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    before = card_available(app, APPROVE)
    request_id = held(client, app, cards)
    assert refund(client, request_id, 500).json()["source"] == "merchant_escrow"  # a partial refund first
    ship(client, request_id)
    link = buyer_link(app, request_id)
    assert buyer_post(client, link, "refund_request", reason="").status_code == 422
    assert buyer_post(client, link, "refund_request", reason="the box arrived empty").status_code == 303
    assert status_of(client, request_id) == "refund_requested"
    assert problem(ship(client, request_id), 409, "invalid-state")["current_state"] == "refund_requested"
    accepted = client.post(f"/v1/payment_requests/{request_id}/refund_request/accept", headers=CAFE_AUTH)
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert (body["status"], body["refund"]["amount"]) == ("refunded", 1_500)
    assert body["refund"]["source"] == "merchant_escrow"
    assert body["refund_request"]["merchant_answer"] == "accepted"
    assert card_available(app, APPROVE) == before
    assert balances(client) == {"pending": 0, "available": 0, "escrow": 0, "authorized": 0}
    assert "refund.succeeded" in event_types(app)
    ledger_clean(app)


def test_a_rejected_refund_request_waits_for_the_operator_who_releases_or_refunds(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]], clock: FakeClock) -> None:
    released_id, refunded_id = held(client, app, cards, 2_000), held(client, app, cards, 3_000)
    for request_id in (released_id, refunded_id):
        ship(client, request_id)
        assert buyer_post(client, buyer_link(app, request_id), "refund_request", reason="late").status_code == 303
        rejected = client.post(f"/v1/payment_requests/{request_id}/refund_request/reject", headers=CAFE_AUTH)
        assert rejected.json()["status"] == "refund_disputed"
    clock.advance(app.settings.escrow_auto_release_s + 1)
    assert escrow.release_batch(app) == 0  # the operator decides, not the sweep
    path = f"/v1/payment_requests/{released_id}/refund_request/accept"
    assert problem(client.post(path, headers=CAFE_AUTH), 409, "invalid-state")["current_state"] == "refund_disputed"
    decide = f"/v1/operator/escrow_disputes/{released_id}/decide"
    problem(client.post(decide, json={"decision": "release"}, headers=OPERATOR), 404, "not-found")  # no token set
    app.settings.operator_token = OPERATOR["Authorization"].removeprefix("Bearer ")
    for wrong in ({}, CAFE_AUTH, {"Authorization": "Bearer " + "x" * 32}):
        problem(client.post(decide, json={"decision": "release"}, headers=wrong), 401, "unauthorized")
    assert problem(client.post(decide, json={"decision": "pay"}, headers=OPERATOR), 422,
                   "validation-error")["field"] == "decision"
    decided = client.post(decide, json={"decision": "release"}, headers=OPERATOR | {"Idempotency-Key": "op-1"})
    assert decided.json()["status"] == "released", decided.text
    assert client.post(decide, json={"decision": "release"}, headers=OPERATOR | {"Idempotency-Key": "op-1"}
                       ).headers["Idempotent-Replayed"] == "true"
    again = client.post(decide, json={"decision": "refund"}, headers=OPERATOR)
    assert problem(again, 409, "invalid-state")["current_state"] == "released"
    with app.uow() as uow:  # what `paypos escrow decide --refund` runs
        escrow.operator_decide(uow, app.vault, refunded_id, "refund", now=app.clock())
        uow.commit()
    assert (status_of(client, released_id), status_of(client, refunded_id)) == ("released", "refunded")
    assert balances(client) == {"pending": 2_000 - fee_minor(2_000), "available": 0, "escrow": 0, "authorized": 0}
    decided = client.get(f"/v1/payment_requests/{released_id}/escrow", headers=CAFE_AUTH).json()
    assert decided["refund_request"]["operator_decision"] == "release" and decided["release_reason"] == "operator"
    ledger_clean(app)


# --- merchants see only their own, replays ---------------------------------------------------------------

def test_another_merchant_gets_404_for_every_escrow_route_and_replays_answer_once(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    request_id = held(client, app, cards)
    for response in (
        client.get(f"/v1/payment_requests/{request_id}/escrow", headers=SHOP_AUTH),
        ship(client, request_id, SHOP_AUTH),
        client.post(f"/v1/payment_requests/{request_id}/refund_request/accept", headers=SHOP_AUTH),
        client.post(f"/v1/payment_requests/{request_id}/refund_request/reject", headers=SHOP_AUTH),
    ):
        problem(response, 404, "not-found")
    first = ship(client, request_id, **{"Idempotency-Key": "ship-1"})
    again = ship(client, request_id, **{"Idempotency-Key": "ship-1"})
    assert (first.status_code, again.status_code, again.headers["Idempotent-Replayed"]) == (200, 200, "true")
    assert again.content == first.content
    assert event_types(app).count("escrow.shipped") == 1
    other = client.post(f"/v1/payment_requests/{request_id}/ship", json=SHIP | {"carrier": "EMS"},
                        headers=CAFE_AUTH | {"Idempotency-Key": "ship-1"})
    assert problem(other, 422, "idempotency-key-reused")["field"] == "Idempotency-Key"
    assert limits.escrow_auto_release_s == 10 * 24 * 3600


def test_a_manual_capture_escrow_request_is_held_once_captured(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    request_id = request_for(client, 4_000, escrow=True, capture="manual", order_id="manual-escrow")
    pay(app, cards, request_id)
    assert status_of(client, request_id) == "requires_capture"
    assert problem(ship(client, request_id), 409, "invalid-state")["current_state"] == "requires_capture"
    captured = client.post(f"/v1/payment_requests/{request_id}/capture", json={"amount": 3_000}, headers=CAFE_AUTH)
    assert captured.json()["status"] == "held", captured.text
    assert balances(client) == {"pending": 0, "available": 0, "escrow": 3_000 - fee_minor(3_000), "authorized": 0}
    buyer_link(app, request_id)  # the cardholder got the signed link
    ship(client, request_id)
    assert buyer_post(client, buyer_link(app, request_id), "confirm").status_code == 303
    assert balances(client) == {"pending": 3_000 - fee_minor(3_000), "available": 0, "escrow": 0, "authorized": 0}
    ledger_clean(app)
