"""paypos.protocol.alipay: the wallet gateway's wire protocol, checked against the real SDK.

The acceptance client is python-alipay-sdk 3.4.0 (PyPI ``python-alipay-sdk``, ``import
alipay``), used here unchanged and without network: its HTTP call, the module-level
``alipay.urlopen`` that ``BaseAliPay.verified_sync_response`` calls, is replaced by a function
that hands the request URL to our gateway functions and returns their reply.  What each test
leans on in the SDK:

- requests: ``BaseAliPay.build_body`` + ``sign_data`` (the signed GET query);
- responses: ``_verify_and_return_sync_response`` / ``_get_string_to_be_signed``;
- notifications: ``verify(data, signature)`` after ``data.pop("sign")``, as its README shows.

Other sources, cited where used: alipay-sdk for Node.js (npm ``alipay-sdk``, the
``formatExecHttpResponse`` docstring quoting a real isv.invalid-signature reply), the Java
SDK's ``AlipaySignature.getSignCheckContentV1``, and the platform's pages "自行实现签名",
"公共错误码" and "异步通知说明".
"""

from __future__ import annotations

import datetime
import decimal
import json
import string

import alipay
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paypos.protocol.alipay import (
    AMOUNT_MINOR_MAX,
    ERROR_RESPONSE_KEY,
    SUB_CODES,
    GatewayError,
    KeyFormatError,
    business_error,
    decode_form,
    encode_form,
    encode_response,
    format_amount,
    format_timestamp,
    generate_rsa2_keypair,
    is_notification_acknowledged,
    notification_signing_string,
    parse_amount,
    parse_request,
    parse_timestamp,
    response_key,
    sign_notification,
    sign_rsa2,
    signing_string,
    success,
    trade_status_sync_params,
    verify_notification,
    verify_request,
    verify_rsa2,
)

APP_ID = "2021000122671080"
NOTIFY_URL = "https://merchant.example/alipay/notify"
GATEWAY_URL = "http://127.0.0.1:8000/wallet/gateway.do"
PAID_AT = datetime.datetime(2024, 5, 13, 17, 49, 20)
_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- keys and the SDK client ------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_keys() -> tuple[str, str]:
    return generate_rsa2_keypair()


@pytest.fixture(scope="module")
def wallet_keys() -> tuple[str, str]:
    return generate_rsa2_keypair()


@pytest.fixture(scope="module")
def client(app_keys, wallet_keys) -> alipay.AliPay:
    """The SDK as a merchant configures it, pointed at our gateway."""
    sdk = alipay.AliPay(
        appid=APP_ID,
        app_notify_url=NOTIFY_URL,
        app_private_key_string=app_keys[0],
        alipay_public_key_string=wallet_keys[1],
        sign_type="RSA2",
    )
    sdk._gateway = GATEWAY_URL  # the one change the acceptance test makes
    return sdk


class _Reply:
    def __init__(self, text: str) -> None:
        self._body = text.encode("utf-8")

    def read(self) -> bytes:
        return self._body


class FakeGateway:
    """Stands in for ``alipay.urlopen``: parses, verifies, answers with our functions."""

    def __init__(self, app_public_key: str, wallet_private_key: str) -> None:
        self.app_public_key = app_public_key
        self.wallet_private_key = wallet_private_key
        self.urls: list[str] = []
        self.requests: list = []
        self.reply_body: dict | None = None
        self.tamper = None

    def __call__(self, url: str, timeout: float | None = None) -> _Reply:
        self.urls.append(url)
        assert url.startswith(GATEWAY_URL + "?")
        params = decode_form(url.split("?", 1)[1])
        if self.tamper is not None:
            params = self.tamper(params)
        try:
            request = parse_request(params)
            verify_request(request, self.app_public_key)
        except GatewayError as error:
            key = self.wallet_private_key if error.method else None
            return _Reply(encode_response(error.method, error.body(), key))
        self.requests.append(request)
        body = self.reply_body or success({"out_trade_no": request.biz_content["out_trade_no"]})
        return _Reply(encode_response(request.method, body, self.wallet_private_key))


