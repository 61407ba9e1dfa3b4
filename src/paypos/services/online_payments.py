"""Payments (attempts) of payment requests: card not present with the sandbox issuer's CVV2
check and a one-time-code challenge, manual capture, cancel (void), refunds, balances
(issue 6, docs/checkout.md).

Every function runs in the caller's unit of work; the caller commits. The payment request's
row is locked first, so attempts on one request take turns: at most one attempt is open
(``requires_challenge``) at a time, a double-submitted form answers the attempt it already
made, and a paid request answers its payment — never a second charge. Ledger transfer ids
derive from the payment's (or refund's) id, so a retried posting is answered ``exists``.

Ledger chains (card account → merchant): automatic capture posts ``<pay>:sale`` into
``merchant_pending`` (``merchant_escrow`` for an escrow request) and ``<pay>:fee`` from there
to the platform's ``fees_revenue``; manual capture places the pending ``<pay>:hold`` that
``<pay>:capture`` posts (all or part; the rest is released) or ``<pay>:void`` releases. A
refund ``<re>:refund`` goes back to the card's account from ``merchant_pending``,
``merchant_escrow`` (escrow not yet released) or ``merchant_available`` (settled). The refund
that empties an escrow also returns the sale's fee (``<re>:fee_return``, fees_revenue →
merchant_escrow), so the buyer gets all back and the escrow ends at zero. What an open or lost
dispute took (services/disputes.py) cannot be refunded again. A paid escrow request is
``held`` at once; services/escrow.py takes it from there (docs/escrow-disputes.md).

Card data: the PAN is sealed by the vault before it is stored (with its masked form and a
keyed lookup hash); the CVV2 is given to the issuer in memory and never stored or logged;
the one-time code is stored only as a keyed hash.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from paypos import limits
from paypos.adapters.db.escrow import SqlEscrowStore
from paypos.adapters.db.online import SqlOnlineStore
from paypos.adapters.db.payments import SqlPaymentStore
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import Vault
from paypos.authorization.result import Result
from paypos.domain import online_payment as op
from paypos.domain import payment_request as pr
from paypos.domain.escrow import new_escrow
from paypos.domain.ledger import TransferKind, TransferRequest, TransferResult
from paypos.domain.money import currency as currency_of
from paypos.domain.money import money
from paypos.domain.online_payment import CardEntry, Method, Payment, PaymentEvent, PaymentStatus, Refund
from paypos.domain.payment_request import Capture, Event, IllegalTransition, PaymentRequest, Status
from paypos.domain.pricing import PaymentMethod, fee_for
from paypos.domain.registry import IssuerCard
from paypos.networks.issuer import IssuerRequest, SandboxIssuer, cardholder_notice, cardholder_phone
from paypos.domain.wallet import WalletError
from paypos.protocol import alipay
from paypos.protocol.card import mask_pan
from paypos.services import events
from paypos.services import payment_requests as requests_service
from paypos.services.sandbox import card_account_owner_ref, funding_account_code, merchant_owner

Random = Callable[[int], bytes]
Row = TypeVar("Row")
_FUNDS_REFUSED = {TransferResult.EXCEEDS_CREDITS, TransferResult.EXCEEDS_DEBITS}
_PAID = frozenset({Status.PAID, Status.PARTIALLY_REFUNDED, Status.REFUNDED, Status.REQUIRES_CAPTURE,
                   *pr.ESCROW_STATES, Status.RELEASED})
_REFUNDABLE = frozenset({Status.PAID, Status.PARTIALLY_REFUNDED, Status.HELD, Status.SHIPPED})
NotFound = requests_service.NotFound


class PaymentNotFound(LookupError):
    def __init__(self, what: str, object_id: str) -> None:
        super().__init__(f"no {what} {object_id!r}")


class InsufficientBalance(Exception):
    """The merchant's account cannot fund a refund (a 409 at the API)."""


class HoldExpired(Exception):
    """The authorization hold timed out before the capture (a 409 at the API)."""


class LedgerRefused(RuntimeError):
    """The ledger refused a posting for a reason no user can cause: a programmer error."""


@dataclass(frozen=True, slots=True)
class Checkout:
    """A request as its buyer sees it, with the attempt that matters (latest first)."""

    request: PaymentRequest
    payment: Payment | None


