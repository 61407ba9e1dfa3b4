"""The host's participants for wallet payments (docs/iso8583.md §5.8).

A terminal reaches a wallet through the host, with the same envelope (terminal, MAC,
duplicates, KSN) as for cards:

- 0200, processing code 000000, field 22 = 032 (bar code, no PIN): with field 2, the
  buyer's payment code is charged; without it, the host opens a collection code and
  answers 09 with its EMVCo payload in field 63;
- 0600 with field 90 naming that 0200: where the payment stands (00, 09 or how it ended);
- 0400 with field 90: cancel it (`posting.Reverse` hands wallet originals to
  `cancel_wallet_payment`).

The host journals a wallet payment like a card sale (kind purchase, no card, the masked
code or "QR", entry mode 03x) and follows it pending → approved / declined / reversed, so
that reconciliation counts approved wallet sales. The wallet makes the ledger postings
itself; the host posts nothing for a wallet payment.
"""

from __future__ import annotations

import dataclasses
import secrets

from paypos.adapters.db.host import HostTransaction
from paypos.authorization.context import AuthContext
from paypos.authorization.participants import _Base, original_identity
from paypos.authorization.result import Decline, Result, response_code, result_of
from paypos.networks.wallet import SandboxWallet, WalletNetwork, WalletPayment, WalletReply, wallet_reference
from paypos.protocol import paycode
from paypos.protocol.card import luhn_valid, mask_pan

# Field 22: 03 = bar code reader (ISO 8583:1987), 2 = no PIN.
WALLET_ENTRY_MODE = "032"
# What the journal shows for a merchant-presented (collection) code: no buyer account yet.
COLLECTION_ACCOUNT = "QR"
# Field 44 of a 0610 whose payment the terminal (or the host) cancelled.
CANCELLED_DETAIL = "TRADECANCELLED"
# Refusals that say nothing about the payment itself: the journal row stays pending.
_TRANSIENT = frozenset({Result.SYSTEM_MALFUNCTION, Result.ISSUER_UNAVAILABLE, Result.NOT_PERMITTED_TO_TERMINAL})


def wallet_network(ctx: AuthContext) -> WalletNetwork:
    """The wallet that serves this terminal's merchant (the sandbox wallet, for now)."""
    return SandboxWallet(ctx.uow, ctx.vault, ctx.now)


def is_wallet_payment(row: HostTransaction) -> bool:
    return row.card_id is None and (row.entry_mode or "")[:2] == WALLET_ENTRY_MODE[:2]


def _reference_of(row: HostTransaction) -> str:
    return wallet_reference(row.terminal_id, row.transmission_dt, row.stan)


def _new_approval_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def _apply(ctx: AuthContext, reply: WalletReply) -> None:
    """A wallet's reply as the pipeline's result: 44 and 63 for the response; a refusal declines."""
    if reply.detail:
        ctx.response_extra["44"] = reply.detail
    if reply.qr_payload:
        ctx.response_extra["63"] = reply.qr_payload
    if reply.result is Result.APPROVED:
        ctx.fee_minor, ctx.method = reply.fee_minor, reply.method
        ctx.reason = f"wallet: {reply.reason}"
        return
    if reply.result is Result.REQUEST_IN_PROGRESS:
        ctx.result, ctx.reason = Result.REQUEST_IN_PROGRESS, f"wallet: {reply.reason}"
        return
    raise Decline(reply.result, reply.reason)


class ValidateWalletPayment(_Base):
    """Field 22 = 032; field 2, when present, an 18-digit payment code with a Luhn check digit."""

    name = "validate-wallet"

    def prepare(self, ctx: AuthContext) -> None:
        request = ctx.request
        if request.get("22") != WALLET_ENTRY_MODE:
            raise Decline(Result.FORMAT_ERROR, "field 22: a wallet payment is 032 (bar code, no PIN)")
        card_fields = [name for name in ("14", "23", "35", "52", "55") if name in request]
        if card_fields:
            raise Decline(Result.FORMAT_ERROR, f"field {card_fields[0]}: not part of a wallet payment")
        code = request.get("2")
        if code is None:
            ctx.account_masked = COLLECTION_ACCOUNT
            return
        if len(code) != paycode.CODE_DIGITS or not luhn_valid(code):
            ctx.response_extra["44"] = "PAYCODEINVALID"
            raise Decline(Result.INVALID_CARD_NUMBER, "field 2: a payment code is 18 digits with a Luhn check digit")
        ctx.account_masked = mask_pan(code)


