"""The sandbox wallet app's REST API, for the buyer: ``/v1/wallet/...`` (docs/wallet.md).

Authenticated by the user's sandbox token, ``Authorization: Bearer wu_test_...`` (printed
by `paypos sandbox wallet-users --json`, see networks/sandbox/wallet_tokens.py). Amounts
are integers of minor units in the user's currency, as everywhere in the API.

Errors are RFC 9457 problems (``type`` ends in the wallet's error code, e.g.
``.../problems/invalid-qr``; ``code`` gives it as the wallet has it, ``field`` the input
at fault), with one rule for the status:

- 401: no token, a malformed or wrong token, or a token of no wallet user;
- 403: the user is not active;
- 404: the trade named does not exist (for this user);
- 409: the request is well formed but the state of the wallet or the trade refuses it:
  not enough balance, above the credit-pay limit, a trade already paid or closed,
  nothing awaiting confirmation, a card that cannot be used — the same request may
  succeed later;
- 422: the request itself is wrong: a bad funding or installments choice, a missing or
  bad amount, an unreadable or foreign QR payload, a card that is not linked, a currency
  the wallet does not hold — resending it unchanged will always fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, Header, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from paypos.adapters.db.uow import UnitOfWork
from paypos.bootstrap import App
from paypos.domain.wallet import Funding, WalletError
from paypos.entrypoints.api import Problem
from paypos.networks.sandbox.wallet_tokens import user_of_token
from paypos.protocol.qr import MPM_PAYLOAD_CHARS_MAX
from paypos.services import creditpay as creditpay_service
from paypos.services import wallet as wallet_service

T = TypeVar("T")

# Client-chosen ids (top-up, repayment; or the Idempotency-Key header): bounded like an
# out_trade_no. Card ids and trade numbers are shorter still.
CLIENT_ID_CHARS_MAX = 64
REFERENCE_CHARS_MAX = 64

# WalletError codes -> HTTP status (see the module docstring). A code not listed is a
# 422 when it names an input field, else a 409.
_STATUS = {
    "user_not_found": 401,
    "user_inactive": 403,
    "ACQ.TRADE_NOT_EXIST": 404,
    "trade_not_found": 404,
    "plan_not_found": 404,
    "plan_paid_off": 409,
    "nothing_owed": 409,
    "overpayment": 409,
    "idempotency_mismatch": 409,
    "ACQ.TRADE_HAS_SUCCESS": 409,
    "ACQ.TRADE_HAS_CLOSE": 409,
    "ACQ.TRADE_STATUS_ERROR": 409,
    "confirmation_not_found": 409,
    "ACQ.BUYER_BALANCE_NOT_ENOUGH": 409,
    "insufficient_funds": 409,
    "credit_limit_exceeded": 409,
    "card_unavailable": 409,
    "invalid_qr": 422,
    "unsupported_qr": 422,
    "amount_required": 422,
    "invalid_amount": 422,
    "invalid_funding": 422,
    "invalid_installments": 422,
    "invalid_source": 422,
    "invalid_repayment_id": 422,
    "trade_required": 422,
    "card_not_linked": 422,
    "currency_mismatch": 422,
    "ACQ.TOTAL_FEE_EXCEED": 422,
    "ACQ.ACCESS_FORBIDDEN": 422,
    "ACQ.INVALID_PARAMETER": 422,
    "wallet_not_seeded": 503,
    "ACQ.SYSTEM_ERROR": 500,
}
_TITLES = {401: "Unauthorized", 403: "Forbidden", 404: "Not found", 409: "Refused", 422: "Invalid request",
           500: "Internal error", 503: "Unavailable"}
_PROBLEMS: dict[int | str, dict[str, Any]] = {s: {"description": f"{t} (problem+json)"}
                                             for s, t in _TITLES.items()}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


Installments = Literal[0, 3, 6, 12]
CardId = Annotated[StrictStr | None, Field(default=None, min_length=1, max_length=REFERENCE_CHARS_MAX)]
AmountMinor = Annotated[StrictInt, Field(gt=0)]
ClientId = Annotated[StrictStr | None, Field(default=None, min_length=1, max_length=CLIENT_ID_CHARS_MAX)]


class ScanRequest(_Body):
    payload: StrictStr = Field(min_length=1, max_length=MPM_PAYLOAD_CHARS_MAX)
    funding: Funding = Funding.BALANCE
    card_id: CardId = None
    installments: Installments = 0
    amount_minor: AmountMinor | None = None  # static codes only: they carry no amount


class ConfirmRequest(_Body):
    trade_no: Annotated[StrictStr | None, Field(default=None, min_length=1, max_length=REFERENCE_CHARS_MAX)] = None
    funding: Funding = Funding.BALANCE
    card_id: CardId = None
    installments: Installments = 0


class TopUpRequest(_Body):
    card_id: StrictStr = Field(min_length=1, max_length=REFERENCE_CHARS_MAX)
    amount_minor: AmountMinor
    topup_id: ClientId = None


class RepaymentRequest(_Body):
    amount_minor: AmountMinor
    source: Literal["balance", "card"] = "balance"
    card_id: CardId = None
    repayment_id: ClientId = None


class PayoffRequest(_Body):
    trade_no: StrictStr = Field(min_length=1, max_length=REFERENCE_CHARS_MAX)
    source: Literal["balance", "card"] = "balance"
    card_id: CardId = None


IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=CLIENT_ID_CHARS_MAX,
    description="Your id for this request (instead of topup_id / repayment_id): a replay answers once.")]


def wallet_problem(error: WalletError) -> Problem:
    """The RFC 9457 problem for a refused wallet operation."""
    status = _STATUS.get(error.code, 422 if error.field else 409)
    slug = error.code.lower().replace("_", "-").replace(".", "-")
    extra = {"code": error.code, "field": error.field, "reason": error.reason}
    return Problem(status, slug, _TITLES[status], error.message, **{k: v for k, v in extra.items() if v is not None})


def _paypos(request: Request) -> App:
    return request.app.state.paypos


def authenticated_buyer(request: Request) -> str:
    """The wallet user behind the request's Bearer token, or a 401 problem."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    user_id = user_of_token(token.strip()) if scheme.lower() == "bearer" else None
    if user_id is None:
        raise Problem(401, "unauthorized", "Unauthorized",
                      "send your wallet token as 'Authorization: Bearer wu_test_...' (paypos sandbox wallet-users)")
    with _paypos(request).uow(write=False) as uow:
        if uow.wallet.get_user(user_id) is None:
            raise Problem(401, "unauthorized", "Unauthorized", "the token names no wallet user")
    return user_id