@pytest.fixture()
def gateway(monkeypatch, app_keys, wallet_keys) -> FakeGateway:
    fake = FakeGateway(app_keys[1], wallet_keys[0])
    monkeypatch.setattr(alipay, "urlopen", fake)
    return fake


def _sdk_signed_params(client: alipay.AliPay, method: str, biz: dict, **kwargs) -> dict:
    """The parameters the SDK would send, exactly: ``sign_data``'s query, decoded."""
    return decode_form(client.sign_data(client.build_body(method, biz, **kwargs)))


# --- signing strings ----------------------------------------------------------------------------


def test_signing_string_matches_the_platforms_quoted_example():
    # alipay-sdk (Node.js) formatExecHttpResponse docstring: the gateway's own signing string
    # for a request without biz_content, quoted in a real isv.invalid-signature reply.
    params = {
        "method": "alipay.security.risk.content.analyze",
        "app_id": "2021000122671080",
        "version": "1.0",
        "charset": "utf-8",
        "timestamp": "2024-05-13 17:49:20",
        "sign_type": "RSA2",
        "sign": "c2lnbg==",
    }
    assert signing_string(params) == (
        "app_id=2021000122671080&charset=utf-8&method=alipay.security.risk.content.analyze"
        "&sign_type=RSA2&timestamp=2024-05-13 17:49:20&version=1.0"
    )


def test_signing_string_drops_empty_values_unless_told_to_keep_them_as_the_sdk_does():
    params = {"b": "2", "a": "", "sign": "x", "c": "3"}
    assert signing_string(params) == "b=2&c=3"
    assert signing_string(params, skip_empty=False) == "a=&b=2&c=3"


def test_signing_string_keeps_values_raw_without_url_encoding():
    params = {"subject": "咖啡 & 茶=好", "notify_url": "https://m.example/n?x=1"}
    assert signing_string(params) == "notify_url=https://m.example/n?x=1&subject=咖啡 & 茶=好"


def test_notification_signing_string_leaves_out_sign_and_sign_type_like_rsa_check_v1():
    params = {"sign": "x", "sign_type": "RSA2", "trade_no": "1", "app_id": "2", "memo": ""}
    assert notification_signing_string(params) == "app_id=2&memo=&trade_no=1"


def test_signing_string_equals_the_sdks_own_unsigned_string(client):
    data = client.build_body(
        "alipay.trade.precreate",
        {"out_trade_no": "o-1", "total_amount": "88.88", "subject": "咖啡"},
    )
    sdk_string = "&".join(f"{k}={v}" for k, v in client._ordered_data(dict(data)))
    assert signing_string(dict(client._ordered_data(dict(data)))) == sdk_string


# --- RSA2 ----------------------------------------------------------------------------------------


def test_sign_rsa2_gives_the_same_signature_as_the_sdk(client, app_keys):
    # PKCS#1 v1.5 is deterministic: the SDK's BaseAliPay._sign is a known-answer oracle.
    message = "app_id=1&biz_content={\"a\":\"\\u54c1\"}&charset=utf-8&subject=咖啡"
    assert sign_rsa2(message, app_keys[0]) == client._sign(message)


def test_verify_rsa2_accepts_its_own_signature_and_refuses_any_change(app_keys, wallet_keys):
    signature = sign_rsa2("a=1&b=2", app_keys[0])
    assert verify_rsa2("a=1&b=2", signature, app_keys[1])
    assert not verify_rsa2("a=1&b=3", signature, app_keys[1])
    assert not verify_rsa2("a=1&b=2", signature, wallet_keys[1])


@pytest.mark.parametrize("signature", ["", "not base64!", "AAAA", "c2lnbg"])
def test_verify_rsa2_returns_false_for_a_malformed_signature(app_keys, signature):
    assert verify_rsa2("a=1", signature, app_keys[1]) is False


