"""REST routes of merchant onboarding (issue 7, docs/merchant-lifecycle.md).

Operator (Bearer ``PAYPOS_OPERATOR_TOKEN``; unset, these routes are a 404; the operator names
themself in ``Paypos-Operator`` for the audit log and maker-checker):
``GET /v1/operator/applications/{id}``, ``POST /v1/operator/applications/{id}/documents``
(multipart ``file``: PDF, PNG or JPEG up to 5 MiB, its part's type matching its content; the
same bytes again answer the first document), ``GET /v1/operator/documents/{id}``;
``POST /v1/operator/applications`` and ``.../{id}`` (update), ``.../{id}/submit|approve|reject``,
``GET /v1/operator/applications``; ``POST /v1/operator/merchants/{id}/activate|suspend|
reactivate|close``; ``POST /v1/operator/terminal_requests``, ``.../{id}/provision`` (the package,
once), ``POST /v1/operator/terminals/{id}/activate|activation_code|bind|suspend|resume|replace``,
``GET /v1/operator/terminals`` and ``.../{id}``. Retries are safe without an Idempotency-Key:
a create with the same ``reference`` and a repeated state change answer the first result;
provision and replace are refused the second time (their package is shown once).

Merchant (Bearer API key): ``GET /v1/documents/{id}``, its own application's documents only
(another's is a 404, like one that does not exist).

Documents are always served as attachments with ``X-Content-Type-Options: nosniff`` and a
``Content-Security-Policy`` that runs nothing, and only through these authenticated routes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote

from fastapi import Depends, FastAPI, Header, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from paypos import limits
from paypos.adapters.db.uow import UnitOfWork
from paypos.domain import merchant_application as rules
from paypos.entrypoints.api import Problem, authenticated_merchant
from paypos.entrypoints.api_escrow import authenticated_operator
from paypos.entrypoints.api_online import _app
from paypos.services import onboarding
from paypos.services import terminals

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
    install_operator_lifecycle_routes(api)
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


class ApplicationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str | None = Field(None, max_length=16, description="individual or business")
    legal_name: str | None = Field(None, max_length=limits.application_legal_name_chars_max)
    id_number: str | None = Field(None, max_length=18, description="Resident identity number (GB 11643)")
    licence_number: str | None = Field(None, max_length=18, description="Unified social credit code (business)")
    phone: str | None = Field(None, max_length=20)
    mcc: str | None = Field(None, max_length=4)
    city: str | None = Field(None, max_length=limits.application_city_chars_max)
    address: str | None = Field(None, max_length=limits.application_address_chars_max)
    reference: str | None = Field(None, min_length=1, max_length=64, description="Your retry key (create only)")

    def fields(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump(exclude={"reference"}).items() if v is not None}


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reasons: list[str] = Field(min_length=1, max_length=limits.application_reject_reasons_max,
                               description="Codes: " + ", ".join(rules.REJECT_CODES))
    text: str = Field("", max_length=limits.application_reject_text_chars_max)


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=limits.application_reject_text_chars_max)


class TerminalRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    merchant: str = Field(min_length=1, max_length=15)
    location: str = Field(min_length=1, max_length=limits.terminal_location_chars_max)
    reference: str | None = Field(None, min_length=1, max_length=64)


class ProvisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mac_required: bool = True


class ActivateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=32)


class BindBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    location: str = Field(min_length=1, max_length=limits.terminal_location_chars_max)


def install_operator_lifecycle_routes(api: FastAPI) -> None:
    """Applications, merchants' status and terminals for the operator (token auth)."""
    _install_application_routes(api)
    _install_merchant_routes(api)
    _install_terminal_routes(api)


