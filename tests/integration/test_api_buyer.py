"""The wallet app's REST API (entrypoints.api_buyer) on SQLite and PostgreSQL: each
`/v1/wallet/...` route's happy path and its bad-input twin, every route behind the
user's `wu_test_` token (401 otherwise), and RFC 9457 problems whose status follows one
rule: 404 unknown trade, 409 refused by the wallet's state, 422 a wrong request."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` under its TestClient; paypos ships httpx, which still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from paypos.adapters.db.schema import wallet_users
from paypos.bootstrap import App, init_database
from paypos.entrypoints.api import PROBLEM_BASE, create_app
from paypos.entrypoints.api_buyer import install_buyer_routes
from paypos.networks.sandbox import catalog
from paypos.networks.sandbox.wallet_tokens import wallet_user_token
from paypos.services import wallet
from tests.conftest import FakeClock

CAFE_APP = "2021000000000001"
LIN = "2088100000000001"
ZHANG = "2088100000000002"
LIN_CARD = "visa-cvn18-approve"
PROBLEM_JSON = "application/problem+json"


def auth(user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {wallet_user_token(user_id)}"}


@pytest.fixture
def seeded(app: App) -> App:
    init_database(app, sandbox=True)
    return app


@pytest.fixture
def client(seeded: App) -> TestClient:
    """No `with`: the lifespan's background sweepers stay off; the tests drive the clock."""
    api = create_app(seeded, expiry_sweep_interval_s=None)
    if not any(getattr(route, "path", None) == "/v1/wallet/me" for route in api.routes):
        install_buyer_routes(api)  # until create_app installs them itself
    return TestClient(api)


def precreate(app: App, out_trade_no: str, amount: str, **extend: str) -> str:
    """A merchant's dynamic collection code (alipay.trade.precreate)."""
    biz: dict[str, Any] = {"out_trade_no": out_trade_no, "total_amount": amount, "subject": "Coffee"}
    if extend:
        biz["extend_params"] = extend
    with app.uow() as uow:
        created = wallet.precreate(uow, app.vault, app.clock(), uow.wallet.get_app(CAFE_APP), biz, None)
        uow.commit()
    return created["qr_code"]


def charge_code(app: App, code: str, out_trade_no: str, amount: str) -> tuple[str, dict[str, Any]]:
    """The merchant's scanner charges a payment code (alipay.trade.pay)."""
    biz = {"out_trade_no": out_trade_no, "scene": "bar_code", "auth_code": code, "total_amount": amount,
           "subject": "Cake"}
    with app.uow() as uow:
        result = wallet.pay_by_code(uow, app.vault, app.clock(), uow.wallet.get_app(CAFE_APP), biz, None)
        uow.commit()
    return result


def me(client: TestClient, user_id: str = LIN) -> dict[str, Any]:
    response = client.get("/v1/wallet/me", headers=auth(user_id))
    assert response.status_code == 200, response.text
    return response.json()


def assert_problem(response: Any, status: int, slug: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["type"] == PROBLEM_BASE + slug and body["status"] == status and body["detail"]
    if field is not None:
        assert body["field"] == field
    return body


# --- authentication --------------------------------------------------------------------------------

ROUTES = [("GET", "/v1/wallet/me"), ("POST", "/v1/wallet/scan"), ("POST", "/v1/wallet/code"),
          ("POST", "/v1/wallet/confirm"), ("POST", "/v1/wallet/top_ups"), ("GET", "/v1/wallet/bills"),
          ("POST", "/v1/wallet/repayments"), ("POST", "/v1/wallet/payoffs")]
WRONG_TOKENS = {
    "missing": {},
    "not-bearer": {"Authorization": f"Basic {wallet_user_token(LIN)}"},
    "wrong-mac": {"Authorization": f"Bearer wu_test_{LIN}_{'0' * 32}"},
    "other-users-mac": {"Authorization": f"Bearer wu_test_{LIN}_{wallet_user_token(ZHANG).rsplit('_', 1)[1]}"},
    "merchant-key": {"Authorization": f"Bearer {catalog.merchant_api_key(catalog.CAFE.merchant_id)[1]}"},
    "no-such-user": auth("2088199999999999"),
}


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[p for _, p in ROUTES])
def test_every_route_answers_401_to_a_wrong_token_before_reading_the_body(client: TestClient, method, path):
    for name, headers in WRONG_TOKENS.items():
        response = client.request(method, path, headers=headers, json={"funding": "cash"})
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer"), name


