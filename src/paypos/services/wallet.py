"""The sandbox wallet network: merchant-side trade methods (what `/wallet/gateway.do`
serves), the buyer's app (scan, payment code, confirm) and its ledger postings.

Every function runs inside the caller's unit of work and raises `WalletError` before it
writes anything it would have to take back: the caller commits on success and rolls back
on error, so a refused operation leaves no trace (the gateway answers the error).

Ledger accounts (docs/wallet-gateway.md):

- ``wallet_user:<id>``: ``wallet_balance`` (never below zero), ``creditpay_principal`` and
  ``creditpay_charges`` (what the buyer owes: debit balances);
- ``wallet``: ``wallet_funding`` (sandbox money entering wallets), ``creditpay_fee_income``,
  ``creditpay_interest_income``;
- the merchant's ``merchant_pending`` and the platform's ``fees_revenue``, as for cards.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from paypos import limits
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import Vault
from paypos.domain import creditpay
from paypos.domain.ledger import AccountFlags, Balances, TransferRequest, TransferResult
from paypos.domain.money import MoneyError, money
from paypos.domain.money import currency as currency_of
from paypos.domain.pricing import fee_for, wallet_method
from paypos.domain.wallet import (
    TRADE_CLOSED,
    TRADE_SUCCESS,
    WAIT_BUYER_PAY,
    Funding,
    Trade,
    WalletApp,
    WalletError,
    WalletUser,
)
from paypos.networks.sandbox import catalog
from paypos.networks.sandbox import wallet_catalog as wcat
from paypos.networks.sandbox.wallet_keys import APP_KEYS, WALLET_PRIVATE_KEY, WALLET_PUBLIC_KEY
from paypos.protocol import alipay, paycode, qr

WALLET_OWNER = "wallet"
_GMT8 = timezone(timedelta(hours=8))
# ISO 3166 numeric -> alpha-2 for the countries of sandbox merchants (EMVCo ID 58 is alpha-2).
_COUNTRY_ALPHA2 = {"156": "CN", "840": "US", "344": "HK", "702": "SG", "826": "GB", "276": "DE"}


def user_owner(user_id: str) -> str:
    return f"wallet_user:{user_id}"


# --- seeding -------------------------------------------------------------------------------


def seed_wallet(uow: UnitOfWork, vault: Vault, now: datetime) -> list[str]:
    """Create whatever of the sandbox wallet is missing (idempotent); returns what was created."""
    created: list[str] = []
    if uow.wallet.get_key(wcat.WALLET_KEY_ID) is None:
        uow.wallet.add_key(wcat.WALLET_KEY_ID, vault.seal(WALLET_PRIVATE_KEY, "wallet_key"), WALLET_PUBLIC_KEY, now)
        created.append("wallet key")
    for spec in wcat.APPS:
        if uow.wallet.get_app(spec.app_id) is None:
            private, public = APP_KEYS[spec.app_id]
            uow.wallet.add_app(WalletApp(spec.app_id, spec.merchant_id, spec.name, public),
                               vault.seal(private, "app_key"), now)
            created.append(f"wallet app {spec.app_id}")
    for alpha in sorted({u.currency for u in wcat.USERS} | {m.currency for m in catalog.MERCHANTS}):
        for code in ("wallet_funding", "creditpay_fee_income", "creditpay_interest_income"):
            uow.ledger.open_account(WALLET_OWNER, WALLET_OWNER, code, alpha)
    for user in wcat.USERS:
        if uow.wallet.get_user(user.user_id) is None:
            _add_user(uow, vault, user, now)
            created.append(f"wallet user {user.user_id}")
    return created


def _add_user(uow: UnitOfWork, vault: Vault, spec: wcat.SandboxWalletUser, now: datetime) -> None:
    line = creditpay.credit_line_for_score(spec.credit_score, spec.currency)
    user = WalletUser(spec.user_id, spec.phone, spec.name, spec.currency, spec.device_no, None, spec.credit_score,
                      line, spec.no_confirm_limit_minor, creditpay.BILL_DAY_DEFAULT, creditpay.DUE_DAY_DEFAULT)
    uow.wallet.add_user(user, vault.seal(wcat.device_secret(spec.user_id), "device_secret"), now)
    owner = user_owner(spec.user_id)
    balance = uow.ledger.open_account(owner, owner, "wallet_balance", spec.currency,
                                      AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    uow.ledger.open_account(owner, owner, "creditpay_principal", spec.currency)
    uow.ledger.open_account(owner, owner, "creditpay_charges", spec.currency)
    for card_id in spec.cards:
        uow.wallet.link_card(spec.user_id, card_id, now)
    if spec.balance_minor > 0:
        funding = _account_id(uow, WALLET_OWNER, "wallet_funding", spec.currency)
        _post(uow, [TransferRequest(f"wallet:opening:{spec.user_id}", funding, balance.id, spec.balance_minor,
                                    spec.currency, code="opening_balance")], now)


# --- listings ----------------------------------------------------------------------------


def wallet_public_key(uow: UnitOfWork) -> str:
    key = uow.wallet.get_key(wcat.WALLET_KEY_ID)
    if key is None:
        raise WalletError("wallet_not_seeded", "the wallet has no key: run `paypos init --sandbox`")
    return key[1]


def wallet_private_key(uow: UnitOfWork, vault: Vault) -> str:
    key = uow.wallet.get_key(wcat.WALLET_KEY_ID)
    if key is None:
        raise WalletError("wallet_not_seeded", "the wallet has no key: run `paypos init --sandbox`")
    return vault.open(key[0], "wallet_key")


def list_apps(uow: UnitOfWork, vault: Vault, gateway_url: str) -> list[dict[str, Any]]:
    """`paypos sandbox wallet-apps --json`: the TEST keys of each sandbox app."""
    wallet_public = wallet_public_key(uow)
    rows = []
    for app in uow.wallet.list_apps():
        sealed = uow.wallet.app_private_key_sealed(app.app_id)
        merchant = uow.registry.get_merchant(app.merchant_id)
        rows.append({"app_id": app.app_id, "merchant_id": app.merchant_id, "name": app.name,
                     "app_private_key": vault.open(sealed, "app_key") if sealed else None,
                     "app_public_key": app.app_public_key_pem, "wallet_public_key": wallet_public,
                     "gateway_url": gateway_url,
                     # The merchant's static collection code (no amount: the buyer types it).
                     "static_qr_code": collection_payload(merchant, None, None) if merchant else None})
    return rows


def list_users(uow: UnitOfWork) -> list[dict[str, Any]]:
    """`paypos sandbox wallet-users --json`."""
    return [_user_row(uow, user) for user in uow.wallet.list_users()]


def _user_row(uow: UnitOfWork, user: WalletUser) -> dict[str, Any]:
    balance = _balances(uow, user, "wallet_balance")
    return {"user_id": user.user_id, "phone": user.phone, "name": user.name, "currency": user.currency,
            "balance_minor": balance.available_credit_balance, "credit_limit_minor": user.credit_line_minor,
            "credit_available_minor": available_credit(uow, user),
            "no_confirm_limit_minor": user.no_confirm_limit_minor, "linked_cards": uow.wallet.linked_cards(user.user_id)}


def buyer_summary(uow: UnitOfWork, user_id: str) -> dict[str, Any]:
    user = _user(uow, user_id)
    row = _user_row(uow, user)
    row["credit_owed_minor"] = _owed(uow, user)
    row["awaiting_confirmation"] = [_trade_view(t) for t in uow.wallet.awaiting_confirmation(user.user_id)]
    row["recent_trades"] = [_trade_view(t) for t in uow.wallet.trades_of_buyer(user.user_id,
                                                                              limits.wallet_bills_trades_max)]
    return row


# --- merchant side: the gateway's trade methods -----------------------------------------------


def precreate(uow: UnitOfWork, vault: Vault, now: datetime, app: WalletApp, biz: Mapping[str, Any],
              notify_url: str | None, *, terminal_id: str | None = None) -> dict[str, Any]:
    """alipay.trade.precreate: a dynamic collection QR (our EMVCo payload) for the amount."""
    out_trade_no = _out_trade_no(biz)
    amount = _amount(biz, "total_amount")
    subject = _subject(biz)
    installments, fee_payer = _installment_terms(biz)
    timeout_s = _timeout_s(biz)
    fingerprint = _fingerprint("qr_code", amount, subject, installments, fee_payer)
    existing = uow.wallet.trade_by_out_trade_no(app.app_id, out_trade_no, lock=True)
    if existing is not None:
        existing = _expire_if_due(uow, vault, now, existing)
        _same_request(existing, fingerprint)
        if existing.state == TRADE_SUCCESS:
            raise WalletError("ACQ.TRADE_HAS_SUCCESS", "this out_trade_no is already paid")
        if existing.state != WAIT_BUYER_PAY:
            raise WalletError("ACQ.TRADE_HAS_CLOSE", "this out_trade_no is closed")
        return {"out_trade_no": out_trade_no, "qr_code": existing.qr_code}
    merchant = _merchant(uow, app.merchant_id)
    trade_no = _new_trade_no(now)
    payload = collection_payload(merchant, amount, trade_no)
    trade = Trade(trade_no=trade_no, app_id=app.app_id, merchant_id=app.merchant_id, out_trade_no=out_trade_no,
                  subject=subject, total_amount_minor=amount, currency=merchant.currency, scene="qr_code",
                  state=WAIT_BUYER_PAY, fingerprint=fingerprint, qr_code=payload, buyer_user_id=None, funding=None,
                  funding_card_id=None, installments=installments, fee_payer=fee_payer, fee_minor=0,
                  refunded_minor=0, notify_url=notify_url, terminal_id=terminal_id, awaiting_confirmation=False,
                  expires_at=now + timedelta(seconds=timeout_s), paid_at=None, closed_at=None, created_at=now)
    uow.wallet.add_trade(trade)
    return {"out_trade_no": out_trade_no, "qr_code": payload}


def collection_payload(merchant: Any, amount_minor: int | None, reference: str | None) -> str:
    """The EMVCo MPM payload of a merchant's collection code: dynamic with an amount and a
    trade reference (62.05), or static (no amount: the buyer types it)."""
    dynamic = amount_minor is not None
    return qr.build_mpm_payload(
        dynamic=dynamic,
        merchant_account={"26": {"00": wcat.QR_GUI, "01": merchant.merchant_id}},
        mcc=merchant.mcc, currency=currency_of(merchant.currency).numeric,
        country=_COUNTRY_ALPHA2.get(merchant.country, "CN"),
        merchant_name=_ans(merchant.name, 25), merchant_city=_ans(merchant.city, 15),
        amount_minor=amount_minor,
        additional_data={"05": reference} if reference else None,
    )


def pay_by_code(uow: UnitOfWork, vault: Vault, now: datetime, app: WalletApp, biz: Mapping[str, Any],
                notify_url: str | None, *, terminal_id: str | None = None) -> tuple[str, dict[str, Any]]:
    """alipay.trade.pay (scene bar_code): charge the buyer's payment code.

    Returns ("10000", fields) when paid, ("10003", fields) when the amount is above the
    buyer's no-confirmation limit and the payment waits for their confirm (the merchant
    then polls query and cancels at its timeout, as on the platform)."""
    scene = str(biz.get("scene") or "bar_code")
    if scene != "bar_code":
        raise WalletError("ACQ.INVALID_PARAMETER", "scene must be bar_code", field="biz_content.scene")
    out_trade_no = _out_trade_no(biz)
    amount = _amount(biz, "total_amount")
    subject = _subject(biz)
    auth_code = str(biz.get("auth_code") or "")
    if not auth_code:
        raise WalletError("ACQ.INVALID_PARAMETER", "auth_code is required", field="biz_content.auth_code")
    fingerprint = _fingerprint("bar_code", amount, subject, 0, None)
    existing = uow.wallet.trade_by_out_trade_no(app.app_id, out_trade_no, lock=True)
    if existing is not None:  # a retry: answer the trade as it stands, never charge twice
        existing = _expire_if_due(uow, vault, now, existing)
        _same_request(existing, fingerprint)
        if existing.state == TRADE_SUCCESS:
            return alipay.CODE_SUCCESS, _pay_fields(uow, existing)
        if existing.state == WAIT_BUYER_PAY:
            return "10003", _pay_fields(uow, existing)
        raise WalletError("ACQ.TRADE_HAS_CLOSE", "this out_trade_no is closed")
    merchant = _merchant(uow, app.merchant_id)
    user = _authenticate_code(uow, vault, now, auth_code)
    _check_currency(user, merchant.currency)
    trade = Trade(trade_no=_new_trade_no(now), app_id=app.app_id, merchant_id=app.merchant_id,
                  out_trade_no=out_trade_no, subject=subject, total_amount_minor=amount,
                  currency=merchant.currency, scene="bar_code", state=WAIT_BUYER_PAY, fingerprint=fingerprint,
                  qr_code=None, buyer_user_id=user.user_id, funding=None, funding_card_id=None, installments=0,
                  fee_payer=None, fee_minor=0, refunded_minor=0, notify_url=notify_url, terminal_id=terminal_id,
                  awaiting_confirmation=False, expires_at=now + timedelta(seconds=limits.wallet_trade_timeout_s),
                  paid_at=None, closed_at=None, created_at=now)
    if amount > user.no_confirm_limit_minor:
        trade = trade.replace(awaiting_confirmation=True)
        uow.wallet.add_trade(trade)
        return "10003", _pay_fields(uow, trade)
    uow.wallet.add_trade(trade)
    trade = _settle_payment(uow, vault, now, trade, user, Funding.BALANCE, None, 0)
    return alipay.CODE_SUCCESS, _pay_fields(uow, trade)


def query(uow: UnitOfWork, vault: Vault, now: datetime, app: WalletApp, biz: Mapping[str, Any]) -> dict[str, Any]:
    """alipay.trade.query."""
    trade = _expire_if_due(uow, vault, now, _find_trade(uow, app, biz))
    fields: dict[str, Any] = {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
                              "trade_status": trade.state, "total_amount": alipay.format_amount(trade.total_amount_minor)}
    if trade.buyer_user_id:
        user = uow.wallet.get_user(trade.buyer_user_id)
        if user is not None:
            fields["buyer_logon_id"] = user.masked_phone
            fields["buyer_user_id"] = user.user_id
    if trade.paid_at is not None:
        fields["receipt_amount"] = alipay.format_amount(trade.total_amount_minor)
        fields["buyer_pay_amount"] = alipay.format_amount(trade.total_amount_minor)
        fields["send_pay_date"] = alipay.format_timestamp(_gmt8(trade.paid_at))
    return fields


def refund(uow: UnitOfWork, vault: Vault, now: datetime, app: WalletApp, biz: Mapping[str, Any]) -> dict[str, Any]:
    """alipay.trade.refund: partial or full, several, idempotent by out_request_no (default:
    the trade number, i.e. one refund), never above what is left."""
    trade = _find_trade(uow, app, biz, lock=True)
    amount = _amount(biz, "refund_amount")
    out_request_no = str(biz.get("out_request_no") or trade.out_trade_no)
    if len(out_request_no) > 64:
        raise WalletError("ACQ.INVALID_PARAMETER", "out_request_no is at most 64 characters",
                          field="biz_content.out_request_no")
    reason = str(biz.get("refund_reason") or "")[:256]
    prior = uow.wallet.get_refund(trade.trade_no, out_request_no)
    if prior is not None:
        if prior["amount_minor"] != amount:
            raise WalletError("ACQ.CONTEXT_INCONSISTENT", "out_request_no was used with another refund_amount")
        return _refund_fields(uow, trade, fund_change=False)
    if trade.state == WAIT_BUYER_PAY:
        raise WalletError("ACQ.TRADE_STATUS_ERROR", "the trade is not paid")
    if trade.state != TRADE_SUCCESS:
        raise WalletError("ACQ.TRADE_NOT_ALLOW_REFUND", f"the trade is {trade.state}")
    if amount > trade.refundable_minor:
        raise WalletError("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                          f"refund_amount above what is left ({alipay.format_amount(trade.refundable_minor)})")
    trade = _refund(uow, vault, now, trade, amount, out_request_no, reason)
    return _refund_fields(uow, trade, fund_change=True)


def refund_query(uow: UnitOfWork, app: WalletApp, biz: Mapping[str, Any]) -> dict[str, Any]:
    """alipay.trade.fastpay.refund.query: the refund of out_request_no, if there is one."""
    trade = _find_trade(uow, app, biz)
    out_request_no = str(biz.get("out_request_no") or trade.out_trade_no)
    fields: dict[str, Any] = {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
                              "out_request_no": out_request_no}
    prior = uow.wallet.get_refund(trade.trade_no, out_request_no)
    if prior is not None:  # the platform answers success without refund_amount when there is none
        fields |= {"total_amount": alipay.format_amount(trade.total_amount_minor),
                   "refund_amount": alipay.format_amount(prior["amount_minor"]),
                   "refund_status": "REFUND_SUCCESS",
                   "gmt_refund_pay": alipay.format_timestamp(_gmt8(prior["created_at"]))}
        if prior["reason"]:
            fields["refund_reason"] = prior["reason"]
    return fields


def cancel(uow: UnitOfWork, vault: Vault, now: datetime, app: WalletApp, biz: Mapping[str, Any]) -> dict[str, Any]:
    """alipay.trade.cancel: close an unpaid trade, or refund all that is left of a paid one."""
    trade = _find_trade(uow, app, biz, lock=True)
    action = "close"
    if trade.state == WAIT_BUYER_PAY:
        trade = _close(uow, vault, now, trade)
    elif trade.state == TRADE_SUCCESS:
        action = "refund"
        # Under an id no merchant sends (64 characters derived from the trade), so that a
        # merchant's own refund named "cancel" cannot collide with it.
        trade = _refund(uow, vault, now, trade, trade.refundable_minor, "~cancel~" + hashlib.sha256(trade.trade_no.encode()).hexdigest()[:56],
                        "cancelled")
    elif trade.state != TRADE_CLOSED:
        raise WalletError("ACQ.TRADE_STATUS_ERROR", f"the trade is {trade.state}")
    return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no, "retry_flag": "N", "action": action}


def close(uow: UnitOfWork, vault: Vault, now: datetime, app: WalletApp, biz: Mapping[str, Any]) -> dict[str, Any]:
    """alipay.trade.close: only a trade waiting for payment can be closed."""
    trade = _expire_if_due(uow, vault, now, _find_trade(uow, app, biz, lock=True))
    if trade.state != WAIT_BUYER_PAY and not (trade.state == TRADE_CLOSED and trade.paid_at is None):
        raise WalletError("ACQ.REASON_TRADE_STATUS_INVALID", f"the trade is {trade.state}")
    if trade.state == WAIT_BUYER_PAY:
        trade = _close(uow, vault, now, trade)
    return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no}


def sweep_expired_trades(app: Any) -> int:
    """Close every unpaid trade past its timeout (the API's sweeper runs it), in bounded batches."""
    total = 0
    while True:
        with app.uow() as uow:
            now = app.clock()
            due = uow.wallet.expired_trade_nos(now, limits.expire_batch_size_max)
            count = expire_trades(uow, app.vault, now, due)
            uow.commit()
        total += count
        if len(due) < limits.expire_batch_size_max:
            return total


def expire_trades(uow: UnitOfWork, vault: Vault, now: datetime, trade_nos: list[str]) -> int:
    count = 0
    for trade_no in trade_nos:
        trade = uow.wallet.get_trade(trade_no, lock=True)
        if trade is not None and trade.is_expired(now):
            _close(uow, vault, now, trade)
            count += 1
    return count


# --- buyer side: the wallet app --------------------------------------------------------------


def payment_code(uow: UnitOfWork, vault: Vault, now: datetime, user_id: str) -> dict[str, Any]:
    """A fresh one-time payment code for the buyer's device (18 digits, valid one step)."""
    user = _user(uow, user_id)
    secret = bytes.fromhex(vault.open(uow.wallet.device_secret_sealed(user.user_id), "device_secret"))
    current = paycode.time_step(now, limits.paycode_step_s)
    # Codes are single use per time step: after a payment in this step, show the next step's
    # code (still inside the verifier's skew window), as the app refreshes its code after paying.
    step = current if user.paycode_last_step is None or user.paycode_last_step < current \
        else user.paycode_last_step + 1
    if step > current + limits.paycode_skew_steps:
        raise WalletError("code_unavailable", "payment codes used up for now: a new one comes within a minute",
                          field="user")
    code = paycode.code_for_step(secret, user.device_no, step)
    valid_until = datetime.fromtimestamp((current + limits.paycode_skew_steps + 1) * limits.paycode_step_s, UTC)
    return {"user_id": user.user_id, "code": code, "valid_until": valid_until.isoformat(),
            "no_confirm_limit_minor": user.no_confirm_limit_minor}


def scan(uow: UnitOfWork, vault: Vault, now: datetime, payload: str, user_id: str, *, funding: str = "balance",
         card_id: str | None = None, installments: int = 0, amount_minor: int | None = None) -> dict[str, Any]:
    """The buyer scans a merchant's collection code and pays it (the wallet app's "pay")."""
    user = _user(uow, user_id, lock=True)
    try:
        parsed = qr.parse_mpm_payload(payload)
        objects = qr.decode_mpm(payload)
    except qr.QrError as error:
        raise WalletError("invalid_qr", f"not a valid collection code: {error}", field="payload") from None
    template = next((v for k, v in objects.items() if k in qr.MERCHANT_ACCOUNT_TEMPLATE_IDS and isinstance(v, dict)
                     and v.get("00") == wcat.QR_GUI), None)
    if template is None or not template.get("01"):
        raise WalletError("unsupported_qr", "this code is not a paypos collection code", field="payload")
    merchant = _merchant(uow, template["01"])
    additional = objects.get("62")
    reference = additional.get("05") if isinstance(additional, dict) else None
    if reference:  # dynamic: the merchant's trade
        trade = uow.wallet.get_trade(reference, lock=True)
        if trade is None or trade.merchant_id != merchant.merchant_id:
            raise WalletError("ACQ.TRADE_NOT_EXIST", "the code names no trade of this merchant")
        trade = _expire_if_due(uow, vault, now, trade)
        if trade.state == TRADE_SUCCESS:
            raise WalletError("ACQ.TRADE_HAS_SUCCESS", "this code is already paid")
        if trade.state != WAIT_BUYER_PAY:
            raise WalletError("ACQ.TRADE_HAS_CLOSE", "this code has expired or was cancelled")
        if parsed.amount_minor is not None and parsed.amount_minor != trade.total_amount_minor:
            raise WalletError("invalid_qr", "the code's amount is not its trade's", field="payload")
        if trade.installments and installments not in (0, trade.installments):
            raise WalletError("invalid_installments", f"this trade is offered in {trade.installments} installments",
                              field="installments")
        if funding == Funding.CREDITPAY.value:
            installments = installments or trade.installments
    else:  # static: the buyer types the amount
        amount = parsed.amount_minor if parsed.amount_minor is not None else amount_minor
        if amount is None or amount <= 0:
            raise WalletError("amount_required", "a static code needs the amount typed by the buyer", field="amount")
        if amount > limits.wallet_trade_amount_minor_max:
            raise WalletError("ACQ.TOTAL_FEE_EXCEED", "amount above the wallet's limit", field="amount")
        app = uow.wallet.first_app_of_merchant(merchant.merchant_id)
        if app is None:
            raise WalletError("unsupported_qr", "the merchant takes no wallet payments", field="payload")
        trade_no = _new_trade_no(now)
        trade = Trade(trade_no=trade_no, app_id=app.app_id, merchant_id=merchant.merchant_id,
                      out_trade_no=f"static-{trade_no}", subject=f"Payment to {merchant.name}"[:256],
                      total_amount_minor=amount, currency=merchant.currency, scene="qr_code", state=WAIT_BUYER_PAY,
                      fingerprint=_fingerprint("static", amount, "", 0, None), qr_code=payload, buyer_user_id=None,
                      funding=None, funding_card_id=None, installments=0, fee_payer=None, fee_minor=0,
                      refunded_minor=0, notify_url=None, terminal_id=None, awaiting_confirmation=False,
                      expires_at=now + timedelta(seconds=limits.wallet_trade_timeout_s), paid_at=None,
                      closed_at=None, created_at=now)
        uow.wallet.add_trade(trade)
    _check_currency(user, trade.currency)
    trade = _settle_payment(uow, vault, now, trade, user, _funding(funding), card_id, installments)
    return _trade_view(trade)


def confirm(uow: UnitOfWork, vault: Vault, now: datetime, user_id: str, trade_no: str | None = None, *,
            funding: str = "balance", card_id: str | None = None, installments: int = 0) -> dict[str, Any]:
    """The buyer approves a payment-code charge above their no-confirmation limit."""
    user = _user(uow, user_id, lock=True)
    waiting = uow.wallet.awaiting_confirmation(user.user_id)
    if trade_no is None:
        if len(waiting) != 1:
            raise WalletError("confirmation_not_found" if not waiting else "trade_required",
                              "no payment waits for your confirmation" if not waiting else
                              "several payments wait: name one with --trade", field="trade_no")
        trade_no = waiting[0].trade_no
    trade = uow.wallet.get_trade(trade_no, lock=True)
    if trade is None or trade.buyer_user_id != user.user_id or not trade.awaiting_confirmation:
        raise WalletError("confirmation_not_found", "no such payment waits for your confirmation", field="trade_no")
    trade = _expire_if_due(uow, vault, now, trade)
    if trade.state != WAIT_BUYER_PAY:
        raise WalletError("ACQ.TRADE_HAS_CLOSE" if trade.state == TRADE_CLOSED else "ACQ.TRADE_HAS_SUCCESS",
                          f"the payment is {trade.state}")
    trade = _settle_payment(uow, vault, now, trade, user, _funding(funding), card_id, installments)
    return _trade_view(trade)


def top_up(uow: UnitOfWork, now: datetime, user_id: str, card_id: str, amount_minor: int, topup_id: str) -> dict[str, Any]:
    """Move money from a linked card to the wallet balance (idempotent by ``topup_id``)."""
    user = _user(uow, user_id)
    if amount_minor <= 0:
        raise WalletError("invalid_amount", "amount must be above zero", field="amount")
    source = _card_source(uow, user, card_id)
    target = _account_id(uow, user_owner(user.user_id), "wallet_balance", user.currency)
    transfer_id = f"wallet:topup:{_digest(user.user_id, topup_id)}"
    prior = uow.ledger.get_transfer(transfer_id)
    if prior is not None and (prior.amount != amount_minor or prior.debit_account_id != source):
        raise WalletError("idempotency_mismatch", "topup_id was used for another top-up", field="topup_id")
    _post(uow, [TransferRequest(transfer_id, source, target, amount_minor, user.currency, code="wallet_topup")], now)
    return _user_row(uow, user)


# --- payments, refunds, closing ---------------------------------------------------------------


def _settle_payment(uow: UnitOfWork, vault: Vault, now: datetime, trade: Trade, user: WalletUser, funding: Funding,
                    card_id: str | None, installments: int) -> Trade:
    """Pay a WAIT_BUYER_PAY trade from the buyer's chosen funding: one linked ledger chain."""
    amount, alpha = trade.total_amount_minor, trade.currency
    merchant_pending = _account_id(uow, f"merchant:{trade.merchant_id}", "merchant_pending", alpha)
    fees = _account_id(uow, catalog_platform(), "fees_revenue", alpha)
    base = f"wallet:{trade.trade_no}"
    plan = None
    if funding is Funding.CREDITPAY:
        source = _account_id(uow, user_owner(user.user_id), "creditpay_principal", alpha)
        if amount > available_credit(uow, user):
            raise WalletError("credit_limit_exceeded", "the purchase is above your available credit-pay limit",
                              field="funding")
        if installments:
            payer = creditpay.FeePayer(trade.fee_payer or "buyer")
            try:
                plan = creditpay.installment_plan(amount, installments, fee_payer=payer)
            except creditpay.CreditPayError as error:
                raise WalletError("invalid_installments", str(error), field="installments") from None
    else:
        if installments:
            raise WalletError("invalid_installments", "installments are for credit pay", field="installments")
        if funding is Funding.CARD:
            card_id = _linked_card(uow, user, card_id)
            source = _card_account(uow, card_id, alpha)
        else:
            source = _account_id(uow, user_owner(user.user_id), "wallet_balance", alpha)
    # The merchant's plan prices it by funding (wallet balance, linked card, credit pay).
    fee = fee_for(uow.pricing.plan_at(trade.merchant_id, alpha, now), wallet_method(funding.value), amount, now)
    chain = [TransferRequest(f"{base}:sale", source, merchant_pending, amount, alpha, code="wallet_sale")]
    if fee:
        chain.append(TransferRequest(f"{base}:fee", merchant_pending, fees, fee, alpha, code="fee"))
    subsidy = plan.merchant_fee_minor if plan else 0
    income = _account_id(uow, WALLET_OWNER, "creditpay_fee_income", alpha) if plan else 0
    if plan and subsidy:
        chain.append(TransferRequest(f"{base}:subsidy", merchant_pending, income, subsidy, alpha,
                                     code="creditpay_subsidy"))
    if plan and plan.buyer_fee_minor:
        charges = _account_id(uow, user_owner(user.user_id), "creditpay_charges", alpha)
        chain.append(TransferRequest(f"{base}:installment_fee", charges, income, plan.buyer_fee_minor, alpha,
                                     code="creditpay_fee"))
    chain = [r if i == len(chain) - 1 else _linked(r) for i, r in enumerate(chain)]
    _post(uow, chain, now, funds_code="ACQ.BUYER_BALANCE_NOT_ENOUGH")
    if funding is Funding.CREDITPAY:
        uow.wallet.add_purchase({
            "trade_no": trade.trade_no, "user_id": user.user_id, "principal_minor": amount, "currency": alpha,
            "installments": installments or 1, "fee_payer": plan.fee_payer.value if plan else "buyer",
            "buyer_fee_minor": plan.buyer_fee_minor if plan else 0,
            "merchant_fee_minor": subsidy, "posted_on": _local_day(now), "refunded_minor": 0,
            "paid_off_on": None, "created_at": now})
    trade = trade.replace(state=TRADE_SUCCESS, buyer_user_id=user.user_id, funding=funding.value,
                          funding_card_id=card_id if funding is Funding.CARD else None,
                          installments=installments, fee_payer=plan.fee_payer.value if plan else trade.fee_payer,
                          fee_minor=fee + subsidy, awaiting_confirmation=False, paid_at=now)
    uow.wallet.update_trade(trade)
    from paypos.services.checkout import wallet_trade_paid  # imports this module: imported late

    wallet_trade_paid(uow, trade, now)  # a hosted checkout's trade pays its payment request
    _notify(uow, vault, now, trade, TRADE_SUCCESS)
    _tell_buyer(uow, now, user, trade, trade.total_amount_minor, "paid", f"wallet:{trade.trade_no}:paid")
    return trade


def _tell_buyer(uow: UnitOfWork, now: datetime, user: WalletUser, trade: Trade, amount_minor: int, what: str,
                reference: str) -> None:
    """The wallet's SMS to the buyer's phone, in the sandbox outbox (`paypos sandbox notifications
    --card wallet:<user id>`), once per payment or refund."""
    merchant = uow.registry.get_merchant(trade.merchant_id)
    amount = money(amount_minor, trade.currency)
    text = (f"[paypos sandbox wallet] {amount} {what} {'to' if what == 'paid' else 'by'} "
            f"{merchant.name if merchant else trade.merchant_id}, trade {trade.trade_no}, "
            f"{now.strftime('%Y-%m-%d %H:%M')} UTC.")
    uow.host.add_notification(f"wallet:{user.user_id}", "sms", user.phone, text[:320], reference, now)


def _refund(uow: UnitOfWork, vault: Vault, now: datetime, trade: Trade, amount: int, out_request_no: str,
            reason: str) -> Trade:
    alpha = trade.currency
    merchant_pending = _account_id(uow, f"merchant:{trade.merchant_id}", "merchant_pending", alpha)
    owner = user_owner(trade.buyer_user_id or "")
    if trade.funding == Funding.CARD:
        target = _card_account(uow, trade.funding_card_id or "", alpha)
    elif trade.funding == Funding.CREDITPAY:
        target = _account_id(uow, owner, "creditpay_principal", alpha)
    else:
        target = _account_id(uow, owner, "wallet_balance", alpha)
    if amount > 0:
        _post(uow, [TransferRequest(f"wallet:{trade.trade_no}:refund:{_digest(out_request_no)}", merchant_pending,
                                    target, amount, alpha, code="wallet_refund")], now)
    uow.wallet.add_refund(trade.trade_no, out_request_no, amount, reason, now)
    if trade.funding == Funding.CREDITPAY:
        purchase = uow.wallet.get_purchase(trade.trade_no)
        if purchase is not None:
            uow.wallet.update_purchase(trade.trade_no, refunded_minor=purchase["refunded_minor"] + amount)
    refunded = trade.refunded_minor + amount
    trade = trade.replace(refunded_minor=refunded)
    if refunded >= trade.total_amount_minor:
        trade = trade.replace(state=TRADE_CLOSED, closed_at=now)
    uow.wallet.update_trade(trade)
    _notify(uow, vault, now, trade, f"refund:{_digest(out_request_no)}",
            refund_fee=refunded, out_biz_no=out_request_no)
    buyer = uow.wallet.get_user(trade.buyer_user_id or "")
    if buyer is not None and amount > 0:
        _tell_buyer(uow, now, buyer, trade, amount, "refunded",
                    f"wallet:{trade.trade_no}:refund:{_digest(out_request_no)}")
    return trade


def _close(uow: UnitOfWork, vault: Vault, now: datetime, trade: Trade) -> Trade:
    trade = trade.replace(state=TRADE_CLOSED, closed_at=now, awaiting_confirmation=False)
    uow.wallet.update_trade(trade)
    _notify(uow, vault, now, trade, TRADE_CLOSED)
    return trade


def _expire_if_due(uow: UnitOfWork, vault: Vault, now: datetime, trade: Trade) -> Trade:
    return _close(uow, vault, now, trade) if trade.is_expired(now) else trade


def _notify(uow: UnitOfWork, vault: Vault, now: datetime, trade: Trade, event: str, *, refund_fee: int | None = None,
            out_biz_no: str | None = None) -> None:
    """Queue the signed trade_status_sync notice (once per trade and event)."""
    if not trade.notify_url:
        return
    extra = {"subject": trade.subject, "seller_id": trade.merchant_id}
    if trade.buyer_user_id:
        extra["buyer_id"] = trade.buyer_user_id
    if refund_fee is not None:
        extra["refund_fee"] = alipay.format_amount(refund_fee)
        extra["gmt_refund"] = alipay.format_timestamp(_gmt8(now))
    if out_biz_no:
        extra["out_biz_no"] = out_biz_no
    params = alipay.trade_status_sync_params(
        app_id=trade.app_id, notify_id=uuid.uuid4().hex, notify_time=_gmt8(now), trade_no=trade.trade_no,
        out_trade_no=trade.out_trade_no, trade_status=trade.state, total_amount_minor=trade.total_amount_minor,
        receipt_amount_minor=trade.total_amount_minor if trade.paid_at else None,
        buyer_pay_amount_minor=trade.total_amount_minor if trade.paid_at else None,
        gmt_create=_gmt8(trade.created_at), gmt_payment=_gmt8(trade.paid_at) if trade.paid_at else None,
        gmt_close=_gmt8(trade.closed_at) if trade.closed_at else None, extra=extra)
    signed = alipay.sign_notification(params, wallet_private_key(uow, vault))
    uow.wallet.add_notification(trade.trade_no, event, trade.notify_url, signed, now)


# --- credit pay --------------------------------------------------------------------------------


def available_credit(uow: UnitOfWork, user: WalletUser) -> int:
    """Line - outstanding principal (the principal account's debit balance)."""
    principal = _balances(uow, user, "creditpay_principal")
    outstanding = max(0, principal.debits_posted - principal.credits_posted)
    return creditpay.available_limit(user.credit_line_minor, outstanding) if outstanding <= user.credit_line_minor else 0


def _owed(uow: UnitOfWork, user: WalletUser) -> int:
    total = 0
    for code in ("creditpay_principal", "creditpay_charges"):
        b = _balances(uow, user, code)
        total += b.debits_posted - b.credits_posted
    return total


# --- helpers ---------------------------------------------------------------------------------------


def catalog_platform() -> str:
    from paypos.services.sandbox import PLATFORM

    return PLATFORM


def _authenticate_code(uow: UnitOfWork, vault: Vault, now: datetime, auth_code: str) -> WalletUser:
    try:
        parsed = paycode.parse(auth_code)
    except paycode.PayCodeFormatError as error:
        raise WalletError("ACQ.PAYMENT_AUTH_CODE_INVALID", f"payment code {error}", reason="malformed",
                          field="biz_content.auth_code") from None
    user = uow.wallet.user_by_device(parsed.device_no, lock=True)
    if user is None or user.status != "active":
        raise WalletError("ACQ.PAYMENT_AUTH_CODE_INVALID", "payment code matches no wallet", reason="unknown",
                          field="biz_content.auth_code")
    secret = bytes.fromhex(vault.open(uow.wallet.device_secret_sealed(user.user_id), "device_secret"))
    try:
        step = paycode.authenticate(secret, auth_code, now, last_used_step=user.paycode_last_step)
    except paycode.PayCodeRejectedError as error:
        reason = {paycode.PayCodeExpiredError: "expired", paycode.PayCodeReusedError: "reused"}.get(
            type(error), "unknown")
        raise WalletError("ACQ.PAYMENT_AUTH_CODE_INVALID", f"payment code {error}", reason=reason,
                          field="biz_content.auth_code") from None
    uow.wallet.set_paycode_step(user.user_id, step)
    return user


def _find_trade(uow: UnitOfWork, app: WalletApp, biz: Mapping[str, Any], *, lock: bool = False) -> Trade:
    trade_no = str(biz.get("trade_no") or "")
    out_trade_no = str(biz.get("out_trade_no") or "")
    if not trade_no and not out_trade_no:
        raise WalletError("ACQ.INVALID_PARAMETER", "out_trade_no or trade_no is required",
                          field="biz_content.out_trade_no")
    trade = (uow.wallet.get_trade(trade_no, lock=lock) if trade_no
             else uow.wallet.trade_by_out_trade_no(app.app_id, out_trade_no, lock=lock))
    if trade is None or trade.app_id != app.app_id or (out_trade_no and trade.out_trade_no != out_trade_no):
        raise WalletError("ACQ.TRADE_NOT_EXIST", "no such trade for this app")
    return trade


def _pay_fields(uow: UnitOfWork, trade: Trade) -> dict[str, Any]:
    user = uow.wallet.get_user(trade.buyer_user_id or "")
    fields: dict[str, Any] = {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
                              "buyer_logon_id": user.masked_phone if user else "",
                              "total_amount": alipay.format_amount(trade.total_amount_minor)}
    if trade.paid_at is not None:
        fields |= {"receipt_amount": alipay.format_amount(trade.total_amount_minor),
                   "buyer_pay_amount": alipay.format_amount(trade.total_amount_minor),
                   "gmt_payment": alipay.format_timestamp(_gmt8(trade.paid_at)),
                   "buyer_user_id": trade.buyer_user_id}
    return fields


def _refund_fields(uow: UnitOfWork, trade: Trade, *, fund_change: bool) -> dict[str, Any]:
    user = uow.wallet.get_user(trade.buyer_user_id or "")
    return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
            "buyer_logon_id": user.masked_phone if user else "", "fund_change": "Y" if fund_change else "N",
            "refund_fee": alipay.format_amount(trade.refunded_minor)}