def _install_application_routes(api: FastAPI) -> None:
    operator = [Depends(authenticated_operator)]
    base = "/v1/operator/applications"

    @api.post(base, status_code=201, tags=_TAGS, responses=_PROBLEMS, dependencies=operator)
    def create_application(request: Request, body: ApplicationBody, paypos_operator: OperatorName) -> JSONResponse:
        """A new draft application (fields checked; identity numbers by their check character)."""
        app, actor = _app(request), _actor(paypos_operator)
        return JSONResponse(_run(request, lambda uow: onboarding.create_application(
            uow, app.vault, actor, app.clock(), body.fields(), reference=body.reference)), status_code=201)

    @api.get(base, tags=_TAGS, responses=_PROBLEMS, dependencies=operator)
    def list_applications(request: Request, status: str | None = None) -> JSONResponse:
        """Applications, newest first; ``status`` filters."""
        return JSONResponse({"data": _run(request, lambda uow: onboarding.list_applications(uow, status=status),
                                          write=False)})

    @api.post(base + "/{application_id}", tags=_TAGS, responses=_PROBLEMS, dependencies=operator)
    def update_application(request: Request, application_id: str, body: ApplicationBody,
                           paypos_operator: OperatorName) -> JSONResponse:
        """Change fields of a draft or rejected application (it becomes a draft)."""
        app, actor = _app(request), _actor(paypos_operator)
        return JSONResponse(_run(request, lambda uow: onboarding.update_application(
            uow, app.vault, actor, app.clock(), application_id, body.fields())))

    @api.post(base + "/{application_id}/submit", tags=_TAGS, responses=_PROBLEMS, dependencies=operator)
    def submit_application(request: Request, application_id: str, paypos_operator: OperatorName) -> JSONResponse:
        """Send a draft for review."""
        app, actor = _app(request), _actor(paypos_operator)
        return JSONResponse(_run(request, lambda uow: onboarding.submit_application(
            uow, actor, app.clock(), application_id)))

    @api.post(base + "/{application_id}/approve", tags=_TAGS, responses=_PROBLEMS, dependencies=operator)
    def approve_application(request: Request, application_id: str, paypos_operator: OperatorName) -> JSONResponse:
        """Approve (not by an editor, else 409): the merchant is created, status approved."""
        app, actor = _app(request), _actor(paypos_operator)
        return JSONResponse(_run(request, lambda uow: onboarding.approve_application(
            uow, actor, app.clock(), application_id)))

    @api.post(base + "/{application_id}/reject", tags=_TAGS, responses=_PROBLEMS, dependencies=operator)
    def reject_application(request: Request, application_id: str, body: RejectBody,
                           paypos_operator: OperatorName) -> JSONResponse:
        """Reject with reason codes and a text (not by an editor, else 409)."""
        app, actor = _app(request), _actor(paypos_operator)
        return JSONResponse(_run(request, lambda uow: onboarding.reject_application(
            uow, actor, app.clock(), application_id, body.reasons, body.text)))


def _install_merchant_routes(api: FastAPI) -> None:
    operator = [Depends(authenticated_operator)]
    changes = {"activate": lambda uow, a, now, m, _r: onboarding.activate_merchant(uow, a, now, m),
               "suspend": onboarding.suspend_merchant,
               "reactivate": lambda uow, a, now, m, _r: onboarding.reactivate_merchant(uow, a, now, m),
               "close": onboarding.close_merchant}

    @api.post("/v1/operator/merchants/{merchant_id}/{change}", tags=_TAGS, responses=_PROBLEMS,
              dependencies=operator)
    def change_merchant(request: Request, merchant_id: str,
                        change: Literal["activate", "suspend", "reactivate", "close"],
                        paypos_operator: OperatorName, body: ReasonBody | None = None) -> JSONResponse:
        """A merchant's lifecycle: activate (approved), suspend, reactivate (suspended), close."""
        app, actor = _app(request), _actor(paypos_operator)
        reason = body.reason if body is not None else ""
        return JSONResponse(_run(request, lambda uow: changes[change](uow, actor, app.clock(), merchant_id, reason)))