# --- the buyer's card ------------------------------------------------------------------------

def submit_card(uow: UnitOfWork, vault: Vault, request_id: str, entry: CardEntry, *, now: datetime,
                base_url: str, random: Random = secrets.token_bytes) -> Checkout:
    """Pay ``request_id`` with a card not present: verify, challenge or authorize."""
    request, attempt = _locked_checkout(uow, request_id, now)
    if request.status in _PAID:
        return Checkout(request, attempt)  # already paid: a double submit answers the same payment
    pan_hash = vault.lookup_hash(entry.pan)
    if attempt is not None and attempt.status is PaymentStatus.REQUIRES_CHALLENGE:
        if attempt.pan_hash == pan_hash:
            return Checkout(request, attempt)  # the same form twice: the same open attempt
        request = fail_attempt(uow, request, attempt, "replaced", "another card was submitted", now)
    request = _move(uow, request, Event.PAY, now)
    payment = _new_card_payment(uow, vault, request, entry, pan_hash, now, random)
    card = uow.registry.find_card_by_pan_hash(pan_hash)
    verified = _verify(uow, vault, request, entry, card, now)
    if not isinstance(verified, bool) or card is None:
        return _first_failure(uow, request, payment, verified if not isinstance(verified, bool) else
                              (Result.INVALID_CARD_NUMBER.value, "no issuer for this card"), now)
    if op.needs_challenge(request.terms.amount_minor, card_flagged=verified):
        return _challenge(uow, vault, request, payment, card, now, random)
    return _authorize(uow, vault, request, payment, now, base_url, added=False)


def submit_code(uow: UnitOfWork, vault: Vault, request_id: str, code: str, *, now: datetime,
                base_url: str) -> Checkout:
    """The cardholder's one-time code for the open attempt: authorize, one try fewer, or fail."""
    request, attempt = _locked_checkout(uow, request_id, now)
    if attempt is None or attempt.status is not PaymentStatus.REQUIRES_CHALLENGE or attempt.challenge is None:
        return Checkout(request, attempt)  # nothing to answer (paid, failed, expired...): the page shows it
    entered = vault.lookup_hash(code, f"otp:{attempt.id}") if op.is_otp_shaped(code) else ""
    outcome, challenge = op.check_code(attempt.challenge, entered, now)
    attempt = replace(attempt, challenge=challenge, updated_at=now)
    if outcome is op.ChallengeOutcome.PASSED:
        return _authorize(uow, vault, request, replace(attempt, challenge=None), now, base_url, added=True)
    if outcome is op.ChallengeOutcome.WRONG_CODE:
        SqlPaymentStore(uow.connection).update_payment(attempt)
        return Checkout(request, attempt)
    expired = outcome is op.ChallengeOutcome.EXPIRED
    reason = "the one-time code expired" if expired else f"{limits.checkout_otp_tries_max} wrong one-time codes"
    request = fail_attempt(uow, request, attempt, "challenge_expired" if expired else "challenge_failed", reason, now)
    return Checkout(request, SqlPaymentStore(uow.connection).get_payment(attempt.id))


def checkout(uow: UnitOfWork, request_id: str, now: datetime) -> Checkout:
    """Read-only: the request (expired when due) and its latest attempt, for the pages."""
    request = SqlOnlineStore(uow.connection).get_payment_request(None, request_id)
    if request is None:
        raise NotFound(request_id)
    attempts = SqlPaymentStore(uow.connection).payments_of_request(request.id)
    return Checkout(requests_service.as_of(request, now), _latest(attempts))


def _locked_checkout(uow: UnitOfWork, request_id: str, now: datetime) -> tuple[PaymentRequest, Payment | None]:
    """Lock the request; fail an open attempt whose code expired (the request can be paid again)
    or whose request expired (the request is then expired)."""
    request = SqlOnlineStore(uow.connection).get_payment_request(None, request_id, lock=True)
    if request is None:
        raise NotFound(request_id)
    request = requests_service.as_of(request, now)
    attempt = _latest(SqlPaymentStore(uow.connection).payments_of_request(request.id))
    challenge = attempt.challenge if attempt is not None else None
    if attempt is None or challenge is None or attempt.status is not PaymentStatus.REQUIRES_CHALLENGE:
        return request, attempt
    if now >= request.terms.expires_at:
        request = fail_attempt(uow, request, attempt, "request_expired", "the payment request expired", now)
        request = requests_service.as_of(request, now)
    elif now >= challenge.expires_at:
        request = fail_attempt(uow, request, attempt, "challenge_expired", "the one-time code expired", now)
    else:
        return request, attempt
    return request, SqlPaymentStore(uow.connection).get_payment(attempt.id)