def _trade_view(trade: Trade) -> dict[str, Any]:
    return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no, "merchant_id": trade.merchant_id,
            "subject": trade.subject, "amount_minor": trade.total_amount_minor, "currency": trade.currency,
            "state": trade.state, "funding": trade.funding, "installments": trade.installments,
            "fee_payer": trade.fee_payer, "refunded_minor": trade.refunded_minor,
            "awaiting_confirmation": trade.awaiting_confirmation,
            "paid_at": trade.paid_at.isoformat() if trade.paid_at else None,
            "expires_at": trade.expires_at.isoformat()}


def trade_view(trade: Trade) -> dict[str, Any]:
    return _trade_view(trade)


def _user(uow: UnitOfWork, user_id: str, *, lock: bool = False) -> WalletUser:
    user = uow.wallet.get_user(user_id, lock=lock)
    if user is None:
        raise WalletError("user_not_found", f"no wallet user {user_id!r}", field="user")
    if user.status != "active":
        raise WalletError("user_inactive", f"wallet user {user_id} is {user.status}", field="user")
    return user


def _merchant(uow: UnitOfWork, merchant_id: str) -> Any:
    merchant = uow.registry.get_merchant(merchant_id)
    if merchant is None or merchant.status != "active":
        raise WalletError("ACQ.ACCESS_FORBIDDEN", f"merchant {merchant_id} cannot take payments")
    return merchant


