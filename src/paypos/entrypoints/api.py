"""The HTTP API (FastAPI): health, read-only merchant-scoped accounts, and the sandbox
wallet's Alipay-compatible merchant gateway (``api_wallet``).

Errors are RFC 9457 ``application/problem+json`` documents with a stable
``type``; a merchant's API key (Bearer) sees only its own merchant's objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from paypos import __version__, limits
from paypos.adapters.vault import hash_api_secret
from paypos.bootstrap import App
from paypos.entrypoints.api_wallet import install_wallet_routes
from paypos.services import ledger as ledger_service
from paypos.services import online_payments
from paypos.services import wallet as wallet_service
from paypos.domain.webhook import RetrySchedule
from paypos.services.notifier import run_notifier
from paypos.services.webhooks import run_deliveries
from paypos.services.escrow import run_escrow_releases
from paypos.services.sandbox import merchant_owner

log = logging.getLogger("paypos.api")
PROBLEM_BASE = "https://paypos.dev/problems/"


class Problem(Exception):
    """An RFC 9457 problem; raised anywhere in a handler, rendered by the app."""

    def __init__(self, status: int, slug: str, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail, self.extra = status, slug, title, detail, extra


def problem_response(status: int, slug: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": 'Bearer realm="paypos"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def create_app(
    app: App,
    *,
    expiry_sweep_interval_s: float | None = limits.pending_expiry_sweep_interval_s,
    notify_interval_s: float | None = limits.wallet_notify_poll_interval_s,
    webhook_interval_s: float | None = limits.webhook_poll_interval_s,
    escrow_release_interval_s: float | None = limits.escrow_release_sweep_interval_s,
    reports_refresh_interval_s: float | None = None,
) -> FastAPI:
    """The API; its lifespan runs the hold-expiry sweeper, the wallet's notifier and the
    webhook delivery loop (``None`` turns any off, as tests that drive them by hand do), and
    the reports' rollup refresh when given an interval (``paypos serve`` does)."""

    @contextlib.asynccontextmanager
    async def lifespan(_api: FastAPI) -> AsyncIterator[None]:
        tasks = []
        if expiry_sweep_interval_s:
            tasks.append(asyncio.create_task(_sweep_expired_holds(app, expiry_sweep_interval_s)))
        if notify_interval_s:
            tasks.append(asyncio.create_task(run_notifier(app, notify_interval_s)))
        if webhook_interval_s:
            schedule = RetrySchedule(first_delay_s=app.settings.webhook_retry_first_delay_s)
            tasks.append(asyncio.create_task(run_deliveries(app, webhook_interval_s, schedule)))
        if escrow_release_interval_s:
            tasks.append(asyncio.create_task(run_escrow_releases(app, escrow_release_interval_s)))
        if reports_refresh_interval_s:
            from paypos.services.reports import run_refresh

            tasks.append(asyncio.create_task(run_refresh(app, reports_refresh_interval_s)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    api = FastAPI(title="paypos", version=__version__, lifespan=lifespan)
    api.state.paypos = app
    _install_error_handlers(api)
    api.openapi = lambda: _openapi_with_problems(api)  # type: ignore[method-assign]
    _install_routes(api)
    install_sandbox_routes(api)
    install_receipt_routes(api)
    install_wallet_routes(api)
    # Imported here: these modules import Problem and authenticated_merchant from this one.
    from paypos.entrypoints.api_buyer import install_buyer_routes
    from paypos.entrypoints.api_escrow import install_escrow_routes
    from paypos.entrypoints.api_keys import install_api_key_routes
    from paypos.entrypoints.api_online import install_online_routes
    from paypos.entrypoints.api_onboarding import install_onboarding_routes
    from paypos.entrypoints.api_prepaid import install_prepaid_routes
    from paypos.entrypoints.api_settlement import install_settlement_routes
    from paypos.entrypoints.api_pricing import install_pricing_routes
    from paypos.entrypoints.api_reports import install_reports_routes
    from paypos.entrypoints.api_webhooks import install_webhook_routes

    install_buyer_routes(api)
    install_prepaid_routes(api)
    install_online_routes(api)
    install_webhook_routes(api)
    install_escrow_routes(api)
    install_api_key_routes(api)
    install_onboarding_routes(api)
    from paypos.entrypoints.console import install_console_routes

    install_console_routes(api)  # the web console at /console/ (docs/console.md)
    install_settlement_routes(api)
    install_pricing_routes(api)
    install_reports_routes(api)
    return api


async def _sweep_expired_holds(app: App, interval_s: float) -> None:
    """Expire authorization holds, wallet trades and payment requests past their time, forever,
    off the event loop."""
    while True:
        try:
            await asyncio.to_thread(ledger_service.expire_pending, app.engine, app.clock)
        except Exception:  # keep sweeping; the next pass retries
            log.exception("expiring pending transfers failed")
        try:  # unpaid wallet trades past their timeout close (and notify TRADE_CLOSED)
            await asyncio.to_thread(wallet_service.sweep_expired_trades, app)
        except Exception:
            log.exception("closing expired wallet trades failed")
        try:  # unpaid payment requests past expires_at are written expired
            await asyncio.to_thread(online_payments.expire_all_due, app.uow, app.clock)
        except Exception:
            log.exception("expiring payment requests failed")
        await asyncio.sleep(interval_s)


def _install_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(Problem)
    async def _problem(_request: Request, problem: Problem) -> JSONResponse:
        return problem_response(problem.status, problem.slug, problem.title, problem.detail, **problem.extra)

    @api.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http-error")
        return problem_response(error.status_code, slug, str(error.detail), str(error.detail))

    @api.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return problem_response(
            422, "validation-error", "Invalid request", first.get("msg", "invalid request"), field=field or None
        )


# --- the OpenAPI document: errors as problem+json, Bearer schemes ------------------------------

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object", "title": "Problem", "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {"type": {"type": "string", "format": "uri"}, "title": {"type": "string"},
                   "status": {"type": "integer"}, "detail": {"type": "string"},
                   "field": {"type": ["string", "null"], "description": "The offending field, when one is"}},
    "additionalProperties": True,
}
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "merchantKey": {"type": "http", "scheme": "bearer", "description": "A merchant's secret API key (sk_test_...)"},
    "walletUserToken": {"type": "http", "scheme": "bearer",
                        "description": "A sandbox wallet user's token (wu_test_...; paypos sandbox wallet-users)"},
}
_PROBLEM_CONTENT = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_DEFAULT_DESCRIPTIONS = {401: "No, unknown or revoked credentials", 404: "Not found",
                         422: "Invalid field (`field` names it)"}