def expire_due(uow: UnitOfWork, now: datetime, batch_max: int = limits.payment_request_expiry_batch_max) -> int:
    """The sweep: write ``expired`` on up to ``batch_max`` requests past their expiry that are
    unpaid or waiting for a one-time code (that attempt fails first). How many it expired."""
    expired = 0
    for request_id in SqlOnlineStore(uow.connection).due_to_expire(now, batch_max):
        request, _ = _locked_checkout(uow, request_id, now)
        if request.status is Status.EXPIRED:
            SqlOnlineStore(uow.connection).set_payment_request_status(request.id, request.status, now)
            expired += 1
    return expired


def expire_all_due(app_uow: Callable[[], UnitOfWork], clock: Callable[[], datetime],
                   batch_max: int = limits.payment_request_expiry_batch_max) -> int:
    """:func:`expire_due` one committed batch after another until a batch is not full."""
    total = 0
    while True:
        with app_uow() as uow:
            expired = expire_due(uow, clock(), batch_max)
            uow.commit()
        total += expired
        if expired < batch_max:
            return total


def _latest(attempts: list[Payment]) -> Payment | None:
    """The attempt that paid, else the open one, else the one that changed last."""
    rank = {PaymentStatus.SUCCEEDED: 3, PaymentStatus.AUTHORIZED: 3, PaymentStatus.CANCELED: 3,
            PaymentStatus.REQUIRES_CHALLENGE: 2}
    return max(attempts, key=lambda a: (rank.get(a.status, 0), a.updated_at, a.created_at), default=None)


def _new_card_payment(uow: UnitOfWork, vault: Vault, request: PaymentRequest, entry: CardEntry, pan_hash: str,
                      now: datetime, random: Random) -> Payment:
    t = request.terms
    return Payment(
        id=op.new_payment_id(random(op.ID_RANDOM_BYTES)), payment_request_id=request.id,
        merchant_id=request.merchant_id, method=Method.CARD,
        status=PaymentStatus.FAILED,  # a placeholder: the first write sets the status its outcome reaches
        amount_minor=t.amount_minor, currency=t.currency, captured_minor=0, refunded_minor=0, escrow=t.escrow,
        settled=False, card_id=None, masked_pan=mask_pan(entry.pan), pan_enc=vault.seal(entry.pan, "pan"),
        pan_hash=pan_hash, wallet_trade_no=None, failure_code=None, failure_reason=None, challenge=None,
        created_at=now, updated_at=now)


def _verify(uow: UnitOfWork, vault: Vault, request: PaymentRequest, entry: CardEntry, card: IssuerCard | None,
            now: datetime) -> tuple[str, str] | bool:
    """The issuer's card-not-present checks (status, expiry, currency, CVV2; funds come later):
    a failure (code, reason), or whether the issuer's risk asks for a challenge."""
    if card is None:
        return Result.INVALID_CARD_NUMBER.value, "no issuer for this card"
    funding = uow.registry.get_card(card.token_for_card_id) if card.token_for_card_id else card
    if funding is None:
        return Result.RESTRICTED_CARD.value, "token has no funding card"
    decision = SandboxIssuer(uow, vault, now).authorize(IssuerRequest(
        card=card, funding_card=funding, pan=entry.pan, amount_minor=request.terms.amount_minor,
        currency=currency_of(request.terms.currency).numeric, interface=None, icc=None, pin_block=None,
        terminal_cvm_limit_minor=0, needs_cryptogram=False, expiry=entry.expiry, cvv2=entry.cvv2))
    if decision.result is Result.APPROVED:
        return decision.challenge_requested
    code = {"cvv2": "incorrect_cvv2", "expiry": "incorrect_expiry"}.get(decision.failed_check or "",
                                                                       decision.result.value)
    return code, decision.reason


