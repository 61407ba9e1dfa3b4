"""The merchant lifecycle in the console (issue 7, docs/console.md): the public application form,
the reviewer's applications (documents, approve / reject, the owner's first login), the admin's
merchant status actions, the operator's terminal provisioning, and the owner's terminals.

Every change goes through services/onboarding.py or services/terminals.py (which audit it in
the same transaction, actor ``user:<id>``); refusals are shown as a message, never a crash.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
from collections import deque
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi.responses import Response

from paypos import limits
from paypos.domain import merchant_application as rules
from paypos.domain.console_roles import Permission as P
from paypos.domain.console_roles import Role
from paypos.entrypoints.console.core import PREFIX, PUBLIC, Ctx, NotFound, page
from paypos.services import console_auth as auth
from paypos.services import onboarding
from paypos.services import terminals as terminal_service

APPLY_CSRF_COOKIE = "paypos_console_apply"
PUBLIC_ACTOR = "applicant:web"  # the public form's audit actor (never an operator: any reviewer may decide)
_FORM_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
_FIELDS = ("kind", "legal_name", "id_number", "licence_number", "phone", "mcc", "city", "address")
_STATUSES = tuple(rules.APPLICATION_TRANSITIONS)


# --- the public application form ------------------------------------------------------------------

class _RateLimit:
    """Applications accepted in a sliding window: per client address and from everyone together.
    In the server's memory (one process serves the console); a restart forgets it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[int, deque[tuple[float, str]]] = {}  # per app: (time, address), oldest first

    def take(self, app_key: int, address: str, now: datetime) -> bool:
        moment = now.timestamp()
        with self._lock:
            seen = self._seen.setdefault(app_key, deque())
            while seen and seen[0][0] <= moment - limits.console_public_applications_window_s:
                seen.popleft()
            if len(seen) >= limits.console_public_applications_global_max:
                return False
            if sum(1 for _, a in seen if a == address) >= limits.console_public_applications_per_ip_max:
                return False
            seen.append((moment, address))
            return True


RATE_LIMIT = _RateLimit()


