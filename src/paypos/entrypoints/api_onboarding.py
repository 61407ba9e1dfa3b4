"""REST routes of merchant onboarding (issue 7, docs/merchant-lifecycle.md).

Operator (Bearer ``PAYPOS_OPERATOR_TOKEN``; unset, these routes are a 404; the operator names
themself in ``Paypos-Operator`` for the audit log and maker-checker):
``GET /v1/operator/applications/{id}``, ``POST /v1/operator/applications/{id}/documents``
(multipart ``file``: PDF, PNG or JPEG up to 5 MiB, its part's type matching its content; the
same bytes again answer the first document), ``GET /v1/operator/documents/{id}``.

Merchant (Bearer API key): ``GET /v1/documents/{id}``, its own application's documents only
(another's is a 404, like one that does not exist).

Documents are always served as attachments with ``X-Content-Type-Options: nosniff`` and a
``Content-Security-Policy`` that runs nothing, and only through these authenticated routes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import Depends, FastAPI, Header, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from paypos import limits
from paypos.adapters.db.uow import UnitOfWork
from paypos.domain import merchant_application as rules
from paypos.entrypoints.api import Problem, authenticated_merchant
from paypos.entrypoints.api_escrow import authenticated_operator
from paypos.entrypoints.api_online import _app
from paypos.services import onboarding

T = TypeVar("T")
_TAGS: list[str] = ["onboarding"]
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or wrong token (problem+json)"},
    403: {"description": "The merchant is not active (problem+json)"},
    404: {"description": "No such object, or the operator API is off (problem+json)"},
    409: {"description": "Illegal state (problem+json with `current_state`)"},
    422: {"description": "Invalid field (problem+json with `field`)"},
}
_FILE = {200: {"description": "The document's bytes, as an attachment",
               "content": {media: {"schema": {"type": "string", "format": "binary"}}
                           for media in rules.MEDIA_TYPES}}}
OperatorName = Annotated[str, Header(alias="Paypos-Operator", min_length=1, max_length=60,
                                     description="Who you are, recorded as operator:<name> (maker-checker).")]


def install_onboarding_routes(api: FastAPI) -> None:
    operator = [Depends(authenticated_operator)]

    @api.get("/v1/operator/applications/{application_id}", tags=_TAGS, responses=_PROBLEMS, dependencies=operator)
    def get_application(request: Request, application_id: str) -> JSONResponse:
        """A merchant application with its documents (identity number masked)."""
        return JSONResponse(_run(request, lambda uow: onboarding.get_application(uow, application_id), write=False))

    @api.post("/v1/operator/applications/{application_id}/documents", status_code=201, tags=_TAGS,
              responses=_PROBLEMS, dependencies=operator)
    def upload_document(request: Request, application_id: str, file: UploadFile,
                        paypos_operator: OperatorName) -> JSONResponse:
        """Attach a document to a draft (or rejected) application."""
        content = file.file.read(limits.document_bytes_max + 1)
        app = _app(request)
        actor = f"operator:{paypos_operator.strip()}"
        added = _run(request, lambda uow: onboarding.add_document(
            uow, app.settings.data_dir, actor, app.clock(), application_id, content, file.content_type or "",
            file.filename or ""))
        return JSONResponse(added, status_code=201)

    @api.get("/v1/operator/documents/{document_id}", tags=_TAGS, responses={**_PROBLEMS, **_FILE},
             dependencies=operator, response_class=Response)
    def operator_document(request: Request, document_id: str) -> Response:
        """A document's bytes (checked against their SHA-256), as an attachment."""
        return _document(request, document_id, None)

    @api.get("/v1/documents/{document_id}", tags=_TAGS, responses={**_PROBLEMS, **_FILE}, response_class=Response)
    def merchant_document(request: Request, document_id: str,
                          merchant_id: Annotated[str, Depends(authenticated_merchant)]) -> Response:
        """One of your own application's documents, as an attachment."""
        return _document(request, document_id, merchant_id)


def _document(request: Request, document_id: str, merchant_id: str | None) -> Response:
    app = _app(request)
    meta, content = _run(request, lambda uow: onboarding.read_document(uow, app.settings.data_dir, document_id,
                                                                       merchant_id=merchant_id), write=False)
    ascii_name = "".join(c if c.isascii() and c not in '"\\' else "_" for c in meta["file_name"])
    return Response(content, media_type=meta["media_type"], headers={
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(meta['file_name'])}",
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "no-store", "ETag": f'"{meta["sha256"]}"'})


def _run(request: Request, work: Callable[[UnitOfWork], T], *, write: bool = True) -> T:
    """One unit of work, committed when it writes; refusals as problems."""
    try:
        with _app(request).uow(write=write) as uow:
            result = work(uow)
            if write:
                uow.commit()
            return result
    except rules.OnboardingError as error:
        raise Problem(422, "validation-error", "Invalid request", str(error), field=error.field) from None
    except (onboarding.ApplicationNotFound, onboarding.DocumentNotFound) as error:
        raise Problem(404, "not-found", "Not found", str(error)) from None
    except rules.IllegalTransition as error:
        raise Problem(409, "invalid-state", "Invalid state", str(error), current_state=error.current) from None
    except (onboarding.TooManyDocuments, onboarding.MakerCheckerRefused) as error:
        raise Problem(409, "refused", "Refused", str(error)) from None