def test_generated_keys_are_2048_bit_pem_the_sdk_can_import(app_keys):
    from Cryptodome.PublicKey import RSA  # the SDK's own key loader

    private_pem, public_pem = app_keys
    assert private_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert public_pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert RSA.importKey(private_pem).size_in_bits() == 2048
    assert RSA.importKey(public_pem).size_in_bits() == 2048


def test_keys_in_pkcs1_pem_and_in_the_platforms_bare_base64_are_accepted(app_keys):
    key = serialization.load_pem_private_key(app_keys[0].encode(), password=None)
    pkcs1 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    bare_public = "".join(app_keys[1].splitlines()[1:-1])  # what the key tool prints
    assert verify_rsa2("m", sign_rsa2("m", pkcs1), bare_public)


def _pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
        lambda: _pem(ec.generate_private_key(ec.SECP256R1())),
        lambda: "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
        lambda: "%%% not base64 %%%",
        lambda: "",
    ],
    ids=["rsa-1024", "ec-p256", "bad-pem", "bad-base64", "empty"],
)
def test_sign_rsa2_refuses_a_key_that_is_not_rsa_of_2048_bits(make_key):
    with pytest.raises(KeyFormatError):
        sign_rsa2("m", make_key())


# --- requests from the SDK -----------------------------------------------------------------------


def test_sdk_precreate_request_parses_and_verifies(client, gateway):
    result = client.api_alipay_trade_precreate(
        subject="测试商品", out_trade_no="20240513-0001", total_amount=88.88
    )
    assert result == {"code": "10000", "msg": "Success", "out_trade_no": "20240513-0001"}
    (request,) = gateway.requests
    assert request.method == "alipay.trade.precreate"
    assert request.app_id == APP_ID
    assert request.notify_url == NOTIFY_URL
    assert request.biz_content["subject"] == "测试商品"
    assert request.biz_content["total_amount"] == decimal.Decimal("88.88")
    assert parse_amount(request.biz_content["total_amount"]) == 8888
    assert "format" not in request.params  # the SDK never sends it


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.api_alipay_trade_pay(
            "o-2", "bar_code", "286123456789012345", "s", total_amount="1.00"
        ),
        lambda c: c.api_alipay_trade_query(out_trade_no="o-2"),
        lambda c: c.api_alipay_trade_cancel(out_trade_no="o-2"),
        lambda c: c.api_alipay_trade_close(out_trade_no="o-2"),
        lambda c: c.api_alipay_trade_refund("1.00", out_trade_no="o-2"),
        lambda c: c.api_alipay_trade_fastpay_refund_query("r-1", out_trade_no="o-2"),
        lambda c: c.api_alipay_trade_create("s", "o-2", "1.00"),
    ],
    ids=["pay", "query", "cancel", "close", "refund", "refund.query", "create"],
)
def test_every_sdk_trade_request_verifies_and_its_reply_is_accepted(client, gateway, call):
    # "create" also covers the SDK's response_type "alipay_trade_create" (no "_response"):
    # it still finds our alipay_trade_create_response key by prefix.
    assert call(client)["out_trade_no"] == "o-2"
    assert len(gateway.requests) == 1


def test_sdk_request_with_an_empty_value_verifies_by_the_sdks_rule(client, app_keys):
    biz = {"out_trade_no": "o"}
    params = _sdk_signed_params(client, "alipay.trade.query", biz, app_auth_token="")
    assert params["app_auth_token"] == ""
    # The platform's string (empty value dropped) is not what the SDK signed ...
    assert not verify_rsa2(signing_string(params), params["sign"], app_keys[1])
    # ... yet the request is accepted, by the SDK's string.
    verify_request(parse_request(params), app_keys[1])