def _first_failure(uow: UnitOfWork, request: PaymentRequest, payment: Payment, failure: tuple[str, str],
                   now: datetime) -> Checkout:
    payment = replace(payment, status=op.payment_transition(op.NEW, PaymentEvent.FAIL))
    SqlPaymentStore(uow.connection).add_payment(payment)
    request = fail_attempt(uow, request, payment, *failure, now)
    return Checkout(request, SqlPaymentStore(uow.connection).get_payment(payment.id))


def _challenge(uow: UnitOfWork, vault: Vault, request: PaymentRequest, payment: Payment, card: IssuerCard,
               now: datetime, random: Random) -> Checkout:
    """A one-time code to the cardholder's phone (the sandbox outbox); only its hash is kept."""
    code = op.new_otp(random(op.OTP_RANDOM_BYTES))
    challenge = op.new_challenge(vault.lookup_hash(code, f"otp:{payment.id}"), now)
    payment = replace(payment, card_id=card.card_id, challenge=challenge,
                      status=op.payment_transition(op.NEW, PaymentEvent.CHALLENGE))
    SqlPaymentStore(uow.connection).add_payment(payment)
    merchant = uow.registry.get_merchant(request.merchant_id)
    amount = money(request.terms.amount_minor, request.terms.currency)
    minutes = limits.checkout_otp_ttl_s // 60
    text = (f"[paypos sandbox bank] {code} is your code for {amount} at "
            f"{merchant.name if merchant else request.merchant_id}, card {card.masked_pan}. "
            f"Valid {minutes} min. Never share it.")
    uow.host.add_notification(card.card_id, "sms", cardholder_phone(card, request.terms.currency), text[:320],
                              f"{payment.id}:otp", now)
    return Checkout(request, payment)


# --- authorization and the ledger --------------------------------------------------------------

def _authorize(uow: UnitOfWork, vault: Vault, request: PaymentRequest, payment: Payment, now: datetime,
               base_url: str, *, added: bool) -> Checkout:
    """Post the sale (automatic capture) or place the hold (manual); funds refused → failed."""
    store = SqlPaymentStore(uow.connection)
    card = uow.registry.find_card_by_pan_hash(payment.pan_hash or "")
    if card is None:
        raise LedgerRefused(f"payment {payment.id}: its card disappeared")
    payment = replace(payment, card_id=card.card_id)
    automatic = request.terms.capture is Capture.AUTOMATIC
    source, target = card_account(uow, card, payment.currency), _merchant_account(uow, payment)
    if automatic:
        chain = _sale_chain(uow, payment, source, target, payment.amount_minor, f"{payment.id}:sale", "sale", now)
    else:
        chain = [TransferRequest(f"{payment.id}:hold", source, target, payment.amount_minor, payment.currency,
                                 kind=TransferKind.PENDING, timeout_s=limits.preauth_hold_s_default,
                                 code="online_hold")]
    refused = post_chain(uow, chain, now)
    if refused is not None:
        failed = replace(payment, status=op.payment_transition(payment.status if added else op.NEW, PaymentEvent.FAIL))
        store.update_payment(failed) if added else store.add_payment(failed)
        request = fail_attempt(uow, request, failed, Result.INSUFFICIENT_FUNDS.value, refused, now)
        return Checkout(request, store.get_payment(payment.id))
    event = PaymentEvent.SUCCEED if automatic else PaymentEvent.AUTHORIZE
    done = replace(payment, status=op.payment_transition(payment.status if added else op.NEW, event),
                   captured_minor=payment.amount_minor if automatic else 0, updated_at=now)
    store.update_payment(done) if added else store.add_payment(done)
    request = _move(uow, request, Event.SUCCEED if automatic else Event.AUTHORIZE, now)
    if automatic:
        events.emit(uow, request.merchant_id, "payment_request.paid", requests_service.to_json(request, base_url), now)
        request = _hold_if_escrow(uow, vault, request, done, now, base_url)
    _notify_cardholder(uow, card, request, payment.amount_minor, f"{payment.id}", now, refund=False)
    return Checkout(request, done)


