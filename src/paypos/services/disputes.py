"""Disputes (chargebacks) of card payments of the online POS (issue 6, docs/escrow-disputes.md).

The sandbox issuer opens one on a captured card payment with a Visa reason code
(``domain.dispute.REASON_CODES``). Opening posts the linked chain ``<dp>:open`` (the disputed
amount, merchant → the platform's ``disputes_clearing``) and ``<dp>:fee`` (the dispute fee,
merchant → ``fees_revenue``), from ``merchant_pending``, or ``merchant_available`` once the
payment settled. The merchant submits evidence before ``evidence_due_by``. The issuer closes
it: *won* posts ``<dp>:won`` (disputes_clearing → the merchant account it came from), *lost*
posts ``<dp>:lost`` (disputes_clearing → the cardholder's card account). The fee is never
returned. A request still in escrow cannot be disputed here (the buyer's escrow refund request
is the path). Transfer ids derive from the dispute id, so a retry never posts twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from paypos import limits
from paypos.adapters.db.escrow import SqlEscrowStore
from paypos.adapters.db.online import SqlOnlineStore
from paypos.adapters.db.payments import SqlPaymentStore
from paypos.adapters.db.uow import UnitOfWork
from paypos.domain import dispute as rules
from paypos.domain import payment_request as pr
from paypos.domain.dispute import Dispute, DisputeEvent, DisputeStatus
from paypos.domain.ledger import TransferRequest
from paypos.domain.online_payment import Method, Payment, PaymentStatus
from paypos.services import events
from paypos.services import online_payments as payments
from paypos.services import payment_requests as requests_service
from paypos.services.sandbox import PLATFORM, merchant_owner

Random = Callable[[int], bytes]


class DisputeNotFound(LookupError):
    def __init__(self, what: str, object_id: str) -> None:
        super().__init__(f"no {what} {object_id!r}")


class NotDisputable(Exception):
    """The payment (or its request) is in a state no dispute can be opened from (a 409)."""

    def __init__(self, message: str, current_state: str) -> None:
        super().__init__(message)
        self.current_state = current_state


def open_dispute(uow: UnitOfWork, payment_id: str, reason_code: object, amount: int | None, *, now: datetime,
                 random: Random = secrets.token_bytes) -> Dispute:
    """The sandbox issuer's chargeback: amount and fee leave the merchant; ``dispute.opened``."""
    payment = SqlPaymentStore(uow.connection).get_payment(payment_id, lock=True)
    if payment is None:
        raise DisputeNotFound("payment", payment_id)
    code = rules.reason_code(reason_code)
    _check_disputable(uow, payment)
    store = SqlEscrowStore(uow.connection)
    disputed = rules.disputed_amount(amount, payment.refundable_minor - store.disputed_minor(payment.id))
    dispute = Dispute(
        id=rules.new_id(random(rules.ID_RANDOM_BYTES)), payment_id=payment.id,
        payment_request_id=payment.payment_request_id, merchant_id=payment.merchant_id, amount_minor=disputed,
        currency=payment.currency, fee_minor=limits.dispute_fee_minor, reason_code=code,
        status=DisputeStatus.NEEDS_RESPONSE, source="merchant_available" if payment.settled else "merchant_pending",
        evidence_text=None, evidence_submitted_at=None, evidence_due_by=rules.evidence_due_by(now), closed_at=None,
        created_at=now, updated_at=now)
    merchant, clearing = _merchant_account(uow, dispute), _clearing(uow, dispute.currency)
    chain = [TransferRequest(f"{dispute.id}:open", merchant, clearing, disputed, dispute.currency,
                             code="dispute", linked=dispute.fee_minor > 0)]
    if dispute.fee_minor:
        chain.append(TransferRequest(f"{dispute.id}:fee", merchant, payments.ledger_account(
            uow, PLATFORM, "fees_revenue", dispute.currency), dispute.fee_minor, dispute.currency,
            code="dispute_fee"))
    if payments.post_chain(uow, chain, now) is not None:
        raise payments.InsufficientBalance(f"the merchant's {dispute.source} balance cannot fund the dispute")
    store.add_dispute(dispute)
    events.emit(uow, dispute.merchant_id, "dispute.opened", to_json(dispute), now)
    return dispute


def _check_disputable(uow: UnitOfWork, payment: Payment) -> None:
    if payment.method is not Method.CARD or payment.status is not PaymentStatus.SUCCEEDED:
        raise NotDisputable(f"payment {payment.id} is a {payment.method.value} payment in state "
                            f"{payment.status.value}; only captured card payments can be disputed",
                            payment.status.value)
    request = SqlOnlineStore(uow.connection).get_payment_request(None, payment.payment_request_id, lock=True)
    if request is not None and request.status in pr.ESCROW_STATES:
        raise NotDisputable(f"payment request {request.id} is {request.status.value} (in escrow): the buyer "
                            "asks for a refund from the escrow instead", request.status.value)


