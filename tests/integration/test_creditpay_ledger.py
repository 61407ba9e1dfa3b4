"""Credit pay on the ledger (both backends): the monthly bill, a partial repayment (fees
before principal, limit restored by the principal), daily overdue interest after the due
date, early payoff waiving unbilled fees, refunds shrinking later bills. Worked numbers
follow docs/creditpay.md (bill day 1, due day 10, 0.05 %/day, 6 months at 4.5 %)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from paypos.bootstrap import App, init_database
from paypos.domain.wallet import WalletError
from paypos.services import creditpay, wallet
from paypos.services import ledger as ledger_service

CAFE_APP = "2021000000000001"
LIN = "2088100000000001"


@pytest.fixture
def seeded(app: App) -> App:
    init_database(app, sandbox=True)
    return app


def tx(app: App, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with app.uow() as uow:
        result = fn(uow, *args, **kwargs)
        uow.commit()
        return result


def buy(app: App, out_trade_no: str, amount: str, installments: int = 0, seller_pays: bool = False) -> str:
    biz: dict[str, Any] = {"out_trade_no": out_trade_no, "total_amount": amount, "subject": "goods"}
    if installments:
        biz["extend_params"] = {"hb_fq_num": str(installments), "hb_fq_seller_percent": "100" if seller_pays else "0"}
    with app.uow() as uow:
        wallet_app = uow.wallet.get_app(CAFE_APP)
        created = wallet.precreate(uow, app.vault, app.clock(), wallet_app, biz, None)
        paid = wallet.scan(uow, app.vault, app.clock(), created["qr_code"], LIN, funding="creditpay",
                           installments=installments)
        uow.commit()
    return str(paid["trade_no"])


def at(clock: Any, *moment: int) -> None:
    clock.now = datetime(*moment, tzinfo=UTC)


def balance(app: App) -> int:
    with app.uow(write=False) as uow:
        return int(wallet.buyer_summary(uow, LIN)["balance_minor"])


def ok(app: App) -> None:
    assert ledger_service.check(app.engine, app.clock) == []


def test_bill_partial_repay_and_overdue_interest(seeded: App, clock: Any) -> None:
    buy(seeded, "full", "300.00")
    buy(seeded, "six", "600.00", installments=6)
    start = tx(seeded, creditpay.bills, clock(), LIN)
    assert start["bills"] == [] and start["owed_minor"] == 30000 + 60000 + 2700  # buyer fee owed at purchase
    line = start["credit_limit_minor"]
    assert start["available_minor"] == line - 90000

    at(clock, 2026, 12, 2, 4)  # the 1 December bill (GMT+8) is out
    first = tx(seeded, creditpay.bills, clock(), LIN)
    (bill,) = first["bills"]
    assert (bill["bill_date"], bill["due_date"]) == ("2026-12-01", "2026-12-10")
    assert (bill["principal_minor"], bill["fee_minor"]) == (30000 + 10000, 450)
    assert bill["minimum_minor"] == 3000 + 10450  # 10 % of the pay-in-full part + the installment
    ok(seeded)

    before = balance(seeded)
    paid = tx(seeded, creditpay.repay, clock(), LIN, 20000, repayment_id="r-1")
    assert paid["allocation"] == {"interest_minor": 0, "fees_minor": 450, "principal_minor": 19550,
                                  "unbilled_principal_minor": 0}
    assert paid["available_minor"] == line - 90000 + 19550
    assert balance(seeded) == before - 20000
    again = tx(seeded, creditpay.repay, clock(), LIN, 20000, repayment_id="r-1")  # a retry: nothing moves twice
    assert again["owed_minor"] == paid["owed_minor"] and balance(seeded) == before - 20000
    with pytest.raises(WalletError) as other:
        tx(seeded, creditpay.repay, clock(), LIN, 100, repayment_id="r-1")
    assert other.value.code == "idempotency_mismatch"
    ok(seeded)

    at(clock, 2026, 12, 20, 4)  # ten days overdue on 204.50 unpaid
    late = tx(seeded, creditpay.bills, clock(), LIN)
    (bill,) = late["bills"]
    assert bill["state"] == "overdue"
    assert bill["interest_minor"] == 102  # 20450 * 0.05 % * 10 days = 102.25, half up
    assert tx(seeded, creditpay.bills, clock(), LIN)["bills"][0]["interest_minor"] == 102  # charged once a day
    ok(seeded)

    settled = tx(seeded, creditpay.repay, clock(), LIN, 20450 + 102, repayment_id="r-2")
    assert settled["allocation"]["interest_minor"] == 102
    assert tx(seeded, creditpay.bills, clock(), LIN)["bills"][0]["state"] == "paid"
    ok(seeded)


def test_early_payoff_waives_unbilled_fees_and_refund_shrinks_bills(seeded: App, clock: Any) -> None:
    six = buy(seeded, "six", "600.00", installments=6)
    at(clock, 2026, 12, 2, 4)
    tx(seeded, creditpay.bills, clock(), LIN)
    result = tx(seeded, creditpay.payoff, clock(), LIN, six)
    assert (result["installments_left"], result["principal_paid_minor"], result["fee_waived_minor"]) == (5, 50000, 2250)
    # what remains is the first bill: 100.00 + 4.50
    assert result["owed_minor"] == 10450
    at(clock, 2027, 1, 2, 4)
    bills = tx(seeded, creditpay.bills, clock(), LIN)["bills"]
    assert len(bills) == 1  # nothing billed in January: the plan was paid off
    with pytest.raises(WalletError):
        tx(seeded, creditpay.payoff, clock(), LIN, six)
    ok(seeded)


def test_refund_before_the_bill_is_not_billed(seeded: App, clock: Any) -> None:
    buy(seeded, "full", "300.00")
    with seeded.uow() as uow:
        wallet.refund(uow, seeded.vault, clock(), uow.wallet.get_app(CAFE_APP),
                      {"out_trade_no": "full", "refund_amount": "100.00", "out_request_no": "r"})
        uow.commit()
    at(clock, 2026, 12, 2, 4)
    (bill,) = tx(seeded, creditpay.bills, clock(), LIN)["bills"]
    assert bill["principal_minor"] == 20000
    ok(seeded)


def test_repay_refusals(seeded: App, clock: Any) -> None:
    with pytest.raises(WalletError) as nothing:
        tx(seeded, creditpay.repay, clock(), LIN, 100, repayment_id="x")
    assert nothing.value.code == "nothing_owed"
    buy(seeded, "full", "10.00")
    with pytest.raises(WalletError) as over:
        tx(seeded, creditpay.repay, clock(), LIN, 1001, repayment_id="y")
    assert over.value.code == "overpayment"
    with pytest.raises(WalletError) as bad_source:
        tx(seeded, creditpay.repay, clock(), LIN, 100, source="cash", repayment_id="z")
    assert bad_source.value.code == "invalid_source"
    early = tx(seeded, creditpay.repay, clock(), LIN, 1000, repayment_id="w")  # before any bill: prepaid principal
    assert early["allocation"]["unbilled_principal_minor"] == 1000 and early["owed_minor"] == 0
    ok(seeded)
