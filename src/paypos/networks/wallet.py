"""Wallet networks behind one interface; the sandbox wallet that answers inside the
host's unit of work.

The acquiring host asks a wallet four things, whatever the wallet: charge the buyer's
payment code (customer-presented), open a collection code for the terminal to show
(merchant-presented), the state of a payment, and cancel it. A wallet speaks its own
gateway language; this module is the one place where it is translated: a `WalletReply`
carries one canonical `Result` and the ISO 8583 field 44 text, so the host's participants
never see a wallet's error codes (docs/iso8583.md §5.8).

A payment is named by the terminal's request identity: ``reference`` (the wallet's
``out_trade_no``) is fields 41 + 7 + 11 of the 0200 that opened it, so a retried request
finds its trade instead of opening a second one.

The sandbox wallet's rules (payment codes, confirmation limit, trades, the ledger chains
balance → merchant pending + fee) are `paypos.services.wallet`, shared with the REST
gateway; the host never posts a wallet payment to the ledger itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import Vault
from paypos.authorization.result import Result
from paypos.domain.money import MoneyError, currency
from paypos.domain.pricing import wallet_method
from paypos.domain.wallet import TRADE_CLOSED, TRADE_FINISHED, TRADE_SUCCESS, WAIT_BUYER_PAY, WalletApp, WalletError
from paypos.protocol import alipay
from paypos.services import wallet as sandbox_wallet

# ISO 8583:1987 field 44, additional response data: an..25 (letters and digits only).
DETAIL_CHARS_MAX = 25
# The wallet's amounts are yuan with 2 decimals (alipay.format_amount).
WALLET_CURRENCY_EXPONENT = 2


@dataclass(frozen=True, slots=True)
class WalletPayment:
    reference: str  # fields 41 + 7 + 11 of the opening 0200: the wallet's out_trade_no
    merchant_id: str
    terminal_id: str
    amount_minor: int
    currency: str  # ISO 4217 alpha
    payment_code: str | None = None  # the buyer's code; None: open a collection code instead


@dataclass(frozen=True, slots=True)
class WalletReply:
    """``result``: APPROVED paid, REQUEST_IN_PROGRESS waiting for the buyer, else the refusal."""

    result: Result
    reason: str  # for the host's log
    detail: str | None = None  # field 44
    qr_payload: str | None = None  # the EMVCo collection payload (field 63)
    fee_minor: int = 0  # what the wallet charged the merchant, when paid
    method: str | None = None  # domain.pricing.PaymentMethod of a paid trade (by its funding)


class WalletNetwork(Protocol):
    def pay(self, payment: WalletPayment) -> WalletReply:
        """Charge the buyer's payment code (``payment.payment_code``)."""

    def collect(self, payment: WalletPayment) -> WalletReply:
        """Open a collection code for the terminal to show; REQUEST_IN_PROGRESS with the payload."""

    def status(self, merchant_id: str, reference: str) -> WalletReply:
        """Where the payment ``reference`` stands: paid, waiting, or how it ended."""

    def cancel(self, merchant_id: str, reference: str) -> WalletReply:
        """Close an unpaid payment; refund a paid one. APPROVED when nothing is left to undo."""


def wallet_reference(terminal_id: str, transmission_dt: str, stan: str) -> str:
    """The wallet's ``out_trade_no`` of a terminal's 0200: 41 + 7 + 11 (24 characters)."""
    return f"{terminal_id}{transmission_dt}{stan}"


# --- refusals: a wallet's error codes → one canonical result and field 44 ---------------------