def _sale_chain(uow: UnitOfWork, payment: Payment, source: int, target: int, amount: int, transfer_id: str,
                code: str, now: datetime, *, kind: TransferKind = TransferKind.SINGLE) -> list[TransferRequest]:
    """Card → merchant (amount), merchant → platform fees (fee), linked: one atomic chain. The fee
    is the merchant's plan's card-not-present fee at ``now`` (the capture's time for a hold)."""
    plan = uow.pricing.plan_at(payment.merchant_id, payment.currency, now)
    fee = fee_for(plan, PaymentMethod.CARD_NOT_PRESENT, amount, now)
    fees = ledger_account(uow, "platform", "fees_revenue", payment.currency)
    first = TransferRequest(transfer_id, None if kind is TransferKind.POST_PENDING else source,
                            None if kind is TransferKind.POST_PENDING else target, amount,
                            None if kind is TransferKind.POST_PENDING else payment.currency, kind=kind,
                            pending_id=f"{payment.id}:hold" if kind is TransferKind.POST_PENDING else None,
                            code=code, linked=fee > 0)
    chain = [first]
    if fee:
        chain.append(TransferRequest(f"{payment.id}:fee", target, fees, fee, payment.currency, code="fee"))
    return chain


def post_chain(uow: UnitOfWork, chain: list[TransferRequest], now: datetime) -> str | None:
    """Post a chain; a funds refusal is its reason, any other refusal is a programmer error."""
    outcomes = uow.ledger.create_transfers(chain, now)
    if any(o.result in _FUNDS_REFUSED for o in outcomes):
        return "insufficient funds"
    if any(o.result is TransferResult.PENDING_TRANSFER_EXPIRED for o in outcomes):
        raise HoldExpired("the authorization hold expired before the capture")
    failed = [o for o in outcomes if not o.result.ok and o.result is not TransferResult.LINKED_EVENT_FAILED]
    if failed:
        raise LedgerRefused(f"ledger refused {failed[0].id}: {failed[0].result.value}")
    return None


def sale_fee(uow: UnitOfWork, payment: Payment) -> int:
    """The fee the payment's sale (or capture) chain posted (``<pay>:fee``; 0 when none)."""
    transfer = uow.ledger.get_transfer(f"{payment.id}:fee")
    return transfer.amount if transfer is not None else 0


def ledger_account(uow: UnitOfWork, owner_ref: str, code: str, alpha: str) -> int:
    account_id = uow.ledger.find_account_id(owner_ref, code, alpha)
    if account_id is None:
        raise LedgerRefused(f"ledger account {owner_ref} {code} {alpha} missing")
    return account_id


def card_account(uow: UnitOfWork, card: IssuerCard, alpha: str) -> int:
    funding = uow.registry.get_card(card.token_for_card_id) if card.token_for_card_id else card
    if funding is None:
        raise LedgerRefused(f"card {card.card_id} is a token for a missing card")
    return ledger_account(uow, card_account_owner_ref(card), funding_account_code(funding.funding), alpha)


def _merchant_account(uow: UnitOfWork, payment: Payment) -> int:
    code, owner = _funds_code(payment), merchant_owner(payment.merchant_id)
    if code == "merchant_escrow":  # opened on first use too: older data dirs predate escrow
        return uow.ledger.open_account(owner, owner, code, payment.currency).id
    return ledger_account(uow, owner, code, payment.currency)


def _funds_code(payment: Payment) -> str:
    """Where the payment's money sits: settled → available; escrow → escrow; else pending."""
    if payment.settled:
        return "merchant_available"
    return "merchant_escrow" if payment.escrow else "merchant_pending"


def _notify_cardholder(uow: UnitOfWork, card: IssuerCard, request: PaymentRequest, amount: int, reference: str,
                       now: datetime, *, refund: bool) -> None:
    merchant = uow.registry.get_merchant(request.merchant_id)
    uow.host.add_notification(**cardholder_notice(card, "", merchant.name if merchant else request.merchant_id,
                                                  amount, request.terms.currency, refund, reference, now))


# --- state changes ------------------------------------------------------------------------------

def _move(uow: UnitOfWork, request: PaymentRequest, event: Event, now: datetime) -> PaymentRequest:
    after = pr.transition(request.status, event)
    SqlOnlineStore(uow.connection).set_payment_request_status(request.id, after, now)
    return replace(request, status=after, updated_at=now)


