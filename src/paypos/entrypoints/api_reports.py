"""REST API v1: a merchant's reports (docs/reports.md): the transaction search and its
statements as CSV or PDF. A merchant's API key (Bearer) sees only its own transactions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, Field

from paypos import limits
from paypos.bootstrap import App
from paypos.domain.pricing import PaymentMethod
from paypos.entrypoints.api import Problem, authenticated_merchant
from paypos.services import reports

Merchant = Annotated[str, Depends(authenticated_merchant)]
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or unknown API key (problem+json)"},
    422: {"description": "Invalid field (problem+json with `field`)"},
}
_STATEMENT_TYPES = {"csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}


class TransactionOut(BaseModel):
    id: str = Field(description="ht_<12 digits> (card present), pay_/re_ (online payment/refund), "
                                "wt_/wr_ (wallet gateway)")
    at: str
    merchant_id: str
    terminal_id: str = Field(description="The terminal, 'online' or 'wallet'")
    method: str
    kind: Literal["sale", "refund", "preauth", "balance"]
    status: Literal["approved", "declined", "reversed", "pending", "completed"]
    amount_minor: int
    amount: str = Field(description="The amount as a decimal string in major units")
    fee_minor: int
    currency: str
    pan_masked: str | None
    rrn: str | None
    approval_code: str | None
    order_id: str | None
    reason: str | None = Field(description="A decline's response code or failure code")


class TransactionList(BaseModel):
    object: Literal["list"]
    data: list[TransactionOut]
    next_cursor: str | None


def install_reports_routes(api: FastAPI) -> None:
    @api.get("/v1/reports/transactions", response_model=TransactionList, responses=_PROBLEMS, tags=["reports"])
    def search_transactions(
        request: Request,
        merchant_id: Merchant,
        limit: Annotated[int, Query(ge=1, le=limits.reports_page_size_max)] = limits.reports_page_size_default,
        cursor: Annotated[str | None, Query(max_length=limits.api_cursor_chars_max,
                                            description="next_cursor of the page before")] = None,
        since: Annotated[AwareDatetime | None, Query()] = None,
        until: Annotated[AwareDatetime | None, Query(description="exclusive")] = None,
        amount_min: Annotated[int | None, Query(ge=0, le=2**62)] = None,
        amount_max: Annotated[int | None, Query(ge=0, le=2**62)] = None,
        status: Annotated[Literal["approved", "declined", "reversed", "pending", "completed"] | None, Query()] = None,
        method: Annotated[PaymentMethod | None, Query()] = None,
        last4: Annotated[str | None, Query(pattern=r"^[0-9]{4}$")] = None,
        rrn: Annotated[str | None, Query(pattern=r"^[0-9]{12}$")] = None,
        order_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    ) -> JSONResponse:
        """The merchant's transactions (card present and online), newest first, one page at a time."""
        filters = reports.SearchFilters(since=since, until=until, amount_min=amount_min, amount_max=amount_max,
                                        status=status, method=method.value if method else None, last4=last4,
                                        rrn=rrn, order_id=order_id)
        with _app(request).uow(write=False) as uow:
            try:
                page = reports.search(uow, merchant_id, filters, limit=limit, cursor=cursor)
            except reports.ReportError as error:
                raise Problem(422, "invalid-field", "Invalid field", str(error), field=error.field) from None
        return JSONResponse({"object": "list", "data": [r.to_json() for r in page.rows],
                             "next_cursor": page.next_cursor})

    @api.get("/v1/reports/statements/{period}.{fmt}", tags=["reports"], response_class=Response,
             responses={**_PROBLEMS, 200: {"description": "The statement (CSV: docs/reports.md columns)",
                                           "content": {"text/csv": {"schema": {"type": "string"}},
                                                       "application/pdf": {"schema": {"type": "string",
                                                                                      "format": "binary"}}}}})
    def statement(request: Request, merchant_id: Merchant,
                  period: Annotated[str, Path(max_length=10, description="A local day YYYY-MM-DD or month YYYY-MM")],
                  fmt: Literal["csv", "pdf"],
                  timezone: Annotated[str, Query(max_length=64)] = reports.DEFAULT_TZ) -> Response:
        """The merchant's daily or monthly statement in its local days (``timezone``)."""
        with _app(request).uow(write=False) as uow:
            try:
                stmt = reports.statement(uow, merchant_id, period, tz=timezone)
            except reports.ReportError as error:
                raise Problem(422, "invalid-field", "Invalid field", str(error), field=error.field) from None
        body = reports.statement_csv(stmt).encode() if fmt == "csv" else reports.statement_pdf(stmt)
        return Response(body, media_type=_STATEMENT_TYPES[fmt], headers={
            "Content-Disposition": f'attachment; filename="statement-{merchant_id}-{period}.{fmt}"'})


    # Imported here: api_escrow imports this module's siblings at app creation.
    from paypos.entrypoints.api_escrow import authenticated_operator

    @api.get("/v1/operator/reports", tags=["operator"], responses={**_PROBLEMS, 404: {
        "description": "The operator API is off (PAYPOS_OPERATOR_TOKEN unset)"}},
             dependencies=[Depends(authenticated_operator)])
    def operator_report(request: Request,
                        start: Annotated[str, Query(alias="from", max_length=10, description="First local day")],
                        end: Annotated[str, Query(alias="to", max_length=10, description="The day after the last")],
                        timezone: Annotated[str, Query(max_length=64)] = reports.DEFAULT_TZ,
                        top: Annotated[int, Query(ge=1, le=limits.reports_top_merchants_max)] = 10) -> JSONResponse:
        """Volume by day, approval rate, decline reasons, top merchants, fees revenue, disputes."""
        from dataclasses import asdict

        with _app(request).uow(write=False) as uow:
            try:
                first, _ = reports.period_bounds(start, timezone)
                last, _ = reports.period_bounds(end, timezone)
                report = reports.operator_report(uow, first, last, tz=timezone, top=top)
            except reports.ReportError as error:
                raise Problem(422, "invalid-field", "Invalid field", str(error), field=error.field) from None
        return JSONResponse(asdict(report) | {"start": report.start.isoformat(), "end": report.end.isoformat()})


def _app(request: Request) -> App:
    return request.app.state.paypos  # type: ignore[no-any-return]
