"""Disputes (chargebacks) of card payments on SQLite and PostgreSQL (services/disputes.py, the
REST API v1 and the sandbox issuer's routes): opened with a Visa reason code, the amount and
the fee leave the merchant, evidence before the deadline, won or lost; balances exact and the
ledger clean after each; another merchant gets 404 everywhere."""

from __future__ import annotations

from typing import Any

from paypos import limits
from paypos.bootstrap import App
from paypos.domain.pricing import fee_minor
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
)

FEE = limits.dispute_fee_minor


def paid(client: TestClient, app: App, cards: dict[str, dict[str, Any]], amount: int) -> tuple[str, str]:
    """A paid request's id and its payment's id."""
    request_id = request_for(client, amount)
    outcome = pay(app, cards, request_id)
    assert outcome.payment is not None
    return request_id, outcome.payment.id


def open_dispute(client: TestClient, payment_id: str, reason: str = "13.1", **extra: Any) -> Any:
    return client.post("/v1/sandbox/disputes", json={"payment": payment_id, "reason_code": reason} | extra)


def close(client: TestClient, dispute_id: str, outcome: str) -> Any:
    return client.post(f"/v1/sandbox/disputes/{dispute_id}/close", json={"outcome": outcome})


def test_a_lost_dispute_moves_the_amount_to_the_card_and_keeps_the_fee(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    before = card_available(app, APPROVE)
    _, payment_id = paid(client, app, cards, 10_000)
    net = 10_000 - fee_minor(10_000)
    opened = open_dispute(client, payment_id, "10.4")
    assert opened.status_code == 201, opened.text
    dispute = opened.json()
    assert (dispute["status"], dispute["amount"], dispute["fee"], dispute["source"]) == (
        "needs_response", 10_000, FEE, "merchant_pending")
    assert dispute["reason"] == "Other fraud: card-absent environment"
    assert balances(client)["pending"] == net - 10_000 - FEE
    assert client.get(f"/v1/disputes/{dispute['id']}", headers=CAFE_AUTH).json()["status"] == "needs_response"
    assert [d["id"] for d in client.get("/v1/disputes", headers=CAFE_AUTH).json()["data"]] == [dispute["id"]]
    assert close(client, dispute["id"], "lost").json()["status"] == "lost"
    assert card_available(app, APPROVE) == before
    assert balances(client)["pending"] == net - 10_000 - FEE
    assert problem(close(client, dispute["id"], "won"), 409, "invalid-state")["current_state"] == "lost"
    assert problem(open_dispute(client, payment_id), 422, "validation-error")["field"] == "amount"  # nothing left
    assert event_types(app)[-2:] == ["dispute.opened", "dispute.closed"]
    ledger_clean(app)


def test_a_won_dispute_returns_the_amount_but_not_the_fee_after_evidence(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    request_id, payment_id = paid(client, app, cards, 10_000)
    refund(client, request_id, 1_000)
    net = 10_000 - fee_minor(10_000) - 1_000
    over = open_dispute(client, payment_id, amount=9_001)
    assert problem(over, 422, "validation-error")["field"] == "amount"  # captured − refunded is 9 000
    dispute = open_dispute(client, payment_id, "13.3", amount=4_000).json()
    evidence = client.post(f"/v1/disputes/{dispute['id']}/evidence", json={"text": "tracking shows delivered"},
                           headers=CAFE_AUTH)
    assert (evidence.status_code, evidence.json()["status"]) == (200, "under_review"), evidence.text
    again = client.post(f"/v1/disputes/{dispute['id']}/evidence", json={"text": "more"}, headers=CAFE_AUTH)
    assert problem(again, 409, "invalid-state")["current_state"] == "under_review"
    assert balances(client)["pending"] == net - 4_000 - FEE
    assert close(client, dispute["id"], "won").json()["status"] == "won"
    assert balances(client)["pending"] == net - FEE  # the fee is not returned
    ledger_clean(app)


def test_evidence_after_the_deadline_and_bad_disputes_are_refused_naming_field_or_state(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]], clock: FakeClock) -> None:
    _, payment_id = paid(client, app, cards, 5_000)
    assert problem(open_dispute(client, payment_id, "99.9"), 422, "validation-error")["field"] == "reason_code"
    assert problem(open_dispute(client, "pay_" + "a" * 24), 404, "not-found")
    held = request_for(client, 3_000, escrow=True)
    in_escrow = pay(app, cards, held).payment
    assert in_escrow is not None
    assert problem(open_dispute(client, in_escrow.id), 409, "invalid-state")["current_state"] == "held"
    dispute = open_dispute(client, payment_id).json()
    clock.advance(limits.dispute_evidence_window_s)
    late = client.post(f"/v1/disputes/{dispute['id']}/evidence", json={"text": "late"}, headers=CAFE_AUTH)
    assert problem(late, 409, "invalid-state")["current_state"] == "needs_response"
    assert "due by" in late.json()["detail"]
    assert problem(close(client, dispute["id"], "drawn"), 422, "validation-error")["field"] == "outcome"
    ledger_clean(app)


def test_another_merchant_gets_404_for_every_dispute_route_and_posts_replay(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    _, payment_id = paid(client, app, cards, 5_000)
    key = {"Idempotency-Key": "open-1"}
    first = client.post("/v1/sandbox/disputes", json={"payment": payment_id, "reason_code": "12.5"}, headers=key)
    again = client.post("/v1/sandbox/disputes", json={"payment": payment_id, "reason_code": "12.5"}, headers=key)
    assert (first.status_code, again.status_code, again.headers["Idempotent-Replayed"]) == (201, 201, "true")
    assert again.content == first.content and event_types(app).count("dispute.opened") == 1
    dispute_id = first.json()["id"]
    for response in (
        client.get(f"/v1/disputes/{dispute_id}", headers=SHOP_AUTH),
        client.post(f"/v1/disputes/{dispute_id}/evidence", json={"text": "mine"}, headers=SHOP_AUTH),
    ):
        problem(response, 404, "not-found")
    assert client.get("/v1/disputes", headers=SHOP_AUTH).json()["data"] == []
    problem(client.get("/v1/disputes"), 401, "unauthorized")
    evidence = {"Idempotency-Key": "ev-1"} | CAFE_AUTH
    one = client.post(f"/v1/disputes/{dispute_id}/evidence", json={"text": "receipt"}, headers=evidence)
    two = client.post(f"/v1/disputes/{dispute_id}/evidence", json={"text": "receipt"}, headers=evidence)
    assert (one.status_code, two.content == one.content) == (200, True)
    assert balances(client)["pending"] == 5_000 - fee_minor(5_000) - 5_000 - FEE
    ledger_clean(app)


def test_what_a_dispute_took_cannot_be_refunded_again(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    request_id, payment_id = paid(client, app, cards, 10_000)
    open_dispute(client, payment_id, "13.6", amount=6_000)
    assert problem(refund(client, request_id, 4_001), 422, "validation-error")["field"] == "amount"
    assert refund(client, request_id).json()["amount"] == 4_000
    assert client.get(f"/v1/payment_requests/{request_id}", headers=CAFE_AUTH).json()["status"] == "refunded"
    ledger_clean(app)