_CODE_REFUSALS: dict[str, tuple[Result, str]] = {
    "unknown": (Result.INVALID_CARD_NUMBER, "PAYCODEUNKNOWN"),
    "malformed": (Result.INVALID_CARD_NUMBER, "PAYCODEINVALID"),
    "expired": (Result.EXPIRED_CARD, "PAYCODEEXPIRED"),
    "reused": (Result.RESTRICTED_CARD, "PAYCODEREUSED"),
}
_REFUSALS: dict[str, tuple[Result, str]] = {
    "ACQ.BUYER_BALANCE_NOT_ENOUGH": (Result.INSUFFICIENT_FUNDS, "BALANCENOTENOUGH"),
    "insufficient_funds": (Result.INSUFFICIENT_FUNDS, "BALANCENOTENOUGH"),
    "currency_mismatch": (Result.NOT_PERMITTED_TO_CARDHOLDER, "CURRENCYMISMATCH"),
    "user_inactive": (Result.RESTRICTED_CARD, "BUYERINACTIVE"),
    "ACQ.TRADE_NOT_EXIST": (Result.RECORD_NOT_FOUND, "TRADENOTFOUND"),
    "ACQ.TRADE_HAS_CLOSE": (Result.DO_NOT_HONOUR, "TRADECLOSED"),
    "ACQ.TRADE_HAS_SUCCESS": (Result.INVALID_TRANSACTION, "TRADEALREADYPAID"),
    "ACQ.TRADE_STATUS_ERROR": (Result.INVALID_TRANSACTION, "TRADESTATUSERROR"),
    "ACQ.CONTEXT_INCONSISTENT": (Result.INVALID_TRANSACTION, "TRADEMISMATCH"),
    "ACQ.TOTAL_FEE_EXCEED": (Result.INVALID_AMOUNT, "AMOUNTTOOLARGE"),
    "ACQ.ACCESS_FORBIDDEN": (Result.NOT_PERMITTED_TO_TERMINAL, "MERCHANTNOTALLOWED"),
    "ACQ.INVALID_PARAMETER": (Result.FORMAT_ERROR, "INVALIDPARAMETER"),
    "ACQ.SYSTEM_ERROR": (Result.SYSTEM_MALFUNCTION, "WALLETERROR"),
}
_DETAILS = [detail for _, detail in (*_CODE_REFUSALS.values(), *_REFUSALS.values())]
if any(len(d) > DETAIL_CHARS_MAX or not d.isalnum() for d in _DETAILS):  # a programmer error
    raise RuntimeError(f"field 44 texts must be 1-{DETAIL_CHARS_MAX} letters and digits")

NO_WALLET_APP = WalletReply(Result.NOT_PERMITTED_TO_TERMINAL, "the merchant takes no wallet payments",
                            "WALLETNOTENABLED")


def refusal(error: WalletError) -> WalletReply:
    """The canonical answer to a wallet's refusal."""
    if error.code == "ACQ.PAYMENT_AUTH_CODE_INVALID":
        result, detail = _CODE_REFUSALS.get(error.reason or "unknown", _CODE_REFUSALS["unknown"])
    else:
        result, detail = _REFUSALS.get(error.code, (Result.DO_NOT_HONOUR, "WALLETREFUSED"))
    return WalletReply(result, f"wallet {error.code}: {error.message}", detail)


# --- the sandbox wallet -----------------------------------------------------------------------


