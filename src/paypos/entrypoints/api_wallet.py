"""``/wallet/gateway.do``: the sandbox wallet's merchant gateway, wire-compatible with the
Alipay open platform (docs/wallet-gateway.md, "Serving").

One request, in order: read the parameters (GET query string, or POST form body plus any
query string, the way the Java SDK splits them), check the common parameters
(``protocol.alipay.parse_request``), find the app, verify its RSA2 signature, run the trade
method in ONE unit of work (``services.wallet``; committed on success, rolled back on a
business error), answer ``encode_response`` signed with the wallet's key.  Every
protocol-level answer is HTTP 200, as on the platform; the ``code`` inside says what
happened.

Which envelope an error gets (the platform's behaviour, and what python-alipay-sdk expects):

- the method is missing or unknown: ``error_response``, signed when ``app_id`` names an app;
- ``app_id`` missing, malformed or unknown: ``<method>_response``, unsigned (no app, no key);
- anything found once the app is known: ``<method>_response``, signed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from paypos import limits
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import Vault
from paypos.bootstrap import App
from paypos.domain.wallet import WalletApp, WalletError
from paypos.protocol import alipay
from paypos.services import wallet

log = logging.getLogger("paypos.wallet.gateway")

GATEWAY_PATH = "/wallet/gateway.do"
MEDIA_TYPE = "application/json;charset=utf-8"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
# alipay.trade.pay when the buyer must still confirm: the platform answers code 10003 with
# this msg, leading space included (as captured in merchants' logs), and the merchant then
# polls alipay.trade.query until TRADE_SUCCESS or cancels at its timeout.
CODE_PAY_IN_PROCESS = "10003"
MSG_PAY_IN_PROCESS = " order success pay inprocess"
# What the merchant sees in sub_msg for each cause of ACQ.PAYMENT_AUTH_CODE_INVALID.
AUTH_CODE_REASONS = {
    "expired": "付款码已过期，请顾客刷新付款码 (the payment code has expired: ask the buyer to refresh it)",
    "reused": "付款码已使用 (the payment code was already used: ask the buyer for a new one)",
    "unknown": "付款码不存在 (the payment code matches no wallet)",
    "malformed": "付款码格式错误 (not a payment code: 18 digits starting 25-30)",
}
# services.wallet codes that are not platform sub_codes, as the closest documented one; any
# other becomes ACQ.SYSTEM_ERROR (logged), its message in sub_msg.
SLUG_SUB_CODES = {
    "currency_mismatch": "ACQ.INVALID_PARAMETER",  # the buyer's wallet holds another currency
}
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock (PostgreSQL)

T = TypeVar("T")
Handler = Callable[[UnitOfWork, Vault, datetime, WalletApp, alipay.GatewayRequest], dict[str, Any]]


def install_wallet_routes(api: FastAPI) -> None:
    """``GET`` and ``POST`` ``/wallet/gateway.do``."""

    @api.get(GATEWAY_PATH, tags=["wallet"], response_class=Response)
    async def gateway_get(request: Request) -> Response:
        """The Alipay-compatible merchant gateway; parameters in the query string."""
        return await _serve(request, read_body=False)

    @api.post(GATEWAY_PATH, tags=["wallet"], response_class=Response)
    async def gateway_post(request: Request) -> Response:
        """The same, parameters as an application/x-www-form-urlencoded body (and query)."""
        return await _serve(request, read_body=True)


async def _serve(request: Request, *, read_body: bool) -> Response:
    app: App = request.app.state.paypos
    try:
        params = await _params(request, read_body=read_body)
    except alipay.GatewayError as error:
        text = alipay.encode_response(None, error.body(), None)
    else:
        text = await run_in_threadpool(answer, app, params)
    return Response(content=text, media_type=MEDIA_TYPE)


async def _params(request: Request, *, read_body: bool) -> dict[str, str]:
    params = alipay.decode_form(_utf8(request.scope.get("query_string", b""), "query string"))
    if not read_body:
        return params
    body = await _bounded_body(request)
    if not body:
        return params
    media_type, *options = request.headers.get("content-type", "").lower().split(";")
    if media_type.strip() != FORM_MEDIA_TYPE:
        raise alipay.GatewayError("isv.invalid-parameter", f"POST the parameters as {FORM_MEDIA_TYPE}")
    named = dict(option.strip().partition("=")[::2] for option in options)
    if named.get("charset", alipay.CHARSET).strip('"') != alipay.CHARSET:
        raise alipay.GatewayError("isv.invalid-charset", "the form must be utf-8", field="charset")
    form = alipay.decode_form(_utf8(body, "form"))
    twice = sorted(set(params) & set(form))
    if twice:
        raise alipay.GatewayError("isv.invalid-parameter", "given in the query and the form", field=twice[0])
    return {**params, **form}


async def _bounded_body(request: Request) -> bytes:
    limit = limits.http_request_body_bytes_max
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise alipay.GatewayError("isv.invalid-parameter", f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise alipay.GatewayError("isv.invalid-parameter", f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise alipay.GatewayError("isv.invalid-parameter", f"{what} is not UTF-8") from exc


# --- one request ---------------------------------------------------------------------------


def answer(app: App, params: Mapping[str, str]) -> str:
    """The gateway's exact reply text to one request's parameters (runs off the event loop)."""
    try:
        return _answer(app, params)
    except (sa.exc.SQLAlchemyError, WalletError) as error:
        # The database is down or the wallet unseeded: the platform's "busy, retry" (20000).
        log.error("wallet gateway unavailable: %s", error)
        method = params.get("method")
        unavailable = alipay.GatewayError("isp.unknow-error", "service unavailable")
        key_method = method if method in METHODS else None
        return alipay.encode_response(key_method, unavailable.body(), None)


def _answer(app: App, params: Mapping[str, str]) -> str:
    try:
        request = alipay.parse_request(params, methods=METHODS)
    except alipay.GatewayError as error:
        return _refusal(app, params, error)
    wallet_app = _find_app(app, request.app_id)
    if wallet_app is None:
        return _unknown_app(request.method)
    try:
        alipay.verify_request(request, wallet_app.app_public_key_pem)
    except alipay.GatewayError as error:
        return _signed(app, request.method, error.body())
    except alipay.KeyFormatError:
        log.error("wallet app %s has an unusable public key", wallet_app.app_id)
        missing = alipay.GatewayError("isv.missing-signature-key", "the app's public key is unusable")
        return _signed(app, request.method, missing.body())
    key, body = _with_retries(lambda: _run(app, wallet_app, request))
    return alipay.encode_response(request.method, body, key)


def _refusal(app: App, params: Mapping[str, str], error: alipay.GatewayError) -> str:
    """A request whose common parameters are refused, in the envelope the table above says."""
    if error.method is not None and error.field == "app_id":
        return alipay.encode_response(error.method, error.body(), None)
    wallet_app = _find_app(app, params.get("app_id") or "")
    if wallet_app is None:
        if error.method is None:
            return alipay.encode_response(None, error.body(), None)
        return _unknown_app(error.method)
    return _signed(app, error.method, error.body())


def _unknown_app(method: str) -> str:
    unknown = alipay.GatewayError("isv.invalid-app-id", "no such app", field="app_id")
    return alipay.encode_response(method, unknown.body(), None)


def _find_app(app: App, app_id: str) -> WalletApp | None:
    if not app_id or len(app_id) > 32:
        return None
    with app.uow(write=False) as uow:
        found = uow.wallet.get_app(app_id)
    return found if found is not None and found.status == "active" else None


def _signed(app: App, method: str | None, body: Mapping[str, Any]) -> str:
    with app.uow(write=False) as uow:
        key = wallet.wallet_private_key(uow, app.vault)
    return alipay.encode_response(method, body, key)


def _run(app: App, wallet_app: WalletApp, request: alipay.GatewayRequest) -> tuple[str, dict[str, Any]]:
    """The method in one unit of work: (wallet private key, response body)."""
    with app.uow() as uow:
        key = wallet.wallet_private_key(uow, app.vault)
        try:
            body = METHODS[request.method](uow, app.vault, app.clock(), wallet_app, request)
        except WalletError as error:
            uow.rollback()
            return key, business_error_body(error)
        uow.commit()
        return key, body


def _with_retries(attempt: Callable[[], T]) -> T:
    """Run ``attempt`` again after a serialization failure or deadlock (PostgreSQL), or a
    unique-key race (two first requests for one out_trade_no: the retry sees the winner's)."""
    for tries_left in range(limits.ledger_write_retries_max, -1, -1):
        try:
            return attempt()
        except sa.exc.IntegrityError:
            if tries_left == 0:
                raise
        except sa.exc.OperationalError as error:
            if tries_left == 0 or getattr(error.orig, "sqlstate", None) not in _RETRYABLE_SQLSTATES:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def business_error_body(error: WalletError) -> dict[str, Any]:
    """A refused trade as the platform's 40004 body: its documented sub_code, and a sub_msg
    that tells apart what the platform's one code hides (why a payment code is invalid)."""
    sub_code = error.code
    entry = alipay.SUB_CODES.get(sub_code)
    if entry is None or entry.code != "40004":
        sub_code = SLUG_SUB_CODES.get(error.code, "ACQ.SYSTEM_ERROR")
        if sub_code == "ACQ.SYSTEM_ERROR":
            log.warning("wallet refusal %s (%s) has no platform sub_code", error.code, error.message)
    body = alipay.business_error(sub_code)
    sub_msg = body["sub_msg"]
    if sub_code == "ACQ.PAYMENT_AUTH_CODE_INVALID":
        reason = error.reason or "unknown"
        sub_msg = f"{sub_msg}：{AUTH_CODE_REASONS.get(reason, reason)}[{reason.upper()}]"
    elif sub_code in ("ACQ.INVALID_PARAMETER", "ACQ.TOTAL_FEE_EXCEED") or sub_code != error.code:
        sub_msg = f"{sub_msg}：{error.field + ': ' if error.field else ''}{error.message}"
    return {**body, "sub_msg": sub_msg}


# --- the methods ---------------------------------------------------------------------------


def _precreate(uow: UnitOfWork, vault: Vault, now: datetime, app: WalletApp,
               request: alipay.GatewayRequest) -> dict[str, Any]:
    return alipay.success(wallet.precreate(uow, vault, now, app, request.biz_content, request.notify_url))


def _pay(uow: UnitOfWork, vault: Vault, now: datetime, app: WalletApp,
         request: alipay.GatewayRequest) -> dict[str, Any]:
    code, fields = wallet.pay_by_code(uow, vault, now, app, request.biz_content, request.notify_url)
    if code == alipay.CODE_SUCCESS:
        return alipay.success(fields)
    return {"code": CODE_PAY_IN_PROCESS, "msg": MSG_PAY_IN_PROCESS, **fields}


def _query(uow: UnitOfWork, vault: Vault, now: datetime, app: WalletApp,
           request: alipay.GatewayRequest) -> dict[str, Any]:
    return alipay.success(wallet.query(uow, vault, now, app, request.biz_content))


def _refund(uow: UnitOfWork, vault: Vault, now: datetime, app: WalletApp,
            request: alipay.GatewayRequest) -> dict[str, Any]:
    return alipay.success(wallet.refund(uow, vault, now, app, request.biz_content))


def _refund_query(uow: UnitOfWork, vault: Vault, now: datetime, app: WalletApp,
                  request: alipay.GatewayRequest) -> dict[str, Any]:
    return alipay.success(wallet.refund_query(uow, app, request.biz_content))


def _cancel(uow: UnitOfWork, vault: Vault, now: datetime, app: WalletApp,
            request: alipay.GatewayRequest) -> dict[str, Any]:
    return alipay.success(wallet.cancel(uow, vault, now, app, request.biz_content))


def _close(uow: UnitOfWork, vault: Vault, now: datetime, app: WalletApp,
           request: alipay.GatewayRequest) -> dict[str, Any]:
    return alipay.success(wallet.close(uow, vault, now, app, request.biz_content))


# The methods served (alipay.trade.create, in the protocol's vocabulary, is not: a POS has
# no use for a trade paid inside a mini-program, so it is refused as isv.invalid-method).
METHODS: Mapping[str, Handler] = {
    "alipay.trade.precreate": _precreate,
    "alipay.trade.pay": _pay,
    "alipay.trade.query": _query,
    "alipay.trade.refund": _refund,
    "alipay.trade.fastpay.refund.query": _refund_query,
    "alipay.trade.cancel": _cancel,
    "alipay.trade.close": _close,
}
