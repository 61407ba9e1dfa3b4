"""Participants that move money (ledger chains) or answer from the books.

Transfer ids derive from the request's identity (41, 7, 11), so a request can
never post twice: the ledger answers ``exists`` to a second attempt.
"""

from __future__ import annotations

from dataclasses import dataclass

from paypos import limits
from paypos.authorization.context import AuthContext
from paypos.authorization.participants import _Base, original_identity
from paypos.authorization.result import Decline, Result
from paypos.authorization.wallet import cancel_wallet_payment, is_wallet_payment
from paypos.domain.ledger import TransferKind, TransferRequest, TransferResult
from paypos.domain.pricing import card_present_method, fee_for
from paypos.networks.sandbox.catalog import ACCOUNT_CODE_FOR_FUNDING

_FUNDS_REFUSED = {TransferResult.EXCEEDS_CREDITS, TransferResult.EXCEEDS_DEBITS}


def transfer_ref(ctx: AuthContext) -> str:
    return f"{ctx.terminal_id}:{ctx.transmission_dt}:{ctx.stan}"


def _account(ctx: AuthContext, owner_ref: str, code: str) -> int:
    account_id = ctx.uow.ledger.find_account_id(owner_ref, code, ctx.currency_alpha)
    if account_id is None:
        raise Decline(Result.SYSTEM_MALFUNCTION, f"ledger account {owner_ref} {code} {ctx.currency_alpha} missing")
    return account_id


def card_account(ctx: AuthContext) -> int:
    funding = ctx.require("funding_card")
    return _account(ctx, f"card:{funding.card_id}", ACCOUNT_CODE_FOR_FUNDING[funding.funding])  # type: ignore[attr-defined]


def merchant_account(ctx: AuthContext, code: str = "merchant_pending") -> int:
    return _account(ctx, f"merchant:{ctx.require('merchant').merchant_id}", code)  # type: ignore[attr-defined]


def fees_account(ctx: AuthContext) -> int:
    return _account(ctx, "platform", "fees_revenue")


def post(ctx: AuthContext, requests: list[TransferRequest]) -> None:
    """Post a chain in the host's unit of work; refusals become one canonical result."""
    outcomes = ctx.uow.ledger.create_transfers(requests, ctx.now)
    for outcome in outcomes:
        if outcome.result in _FUNDS_REFUSED:
            raise Decline(Result.INSUFFICIENT_FUNDS, f"ledger: {outcome.result.value}")
    failed = [o for o in outcomes if not o.result.ok]
    if failed:
        raise Decline(Result.SYSTEM_MALFUNCTION, f"ledger refused {failed[0].id}: {failed[0].result.value}")


def price(ctx: AuthContext, amount: int) -> int:
    """The merchant's fee for a card-present payment from the plan in force (cached: no
    statement), priced by the card's funding and field 22; remembered for the journal."""
    funding = ctx.require("funding_card").funding.value  # type: ignore[attr-defined]
    # A completion is priced as the pre-authorization was read (its field 22).
    held = ctx.original is not None and ctx.original.kind == "preauth"
    method = card_present_method(funding, ctx.original.entry_mode if held else ctx.request.get("22"))  # type: ignore[union-attr]
    ctx.method = method.value
    plan = ctx.uow.pricing.plan_at(ctx.require("merchant").merchant_id, ctx.currency_alpha,  # type: ignore[attr-defined]
                                   ctx.now)
    ctx.fee_minor = fee_for(plan, method, amount, ctx.now)
    return ctx.fee_minor


def sale_chain(ctx: AuthContext, base: str, amount: int) -> list[TransferRequest]:
    """Cardholder → merchant pending (amount), merchant pending → platform fees (fee): one atomic chain."""
    card, merchant, fees = card_account(ctx), merchant_account(ctx), fees_account(ctx)
    price(ctx, amount)
    chain = [TransferRequest(f"{base}:sale", card, merchant, amount, ctx.currency_alpha, code="sale",
                             linked=ctx.fee_minor > 0)]
    if ctx.fee_minor > 0:
        chain.append(TransferRequest(f"{base}:fee", merchant, fees, ctx.fee_minor, ctx.currency_alpha,
                                     code="fee"))
    return chain