def _apply_page(ctx: Ctx, *, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    values = {name: ctx.field(name)[:200] for name in _FIELDS if name != "id_number"}  # never echo the ID number
    response = ctx.render("apply.html", http_status=status, apply_token=token, error=error, values=values,
                          mccs=rules.MCC_ALLOWED)
    ctx.cookies_out.append((APPLY_CSRF_COOKIE, token, 3600))
    return response


@page("/apply", methods=("GET",), permission=PUBLIC)
def apply_form(ctx: Ctx) -> Response:
    return _apply_page(ctx)


@page("/apply", methods=("POST",), permission=PUBLIC)
def apply_submit(ctx: Ctx) -> Response:
    """Create, attach the documents and submit, in one transaction. The form's token (double
    submit: cookie = field) is also the application's reference: a resent form answers the first."""
    cookie, token = ctx.request.cookies.get(APPLY_CSRF_COOKIE, ""), ctx.field("apply_token")
    if not cookie or not _FORM_KEY.fullmatch(token) or not hmac.compare_digest(cookie.encode(), token.encode()):
        return _apply_page(ctx, error="The form expired: fill it in again.", status=403)
    fields = {name: ctx.field(name).strip() for name in _FIELDS}
    if fields["kind"] != "business":
        fields.pop("licence_number")
    if not ctx.files:
        return _apply_page(ctx, error="Attach at least one document (PDF, PNG or JPEG).", status=422)
    address = ctx.request.client.host if ctx.request.client else "unknown"
    app = ctx.app
    reference = "web:" + token
    try:
        with app.uow() as uow:
            created = onboarding.create_application(uow, app.vault, PUBLIC_ACTOR, ctx.now(), fields,
                                                    reference=reference)
            if created["status"] == "draft":
                if not RATE_LIMIT.take(id(app), address, ctx.now()):
                    return _apply_page(ctx, error="Too many applications from here: try again later.", status=429)
                for upload in ctx.files.values():
                    onboarding.add_document(uow, app.settings.data_dir, PUBLIC_ACTOR, ctx.now(), created["id"],
                                            upload.content, upload.media_type, upload.file_name)
                created = onboarding.submit_application(uow, PUBLIC_ACTOR, ctx.now(), created["id"])
            uow.commit()
    except rules.OnboardingError as error:
        return _apply_page(ctx, error=str(error), status=422)
    except onboarding.TooManyDocuments as error:
        return _apply_page(ctx, error=str(error), status=422)
    return ctx.render("apply_done.html", application=created)


# --- applications (reviewer) ----------------------------------------------------------------------

@page("/ops/applications", permission=P.OPS_APPLICATIONS_REVIEW, nav="Applications", section="operator")
def applications(ctx: Ctx) -> Response:
    status = ctx.query("status")
    with ctx.app.uow(write=False) as uow:
        found = onboarding.list_applications(uow, status=status if status in _STATUSES else None)
    return ctx.render("ops_applications.html", applications=found, status=status, statuses=_STATUSES)


def _application_view(ctx: Ctx, *, error: str | None = None, status: int = 200,
                      owner_login: dict[str, str] | None = None) -> Response:
    with ctx.app.uow(write=False) as uow:
        try:
            shown = onboarding.get_application(uow, ctx.path_param("application_id"))
        except onboarding.ApplicationNotFound:
            raise NotFound() from None
        owners = [u for u in auth.list_users(uow, merchant_id=shown["merchant_id"]) if u.role == Role.OWNER] \
            if shown["merchant_id"] else []
    return ctx.render("ops_application.html", http_status=status, application=shown, error=error,
                      reasons=rules.REJECT_CODES, owners=owners, owner_login=owner_login)


@page("/ops/applications/{application_id}", permission=P.OPS_APPLICATIONS_REVIEW, section="operator",
      params={"application_id": "application"})
def application_detail(ctx: Ctx) -> Response:
    return _application_view(ctx)


def _decide(ctx: Ctx, decide: Any, done: str) -> Response:
    application_id = ctx.path_param("application_id")
    try:
        with ctx.app.uow() as uow:
            decide(uow, application_id)
            uow.commit()
    except onboarding.ApplicationNotFound:
        raise NotFound() from None
    except onboarding.MakerCheckerRefused:
        return _application_view(ctx, status=409, error=(
            "You edited this application, so another reviewer must decide it (maker-checker)."))
    except (rules.IllegalTransition, rules.OnboardingError) as error:
        return _application_view(ctx, status=409 if isinstance(error, rules.IllegalTransition) else 422,
                                 error=str(error))
    return ctx.redirect(f"{PREFIX}/ops/applications/{application_id}", done)


@page("/ops/applications/{application_id}/approve", methods=("POST",), permission=P.OPS_APPLICATIONS_REVIEW,
      section="operator", params={"application_id": "application"})
def application_approve(ctx: Ctx) -> Response:
    return _decide(ctx, lambda uow, a: onboarding.approve_application(uow, ctx.actor, ctx.now(), a),
                   "Approved: the merchant is created. Create its owner's console login below.")


@page("/ops/applications/{application_id}/reject", methods=("POST",), permission=P.OPS_APPLICATIONS_REVIEW,
      section="operator", params={"application_id": "application"})
def application_reject(ctx: Ctx) -> Response:
    codes = [code for code in rules.REJECT_CODES if ctx.field("reason_" + code)]  # one checkbox per code
    return _decide(ctx, lambda uow, a: onboarding.reject_application(uow, ctx.actor, ctx.now(), a, codes,
                                                                     ctx.field("text")[:1000]),
                   "Rejected: the applicant may correct it and submit again.")


@page("/ops/applications/{application_id}/owner", methods=("POST",), permission=P.OPS_APPLICATIONS_REVIEW,
      section="operator", params={"application_id": "application"})
def application_owner(ctx: Ctx) -> Response:
    """The approved merchant's owner login: the email given, a random one-time password shown on
    this answer only (argon2id-hashed at rest; the owner changes it with a reset)."""
    with ctx.app.uow(write=False) as uow:
        try:
            shown = onboarding.get_application(uow, ctx.path_param("application_id"))
        except onboarding.ApplicationNotFound:
            raise NotFound() from None
    if shown["status"] != "approved" or not shown["merchant_id"]:
        return _application_view(ctx, status=409, error="Only an approved application's merchant gets an owner login.")
    password = secrets.token_urlsafe(limits.console_owner_password_bytes)
    try:
        with ctx.app.uow() as uow:
            if any(u.role == Role.OWNER for u in auth.list_users(uow, merchant_id=shown["merchant_id"])):
                return _application_view(ctx, status=409, error="This merchant already has an owner login.")
            created = auth.create_user(uow, email=ctx.field("email"), role=Role.OWNER.value, password=password,
                                       now=ctx.now(), actor=ctx.actor, merchant_id=shown["merchant_id"],
                                       display_name=shown["legal_name"][:limits.console_display_name_chars_max])
            uow.commit()
    except (auth.ConsoleError, auth.UserRefused) as error:
        return _application_view(ctx, status=422, error=str(error))
    return _application_view(ctx, owner_login={"email": created.email, "password": password})


@page("/ops/documents/{document_id}", permission=P.OPS_APPLICATIONS_REVIEW, section="operator",
      params={"document_id": "document"})
def document_download(ctx: Ctx) -> Response:
    """The bytes (checked against their SHA-256) as an attachment, never rendered inline."""
    with ctx.app.uow(write=False) as uow:
        try:
            shown, content = onboarding.read_document(uow, ctx.app.settings.data_dir, ctx.path_param("document_id"))
        except onboarding.DocumentNotFound:
            raise NotFound() from None
    return Response(content, media_type=shown["media_type"], headers={
        "Content-Disposition": attachment(shown["file_name"]), "X-Content-Type-Options": "nosniff"})


def attachment(file_name: str) -> str:
    """RFC 6266: an ASCII fallback name and the real (UTF-8, percent-encoded) one; the stored name
    is already sanitised (letters, digits, '.', '-', '_', spaces), so nothing breaks the header."""
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in ".-_ ") else "_" for c in file_name) or "document"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