def _openapi_with_problems(api: FastAPI) -> dict[str, Any]:
    """FastAPI's document, then: every 4xx is ``application/problem+json`` (the handlers above
    answer nothing else), routes behind a Bearer dependency declare it and their 401, and a
    route with a path parameter its 404 (an unknown or another merchant's id)."""
    if api.openapi_schema is not None:
        return api.openapi_schema
    from fastapi.openapi.utils import get_openapi
    from fastapi.routing import APIRoute

    document = get_openapi(title=api.title, version=api.version, openapi_version=api.openapi_version,
                           description=api.description, routes=api.routes)
    components = document.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    for route in (r for r in api.routes if isinstance(r, APIRoute) and r.include_in_schema):
        scheme = _security_scheme(route.dependant)
        for method in route.methods or ():
            operation = document["paths"][route.path_format][method.lower()]
            extra = ([401] if scheme else []) + ([404] if route.dependant.path_params else [])
            if scheme:
                operation["security"] = [{scheme: []}]
            _problem_responses(operation["responses"], extra)
    api.openapi_schema = document
    return document


def _security_scheme(dependant: Any) -> str | None:
    """The scheme named by a Bearer dependency (``security_scheme`` on the function) in the tree."""
    for dependency in dependant.dependencies:
        found = getattr(dependency.call, "security_scheme", None) or _security_scheme(dependency)
        if found:
            return str(found)
    return None


def _problem_responses(responses: dict[str, Any], extra: list[int]) -> None:
    for added in extra:
        responses.setdefault(str(added), {"description": _DEFAULT_DESCRIPTIONS[added]})
    for code, response in responses.items():
        if code.startswith(("4", "5")):
            response["content"] = _PROBLEM_CONTENT
            if code == "422" and response.get("description") == "Validation Error":
                response["description"] = _DEFAULT_DESCRIPTIONS[422]


def _paypos(request: Request) -> App:
    return request.app.state.paypos