class PostSale(_Base):
    name = "ledger"

    def prepare(self, ctx: AuthContext) -> None:
        post(ctx, sale_chain(ctx, transfer_ref(ctx), ctx.amount_minor))


class PlaceHold(_Base):
    """Pre-authorization: a pending transfer that expires unless completed."""

    name = "ledger"

    def prepare(self, ctx: AuthContext) -> None:
        card, merchant = card_account(ctx), merchant_account(ctx)
        post(ctx, [TransferRequest(f"{transfer_ref(ctx)}:hold", card, merchant, ctx.amount_minor,
                                   ctx.currency_alpha, kind=TransferKind.PENDING,
                                   timeout_s=limits.preauth_hold_s_default, code="preauth")])


class CompleteHold(_Base):
    """0220 completion advice: post (all or part of) the pre-authorization field 90 names."""

    name = "ledger"

    def prepare(self, ctx: AuthContext) -> None:
        named = original_identity(ctx)
        original = ctx.uow.host.transaction_by_identity(ctx.terminal_id, named.stan, named.transmission_datetime)
        if original is None or original.kind != "preauth" or original.status != "approved":
            raise Decline(Result.INVALID_TRANSACTION, "field 90 names no open pre-authorization")
        if ctx.amount_minor > original.amount_minor:
            raise Decline(Result.INVALID_AMOUNT, "completion above the pre-authorized amount")
        ctx.original = original
        ctx.card = ctx.uow.registry.get_card(original.card_id or "")
        ctx.funding_card = ctx.card if ctx.card is None or not ctx.card.token_for_card_id else \
            ctx.uow.registry.get_card(ctx.card.token_for_card_id)
        base = transfer_ref(ctx)
        merchant, fees = merchant_account(ctx), fees_account(ctx)
        price(ctx, ctx.amount_minor)
        chain = [TransferRequest(f"{base}:post", kind=TransferKind.POST_PENDING, pending_id=f"{original.transfer_ref}:hold",
                                 amount=ctx.amount_minor, linked=ctx.fee_minor > 0, code="completion")]
        if ctx.fee_minor:
            chain.append(TransferRequest(f"{base}:fee", merchant, fees, ctx.fee_minor, ctx.currency_alpha, code="fee"))
        post(ctx, chain)
        ctx.uow.host.update_transaction(original.id, status="completed", completed_minor=ctx.amount_minor)


class Refund(_Base):
    """200000: with field 37, at most the original's unrefunded amount; without, from available funds."""

    name = "ledger"

    def prepare(self, ctx: AuthContext) -> None:
        card = card_account(ctx)
        rrn = ctx.request.get("37", "").strip()
        if rrn:
            original = ctx.uow.host.transaction_by_rrn(ctx.require("merchant").merchant_id, rrn)  # type: ignore[attr-defined]
            if original is None or original.kind not in ("purchase", "completion") or original.status not in ("approved", "completed"):
                raise Decline(Result.INVALID_TRANSACTION, "field 37 names no approved sale of this merchant")
            if original.card_id not in (ctx.require("card").card_id,):  # type: ignore[attr-defined]
                raise Decline(Result.INVALID_TRANSACTION, "refund to another card than the sale's")
            if ctx.amount_minor > original.amount_minor - original.refunded_minor:
                raise Decline(Result.INVALID_AMOUNT, "refund above the unrefunded amount")
            ctx.original = original
            source = merchant_account(ctx)
            ctx.uow.host.update_transaction(original.id, refunded_minor=original.refunded_minor + ctx.amount_minor)
        else:
            source = merchant_account(ctx, "merchant_available")
        post(ctx, [TransferRequest(f"{transfer_ref(ctx)}:refund", source, card, ctx.amount_minor,
                                   ctx.currency_alpha, code="refund")])


class BalanceInquiry(_Base):
    name = "balance"

    def prepare(self, ctx: AuthContext) -> None:
        funding = ctx.require("funding_card")
        if funding.funding.value != "prepaid":  # type: ignore[attr-defined]
            raise Decline(Result.NOT_PERMITTED_TO_CARDHOLDER, "balance inquiry is for prepaid cards")
        account = ctx.uow.ledger.get_account(card_account(ctx))  # fresh: balances are never cached
        ctx.balance_minor = account.balances.available_credit_balance if account else 0