def _install_terminal_routes(api: FastAPI) -> None:
    operator = [Depends(authenticated_operator)]

    @api.post("/v1/operator/terminal_requests", status_code=201, tags=_TAGS, responses=_PROBLEMS,
              dependencies=operator)
    def apply_terminal(request: Request, body: TerminalRequestBody, paypos_operator: OperatorName) -> JSONResponse:
        """Request a terminal for a merchant at a location."""
        app, actor = _app(request), _actor(paypos_operator)
        return JSONResponse(_run(request, lambda uow: terminals.apply(
            uow, actor, app.clock(), body.merchant, body.location, reference=body.reference)), status_code=201)

    @api.post("/v1/operator/terminal_requests/{request_id}/provision", status_code=201, tags=_TAGS,
              responses=_PROBLEMS, dependencies=operator)
    def provision_terminal(request: Request, request_id: str, paypos_operator: OperatorName,
                           body: ProvisionBody | None = None) -> JSONResponse:
        """The terminal and its package (terminal id, initial KSN, IPEK, activation code), once."""
        app, actor = _app(request), _actor(paypos_operator)
        mac = body.mac_required if body is not None else True
        return JSONResponse(_run(request, lambda uow: terminals.provision(
            uow, app.vault, actor, app.clock(), request_id, mac_required=mac)), status_code=201,
            headers={"Cache-Control": "no-store"})

    @api.post("/v1/operator/terminals/{terminal_id}/activate", tags=_TAGS, responses=_PROBLEMS, dependencies=operator)
    def activate_terminal(request: Request, terminal_id: str, body: ActivateBody,
                          paypos_operator: OperatorName) -> JSONResponse:
        """Activate with the one-time code (wrong codes count; 409 when refused)."""
        app, actor = _app(request), _actor(paypos_operator)
        return JSONResponse(_run(request, lambda uow: terminals.activate(
            uow, app.vault, actor, app.clock(), terminal_id, body.code)))

    @api.post("/v1/operator/terminals/{terminal_id}/activation_code", tags=_TAGS, responses=_PROBLEMS,
              dependencies=operator)
    def new_code(request: Request, terminal_id: str, paypos_operator: OperatorName) -> JSONResponse:
        """A fresh activation code for a provisioned terminal, once."""
        app, actor = _app(request), _actor(paypos_operator)
        return JSONResponse(_run(request, lambda uow: terminals.new_activation_code(
            uow, app.vault, actor, app.clock(), terminal_id)), headers={"Cache-Control": "no-store"})

    @api.post("/v1/operator/terminals/{terminal_id}/bind", tags=_TAGS, responses=_PROBLEMS, dependencies=operator)
    def bind_terminal(request: Request, terminal_id: str, body: BindBody,
                      paypos_operator: OperatorName) -> JSONResponse:
        """Move a terminal to another location."""
        app, actor = _app(request), _actor(paypos_operator)
        return JSONResponse(_run(request, lambda uow: terminals.bind(uow, actor, app.clock(), terminal_id,
                                                                     body.location)))

    @api.post("/v1/operator/terminals/{terminal_id}/{change}", tags=_TAGS, responses=_PROBLEMS,
              dependencies=operator)
    def change_terminal(request: Request, terminal_id: str, change: Literal["suspend", "resume", "replace"],
                        paypos_operator: OperatorName, body: ReasonBody | None = None) -> JSONResponse:
        """Suspend (58 at the host), resume, or replace (the successor's package, once)."""
        app, actor = _app(request), _actor(paypos_operator)
        reason = body.reason if body is not None else ""

        def work(uow: UnitOfWork) -> dict[str, Any]:
            if change == "suspend":
                return terminals.suspend(uow, actor, app.clock(), terminal_id, reason)
            if change == "resume":
                return terminals.resume(uow, actor, app.clock(), terminal_id)
            return terminals.replace(uow, app.vault, actor, app.clock(), terminal_id)

        return JSONResponse(_run(request, work), headers={"Cache-Control": "no-store"})

    @api.get("/v1/operator/terminals", tags=_TAGS, responses=_PROBLEMS, dependencies=operator)
    def list_terminals(request: Request, merchant: str | None = None, status: str | None = None) -> JSONResponse:
        """Terminals (sandbox ones too) and open requests; never a key."""
        return JSONResponse({"data": _run(request, lambda uow: terminals.list_terminals(
            uow, merchant_id=merchant, status=status), write=False)})

    @api.get("/v1/operator/terminals/{terminal_id}", tags=_TAGS, responses=_PROBLEMS, dependencies=operator)
    def get_terminal(request: Request, terminal_id: str) -> JSONResponse:
        """One terminal; never a key."""
        return JSONResponse(_run(request, lambda uow: terminals.get(uow, terminal_id), write=False))


def _actor(name: str) -> str:
    return f"operator:{name.strip()}"


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
    """One unit of work, committed when it writes (a wrong activation code too: it counts);
    refusals as problems."""
    try:
        with _app(request).uow(write=write) as uow:
            try:
                result = work(uow)
            except terminals.WrongActivationCode:
                uow.commit()
                raise
            if write:
                uow.commit()
            return result
    except rules.OnboardingError as error:
        raise Problem(422, "validation-error", "Invalid request", str(error), field=error.field) from None
    except (onboarding.ApplicationNotFound, onboarding.DocumentNotFound, onboarding.MerchantNotFound,
            terminals.TerminalNotFound) as error:
        raise Problem(404, "not-found", "Not found", str(error)) from None
    except rules.IllegalTransition as error:
        raise Problem(409, "invalid-state", "Invalid state", str(error), current_state=error.current) from None
    except onboarding.MakerCheckerRefused as error:
        raise Problem(409, "maker-checker", "Maker-checker", str(error)) from None
    except terminals.ActivationRefused as error:
        raise Problem(409, "activation-refused", "Activation refused", str(error)) from None
    except (onboarding.TooManyDocuments, terminals.MerchantNotTrading) as error:
        raise Problem(409, "refused", "Refused", str(error)) from None
    except onboarding.DocumentCorrupted as error:  # the data dir lost or changed the file: an operator's matter
        raise Problem(500, "document-unavailable", "Document unavailable", str(error)) from None