def test_tampered_sdk_request_is_refused_with_40002_invalid_signature(client, gateway):
    def raise_amount(params):
        biz = json.loads(params["biz_content"])
        biz["total_amount"] = "0.01"
        return {**params, "biz_content": json.dumps(biz, separators=(",", ":"))}

    gateway.tamper = raise_amount
    result = client.api_alipay_trade_precreate(
        subject="s", out_trade_no="o-3", total_amount="88.88"
    )
    assert result["code"] == "40002"
    assert result["msg"] == "Invalid Arguments"
    assert result["sub_code"] == "isv.invalid-signature"
    assert result["sub_msg"].startswith(SUB_CODES["isv.invalid-signature"].sub_msg)
    assert "&amp;biz_content=" in result["sub_msg"]
    assert gateway.requests == []


def test_request_signed_with_another_apps_key_is_refused(client, wallet_keys):
    params = _sdk_signed_params(client, "alipay.trade.query", {"out_trade_no": "o"})
    with pytest.raises(GatewayError) as caught:
        verify_request(parse_request(params), wallet_keys[1])
    assert (caught.value.code, caught.value.sub_code) == ("40002", "isv.invalid-signature")
    assert caught.value.method == "alipay.trade.query"
    assert caught.value.field == "sign"


# --- request validation --------------------------------------------------------------------------


def _valid_params() -> dict[str, str]:
    return {
        "app_id": APP_ID,
        "method": "alipay.trade.query",
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "sign": "c2lnbg==",
        "timestamp": "2024-05-13 17:49:20",
        "version": "1.0",
        "biz_content": '{"out_trade_no":"o-1"}',
    }


def test_valid_common_parameters_parse():
    request = parse_request(_valid_params())
    assert request.timestamp == datetime.datetime(2024, 5, 13, 17, 49, 20)
    assert request.biz_content == {"out_trade_no": "o-1"}
    assert request.notify_url is None


@pytest.mark.parametrize(
    ("changes", "code", "sub_code", "field"),
    [
        ({"method": None}, "40001", "isv.missing-method", "method"),
        ({"app_id": None}, "40001", "isv.missing-app-id", "app_id"),
        ({"app_id": ""}, "40001", "isv.missing-app-id", "app_id"),
        ({"sign": None}, "40001", "isv.missing-signature", "sign"),
        ({"sign_type": None}, "40001", "isv.missing-signature-type", "sign_type"),
        ({"timestamp": None}, "40001", "isv.missing-timestamp", "timestamp"),
        ({"version": None}, "40001", "isv.missing-version", "version"),
        ({"method": "alipay.trade.nope"}, "40002", "isv.invalid-method", "method"),
        ({"format": "XML"}, "40002", "isv.invalid-format", "format"),
        ({"charset": "gbk"}, "40002", "isv.invalid-charset", "charset"),
        ({"charset": None}, "40002", "isv.invalid-charset", "charset"),
        ({"sign_type": "RSA"}, "40002", "isv.invalid-signature-type", "sign_type"),
        ({"version": "2.0"}, "40002", "isv.invalid-parameter", "version"),
        ({"timestamp": "2024/05/13 17:49:20"}, "40002", "isv.invalid-timestamp", "timestamp"),
        ({"timestamp": "2024-05-13T17:49:20"}, "40002", "isv.invalid-timestamp", "timestamp"),
        ({"timestamp": "2024-02-30 10:00:00"}, "40002", "isv.invalid-timestamp", "timestamp"),
        ({"timestamp": "1715593760"}, "40002", "isv.invalid-timestamp", "timestamp"),
        ({"biz_content": "[1]"}, "40002", "isv.invalid-parameter", "biz_content"),
        ({"biz_content": "{oops"}, "40002", "isv.invalid-parameter", "biz_content"),
        ({"biz_content": '{"a":1,"a":2}'}, "40002", "isv.invalid-parameter", "biz_content"),
        ({"biz_content": '{"a":NaN}'}, "40002", "isv.invalid-parameter", "biz_content"),
        ({"biz_content": "[" * 5000 + "]" * 5000}, "40002", "isv.invalid-parameter", "biz_content"),
        ({"notify_url": "ftp://m.example/n"}, "40002", "isv.invalid-parameter", "notify_url"),
        ({"notify_url": "https://m/" + "x" * 300}, "40002", "isv.invalid-parameter", "notify_url"),
        ({"app_id": "9" * 33}, "40002", "isv.invalid-parameter", "app_id"),
    ],
)
def test_bad_common_parameters_are_refused_with_the_documented_code(changes, code, sub_code, field):
    params = _valid_params()
    for key, value in changes.items():
        if value is None:
            params.pop(key)
        else:
            params[key] = value
    with pytest.raises(GatewayError) as caught:
        parse_request(params)
    error = caught.value
    assert (error.code, error.sub_code, error.field) == (code, sub_code, field)
    assert error.body() == {
        "code": code,
        "msg": {"40001": "Missing Required Arguments", "40002": "Invalid Arguments"}[code],
        "sub_code": sub_code,
        "sub_msg": SUB_CODES[sub_code].sub_msg,
    }


