"""`/wallet/gateway.do` on SQLite and PostgreSQL, through FastAPI's TestClient: every trade
method's happy path and its refusals, in the Alipay open platform's envelopes and codes
(docs/wallet-gateway.md, "Serving"). Requests are signed here as a merchant would sign them
(the platform's rule, `alipay.signing_string`); every signed reply is verified with the
wallet's public key over its exact text."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` under its TestClient; paypos ships httpx, which still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from paypos import limits
from paypos.adapters.vault import Vault
from paypos.bootstrap import App, init_database
from paypos.config import Settings
from paypos.domain.wallet import WalletError
from paypos.entrypoints.api import create_app
from paypos.entrypoints.api_wallet import GATEWAY_PATH, MEDIA_TYPE, business_error_body
from paypos.networks.sandbox.wallet_keys import APP_KEYS, WALLET_PUBLIC_KEY
from paypos.protocol import alipay, paycode, qr
from paypos.services import wallet
from tests.conftest import TEST_DATA_KEY

CAFE_APP, SHOP_APP = "2021000000000001", "2021000000000002"
LIN, ZHANG, SAM = "2088100000000001", "2088100000000002", "2088100000000003"
NOTIFY_URL = "http://127.0.0.1:9/notify"


@pytest.fixture
def seeded(app: App) -> App:
    init_database(app, sandbox=True)
    return app


@pytest.fixture
def client(seeded: App) -> Iterator[TestClient]:
    with TestClient(create_app(seeded, expiry_sweep_interval_s=None, notify_interval_s=None)) as test_client:
        yield test_client


def signed(method: str, biz: dict[str, Any] | None = None, *, app_id: str = CAFE_APP,
           key: str | None = None, **extra: str) -> dict[str, str]:
    """The common parameters of a request, signed RSA2 with the app's TEST private key."""
    params = {"app_id": app_id, "method": method, "format": "JSON", "charset": "utf-8", "sign_type": "RSA2",
              "timestamp": "2026-11-22 17:00:00", "version": "1.0",
              "biz_content": json.dumps(biz or {}, ensure_ascii=False, separators=(",", ":")), **extra}
    params["sign"] = alipay.sign_rsa2(alipay.signing_string(params), key or APP_KEYS[CAFE_APP][0])
    return params


def send(client: TestClient, params: dict[str, str], *, via: str = "get") -> str:
    if via == "get":
        response = client.get(GATEWAY_PATH, params=params)
    else:
        response = client.post(GATEWAY_PATH, data=params)
    assert response.status_code == 200
    assert response.headers["content-type"] == MEDIA_TYPE
    return response.text


def reply(text: str, method: str | None) -> tuple[dict[str, Any], bool]:
    """(the body under the method's response key, whether the reply is signed); a signature
    must verify with the wallet's public key over the body's exact text."""
    prefix = "{" + json.dumps(alipay.response_key(method)) + ":"
    assert text.startswith(prefix), text
    document = json.loads(text)
    if "sign" not in document:
        return json.loads(text[len(prefix):-1]), False
    content = text[len(prefix):text.rindex(',"sign":')]
    assert alipay.verify_rsa2(content, document["sign"], WALLET_PUBLIC_KEY)
    return json.loads(content), True


def call(client: TestClient, method: str, biz: dict[str, Any] | None = None, *, via: str = "get",
         **extra: str) -> dict[str, Any]:
    body, is_signed = reply(send(client, signed(method, biz, **extra), via=via), method)
    assert is_signed
    return body


def code_for(app: App, user_id: str) -> str:
    with app.uow(write=False) as uow:
        return wallet.payment_code(uow, app.vault, app.clock(), user_id)["code"]


def buyer_scans(app: App, payload: str, user_id: str = LIN) -> dict[str, Any]:
    with app.uow() as uow:
        paid = wallet.scan(uow, app.vault, app.clock(), payload, user_id)
        uow.commit()
    return paid


def balance(app: App, user_id: str) -> int:
    with app.uow(write=False) as uow:
        return wallet.buyer_summary(uow, user_id)["balance_minor"]


def precreate(client: TestClient, out_trade_no: str, amount: str = "88.88", **extra: str) -> dict[str, Any]:
    return call(client, "alipay.trade.precreate",
                {"out_trade_no": out_trade_no, "total_amount": amount, "subject": "Two lattes"}, **extra)


