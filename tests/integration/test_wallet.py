"""The sandbox wallet network's use cases on both backends: collection QR (dynamic and
static) paid from balance, card and credit pay; payment codes under and over the
confirmation limit; refunds, cancels and closes; notifications queued once per event.
`paypos ledger check` (services.ledger.check) passes after each."""

from __future__ import annotations

from typing import Any

import pytest

from paypos.bootstrap import App, init_database
from paypos.domain.wallet import WalletError
from paypos.networks.sandbox import wallet_catalog as wcat
from paypos.protocol import paycode, qr
from paypos.services import ledger as ledger_service
from paypos.services import wallet

CAFE_APP = "2021000000000001"
LIN = "2088100000000001"
ZHANG = "2088100000000002"


@pytest.fixture
def seeded(app: App) -> App:
    init_database(app, sandbox=True)
    return app


def run(app: App, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with app.uow() as uow:
        result = fn(uow, app.vault, app.clock(), *args, **kwargs)
        uow.commit()
        return result


def gateway(app: App, fn: Any, biz: dict[str, Any], notify_url: str | None = None) -> Any:
    with app.uow() as uow:
        wallet_app = uow.wallet.get_app(CAFE_APP)
        if fn in (wallet.precreate, wallet.pay_by_code):
            result = fn(uow, app.vault, app.clock(), wallet_app, biz, notify_url)
        elif fn is wallet.refund_query:
            result = fn(uow, wallet_app, biz)
        else:
            result = fn(uow, app.vault, app.clock(), wallet_app, biz)
        uow.commit()
        return result


def user(app: App, user_id: str) -> dict[str, Any]:
    with app.uow(write=False) as uow:
        return wallet.buyer_summary(uow, user_id)


def merchant_pending(app: App) -> int:
    accounts = ledger_service.accounts(app.engine, ["merchant:PPCAFE000000001"])
    return next(a.balances.net_posted for a in accounts if a.code == "merchant_pending")


def assert_ledger_ok(app: App) -> None:
    assert ledger_service.check(app.engine, app.clock) == []


def test_dynamic_qr_paid_from_balance_then_partial_refunds_and_notices(seeded: App) -> None:
    created = gateway(seeded, wallet.precreate, {"out_trade_no": "order-1", "total_amount": "88.88",
                                                 "subject": "Two lattes"}, "http://127.0.0.1:9/notify")
    payload = created["qr_code"]
    decoded = qr.decode_mpm(payload)
    assert decoded["01"] == "12" and decoded["54"] == "88.88" and decoded["26"]["00"] == wcat.QR_GUI
    assert gateway(seeded, wallet.query, {"out_trade_no": "order-1"})["trade_status"] == "WAIT_BUYER_PAY"
    before, pending_before = user(seeded, LIN)["balance_minor"], merchant_pending(seeded)

    paid = run(seeded, wallet.scan, payload, LIN, funding="balance")

    assert paid["state"] == "TRADE_SUCCESS"
    assert user(seeded, LIN)["balance_minor"] == before - 8888
    fee = 53  # 60 bps of 88.88, half up
    assert merchant_pending(seeded) == pending_before + 8888 - fee
    assert gateway(seeded, wallet.query, {"out_trade_no": "order-1"})["trade_status"] == "TRADE_SUCCESS"
    assert_ledger_ok(seeded)

    first = gateway(seeded, wallet.refund, {"out_trade_no": "order-1", "refund_amount": "10.00",
                                            "out_request_no": "r1"})
    again = gateway(seeded, wallet.refund, {"out_trade_no": "order-1", "refund_amount": "10.00",
                                            "out_request_no": "r1"})
    assert (first["fund_change"], again["fund_change"], again["refund_fee"]) == ("Y", "N", "10.00")
    with pytest.raises(WalletError) as too_much:
        gateway(seeded, wallet.refund, {"out_trade_no": "order-1", "refund_amount": "80.00", "out_request_no": "r2"})
    assert too_much.value.code == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    assert user(seeded, LIN)["balance_minor"] == before - 8888 + 1000
    found = gateway(seeded, wallet.refund_query, {"out_trade_no": "order-1", "out_request_no": "r1"})
    assert found["refund_amount"] == "10.00" and found["refund_status"] == "REFUND_SUCCESS"
    with seeded.uow(write=False) as uow:
        trade_no = uow.wallet.trade_by_out_trade_no(CAFE_APP, "order-1").trade_no
        events = [n.event for n in uow.wallet.notifications_of(trade_no)]
    assert events[0] == "TRADE_SUCCESS" and len(events) == 2
    assert_ledger_ok(seeded)


def test_static_qr_with_typed_amount_and_card_funding(seeded: App) -> None:
    with seeded.uow(write=False) as uow:
        merchant = uow.registry.get_merchant("PPCAFE000000001")
    payload = wallet.collection_payload(merchant, None, None)
    assert qr.decode_mpm(payload)["01"] == "11"
    with pytest.raises(WalletError) as no_amount:
        run(seeded, wallet.scan, payload, LIN)
    assert no_amount.value.code == "amount_required"

    paid = run(seeded, wallet.scan, payload, LIN, funding="card", amount_minor=1234)

    assert paid["state"] == "TRADE_SUCCESS" and paid["funding"] == "card" and paid["amount_minor"] == 1234
    assert_ledger_ok(seeded)


def test_credit_pay_in_six_installments_with_merchant_subsidy(seeded: App) -> None:
    created = gateway(seeded, wallet.precreate, {
        "out_trade_no": "hb-1", "total_amount": "600.00", "subject": "Coffee machine",
        "extend_params": {"hb_fq_num": "6", "hb_fq_seller_percent": "100"}})
    available = user(seeded, LIN)["credit_available_minor"]
    pending_before = merchant_pending(seeded)

    paid = run(seeded, wallet.scan, created["qr_code"], LIN, funding="creditpay", installments=6)

    assert (paid["installments"], paid["fee_payer"]) == (6, "merchant")
    assert user(seeded, LIN)["credit_available_minor"] == available - 60000
    # merchant gets 600.00 - 80 bps credit-pay rate (4.80) - 4.5 % subsidy (27.00)
    assert merchant_pending(seeded) == pending_before + 60000 - 480 - 2700
    assert user(seeded, LIN)["credit_owed_minor"] == 60000
    assert_ledger_ok(seeded)


def test_credit_pay_above_the_available_limit_is_declined(seeded: App) -> None:
    line = user(seeded, ZHANG)["credit_available_minor"]
    created = gateway(seeded, wallet.precreate, {"out_trade_no": "big", "total_amount": f"{line // 100 + 1}.00",
                                                 "subject": "Too much"})
    with pytest.raises(WalletError) as declined:
        run(seeded, wallet.scan, created["qr_code"], ZHANG, funding="creditpay")
    assert declined.value.code == "credit_limit_exceeded"
    assert gateway(seeded, wallet.query, {"out_trade_no": "big"})["trade_status"] == "WAIT_BUYER_PAY"


def code_for(app: App, user_id: str) -> str:
    with app.uow(write=False) as uow:
        return wallet.payment_code(uow, app.vault, app.clock(), user_id)["code"]


def test_payment_code_under_the_limit_pays_at_once_and_is_single_use(seeded: App) -> None:
    code = code_for(seeded, LIN)
    status, fields = gateway(seeded, wallet.pay_by_code, {"out_trade_no": "bar-1", "scene": "bar_code",
                                                          "auth_code": code, "total_amount": "12.00",
                                                          "subject": "Bun"})
    assert status == "10000" and fields["buyer_user_id"] == LIN
    retry = gateway(seeded, wallet.pay_by_code, {"out_trade_no": "bar-1", "scene": "bar_code", "auth_code": code,
                                                 "total_amount": "12.00", "subject": "Bun"})
    assert retry[0] == "10000"  # the same trade, charged once
    with pytest.raises(WalletError) as reused:
        gateway(seeded, wallet.pay_by_code, {"out_trade_no": "bar-2", "scene": "bar_code", "auth_code": code,
                                             "total_amount": "1.00", "subject": "Bun"})
    assert (reused.value.code, reused.value.reason) == ("ACQ.PAYMENT_AUTH_CODE_INVALID", "reused")
    assert_ledger_ok(seeded)


def test_payment_code_expired_and_unknown_are_told_apart(seeded: App, clock: Any) -> None:
    code = code_for(seeded, LIN)
    clock.advance(300)
    with pytest.raises(WalletError) as expired:
        gateway(seeded, wallet.pay_by_code, {"out_trade_no": "x1", "auth_code": code, "total_amount": "1.00",
                                             "subject": "x"})
    assert expired.value.reason == "expired"
    secret = bytes(20)
    unknown = paycode.generate(secret, 1_000_001, seeded.clock())
    with pytest.raises(WalletError) as wrong:
        gateway(seeded, wallet.pay_by_code, {"out_trade_no": "x2", "auth_code": unknown, "total_amount": "1.00",
                                             "subject": "x"})
    assert wrong.value.reason == "unknown"


def test_payment_code_over_the_limit_waits_for_confirmation_then_cancel_refunds(seeded: App) -> None:
    before = user(seeded, LIN)["balance_minor"]
    status, _ = gateway(seeded, wallet.pay_by_code, {"out_trade_no": "bar-big", "auth_code": code_for(seeded, LIN),
                                                     "total_amount": "300.00", "subject": "Cake"})
    assert status == "10003"
    assert gateway(seeded, wallet.query, {"out_trade_no": "bar-big"})["trade_status"] == "WAIT_BUYER_PAY"
    assert len(user(seeded, LIN)["awaiting_confirmation"]) == 1

    confirmed = run(seeded, wallet.confirm, LIN)

    assert confirmed["state"] == "TRADE_SUCCESS"
    assert user(seeded, LIN)["balance_minor"] == before - 30000
    cancelled = gateway(seeded, wallet.cancel, {"out_trade_no": "bar-big"})
    assert cancelled["action"] == "refund"
    assert user(seeded, LIN)["balance_minor"] == before
    assert gateway(seeded, wallet.query, {"out_trade_no": "bar-big"})["trade_status"] == "TRADE_CLOSED"
    assert_ledger_ok(seeded)


def test_unpaid_trades_close_cancel_and_expire(seeded: App, clock: Any) -> None:
    gateway(seeded, wallet.precreate, {"out_trade_no": "c1", "total_amount": "1.00", "subject": "x"})
    assert gateway(seeded, wallet.close, {"out_trade_no": "c1"})["out_trade_no"] == "c1"
    gateway(seeded, wallet.precreate, {"out_trade_no": "c2", "total_amount": "1.00", "subject": "x"})
    assert gateway(seeded, wallet.cancel, {"out_trade_no": "c2"})["action"] == "close"
    created = gateway(seeded, wallet.precreate, {"out_trade_no": "c3", "total_amount": "1.00", "subject": "x"})
    clock.advance(360)
    assert gateway(seeded, wallet.query, {"out_trade_no": "c3"})["trade_status"] == "TRADE_CLOSED"
    with pytest.raises(WalletError) as late:
        run(seeded, wallet.scan, created["qr_code"], LIN)
    assert late.value.code == "ACQ.TRADE_HAS_CLOSE"
    with pytest.raises(WalletError) as missing:
        gateway(seeded, wallet.query, {"out_trade_no": "nope"})
    assert missing.value.code == "ACQ.TRADE_NOT_EXIST"


def test_out_trade_no_reused_with_other_data_is_refused(seeded: App) -> None:
    gateway(seeded, wallet.precreate, {"out_trade_no": "dup", "total_amount": "1.00", "subject": "x"})
    again = gateway(seeded, wallet.precreate, {"out_trade_no": "dup", "total_amount": "1.00", "subject": "x"})
    assert again["out_trade_no"] == "dup"
    with pytest.raises(WalletError) as other:
        gateway(seeded, wallet.precreate, {"out_trade_no": "dup", "total_amount": "2.00", "subject": "x"})
    assert other.value.code == "ACQ.CONTEXT_INCONSISTENT"


def test_insufficient_balance_refused_and_nothing_written(seeded: App) -> None:
    created = gateway(seeded, wallet.precreate, {"out_trade_no": "poor", "total_amount": "50.00", "subject": "x"})
    with pytest.raises(WalletError) as poor:
        run(seeded, wallet.scan, created["qr_code"], ZHANG, funding="balance")
    assert poor.value.code == "ACQ.BUYER_BALANCE_NOT_ENOUGH"
    assert user(seeded, ZHANG)["balance_minor"] == 1000
    assert gateway(seeded, wallet.query, {"out_trade_no": "poor"})["trade_status"] == "WAIT_BUYER_PAY"
    assert_ledger_ok(seeded)


def test_card_funded_trade_refunds_to_the_default_linked_card(seeded: App) -> None:
    created = gateway(seeded, wallet.precreate, {"out_trade_no": "by-card", "total_amount": "40.00", "subject": "x"})
    paid = run(seeded, wallet.scan, created["qr_code"], LIN, funding="card")  # no card named: the first linked
    assert paid["funding"] == "card"
    assert gateway(seeded, wallet.cancel, {"out_trade_no": "by-card"})["action"] == "refund"
    with seeded.uow(write=False) as uow:
        card = uow.ledger.find_account("card:visa-cvn18-approve", "cardholder_funds", "CNY")
    assert card is not None and card.balances.available_credit_balance == 500_000
    assert_ledger_ok(seeded)


def test_a_second_code_in_the_same_minute_is_fresh_and_a_third_waits(seeded: App) -> None:
    first = code_for(seeded, LIN)
    gateway(seeded, wallet.pay_by_code, {"out_trade_no": "m1", "auth_code": first, "total_amount": "1.00",
                                         "subject": "x"})
    second = code_for(seeded, LIN)
    assert second != first
    status, _ = gateway(seeded, wallet.pay_by_code, {"out_trade_no": "m2", "auth_code": second,
                                                     "total_amount": "1.00", "subject": "x"})
    assert status == "10000"
    with pytest.raises(WalletError) as later:
        code_for(seeded, LIN)
    assert later.value.code == "code_unavailable"


def test_cancel_after_a_merchant_refund_named_cancel_refunds_the_rest(seeded: App) -> None:
    created = gateway(seeded, wallet.precreate, {"out_trade_no": "cx", "total_amount": "10.00", "subject": "x"})
    run(seeded, wallet.scan, created["qr_code"], LIN)
    gateway(seeded, wallet.refund, {"out_trade_no": "cx", "refund_amount": "3.00", "out_request_no": "cancel"})
    assert gateway(seeded, wallet.cancel, {"out_trade_no": "cx"})["action"] == "refund"
    assert gateway(seeded, wallet.query, {"out_trade_no": "cx"})["trade_status"] == "TRADE_CLOSED"
    assert_ledger_ok(seeded)


def test_the_sweeper_closes_unpaid_trades_past_their_timeout_and_notifies(seeded: App, clock: Any) -> None:
    gateway(seeded, wallet.precreate, {"out_trade_no": "late", "total_amount": "1.00", "subject": "x"},
            "http://127.0.0.1:9/notify")
    gateway(seeded, wallet.precreate, {"out_trade_no": "fresh", "total_amount": "1.00", "subject": "x",
                                       "timeout_express": "1h"})
    assert wallet.sweep_expired_trades(seeded) == 0
    clock.advance(301)
    assert wallet.sweep_expired_trades(seeded) == 1
    with seeded.uow(write=False) as uow:
        late = uow.wallet.trade_by_out_trade_no(CAFE_APP, "late")
        fresh = uow.wallet.trade_by_out_trade_no(CAFE_APP, "fresh")
        events = [n.event for n in uow.wallet.notifications_of(late.trade_no)]
    assert (late.state, fresh.state, events) == ("TRADE_CLOSED", "WAIT_BUYER_PAY", ["TRADE_CLOSED"])


def test_the_buyer_gets_one_sms_per_payment_and_refund(seeded: App) -> None:
    created = gateway(seeded, wallet.precreate, {"out_trade_no": "sms", "total_amount": "9.90", "subject": "x"})
    run(seeded, wallet.scan, created["qr_code"], LIN)
    gateway(seeded, wallet.refund, {"out_trade_no": "sms", "refund_amount": "1.00", "out_request_no": "a"})
    gateway(seeded, wallet.refund, {"out_trade_no": "sms", "refund_amount": "1.00", "out_request_no": "a"})  # replay
    with seeded.uow(write=False) as uow:
        notices = uow.host.notifications(f"wallet:{LIN}")
    assert [n["recipient"] for n in notices] == ["13800000001", "13800000001"]
    assert "CNY 9.90 paid to Harbour Café" in notices[0]["text"] and "CNY 1.00 refunded by" in notices[1]["text"]
