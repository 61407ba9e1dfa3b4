"""The console's frame: the page registry, sessions and CSRF, authorization, rendering.

A page is one function decorated with :func:`page` — its path, methods, the one
:class:`Permission` it needs (``None``: signed-in pages anyone may see, ``PUBLIC``: the sign-in
pages), a navigation title and section — plus one template. :data:`PAGES` lists them all; the
route × role test matrix is generated from it, so a new page is covered without new tests.

Every request to a registered page: the session cookie is resolved (idle/absolute expiry), a
session waiting for its TOTP code is sent to /console/login/totp, a missing session is sent to
/console/login (GET) or answered 403 (POST); the permission is checked (403 otherwise); every
POST's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``, htmx sends it) must be
the session's. Merchant-scoped pages read ``ctx.merchant_id`` and look objects up only within it,
so another merchant's id is a 404, like a missing one. Every answer has the security headers.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from paypos import limits
from paypos.bootstrap import App
from paypos.domain.console_roles import Permission, Role, allows, is_merchant_role
from paypos.domain.money import MoneyError, money
from paypos.services import console_auth as auth

log = logging.getLogger("paypos.console")
PREFIX = "/console"
SESSION_COOKIE = "paypos_console"
LOGIN_CSRF_COOKIE = "paypos_console_login"
FLASH_COOKIE = "paypos_console_flash"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
PUBLIC = "public"  # a page reachable without a session (sign-in)
_HERE = Path(__file__).resolve().parent.parent
TEMPLATES = Environment(loader=FileSystemLoader(_HERE / "templates" / "console"),
                        autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class NotFound(Exception):
    """An object missing — or another merchant's, which must look the same: a 404 page."""


@dataclass(frozen=True)
class Page:
    path: str  # under /console, with {params}
    methods: tuple[str, ...]
    permission: Permission | str | None  # PUBLIC, None (any signed-in user) or the one needed
    handler: Callable[[Ctx], Response]
    nav: str | None = None  # the navigation title; None: not in the navigation
    section: str = "merchant"  # merchant | operator | account
    params: dict[str, str] = field(default_factory=dict)  # path param → the kind of object it names

    @property
    def full_path(self) -> str:
        return PREFIX + self.path


PAGES: list[Page] = []


def page(path: str, *, methods: tuple[str, ...] = ("GET",), permission: Permission | str | None,
         nav: str | None = None, section: str = "merchant",
         params: dict[str, str] | None = None) -> Callable[[Callable[[Ctx], Response]], Callable[[Ctx], Response]]:
    """Register a console page (see the module's docstring)."""

    def register(handler: Callable[[Ctx], Response]) -> Callable[[Ctx], Response]:
        PAGES.append(Page(path, methods, permission, handler, nav, section, params or {}))
        return handler

    return register


@dataclass(frozen=True)
class Upload:
    """An uploaded file, read up to ``limits.document_bytes_max`` + 1 bytes (so "too big" is seen)."""

    file_name: str
    media_type: str
    content: bytes


@dataclass
class Ctx:
    """What a page handler gets: the app, the request, the session (None on public pages), the form."""

    app: App
    request: Request
    session: auth.Session | None
    form: dict[str, str]
    page: Page
    cookies_out: list[tuple[str, str, int]] = field(default_factory=list)
    files: dict[str, Upload] = field(default_factory=dict)  # a multipart form's files (the first per name)

    @property
    def user(self) -> auth.ConsoleUser:
        if self.session is None:
            raise RuntimeError("a public page has no user")
        return self.session.user

    @property
    def role(self) -> Role:
        return Role(self.user.role)

    @property
    def merchant_id(self) -> str:
        """The signed-in merchant user's merchant (a programmer error on an operator page)."""
        merchant_id = self.user.merchant_id
        if merchant_id is None or not is_merchant_role(self.user.role):
            raise RuntimeError(f"{self.page.path} is merchant-scoped but the user is an operator")
        return merchant_id

    @property
    def actor(self) -> str:
        return auth.actor_of(self.user)

    def now(self) -> datetime:
        return self.app.clock()

    def can(self, permission: Permission) -> bool:
        return self.session is not None and allows(self.user.role, permission)

    def path_param(self, name: str) -> str:
        return str(self.request.path_params.get(name, ""))

    def query(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default)[:200]

    def field(self, name: str, default: str = "") -> str:
        return self.form.get(name, default)

    def render(self, template: str, http_status: int = 200, **values: Any) -> Response:
        flash = self.request.cookies.get(FLASH_COOKIE, "")[:300]
        body = TEMPLATES.get_template(template).render(ctx=self, nav=navigation(self), flash=flash, **values)
        response = HTMLResponse(body, status_code=http_status)
        if flash:
            response.delete_cookie(FLASH_COOKIE, path=PREFIX)
        return response

    def redirect(self, path: str, flash: str | None = None) -> Response:
        response = RedirectResponse(path, status_code=303)
        if flash:
            self.cookies_out.append((FLASH_COOKIE, flash[:300], 60))
        return response

    def button(self, action: str, label: str, *, confirm: bool = False, css: str = "") -> Markup:
        """A one-button POST form carrying the CSRF token."""
        token = self.session.csrf_token if self.session else ""
        return Markup('<form method="post" class="inline" action="{}"><input type="hidden" name="{}" value="{}">'
                      '<button type="submit" class="{}">{}</button></form>').format(
            action, CSRF_FIELD, token, css, label)


