"""The hosted checkout (issue 6, docs/checkout.md): server-rendered pages a buyer opens from a
payment request's ``checkout_url``, on a phone or a computer. No JavaScript framework and no
build step: Jinja2 templates, one small stylesheet, one tiny nonce'd script that polls
``/pay/{id}/status`` while the wallet QR is on screen.

- ``GET /pay/{id}``: merchant, amount, description; the card form; the wallet QR.
- ``POST /pay/{id}/card``: PAN, expiry, CVV2, name → the challenge page or the result page.
  A bad field re-renders the form with a message; the PAN and CVV2 are never echoed back.
- ``GET|POST /pay/{id}/challenge``: the one-time code the cardholder's phone received.
- ``GET /pay/{id}/status``: JSON for the page's polling. ``GET /pay/{id}/result``.

Every page answers ``Cache-Control: no-store`` and a Content-Security-Policy that forbids
framing and any script but the page's own nonce'd one.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from paypos import limits
from paypos.bootstrap import App
from paypos.domain.online_payment import card_entry
from paypos.domain.payment_request import IllegalTransition, PaymentRequestError
from paypos.services import checkout as service
from paypos.services import online_payments as payments

_HERE = Path(__file__).parent
_TEMPLATES = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(["html"]))
CSS_PATH = "/pay-assets/checkout.css"
_CSS = (_HERE / "static" / "checkout.css").read_text(encoding="utf-8")
_PAID = service.PAID_STATES
_REASONS = {
    "incorrect_cvv2": "The security code (CVV2) is not right.",
    "incorrect_expiry": "The expiry date is not right.",
    "expired_card": "This card has expired.",
    "restricted_card": "This card cannot be used. Please contact your bank.",
    "insufficient_funds": "The card was declined: not enough funds.",
    "invalid_card_number": "No bank knows this card number.",
    "challenge_failed": "Too many wrong codes.",
    "challenge_expired": "The one-time code expired.",
    "replaced": "Another payment attempt replaced this one.",
    "request_expired": "The payment request expired.",
}
Field = Annotated[str, Form(max_length=128)]


def install_checkout_routes(api: FastAPI) -> None:
    @api.get(CSS_PATH, include_in_schema=False)
    def stylesheet() -> Response:
        return Response(_CSS, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})

    @api.get("/pay/{request_id}", include_in_schema=False)
    def pay_page(request: Request, request_id: str) -> Response:
        app = _app(request)
        view = _view(app, request_id)
        if view is None:
            return _not_found()
        if view.payment_status == "requires_challenge" and view.status == "processing":
            return _see(request_id, "challenge")
        if view.status != "requires_payment":
            return _see(request_id, "result")
        return _render_pay(app, view, name="", error=None)

    @api.post("/pay/{request_id}/card", include_in_schema=False)
    def pay_card(request: Request, request_id: str, pan: Field = "", expiry: Field = "", cvv2: Field = "",
                 name: Field = "") -> Response:
        app = _app(request)
        view = _view(app, request_id)
        if view is None:
            return _not_found()
        try:
            entry = card_entry(pan=pan, expiry=expiry, cvv2=cvv2, name=name)
        except PaymentRequestError as error:
            return _render_pay(app, view, name=name[:limits.checkout_cardholder_name_chars_max], error=str(error),
                               status=422)
        try:
            with app.uow() as uow:
                outcome = payments.submit_card(uow, app.vault, request_id, entry, now=app.clock(),
                                               base_url=str(request.base_url))
                uow.commit()
        except IllegalTransition:
            return _see(request_id, "result")
        waiting = outcome.payment is not None and outcome.payment.status.value == "requires_challenge"
        return _see(request_id, "challenge" if waiting else "result")

    _install_challenge_routes(api)


def _install_challenge_routes(api: FastAPI) -> None:
    @api.get("/pay/{request_id}/challenge", include_in_schema=False)
    def challenge_page(request: Request, request_id: str) -> Response:
        view = _view(_app(request), request_id)
        if view is None:
            return _not_found()
        if view.payment_status != "requires_challenge":
            return _see(request_id, "result")
        return _render("challenge.html", view, error=None)

    @api.post("/pay/{request_id}/challenge", include_in_schema=False)
    def challenge_answer(request: Request, request_id: str, otp: Field = "") -> Response:
        app = _app(request)
        if _view(app, request_id) is None:
            return _not_found()
        with app.uow() as uow:
            outcome = payments.submit_code(uow, app.vault, request_id, otp.strip(), now=app.clock(),
                                           base_url=str(request.base_url))
            uow.commit()
        view = _view(app, request_id)
        if view is not None and view.payment_status == "requires_challenge" and outcome.payment is not None:
            return _render("challenge.html", view, error="That code is not right.", status=422)
        return _see(request_id, "result")

    @api.get("/pay/{request_id}/status", include_in_schema=False)
    def status(request: Request, request_id: str) -> Response:
        view = _view(_app(request), request_id)
        if view is None:
            return JSONResponse({"detail": "not found"}, status_code=404, headers=_headers(None))
        return JSONResponse(view.as_json(), headers=_headers(None))

    @api.get("/pay/{request_id}/result", include_in_schema=False)
    def result(request: Request, request_id: str) -> Response:
        view = _view(_app(request), request_id)
        if view is None:
            return _not_found()
        if view.status == "processing" and view.payment_status == "requires_challenge":
            return _see(request_id, "challenge")
        if view.status == "requires_payment" and view.payment_status is None:
            return RedirectResponse(f"/pay/{request_id}", status_code=303, headers=_headers(None))
        return _render("result.html", view, **_result_text(view))


def _result_text(view: service.CheckoutView) -> dict[str, Any]:
    if view.status in _PAID:
        return {"headline": "Paid", "paid": True, "reason": None, "retry": False}
    if view.status == "requires_capture":
        return {"headline": "Payment authorized", "paid": True, "reason": None, "retry": False}
    if view.status in ("canceled", "expired"):
        return {"headline": f"Payment request {view.status}", "paid": False, "reason": None, "retry": False}
    reason = _REASONS.get(view.failure_code or "", "The card was declined.")
    return {"headline": "Payment failed", "paid": False, "reason": reason, "retry": view.status == "requires_payment"}


# --- rendering -------------------------------------------------------------------------------

def _view(app: App, request_id: str) -> service.CheckoutView | None:
    try:
        with app.uow(write=False) as uow:
            return service.view(uow, request_id, app.clock())
    except payments.NotFound:
        return None


def _render_pay(app: App, view: service.CheckoutView, *, name: str, error: str | None, status: int = 200) -> Response:
    wallet_svg = None
    if view.wallet_offered:
        with app.uow() as uow:
            wallet_svg = service.wallet_qr_svg(uow, app.vault, view.request_id, app.clock())
            uow.commit()
    return _render("pay.html", view, name=name, error=error, wallet_svg=wallet_svg, status=status)


def _render(template: str, view: service.CheckoutView, *, status: int = 200, **context: Any) -> Response:
    nonce = secrets.token_urlsafe(16)
    base = f"/pay/{view.request_id}"
    page = _TEMPLATES.get_template(f"checkout/{template}").render(
        view=view, nonce=nonce, css_url=CSS_PATH, pay_url=base, card_url=f"{base}/card",
        challenge_url=f"{base}/challenge", status_url=f"{base}/status", result_url=f"{base}/result",
        poll_ms=limits.checkout_status_poll_ms, digits=limits.checkout_otp_digits, **context)
    return Response(page, status_code=status, media_type="text/html; charset=utf-8", headers=_headers(nonce))


def _not_found() -> Response:
    page = _TEMPLATES.get_template("checkout/not_found.html").render(css_url=CSS_PATH)
    return Response(page, status_code=404, media_type="text/html; charset=utf-8", headers=_headers(None))


def _see(request_id: str, page: str) -> Response:
    return RedirectResponse(f"/pay/{request_id}/{page}", status_code=303, headers=_headers(None))


def _headers(nonce: str | None) -> dict[str, str]:
    script = f"'nonce-{nonce}'" if nonce else "'none'"
    return {
        "Cache-Control": "no-store",
        "Content-Security-Policy": (f"default-src 'none'; script-src {script}; style-src 'self'; img-src 'self' data:; "
                                    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def _app(request: Request) -> App:
    return request.app.state.paypos  # type: ignore[no-any-return]