def fail_attempt(uow: UnitOfWork, request: PaymentRequest, payment: Payment, code: str, reason: str,
          now: datetime) -> PaymentRequest:
    """The attempt failed: record why, the request can be paid again, ``payment.failed``."""
    status = payment.status if payment.status is PaymentStatus.FAILED else \
        op.payment_transition(payment.status, PaymentEvent.FAIL)
    failed = replace(payment, status=status, failure_code=code, failure_reason=reason[:200], challenge=None,
                     updated_at=now)
    SqlPaymentStore(uow.connection).update_payment(failed)
    request = _move(uow, request, Event.FAIL, now)
    events.emit(uow, request.merchant_id, "payment.failed", payment_json(failed), now)
    return request


# --- the merchant: capture, cancel, refund ------------------------------------------------------

def merchant_request(uow: UnitOfWork, merchant_id: str, request_id: str, now: datetime) -> PaymentRequest:
    found = SqlOnlineStore(uow.connection).get_payment_request(merchant_id, request_id, lock=True)
    if found is None:
        raise NotFound(request_id)
    return requests_service.as_of(found, now)


def paid_attempt(uow: UnitOfWork, request: PaymentRequest) -> Payment:
    attempt = _latest(SqlPaymentStore(uow.connection).payments_of_request(request.id))
    if attempt is None or attempt.status not in (PaymentStatus.SUCCEEDED, PaymentStatus.AUTHORIZED):
        raise LedgerRefused(f"payment request {request.id} is {request.status.value} without a payment")
    return attempt


def capture(uow: UnitOfWork, merchant_id: str, request_id: str, amount: int | None, *, now: datetime,
            base_url: str, vault: Vault | None = None) -> PaymentRequest:
    """Post all or part of the hold of a ``requires_capture`` request; the rest is released."""
    request = merchant_request(uow, merchant_id, request_id, now)
    after = pr.transition(request.status, Event.CAPTURE)  # 409 naming the state unless requires_capture
    payment = paid_attempt(uow, request)
    captured = op.capture_amount(payment, amount)
    target = _merchant_account(uow, payment)
    post_chain(uow, _sale_chain(uow, payment, 0, target, captured, f"{payment.id}:capture", "online_capture",
                                now, kind=TransferKind.POST_PENDING), now)
    payment = replace(payment, status=op.payment_transition(payment.status, PaymentEvent.CAPTURE),
                      captured_minor=captured, updated_at=now)
    SqlPaymentStore(uow.connection).update_payment(payment)
    SqlOnlineStore(uow.connection).set_payment_request_status(request.id, after, now)
    request = replace(request, status=after, updated_at=now)
    events.emit(uow, merchant_id, "payment_request.paid", requests_service.to_json(request, base_url), now)
    return _hold_if_escrow(uow, vault, request, payment, now, base_url)


def _hold_if_escrow(uow: UnitOfWork, vault: Vault | None, request: PaymentRequest, payment: Payment, now: datetime,
                    base_url: str) -> PaymentRequest:
    """A paid escrow request is ``held`` (its money sits in ``merchant_escrow``) until released;
    the buyer's signed link (services/escrow.py) goes to the cardholder's phone."""
    if not request.terms.escrow:
        return request
    from paypos.services import escrow  # escrow builds on this module's postings

    SqlEscrowStore(uow.connection).add_escrow(new_escrow(request.id, request.merchant_id, payment.id, now))
    request = _move(uow, request, Event.HOLD, now)
    if vault is not None:
        escrow.send_buyer_link(uow, vault, request, payment.card_id, now, base_url)
    return request


def cancel(uow: UnitOfWork, merchant_id: str, request_id: str, *, now: datetime) -> PaymentRequest:
    """Cancel an unpaid request, or void the hold of a ``requires_capture`` one."""
    request = merchant_request(uow, merchant_id, request_id, now)
    if request.status is not Status.REQUIRES_CAPTURE:
        return requests_service.cancel(uow, merchant_id, request_id, now)
    after = pr.transition(request.status, Event.VOID)
    payment = paid_attempt(uow, request)
    try:
        post_chain(uow, [TransferRequest(f"{payment.id}:void", kind=TransferKind.VOID_PENDING,
                                    pending_id=f"{payment.id}:hold", code="online_void")], now)
    except HoldExpired:
        pass  # the ledger already released it: canceling only records that
    SqlPaymentStore(uow.connection).update_payment(
        replace(payment, status=op.payment_transition(payment.status, PaymentEvent.VOID), updated_at=now))
    SqlOnlineStore(uow.connection).set_payment_request_status(request.id, after, now)
    return replace(request, status=after, updated_at=now)