# --- merchant status (admin) ----------------------------------------------------------------------

_MERCHANT_ACTIONS = {
    "activate": lambda uow, actor, now, m, reason: onboarding.activate_merchant(uow, actor, now, m),
    "suspend": lambda uow, actor, now, m, reason: onboarding.suspend_merchant(uow, actor, now, m, reason),
    "reactivate": lambda uow, actor, now, m, reason: onboarding.reactivate_merchant(uow, actor, now, m),
    "close": lambda uow, actor, now, m, reason: onboarding.close_merchant(uow, actor, now, m, reason),
}


def _merchant_action(ctx: Ctx, action: str) -> Response:
    merchant_id = ctx.path_param("merchant_id")
    back = f"{PREFIX}/ops/merchants/{merchant_id}"
    reason = ctx.field("reason").strip()
    if action in ("suspend", "close") and not reason:
        with ctx.app.uow(write=False) as uow:
            if uow.registry.get_merchant(merchant_id) is None:
                raise NotFound()
        return ctx.redirect(back, f"Give a reason to {action} the merchant.")
    try:
        with ctx.app.uow() as uow:
            shown = _MERCHANT_ACTIONS[action](uow, ctx.actor, ctx.now(), merchant_id, reason)
            uow.commit()
    except onboarding.MerchantNotFound:
        raise NotFound() from None
    except (rules.IllegalTransition, rules.OnboardingError) as error:
        return ctx.redirect(back, f"Refused: {error}")
    return ctx.redirect(back, f"The merchant is {shown['status']}.")


def _merchant_route(action: str) -> None:
    @page(f"/ops/merchants/{{merchant_id}}/{action}", methods=("POST",), permission=P.OPS_MERCHANTS_MANAGE,
          section="operator", params={"merchant_id": "merchant"})
    def handler(ctx: Ctx) -> Response:
        return _merchant_action(ctx, action)


for _action in _MERCHANT_ACTIONS:
    _merchant_route(_action)


# --- terminals (operator) -------------------------------------------------------------------------

def _package_page(ctx: Ctx, provisioned: dict[str, Any]) -> Response:
    return ctx.render("ops_terminal_package.html", package=provisioned["package"])


@page("/ops/terminal-requests/{request_id}/provision", methods=("POST",), permission=P.OPS_TERMINALS_MANAGE,
      section="operator", params={"request_id": "terminal_request"})
def terminal_provision(ctx: Ctx) -> Response:
    """Provision a request; the package (IPEK, initial KSN, activation code) is on this answer only."""
    try:
        with ctx.app.uow() as uow:
            provisioned = terminal_service.provision(uow, ctx.app.vault, ctx.actor, ctx.now(),
                                                     ctx.path_param("request_id"))
            uow.commit()
    except terminal_service.TerminalNotFound:
        raise NotFound() from None
    except (rules.IllegalTransition, terminal_service.MerchantNotTrading) as error:
        return ctx.redirect(PREFIX + "/ops/terminals", f"Refused: {error}")
    return _package_page(ctx, provisioned)