# --- formatting helpers shared by the templates ---------------------------------------------------

def format_money(amount_minor: int | None, code: str) -> str:
    """Minor units → "CNY 12.34" (the currency's own exponent); unknown codes show the raw units."""
    if amount_minor is None:
        return ""
    try:
        return str(money(int(amount_minor), code))
    except MoneyError:
        return f"{code} {amount_minor} (minor units)"


def format_time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def link(href: str, text: str) -> Markup:
    return Markup('<a href="{}">{}</a>').format(href, text)


def url(path: str, **query: str | int | None) -> str:
    pairs = [f"{k}={quote(str(v))}" for k, v in query.items() if v not in (None, "")]
    return PREFIX + path + ("?" + "&".join(pairs) if pairs else "")


TEMPLATES.globals.update(money=format_money, time=format_time, link=link, url=url, csrf_field=CSRF_FIELD)


def navigation(ctx: Ctx) -> list[tuple[str, str, bool]]:
    """(title, path, current) of every page in the navigation the user may open."""
    if ctx.session is None or ctx.session.awaiting_totp:
        return []
    items = []
    for entry in sorted(PAGES, key=lambda p: p.section == "account"):  # one's own settings last
        if entry.nav and "GET" in entry.methods and isinstance(entry.permission, Permission) \
                and allows(ctx.user.role, entry.permission):
            items.append((entry.nav, entry.full_path, ctx.request.url.path == entry.full_path))
    return items


# --- the request pipeline ----------------------------------------------------------------------------

def install_pages(api: FastAPI) -> None:
    for entry in PAGES:
        api.add_api_route(entry.full_path, _endpoint(entry), methods=list(entry.methods), include_in_schema=False)


def _endpoint(entry: Page) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        form: dict[str, str] = {}
        files: dict[str, Upload] = {}
        if request.method == "POST":
            size = request.headers.get("content-length", "")
            if not size.isdigit() or int(size) > limits.console_form_bytes_max:  # before reading any of it
                status = 411 if not size.isdigit() else 413
                return Response("a console form must be sent with its length, at most "
                                f"{limits.console_form_bytes_max} bytes", status_code=status,
                                media_type="text/plain", headers=SECURITY_HEADERS)
            raw = await request.form()
            form = {k: v for k, v in raw.items() if isinstance(v, str)}
            for name, value in raw.items():
                if isinstance(value, UploadFile) and value.filename and name not in files:
                    content = await value.read(max(limits.document_bytes_max, limits.console_upload_bytes_max) + 1)
                    files[name] = Upload(value.filename, value.content_type or "", content)
        response = await run_in_threadpool(_handle, entry, request, form, files)
        response.headers.update(SECURITY_HEADERS)
        return response

    endpoint.__name__ = "console_" + entry.path.strip("/").replace("/", "_").replace("{", "").replace("}", "")
    return endpoint


def _handle(entry: Page, request: Request, form: dict[str, str], files: dict[str, Upload] | None = None) -> Response:
    app: App = request.app.state.paypos
    session = None
    if entry.permission != PUBLIC:
        with app.uow() as uow:
            session = auth.resume_session(uow, request.cookies.get(SESSION_COOKIE, ""), app.clock())
            uow.commit()
        refused = _refusal(entry, request, session, form)
        if refused is not None:
            return refused
    ctx = Ctx(app, request, session, form, entry, files=files or {})
    try:
        response = entry.handler(ctx)
    except NotFound:
        response = ctx.render("error.html", http_status=404, title="Not found",
                              message="There is nothing here, or it is not yours to see.")
    for name, value, max_age in ctx.cookies_out:
        set_cookie(response, request, name, value, max_age)
    return response


def _refusal(entry: Page, request: Request, session: auth.Session | None, form: dict[str, str]) -> Response | None:
    if session is None:
        if request.method == "GET":
            return RedirectResponse(url("/login", next=request.url.path), status_code=303)
        return _forbidden(request, "Your session has ended: sign in again.")
    if session.awaiting_totp and entry.path != "/login/totp":
        return RedirectResponse(PREFIX + "/login/totp", status_code=303)
    if request.method == "POST":
        sent = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            return _forbidden(request, "The form expired or did not come from this console (CSRF check failed).")
    if isinstance(entry.permission, Permission) and not allows(session.user.role, entry.permission):
        return _forbidden(request, "Your role may not open this page.", session)
    return None


def _forbidden(request: Request, message: str, session: auth.Session | None = None) -> Response:
    body = TEMPLATES.get_template("error.html").render(
        ctx=None, nav=[], flash="", title="Forbidden", message=message, user=session.user if session else None)
    return HTMLResponse(body, status_code=403)


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=Lax, Secure when the console is served over https, path /console."""
    response.set_cookie(name, value, max_age=max_age, path=PREFIX, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")


def session_cookie_max_age() -> int:
    return limits.console_session_absolute_s


def escape_text(text: str) -> Markup:
    return escape(text)