def test_an_error_before_the_method_is_known_is_answered_as_error_response():
    params = _valid_params()
    params["method"] = "alipay.trade.nope"
    with pytest.raises(GatewayError) as caught:
        parse_request(params)
    assert caught.value.method is None
    assert response_key(caught.value.method) == ERROR_RESPONSE_KEY


def test_an_error_after_the_method_is_known_carries_it_for_the_response_key():
    params = _valid_params()
    params["charset"] = "gbk"
    with pytest.raises(GatewayError) as caught:
        parse_request(params)
    assert caught.value.method == "alipay.trade.query"


def test_java_sdk_spellings_of_format_and_charset_are_accepted():
    params = {**_valid_params(), "format": "json", "charset": "UTF-8"}
    assert parse_request(params).method == "alipay.trade.query"


def test_missing_biz_content_is_an_empty_object():
    params = _valid_params()
    del params["biz_content"]
    assert parse_request(params).biz_content == {}


def test_gateway_error_refuses_an_undocumented_sub_code():
    with pytest.raises(KeyError):
        GatewayError("isv.made-up", "x")


# --- forms ---------------------------------------------------------------------------------------


def test_decode_form_keeps_blank_values_and_reads_plus_as_space():
    assert decode_form("a=&b=x+y&c=%E5%92%96") == {"a": "", "b": "x y", "c": "咖"}
    assert decode_form("") == {}


@pytest.mark.parametrize(
    "text",
    ["a=1&a=2", "a=%FF", "novalue", "&".join(f"k{i}=v" for i in range(40))],
    ids=["duplicate", "bad-utf8", "no-equals", "too-many"],
)
def test_decode_form_refuses_ambiguous_or_oversized_input(text):
    with pytest.raises(GatewayError) as caught:
        decode_form(text)
    assert caught.value.sub_code == "isv.invalid-parameter"


@_SETTINGS
@given(st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=40), max_size=20))
def test_encode_form_and_decode_form_round_trip(params):
    assert decode_form(encode_form(params)) == params


# --- responses to the SDK ------------------------------------------------------------------------


def test_response_envelope_is_the_body_then_the_sign_over_its_exact_text(wallet_keys):
    body = success({"trade_status": "TRADE_SUCCESS"})
    text = encode_response("alipay.trade.query", body, wallet_keys[0])
    content = '{"code":"10000","msg":"Success","trade_status":"TRADE_SUCCESS"}'
    assert text.startswith('{"alipay_trade_query_response":' + content + ',"sign":"')
    assert verify_rsa2(content, json.loads(text)["sign"], wallet_keys[1])


@pytest.mark.parametrize(
    "body",
    [
        success({"out_trade_no": "o", "qr_code": "https://qr.example/bax0343"}),
        success({"subject": "咖啡 {大杯}", "note": "} unbalanced {{ \" \\ /"}),
        success({"fund_bill_list": [{"amount": "20.00", "fund_channel": "ALIPAYACCOUNT"}]}),
        business_error("ACQ.TRADE_NOT_EXIST", {"out_trade_no": "o"}),
        business_error("ACQ.BUYER_BALANCE_NOT_ENOUGH", {"buyer_pay_amount": "0.00"}),
        business_error("ACQ.PAYMENT_AUTH_CODE_INVALID"),
    ],
    ids=["plain", "braces-and-escapes", "nested-list", "not-exist", "balance", "auth-code"],
)
def test_sdk_verifies_our_response_and_returns_the_body(client, wallet_keys, body):
    text = encode_response("alipay.trade.query", body, wallet_keys[0])
    assert client._verify_and_return_sync_response(text, "alipay_trade_query_response") == body


