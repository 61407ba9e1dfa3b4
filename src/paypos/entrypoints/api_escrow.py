"""REST API v1 and buyer pages for escrow and disputes (issue 6, docs/escrow-disputes.md).

Merchant (Bearer API key; another merchant's id is a 404 like a missing one):
``GET /v1/payment_requests/{id}/escrow``, ``POST /v1/payment_requests/{id}/ship``,
``POST /v1/payment_requests/{id}/refund_request/accept|reject``, ``GET /v1/disputes``,
``GET /v1/disputes/{id}``, ``POST /v1/disputes/{id}/evidence``.

Buyer (the signed link sent to the cardholder's phone): ``GET /pay/{id}/confirm?sig=``, and
its forms ``POST /pay/{id}/confirm`` and ``POST /pay/{id}/refund_request``. A wrong signature
is the same 404 page as an unknown request.

Sandbox issuer: ``POST /v1/sandbox/disputes``, ``POST /v1/sandbox/disputes/{id}/close``.

Operator (Bearer ``PAYPOS_OPERATOR_TOKEN``; unset, the route is a 404):
``POST /v1/operator/escrow_disputes/{id}/decide`` ``{"decision": "refund"|"release"}``.

Every POST under /v1 takes an ``Idempotency-Key``; errors are RFC 9457 problem+json naming
the ``field`` or the ``current_state``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from paypos import limits
from paypos.adapters.db.online import SqlOnlineStore
from paypos.adapters.db.payments import SqlPaymentStore
from paypos.adapters.db.uow import UnitOfWork
from paypos.domain.dispute import REASON_CODES, DisputeError, IllegalDisputeTransition
from paypos.domain.payment_request import IllegalTransition, PaymentRequestError
from paypos.entrypoints import api_online as online
from paypos.entrypoints.api import Problem
from paypos.entrypoints.checkout import CSS_PATH, _headers, _not_found, _TEMPLATES
from paypos.services import checkout as checkout_service
from paypos.services import disputes
from paypos.services import escrow
from paypos.services.payment_requests import NotFound

T = TypeVar("T")
_TAGS: list[str] = ["escrow"]
_HEADLINES = {
    "held": "Your payment is held until your order ships",
    "shipped": "Your order is on its way",
    "refund_requested": "Refund requested: the merchant will answer",
    "refund_disputed": "The merchant declined the refund: our team will decide",
    "released": "Paid to the merchant",
    "refunded": "Refunded to your card",
}
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or unknown API key (problem+json)"},
    404: {"description": "No such object for this merchant (problem+json)"},
    409: {"description": "Illegal state (problem+json with `current_state`), or Idempotency-Key in progress"},
    422: {"description": "Invalid field (problem+json with `field`)"},
}


class ShipBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    carrier: str = Field(min_length=1, max_length=limits.escrow_carrier_chars_max, examples=["SF Express"])
    tracking_number: str = Field(min_length=1, max_length=limits.escrow_tracking_number_chars_max)


class EvidenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=limits.dispute_evidence_chars_max)


class OpenDisputeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment: str = Field(min_length=1, max_length=40, description="A captured card payment (pay_...).")
    reason_code: str = Field(description="Visa reason code: " + ", ".join(f"{k} {v}" for k, v in REASON_CODES.items()))
    amount: StrictInt | None = Field(None, gt=0, le=limits.payment_request_amount_minor_max,
                                     description="Minor units; default all that is left (captured − refunded).")


class DecideBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["refund", "release"]


class CloseDisputeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["won", "lost"]


def install_escrow_routes(api: FastAPI) -> None:
    _install_merchant_escrow_routes(api)
    _install_dispute_routes(api)
    _install_sandbox_dispute_routes(api)
    _install_operator_routes(api)
    _install_buyer_pages(api)


def _install_merchant_escrow_routes(api: FastAPI) -> None:
    @api.get("/v1/payment_requests/{request_id}/escrow", tags=_TAGS, responses=_PROBLEMS)
    def get_escrow(request: Request, request_id: str, merchant_id: online.Merchant) -> Response:
        app = online._app(request)
        with app.uow(write=False) as uow:
            return online._json(200, _answer(lambda: escrow.get(uow, merchant_id, request_id, app.clock())))

    @api.post("/v1/payment_requests/{request_id}/ship", tags=_TAGS, responses=_PROBLEMS)
    def ship(request: Request, request_id: str, body: ShipBody, merchant_id: online.Merchant,
             idempotency_key: online.IdempotencyKey = None) -> Response:
        """``held`` → ``shipped`` with the carrier and tracking number; ``escrow.shipped``. The
        buyer's confirmation, or the auto-release after ``PAYPOS_ESCROW_AUTO_RELEASE_S``, releases it."""
        app = online._app(request)

        def work(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            return 200, escrow.ship(uow, merchant_id, request_id, body.carrier, body.tracking_number, now=app.clock(),
                                    auto_release_s=app.settings.escrow_auto_release_s)

        return _idempotent(request, merchant_id, idempotency_key, body.model_dump(), work)

    for answer in ("accept", "reject"):
        _install_refund_answer(api, answer)


def _install_refund_answer(api: FastAPI, answer: str) -> None:
    @api.post(f"/v1/payment_requests/{{request_id}}/refund_request/{answer}", tags=_TAGS, responses=_PROBLEMS,
              name=f"{answer}_refund_request")
    def answer_refund_request(request: Request, request_id: str, merchant_id: online.Merchant,
                              idempotency_key: online.IdempotencyKey = None) -> Response:
        """Accept (a full refund out of the escrow) or reject (the operator decides) the buyer's refund request."""
        app = online._app(request)

        def work(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            return 200, escrow.answer_refund_request(uow, app.vault, merchant_id, request_id,
                                                     accept=answer == "accept", now=app.clock())

        return _idempotent(request, merchant_id, idempotency_key, {}, work)


def _install_dispute_routes(api: FastAPI) -> None:
    @api.get("/v1/disputes", tags=["disputes"], responses=_PROBLEMS)
    def list_disputes(request: Request, merchant_id: online.Merchant, cursor: online.Cursor = None,
                      limit: Annotated[int, Query(ge=1, le=limits.disputes_page_size_max)] = (
                          limits.disputes_page_size_default)) -> Response:
        with online._app(request).uow(write=False) as uow:
            page = _answer(lambda: disputes.list_disputes(uow, merchant_id, limit=limit, cursor=cursor))
        return online._list([disputes.to_json(d) for d in page.data], page.has_more, page.next_cursor)

    @api.get("/v1/disputes/{dispute_id}", tags=["disputes"], responses=_PROBLEMS)
    def get_dispute(request: Request, dispute_id: str, merchant_id: online.Merchant) -> Response:
        with online._app(request).uow(write=False) as uow:
            return online._json(200, disputes.to_json(_answer(lambda: disputes.get(uow, merchant_id, dispute_id))))

    @api.post("/v1/disputes/{dispute_id}/evidence", tags=["disputes"], responses=_PROBLEMS)
    def submit_evidence(request: Request, dispute_id: str, body: EvidenceBody, merchant_id: online.Merchant,
                        idempotency_key: online.IdempotencyKey = None) -> Response:
        """The merchant's evidence before ``evidence_due_by``; later is a 409 naming the state."""
        app = online._app(request)

        def work(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            return 200, disputes.to_json(disputes.submit_evidence(uow, merchant_id, dispute_id, body.text,
                                                                  now=app.clock()))

        return _idempotent(request, merchant_id, idempotency_key, body.model_dump(), work)


def _install_sandbox_dispute_routes(api: FastAPI) -> None:
    @api.post("/v1/sandbox/disputes", status_code=201, tags=["sandbox"], responses=_PROBLEMS)
    def open_dispute(request: Request, body: OpenDisputeBody,
                     idempotency_key: online.IdempotencyKey = None) -> Response:
        """The sandbox issuer opens a dispute (chargeback) on a captured card payment."""
        app = online._app(request)
        with app.uow(write=False) as uow:
            payment = SqlPaymentStore(uow.connection).get_payment(body.payment)
        if payment is None:
            raise Problem(404, "not-found", "Not found", f"no payment {body.payment!r}")

        def work(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            return 201, disputes.to_json(disputes.open_dispute(uow, body.payment, body.reason_code, body.amount,
                                                               now=app.clock()))

        return _idempotent(request, payment.merchant_id, idempotency_key, body.model_dump(), work)

    @api.post("/v1/sandbox/disputes/{dispute_id}/close", tags=["sandbox"], responses=_PROBLEMS)
    def close_dispute(request: Request, dispute_id: str, body: CloseDisputeBody,
                      idempotency_key: online.IdempotencyKey = None) -> Response:
        """The sandbox issuer decides: ``won`` (the amount back to the merchant) or ``lost`` (to the card)."""
        app = online._app(request)
        with app.uow(write=False) as uow:
            found = _answer(lambda: disputes.get(uow, None, dispute_id))

        def work(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            return 200, disputes.to_json(disputes.close_dispute(uow, dispute_id, body.outcome, now=app.clock()))

        return _idempotent(request, found.merchant_id, idempotency_key, body.model_dump(), work)


# --- the operator ---------------------------------------------------------------------------------

def authenticated_operator(request: Request) -> None:
    """The operator's Bearer token (``PAYPOS_OPERATOR_TOKEN``); unset, the operator API does not exist."""
    token = online._app(request).settings.operator_token
    if not token:
        raise Problem(404, "not-found", "Not found", "the operator API is off: PAYPOS_OPERATOR_TOKEN is unset")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Problem(401, "unauthorized", "Unauthorized", "send the operator token as 'Authorization: Bearer ...'")


def _install_operator_routes(api: FastAPI) -> None:
    @api.post("/v1/operator/escrow_disputes/{request_id}/decide", tags=["operator"], responses=_PROBLEMS,
              dependencies=[Depends(authenticated_operator)])
    def decide(request: Request, request_id: str, body: DecideBody,
               idempotency_key: online.IdempotencyKey = None) -> Response:
        """Decide a refund request the merchant rejected (``refund_disputed``): refund the buyer in
        full, or release to the merchant. Any other state is a 409 naming it."""
        app = online._app(request)
        with app.uow(write=False) as uow:
            found = SqlOnlineStore(uow.connection).get_payment_request(None, request_id)
        if found is None:
            raise Problem(404, "not-found", "Not found", f"no payment request {request_id!r}")

        def work(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            return 200, escrow.operator_decide(uow, app.vault, request_id, body.decision, now=app.clock())

        return _idempotent(request, found.merchant_id, idempotency_key, body.model_dump(), work)


# --- the buyer's signed page ----------------------------------------------------------------------

SigField = Annotated[str, Form(max_length=128)]
ReasonField = Annotated[str, Form(max_length=limits.escrow_refund_reason_chars_max)]


def _install_buyer_pages(api: FastAPI) -> None:
    @api.get("/pay/{request_id}/confirm", include_in_schema=False)
    def buyer_page(request: Request, request_id: str, sig: str = "") -> Response:
        return _buyer_page(request, request_id, sig, error=None)

    @api.post("/pay/{request_id}/confirm", include_in_schema=False)
    def buyer_confirms(request: Request, request_id: str, sig: SigField = "") -> Response:
        return _buyer_act(request, request_id, sig, lambda uow, now: escrow.confirm_receipt(uow, request_id, now=now))

    @api.post("/pay/{request_id}/refund_request", include_in_schema=False)
    def buyer_asks_refund(request: Request, request_id: str, sig: SigField = "", reason: ReasonField = "") -> Response:
        return _buyer_act(request, request_id, sig,
                          lambda uow, now: escrow.request_refund(uow, request_id, reason, now=now))


def _buyer_act(request: Request, request_id: str, sig: str, act: Callable[[UnitOfWork, Any], Any]) -> Response:
    app = online._app(request)
    if not escrow.buyer_link_valid(app.vault, request_id, sig):
        return _not_found()
    try:
        with app.uow() as uow:
            act(uow, app.clock())
            uow.commit()
    except IllegalTransition:
        pass  # answered already (a double click), or too late: the page shows the state
    except PaymentRequestError as error:
        return _buyer_page(request, request_id, sig, error=str(error), status=422)
    except NotFound:
        return _not_found()
    return RedirectResponse(f"/pay/{request_id}/confirm?sig={sig}", status_code=303, headers=_headers(None))


def _buyer_page(request: Request, request_id: str, sig: str, *, error: str | None, status: int = 200) -> Response:
    app = online._app(request)
    if not escrow.buyer_link_valid(app.vault, request_id, sig):
        return _not_found()
    try:
        with app.uow(write=False) as uow:
            view = checkout_service.view(uow, request_id, app.clock())
            record = escrow.get(uow, None, request_id, app.clock())
    except NotFound:
        return _not_found()
    base = f"/pay/{request_id}"
    page = _TEMPLATES.get_template("checkout/escrow.html").render(
        view=view, escrow=record, sig=sig, error=error, css_url=CSS_PATH, nonce=secrets.token_urlsafe(16),
        headline=_HEADLINES.get(view.status, view.status), confirm_url=f"{base}/confirm",
        refund_url=f"{base}/refund_request", reason_max=limits.escrow_refund_reason_chars_max)
    return Response(page, status_code=status, media_type="text/html; charset=utf-8", headers=_headers(None))


# --- problems ---------------------------------------------------------------------------------------

def _idempotent(request: Request, merchant_id: str, key: str | None, payload: Any, work: online.Work) -> Response:
    return online._idempotent(request, merchant_id, key, payload, lambda uow: _answer(lambda: work(uow)))


def _answer(call: Callable[[], T]) -> T:
    """The online API's problems, and those of disputes."""
    try:
        return online._answer(call)
    except disputes.DisputeNotFound as error:
        raise Problem(404, "not-found", "Not found", str(error)) from None
    except DisputeError as error:
        raise Problem(422, "validation-error", "Invalid request", str(error), field=error.field) from None
    except IllegalDisputeTransition as error:
        raise Problem(409, "invalid-state", "Invalid state", str(error), current_state=error.current.value) from None
    except disputes.NotDisputable as error:
        raise Problem(409, "invalid-state", "Invalid state", str(error), current_state=error.current_state) from None