class WalletPay(_Base):
    """0200: charge the buyer's payment code (field 2), or open a collection code (no field 2)."""

    name = "wallet"

    def prepare(self, ctx: AuthContext) -> None:
        merchant = ctx.require("merchant")
        payment = WalletPayment(
            reference=wallet_reference(ctx.terminal_id, ctx.transmission_dt, ctx.stan),
            merchant_id=merchant.merchant_id,  # type: ignore[attr-defined]
            terminal_id=ctx.terminal_id, amount_minor=ctx.amount_minor, currency=ctx.currency_alpha,
            payment_code=ctx.request.get("2"),
        )
        network = wallet_network(ctx)
        _apply(ctx, network.pay(payment) if payment.payment_code else network.collect(payment))


class WalletStatus(_Base):
    """0600: where the wallet payment field 90 names stands; its journal row follows the wallet."""

    name = "wallet-status"

    def prepare(self, ctx: AuthContext) -> None:
        named = original_identity(ctx)
        original = ctx.uow.host.transaction_by_identity(ctx.terminal_id, named.stan, named.transmission_datetime)
        if original is None or named.mti != original.mti:
            raise Decline(Result.RECORD_NOT_FOUND, "field 90 names no transaction of this terminal")
        if not is_wallet_payment(original):
            raise Decline(Result.INVALID_TRANSACTION, "0600 asks after wallet payments only")
        ctx.original, ctx.amount_minor, ctx.currency_alpha = original, original.amount_minor, original.currency
        ctx.response_extra["37"] = original.rrn
        if original.status == "pending":
            original = self._follow(ctx, original)
        self._answer(ctx, original)

    @staticmethod
    def _follow(ctx: AuthContext, original: HostTransaction) -> HostTransaction:
        """Ask the wallet; a final answer is written to the journal row (once: the row is locked)."""
        reply = wallet_network(ctx).status(original.merchant_id, _reference_of(original))
        if reply.detail:
            ctx.response_extra["44"] = reply.detail
        if reply.result is Result.REQUEST_IN_PROGRESS:
            return original
        if reply.result in _TRANSIENT:
            raise Decline(reply.result, reply.reason)
        if reply.result is Result.APPROVED:
            values: dict[str, object] = {"status": "approved", "response_code": response_code(Result.APPROVED),
                                         "approval_code": _new_approval_code(), "fee_minor": reply.fee_minor,
                                         "method": reply.method}
        else:
            values = {"status": "declined", "response_code": response_code(reply.result)}
        ctx.uow.host.update_transaction(original.id, **values)
        ctx.reason = f"wallet: {reply.reason}"
        return dataclasses.replace(original, **values)  # type: ignore[arg-type]

    @staticmethod
    def _answer(ctx: AuthContext, original: HostTransaction) -> None:
        if original.status == "approved":
            if original.approval_code:
                ctx.response_extra["38"] = original.approval_code
            return
        if original.status == "pending":
            ctx.result, ctx.reason = Result.REQUEST_IN_PROGRESS, ctx.reason or "waiting for the buyer"
            return
        if original.status == "reversed":
            ctx.response_extra["44"] = CANCELLED_DETAIL
            raise Decline(Result.DO_NOT_HONOUR, "the payment was cancelled")
        raise Decline(result_of(original.response_code), ctx.reason or "the payment was refused")


def cancel_wallet_payment(ctx: AuthContext, original: HostTransaction) -> None:
    """0400 of a wallet payment: the wallet closes it (unpaid) or refunds it (paid)."""
    if original.status not in ("pending", "approved"):
        return  # declined or already reversed: nothing (more) to undo
    reply = wallet_network(ctx).cancel(original.merchant_id, _reference_of(original))
    if reply.result is not Result.APPROVED:
        if reply.detail:
            ctx.response_extra["44"] = reply.detail
        raise Decline(reply.result, reply.reason)
    ctx.uow.host.update_transaction(original.id, status="reversed")
