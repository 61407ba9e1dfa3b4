"""REST routes for prepaid cards (services/prepaid.py, docs/prepaid.md).

A merchant's API key (Bearer) manages its own program's cards: another program's card is a
404, exactly like a card that does not exist. Amounts are integers of minor units
(``*_minor``) with the card's ISO 4217 currency; an ``Idempotency-Key`` header becomes the
operation's client id (issue, top-up, payment, refund), so a retry answers the first result.
Install with ``install_prepaid_routes(api)`` after ``create_app``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, Header, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from paypos.adapters.db.uow import UnitOfWork
from paypos.bootstrap import App
from paypos.domain.registry import CardInterface
from paypos.entrypoints.api import Problem, authenticated_merchant
from paypos.services import prepaid

# HTTP status of each refusal; any other code is a state conflict (409).
_STATUS = {
    "card_not_found": 404,
    "merchant_not_found": 404,
    "invalid_amount": 422, "invalid_kind": 422, "invalid_source": 422, "invalid_pin": 422, "invalid_expiry": 422,
    "invalid_interfaces": 422, "invalid_id": 422, "currency_mismatch": 422, "wallet_not_found": 422,
    "invalid_cvv2": 402, "insufficient_funds": 402,
}
_TITLES = {404: "Not found", 422: "Invalid request", 402: "Payment refused", 409: "Conflict"}
_PROBLEMS: dict[int | str, dict[str, Any]] = {s: {"description": f"{t} (problem+json)"}
                                             for s, t in _TITLES.items()}

T = TypeVar("T")
Merchant = Annotated[str, Depends(authenticated_merchant)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IssueBody(_Body):
    kind: Literal["reloadable", "gift"]
    initial_load_minor: StrictInt = Field(ge=0)
    pin: str
    expiry: str | None = Field(default=None, description="YYMM; default: three years from now")
    interfaces: list[CardInterface] | None = None


class AmountBody(_Body):
    amount_minor: StrictInt = Field(gt=0)
    currency: str = Field(description="ISO 4217 alpha code; must be the card's")


class TopUpBody(AmountBody):
    source: Literal["cash", "wallet"]
    wallet_user_id: str | None = None


class PaymentBody(AmountBody):
    cvv2: str | None = None


def install_prepaid_routes(api: FastAPI) -> None:
    _install_card_routes(api)
    _install_money_routes(api)


def _install_card_routes(api: FastAPI) -> None:
    @api.post("/v1/prepaid_cards", status_code=201, tags=["prepaid"], responses=_PROBLEMS)
    def issue_card(request: Request, body: IssueBody, merchant_id: Merchant,
                   idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
        """Issue a card of the authenticated merchant's program. The answer carries the PAN and
        CVV2 — shown at issue only (a replay with the same Idempotency-Key answers it again)."""
        app = _app(request)
        interfaces = tuple(body.interfaces) if body.interfaces is not None else prepaid.ALL_INTERFACES
        return _run(app, lambda uow: prepaid.issue_card(
            uow, app.vault, program_merchant_id=merchant_id, kind=body.kind,
            initial_load_minor=body.initial_load_minor, pin=body.pin, issue_id=_client_id(idempotency_key),
            now=app.clock(), expiry=body.expiry, interfaces=interfaces))

    @api.get("/v1/prepaid_cards/{card_id}", tags=["prepaid"], responses=_PROBLEMS)
    def get_card(request: Request, card_id: str, merchant_id: Merchant) -> dict[str, Any]:
        """The card: masked PAN, status, kind, expiry, available balance (minor units)."""
        app = _app(request)
        return _run(app, lambda uow: prepaid.balance(uow, _own(uow, card_id, merchant_id), app.clock()), write=False)

    @api.post("/v1/prepaid_cards/{card_id}/freeze", tags=["prepaid"], responses=_PROBLEMS)
    def freeze(request: Request, card_id: str, merchant_id: Merchant) -> dict[str, Any]:
        """Freeze a lost card: payments and top-ups are refused until it is unfrozen."""
        return _run(_app(request), lambda uow: prepaid.freeze(uow, _own(uow, card_id, merchant_id)))

    @api.post("/v1/prepaid_cards/{card_id}/unfreeze", tags=["prepaid"], responses=_PROBLEMS)
    def unfreeze(request: Request, card_id: str, merchant_id: Merchant) -> dict[str, Any]:
        app = _app(request)
        return _run(app, lambda uow: prepaid.unfreeze(uow, _own(uow, card_id, merchant_id), app.clock()))

    @api.get("/v1/prepaid/float", tags=["prepaid"], responses=_PROBLEMS)
    def float_report(request: Request, merchant_id: Merchant) -> dict[str, Any]:
        """The program's float against its cards' unspent balance, per currency."""
        rows = _run(_app(request), lambda uow: prepaid.float_report(uow, merchant_id), write=False)
        return {"object": "list", "data": rows, "has_more": False}


def _install_money_routes(api: FastAPI) -> None:
    @api.post("/v1/prepaid_cards/{card_id}/top_ups", status_code=201, tags=["prepaid"], responses=_PROBLEMS)
    def top_up(request: Request, card_id: str, body: TopUpBody, merchant_id: Merchant,
               idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
        """Load a reloadable card: cash taken at the counter, or from a wallet balance."""
        app = _app(request)

        def work(uow: UnitOfWork) -> dict[str, Any]:
            _same_currency(uow, _own(uow, card_id, merchant_id), body.currency)
            return prepaid.top_up(uow, card_id=card_id, amount_minor=body.amount_minor, source=body.source,
                                  topup_id=_client_id(idempotency_key), wallet_user_id=body.wallet_user_id,
                                  now=app.clock())

        return _run(app, work)

    @api.post("/v1/prepaid_cards/{card_id}/payments", status_code=201, tags=["prepaid"], responses=_PROBLEMS)
    def pay(request: Request, card_id: str, body: PaymentBody, merchant_id: Merchant,
            idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
        """An online (card-not-present) payment to the authenticated merchant."""
        app = _app(request)

        def work(uow: UnitOfWork) -> dict[str, Any]:
            _same_currency(uow, _own(uow, card_id, merchant_id), body.currency)
            return prepaid.pay_online(uow, card_id=card_id, merchant_id=merchant_id, amount_minor=body.amount_minor,
                                      payment_id=_client_id(idempotency_key), now=app.clock(), cvv2=body.cvv2,
                                      vault=app.vault)

        return _run(app, work)

    @api.post("/v1/prepaid_cards/{card_id}/refunds", status_code=201, tags=["prepaid"], responses=_PROBLEMS)
    def refund(request: Request, card_id: str, body: AmountBody, merchant_id: Merchant,
               idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
        """Refund to the card from the merchant's pending balance (a frozen card too)."""
        app = _app(request)

        def work(uow: UnitOfWork) -> dict[str, Any]:
            _same_currency(uow, _own(uow, card_id, merchant_id), body.currency)
            return prepaid.refund(uow, card_id=card_id, merchant_id=merchant_id, amount_minor=body.amount_minor,
                                  refund_id=_client_id(idempotency_key), now=app.clock())

        return _run(app, work)