def _check_currency(user: WalletUser, alpha: str) -> None:
    if user.currency != alpha:
        raise WalletError("currency_mismatch", f"the wallet holds {user.currency}, the merchant takes {alpha}",
                          field="currency")


def _card_source(uow: UnitOfWork, user: WalletUser, card_id: str | None) -> int:
    return _card_account(uow, _linked_card(uow, user, card_id), user.currency)


def _linked_card(uow: UnitOfWork, user: WalletUser, card_id: str | None) -> str:
    """The buyer's chosen linked card, or their first one; refused if not theirs or not usable."""
    linked = uow.wallet.linked_cards(user.user_id)
    card_id = card_id or (linked[0] if linked else None)
    if card_id is None or card_id not in linked:
        raise WalletError("card_not_linked", "pay with one of your linked cards", field="card")
    card = uow.registry.get_card(card_id)
    if card is None or card.status != "active":
        raise WalletError("card_unavailable", f"card {card_id} cannot be used", field="card")
    return card_id


def _card_account(uow: UnitOfWork, card_id: str, alpha: str) -> int:
    card = uow.registry.get_card(card_id)
    if card is None:
        raise WalletError("card_unavailable", f"no card {card_id}", field="card")
    funding_card = uow.registry.get_card(card.token_for_card_id) if card.token_for_card_id else card
    if funding_card is None:
        raise WalletError("card_unavailable", f"card {card_id} has no funding card", field="card")
    return _account_id(uow, f"card:{funding_card.card_id}", catalog.ACCOUNT_CODE_FOR_FUNDING[funding_card.funding],
                       alpha)


