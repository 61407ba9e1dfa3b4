"""REST API v1: the caller's pricing (docs/pricing.md): ``GET /v1/pricing`` (the plan in force,
its rates, the plan history and charges still owed) and ``GET /v1/pricing/quote?method=&amount=``
(the fee one payment would cost now). Read-only; merchant Bearer API key as everywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from paypos import limits
from paypos.bootstrap import App
from paypos.domain.pricing import PricingError, plan_to_json
from paypos.entrypoints.api import Problem, authenticated_merchant
from paypos.services import pricing as service

Merchant = Annotated[str, Depends(authenticated_merchant)]
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No, unknown or revoked API key (problem+json)"},
    422: {"description": "Invalid query parameter (problem+json with `field`)"},
}


def install_pricing_routes(api: FastAPI) -> None:
    @api.get("/v1/pricing", responses=_PROBLEMS, tags=["pricing"])
    def get_pricing(request: Request, merchant_id: Merchant) -> JSONResponse:
        """The caller's plan in force now (rates per method in basis points, mins and caps in minor
        units, fees, device model, promotions), its plan history and the charges it still owes."""
        app = _app(request)
        now = app.clock()
        with app.uow(write=False) as uow:
            merchant = uow.registry.get_merchant(merchant_id)
            currency = merchant.currency if merchant else "CNY"
            plan = service.plan_at(uow, merchant_id, currency, now)
            history = [{"plan_id": a.plan_id, "effective_from": _iso(a.effective_from)}
                       for a in uow.pricing.assignments(merchant_id)][-limits.pricing_assignments_listed_max:]
            owed = [service.charge_json(c) for c in service.outstanding_charges(uow, merchant_id, currency)]
        return JSONResponse({"object": "pricing", "merchant_id": merchant_id, "plan": plan_to_json(plan),
                             "assignments": history, "outstanding_charges": owed, "at": _iso(now)})

    @api.get("/v1/pricing/quote", responses=_PROBLEMS, tags=["pricing"])
    def quote(request: Request, merchant_id: Merchant,
              method: Annotated[str, Query(description="debit_card, credit_card, contactless, wallet_balance, "
                                                       "wallet_card, credit_pay, prepaid, card_not_present")],
              amount: Annotated[int, Query(ge=0, le=limits.transfer_amount_minor_max,
                                           description="Minor units of the merchant's currency.")]) -> JSONResponse:
        """The fee one payment of ``amount`` by ``method`` costs the caller now."""
        app = _app(request)
        with app.uow(write=False) as uow:
            try:
                body = service.quote(uow, merchant_id, method, amount, app.clock())
            except PricingError as error:
                raise Problem(422, "validation-error", "Invalid request", str(error), field=error.field) from None
        return JSONResponse({"object": "fee_quote", **body})


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _app(request: Request) -> App:
    return request.app.state.paypos  # type: ignore[no-any-return]