def refused(body: dict[str, Any], sub_code: str) -> None:
    assert (body["code"], body["msg"], body["sub_code"]) == ("40004", "Business Failed", sub_code), body


# --- the trade methods -----------------------------------------------------------------------


@pytest.mark.parametrize("via", ["get", "post"])
def test_precreate_answers_an_emvco_qr_the_buyer_pays_then_query_says_trade_success(
    client: TestClient, seeded: App, via: str
) -> None:
    created = call(client, "alipay.trade.precreate",
                   {"out_trade_no": "order-1", "total_amount": "88.88", "subject": "Two lattes"}, via=via)

    assert (created["code"], created["msg"], created["out_trade_no"]) == ("10000", "Success", "order-1")
    decoded = qr.decode_mpm(created["qr_code"])
    assert decoded["54"] == "88.88" and decoded["26"]["01"] == "PPCAFE000000001"
    assert call(client, "alipay.trade.query", {"out_trade_no": "order-1"}, via=via)["trade_status"] == "WAIT_BUYER_PAY"
    buyer_scans(seeded, created["qr_code"])
    queried = call(client, "alipay.trade.query", {"out_trade_no": "order-1"}, via=via)
    assert queried["trade_status"] == "TRADE_SUCCESS" and queried["buyer_user_id"] == LIN
    assert (queried["total_amount"], queried["receipt_amount"]) == ("88.88", "88.88")
    by_trade_no = call(client, "alipay.trade.query", {"trade_no": queried["trade_no"]}, via=via)
    assert by_trade_no["out_trade_no"] == "order-1"


def test_precreate_again_with_the_same_data_answers_the_same_qr_and_with_other_data_is_refused(
    client: TestClient,
) -> None:
    first = precreate(client, "dup")
    assert precreate(client, "dup")["qr_code"] == first["qr_code"]
    refused(precreate(client, "dup", amount="1.00"), "ACQ.CONTEXT_INCONSISTENT")


@pytest.mark.parametrize(("amount", "sub_code"), [("0.00", "ACQ.INVALID_PARAMETER"),
                                                   ("1.234", "ACQ.INVALID_PARAMETER"),
                                                   ("100000000.01", "ACQ.TOTAL_FEE_EXCEED")])
def test_precreate_with_a_bad_amount_is_refused_naming_the_field(client: TestClient, amount: str,
                                                                   sub_code: str) -> None:
    body = precreate(client, "bad-amount", amount=amount)
    refused(body, sub_code)
    assert "total_amount" in body["sub_msg"]


def test_query_of_an_unknown_trade_is_trade_not_exist(client: TestClient) -> None:
    refused(call(client, "alipay.trade.query", {"out_trade_no": "never"}), "ACQ.TRADE_NOT_EXIST")
    refused(call(client, "alipay.trade.query", {}), "ACQ.INVALID_PARAMETER")


def test_an_app_never_sees_another_apps_trade(client: TestClient) -> None:
    trade_no = call(client, "alipay.trade.query", {"out_trade_no": precreate(client, "mine")["out_trade_no"]})["trade_no"]
    theirs = call(client, "alipay.trade.query", {"trade_no": trade_no}, app_id=SHOP_APP, key=APP_KEYS[SHOP_APP][0])
    refused(theirs, "ACQ.TRADE_NOT_EXIST")