def authenticated_merchant(request: Request) -> str:
    """The merchant id behind the request's Bearer API key, or a 401 problem."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "unauthorized", "Unauthorized", "send your secret API key as 'Authorization: Bearer sk_...'")
    app = _paypos(request)
    with app.uow(write=False) as uow:
        merchant_id = uow.registry.merchant_for_api_key(hash_api_secret(token.strip()))
        merchant = None if merchant_id is None else uow.registry.get_merchant(merchant_id)
    if merchant_id is None or merchant is None:
        raise Problem(401, "unauthorized", "Unauthorized", "the API key is unknown or revoked")
    if merchant.status != "active":  # suspended or closed (issue 7), or approved and not yet active
        raise Problem(403, "merchant-not-active", "Merchant not active", f"the merchant is {merchant.status}")
    return merchant_id


authenticated_merchant.security_scheme = "merchantKey"  # type: ignore[attr-defined]  # OpenAPI


def _install_routes(api: FastAPI) -> None:
    @api.get("/healthz", tags=["operations"])
    def healthz(request: Request) -> JSONResponse:
        app = _paypos(request)
        try:
            with app.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": app.engine.dialect.name, "version": __version__})

    @api.get("/v1/accounts", tags=["ledger"])
    def list_accounts(
        request: Request, merchant_id: Annotated[str, Depends(authenticated_merchant)]
    ) -> dict[str, Any]:
        """The authenticated merchant's ledger accounts and balances (minor units)."""
        app = _paypos(request)
        rows = [
            {**ledger_service.balance_row(a), "object": "account"}
            for a in ledger_service.accounts(app.engine, [merchant_owner(merchant_id)])
        ]
        return {"object": "list", "data": rows, "has_more": False}


def install_sandbox_routes(api: FastAPI) -> None:
    """Read-only sandbox listings for terminals on other machines (`paypos terminal --api URL`).

    They publish the sandbox's TEST cards and terminal keys — the same data as `paypos
    sandbox cards|terminals --json` — and nothing else (no merchant API keys).
    """
    from paypos.services import sandbox as sandbox_service

    @api.get("/v1/sandbox/cards", tags=["sandbox"])
    def sandbox_cards(request: Request) -> list[dict[str, Any]]:
        app = _paypos(request)
        with app.uow(write=False) as uow:
            return sandbox_service.list_cards(uow, app.vault)

    @api.get("/v1/sandbox/terminals", tags=["sandbox"])
    def sandbox_terminals(request: Request) -> list[dict[str, Any]]:
        app = _paypos(request)
        with app.uow(write=False) as uow:
            return sandbox_service.list_terminals(uow, app.vault)

    @api.get("/v1/sandbox/merchants/{merchant_id}", tags=["sandbox"])
    def sandbox_merchant(request: Request, merchant_id: str) -> dict[str, Any]:
        app = _paypos(request)
        with app.uow(write=False) as uow:
            merchant = uow.registry.get_merchant(merchant_id)
        if merchant is None:
            raise Problem(404, "not-found", "Not found", f"no merchant {merchant_id!r}")
        return {"merchant_id": merchant.merchant_id, "name": merchant.name, "city": merchant.city,
                "address": merchant.address, "country": merchant.country, "currency": merchant.currency}


def install_receipt_routes(api: FastAPI) -> None:
    """The e-receipt page a receipt's QR code links to: ``/r/{rrn}?code={approval code}``.

    RRNs are sequential, so the page also asks for the approval code printed on the same
    receipt (6 random digits); a wrong or missing code is a 404, never a hint.
    """
    import html

    from paypos.domain.money import money

    @api.get("/r/{rrn}", response_class=HTMLResponse, tags=["receipts"])
    def e_receipt(request: Request, rrn: str, code: str = "") -> HTMLResponse:
        app = _paypos(request)
        with app.uow(write=False) as uow:
            found = uow.host.receipt(rrn)
            merchant = uow.registry.get_merchant(found.merchant_id) if found else None
        if found is None or not found.approval_code or not hmac.compare_digest(found.approval_code, code):
            raise Problem(404, "not-found", "Not found", "no receipt with this reference and code")
        rows = [("Merchant", merchant.name if merchant else found.merchant_id),
                ("Terminal", found.terminal_id), ("Date", found.created_at.strftime("%Y-%m-%d %H:%M UTC")),
                ("Card", found.pan_masked or ""), ("Amount", str(money(found.amount_minor, found.currency))),
                ("Approval code", found.approval_code), ("RRN", found.rrn), ("Status", found.status)]
        body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        page = (
            "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content='width=device-width'>"
            f"<title>Receipt {html.escape(found.rrn)}</title><body style='font-family:sans-serif;max-width:28em;"
            f"margin:auto'><h1>Receipt</h1><table>{body}</table></body></html>"
        )
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})
