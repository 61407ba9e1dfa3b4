"""Escrow of online payment requests (issue 6, docs/escrow-disputes.md): hold until delivery.

A paid escrow request is ``held``: its sale sits in the merchant's ``merchant_escrow`` (less
the fee the sale chain took). The merchant ships it (carrier, tracking number); the buyer
confirms receipt from a signed link (sent to the cardholder's phone when the request is
paid), or, with no answer, the sweep releases it ``PAYPOS_ESCROW_AUTO_RELEASE_S`` (10 days)
after shipping. Release posts ``<pay>:escrow_release`` merchant_escrow → merchant_pending.
Before release the buyer may ask for a refund: the merchant accepts (a full refund out of the
escrow, the fee returned) or rejects, and then the operator decides (refund or release).

Only *shipped* requests auto-release: a held request was never shipped, so the buyer has
nothing to receive; it waits for the merchant (ship, or refund). Every state change goes
through ``domain.payment_request.transition``; an illegal one is an ``IllegalTransition``
naming the state. Every function runs in the caller's unit of work; the caller commits.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from paypos import limits
from paypos.adapters.db.escrow import SqlEscrowStore
from paypos.adapters.db.online import SqlOnlineStore
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import Vault
from paypos.bootstrap import App
from paypos.domain import escrow as rules
from paypos.domain import payment_request as pr
from paypos.domain.escrow import Escrow, OperatorDecision, ReleaseReason
from paypos.domain.ledger import TransferRequest
from paypos.domain.payment_request import Event, PaymentRequest, Status
from paypos.networks.issuer import cardholder_phone
from paypos.services import events
from paypos.services import online_payments as payments
from paypos.services import payment_requests as requests_service
from paypos.services.background import run_batches
from paypos.services.sandbox import merchant_owner

log = logging.getLogger("paypos.escrow")
_LINK_PURPOSE = "escrow-buyer-link"


class EscrowMissing(RuntimeError):
    """An escrow request in an escrow state without its escrow row: a programmer error."""


# --- the buyer's signed link ------------------------------------------------------------------

def buyer_signature(vault: Vault, request_id: str) -> str:
    """HMAC-SHA256 of the request id under a key derived from the data key (the vault's lookup key)."""
    return vault.lookup_hash(request_id, _LINK_PURPOSE)


def buyer_link_valid(vault: Vault, request_id: str, signature: str) -> bool:
    return hmac.compare_digest(buyer_signature(vault, request_id), signature)


def buyer_url(vault: Vault, base_url: str, request_id: str) -> str:
    return f"{base_url.rstrip('/')}/pay/{request_id}/confirm?sig={buyer_signature(vault, request_id)}"


def send_buyer_link(uow: UnitOfWork, vault: Vault, request: PaymentRequest, card_id: str | None, now: datetime,
                    base_url: str) -> None:
    """The signed link to the cardholder's phone (the sandbox outbox), never to the merchant."""
    card = uow.registry.get_card(card_id or "")
    if card is None:
        return
    merchant = uow.registry.get_merchant(request.merchant_id)
    text = (f"[paypos] {merchant.name if merchant else request.merchant_id} holds your payment until you get "
            f"the goods. Confirm receipt or ask a refund: {buyer_url(vault, base_url, request.id)}")
    uow.host.add_notification(card.card_id, "sms", cardholder_phone(card, request.terms.currency), text[:320],
                              f"{request.id}:escrow_link", now)


# --- the merchant -------------------------------------------------------------------------------

def ship(uow: UnitOfWork, merchant_id: str, request_id: str, carrier: object, tracking_number: object, *,
         now: datetime, auto_release_s: int) -> dict[str, Any]:
    """``held`` → ``shipped``; auto-release falls due ``auto_release_s`` later; ``escrow.shipped``."""
    request = payments.merchant_request(uow, merchant_id, request_id, now)
    after = pr.transition(request.status, Event.SHIP)
    carrier_text, tracking = rules.shipping(carrier, tracking_number)
    escrow = replace(_escrow(uow, request), carrier=carrier_text, tracking_number=tracking, shipped_at=now,
                     release_due_at=rules.release_due_at(now, auto_release_s), updated_at=now)
    request = _save(uow, request, after, escrow, now)
    body = to_json(request, escrow)
    events.emit(uow, merchant_id, "escrow.shipped", body, now)
    return body


def answer_refund_request(uow: UnitOfWork, vault: Vault, merchant_id: str, request_id: str, *, accept: bool,
                          now: datetime) -> dict[str, Any]:
    """Accept (a full refund out of the escrow) or reject (the operator decides) the buyer's request."""
    request = payments.merchant_request(uow, merchant_id, request_id, now)
    if not accept:
        after = pr.transition(request.status, Event.REJECT_REFUND)
        escrow = replace(_escrow(uow, request), merchant_answer="rejected", updated_at=now)
        return to_json(_save(uow, request, after, escrow, now), escrow)
    if request.status is not Status.REFUND_REQUESTED:  # 409 naming the state before anything moves
        raise pr.IllegalTransition(request.status, Event.REFUND_FULL)
    escrow = replace(_escrow(uow, request), merchant_answer="accepted", updated_at=now)
    return _refund_in_full(uow, vault, request, escrow, "refund request accepted by the merchant", now)


# --- the buyer -------------------------------------------------------------------------------------

def confirm_receipt(uow: UnitOfWork, request_id: str, *, now: datetime) -> dict[str, Any]:
    """The buyer got the goods: ``shipped`` → ``released``."""
    return release(uow, _locked(uow, request_id, now), ReleaseReason.BUYER_CONFIRMED, now)


def request_refund(uow: UnitOfWork, request_id: str, reason: object, *, now: datetime) -> dict[str, Any]:
    """Before release (held or shipped) the buyer asks for the money back: ``refund_requested``."""
    request = _locked(uow, request_id, now)
    after = pr.transition(request.status, Event.REQUEST_REFUND)
    escrow = replace(_escrow(uow, request), refund_reason=rules.refund_reason(reason), refund_requested_at=now,
                     updated_at=now)
    return to_json(_save(uow, request, after, escrow, now), escrow)


# --- the operator and the sweep ----------------------------------------------------------------------

def operator_decide(uow: UnitOfWork, vault: Vault, request_id: str, decision: str, *, now: datetime) -> dict[str, Any]:
    """A refund request the merchant rejected (``refund_disputed``): refund the buyer or release."""
    chosen = OperatorDecision(decision)
    request = _locked(uow, request_id, now)
    event = Event.REFUND_FULL if chosen is OperatorDecision.REFUND else Event.RELEASE
    if request.status is not Status.REFUND_DISPUTED:
        raise pr.IllegalTransition(request.status, event)
    escrow = replace(_escrow(uow, request), operator_decision=chosen.value, updated_at=now)
    if chosen is OperatorDecision.REFUND:
        return _refund_in_full(uow, vault, request, escrow, "refund decided by the operator", now)
    SqlEscrowStore(uow.connection).update_escrow(escrow)
    return release(uow, request, ReleaseReason.OPERATOR, now)


def release_due(uow: UnitOfWork, now: datetime, limit: int = limits.escrow_release_batch_max) -> list[str]:
    """Release shipped requests whose auto-release time has come; the ids released."""
    released = []
    for request_id in SqlEscrowStore(uow.connection).due_for_release(now, limit):
        request = _locked(uow, request_id, now)
        if request.status is Status.SHIPPED:  # re-read under the lock: the buyer may have answered
            release(uow, request, ReleaseReason.AUTO, now)
            released.append(request_id)
    return released


def release(uow: UnitOfWork, request: PaymentRequest, reason: ReleaseReason, now: datetime) -> dict[str, Any]:
    """Post merchant_escrow → merchant_pending (captured − fee − refunded); ``escrow.released``."""
    after = pr.transition(request.status, Event.RELEASE)
    payment = payments.paid_attempt(uow, request)
    amount = rules.release_amount(payment.captured_minor, payment.refunded_minor, payments.sale_fee(uow, payment))
    owner = merchant_owner(request.merchant_id)
    if amount:
        payments.post_chain(uow, [TransferRequest(
            f"{payment.id}:escrow_release", payments.ledger_account(uow, owner, "merchant_escrow", payment.currency),
            payments.ledger_account(uow, owner, "merchant_pending", payment.currency), amount, payment.currency,
            code="escrow_release")], now)
    escrow = replace(_escrow(uow, request), released_at=now, release_reason=reason.value, updated_at=now)
    request = _save(uow, request, after, escrow, now)
    body = to_json(request, escrow) | {"amount_released": amount}
    events.emit(uow, request.merchant_id, "escrow.released", body, now)
    return body


# --- reads ---------------------------------------------------------------------------------------------

def get(uow: UnitOfWork, merchant_id: str | None, request_id: str, now: datetime) -> dict[str, Any]:
    """The escrow of the merchant's request (``merchant_id=None``: the buyer's signed page)."""
    request = SqlOnlineStore(uow.connection).get_payment_request(merchant_id, request_id)
    escrow = SqlEscrowStore(uow.connection).get_escrow(request_id) if request else None
    if request is None or escrow is None:
        raise requests_service.NotFound(request_id)
    return to_json(requests_service.as_of(request, now), escrow)


def to_json(request: PaymentRequest, escrow: Escrow) -> dict[str, Any]:
    return {
        "id": request.id, "object": "escrow", "payment_request": request.id, "payment": escrow.payment_id,
        "status": request.status.value, "amount": request.terms.amount_minor, "currency": request.terms.currency,
        "carrier": escrow.carrier, "tracking_number": escrow.tracking_number, "held_at": _iso(escrow.held_at),
        "shipped_at": _iso(escrow.shipped_at), "release_due_at": _iso(escrow.release_due_at),
        "released_at": _iso(escrow.released_at), "release_reason": escrow.release_reason,
        "refund_request": None if escrow.refund_requested_at is None else {
            "reason": escrow.refund_reason, "requested_at": _iso(escrow.refund_requested_at),
            "merchant_answer": escrow.merchant_answer, "operator_decision": escrow.operator_decision},
    }


# --- helpers -------------------------------------------------------------------------------------------

def _refund_in_full(uow: UnitOfWork, vault: Vault, request: PaymentRequest, escrow: Escrow, reason: str,
                    now: datetime) -> dict[str, Any]:
    SqlEscrowStore(uow.connection).update_escrow(escrow)
    refund = payments.refund_payment(uow, vault, request, None, reason, now=now)
    refunded = SqlOnlineStore(uow.connection).get_payment_request(None, request.id)
    if refunded is None:
        raise EscrowMissing(f"payment request {request.id} disappeared")
    return to_json(refunded, escrow) | {"refund": payments.refund_json(refund)}


def _locked(uow: UnitOfWork, request_id: str, now: datetime) -> PaymentRequest:
    found = SqlOnlineStore(uow.connection).get_payment_request(None, request_id, lock=True)
    if found is None:
        raise requests_service.NotFound(request_id)
    return requests_service.as_of(found, now)


def _escrow(uow: UnitOfWork, request: PaymentRequest) -> Escrow:
    escrow = SqlEscrowStore(uow.connection).get_escrow(request.id)
    if escrow is None:
        if request.status in pr.ESCROW_STATES or request.status is Status.RELEASED:
            raise EscrowMissing(f"payment request {request.id} is {request.status.value} without its escrow")
        raise pr.IllegalTransition(request.status, Event.SHIP)  # not an escrow (or not paid): nothing to do
    return escrow


def _save(uow: UnitOfWork, request: PaymentRequest, after: Status, escrow: Escrow, now: datetime) -> PaymentRequest:
    SqlEscrowStore(uow.connection).update_escrow(escrow)
    SqlOnlineStore(uow.connection).set_payment_request_status(request.id, after, now)
    return replace(request, status=after, updated_at=now)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


# --- the sweep of `paypos serve` ------------------------------------------------------------------------

def release_batch(app: App, now: datetime | None = None) -> int:
    """One batch of due auto-releases in its own transaction; how many were released."""
    now = now or app.clock()
    with app.uow(write=False) as uow:  # a cheap look first: no write lock when nothing is due
        if not SqlEscrowStore(uow.connection).due_for_release(now, 1):
            return 0
    with app.uow() as uow:
        released = release_due(uow, now)
        uow.commit()
    if released:
        log.info("escrow auto-released %d payment request(s)", len(released))
    return len(released)


async def run_escrow_releases(app: App, interval_s: float) -> None:
    """``release_batch`` forever, off the event loop (``paypos serve``)."""
    await run_batches(lambda: release_batch(app), batch_max=limits.escrow_release_batch_max,
                      interval_s=interval_s, what="releasing escrows", log=log)
