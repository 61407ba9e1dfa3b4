"""Sign-in, the TOTP step, sign-out, the home redirect and one's own TOTP enrolment."""

from __future__ import annotations

import hmac
import secrets

import segno
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from paypos.domain import totp
from paypos.domain.console_roles import Permission, Role, home_path
from paypos.entrypoints.console.core import (LOGIN_CSRF_COOKIE, PREFIX, PUBLIC, SESSION_COOKIE, Ctx, page,
                                             session_cookie_max_age)
from paypos.services import console_auth as auth


def _safe_next(target: str) -> str | None:
    """Only a console path of this site (never //host or a scheme) is followed after sign-in."""
    if target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target \
            and "://" not in target and not target.startswith(PREFIX + "/login"):
        return target
    return None


@page("/login", methods=("GET",), permission=PUBLIC)
def login_form(ctx: Ctx) -> Response:
    return _login_page(ctx, error=None)


def _login_page(ctx: Ctx, error: str | None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = ctx.render("login.html", http_status=status, login_token=token, error=error,
                          next=ctx.query("next") or ctx.field("next"), email=ctx.field("email"))
    ctx.cookies_out.append((LOGIN_CSRF_COOKIE, token, 3600))
    return response


@page("/login", methods=("POST",), permission=PUBLIC)
def login_submit(ctx: Ctx) -> Response:
    # Login CSRF: the form's token must equal the cookie set with the form (double submit).
    cookie = ctx.request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), ctx.field("login_token").encode()):
        return _login_page(ctx, "The sign-in form expired: try again.", status=403)
    app = ctx.app
    with app.uow() as uow:
        outcome = auth.authenticate(uow, ctx.field("email")[:300], ctx.field("password")[:300], app.clock())
        session = (auth.start_session(uow, outcome.user, app.clock(), awaiting_totp=outcome.totp_required)
                   if outcome.user else None)
        uow.commit()
    if session is None:
        return _login_page(ctx, auth.REFUSED, status=401)
    target = "/console/login/totp" if session.awaiting_totp else (
        _safe_next(ctx.field("next")) or home_path(Role(session.user.role)))
    response = RedirectResponse(target, status_code=303)
    ctx.cookies_out.append((SESSION_COOKIE, session.token, session_cookie_max_age()))
    return response


@page("/login/totp", methods=("GET",), permission=None)
def totp_form(ctx: Ctx) -> Response:
    if ctx.session is None or not ctx.session.awaiting_totp:
        return RedirectResponse(PREFIX + "/", status_code=303)
    return ctx.render("login_totp.html", error=None)


@page("/login/totp", methods=("POST",), permission=None)
def totp_submit(ctx: Ctx) -> Response:
    session = ctx.session
    if session is None or not session.awaiting_totp:
        return RedirectResponse(PREFIX + "/", status_code=303)
    with ctx.app.uow() as uow:
        user = auth.verify_totp(uow, ctx.app.vault, session.user.id, ctx.field("code")[:16], ctx.now())
        if user is not None:
            auth.complete_totp(uow, session)
        uow.commit()
    if user is None:
        return ctx.render("login_totp.html", http_status=401, error=auth.REFUSED.replace("email or password",
                                                                                    "code"))
    return RedirectResponse(home_path(Role(user.role)), status_code=303)


@page("/logout", methods=("POST",), permission=None)
def logout(ctx: Ctx) -> Response:
    if ctx.session is not None:
        with ctx.app.uow() as uow:
            auth.end_session(uow, ctx.session, ctx.now())
            uow.commit()
    response = RedirectResponse(PREFIX + "/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


@page("/", permission=None)
def home(ctx: Ctx) -> Response:
    return RedirectResponse(home_path(ctx.role), status_code=303)


@page("/account/security", permission=Permission.ACCOUNT_SELF, nav="Security", section="account")
def security(ctx: Ctx) -> Response:
    secret = auth.pending_totp_secret(ctx.app.vault, ctx.user)
    qr = None
    if secret is not None:
        uri = totp.provisioning_uri(secret, ctx.user.email)
        qr = Markup(segno.make(uri, error="m").svg_inline(scale=4, omitsize=False))
    return ctx.render("security.html", secret=secret, qr=qr, error=None)


@page("/account/totp/begin", methods=("POST",), permission=Permission.ACCOUNT_SELF)
def totp_begin(ctx: Ctx) -> Response:
    if ctx.user.totp_enabled:
        return ctx.redirect(PREFIX + "/account/security", "Two-step sign-in is already on.")
    with ctx.app.uow() as uow:
        auth.begin_totp(uow, ctx.app.vault, ctx.user, ctx.now())
        uow.commit()
    return ctx.redirect(PREFIX + "/account/security")


@page("/account/totp/confirm", methods=("POST",), permission=Permission.ACCOUNT_SELF)
def totp_confirm(ctx: Ctx) -> Response:
    with ctx.app.uow() as uow:
        done = auth.confirm_totp(uow, ctx.app.vault, ctx.user, ctx.field("code")[:16], ctx.now())
        uow.commit()
    if not done:
        return ctx.redirect(PREFIX + "/account/security", "That code is not right: try the current one.")
    return ctx.redirect(PREFIX + "/account/security", "Two-step sign-in is on.")