def _account_id(uow: UnitOfWork, owner_ref: str, code: str, alpha: str) -> int:
    account_id = uow.ledger.find_account_id(owner_ref, code, alpha)
    if account_id is None:
        raise WalletError("ACQ.SYSTEM_ERROR", f"ledger account {owner_ref} {code} {alpha} missing")
    return account_id


def _balances(uow: UnitOfWork, user: WalletUser, code: str) -> Balances:
    account = uow.ledger.find_account(user_owner(user.user_id), code, user.currency)
    return account.balances if account else Balances()


_FUNDS_REFUSED = {TransferResult.EXCEEDS_CREDITS, TransferResult.EXCEEDS_DEBITS}


def _post(uow: UnitOfWork, chain: list[TransferRequest], now: datetime, *,
          funds_code: str = "insufficient_funds") -> None:
    outcomes = uow.ledger.create_transfers(chain, now)
    for outcome in outcomes:
        if outcome.result in _FUNDS_REFUSED:
            raise WalletError(funds_code, "not enough funds for this payment", field="funding")
    failed = [o for o in outcomes if not o.result.ok]
    if failed:
        raise WalletError("ACQ.SYSTEM_ERROR", f"ledger refused {failed[0].id}: {failed[0].result.value}")


def _linked(request: TransferRequest) -> TransferRequest:
    from dataclasses import replace

    return replace(request, linked=True)