def test_a_signed_invalid_signature_reply_is_returned_by_the_sdk_as_data(client, wallet_keys):
    error = GatewayError(
        "isv.invalid-signature", "x", sub_msg=SUB_CODES["isv.invalid-signature"].sub_msg
        + 'app_id=1&amp;biz_content={"out_trade_no":"o"}&amp;charset=utf-8',
    )
    text = encode_response("alipay.trade.pay", error.body(), wallet_keys[0])
    returned = client._verify_and_return_sync_response(text, "alipay_trade_pay_response")
    assert returned == error.body()


def test_sdk_rejects_a_tampered_response(client, wallet_keys):
    text = encode_response("alipay.trade.query", success({"total_amount": "88.88"}), wallet_keys[0])
    with pytest.raises(alipay.AliPayValidationError):
        client._verify_and_return_sync_response(
            text.replace("88.88", "0.01"), "alipay_trade_query_response"
        )


def test_sdk_rejects_a_response_signed_with_another_key(client, app_keys):
    text = encode_response("alipay.trade.query", success(), app_keys[0])
    with pytest.raises(alipay.AliPayValidationError):
        client._verify_and_return_sync_response(text, "alipay_trade_query_response")


@pytest.mark.parametrize("method", ["alipay.trade.query", None], ids=["unsigned", "error_response"])
def test_sdk_raises_for_an_unsigned_reply_or_an_error_response(client, wallet_keys, method):
    body = GatewayError("isv.invalid-app-id", "unknown app").body()
    key = None if method else wallet_keys[0]
    text = encode_response(method, body, key)
    with pytest.raises(alipay.AliPayException):
        client._verify_and_return_sync_response(text, "alipay_trade_query_response")


def test_unescaped_braces_in_a_string_would_break_the_sdks_brace_counting(client, wallet_keys):
    # Why encode_response escapes braces: plain json.dumps text fails the SDK's verification.
    content = json.dumps(success({"subject": "a}b"}), ensure_ascii=False, separators=(",", ":"))
    sign = sign_rsa2(content, wallet_keys[0])
    text = f'{{"alipay_trade_query_response":{content},"sign":"{sign}"}}'
    with pytest.raises((alipay.AliPayValidationError, ValueError)):
        client._verify_and_return_sync_response(text, "alipay_trade_query_response")


def test_response_body_with_a_float_is_refused(wallet_keys):
    with pytest.raises(TypeError):
        encode_response("alipay.trade.query", success({"total_amount": 88.88}), wallet_keys[0])


@pytest.mark.parametrize(
    ("method", "key"),
    [
        ("alipay.trade.pay", "alipay_trade_pay_response"),
        ("alipay.trade.fastpay.refund.query", "alipay_trade_fastpay_refund_query_response"),
        (None, "error_response"),
    ],
)
def test_response_key_is_the_method_with_dots_as_underscores(method, key):
    assert response_key(method) == key


def test_response_key_refuses_a_method_that_is_not_dotted_words():
    with pytest.raises(ValueError):
        response_key('x","sign":"')


def test_business_error_refuses_a_gateway_sub_code():
    with pytest.raises(ValueError):
        business_error("isv.invalid-signature")


_json_leaf = st.one_of(st.text(max_size=20), st.integers(-(10**6), 10**6), st.booleans(), st.none())
_json_value = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@_SETTINGS
@given(st.dictionaries(st.text(max_size=10), _json_value, max_size=6))
def test_sdk_returns_any_body_we_sign_unchanged(client, wallet_keys, body):
    text = encode_response("alipay.trade.query", body, wallet_keys[0])
    assert client._verify_and_return_sync_response(text, "alipay_trade_query_response") == body


