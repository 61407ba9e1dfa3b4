"""REST API v1 for webhooks and events (issue 6, docs/webhooks.md): webhook endpoints (create,
list, get, delete, rotate the secret), events (list, get), an event's deliveries with their
attempts, and manual redelivery.

A merchant's key sees only its own endpoints and events: another merchant's id is a 404,
exactly like one that does not exist. An endpoint's secret is shown once, in the answer to
its creation or rotation. Every POST takes an ``Idempotency-Key`` (api_online's
``_idempotent``): a retried creation replays the first answer — with the same secret —
instead of making a second endpoint. Install with ``install_webhook_routes(api)``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any, Literal, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from paypos import limits
from paypos.adapters.db.uow import UnitOfWork
from paypos.domain.webhook import EndpointError
from paypos.entrypoints.api import Problem
from paypos.entrypoints.api_online import IdempotencyKey, Merchant, _app, _idempotent, _json
from paypos.services import events
from paypos.services import webhooks as service

T = TypeVar("T")
TAGS: list[str | Enum] = ["webhooks"]


class CreateWebhookEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=limits.webhook_url_chars_max,
                     description="Where events are POSTed: an absolute http:// or https:// URL.")
    enabled_events: list[str] = Field(
        min_length=1, max_length=len(events.EVENT_TYPES),
        description="Event types to send, or ['*'] for every type (docs/webhooks.md lists them).")


class Redeliver(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str | None = Field(None, max_length=40,
                                 description="Only to this endpoint (which may have been made after the event).")


class WebhookEndpointOut(BaseModel):
    id: str = Field(examples=["we_3qd6uj2m5xk7a4ncbz6h2wq3fy"])
    object: Literal["webhook_endpoint"]
    url: str
    enabled_events: list[str]
    status: Literal["enabled", "disabled"]
    created_at: str
    secret: str | None = Field(None, description="whsec_...: only in the answer to creation or rotation.")


class EventOut(BaseModel):
    id: str = Field(examples=["evt_3qd6uj2m5xk7a4ncbz6h2wq3fy"])
    object: Literal["event"]
    type: str
    created_at: str
    data: dict[str, Any]


class ListOf(BaseModel):
    object: Literal["list"]
    data: list[dict[str, Any]]
    has_more: bool
    next_cursor: str | None = None


_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or unknown API key (problem+json)"},
    404: {"description": "No such endpoint or event for this merchant (problem+json)"},
    409: {"description": "Endpoint limit reached, nothing to redeliver, or Idempotency-Key in progress"},
    422: {"description": "Invalid field (problem+json with `field`), or Idempotency-Key reused with another body"},
}


def install_webhook_routes(api: FastAPI) -> None:
    _install_endpoint_routes(api)
    _install_event_routes(api)


def _install_endpoint_routes(api: FastAPI) -> None:
    @api.post("/v1/webhook_endpoints", status_code=201, response_model=WebhookEndpointOut, responses=_PROBLEMS,
              tags=TAGS)
    def create_webhook_endpoint(request: Request, body: CreateWebhookEndpoint, merchant_id: Merchant,
                                idempotency_key: IdempotencyKey = None) -> Response:
        """Register an endpoint; the answer carries its signing secret, shown this once."""
        app = _app(request)

        def work(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            endpoint, secret = _answer(lambda: service.create_endpoint(
                uow, app.vault, merchant_id, body.url, body.enabled_events, app.clock()))
            return 201, service.endpoint_to_json(endpoint, secret)

        return _idempotent(request, merchant_id, idempotency_key, body.model_dump(mode="json"), work)

    @api.get("/v1/webhook_endpoints", response_model=ListOf, responses=_PROBLEMS, tags=TAGS)
    def list_webhook_endpoints(request: Request, merchant_id: Merchant) -> Response:
        """The merchant's endpoints, oldest first (at most
        ``limits.webhook_endpoints_per_merchant_max``: one page)."""
        with _app(request).uow(write=False) as uow:
            found = service.list_endpoints(uow, merchant_id)
        return _json(200, _listing([service.endpoint_to_json(e) for e in found]))

    @api.get("/v1/webhook_endpoints/{endpoint_id}", response_model=WebhookEndpointOut, responses=_PROBLEMS,
             tags=TAGS)
    def get_webhook_endpoint(request: Request, endpoint_id: str, merchant_id: Merchant) -> Response:
        with _app(request).uow(write=False) as uow:
            found = _answer(lambda: service.get_endpoint(uow, merchant_id, endpoint_id))
        return _json(200, service.endpoint_to_json(found))

    @api.delete("/v1/webhook_endpoints/{endpoint_id}", responses=_PROBLEMS, tags=TAGS)
    def delete_webhook_endpoint(request: Request, endpoint_id: str, merchant_id: Merchant) -> Response:
        """Delete the endpoint: nothing more is sent to it and its pending deliveries fail."""
        app = _app(request)
        with app.uow() as uow:
            gone = _answer(lambda: service.delete_endpoint(uow, merchant_id, endpoint_id, app.clock()))
            uow.commit()
        return _json(200, {"id": gone.id, "object": "webhook_endpoint", "deleted": True})

    @api.post("/v1/webhook_endpoints/{endpoint_id}/rotate_secret", response_model=WebhookEndpointOut,
              responses=_PROBLEMS, tags=TAGS)
    def rotate_webhook_secret(request: Request, endpoint_id: str, merchant_id: Merchant,
                              idempotency_key: IdempotencyKey = None) -> Response:
        """A new signing secret (in this answer only); the previous one also signs, as a
        second ``v1``, for 24 hours."""
        app = _app(request)

        def work(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            endpoint, secret = _answer(lambda: service.rotate_secret(
                uow, app.vault, merchant_id, endpoint_id, app.clock()))
            return 200, service.endpoint_to_json(endpoint, secret)

        return _idempotent(request, merchant_id, idempotency_key, {}, work)


def _install_event_routes(api: FastAPI) -> None:
    @api.get("/v1/events", response_model=ListOf, responses=_PROBLEMS, tags=TAGS)
    def list_events(
        request: Request,
        merchant_id: Merchant,
        limit: Annotated[int, Query(ge=1, le=limits.webhook_event_page_size_max)] = (
            limits.webhook_event_page_size_default),
        cursor: Annotated[str | None, Query(max_length=limits.api_cursor_chars_max,
                                            description="next_cursor of the page before")] = None,
        type: Annotated[str | None, Query(description="Only events of this type")] = None,  # noqa: A002
    ) -> Response:
        """The merchant's events, newest first, one page at a time."""
        with _app(request).uow(write=False) as uow:
            page = _answer(lambda: service.list_events(uow, merchant_id, limit=limit, cursor=cursor,
                                                       event_type=type))
        return _json(200, _listing([events.to_json(e) for e in page.data], page.has_more, page.next_cursor))

    @api.get("/v1/events/{event_id}", response_model=EventOut, responses=_PROBLEMS, tags=TAGS)
    def get_event(request: Request, event_id: str, merchant_id: Merchant) -> Response:
        with _app(request).uow(write=False) as uow:
            found = _answer(lambda: service.get_event(uow, merchant_id, event_id))
        return _json(200, events.to_json(found))

    @api.get("/v1/events/{event_id}/deliveries", response_model=ListOf, responses=_PROBLEMS, tags=TAGS)
    def list_event_deliveries(request: Request, event_id: str, merchant_id: Merchant) -> Response:
        """The event's deliveries (one per endpoint), each with every attempt made."""
        with _app(request).uow(write=False) as uow:
            found = _answer(lambda: service.deliveries_of(uow, merchant_id, event_id))
        return _json(200, _listing(found))

    @api.post("/v1/events/{event_id}/redeliver", response_model=ListOf, responses=_PROBLEMS, tags=TAGS)
    def redeliver_event(request: Request, event_id: str, merchant_id: Merchant, body: Redeliver | None = None,
                        idempotency_key: IdempotencyKey = None) -> Response:
        """Send the event again now (to ``endpoint`` only, or to every endpoint it went to),
        with a fresh retry schedule; the deliveries concerned."""
        app, wanted = _app(request), body or Redeliver()

        def work(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            found = _answer(lambda: service.redeliver(uow, merchant_id, event_id, wanted.endpoint, app.clock()))
            return 200, _listing(found)

        return _idempotent(request, merchant_id, idempotency_key, wanted.model_dump(mode="json"), work)


def _listing(data: list[dict[str, Any]], has_more: bool = False, next_cursor: str | None = None) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "next_cursor": next_cursor}


def _answer(call: Callable[[], T]) -> T:
    """Run a use case; its refusals become problem documents."""
    try:
        return call()
    except EndpointError as error:
        raise Problem(422, "validation-error", "Invalid request", str(error), field=error.field) from None
    except service.NotFound as error:
        raise Problem(404, "not-found", "Not found", str(error)) from None
    except service.Refused as error:
        raise Problem(409, error.slug, "Refused", str(error)) from None
