"""The hosted checkout's use cases (``GET /pay/{id}``, docs/checkout.md): what the buyer's page
shows, and the wallet way to pay — a merchant-presented QR of the merchant's sandbox wallet app
whose payment pays the request in the same transaction.

The wallet trade of a request has the out_trade_no ``checkout-<request id>``: a refreshed page
shows the same QR (``precreate`` is idempotent on it), and the wallet's settlement calls
:func:`wallet_trade_paid`, which records a ``wallet`` payment and moves the request to ``paid``.
The wallet is offered for requests with automatic capture and no escrow (the wallet settles into
``merchant_pending`` at once; holds and escrow are card-only in this slice).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from paypos import limits
from paypos.adapters.db.online import SqlOnlineStore
from paypos.adapters.db.payments import SqlPaymentStore
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.qrimage import render_qr_svg
from paypos.adapters.vault import Vault
from paypos.domain import online_payment as op
from paypos.domain import payment_request as pr
from paypos.domain.money import money
from paypos.domain.online_payment import Method, Payment, PaymentEvent, PaymentStatus
from paypos.domain.payment_request import Capture, Event, PaymentRequest, Status
from paypos.domain.wallet import Trade, WalletError
from paypos.protocol import alipay
from paypos.services import events
from paypos.services import online_payments as payments
from paypos.services import payment_requests as requests_service

OUT_TRADE_NO_PREFIX = "checkout-"
# The buyer has paid: the money was taken (escrow states included; docs/escrow-disputes.md).
PAID_STATES = ("paid", "partially_refunded", "refunded", "held", "shipped", "refund_requested", "refund_disputed",
               "released")


@dataclass(frozen=True, slots=True)
class CheckoutView:
    """What the buyer's pages show: never more card data than the masked PAN."""

    request_id: str
    merchant_name: str
    amount: str  # formatted with domain.money, e.g. "CNY 12.34"
    description: str
    status: str  # the request's
    payment_status: str | None
    failure_code: str | None
    failure_reason: str | None
    masked_pan: str | None
    tries_left: int | None
    wallet_offered: bool

    def as_json(self) -> dict[str, Any]:
        """``GET /pay/{id}/status``: what the page's polling needs."""
        return {"payment_request": self.request_id, "status": self.status, "payment_status": self.payment_status,
                "failure_code": self.failure_code, "tries_left": self.tries_left,
                "paid": self.status in ("requires_capture", *PAID_STATES)}


def view(uow: UnitOfWork, request_id: str, now: datetime) -> CheckoutView:
    """The request (``NotFound`` when unknown) with its latest attempt."""
    if not pr.is_id(request_id):
        raise payments.NotFound(request_id)
    found = payments.checkout(uow, request_id, now)
    request, attempt = found.request, found.payment
    merchant = uow.registry.get_merchant(request.merchant_id)
    challenge = attempt.challenge if attempt and attempt.status is PaymentStatus.REQUIRES_CHALLENGE else None
    return CheckoutView(
        request_id=request.id, merchant_name=merchant.name if merchant else request.merchant_id,
        amount=str(money(request.terms.amount_minor, request.terms.currency)),
        description=request.terms.description, status=request.status.value,
        payment_status=attempt.status.value if attempt else None,
        failure_code=attempt.failure_code if attempt else None,
        failure_reason=attempt.failure_reason if attempt else None,
        masked_pan=attempt.masked_pan if attempt else None,
        tries_left=challenge.tries_left if challenge else None,
        wallet_offered=_wallet_offered(uow, request))


def _wallet_offered(uow: UnitOfWork, request: PaymentRequest) -> bool:
    return (request.terms.capture is Capture.AUTOMATIC and not request.terms.escrow
            and uow.wallet.first_app_of_merchant(request.merchant_id) is not None)


def wallet_qr_svg(uow: UnitOfWork, vault: Vault, request_id: str, now: datetime) -> str | None:
    """An inline SVG of the request's wallet QR (made once; the same on every refresh), or
    ``None`` when the wallet is not offered or the request cannot be paid now."""
    request = SqlOnlineStore(uow.connection).get_payment_request(None, request_id)
    if request is None:
        raise payments.NotFound(request_id)
    request = requests_service.as_of(request, now)
    app = uow.wallet.first_app_of_merchant(request.merchant_id)
    left_s = int((request.terms.expires_at - now).total_seconds())
    if request.status is not Status.REQUIRES_PAYMENT or app is None or not _wallet_offered(uow, request) \
            or left_s < 60:
        return None
    minutes = min(left_s, limits.wallet_trade_timeout_s_max) // 60
    biz = {"out_trade_no": OUT_TRADE_NO_PREFIX + request.id,
           "total_amount": alipay.format_amount(request.terms.amount_minor),
           "subject": (request.terms.description or f"Payment request {request.id}")[:256],
           "timeout_express": f"{minutes}m"}
    from paypos.services import wallet  # wallet calls back into this module when a trade is paid

    try:
        qr_code = wallet.precreate(uow, vault, now, app, biz, None)["qr_code"]
    except WalletError:
        return None  # paid, closed or expired at the wallet: the page offers the card only
    svg = render_qr_svg(qr_code, scale=5, scalable=True)  # the page's CSS fits it to the screen
    return svg.split("?>", 1)[-1].strip()  # inline in HTML: no XML declaration


def wallet_trade_paid(uow: UnitOfWork, trade: Trade, now: datetime) -> None:
    """Called by the wallet's settlement in its transaction: a ``checkout-<id>`` trade pays its
    request. A request no longer payable refuses the wallet payment (WalletError rolls it back)."""
    if not trade.out_trade_no.startswith(OUT_TRADE_NO_PREFIX):
        return
    request_id = trade.out_trade_no.removeprefix(OUT_TRADE_NO_PREFIX)
    request = SqlOnlineStore(uow.connection).get_payment_request(trade.merchant_id, request_id, lock=True)
    if request is None:
        return  # not a checkout of this merchant: an ordinary trade
    request = requests_service.as_of(request, now)
    store = SqlPaymentStore(uow.connection)
    open_attempt = next((a for a in store.payments_of_request(request.id)
                         if a.status is PaymentStatus.REQUIRES_CHALLENGE), None)
    if open_attempt is not None:
        request = payments.fail_attempt(uow, request, open_attempt, "replaced", "paid with the wallet", now)
    if request.status is not Status.REQUIRES_PAYMENT or trade.total_amount_minor != request.terms.amount_minor:
        raise WalletError("ACQ.TRADE_HAS_CLOSE", f"the payment request is {request.status.value}")
    payment = Payment(
        id=op.new_payment_id(secrets.token_bytes(op.ID_RANDOM_BYTES)), payment_request_id=request.id,
        merchant_id=request.merchant_id, method=Method.WALLET,
        status=op.payment_transition(op.NEW, PaymentEvent.SUCCEED), amount_minor=trade.total_amount_minor,
        currency=trade.currency, captured_minor=trade.total_amount_minor, refunded_minor=0, escrow=False,
        settled=False, card_id=None, masked_pan=None, pan_enc=None, pan_hash=None, wallet_trade_no=trade.trade_no,
        failure_code=None, failure_reason=None, challenge=None, created_at=now, updated_at=now)
    store.add_payment(payment)
    paid = pr.transition(pr.transition(request.status, Event.PAY), Event.SUCCEED)
    SqlOnlineStore(uow.connection).set_payment_request_status(request.id, paid, now)
    request = replace(request, status=paid, updated_at=now)
    events.emit(uow, request.merchant_id, "payment_request.paid", requests_service.to_json(request, ""), now)