# --- me --------------------------------------------------------------------------------------------


def test_me_shows_the_buyers_own_wallet(client: TestClient):
    lin, zhang = me(client, LIN), me(client, ZHANG)
    assert (lin["object"], lin["user_id"], lin["currency"], lin["balance_minor"]) == ("wallet", LIN, "CNY", 500_000)
    assert lin["linked_cards"] == [LIN_CARD] and lin["awaiting_confirmation"] == [] and lin["recent_trades"] == []
    assert (zhang["user_id"], zhang["balance_minor"]) == (ZHANG, 1_000)


def test_me_of_an_inactive_user_is_403(client: TestClient, seeded: App):
    with seeded.engine.begin() as conn:
        conn.execute(sa.update(wallet_users).where(wallet_users.c.user_id == ZHANG).values(status="frozen"))
    assert_problem(client.post("/v1/wallet/code", headers=auth(ZHANG)), 403, "user-inactive", "user")


# --- scan ------------------------------------------------------------------------------------------


def test_scan_pays_a_dynamic_code_from_balance(client: TestClient, seeded: App):
    payload = precreate(seeded, "scan-1", "88.88")
    response = client.post("/v1/wallet/scan", headers=auth(LIN), json={"payload": payload})
    assert response.status_code == 200, response.text
    trade = response.json()
    assert (trade["object"], trade["state"], trade["funding"], trade["amount_minor"]) == (
        "trade", "TRADE_SUCCESS", "balance", 8888)
    assert me(client)["balance_minor"] == 500_000 - 8888
    again = client.post("/v1/wallet/scan", headers=auth(LIN), json={"payload": payload})
    assert_problem(again, 409, "acq-trade-has-success")


def test_scan_pays_with_credit_pay_in_installments_and_a_static_code_with_its_amount(client: TestClient, seeded: App):
    payload = precreate(seeded, "scan-hb", "600.00")
    paid = client.post("/v1/wallet/scan", headers=auth(LIN),
                       json={"payload": payload, "funding": "creditpay", "installments": 6}).json()
    assert (paid["funding"], paid["installments"], paid["fee_payer"]) == ("creditpay", 6, "buyer")
    with seeded.uow(write=False) as uow:
        static = wallet.collection_payload(uow.registry.get_merchant(catalog.CAFE.merchant_id), None, None)
    typed = client.post("/v1/wallet/scan", headers=auth(LIN),
                        json={"payload": static, "funding": "card", "amount_minor": 1250}).json()
    assert (typed["state"], typed["funding"], typed["amount_minor"]) == ("TRADE_SUCCESS", "card", 1250)


@pytest.mark.parametrize(
    ("body", "status", "slug", "field"),
    [
        ({"payload": "not a code"}, 422, "invalid-qr", "payload"),
        ({"funding": "cash"}, 422, "validation-error", "funding"),
        ({"installments": 5}, 422, "validation-error", "installments"),
        ({"installments": "6"}, 422, "validation-error", "installments"),
        ({"amount_minor": 12.5}, 422, "validation-error", "amount_minor"),
        ({"amount_minor": 0}, 422, "validation-error", "amount_minor"),
        ({"installments": 6}, 422, "invalid-installments", "installments"),  # balance takes no installments
        ({"card_id": "visa-cvn18-insufficient-funds", "funding": "card"}, 422, "card-not-linked", "card"),
        ({"extra": 1}, 422, "validation-error", "extra"),
    ],
    ids=["bad-payload", "bad-funding", "bad-installments", "installments-as-text", "float-amount", "zero-amount",
         "installments-without-credit", "card-not-linked", "unknown-member"],
)
def test_scan_refuses_bad_input_with_422_and_pays_nothing(client: TestClient, seeded: App, body, status, slug, field):
    payload = precreate(seeded, "scan-bad", "10.00")
    response = client.post("/v1/wallet/scan", headers=auth(LIN), json={"payload": payload, **body})
    assert_problem(response, status, slug, field)
    assert me(client)["balance_minor"] == 500_000