class SandboxWallet:
    """The sandbox wallet (`paypos.services.wallet`), working inside the host's unit of work.

    Each call runs in a savepoint: a refusal rolls back whatever the wallet wrote before it
    refused (a payment code marked used before the balance ran short, say), while the host
    still journals and answers the refusal in its own transaction.
    """

    def __init__(self, uow: UnitOfWork, vault: Vault, now: datetime) -> None:
        self._uow, self._vault, self._now = uow, vault, now

    def pay(self, payment: WalletPayment) -> WalletReply:
        checked = self._check_currency(payment)
        if checked is not None:
            return checked
        biz = self._biz(payment) | {"scene": "bar_code", "auth_code": payment.payment_code or ""}

        def charge(app: WalletApp) -> WalletReply:
            code, _fields = sandbox_wallet.pay_by_code(self._uow, self._vault, self._now, app, biz, None,
                                                       terminal_id=payment.terminal_id)
            if code == alipay.CODE_SUCCESS:
                return self._status_of(app, payment.reference)
            return WalletReply(Result.REQUEST_IN_PROGRESS, "waiting for the buyer's confirmation")

        return self._call(payment.merchant_id, charge)

    def collect(self, payment: WalletPayment) -> WalletReply:
        checked = self._check_currency(payment)
        if checked is not None:
            return checked
        biz = self._biz(payment)

        def open_code(app: WalletApp) -> WalletReply:
            created = sandbox_wallet.precreate(self._uow, self._vault, self._now, app, biz, None,
                                               terminal_id=payment.terminal_id)
            return WalletReply(Result.REQUEST_IN_PROGRESS, "collection code shown, waiting for the buyer",
                               qr_payload=str(created["qr_code"]))

        return self._call(payment.merchant_id, open_code)

    def status(self, merchant_id: str, reference: str) -> WalletReply:
        def ask(app: WalletApp) -> WalletReply:
            sandbox_wallet.query(self._uow, self._vault, self._now, app, {"out_trade_no": reference})
            return self._status_of(app, reference)

        return self._call(merchant_id, ask)

    def cancel(self, merchant_id: str, reference: str) -> WalletReply:
        def undo(app: WalletApp) -> WalletReply:
            done = sandbox_wallet.cancel(self._uow, self._vault, self._now, app, {"out_trade_no": reference})
            return WalletReply(Result.APPROVED, f"wallet trade {done['trade_no']}: {done['action']}")

        return self._call(merchant_id, undo)

    # --- helpers ----------------------------------------------------------------------------

    def _call(self, merchant_id: str, work: Callable[[WalletApp], WalletReply]) -> WalletReply:
        store = self._uow.wallet  # outside the database (a host batch's memory): NeedsDatabase
        app = store.first_app_of_merchant(merchant_id)
        if app is None:
            return NO_WALLET_APP
        savepoint = self._uow.connection.begin_nested()
        try:
            reply = work(app)
        except WalletError as error:
            savepoint.rollback()
            return refusal(error)
        except BaseException:
            savepoint.rollback()
            raise
        savepoint.commit()
        return reply

    def _status_of(self, app: WalletApp, reference: str) -> WalletReply:
        trade = self._uow.wallet.trade_by_out_trade_no(app.app_id, reference)
        if trade is None:
            return WalletReply(Result.RECORD_NOT_FOUND, f"no wallet trade {reference}", "TRADENOTFOUND")
        name = f"wallet trade {trade.trade_no}"
        if trade.state in (TRADE_SUCCESS, TRADE_FINISHED):
            return WalletReply(Result.APPROVED, f"{name} paid", fee_minor=trade.fee_minor,
                               method=wallet_method(trade.funding).value if trade.funding else None)
        if trade.state == WAIT_BUYER_PAY:
            return WalletReply(Result.REQUEST_IN_PROGRESS, f"{name} waiting for the buyer")
        if trade.state == TRADE_CLOSED and trade.paid_at is not None:
            return WalletReply(Result.DO_NOT_HONOUR, f"{name} paid, then refunded", "TRADEREFUNDED")
        if trade.closed_at is not None and trade.closed_at >= trade.expires_at:
            return WalletReply(Result.DO_NOT_HONOUR, f"{name} expired unpaid", "TRADEEXPIRED")
        return WalletReply(Result.DO_NOT_HONOUR, f"{name} closed unpaid", "TRADECLOSED")

    @staticmethod
    def _biz(payment: WalletPayment) -> dict[str, Any]:
        return {"out_trade_no": payment.reference, "total_amount": alipay.format_amount(payment.amount_minor),
                "subject": f"POS {payment.terminal_id}"}

    def _check_currency(self, payment: WalletPayment) -> WalletReply | None:
        merchant = self._uow.registry.get_merchant(payment.merchant_id)
        try:
            exponent = currency(payment.currency).exponent
        except MoneyError:
            exponent = -1
        if merchant is None or merchant.currency != payment.currency or exponent != WALLET_CURRENCY_EXPONENT:
            return WalletReply(Result.NOT_PERMITTED_TO_TERMINAL, f"the wallet takes {payment.merchant_id}'s "
                               "currency only, in yuan-like units", "CURRENCYNOTACCEPTED")
        if payment.amount_minor > alipay.AMOUNT_MINOR_MAX:
            return WalletReply(Result.INVALID_AMOUNT, "above the wallet's largest trade", "AMOUNTTOOLARGE")
        return None
