"""REST API v1, the merchant's side of settlement (docs/settlement.md): ``GET /v1/settlements``
(its settlement batches) and ``GET /v1/payouts`` (its payouts), newest business date first,
authenticated by the merchant's secret API key. Amounts in minor units; never an account number
(a payout names its bank account id)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from paypos.bootstrap import App
from paypos.entrypoints.api import authenticated_merchant
from paypos.services import settlement as service

Merchant = Annotated[str, Depends(authenticated_merchant)]
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No, unknown or revoked API key (problem+json)"},
    422: {"description": "Invalid query parameter (problem+json)"},
}
PAGE_SIZE_MAX = 100  # at most limits.settlement_page_size_max
BusinessDate = Annotated[date | None, Query(description="Only this business date (YYYY-MM-DD).")]
Limit = Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX, description="Rows at most, newest first.")]


class PayoutOut(BaseModel):
    id: str
    object: Literal["payout"]
    merchant_id: str
    business_date: str
    amount_minor: int
    currency: str
    status: Literal["created", "sent", "paid", "returned"]
    bank_account_id: str
    file_id: str | None
    return_code: str | None
    return_reason: str | None
    created_at: str
    updated_at: str


class SettlementOut(BaseModel):
    id: str
    object: Literal["settlement"]
    merchant_id: str
    business_date: str
    cycle: Literal["T0", "T1", "WEEKLY"]
    currency: str
    window_start: str
    window_end: str
    gross_minor: int
    fees_minor: int
    refunds_minor: int
    chargebacks_minor: int
    other_minor: int
    carried_in_minor: int
    settled_minor: int
    carried_out_minor: int
    reserve_minor: int
    reserve_released_minor: int
    reserve_released_at: str | None
    instant_fee_minor: int
    charges_minor: int
    payout_id: str | None
    payout_minor: int
    note: str
    created_at: str


class PayoutList(BaseModel):
    object: Literal["list"]
    data: list[PayoutOut]


class SettlementList(BaseModel):
    object: Literal["list"]
    data: list[SettlementOut]


def install_settlement_routes(api: FastAPI) -> None:
    @api.get("/v1/payouts", response_model=PayoutList, responses=_PROBLEMS, tags=["settlement"])
    def list_payouts(request: Request, merchant_id: Merchant, business_date: BusinessDate = None,
                     limit: Limit = 20) -> JSONResponse:
        """The merchant's payouts: created → sent (in a clearing file) → paid | returned."""
        with _app(request).uow(write=False) as uow:
            rows = service.list_payouts(uow, merchant_id, business_date, limit)
        return JSONResponse({"object": "list", "data": rows})

    @api.get("/v1/settlements", response_model=SettlementList, responses=_PROBLEMS, tags=["settlement"])
    def list_settlements(request: Request, merchant_id: Merchant, business_date: BusinessDate = None,
                         limit: Limit = 20) -> JSONResponse:
        """The merchant's settlement batches: the window, what moved, the reserve and the payout."""
        with _app(request).uow(write=False) as uow:
            rows = service.list_batches(uow, merchant_id, business_date, limit)
        return JSONResponse({"object": "list", "data": rows})


def _app(request: Request) -> App:
    return request.app.state.paypos  # type: ignore[no-any-return]