def test_scan_refusals_by_state_are_409_and_an_unknown_trade_404(client: TestClient, seeded: App):
    poor = client.post("/v1/wallet/scan", headers=auth(ZHANG), json={"payload": precreate(seeded, "poor", "50.00")})
    assert_problem(poor, 409, "acq-buyer-balance-not-enough")
    over = client.post("/v1/wallet/scan", headers=auth(ZHANG),
                       json={"payload": precreate(seeded, "over", "600.00"), "funding": "creditpay"})
    assert_problem(over, 409, "credit-limit-exceeded")
    with seeded.uow(write=False) as uow:
        ghost = wallet.collection_payload(uow.registry.get_merchant(catalog.CAFE.merchant_id), 100,
                                          "202611220000000000000000")
    assert_problem(client.post("/v1/wallet/scan", headers=auth(LIN), json={"payload": ghost}),
                   404, "acq-trade-not-exist")
    with seeded.uow(write=False) as uow:
        static = wallet.collection_payload(uow.registry.get_merchant(catalog.CAFE.merchant_id), None, None)
    assert_problem(client.post("/v1/wallet/scan", headers=auth(LIN), json={"payload": static}),
                   422, "amount-required", "amount")


# --- payment code and confirm ------------------------------------------------------------------------


def test_code_is_a_fresh_18_digit_code_the_merchant_can_charge(client: TestClient, seeded: App):
    response = client.post("/v1/wallet/code", headers=auth(LIN))
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["object"] == "payment_code" and len(shown["code"]) == 18 and shown["code"].isdigit()
    assert shown["no_confirm_limit_minor"] == 20_000 and shown["valid_until"].endswith("+00:00")
    status, fields = charge_code(seeded, shown["code"], "bar-1", "12.00")
    assert status == "10000" and fields["buyer_user_id"] == LIN


def test_code_takes_no_body_and_other_methods_are_405(client: TestClient):
    assert_problem(client.get("/v1/wallet/code", headers=auth(LIN)), 405, "method-not-allowed")


def test_confirm_pays_the_charge_waiting_above_the_limit(client: TestClient, seeded: App):
    code = client.post("/v1/wallet/code", headers=auth(LIN)).json()["code"]
    status, fields = charge_code(seeded, code, "bar-big", "300.00")
    assert status == "10003"
    assert [t["trade_no"] for t in me(client)["awaiting_confirmation"]] == [fields["trade_no"]]
    response = client.post("/v1/wallet/confirm", headers=auth(LIN), json={"trade_no": fields["trade_no"]})
    assert response.status_code == 200, response.text
    assert (response.json()["state"], response.json()["amount_minor"]) == ("TRADE_SUCCESS", 30_000)
    assert me(client)["balance_minor"] == 500_000 - 30_000
    assert_problem(client.post("/v1/wallet/confirm", headers=auth(LIN), json={}), 409, "confirmation-not-found")


def test_confirm_refuses_bad_input_an_unknown_trade_and_another_buyers_trade(client: TestClient, seeded: App):
    code = client.post("/v1/wallet/code", headers=auth(LIN)).json()["code"]
    _, fields = charge_code(seeded, code, "bar-big", "300.00")
    assert_problem(client.post("/v1/wallet/confirm", headers=auth(LIN), json={"funding": "cash"}),
                   422, "validation-error", "funding")
    assert_problem(client.post("/v1/wallet/confirm", headers=auth(LIN), json={"trade_no": "2026112200"}),
                   404, "trade-not-found", "trade_no")
    assert_problem(client.post("/v1/wallet/confirm", headers=auth(ZHANG), json={"trade_no": fields["trade_no"]}),
                   404, "trade-not-found", "trade_no")
    assert len(me(client)["awaiting_confirmation"]) == 1


# --- top-ups ---------------------------------------------------------------------------------------