def _app(request: Request) -> App:
    return request.app.state.paypos  # type: ignore[no-any-return]


def _run(app: App, work: Callable[[UnitOfWork], T], *, write: bool = True) -> T:
    """Run a use case (committed when ``write``), its refusal as a problem document."""
    try:
        if write:
            return prepaid.transact(app, work)
        with app.uow(write=False) as uow:
            return work(uow)
    except prepaid.PrepaidError as error:
        raise _problem(error) from None


def _problem(error: prepaid.PrepaidError) -> Problem:
    status = _STATUS.get(error.code, 409)
    if error.code == "card_not_found":
        return Problem(404, "not-found", "Not found", str(error), code=error.code)
    return Problem(status, error.code.replace("_", "-"), _TITLES[status], str(error), code=error.code)


def _own(uow: UnitOfWork, card_id: str, merchant_id: str) -> str:
    """The card id when the card belongs to the merchant's program; else the same 404 as a missing card."""
    card = prepaid.get_card(uow, card_id)
    if card is None or card.program_merchant_id != merchant_id:
        raise prepaid.PrepaidError("card_not_found", f"no prepaid card {card_id!r}")
    return card_id


def _same_currency(uow: UnitOfWork, card_id: str, currency: str) -> None:
    card = prepaid.get_card(uow, card_id)
    if card is not None and card.currency.alpha != currency.upper():
        raise prepaid.PrepaidError("currency_mismatch", f"card {card_id} holds {card.currency.alpha}, not {currency}")


def _client_id(idempotency_key: str | None) -> str:
    return idempotency_key if idempotency_key is not None else uuid.uuid4().hex