def _terminal_action(ctx: Ctx, action: str) -> Response:
    terminal_id, now, actor = ctx.path_param("terminal_id"), ctx.now(), ctx.actor
    try:
        with ctx.app.uow() as uow:
            if action == "suspend":
                terminal_service.suspend(uow, actor, now, terminal_id, ctx.field("reason").strip())
            elif action == "resume":
                terminal_service.resume(uow, actor, now, terminal_id)
            else:
                provisioned = terminal_service.replace(uow, ctx.app.vault, actor, now, terminal_id)
            uow.commit()
    except terminal_service.TerminalNotFound:
        raise NotFound() from None
    except (rules.IllegalTransition, rules.OnboardingError, terminal_service.MerchantNotTrading) as error:
        return ctx.redirect(PREFIX + "/ops/terminals", f"Refused: {error}")
    if action == "replace":
        return _package_page(ctx, provisioned)
    return ctx.redirect(PREFIX + "/ops/terminals", f"Terminal {terminal_id}: {action} done.")


@page("/ops/terminals/{terminal_id}/new-code", methods=("POST",), permission=P.OPS_TERMINALS_MANAGE,
      section="operator", params={"terminal_id": "terminal"})
def terminal_new_code(ctx: Ctx) -> Response:
    """A fresh activation code (shown once) for a provisioned terminal whose code expired or locked."""
    terminal_id = ctx.path_param("terminal_id")
    try:
        with ctx.app.uow() as uow:
            fresh = terminal_service.new_activation_code(uow, ctx.app.vault, ctx.actor, ctx.now(), terminal_id)
            uow.commit()
    except terminal_service.TerminalNotFound:
        raise NotFound() from None
    except rules.IllegalTransition as error:
        return ctx.redirect(PREFIX + "/ops/terminals", f"Refused: {error}")
    return ctx.render("ops_terminal_code.html", terminal_id=terminal_id, code=fresh["activation_code"],
                      expires_at=fresh["activation_expires_at"])


def _terminal_route(action: str) -> None:
    @page(f"/ops/terminals/{{terminal_id}}/{action}", methods=("POST",), permission=P.OPS_TERMINALS_MANAGE,
          section="operator", params={"terminal_id": "terminal"})
    def handler(ctx: Ctx) -> Response:
        return _terminal_action(ctx, action)


for _action in ("suspend", "resume", "replace"):
    _terminal_route(_action)


# --- terminals (the merchant's owner) -------------------------------------------------------------

def _own_terminals(ctx: Ctx, *, error: str | None = None, status: int = 200) -> Response:
    with ctx.app.uow(write=False) as uow:
        found = terminal_service.list_terminals(uow, merchant_id=ctx.merchant_id)
    return ctx.render("terminals.html", http_status=status, terminals=found, error=error,
                      form_key=secrets.token_urlsafe(24))


@page("/terminals", permission=P.TERMINALS_MANAGE, nav="Terminals")
def own_terminals(ctx: Ctx) -> Response:
    return _own_terminals(ctx)


@page("/terminals", methods=("POST",), permission=P.TERMINALS_MANAGE)
def own_terminal_request(ctx: Ctx) -> Response:
    """Request a terminal for a location; the form's one-time key makes a resend answer the first."""
    key = ctx.field("form_key")
    if not _FORM_KEY.fullmatch(key):
        return _own_terminals(ctx, error="The form expired: try again.", status=422)
    try:
        with ctx.app.uow() as uow:
            terminal_service.apply(uow, ctx.actor, ctx.now(), ctx.merchant_id, ctx.field("location"),
                                   reference="console:" + key)
            uow.commit()
    except (rules.OnboardingError, terminal_service.MerchantNotTrading) as error:
        return _own_terminals(ctx, error=str(error), status=422)
    return ctx.redirect(PREFIX + "/terminals", "Terminal requested: the operator provisions it and sends the "
                                               "activation code.")


@page("/terminals/{terminal_id}", permission=P.TERMINALS_MANAGE, params={"terminal_id": "terminal"})
def own_terminal(ctx: Ctx) -> Response:
    with ctx.app.uow(write=False) as uow:
        found = terminal_service.list_terminals(uow, merchant_id=ctx.merchant_id,
                                                terminal_id=ctx.path_param("terminal_id"))
    if not found:
        raise NotFound()
    return ctx.render("terminal.html", terminal=found[0])