def refund(uow: UnitOfWork, vault: Vault, merchant_id: str, request_id: str, amount: int | None,
           reason: str | None, *, now: datetime, random: Random = secrets.token_bytes) -> Refund:
    """Return all or part of what is left of the payment to the original card."""
    request = merchant_request(uow, merchant_id, request_id, now)
    if request.status not in _REFUNDABLE:
        raise IllegalTransition(request.status, Event.REFUND_PARTIAL)
    return refund_payment(uow, vault, request, amount, reason, now=now, random=random)


def refund_payment(uow: UnitOfWork, vault: Vault, request: PaymentRequest, amount: int | None, reason: str | None,
                   *, now: datetime, random: Random = secrets.token_bytes) -> Refund:
    """Refund the locked ``request``'s payment (the state machine says whether its state may)."""
    merchant_id = request.merchant_id
    payment = paid_attempt(uow, request)
    disputed = SqlEscrowStore(uow.connection).disputed_minor(payment.id)  # a chargeback already took it
    refunded = op.refund_amount(replace(payment, refunded_minor=payment.refunded_minor + disputed), amount)
    text = op.refund_reason(reason)
    full = refunded + disputed == payment.refundable_minor
    after = pr.transition(request.status, Event.REFUND_FULL if full else Event.REFUND_PARTIAL)
    item = Refund(id=op.new_refund_id(random(op.ID_RANDOM_BYTES)), payment_id=payment.id,
                  payment_request_id=request.id, merchant_id=merchant_id, amount_minor=refunded,
                  currency=payment.currency, reason=text, source=_funds_code(payment), status="succeeded",
                  created_at=now)
    if payment.method is Method.WALLET:
        _refund_wallet(uow, vault, payment, item, now)
    else:
        _refund_card(uow, request, payment, item, now)
    store = SqlPaymentStore(uow.connection)
    store.update_payment(replace(payment, refunded_minor=payment.refunded_minor + refunded, updated_at=now))
    store.add_refund(item)
    SqlOnlineStore(uow.connection).set_payment_request_status(request.id, after, now)
    events.emit(uow, merchant_id, "refund.succeeded", refund_json(item), now)
    return item


def _refund_card(uow: UnitOfWork, request: PaymentRequest, payment: Payment, item: Refund, now: datetime) -> None:
    card = uow.registry.get_card(payment.card_id or "")
    if card is None:
        raise LedgerRefused(f"payment {payment.id}: its card disappeared")
    source = _merchant_account(uow, payment)
    chain = [TransferRequest(f"{item.id}:refund", source, card_account(uow, card, payment.currency),
                             item.amount_minor, payment.currency, code="refund")]
    if payment.escrow and item.amount_minor == payment.refundable_minor:
        # The escrow holds captured − fee − refunded: the last refund out of it returns the
        # sale's fee too, so the buyer gets all back and the escrow ends at exactly zero.
        fee = sale_fee(uow, payment)
        if fee:
            chain.insert(0, TransferRequest(f"{item.id}:fee_return", ledger_account(uow, "platform", "fees_revenue",
                                            payment.currency), source, fee, payment.currency,
                                            code="fee_return", linked=True))
    refused = post_chain(uow, chain, now)
    if refused is not None:
        raise InsufficientBalance(f"the merchant's {item.source} balance cannot fund a refund of "
                                  f"{item.amount_minor} minor units")
    _notify_cardholder(uow, card, request, item.amount_minor, item.id, now, refund=True)


def _refund_wallet(uow: UnitOfWork, vault: Vault, payment: Payment, item: Refund, now: datetime) -> None:
    """Back through the wallet, to whatever funded the trade (balance, card or credit pay)."""
    from paypos.services import wallet  # the wallet's settlement imports the checkout, which imports this

    trade = uow.wallet.get_trade(payment.wallet_trade_no or "")
    app = uow.wallet.get_app(trade.app_id) if trade else None
    if trade is None or app is None:
        raise LedgerRefused(f"payment {payment.id}: its wallet trade disappeared")
    try:
        wallet.refund(uow, vault, now, app, {"out_trade_no": trade.out_trade_no, "out_request_no": item.id,
                                             "refund_amount": alipay.format_amount(item.amount_minor),
                                             "refund_reason": item.reason})
    except WalletError as error:
        raise InsufficientBalance(f"the wallet refused the refund: {error.message}") from None