def test_top_up_from_a_linked_card_happens_once_per_idempotency_key(client: TestClient):
    headers = {**auth(LIN), "Idempotency-Key": "top-1"}
    first = client.post("/v1/wallet/top_ups", headers=headers, json={"card_id": LIN_CARD, "amount_minor": 10_050})
    again = client.post("/v1/wallet/top_ups", headers=headers, json={"card_id": LIN_CARD, "amount_minor": 10_050})
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["object"] == "top_up" and first.json()["topup_id"] == "top-1"
    assert again.json()["wallet"]["balance_minor"] == 500_000 + 10_050 == me(client)["balance_minor"]
    by_body = client.post("/v1/wallet/top_ups", headers=auth(LIN),
                          json={"card_id": LIN_CARD, "amount_minor": 100, "topup_id": "top-2"})
    assert by_body.json()["wallet"]["balance_minor"] == 500_000 + 10_150


@pytest.mark.parametrize(
    ("body", "headers", "status", "slug", "field"),
    [
        ({"card_id": LIN_CARD, "amount_minor": 100}, {}, 422, "validation-error", "topup_id"),
        ({"card_id": LIN_CARD, "amount_minor": 100, "topup_id": "a"}, {"Idempotency-Key": "b"}, 422,
         "validation-error", "topup_id"),
        ({"card_id": LIN_CARD, "amount_minor": -1, "topup_id": "a"}, {}, 422, "validation-error", "amount_minor"),
        ({"card_id": LIN_CARD, "amount_minor": "100", "topup_id": "a"}, {}, 422, "validation-error",
         "amount_minor"),
        ({"card_id": "visa-usd-cvn18-approve", "amount_minor": 100, "topup_id": "a"}, {}, 422, "card-not-linked",
         "card"),
        ({"amount_minor": 100, "topup_id": "a"}, {}, 422, "validation-error", "card_id"),
    ],
    ids=["no-id", "ids-differ", "negative", "amount-as-text", "card-not-linked", "no-card"],
)
def test_top_up_refuses_bad_input_with_422(client: TestClient, body, headers, status, slug, field):
    assert_problem(client.post("/v1/wallet/top_ups", headers={**auth(LIN), **headers}, json=body), status, slug,
                   field)
    assert me(client)["balance_minor"] == 500_000


def test_top_up_from_a_card_without_the_funds_is_409(client: TestClient):
    response = client.post("/v1/wallet/top_ups", headers={**auth(ZHANG), "Idempotency-Key": "t"},
                           json={"card_id": "visa-cvn18-insufficient-funds", "amount_minor": 10_000_000})
    assert_problem(response, 409, "insufficient-funds")


# --- credit pay: bills, repayments, payoffs -----------------------------------------------------------


def buy_on_credit(client: TestClient, app: App, out_trade_no: str, amount: str, installments: int = 6) -> str:
    trade = client.post("/v1/wallet/scan", headers=auth(LIN), json={
        "payload": precreate(app, out_trade_no, amount), "funding": "creditpay", "installments": installments})
    assert trade.status_code == 200, trade.text
    return trade.json()["trade_no"]


def test_bills_show_the_plan_then_the_issued_bill(client: TestClient, seeded: App, clock: FakeClock):
    trade_no = buy_on_credit(client, seeded, "hb-1", "600.00")
    response = client.get("/v1/wallet/bills", headers=auth(LIN))
    assert response.status_code == 200, response.text
    statement = response.json()
    assert (statement["object"], statement["currency"], statement["bills"]) == ("credit_statement", "CNY", [])
    assert [p["trade_no"] for p in statement["plans"]] == [trade_no]
    assert statement["available_minor"] == statement["credit_limit_minor"] - 60_000
    clock.advance(12 * 86_400)  # past the sandbox's bill day (the 1st), before the due day (the 10th)
    billed = client.get("/v1/wallet/bills", headers=auth(LIN)).json()
    assert [(b["bill_date"], b["due_date"], b["state"]) for b in billed["bills"]] == [
        ("2026-12-01", "2026-12-10", "open")]
    assert 0 < billed["bills"][0]["amount_minor"] < 60_000 and billed["plans"][0]["installments_billed"] == 1