authenticated_buyer.security_scheme = "walletUserToken"  # type: ignore[attr-defined]  # OpenAPI
Buyer = Annotated[str, Depends(authenticated_buyer)]


def _run(app: App, operation: Callable[[UnitOfWork], T], *, write: bool = True) -> T:
    """One unit of work: committed when ``operation`` succeeds, a problem when it is refused."""
    try:
        with app.uow(write=write) as uow:
            result = operation(uow)
            if write:
                uow.commit()
            return result
    except WalletError as error:
        raise wallet_problem(error) from None


def _client_id(given: str | None, header: str | None, name: str) -> str:
    if given and header and given != header:
        raise Problem(422, "validation-error", "Invalid request", f"{name} and Idempotency-Key differ", field=name)
    chosen = given or header
    if not chosen:
        raise Problem(422, "validation-error", "Invalid request",
                      f"{name} (or an Idempotency-Key header) is required", field=name)
    return chosen


def _card_with_card_source(source: str, card_id: str | None) -> None:
    if card_id is not None and source != "card":
        raise Problem(422, "validation-error", "Invalid request", "card_id goes with source 'card'", field="card_id")


def _confirm(uow: UnitOfWork, app: App, user_id: str, body: ConfirmRequest) -> dict[str, Any]:
    """wallet.confirm, with a trade number that names no trade of the buyer's told apart (404)."""
    if body.trade_no is not None:
        trade = uow.wallet.get_trade(body.trade_no)
        if trade is None or trade.buyer_user_id != user_id:
            raise WalletError("trade_not_found", "no trade of yours has this number", field="trade_no")
    return wallet_service.confirm(uow, app.vault, app.clock(), user_id, body.trade_no, funding=body.funding.value,
                                  card_id=body.card_id, installments=body.installments)


def install_buyer_routes(api: FastAPI) -> None:
    """Add the buyer's ``/v1/wallet/...`` routes to an app made by ``create_app``."""
    _install_wallet_routes(api)
    _install_creditpay_routes(api)