def test_partial_refunds_are_idempotent_by_out_request_no_and_never_exceed_the_payment(
    client: TestClient, seeded: App
) -> None:
    buyer_scans(seeded, precreate(client, "order-r")["qr_code"])
    before = balance(seeded, LIN)

    first = call(client, "alipay.trade.refund", {"out_trade_no": "order-r", "refund_amount": "10.00",
                                                 "out_request_no": "r1"})
    again = call(client, "alipay.trade.refund", {"out_trade_no": "order-r", "refund_amount": "10.00",
                                                 "out_request_no": "r1"})
    second = call(client, "alipay.trade.refund", {"out_trade_no": "order-r", "refund_amount": "20.00",
                                                  "out_request_no": "r2"}, via="post")

    assert (first["code"], first["fund_change"], first["refund_fee"]) == ("10000", "Y", "10.00")
    assert (again["fund_change"], again["refund_fee"]) == ("N", "10.00")
    assert (second["fund_change"], second["refund_fee"]) == ("Y", "30.00")
    assert balance(seeded, LIN) == before + 3000
    refused(call(client, "alipay.trade.refund", {"out_trade_no": "order-r", "refund_amount": "58.89",
                                                 "out_request_no": "r3"}), "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
    refused(call(client, "alipay.trade.refund", {"out_trade_no": "order-r", "refund_amount": "11.00",
                                                 "out_request_no": "r1"}), "ACQ.CONTEXT_INCONSISTENT")
    assert balance(seeded, LIN) == before + 3000
    rest = call(client, "alipay.trade.refund", {"out_trade_no": "order-r", "refund_amount": "58.88",
                                                "out_request_no": "r3"})
    assert rest["refund_fee"] == "88.88"
    assert call(client, "alipay.trade.query", {"out_trade_no": "order-r"})["trade_status"] == "TRADE_CLOSED"


def test_refund_of_an_unpaid_or_unknown_trade_is_refused(client: TestClient) -> None:
    precreate(client, "unpaid")
    refused(call(client, "alipay.trade.refund", {"out_trade_no": "unpaid", "refund_amount": "1.00"}),
            "ACQ.TRADE_STATUS_ERROR")
    refused(call(client, "alipay.trade.refund", {"out_trade_no": "nope", "refund_amount": "1.00"}),
            "ACQ.TRADE_NOT_EXIST")


def test_refund_query_answers_the_refund_of_out_request_no_and_success_without_amount_when_none(
    client: TestClient, seeded: App
) -> None:
    buyer_scans(seeded, precreate(client, "order-q")["qr_code"])
    call(client, "alipay.trade.refund", {"out_trade_no": "order-q", "refund_amount": "8.88",
                                         "out_request_no": "rq1", "refund_reason": "cold"})

    found = call(client, "alipay.trade.fastpay.refund.query", {"out_trade_no": "order-q", "out_request_no": "rq1"})
    none = call(client, "alipay.trade.fastpay.refund.query", {"out_trade_no": "order-q", "out_request_no": "rq9"})

    assert (found["refund_amount"], found["refund_status"], found["refund_reason"]) == ("8.88", "REFUND_SUCCESS", "cold")
    assert none["code"] == "10000" and "refund_amount" not in none
    refused(call(client, "alipay.trade.fastpay.refund.query", {"out_trade_no": "nope", "out_request_no": "x"}),
            "ACQ.TRADE_NOT_EXIST")


def test_pay_with_a_payment_code_charges_once_and_a_retry_answers_the_same_trade(
    client: TestClient, seeded: App
) -> None:
    before = balance(seeded, LIN)
    biz = {"out_trade_no": "bar-1", "scene": "bar_code", "auth_code": code_for(seeded, LIN),
           "total_amount": "12.00", "subject": "Bun"}

    paid = call(client, "alipay.trade.pay", biz, notify_url=NOTIFY_URL)
    retry = call(client, "alipay.trade.pay", biz, via="post")

    assert (paid["code"], paid["buyer_user_id"], paid["total_amount"]) == ("10000", LIN, "12.00")
    assert paid["buyer_logon_id"] == "138******01"
    assert retry["code"] == "10000" and retry["trade_no"] == paid["trade_no"]
    assert balance(seeded, LIN) == before - 1200


def test_a_payment_code_reused_expired_or_unknown_is_refused_with_the_cause_in_sub_msg(
    client: TestClient, seeded: App, clock: Any
) -> None:
    code = code_for(seeded, LIN)
    call(client, "alipay.trade.pay", {"out_trade_no": "p1", "auth_code": code, "total_amount": "1.00", "subject": "x"})
    reused = call(client, "alipay.trade.pay", {"out_trade_no": "p2", "auth_code": code, "total_amount": "1.00",
                                               "subject": "x"})
    unknown = call(client, "alipay.trade.pay", {"out_trade_no": "p3", "total_amount": "1.00", "subject": "x",
                                                "auth_code": paycode.generate(bytes(20), 1_000_001, seeded.clock())})
    stale = code_for(seeded, LIN)
    clock.advance(300)
    expired = call(client, "alipay.trade.pay", {"out_trade_no": "p4", "auth_code": stale, "total_amount": "1.00",
                                                "subject": "x"})
    malformed = call(client, "alipay.trade.pay", {"out_trade_no": "p5", "auth_code": "12345", "total_amount": "1.00",
                                                  "subject": "x"})

    causes = {}
    for name, body in {"reused": reused, "unknown": unknown, "expired": expired, "malformed": malformed}.items():
        refused(body, "ACQ.PAYMENT_AUTH_CODE_INVALID")
        assert body["sub_msg"].startswith("支付授权码无效")
        causes[name] = body["sub_msg"]
    assert causes["reused"].endswith("[REUSED]") and causes["unknown"].endswith("[UNKNOWN]")
    assert causes["expired"].endswith("[EXPIRED]") and causes["malformed"].endswith("[MALFORMED]")
    refused(call(client, "alipay.trade.query", {"out_trade_no": "p2"}), "ACQ.TRADE_NOT_EXIST")


def test_pay_above_the_buyers_balance_is_refused_and_leaves_no_trade(client: TestClient, seeded: App) -> None:
    body = call(client, "alipay.trade.pay", {"out_trade_no": "poor", "auth_code": code_for(seeded, ZHANG),
                                             "total_amount": "50.00", "subject": "x"})
    refused(body, "ACQ.BUYER_BALANCE_NOT_ENOUGH")
    assert body["sub_msg"] == "买家余额不足"
    assert balance(seeded, ZHANG) == 1000
    refused(call(client, "alipay.trade.query", {"out_trade_no": "poor"}), "ACQ.TRADE_NOT_EXIST")


def test_pay_from_a_wallet_in_another_currency_is_an_invalid_parameter_saying_why(
    client: TestClient, seeded: App
) -> None:
    body = call(client, "alipay.trade.pay", {"out_trade_no": "usd", "auth_code": code_for(seeded, SAM),
                                             "total_amount": "1.00", "subject": "x"})
    refused(body, "ACQ.INVALID_PARAMETER")
    assert "USD" in body["sub_msg"] and "CNY" in body["sub_msg"]


def test_pay_with_another_scene_is_refused(client: TestClient, seeded: App) -> None:
    body = call(client, "alipay.trade.pay", {"out_trade_no": "wave", "scene": "wave_code", "total_amount": "1.00",
                                             "auth_code": code_for(seeded, LIN), "subject": "x"})
    refused(body, "ACQ.INVALID_PARAMETER")


def test_pay_above_the_no_confirm_limit_answers_10003_until_the_buyer_confirms(
    client: TestClient, seeded: App
) -> None:
    waiting = call(client, "alipay.trade.pay", {"out_trade_no": "big", "auth_code": code_for(seeded, LIN),
                                                "total_amount": "300.00", "subject": "Cake"})

    assert (waiting["code"], waiting["msg"]) == ("10003", " order success pay inprocess")
    assert "sub_code" not in waiting
    assert call(client, "alipay.trade.query", {"out_trade_no": "big"})["trade_status"] == "WAIT_BUYER_PAY"
    with seeded.uow() as uow:
        wallet.confirm(uow, seeded.vault, seeded.clock(), LIN)
        uow.commit()
    assert call(client, "alipay.trade.query", {"out_trade_no": "big"})["trade_status"] == "TRADE_SUCCESS"


def test_cancel_closes_an_unpaid_trade_and_refunds_a_paid_one(client: TestClient, seeded: App) -> None:
    precreate(client, "c-unpaid")
    buyer_scans(seeded, precreate(client, "c-paid")["qr_code"])
    before = balance(seeded, LIN)

    unpaid = call(client, "alipay.trade.cancel", {"out_trade_no": "c-unpaid"})
    paid = call(client, "alipay.trade.cancel", {"out_trade_no": "c-paid"})

    assert (unpaid["code"], unpaid["action"], unpaid["retry_flag"]) == ("10000", "close", "N")
    assert paid["action"] == "refund"
    assert balance(seeded, LIN) == before + 8888
    for out_trade_no in ("c-unpaid", "c-paid"):
        assert call(client, "alipay.trade.query", {"out_trade_no": out_trade_no})["trade_status"] == "TRADE_CLOSED"
    refused(call(client, "alipay.trade.cancel", {"out_trade_no": "nope"}), "ACQ.TRADE_NOT_EXIST")


def test_close_closes_only_a_trade_waiting_for_payment(client: TestClient, seeded: App) -> None:
    precreate(client, "w")
    buyer_scans(seeded, precreate(client, "s")["qr_code"])

    closed = call(client, "alipay.trade.close", {"out_trade_no": "w"})

    assert (closed["code"], closed["out_trade_no"]) == ("10000", "w")
    assert call(client, "alipay.trade.query", {"out_trade_no": "w"})["trade_status"] == "TRADE_CLOSED"
    refused(call(client, "alipay.trade.close", {"out_trade_no": "s"}), "ACQ.REASON_TRADE_STATUS_INVALID")
    refused(call(client, "alipay.trade.close", {"out_trade_no": "nope"}), "ACQ.TRADE_NOT_EXIST")


def test_a_trade_with_a_notify_url_queues_one_signed_notice_per_change(client: TestClient, seeded: App) -> None:
    created = precreate(client, "n1", notify_url=NOTIFY_URL)
    buyer_scans(seeded, created["qr_code"])
    call(client, "alipay.trade.refund", {"out_trade_no": "n1", "refund_amount": "1.00", "out_request_no": "a"})
    call(client, "alipay.trade.refund", {"out_trade_no": "n1", "refund_amount": "1.00", "out_request_no": "a"})

    trade_no = call(client, "alipay.trade.query", {"out_trade_no": "n1"})["trade_no"]
    with seeded.uow(write=False) as uow:
        notices = uow.wallet.notifications_of(trade_no)
    assert [n.params["trade_status"] for n in notices] == ["TRADE_SUCCESS", "TRADE_SUCCESS"]
    assert notices[1].params["refund_fee"] == "1.00" and notices[1].params["out_biz_no"] == "a"
    for notice in notices:
        assert notice.notify_url == NOTIFY_URL and notice.state == "pending"
        assert alipay.verify_notification(notice.params, WALLET_PUBLIC_KEY)


# --- the gateway's own checks ----------------------------------------------------------------


def test_missing_method_is_an_error_response_signed_only_when_the_app_is_known(client: TestClient) -> None:
    params = signed("alipay.trade.query")
    del params["method"]
    known, known_signed = reply(send(client, params), None)
    bare, bare_signed = reply(send(client, {}), None)

    for body in (known, bare):
        assert (body["code"], body["sub_code"], body["sub_msg"]) == ("40001", "isv.missing-method", "缺少方法名参数")
    assert known_signed and not bare_signed


@pytest.mark.parametrize("method", ["alipay.trade.nope", "alipay.trade.create", "alipay.fund.trans.uni.transfer"])
def test_an_unknown_or_unserved_method_is_an_error_response_invalid_method(client: TestClient, method: str) -> None:
    body, _ = reply(send(client, signed(method)), None)
    assert (body["code"], body["msg"], body["sub_code"]) == ("40002", "Invalid Arguments", "isv.invalid-method")


def test_an_unknown_app_is_refused_unsigned_with_invalid_app_id(client: TestClient) -> None:
    body, is_signed = reply(send(client, signed("alipay.trade.query", {"out_trade_no": "x"}, app_id="2021999999999999")),
                            "alipay.trade.query")
    assert (body["code"], body["sub_code"], body["sub_msg"]) == ("40002", "isv.invalid-app-id", "无效的AppID参数")
    assert not is_signed


def test_a_missing_app_id_is_refused_unsigned(client: TestClient) -> None:
    params = signed("alipay.trade.query")
    del params["app_id"]
    body, is_signed = reply(send(client, params), "alipay.trade.query")
    assert (body["code"], body["sub_code"]) == ("40001", "isv.missing-app-id") and not is_signed


@pytest.mark.parametrize("via", ["get", "post"])
def test_a_forged_signature_is_refused_with_the_gateways_signing_string_in_sub_msg(
    client: TestClient, via: str
) -> None:
    params = signed("alipay.trade.precreate", {"out_trade_no": "forged", "total_amount": "1.00", "subject": "x"})
    params["biz_content"] = params["biz_content"].replace("1.00", "0.01")

    body, is_signed = reply(send(client, params, via=via), "alipay.trade.precreate")

    assert (body["code"], body["msg"], body["sub_code"]) == ("40002", "Invalid Arguments", "isv.invalid-signature")
    documented = alipay.SUB_CODES["isv.invalid-signature"].sub_msg
    assert body["sub_msg"] == documented + alipay.signing_string(params).replace("&", "&amp;")
    assert is_signed
    refused(call(client, "alipay.trade.query", {"out_trade_no": "forged"}), "ACQ.TRADE_NOT_EXIST")


def test_a_request_signed_with_another_apps_key_is_refused(client: TestClient) -> None:
    params = signed("alipay.trade.query", {"out_trade_no": "x"}, key=APP_KEYS[SHOP_APP][0])
    body, _ = reply(send(client, params), "alipay.trade.query")
    assert body["sub_code"] == "isv.invalid-signature"


@pytest.mark.parametrize(("changes", "code", "sub_code"), [
    ({"sign_type": "RSA"}, "40002", "isv.invalid-signature-type"),
    ({"charset": "gbk"}, "40002", "isv.invalid-charset"),
    ({"format": "XML"}, "40002", "isv.invalid-format"),
    ({"version": "2.0"}, "40002", "isv.invalid-parameter"),
    ({"timestamp": "2026-11-22T17:00:00"}, "40002", "isv.invalid-timestamp"),
    ({"notify_url": "ftp://merchant.example/notify"}, "40002", "isv.invalid-parameter"),
    ({"biz_content": "[1]"}, "40002", "isv.invalid-parameter"),
    ({"sign": ""}, "40001", "isv.missing-signature"),
])
def test_bad_common_parameters_are_refused_signed_with_the_documented_code(
    client: TestClient, changes: dict[str, str], code: str, sub_code: str
) -> None:
    params = {**signed("alipay.trade.query", {"out_trade_no": "x"}), **changes}
    body, is_signed = reply(send(client, params), "alipay.trade.query")
    assert (body["code"], body["sub_code"], body["sub_msg"]) == (code, sub_code, alipay.SUB_CODES[sub_code].sub_msg)
    assert is_signed


def test_post_with_common_parameters_in_the_query_and_biz_content_in_the_form_as_the_java_sdk_does(
    client: TestClient,
) -> None:
    params = signed("alipay.trade.precreate", {"out_trade_no": "java", "total_amount": "2.00", "subject": "x"})
    form = {"biz_content": params.pop("biz_content")}
    response = client.post(f"{GATEWAY_PATH}?{urlencode(params)}", data=form,
                           headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"})
    body, _ = reply(response.text, "alipay.trade.precreate")
    assert body["code"] == "10000" and body["out_trade_no"] == "java"


def test_a_parameter_in_both_the_query_and_the_form_is_refused(client: TestClient) -> None:
    params = signed("alipay.trade.query", {"out_trade_no": "x"})
    response = client.post(f"{GATEWAY_PATH}?{urlencode({'biz_content': '{}'})}", data=params)
    body, _ = reply(response.text, None)
    assert body["sub_code"] == "isv.invalid-parameter"


@pytest.mark.parametrize(("content_type", "sub_code"), [
    ("application/json", "isv.invalid-parameter"),
    ("application/x-www-form-urlencoded; charset=GBK", "isv.invalid-charset"),
])
def test_a_post_that_is_not_a_utf8_form_is_refused(client: TestClient, content_type: str, sub_code: str) -> None:
    response = client.post(GATEWAY_PATH, content=urlencode(signed("alipay.trade.query")).encode(),
                           headers={"Content-Type": content_type})
    assert response.status_code == 200
    assert reply(response.text, None)[0]["sub_code"] == sub_code


def test_an_oversized_or_malformed_form_is_refused_without_reading_on(client: TestClient) -> None:
    huge = client.post(GATEWAY_PATH, content=b"a=" + b"x" * limits.http_request_body_bytes_max,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    twice = client.get(f"{GATEWAY_PATH}?method=a.b&method=a.b")
    not_utf8 = client.post(GATEWAY_PATH, content=b"method=%FF", headers={"Content-Type": "application/x-www-form-urlencoded"})
    for response in (huge, twice, not_utf8):
        assert response.status_code == 200
        body, is_signed = reply(response.text, None)
        assert (body["code"], body["sub_code"]) == ("40002", "isv.invalid-parameter") and not is_signed


def test_a_wallet_code_the_platform_lacks_becomes_system_error_and_says_so() -> None:
    body = business_error_body(WalletError("something_new", "an unforeseen refusal"))
    assert (body["code"], body["sub_code"]) == ("40004", "ACQ.SYSTEM_ERROR")
    assert body["sub_msg"].endswith("an unforeseen refusal")


def test_an_unreachable_database_is_an_unsigned_service_unavailable(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, data_key=TEST_DATA_KEY)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'paypos.db'}")
    broken = App(settings=settings, engine=engine, vault=Vault(bytes.fromhex(TEST_DATA_KEY)))
    with TestClient(create_app(broken, expiry_sweep_interval_s=None, notify_interval_s=None)) as test_client:
        body, is_signed = reply(send(test_client, signed("alipay.trade.query", {"out_trade_no": "x"})),
                                "alipay.trade.query")
    assert (body["code"], body["sub_code"]) == ("20000", "isp.unknow-error") and not is_signed