# --- notifications -------------------------------------------------------------------------------


def _notification(**extra) -> dict[str, str]:
    return trade_status_sync_params(
        app_id=APP_ID,
        notify_id="ac05099524730693a8b330c5ecf72da9786",
        notify_time=PAID_AT + datetime.timedelta(seconds=1),
        trade_no="2024051322001404070500123456",
        out_trade_no="20240513-0001",
        trade_status="TRADE_SUCCESS",
        total_amount_minor=8888,
        receipt_amount_minor=8888,
        buyer_pay_amount_minor=8888,
        gmt_create=PAID_AT - datetime.timedelta(seconds=30),
        gmt_payment=PAID_AT,
        extra=extra,
    )


def test_trade_status_sync_has_the_documented_fields():
    params = _notification(subject="咖啡")
    assert params["notify_type"] == "trade_status_sync"
    assert params["notify_time"] == "2024-05-13 17:49:21"
    assert params["gmt_payment"] == "2024-05-13 17:49:20"
    assert params["total_amount"] == params["receipt_amount"] == "88.88"
    assert (params["charset"], params["version"], params["sign_type"]) == ("utf-8", "1.0", "RSA2")
    assert params["auth_app_id"] == params["app_id"] == APP_ID


def test_sdk_verifies_our_signed_notification_as_its_readme_shows(client, wallet_keys):
    params = _notification(subject="咖啡 & 茶", passback_params="a=1&b=2")
    signed = sign_notification(params, wallet_keys[0])
    data = decode_form(encode_form(signed))  # as the merchant's web framework reads the POST
    signature = data.pop("sign")
    assert client.verify(data, signature) is True
    assert verify_notification(signed, wallet_keys[1])


def test_sdk_rejects_a_tampered_notification(client, wallet_keys):
    signed = sign_notification(_notification(), wallet_keys[0])
    data = {**signed, "total_amount": "0.01"}
    signature = data.pop("sign")
    assert client.verify(data, signature) is False
    assert not verify_notification({**signed, "total_amount": "0.01"}, wallet_keys[1])


def test_sign_notification_drops_empty_values_so_every_verifier_agrees(wallet_keys):
    signed = sign_notification({**_notification(), "body": ""}, wallet_keys[0])
    assert "body" not in signed


def test_trade_status_sync_refuses_an_unknown_status_or_field():
    with pytest.raises(ValueError):
        trade_status_sync_params(
            app_id="1", notify_id="n", notify_time=PAID_AT, trade_no="t",
            out_trade_no="o", trade_status="PAID", total_amount_minor=1,
        )
    with pytest.raises(ValueError):
        _notification(colour="red")


@_SETTINGS
@given(
    st.dictionaries(
        st.text(string.ascii_lowercase + "_", min_size=1, max_size=12),
        st.text(min_size=1, max_size=40),
        max_size=12,
    )
)
def test_sdk_verifies_any_notification_we_sign(client, wallet_keys, params):
    signed = sign_notification(params, wallet_keys[0])
    data = dict(signed)
    signature = data.pop("sign")
    assert client.verify(data, signature) is True


@pytest.mark.parametrize(
    ("answer", "acknowledged"),
    [("success", True), ("success\r\n", True), ("fail", False), ("SUCCESS", False), ("", False)],
)
def test_only_success_acknowledges_a_notification(answer, acknowledged):
    assert is_notification_acknowledged(answer) is acknowledged


# --- signing property ----------------------------------------------------------------------------


@_SETTINGS
@given(st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=40), max_size=12))
def test_any_params_signed_verify_and_a_changed_value_does_not(app_keys, params):
    signature = sign_rsa2(signing_string(params), app_keys[0])
    assert verify_rsa2(signing_string({**params, "sign": signature}), signature, app_keys[1])
    changed = {**params, "key_longer_than_twelve": "1"}  # drawn keys are at most 12 chars
    assert not verify_rsa2(signing_string(changed), signature, app_keys[1])