def _funding(value: str) -> Funding:
    try:
        return Funding(value)
    except ValueError:
        raise WalletError("invalid_funding", "funding must be balance, card or creditpay", field="funding") from None


def _out_trade_no(biz: Mapping[str, Any]) -> str:
    value = biz.get("out_trade_no")
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise WalletError("ACQ.INVALID_PARAMETER", "out_trade_no is required (at most 64 characters)",
                          field="biz_content.out_trade_no")
    return value


def _amount(biz: Mapping[str, Any], key: str) -> int:
    if biz.get(key) is None:
        raise WalletError("ACQ.INVALID_PARAMETER", f"{key} is required", field=f"biz_content.{key}")
    try:
        return alipay.parse_amount(biz[key], field=key)
    except alipay.GatewayError as error:
        sub = error.sub_code if error.sub_code in alipay.SUB_CODES and error.code == "40004" else "ACQ.INVALID_PARAMETER"
        raise WalletError(sub, str(error), field=f"biz_content.{key}") from None
    except (ValueError, MoneyError) as error:
        raise WalletError("ACQ.INVALID_PARAMETER", str(error), field=f"biz_content.{key}") from None


def _subject(biz: Mapping[str, Any]) -> str:
    value = biz.get("subject")
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise WalletError("ACQ.INVALID_PARAMETER", "subject is required (at most 256 characters)",
                          field="biz_content.subject")
    return value