class Reverse(_Base):
    """0400 / 0420: undo the original named in field 90 (a wallet payment: the wallet cancels
    it); remember a reversal that came first."""

    name = "reversal"

    def prepare(self, ctx: AuthContext) -> None:
        named = original_identity(ctx)
        original = ctx.uow.host.transaction_by_identity(ctx.terminal_id, named.stan, named.transmission_datetime)
        if original is None:
            ctx.uow.host.add_tombstone(ctx.terminal_id, named.stan, named.transmission_datetime, ctx.now)
            raise Decline(Result.NO_ACTION_TAKEN, "original unknown: remembered, a late original will be refused")
        ctx.original = original
        ctx.currency_alpha = original.currency
        ctx.amount_minor = original.amount_minor
        if is_wallet_payment(original):
            cancel_wallet_payment(ctx, original)  # the wallet undoes its own postings
            return
        if original.status != "approved":
            return  # declined or already reversed: nothing (more) to undo
        if original.kind in ("purchase", "completion") and original.refunded_minor:
            raise Decline(Result.INVALID_TRANSACTION, "a refunded sale cannot be reversed")
        post(ctx, self._undo(ctx, original))
        ctx.uow.host.update_transaction(original.id, status="reversed")

    def _undo(self, ctx: AuthContext, original) -> list[TransferRequest]:  # type: ignore[no-untyped-def]
        base = original.transfer_ref
        if original.kind == "preauth":
            return [TransferRequest(f"{base}:void", kind=TransferKind.VOID_PENDING, pending_id=f"{base}:hold",
                                    code="reversal")]
        ctx.card = ctx.uow.registry.get_card(original.card_id or "")
        ctx.funding_card = ctx.card if ctx.card is None or not ctx.card.token_for_card_id else \
            ctx.uow.registry.get_card(ctx.card.token_for_card_id)
        card, merchant, fees = card_account(ctx), merchant_account(ctx), fees_account(ctx)
        currency_alpha = original.currency
        if original.kind == "refund":
            source = merchant if original.original_id else merchant_account(ctx, "merchant_available")
            return [TransferRequest(f"{base}:rev:refund", card, source, original.amount_minor, currency_alpha,
                                    code="reversal")]
        chain = [TransferRequest(f"{base}:rev:sale", merchant, card, original.amount_minor, currency_alpha,
                                 code="reversal", linked=original.fee_minor > 0)]
        if original.fee_minor:
            chain.append(TransferRequest(f"{base}:rev:fee", fees, merchant, original.fee_minor, currency_alpha,
                                         code="reversal"))
        return chain


@dataclass(frozen=True)
class Reconcile(_Base):
    """0500: the terminal's batch totals against the host's; equal → close the batch."""

    name: str = "reconcile"

    def prepare(self, ctx: AuthContext) -> None:
        state = ctx.require("terminal_state")
        totals = ctx.uow.host.batch_totals(ctx.terminal_id, state.batch_no)  # type: ignore[attr-defined]
        host = {"74": totals.credits_count, "76": totals.debits_count,
                "86": totals.credits_minor, "88": totals.debits_minor}
        try:
            sent = {name: int(ctx.request[name]) for name in host}
        except (KeyError, ValueError):
            raise Decline(Result.FORMAT_ERROR, "fields 74, 76, 86 and 88 must be numeric") from None
        if sent != host:
            ctx.response_extra = {"74": f"{totals.credits_count:010d}", "76": f"{totals.debits_count:010d}",
                                  "86": f"{totals.credits_minor:016d}", "88": f"{totals.debits_minor:016d}"}
            raise Decline(Result.RECONCILE_ERROR, f"terminal {sent} != host {host}")
        ctx.uow.host.update_terminal_state(ctx.terminal_id, ctx.now, batch_no=state.batch_no + 1)  # type: ignore[attr-defined]


class NetworkManagement(_Base):
    name = "network"

    def prepare(self, ctx: AuthContext) -> None:
        code = ctx.request.get("70", "")
        if code not in ("001", "002", "301"):
            raise Decline(Result.INVALID_TRANSACTION, f"field 70: unsupported network management code {code!r}")
        if code in ("001", "002"):
            ctx.uow.host.terminal_state(ctx.terminal_id, ctx.now)
            ctx.uow.host.update_terminal_state(ctx.terminal_id, ctx.now, signed_on=code == "001")