# --- amounts and times ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "minor"),
    [
        ("88.88", 8888),
        ("88.8", 8880),
        ("88", 8800),
        ("0.01", 1),
        ("100000000.00", AMOUNT_MINOR_MAX),
        ("100000000", AMOUNT_MINOR_MAX),
        (12, 1200),  # the SDK docstring's total_amount=12, sent as a JSON number
        (decimal.Decimal("88.88"), 8888),  # a JSON number read by parse_request
    ],
)
def test_parse_amount_reads_yuan_as_fen_exactly(value, minor):
    assert parse_amount(value) == minor


@pytest.mark.parametrize(
    ("value", "sub_code"),
    [
        ("-1.00", "ACQ.INVALID_PARAMETER"),
        ("+1.00", "ACQ.INVALID_PARAMETER"),
        ("1.234", "ACQ.INVALID_PARAMETER"),
        ("1e2", "ACQ.INVALID_PARAMETER"),
        (decimal.Decimal("1E+2"), "ACQ.INVALID_PARAMETER"),
        (decimal.Decimal("88.880"), "ACQ.INVALID_PARAMETER"),
        ("", "ACQ.INVALID_PARAMETER"),
        (" 1", "ACQ.INVALID_PARAMETER"),
        ("1.", "ACQ.INVALID_PARAMETER"),
        (".5", "ACQ.INVALID_PARAMETER"),
        ("0.00", "ACQ.INVALID_PARAMETER"),
        (88.88, "ACQ.INVALID_PARAMETER"),
        (True, "ACQ.INVALID_PARAMETER"),
        (None, "ACQ.INVALID_PARAMETER"),
        ("100000000.01", "ACQ.TOTAL_FEE_EXCEED"),
        ("999999999.99", "ACQ.TOTAL_FEE_EXCEED"),
        ("1000000000", "ACQ.INVALID_PARAMETER"),
    ],
)
def test_parse_amount_refuses_what_the_platform_refuses(value, sub_code):
    with pytest.raises(GatewayError) as caught:
        parse_amount(value, field="biz_content.total_amount")
    assert (caught.value.code, caught.value.sub_code) == ("40004", sub_code)
    assert caught.value.field == "biz_content.total_amount"


def test_parse_amount_allows_zero_when_asked():
    assert parse_amount("0.00", zero_ok=True) == 0


@pytest.mark.parametrize(
    ("minor", "text"),
    [(8888, "88.88"), (1, "0.01"), (0, "0.00"), (AMOUNT_MINOR_MAX, "100000000.00")],
)
def test_format_amount_writes_two_decimals(minor, text):
    assert format_amount(minor) == text


@pytest.mark.parametrize("minor", [-1, AMOUNT_MINOR_MAX + 1, 88.88, True, "8888"])
def test_format_amount_refuses_what_is_not_fen_in_range(minor):
    with pytest.raises((TypeError, ValueError)):
        format_amount(minor)


@given(st.integers(0, AMOUNT_MINOR_MAX))
def test_amounts_round_trip(minor):
    assert parse_amount(format_amount(minor), zero_ok=True) == minor


@given(st.integers(1, AMOUNT_MINOR_MAX))
def test_an_amount_the_sdk_sends_as_a_float_arrives_exact(minor):
    # The SDK's README passes total_amount as a Python float; _ordered_data json.dumps it.
    sent = json.dumps({"total_amount": float(format_amount(minor))}, separators=(",", ":"))
    params = {**_valid_params(), "biz_content": sent}
    assert parse_amount(parse_request(params).biz_content["total_amount"]) == minor


def test_timestamps_round_trip_in_the_platforms_format():
    assert format_timestamp(PAID_AT) == "2024-05-13 17:49:20"
    assert parse_timestamp("2024-05-13 17:49:20") == PAID_AT
