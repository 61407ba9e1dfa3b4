"""REST API v1 for online payments (issue 6, docs/api.md): payment requests, capture,
payments (attempts), refunds, balances.

A merchant's secret API key (Bearer) sees only its own requests: another merchant's id is
a 404, exactly like one that does not exist. Amounts are integers of minor units beside an
ISO 4217 alpha currency. Every POST takes an ``Idempotency-Key`` header
(services/idempotency.py): a retry with the same body replays the first answer, status and
body byte for byte, marked ``Idempotent-Replayed: true``. Install with
``install_online_routes(api)`` after ``create_app``; it installs the payments, refunds and
balances routes and the hosted checkout pages (entrypoints/checkout.py) too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt

from paypos import limits
from paypos.adapters.db.uow import UnitOfWork
from paypos.bootstrap import App
from paypos.domain.payment_request import IllegalTransition, PaymentRequestError
from paypos.entrypoints.api import PROBLEM_BASE, Problem, authenticated_merchant
from paypos.entrypoints.checkout import install_checkout_routes
from paypos.services import idempotency
from paypos.services import online_payments as payments
from paypos.services import payment_requests as service

T = TypeVar("T")
Merchant = Annotated[str, Depends(authenticated_merchant)]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key",
    description=f"1 to {limits.idempotency_key_chars_max} characters, chosen by the client (a UUID is "
                f"ideal). The same key with the same body replays the first answer for "
                f"{limits.idempotency_key_ttl_s // 3600} h.")]
Work = Callable[[UnitOfWork], tuple[int, dict[str, Any]]]


class CreatePaymentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: StrictInt = Field(gt=0, le=limits.payment_request_amount_minor_max,
                              description="Integer of minor units (fen for CNY): 1234 is 12.34 CNY.")
    currency: str = Field(pattern=r"^[A-Za-z]{3}$", description="ISO 4217 alphabetic code, e.g. CNY.")
    order_id: str = Field(min_length=1, max_length=limits.payment_request_order_id_chars_max,
                          description="The merchant's order id, unique per merchant (printable ASCII).")
    description: str = Field("", max_length=limits.payment_request_description_chars_max)
    capture: Literal["automatic", "manual"] = "automatic"
    escrow: StrictBool = False
    expires_at: AwareDatetime | None = Field(None, description="Default: one day after creation; at most 30 days.")
    metadata: dict[str, str] = Field(default_factory=dict, max_length=limits.payment_request_metadata_keys_max)


class PaymentRequestOut(BaseModel):
    id: str = Field(examples=["pr_3qd6uj2m5xk7a4ncbz6h2wq3fy"])
    object: Literal["payment_request"]
    status: str
    amount: int
    currency: str
    description: str
    order_id: str
    capture: Literal["automatic", "manual"]
    escrow: bool
    metadata: dict[str, str]
    checkout_url: str
    expires_at: datetime
    created_at: datetime
    updated_at: datetime


class PaymentRequestList(BaseModel):
    object: Literal["list"]
    data: list[PaymentRequestOut]
    has_more: bool
    next_cursor: str | None


_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or unknown API key (problem+json)"},
    404: {"description": "No such payment request for this merchant (problem+json)"},
    409: {"description": "Illegal state transition, order_id conflict, or Idempotency-Key in progress"},
    422: {"description": "Invalid field (problem+json with `field`), or Idempotency-Key reused with another body"},
}


def install_online_routes(api: FastAPI) -> None:
    @api.post("/v1/payment_requests", status_code=201, response_model=PaymentRequestOut,
              responses=_PROBLEMS, tags=["payment requests"])
    def create_payment_request(request: Request, body: CreatePaymentRequest, merchant_id: Merchant,
                               idempotency_key: IdempotencyKey = None) -> Response:
        """Ask a buyer to pay. 201 with the new request; 200 with the existing one when this
        merchant already asked for the same order_id with the same terms."""
        app, base_url = _app(request), str(request.base_url)

        def work(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            created, is_new = service.create(
                uow, merchant_id, amount_minor=body.amount, currency=body.currency, order_id=body.order_id,
                description=body.description, capture=body.capture, escrow=body.escrow, metadata=body.metadata,
                expires_at=body.expires_at, now=app.clock())
            return (201 if is_new else 200), service.to_json(created, base_url)

        return _idempotent(request, merchant_id, idempotency_key, body.model_dump(mode="json"), work)

    @api.get("/v1/payment_requests/{request_id}", response_model=PaymentRequestOut, responses=_PROBLEMS,
             tags=["payment requests"])
    def get_payment_request(request: Request, request_id: str, merchant_id: Merchant) -> Response:
        app = _app(request)
        with app.uow(write=False) as uow:
            found = _answer(lambda: service.get(uow, merchant_id, request_id, app.clock()))
        return _json(200, service.to_json(found, str(request.base_url)))

    @api.post("/v1/payment_requests/{request_id}/cancel", response_model=PaymentRequestOut, responses=_PROBLEMS,
              tags=["payment requests"])
    def cancel_payment_request(request: Request, request_id: str, merchant_id: Merchant,
                               idempotency_key: IdempotencyKey = None) -> Response:
        """Cancel an unpaid request, or void the hold of a ``requires_capture`` one (otherwise 409
        naming the state)."""
        app, base_url = _app(request), str(request.base_url)

        def work(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            return 200, service.to_json(payments.cancel(uow, merchant_id, request_id, now=app.clock()), base_url)

        return _idempotent(request, merchant_id, idempotency_key, {}, work)

    _install_list_route(api)
    install_payment_routes(api)
    install_checkout_routes(api)  # the buyer's pages behind checkout_url


def _install_list_route(api: FastAPI) -> None:
    @api.get("/v1/payment_requests", response_model=PaymentRequestList, responses=_PROBLEMS,
             tags=["payment requests"])
    def list_payment_requests(
        request: Request,
        merchant_id: Merchant,
        limit: Annotated[int, Query(ge=1, le=limits.payment_request_page_size_max)] = (
            limits.payment_request_page_size_default),
        cursor: Annotated[str | None, Query(max_length=limits.api_cursor_chars_max,
                                            description="next_cursor of the page before")] = None,
        status: Annotated[str | None, Query()] = None,
        created_gte: Annotated[AwareDatetime | None, Query(alias="created[gte]")] = None,
        created_lte: Annotated[AwareDatetime | None, Query(alias="created[lte]")] = None,
    ) -> Response:
        """The merchant's payment requests, newest first, one page at a time."""
        app = _app(request)
        with app.uow(write=False) as uow:
            page = _answer(lambda: service.list_requests(
                uow, merchant_id, now=app.clock(), limit=limit, cursor=cursor, status=status,
                created_gte=created_gte, created_lte=created_lte))
        base_url = str(request.base_url)
        return _list([service.to_json(r, base_url) for r in page.data], page.has_more, page.next_cursor)


class CaptureBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: StrictInt | None = Field(None, gt=0, le=limits.payment_request_amount_minor_max,
                                     description="Minor units to capture, at most the authorized amount; "
                                                 "default all. The rest of the hold is released.")


class CreateRefund(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_request: str = Field(min_length=1, max_length=40, description="The paid payment request.")
    amount: StrictInt | None = Field(None, gt=0, le=limits.payment_request_amount_minor_max,
                                     description="Minor units; default what is left to refund.")
    reason: str = Field("", max_length=limits.refund_reason_chars_max)


PageLimit = Annotated[int, Query(ge=1, le=limits.payments_page_size_max)]
Cursor = Annotated[str | None, Query(max_length=limits.api_cursor_chars_max,
                                     description="next_cursor of the page before")]


def install_payment_routes(api: FastAPI) -> None:
    """Capture, payments (attempts), refunds and balances (docs/api.md)."""

    @api.post("/v1/payment_requests/{request_id}/capture", response_model=PaymentRequestOut, responses=_PROBLEMS,
              tags=["payment requests"])
    def capture_payment_request(request: Request, request_id: str, merchant_id: Merchant,
                                body: CaptureBody | None = None, idempotency_key: IdempotencyKey = None) -> Response:
        """Capture a ``requires_capture`` request (all, or ``amount`` of the hold; the rest is released)."""
        app, base_url, asked = _app(request), str(request.base_url), body.amount if body else None

        def work(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            captured = payments.capture(uow, merchant_id, request_id, asked, now=app.clock(), base_url=base_url,
                                        vault=app.vault)
            return 200, service.to_json(captured, base_url)

        return _idempotent(request, merchant_id, idempotency_key, {"amount": asked}, work)

    @api.get("/v1/payments", tags=["payments"], responses=_PROBLEMS)
    def list_payments(request: Request, merchant_id: Merchant, payment_request: str | None = None,
                      limit: PageLimit = limits.payments_page_size_default, cursor: Cursor = None) -> Response:
        """The merchant's payments (attempts), newest first; ``payment_request`` filters to one request."""
        with _app(request).uow(write=False) as uow:
            page = _answer(lambda: payments.list_payments(uow, merchant_id, limit=limit, cursor=cursor,
                                                          request_id=payment_request))
        return _list([payments.payment_json(p) for p in page.data], page.has_more, page.next_cursor)

    @api.get("/v1/payments/{payment_id}", tags=["payments"], responses=_PROBLEMS)
    def get_payment(request: Request, payment_id: str, merchant_id: Merchant) -> Response:
        with _app(request).uow(write=False) as uow:
            found = _answer(lambda: payments.get_payment(uow, merchant_id, payment_id))
        return _json(200, payments.payment_json(found))

    _install_refund_routes(api)


def _install_refund_routes(api: FastAPI) -> None:
    @api.post("/v1/refunds", status_code=201, tags=["refunds"], responses=_PROBLEMS)
    def create_refund(request: Request, body: CreateRefund, merchant_id: Merchant,
                      idempotency_key: IdempotencyKey = None) -> Response:
        """Refund all or part of a paid request to its original card: several refunds may follow
        one another, never above what was captured (422 naming ``amount``); an unpaid request is a
        409 naming its state. A wallet payment is refunded through the wallet."""
        app = _app(request)

        def work(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            made = payments.refund(uow, app.vault, merchant_id, body.payment_request, body.amount, body.reason,
                                   now=app.clock())
            return 201, payments.refund_json(made)

        return _idempotent(request, merchant_id, idempotency_key, body.model_dump(mode="json"), work)

    @api.get("/v1/refunds", tags=["refunds"], responses=_PROBLEMS)
    def list_refunds(request: Request, merchant_id: Merchant, payment_request: str | None = None,
                     payment: str | None = None, limit: PageLimit = limits.payments_page_size_default,
                     cursor: Cursor = None) -> Response:
        with _app(request).uow(write=False) as uow:
            page = _answer(lambda: payments.list_refunds(uow, merchant_id, limit=limit, cursor=cursor,
                                                         payment_id=payment, request_id=payment_request))
        return _list([payments.refund_json(r) for r in page.data], page.has_more, page.next_cursor)

    @api.get("/v1/refunds/{refund_id}", tags=["refunds"], responses=_PROBLEMS)
    def get_refund(request: Request, refund_id: str, merchant_id: Merchant) -> Response:
        with _app(request).uow(write=False) as uow:
            found = _answer(lambda: payments.get_refund(uow, merchant_id, refund_id))
        return _json(200, payments.refund_json(found))

    @api.get("/v1/balances", tags=["balances"], responses=_PROBLEMS)
    def get_balances(request: Request, merchant_id: Merchant) -> Response:
        """Per currency, in minor units, from the ledger: ``pending`` (captured, not yet settled),
        ``available`` (settled), ``escrow`` (held until the goods arrive), ``authorized`` (holds)."""
        with _app(request).uow(write=False) as uow:
            rows = payments.balances(uow, merchant_id)
        return _json(200, {"object": "balance", "data": rows})


def _list(data: list[dict[str, Any]], has_more: bool, next_cursor: str | None) -> Response:
    return _json(200, {"object": "list", "data": data, "has_more": has_more, "next_cursor": next_cursor})


def _idempotent(request: Request, merchant_id: str, key: str | None, payload: Any, work: Work) -> Response:
    """Run ``work`` once per (merchant, Idempotency-Key); replay its answer afterwards."""
    app = _app(request)
    if key is None:
        with app.uow() as uow:
            status, body = _answer(lambda: work(uow))
            uow.commit()
        return _json(status, body)
    if not 0 < len(key) <= limits.idempotency_key_chars_max:
        raise Problem(422, "validation-error", "Invalid request",
                      f"Idempotency-Key must be 1 to {limits.idempotency_key_chars_max} characters",
                      field="Idempotency-Key")
    method, path = request.method, request.url.path
    with app.uow() as uow:
        outcome = idempotency.begin(uow, merchant_id, key, method, path,
                                    idempotency.request_hash(method, path, payload), app.clock())
        uow.commit()
    if not isinstance(outcome, idempotency.New):
        return _settled(outcome)
    return _first_run(app, merchant_id, key, work)


def _first_run(app: App, merchant_id: str, key: str, work: Work) -> Response:
    try:
        with app.uow() as uow:
            status, body = _answer(lambda: work(uow))
            text = idempotency.finish(uow, merchant_id, key, status, body)
            uow.commit()
        return Response(text, status_code=status, media_type="application/json")
    except Problem as problem:
        if problem.status == 422:  # the request never started: a corrected retry may reuse the key
            _release(app, merchant_id, key)
            raise
        document = {"type": PROBLEM_BASE + problem.slug, "title": problem.title, "status": problem.status,
                    "detail": problem.detail, **problem.extra}
        with app.uow() as uow:
            text = idempotency.finish(uow, merchant_id, key, problem.status, document)
            uow.commit()
        return Response(text, status_code=problem.status, media_type="application/problem+json")
    except BaseException:
        _release(app, merchant_id, key)
        raise


def _release(app: App, merchant_id: str, key: str) -> None:
    with app.uow() as uow:
        idempotency.abandon(uow, merchant_id, key)
        uow.commit()


def _settled(outcome: idempotency.Outcome) -> Response:
    if isinstance(outcome, idempotency.Replay):
        media = "application/problem+json" if outcome.status >= 400 else "application/json"
        return Response(outcome.body, status_code=outcome.status, media_type=media,
                        headers={"Idempotent-Replayed": "true"})
    if isinstance(outcome, idempotency.Mismatch):
        raise Problem(422, "idempotency-key-reused", "Idempotency-Key reused",
                      f"this Idempotency-Key was first used for another request ({outcome.method} "
                      f"{outcome.path} with a different body); use a new key", field="Idempotency-Key")
    raise Problem(409, "idempotency-in-progress", "Request in progress",
                  "a request with this Idempotency-Key is still being processed; retry later",
                  field="Idempotency-Key")


def _answer(call: Callable[[], T]) -> T:
    """Run a use case; its refusals become problem documents."""
    try:
        return call()
    except payments.PaymentNotFound as error:
        raise Problem(404, "not-found", "Not found", str(error)) from None
    except payments.InsufficientBalance as error:
        raise Problem(409, "insufficient-balance", "Insufficient balance", str(error), field="amount") from None
    except payments.HoldExpired as error:
        raise Problem(409, "authorization-expired", "Authorization expired", str(error),
                      current_state="requires_capture") from None
    except PaymentRequestError as error:
        raise Problem(422, "validation-error", "Invalid request", str(error), field=error.field) from None
    except service.NotFound as error:
        raise Problem(404, "not-found", "Not found", str(error)) from None
    except service.OrderConflict as error:
        raise Problem(409, "order-id-conflict", "Order id already used", str(error), field="order_id",
                      payment_request=error.existing_id) from None
    except IllegalTransition as error:
        raise Problem(409, "invalid-state", "Invalid state", str(error),
                      current_state=error.current.value) from None


def _json(status: int, body: dict[str, Any]) -> Response:
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return Response(text, status_code=status, media_type="application/json")


def _app(request: Request) -> App:
    return request.app.state.paypos  # type: ignore[no-any-return]