# --- reads ------------------------------------------------------------------------------------

def get_payment(uow: UnitOfWork, merchant_id: str, payment_id: str) -> Payment:
    found = SqlPaymentStore(uow.connection).get_payment(payment_id, merchant_id)
    if found is None:
        raise PaymentNotFound("payment", payment_id)
    return found


def get_refund(uow: UnitOfWork, merchant_id: str, refund_id: str) -> Refund:
    found = SqlPaymentStore(uow.connection).get_refund(refund_id, merchant_id)
    if found is None:
        raise PaymentNotFound("refund", refund_id)
    return found


def list_payments(uow: UnitOfWork, merchant_id: str, *, limit: int, cursor: str | None,
                  request_id: str | None = None) -> requests_service.Page[Payment]:
    """The merchant's payments (attempts), newest first, optionally of one request."""
    after = requests_service.decode_cursor(cursor, op.is_payment_id) if cursor else None
    rows = SqlPaymentStore(uow.connection).list_payments(merchant_id, limit=limit + 1, after=after,
                                                         request_id=request_id)
    return _page(rows, limit)


def list_refunds(uow: UnitOfWork, merchant_id: str, *, limit: int, cursor: str | None,
                 payment_id: str | None = None, request_id: str | None = None) -> requests_service.Page[Refund]:
    after = requests_service.decode_cursor(cursor, op.is_refund_id) if cursor else None
    rows = SqlPaymentStore(uow.connection).list_refunds(merchant_id, limit=limit + 1, after=after,
                                                        payment_id=payment_id, request_id=request_id)
    return _page(rows, limit)


def _page(rows: list[Row], limit: int) -> requests_service.Page[Row]:
    data = rows[:limit]
    has_more = len(rows) > limit
    return requests_service.Page(data, has_more, requests_service.encode_cursor(data[-1]) if has_more else None)


def balances(uow: UnitOfWork, merchant_id: str) -> list[dict[str, Any]]:
    """Per currency, from the ledger: pending (captured, not settled), available, escrow, and
    authorized (holds not yet captured)."""
    by_currency: dict[str, dict[str, Any]] = {}
    for account in uow.ledger.list_accounts([merchant_owner(merchant_id)]):
        row = by_currency.setdefault(account.currency, {"currency": account.currency, "pending": 0,
                                                        "available": 0, "escrow": 0, "authorized": 0})
        name = account.code.removeprefix("merchant_")
        if name in ("pending", "available", "escrow"):
            row[name] += account.balances.net_posted
            row["authorized"] += account.balances.credits_pending
    return [by_currency[c] for c in sorted(by_currency)]


def payment_json(payment: Payment) -> dict[str, Any]:
    challenge = payment.challenge
    return {
        "id": payment.id, "object": "payment", "payment_request": payment.payment_request_id,
        "method": payment.method.value, "status": payment.status.value, "amount": payment.amount_minor,
        "currency": payment.currency, "amount_captured": payment.captured_minor,
        "amount_refunded": payment.refunded_minor, "escrow": payment.escrow, "settled": payment.settled,
        "card": {"masked_pan": payment.masked_pan} if payment.masked_pan else None,
        "wallet_trade_no": payment.wallet_trade_no,
        "failure_code": payment.failure_code, "failure_reason": payment.failure_reason,
        "challenge": {"tries_left": challenge.tries_left, "expires_at": _iso(challenge.expires_at)}
        if challenge and payment.status is PaymentStatus.REQUIRES_CHALLENGE else None,
        "created_at": _iso(payment.created_at), "updated_at": _iso(payment.updated_at),
    }


def refund_json(item: Refund) -> dict[str, Any]:
    return {"id": item.id, "object": "refund", "payment": item.payment_id,
            "payment_request": item.payment_request_id, "amount": item.amount_minor, "currency": item.currency,
            "reason": item.reason, "source": item.source, "status": item.status, "created_at": _iso(item.created_at)}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
