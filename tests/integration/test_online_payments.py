"""Payments of payment requests on SQLite and PostgreSQL (services/online_payments.py and the
REST API v1): card not present through the sandbox issuer (CVV2, expiry, status, funds), the
one-time-code challenge, manual capture, cancel (void), refunds, escrow, balances from the
ledger; no PAN or CVV2 stored or logged; a double or concurrent submit charges once."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from httpx import Response

from paypos import limits
from paypos.adapters.db.ledger_check import check_ledger
from paypos.adapters.db.schema import events, issuer_notifications, metadata, payments
from paypos.bootstrap import App
from paypos.domain.online_payment import card_entry
from paypos.domain.pricing import fee_minor
from paypos.entrypoints.api import PROBLEM_BASE
from paypos.services import online_payments, sandbox
from paypos.services.online_payments import Checkout
from tests.conftest import FakeClock
from tests.integration.online_api import CAFE_AUTH, SHOP_AUTH, TestClient, sandbox_client

BASE_URL = "http://testserver/"
APPROVE = "visa-cvn18-approve"


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with sandbox_client(app) as test_client:
        yield test_client


@pytest.fixture
def cards(app: App, client: TestClient) -> dict[str, dict[str, Any]]:
    with app.uow(write=False) as uow:
        return {c["id"]: c for c in sandbox.list_cards(uow, app.vault)}


def request_for(client: TestClient, amount: int = 1_000, auth: dict[str, str] = CAFE_AUTH, **terms: Any) -> str:
    body = {"amount": amount, "currency": "CNY", "order_id": f"order-{amount}-{len(terms)}-{sorted(terms)}"} | terms
    response = client.post("/v1/payment_requests", json=body, headers=auth)
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def pay(app: App, cards: dict[str, dict[str, Any]], request_id: str, card_id: str = APPROVE, *,
        cvv2: str | None = None, expiry: str | None = None) -> Checkout:
    card = cards[card_id]
    entry = card_entry(pan=card["pan"], expiry=expiry or f"{card['expiry'][2:]}/{card['expiry'][:2]}",
                       cvv2=cvv2 or card["cvv2"], name="Test Buyer")
    with app.uow() as uow:
        outcome = online_payments.submit_card(uow, app.vault, request_id, entry, now=app.clock(), base_url=BASE_URL)
        uow.commit()
    return outcome


def code(app: App, request_id: str, entered: str) -> Checkout:
    with app.uow() as uow:
        outcome = online_payments.submit_code(uow, app.vault, request_id, entered, now=app.clock(),
                                              base_url=BASE_URL)
        uow.commit()
    return outcome


def otp_of(app: App, payment_id: str) -> str:
    with app.engine.connect() as connection:
        text = connection.execute(sa.select(issuer_notifications.c.text).where(
            issuer_notifications.c.reference == f"{payment_id}:otp")).scalar_one()
    return re.search(r"\] (\d{6}) is your code", text).group(1)  # type: ignore[union-attr]


def status_of(client: TestClient, request_id: str) -> str:
    return str(client.get(f"/v1/payment_requests/{request_id}", headers=CAFE_AUTH).json()["status"])


def balances(client: TestClient, auth: dict[str, str] = CAFE_AUTH) -> dict[str, int]:
    body = client.get("/v1/balances", headers=auth).json()
    assert body["object"] == "balance"
    (row,) = body["data"]
    return {k: v for k, v in row.items() if k != "currency"}


def card_available(app: App, card_id: str) -> int:
    with app.uow(write=False) as uow:
        return int(next(c for c in sandbox.list_cards(uow, app.vault) if c["id"] == card_id)["available_minor"])


def event_types(app: App) -> list[str]:
    with app.engine.connect() as connection:
        return list(connection.execute(sa.select(events.c.type).order_by(events.c.seq)).scalars())


def ledger_clean(app: App) -> None:
    with app.uow(write=False) as uow:
        assert check_ledger(uow.connection, app.clock()) == []


def problem(response: Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == PROBLEM_BASE + slug and body["detail"]
    return body


def refund(client: TestClient, request_id: str, amount: int | None = None, **extra: Any) -> Response:
    body = {"payment_request": request_id} | ({"amount": amount} if amount is not None else {}) | extra
    return client.post("/v1/refunds", json=body, headers=CAFE_AUTH)


# --- card not present ------------------------------------------------------------------------

def test_an_approved_card_pays_the_request_and_posts_sale_and_fee(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    request_id = request_for(client, 1_000)
    before = card_available(app, APPROVE)
    outcome = pay(app, cards, request_id)
    assert outcome.request.status.value == "paid" and outcome.payment is not None
    payment = client.get(f"/v1/payments/{outcome.payment.id}", headers=CAFE_AUTH).json()
    assert (payment["status"], payment["amount_captured"], payment["method"]) == ("succeeded", 1_000, "card")
    assert payment["card"] == {"masked_pan": "476173******0010"}
    assert status_of(client, request_id) == "paid"
    assert card_available(app, APPROVE) == before - 1_000
    assert balances(client) == {"pending": 1_000 - fee_minor(1_000), "available": 0, "escrow": 0, "authorized": 0}
    assert event_types(app) == ["payment_request.paid"]
    ledger_clean(app)


@pytest.mark.parametrize(("card_id", "change", "failure_code"), [
    (APPROVE, {"cvv2": "000"}, "incorrect_cvv2"),
    (APPROVE, {"expiry": "11/29"}, "incorrect_expiry"),
    ("visa-cvn18-expired", {}, "expired_card"),
    ("visa-cvn18-blocked", {}, "restricted_card"),
    ("visa-cvn18-insufficient-funds", {}, "insufficient_funds"),
])
def test_a_declined_card_fails_the_attempt_and_the_request_can_be_paid_again(
        client: TestClient, app: App, clock: FakeClock, cards: dict[str, dict[str, Any]], card_id: str,
        change: dict[str, str], failure_code: str) -> None:
    request_id = request_for(client, 5_000)
    if change.get("cvv2") == cards[card_id]["cvv2"]:
        change["cvv2"] = "001"
    failed = pay(app, cards, request_id, card_id, **change)
    assert failed.payment is not None and failed.payment.status.value == "failed"
    assert failed.payment.failure_code == failure_code and failed.payment.failure_reason
    assert status_of(client, request_id) == "requires_payment"
    assert event_types(app) == ["payment.failed"]
    assert balances(client)["pending"] == 0
    clock.advance(1)
    paid = pay(app, cards, request_id)
    assert paid.request.status.value == "paid" and paid.payment is not None and paid.payment.id != failed.payment.id
    listed = client.get("/v1/payments", params={"payment_request": request_id}, headers=CAFE_AUTH).json()["data"]
    assert [p["status"] for p in listed] == ["succeeded", "failed"]
    ledger_clean(app)


# --- the challenge -------------------------------------------------------------------------------

def test_above_the_threshold_the_right_code_pays(client: TestClient, app: App,
                                                 cards: dict[str, dict[str, Any]]) -> None:
    request_id = request_for(client, limits.checkout_challenge_threshold_minor)
    waiting = pay(app, cards, request_id)
    assert waiting.payment is not None and waiting.payment.status.value == "requires_challenge"
    assert status_of(client, request_id) == "processing"
    shown = client.get(f"/v1/payments/{waiting.payment.id}", headers=CAFE_AUTH).json()
    assert shown["challenge"]["tries_left"] == limits.checkout_otp_tries_max
    otp = otp_of(app, waiting.payment.id)
    with app.engine.connect() as connection:
        stored = connection.execute(sa.select(payments.c.challenge_hash)).scalar_one()
    assert stored and otp not in stored
    again = pay(app, cards, request_id)  # the same form twice: the same attempt, no second code
    assert again.payment is not None and again.payment.id == waiting.payment.id
    done = code(app, request_id, otp)
    assert done.request.status.value == "paid" and done.payment is not None
    assert done.payment.status.value == "succeeded"
    assert balances(client)["pending"] == 50_000 - fee_minor(50_000)
    ledger_clean(app)


def test_a_card_flagged_by_risk_is_challenged_below_the_threshold(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    request_id = request_for(client, 100)
    waiting = pay(app, cards, request_id, "visa-cvn18-challenge")
    assert waiting.payment is not None and waiting.payment.status.value == "requires_challenge"
    assert below_threshold_sms(app, waiting.payment.id).startswith("+86 138 0000 0077")


def below_threshold_sms(app: App, payment_id: str) -> str:
    with app.engine.connect() as connection:
        return str(connection.execute(sa.select(issuer_notifications.c.recipient).where(
            issuer_notifications.c.reference == f"{payment_id}:otp")).scalar_one())


def test_three_wrong_codes_fail_the_attempt(client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    request_id = request_for(client, 60_000)
    waiting = pay(app, cards, request_id)
    assert waiting.payment is not None
    otp = otp_of(app, waiting.payment.id)
    wrong = f"{(int(otp) + 1) % 10**6:06d}"
    first = code(app, request_id, wrong)
    assert first.payment is not None and first.payment.challenge is not None
    assert first.payment.challenge.tries_left == 2
    code(app, request_id, "abc")
    last = code(app, request_id, wrong)
    assert last.payment is not None and last.payment.status.value == "failed"
    assert last.payment.failure_code == "challenge_failed"
    assert status_of(client, request_id) == "requires_payment"
    late = code(app, request_id, otp)  # the right code after the attempt failed pays nothing
    assert late.request.status.value == "requires_payment"
    assert balances(client)["pending"] == 0 and event_types(app) == ["payment.failed"]


def test_an_expired_code_fails_the_attempt(client: TestClient, app: App, clock: FakeClock,
                                           cards: dict[str, dict[str, Any]]) -> None:
    request_id = request_for(client, 60_000)
    waiting = pay(app, cards, request_id)
    assert waiting.payment is not None
    otp = otp_of(app, waiting.payment.id)
    clock.advance(limits.checkout_otp_ttl_s)
    late = code(app, request_id, otp)
    assert late.payment is not None and late.payment.failure_code == "challenge_expired"
    assert status_of(client, request_id) == "requires_payment" and balances(client)["pending"] == 0


# --- manual capture, cancel --------------------------------------------------------------------------

def test_manual_capture_of_part_releases_the_rest_and_twice_is_a_409_naming_the_state(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    request_id = request_for(client, 1_000, capture="manual")
    before = card_available(app, APPROVE)
    held = pay(app, cards, request_id)
    assert held.request.status.value == "requires_capture"
    assert card_available(app, APPROVE) == before - 1_000
    assert balances(client) == {"pending": 0, "available": 0, "escrow": 0, "authorized": 1_000}
    body = problem(client.post(f"/v1/payment_requests/{request_id}/capture", json={"amount": 1_001},
                               headers=CAFE_AUTH), 422, "validation-error")
    assert body["field"] == "amount"
    captured = client.post(f"/v1/payment_requests/{request_id}/capture", json={"amount": 600}, headers=CAFE_AUTH)
    assert captured.status_code == 200 and captured.json()["status"] == "paid"
    assert card_available(app, APPROVE) == before - 600
    assert balances(client) == {"pending": 600 - fee_minor(600), "available": 0, "escrow": 0, "authorized": 0}
    twice = problem(client.post(f"/v1/payment_requests/{request_id}/capture", headers=CAFE_AUTH), 409,
                    "invalid-state")
    assert twice["current_state"] == "paid"
    problem(refund(client, request_id, 601), 422, "validation-error")
    assert refund(client, request_id).json()["amount"] == 600
    ledger_clean(app)


def test_a_capture_replays_under_its_idempotency_key_and_payments_page_by_cursor(
        client: TestClient, app: App, clock: FakeClock, cards: dict[str, dict[str, Any]]) -> None:
    request_id = request_for(client, 1_000, capture="manual")
    pay(app, cards, request_id)
    headers = CAFE_AUTH | {"Idempotency-Key": "capture-1"}
    path = f"/v1/payment_requests/{request_id}/capture"
    first, again = client.post(path, json={"amount": 700}, headers=headers), client.post(
        path, json={"amount": 700}, headers=headers)
    assert first.status_code == again.status_code == 200 and again.text == first.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert balances(client)["pending"] == 700 - fee_minor(700)
    for n in range(2):
        clock.advance(1)
        pay(app, cards, request_for(client, 100 + n))
    page = client.get("/v1/payments", params={"limit": 2}, headers=CAFE_AUTH).json()
    rest = client.get("/v1/payments", params={"limit": 2, "cursor": page["next_cursor"]}, headers=CAFE_AUTH).json()
    assert [p["amount"] for p in page["data"] + rest["data"]] == [101, 100, 1_000] and not rest["has_more"]
    problem(client.get("/v1/payments", params={"cursor": "nonsense"}, headers=CAFE_AUTH), 422, "validation-error")


def test_cancel_of_a_requires_capture_request_voids_the_hold(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    request_id = request_for(client, 1_000, capture="manual")
    before = card_available(app, APPROVE)
    pay(app, cards, request_id)
    canceled = client.post(f"/v1/payment_requests/{request_id}/cancel", headers=CAFE_AUTH)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert card_available(app, APPROVE) == before
    assert balances(client)["authorized"] == 0
    problem(client.post(f"/v1/payment_requests/{request_id}/capture", headers=CAFE_AUTH), 409, "invalid-state")
    ledger_clean(app)


def test_a_capture_after_the_hold_expired_is_a_409_and_cancel_still_works(
        client: TestClient, app: App, clock: FakeClock, cards: dict[str, dict[str, Any]]) -> None:
    request_id = request_for(client, 1_000, capture="manual")
    before = card_available(app, APPROVE)
    pay(app, cards, request_id)
    clock.advance(limits.preauth_hold_s_default)
    body = problem(client.post(f"/v1/payment_requests/{request_id}/capture", headers=CAFE_AUTH), 409,
                   "authorization-expired")
    assert body["current_state"] == "requires_capture"
    assert client.post(f"/v1/payment_requests/{request_id}/cancel", headers=CAFE_AUTH).json()["status"] == "canceled"
    with app.uow() as uow:  # what `paypos serve`'s sweep does every few seconds
        assert uow.ledger.expire_pending(app.clock()) == 1
        uow.commit()
    assert card_available(app, APPROVE) == before
    ledger_clean(app)


# --- refunds -----------------------------------------------------------------------------------------

def test_partial_refunds_add_up_to_the_payment_and_never_above_it(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    request_id = request_for(client, 1_000)
    before = card_available(app, APPROVE)
    pay(app, cards, request_id)
    first = refund(client, request_id, 300, reason="one cup spilled")
    assert first.status_code == 201, first.text
    assert (first.json()["amount"], first.json()["source"]) == (300, "merchant_pending")
    assert status_of(client, request_id) == "partially_refunded"
    assert refund(client, request_id, 300).status_code == 201
    over = problem(refund(client, request_id, 500), 422, "validation-error")
    assert over["field"] == "amount" and "400" in over["detail"]
    rest = refund(client, request_id)
    assert rest.status_code == 201 and rest.json()["amount"] == 400
    assert status_of(client, request_id) == "refunded"
    after = problem(refund(client, request_id, 1), 409, "invalid-state")
    assert after["current_state"] == "refunded"
    assert card_available(app, APPROVE) == before
    listed = client.get("/v1/refunds", params={"payment_request": request_id, "limit": 2}, headers=CAFE_AUTH).json()
    assert listed["has_more"] and len(listed["data"]) == 2
    more = client.get("/v1/refunds", params={"cursor": listed["next_cursor"]}, headers=CAFE_AUTH).json()
    assert sorted(r["amount"] for r in listed["data"] + more["data"]) == [300, 300, 400]
    one = client.get(f"/v1/refunds/{first.json()['id']}", headers=CAFE_AUTH).json()
    assert one == first.json()
    assert balances(client)["pending"] == -fee_minor(1_000)  # the merchant bears the fee
    assert event_types(app).count("refund.succeeded") == 3
    ledger_clean(app)


def test_a_refund_of_an_unpaid_request_is_a_409_naming_its_state(client: TestClient) -> None:
    request_id = request_for(client, 1_000)
    body = problem(refund(client, request_id, 100), 409, "invalid-state")
    assert body["current_state"] == "requires_payment"


def test_a_refund_replays_under_its_idempotency_key(client: TestClient, app: App,
                                                    cards: dict[str, dict[str, Any]]) -> None:
    request_id = request_for(client, 1_000)
    pay(app, cards, request_id)
    headers = CAFE_AUTH | {"Idempotency-Key": "refund-1"}
    first = client.post("/v1/refunds", json={"payment_request": request_id, "amount": 100}, headers=headers)
    again = client.post("/v1/refunds", json={"payment_request": request_id, "amount": 100}, headers=headers)
    assert first.status_code == 201 and again.text == first.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(client.get("/v1/refunds", headers=CAFE_AUTH).json()["data"]) == 1


def test_a_refund_after_settlement_debits_the_available_balance(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    request_id = request_for(client, 1_000)
    paid = pay(app, cards, request_id)
    assert paid.payment is not None
    with app.engine.begin() as connection:  # the settlement seam (a later issue sets it)
        connection.execute(sa.update(payments).values(settled=True))
    body = problem(refund(client, request_id, 100), 409, "insufficient-balance")
    assert "merchant_available" in body["detail"]


# --- escrow ------------------------------------------------------------------------------------------

def test_an_escrow_request_pays_into_merchant_escrow_and_refunds_from_it(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    request_id = request_for(client, 2_000, escrow=True)
    pay(app, cards, request_id)
    assert balances(client) == {"pending": 0, "available": 0, "escrow": 2_000 - fee_minor(2_000), "authorized": 0}
    made = refund(client, request_id, 500)
    assert made.json()["source"] == "merchant_escrow"
    assert balances(client)["escrow"] == 1_500 - fee_minor(2_000)
    ledger_clean(app)


# --- merchants see only their own ------------------------------------------------------------------------

def test_another_merchants_key_gets_404_for_every_new_route(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    request_id = request_for(client, 1_000, capture="manual")
    paid = pay(app, cards, request_id)
    assert paid.payment is not None
    other_request = request_for(client, 1_000)
    pay(app, cards, other_request)
    made = refund(client, other_request, 100).json()
    for response in (
        client.post(f"/v1/payment_requests/{request_id}/capture", headers=SHOP_AUTH),
        client.post(f"/v1/payment_requests/{request_id}/cancel", headers=SHOP_AUTH),
        client.get(f"/v1/payments/{paid.payment.id}", headers=SHOP_AUTH),
        client.post("/v1/refunds", json={"payment_request": other_request}, headers=SHOP_AUTH),
        client.get(f"/v1/refunds/{made['id']}", headers=SHOP_AUTH),
    ):
        problem(response, 404, "not-found")
    assert client.get("/v1/payments", headers=SHOP_AUTH).json()["data"] == []
    assert client.get("/v1/payments", params={"payment_request": request_id}, headers=SHOP_AUTH).json()["data"] == []
    assert client.get("/v1/refunds", headers=SHOP_AUTH).json()["data"] == []
    assert balances(client, SHOP_AUTH) == {"pending": 0, "available": 0, "escrow": 0, "authorized": 0}
    for path in ("/v1/payments", "/v1/refunds", "/v1/balances", f"/v1/payments/{paid.payment.id}"):
        problem(client.get(path), 401, "unauthorized")


# --- card data, double submits ------------------------------------------------------------------------------

def test_no_table_column_and_no_log_line_holds_the_pan_or_the_cvv2(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    card = cards[APPROVE]
    declined = request_for(client, 1_000)
    pay(app, cards, declined, cvv2="999" if card["cvv2"] != "999" else "998")
    challenged = request_for(client, 70_000)
    waiting = pay(app, cards, challenged)
    assert waiting.payment is not None
    code(app, challenged, otp_of(app, waiting.payment.id))
    with app.engine.connect() as connection:
        dump = [str(value) for table in metadata.sorted_tables for row in connection.execute(sa.select(table))
                for value in row if value is not None]
        rows = connection.execute(sa.select(payments)).mappings().all()
        event_data = " ".join(connection.execute(sa.select(events.c.data_json)).scalars())
    assert not [v for v in dump if card["pan"] in v]
    cvv2 = re.compile(rf"(?<!\d){card['cvv2']}(?!\d)")
    assert not [r for r in rows for k, v in r.items() if k != "pan_enc" and v is not None and cvv2.search(str(v))]
    assert not cvv2.search(event_data) and card["pan"] not in event_data
    assert card["pan"] not in caplog.text and not cvv2.search(caplog.text)
    assert all(r["pan_enc"] and card["pan"].encode() not in r["pan_enc"] for r in rows)


def test_a_double_submit_charges_once(client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    request_id = request_for(client, 1_000)
    before = card_available(app, APPROVE)
    first, second = pay(app, cards, request_id), pay(app, cards, request_id)
    assert first.payment is not None and second.payment is not None
    assert first.payment.id == second.payment.id
    assert card_available(app, APPROVE) == before - 1_000


def test_concurrent_identical_submits_charge_exactly_once(
        client: TestClient, app: App, cards: dict[str, dict[str, Any]]) -> None:
    threads_n = 8
    request_id = request_for(client, 1_000)
    before = card_available(app, APPROVE)
    barrier = threading.Barrier(threads_n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def submit() -> None:
        barrier.wait()
        outcome = pay(app, cards, request_id)
        with lock:
            outcomes.append(outcome.payment.id if outcome.payment else "")

    threads = [threading.Thread(target=submit) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == threads_n and len(set(outcomes)) == 1
    assert card_available(app, APPROVE) == before - 1_000
    with app.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(payments)).scalar_one() == 1
    assert event_types(app) == ["payment_request.paid"]
    assert json.loads(client.get("/v1/payments", headers=CAFE_AUTH).text)["data"][0]["status"] == "succeeded"
    ledger_clean(app)
