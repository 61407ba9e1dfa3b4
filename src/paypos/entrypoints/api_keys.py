"""REST API v1: the caller's secret API keys (docs/api.md, "API keys"): create (the secret
is in that answer only), list, revoke. Rotation is create, switch, revoke.

``POST /v1/api_keys`` takes no ``Idempotency-Key``: a replay would have to store the secret to
answer it again. A retried create makes a second key, which the merchant revokes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from paypos import limits
from paypos.bootstrap import App
from paypos.entrypoints.api import Problem, authenticated_merchant
from paypos.services import api_keys as service

Merchant = Annotated[str, Depends(authenticated_merchant)]
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No, unknown or revoked API key (problem+json)"},
    404: {"description": "No such API key for this merchant (problem+json)"},
    409: {"description": "The last active key, or too many active keys (problem+json)"},
    422: {"description": "Invalid field (problem+json with `field`)"},
}


class CreateApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field("", max_length=limits.api_key_label_chars_max, description="A name for the key, e.g. 'shop-2'.")


class ApiKeyOut(BaseModel):
    id: str = Field(examples=["key_test_5f0c2a9e1b7d4c36"])
    object: Literal["api_key"]
    prefix: str = Field(description="sk_test_ for the sandbox")
    label: str
    status: Literal["active", "revoked"]
    created_at: str
    revoked_at: str | None


class NewApiKeyOut(ApiKeyOut):
    secret: str = Field(description="The secret key, shown in this answer only: store it now.")


class ApiKeyList(BaseModel):
    object: Literal["list"]
    data: list[ApiKeyOut]
    has_more: bool


def install_api_key_routes(api: FastAPI) -> None:
    @api.post("/v1/api_keys", status_code=201, response_model=NewApiKeyOut, responses=_PROBLEMS, tags=["api keys"])
    def create_api_key(request: Request, merchant_id: Merchant, body: CreateApiKey | None = None) -> JSONResponse:
        """A new secret key for the caller's merchant; its ``secret`` is shown once."""
        app = _app(request)
        with app.uow() as uow:
            created = _answer(lambda: service.create(uow, merchant_id, body.label if body else "", app.clock()))
            uow.commit()
        return JSONResponse(created, status_code=201, headers={"Cache-Control": "no-store"})

    @api.get("/v1/api_keys", response_model=ApiKeyList, responses=_PROBLEMS, tags=["api keys"])
    def list_api_keys(request: Request, merchant_id: Merchant) -> JSONResponse:
        """The merchant's keys, newest first: ids, prefix, label, status — never a secret."""
        with _app(request).uow(write=False) as uow:
            rows, has_more = service.list_keys(uow, merchant_id)
        return JSONResponse({"object": "list", "data": rows, "has_more": has_more})

    @api.post("/v1/api_keys/{key_id}/revoke", response_model=ApiKeyOut, responses=_PROBLEMS, tags=["api keys"])
    def revoke_api_key(request: Request, key_id: str, merchant_id: Merchant) -> JSONResponse:
        """Revoke a key: from the next request on it is a 401. The last active key is a 409."""
        app = _app(request)
        with app.uow() as uow:
            revoked = _answer(lambda: service.revoke(uow, merchant_id, key_id, app.clock()))
            uow.commit()
        return JSONResponse(revoked)


def _answer(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run a use case; its refusals become problem documents."""
    try:
        return call()
    except service.KeyNotFound as error:
        raise Problem(404, "not-found", "Not found", str(error)) from None
    except service.LastActiveKey as error:
        raise Problem(409, "last-active-key", "Last active key", str(error), field="key_id") from None
    except service.KeyRefused as error:
        raise Problem(409, "too-many-keys", "Too many keys", str(error)) from None


def _app(request: Request) -> App:
    return request.app.state.paypos  # type: ignore[no-any-return]