def _installment_terms(biz: Mapping[str, Any]) -> tuple[int, str | None]:
    """extend_params.hb_fq_num (3/6/12) and hb_fq_seller_percent (0: buyer pays the fee,
    100: the merchant does — "interest-free"), the platform's installment parameters."""
    extend = biz.get("extend_params") or {}
    if not isinstance(extend, Mapping) or not extend.get("hb_fq_num"):
        return 0, None
    try:
        months = int(str(extend["hb_fq_num"]))
    except ValueError:
        months = -1
    if months not in creditpay.INSTALLMENT_MONTHS:
        raise WalletError("ACQ.INVALID_PARAMETER", "hb_fq_num must be 3, 6 or 12",
                          field="biz_content.extend_params.hb_fq_num")
    percent = str(extend.get("hb_fq_seller_percent", "0"))
    if percent not in ("0", "100"):
        raise WalletError("ACQ.INVALID_PARAMETER", "hb_fq_seller_percent must be 0 or 100",
                          field="biz_content.extend_params.hb_fq_seller_percent")
    return months, "merchant" if percent == "100" else "buyer"


def _timeout_s(biz: Mapping[str, Any]) -> int:
    """timeout_express: "90m", "2h", "1d" (the platform's forms; "1c" = end of day is not taken)."""
    text = str(biz.get("timeout_express") or "")
    if not text:
        return limits.wallet_trade_timeout_s
    units = {"m": 60, "h": 3600, "d": 86400}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise WalletError("ACQ.INVALID_PARAMETER", "timeout_express must be like 5m, 2h or 1d",
                          field="biz_content.timeout_express")
    seconds = int(text[:-1]) * units[text[-1]]
    if not 60 <= seconds <= limits.wallet_trade_timeout_s_max:
        raise WalletError("ACQ.INVALID_PARAMETER", "timeout_express must be 1m to 15d",
                          field="biz_content.timeout_express")
    return seconds


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()


def _same_request(trade: Trade, fingerprint: str) -> None:
    if trade.fingerprint != fingerprint:
        raise WalletError("ACQ.CONTEXT_INCONSISTENT", "out_trade_no was used with other trade data")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def _new_trade_no(now: datetime) -> str:
    """24 digits: the GMT+8 date and 16 random digits (fits EMVCo 62.05, 25 characters)."""
    return f"{_gmt8(now):%Y%m%d}{uuid.uuid4().int % 10**16:016d}"


def _gmt8(moment: datetime) -> datetime:
    return moment.astimezone(_GMT8).replace(tzinfo=None)


def _local_day(now: datetime) -> Any:
    return _gmt8(now).date()


def _ans(text: str, length: int) -> str:
    """EMVCo "ans" text: printable ASCII (accents dropped: "Café" -> "Cafe"), cut to length."""
    decomposed = unicodedata.normalize("NFKD", text)
    cleaned = "".join(ch for ch in decomposed if 32 <= ord(ch) < 127)
    return cleaned[:length].strip() or "?"