def _install_wallet_routes(api: FastAPI) -> None:
    @api.get("/v1/wallet/me", tags=["wallet app"], responses=_PROBLEMS)
    def me(request: Request, user_id: Buyer) -> dict[str, Any]:
        """Balance, credit pay, payments awaiting confirmation, recent trades."""
        summary = _run(_paypos(request), lambda uow: wallet_service.buyer_summary(uow, user_id), write=False)
        return {"object": "wallet", **summary}

    @api.post("/v1/wallet/scan", tags=["wallet app"], responses=_PROBLEMS)
    def scan(request: Request, user_id: Buyer, body: ScanRequest) -> dict[str, Any]:
        """Pay a merchant's collection code (the QR payload); static codes need amount_minor."""
        app = _paypos(request)
        trade = _run(app, lambda uow: wallet_service.scan(
            uow, app.vault, app.clock(), body.payload, user_id, funding=body.funding.value, card_id=body.card_id,
            installments=body.installments, amount_minor=body.amount_minor))
        return {"object": "trade", **trade}

    @api.post("/v1/wallet/code", tags=["wallet app"], responses=_PROBLEMS)
    def code(request: Request, user_id: Buyer) -> dict[str, Any]:
        """A fresh one-time payment code (18 digits) for the merchant's scanner."""
        app = _paypos(request)
        shown = _run(app, lambda uow: wallet_service.payment_code(uow, app.vault, app.clock(), user_id), write=False)
        return {"object": "payment_code", **shown}

    @api.post("/v1/wallet/confirm", tags=["wallet app"], responses=_PROBLEMS)
    def confirm(request: Request, user_id: Buyer, body: ConfirmRequest) -> dict[str, Any]:
        """Approve (and pay) a payment-code charge above the no-confirmation limit."""
        app = _paypos(request)
        trade = _run(app, lambda uow: _confirm(uow, app, user_id, body))
        return {"object": "trade", **trade}

    @api.post("/v1/wallet/top_ups", tags=["wallet app"], responses=_PROBLEMS)
    def top_up(request: Request, user_id: Buyer, body: TopUpRequest,
               idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
        """Move money from a linked card to the balance; a replay of topup_id tops up once."""
        app = _paypos(request)
        topup_id = _client_id(body.topup_id, idempotency_key, "topup_id")
        row = _run(app, lambda uow: wallet_service.top_up(
            uow, app.clock(), user_id, body.card_id, body.amount_minor, topup_id))
        return {"object": "top_up", "topup_id": topup_id, "amount_minor": body.amount_minor, "wallet": row}


def _install_creditpay_routes(api: FastAPI) -> None:
    @api.get("/v1/wallet/bills", tags=["wallet app"], responses=_PROBLEMS)
    def bills(request: Request, user_id: Buyer) -> dict[str, Any]:
        """Credit-pay bills and installment plans (closes due bills, accrues overdue interest)."""
        app = _paypos(request)
        statement = _run(app, lambda uow: creditpay_service.bills(uow, app.clock(), user_id))
        return {"object": "credit_statement", **statement}

    @api.post("/v1/wallet/repayments", tags=["wallet app"], responses=_PROBLEMS)
    def repay(request: Request, user_id: Buyer, body: RepaymentRequest,
              idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
        """Repay credit pay from the balance or a card; a replay of repayment_id repays once."""
        app = _paypos(request)
        _card_with_card_source(body.source, body.card_id)
        repayment_id = _client_id(body.repayment_id, idempotency_key, "repayment_id")
        done = _run(app, lambda uow: creditpay_service.repay(
            uow, app.clock(), user_id, body.amount_minor, source=body.source, card_id=body.card_id,
            repayment_id=repayment_id))
        return {"object": "repayment", **done}

    @api.post("/v1/wallet/payoffs", tags=["wallet app"], responses=_PROBLEMS)
    def payoff(request: Request, user_id: Buyer, body: PayoffRequest) -> dict[str, Any]:
        """Pay off an installment plan early (its unbilled fees are waived)."""
        app = _paypos(request)
        _card_with_card_source(body.source, body.card_id)
        done = _run(app, lambda uow: creditpay_service.payoff(uow, app.clock(), user_id, body.trade_no,
                                                              source=body.source, card_id=body.card_id))
        return {"object": "payoff", **done}