def submit_evidence(uow: UnitOfWork, merchant_id: str, dispute_id: str, text: object, *, now: datetime) -> Dispute:
    """The merchant's evidence, before ``evidence_due_by`` (after: 409 naming the state)."""
    dispute = _get(uow, dispute_id, merchant_id, lock=True)
    evidence = rules.evidence(dispute, text, now)
    dispute = replace(dispute, status=rules.dispute_transition(dispute.status, DisputeEvent.SUBMIT_EVIDENCE),
                      evidence_text=evidence, evidence_submitted_at=now, updated_at=now)
    SqlEscrowStore(uow.connection).update_dispute(dispute)
    return dispute


def close_dispute(uow: UnitOfWork, dispute_id: str, outcome: str, *, now: datetime) -> Dispute:
    """The sandbox issuer decides: won → the amount back to the merchant; lost → to the card."""
    dispute = _get(uow, dispute_id, None, lock=True)
    event = {"won": DisputeEvent.WIN, "lost": DisputeEvent.LOSE}.get(outcome)
    if event is None:
        raise rules.DisputeError("outcome must be 'won' or 'lost'", field="outcome")
    after = rules.dispute_transition(dispute.status, event)
    clearing = _clearing(uow, dispute.currency)
    if after is DisputeStatus.WON:
        target = _merchant_account(uow, dispute)
    else:
        payment = SqlPaymentStore(uow.connection).get_payment(dispute.payment_id)
        card = uow.registry.get_card(payment.card_id or "") if payment else None
        if card is None:
            raise payments.LedgerRefused(f"dispute {dispute.id}: its payment's card disappeared")
        target = payments.card_account(uow, card, dispute.currency)
    payments.post_chain(uow, [TransferRequest(f"{dispute.id}:{after.value}", clearing, target, dispute.amount_minor,
                                              dispute.currency, code=f"dispute_{after.value}")], now)
    dispute = replace(dispute, status=after, closed_at=now, updated_at=now)
    SqlEscrowStore(uow.connection).update_dispute(dispute)
    events.emit(uow, dispute.merchant_id, "dispute.closed", to_json(dispute), now)
    return dispute


def get(uow: UnitOfWork, merchant_id: str | None, dispute_id: str) -> Dispute:
    """The merchant's dispute (``merchant_id=None``: the sandbox issuer, which sees all)."""
    return _get(uow, dispute_id, merchant_id)


def list_disputes(uow: UnitOfWork, merchant_id: str, *, limit: int,
                  cursor: str | None) -> requests_service.Page[Dispute]:
    after = requests_service.decode_cursor(cursor, rules.is_id) if cursor else None
    rows = SqlEscrowStore(uow.connection).list_disputes(merchant_id, limit=limit + 1, after=after)
    data, has_more = rows[:limit], len(rows) > limit
    return requests_service.Page(data, has_more, requests_service.encode_cursor(data[-1]) if has_more else None)


def to_json(dispute: Dispute) -> dict[str, Any]:
    return {
        "id": dispute.id, "object": "dispute", "payment": dispute.payment_id,
        "payment_request": dispute.payment_request_id, "amount": dispute.amount_minor, "currency": dispute.currency,
        "fee": dispute.fee_minor, "reason_code": dispute.reason_code,
        "reason": rules.REASON_CODES[dispute.reason_code], "status": dispute.status.value,
        "source": dispute.source, "evidence": dispute.evidence_text,
        "evidence_submitted_at": _iso(dispute.evidence_submitted_at), "evidence_due_by": _iso(dispute.evidence_due_by),
        "closed_at": _iso(dispute.closed_at), "created_at": _iso(dispute.created_at),
    }


def _get(uow: UnitOfWork, dispute_id: str, merchant_id: str | None, *, lock: bool = False) -> Dispute:
    found = SqlEscrowStore(uow.connection).get_dispute(dispute_id, merchant_id, lock=lock)
    if found is None:
        raise DisputeNotFound("dispute", dispute_id)
    return found


def _merchant_account(uow: UnitOfWork, dispute: Dispute) -> int:
    return payments.ledger_account(uow, merchant_owner(dispute.merchant_id), dispute.source, dispute.currency)


def _clearing(uow: UnitOfWork, alpha: str) -> int:
    # Opened on first use too: a data dir initialised before disputes existed has none yet.
    return uow.ledger.open_account(PLATFORM, PLATFORM, "disputes_clearing", alpha).id


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