def test_bills_take_no_body_and_other_methods_are_405(client: TestClient):
    assert_problem(client.post("/v1/wallet/bills", headers=auth(LIN), json={}), 405, "method-not-allowed")


def test_repayment_lowers_what_is_owed_once_per_id(client: TestClient, seeded: App):
    buy_on_credit(client, seeded, "hb-2", "600.00")
    owed = client.get("/v1/wallet/bills", headers=auth(LIN)).json()["owed_minor"]
    body = {"amount_minor": 5_000, "repayment_id": "rep-1"}
    first = client.post("/v1/wallet/repayments", headers=auth(LIN), json=body)
    again = client.post("/v1/wallet/repayments", headers=auth(LIN), json=body)
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["object"] == "repayment" and again.json()["owed_minor"] == owed - 5_000
    assert me(client)["balance_minor"] == 500_000 - 5_000
    by_card = client.post("/v1/wallet/repayments", headers={**auth(LIN), "Idempotency-Key": "rep-2"},
                          json={"amount_minor": 1_000, "source": "card", "card_id": LIN_CARD})
    assert by_card.status_code == 200 and by_card.json()["owed_minor"] == owed - 6_000


@pytest.mark.parametrize(
    ("body", "status", "slug", "field"),
    [
        ({"amount_minor": 100}, 422, "validation-error", "repayment_id"),
        ({"amount_minor": 1.5, "repayment_id": "r"}, 422, "validation-error", "amount_minor"),
        ({"amount_minor": 100, "repayment_id": "r", "source": "cash"}, 422, "validation-error", "source"),
        ({"amount_minor": 100, "repayment_id": "r", "card_id": LIN_CARD}, 422, "validation-error", "card_id"),
        ({"amount_minor": 10_000_000, "repayment_id": "r"}, 409, "overpayment", "amount"),
    ],
    ids=["no-id", "float-amount", "bad-source", "card-without-card-source", "above-owed"],
)
def test_repayment_refuses_bad_input(client: TestClient, seeded: App, body, status, slug, field):
    buy_on_credit(client, seeded, "hb-3", "600.00")
    assert_problem(client.post("/v1/wallet/repayments", headers=auth(LIN), json=body), status, slug, field)
    assert me(client)["balance_minor"] == 500_000


def test_repayment_with_nothing_owed_is_409(client: TestClient):
    response = client.post("/v1/wallet/repayments", headers=auth(LIN), json={"amount_minor": 100, "repayment_id": "r"})
    assert_problem(response, 409, "nothing-owed")


def test_payoff_settles_a_plan_early_and_only_once(client: TestClient, seeded: App):
    trade_no = buy_on_credit(client, seeded, "hb-4", "600.00")
    response = client.post("/v1/wallet/payoffs", headers=auth(LIN), json={"trade_no": trade_no})
    assert response.status_code == 200, response.text
    done = response.json()
    assert (done["object"], done["trade_no"], done["principal_paid_minor"]) == ("payoff", trade_no, 60_000)
    assert done["owed_minor"] == 0 and me(client)["balance_minor"] == 500_000 - 60_000
    assert_problem(client.post("/v1/wallet/payoffs", headers=auth(LIN), json={"trade_no": trade_no}),
                   409, "plan-paid-off", "trade_no")


@pytest.mark.parametrize(
    ("body", "status", "slug", "field"),
    [
        ({"trade_no": "2026112200000000"}, 404, "plan-not-found", "trade_no"),
        ({}, 422, "validation-error", "trade_no"),
        ({"trade_no": 2026}, 422, "validation-error", "trade_no"),
        ({"trade_no": "x", "card_id": LIN_CARD}, 422, "validation-error", "card_id"),
    ],
    ids=["unknown-trade", "no-trade", "trade-as-number", "card-without-card-source"],
)
def test_payoff_refuses_bad_input(client: TestClient, body, status, slug, field):
    assert_problem(client.post("/v1/wallet/payoffs", headers=auth(LIN), json=body), status, slug, field)
