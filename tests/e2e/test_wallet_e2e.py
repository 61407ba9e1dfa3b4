"""Issue 5's wallet acceptance through the real processes: `paypos serve` answers the
merchant's signed gateway calls over HTTP (adapters.walletclient, written from the
platform's rules), the buyer uses `paypos wallet …` in its own process, and
`paypos ledger check` passes after each step.

Covered here: a dynamic QR paid from balance, from a card, by credit pay in 6 installments
with merchant subsidy; a static QR with a typed amount; a payment code charged under and over
the confirmation limit; refunds and cancels; the credit-pay bill, a partial repayment and
overdue interest (the sandbox test clock `--as-of`). The SDK run, notifications and forged
signatures are in test_wallet_sdk.py; terminals in test_terminal_wallet.py; prepaid cards in
test_cli_prepaid.py.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from paypos.adapters.walletclient import WalletGatewayClient
from tests.e2e.conftest import PayposCli
from tests.e2e.hostproc import running_host

LIN = "2088100000000001"
CAFE_APP = "2021000000000001"


def run_json(cli: PayposCli, data_dir: Path, *args: str) -> Any:
    result = cli.run(*args, "--json", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def ledger_ok(cli: PayposCli, data_dir: Path) -> None:
    result = cli.run("ledger", "check", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def served(cli: PayposCli, sandbox_copy: Path, tmp_path: Path) -> Any:
    with running_host(cli.command, sandbox_copy, tmp_path / "serve.log") as (_iso, http_port):
        gateway = f"http://127.0.0.1:{http_port}/wallet/gateway.do"
        apps = run_json(cli, sandbox_copy, "sandbox", "wallet-apps", "--gateway-url", gateway)
        app = next(a for a in apps if a["app_id"] == CAFE_APP)
        client = WalletGatewayClient(gateway, app["app_id"], app["app_private_key"], app["wallet_public_key"])
        yield client, app, sandbox_copy


def precreate(client: WalletGatewayClient, amount: str, **extra: Any) -> tuple[str, str]:
    out_trade_no = uuid.uuid4().hex
    created = client.call("alipay.trade.precreate", {"out_trade_no": out_trade_no, "total_amount": amount,
                                                     "subject": "e2e", **extra})
    assert created["code"] == "10000", created
    return out_trade_no, created["qr_code"]


def status(client: WalletGatewayClient, out_trade_no: str) -> str:
    return str(client.call("alipay.trade.query", {"out_trade_no": out_trade_no})["trade_status"])


def balance(cli: PayposCli, data_dir: Path) -> int:
    return int(run_json(cli, data_dir, "wallet", "show", "--user", LIN)["balance_minor"])


def test_dynamic_qr_from_balance_card_and_credit_pay_then_refunds_and_cancel(cli: PayposCli, served: Any) -> None:
    client, _app, data_dir = served
    start = balance(cli, data_dir)

    by_balance, payload = precreate(client, "25.00")
    assert status(client, by_balance) == "WAIT_BUYER_PAY"
    paid = run_json(cli, data_dir, "wallet", "scan", payload, "--user", LIN)
    assert paid["state"] == "TRADE_SUCCESS" and status(client, by_balance) == "TRADE_SUCCESS"
    assert balance(cli, data_dir) == start - 2500
    ledger_ok(cli, data_dir)

    by_card, payload = precreate(client, "40.00")
    assert run_json(cli, data_dir, "wallet", "scan", payload, "--user", LIN, "--funding", "card")["funding"] == "card"
    assert balance(cli, data_dir) == start - 2500  # the card paid, not the balance
    ledger_ok(cli, data_dir)

    by_credit, payload = precreate(client, "600.00", extend_params={"hb_fq_num": "6", "hb_fq_seller_percent": "100"})
    credit = run_json(cli, data_dir, "wallet", "scan", payload, "--user", LIN, "--funding", "creditpay",
                      "--installments", "6")
    assert (credit["installments"], credit["fee_payer"]) == (6, "merchant")
    ledger_ok(cli, data_dir)

    refund = client.call("alipay.trade.refund", {"out_trade_no": by_balance, "refund_amount": "5.00",
                                                 "out_request_no": "part-1"})
    assert (refund["code"], refund["fund_change"], refund["refund_fee"]) == ("10000", "Y", "5.00")
    over = client.call("alipay.trade.refund", {"out_trade_no": by_balance, "refund_amount": "25.00",
                                               "out_request_no": "part-2"})
    assert over["sub_code"] == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    assert balance(cli, data_dir) == start - 2000
    cancelled = client.call("alipay.trade.cancel", {"out_trade_no": by_card})
    assert (cancelled["code"], cancelled.get("action")) == ("10000", "refund"), cancelled
    assert status(client, by_card) == "TRADE_CLOSED"
    ledger_ok(cli, data_dir)


def test_static_qr_with_a_typed_amount(cli: PayposCli, served: Any) -> None:
    _client, app, data_dir = served
    start = balance(cli, data_dir)
    missing = cli.run("wallet", "scan", app["static_qr_code"], "--user", LIN, "--data-dir", str(data_dir))
    assert missing.returncode != 0 and "amount" in missing.stderr
    paid = run_json(cli, data_dir, "wallet", "scan", app["static_qr_code"], "--user", LIN, "--amount", "12.34")
    assert paid["state"] == "TRADE_SUCCESS" and paid["amount_minor"] == 1234
    assert balance(cli, data_dir) == start - 1234
    ledger_ok(cli, data_dir)


def test_payment_code_under_and_over_the_confirmation_limit(cli: PayposCli, served: Any) -> None:
    client, _app, data_dir = served
    code = run_json(cli, data_dir, "wallet", "code", "--user", LIN)["code"]
    small = client.call("alipay.trade.pay", {"out_trade_no": "bar-small", "scene": "bar_code", "auth_code": code,
                                             "total_amount": "18.00", "subject": "bun"})
    assert small["code"] == "10000" and small["buyer_user_id"] == LIN
    reused = client.call("alipay.trade.pay", {"out_trade_no": "bar-again", "scene": "bar_code", "auth_code": code,
                                              "total_amount": "1.00", "subject": "bun"})
    assert reused["sub_code"] == "ACQ.PAYMENT_AUTH_CODE_INVALID"

    code = run_json(cli, data_dir, "wallet", "code", "--user", LIN)["code"]
    big = client.call("alipay.trade.pay", {"out_trade_no": "bar-big", "scene": "bar_code", "auth_code": code,
                                           "total_amount": "500.00", "subject": "cake"})
    assert big["code"] == "10003"  # waiting for the buyer
    assert status(client, "bar-big") == "WAIT_BUYER_PAY"
    confirmed = run_json(cli, data_dir, "wallet", "confirm", "--user", LIN)
    assert confirmed["state"] == "TRADE_SUCCESS" and status(client, "bar-big") == "TRADE_SUCCESS"
    ledger_ok(cli, data_dir)


def test_credit_pay_bill_partial_repay_and_overdue_interest(cli: PayposCli, served: Any) -> None:
    client, _app, data_dir = served
    _, payload = precreate(client, "300.00")
    run_json(cli, data_dir, "wallet", "scan", payload, "--user", LIN, "--funding", "creditpay")
    account = run_json(cli, data_dir, "wallet", "bills", "--user", LIN)
    assert account["owed_minor"] == 30000 and account["bills"] == []

    # The sandbox test clock: the day after the next bill date (the 1st), then ten days past its due date (10th).
    today = datetime.now(timezone(timedelta(hours=8))).date()
    next_month = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    billed = run_json(cli, data_dir, "wallet", "bills", "--user", LIN, "--as-of", str(next_month.replace(day=2)))
    (bill, *_rest) = billed["bills"]
    assert bill["amount_minor"] == 30000 and bill["state"] == "open"
    repaid = run_json(cli, data_dir, "wallet", "repay", "--user", LIN, "--amount", "100.00",
                      "--as-of", str(next_month.replace(day=2)),
                      "--repayment-id", "e2e-1")
    assert repaid["allocation"]["principal_minor"] == 10000 and repaid["owed_minor"] == 20000
    ledger_ok(cli, data_dir)
    late = run_json(cli, data_dir, "wallet", "bills", "--user", LIN, "--as-of", str(next_month.replace(day=20)))
    first = next(b for b in late["bills"] if b["bill_id"] == bill["bill_id"])
    assert first["state"] == "overdue" and first["interest_minor"] > 0
    assert late["owed_minor"] == 20000 + sum(b["interest_minor"] for b in late["bills"])
    ledger_ok(cli, data_dir)
