"""`paypos wallet …` and `paypos sandbox wallet-apps|wallet-users`, run as a subprocess on a
private copy of an initialised sandbox (SQLite). The merchant's side (a collection code, a
scanner charging a payment code) is played in this process on the same database. A
refused operation exits 1 with `error: <reason>` on stderr; a usage error exits 2."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from paypos.bootstrap import App, bootstrap
from paypos.config import Settings
from paypos.networks.sandbox import catalog
from paypos.networks.sandbox.wallet_tokens import wallet_user_token
from paypos.services import wallet

if TYPE_CHECKING:
    from conftest import PayposCli

LIN = "2088100000000001"
ZHANG = "2088100000000002"
SAM = "2088100000000003"
CAFE_APP = "2021000000000001"
Result = subprocess.CompletedProcess[str]


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


class Wallet:
    """`paypos wallet …` on one data dir."""

    def __init__(self, cli: PayposCli, data_dir: Path) -> None:
        self.cli, self.data_dir = cli, data_dir

    def run(self, *args: str) -> Result:
        return self.cli.run("wallet", *args, "--data-dir", str(self.data_dir), env=self.cli.env(COLUMNS="200"))

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)



@pytest.fixture
def buyer(cli: PayposCli, sandbox_copy: Path) -> Wallet:
    return Wallet(cli, sandbox_copy)


@pytest.fixture
def merchant(sandbox_copy: Path) -> Iterator[App]:
    """The same database, wired in this process (real clock: payment codes are time-based)."""
    settings = Settings(data_dir=sandbox_copy, database_url=f"sqlite:///{sandbox_copy / 'paypos.db'}", data_key=None)
    app = bootstrap(settings, initialising=False)
    yield app
    app.close()


def precreate(app: App, out_trade_no: str, amount: str) -> str:
    biz = {"out_trade_no": out_trade_no, "total_amount": amount, "subject": "Coffee machine"}
    with app.uow() as uow:
        created = wallet.precreate(uow, app.vault, app.clock(), uow.wallet.get_app(CAFE_APP), biz, None)
        uow.commit()
    return created["qr_code"]


def balance(app: App, user: str = LIN) -> int:
    """Read in this process: quicker than `paypos wallet show`, and the same rows."""
    with app.uow(write=False) as uow:
        return wallet.buyer_summary(uow, user)["balance_minor"]


def static_code(app: App) -> str:
    with app.uow(write=False) as uow:
        return wallet.collection_payload(uow.registry.get_merchant(catalog.CAFE.merchant_id), None, None)


# --- sandbox listings ----------------------------------------------------------------------------


def test_wallet_apps_json_gives_each_app_a_matching_rsa2_key_pair_and_the_gateway(cli: PayposCli, sandbox_dir: Path):
    default, custom = cli.run_many([
        ["sandbox", "wallet-apps", "--json", "--data-dir", str(sandbox_dir)],
        ["sandbox", "wallet-apps", "--json", "--gateway-url", "https://pos.example/wallet/gateway.do",
         "--data-dir", str(sandbox_dir)],
    ])
    assert default.returncode == 0, default.stderr
    apps = json.loads(default.stdout)
    assert [(a["app_id"], a["merchant_id"]) for a in apps] == [
        (CAFE_APP, "PPCAFE000000001"), ("2021000000000002", "PPSHOP000000001")]
    for row in apps:
        assert {"app_id", "merchant_id", "app_private_key", "app_public_key", "wallet_public_key",
                "gateway_url"} <= set(row)
        private = load_pem_private_key(row["app_private_key"].encode(), password=None)
        public = load_pem_public_key(row["app_public_key"].encode())
        wallet_key = load_pem_public_key(row["wallet_public_key"].encode())
        assert isinstance(private, rsa.RSAPrivateKey) and private.key_size >= 2048
        assert private.public_key().public_numbers() == public.public_numbers()
        assert isinstance(wallet_key, rsa.RSAPublicKey) and wallet_key.public_numbers() != public.public_numbers()
        signature = private.sign(b"app_id=" + row["app_id"].encode(), padding.PKCS1v15(), SHA256())
        public.verify(signature, b"app_id=" + row["app_id"].encode(), padding.PKCS1v15(), SHA256())
        assert row["gateway_url"] == "http://127.0.0.1:8000/wallet/gateway.do"
    assert {a["gateway_url"] for a in json.loads(custom.stdout)} == {"https://pos.example/wallet/gateway.do"}


def test_wallet_users_json_gives_balances_limits_and_api_tokens(cli: PayposCli, sandbox_dir: Path):
    as_json, table = cli.run_many([
        ["sandbox", "wallet-users", "--json", "--data-dir", str(sandbox_dir)],
        ["sandbox", "wallet-users", "--data-dir", str(sandbox_dir)],
    ], env=cli.env(COLUMNS="200"))
    assert as_json.returncode == 0, as_json.stderr
    users = {u["user_id"]: u for u in json.loads(as_json.stdout)}
    assert set(users) == {LIN, ZHANG, SAM}
    for user in users.values():
        assert {"user_id", "phone", "balance_minor", "credit_limit_minor", "api_token"} <= set(user)
        assert type(user["balance_minor"]) is int and type(user["credit_limit_minor"]) is int
        assert user["api_token"] == wallet_user_token(user["user_id"]) and user["api_token"].startswith("wu_test_")
    assert (users[LIN]["phone"], users[LIN]["balance_minor"], users[LIN]["currency"]) == ("13800000001", 500_000, "CNY")
    assert users[SAM]["currency"] == "USD"
    assert table.returncode == 0 and "Lin Wei" in table.stdout and users[LIN]["api_token"] in table.stdout


# --- scan --------------------------------------------------------------------------------------------


def test_scan_pays_a_dynamic_code_from_balance(buyer: Wallet, merchant: App):
    trade = buyer.json("scan", precreate(merchant, "o-1", "88.88"), "--user", LIN)
    assert (trade["state"], trade["funding"], trade["amount_minor"], trade["currency"]) == (
        "TRADE_SUCCESS", "balance", 8888, "CNY")
    shown = buyer.json("show", "--user", LIN)
    assert shown["balance_minor"] == 500_000 - 8888
    assert [t["trade_no"] for t in shown["recent_trades"]] == [trade["trade_no"]]


def test_scan_pays_from_a_linked_card_and_prints_a_table(buyer: Wallet, merchant: App):
    result = buyer.run("scan", precreate(merchant, "o-2", "25.00"), "--user", LIN, "--funding", "card",
                       "--card", "visa-cvn18-approve")
    assert result.returncode == 0, result.stderr
    assert "TRADE_SUCCESS" in result.stdout and "CNY 25.00" in result.stdout and "card" in result.stdout
    assert balance(merchant) == 500_000


def test_scan_with_credit_pay_in_6_installments_then_bills_repay_and_payoff(buyer: Wallet, merchant: App):
    trade = buyer.json("scan", precreate(merchant, "hb-1", "600.00"), "--user", LIN, "--funding", "creditpay",
                       "--installments", "6")
    assert (trade["funding"], trade["installments"], trade["fee_payer"]) == ("creditpay", 6, "buyer")
    statement = buyer.json("bills", "--user", LIN)
    assert [p["trade_no"] for p in statement["plans"]] == [trade["trade_no"]]
    assert statement["owed_minor"] >= 60_000
    assert statement["available_minor"] == statement["credit_limit_minor"] - 60_000

    repaid = buyer.json("repay", "--user", LIN, "--amount", "50", "--repayment-id", "r-1")
    again = buyer.json("repay", "--user", LIN, "--amount", "50", "--repayment-id", "r-1")
    assert repaid["amount_minor"] == 5_000 and again["owed_minor"] == repaid["owed_minor"]
    assert repaid["owed_minor"] == statement["owed_minor"] - 5_000
    assert balance(merchant) == 500_000 - 5_000

    paid_off = buyer.json("payoff", "--user", LIN, "--trade", trade["trade_no"])
    assert paid_off["principal_paid_minor"] == 55_000 and paid_off["owed_minor"] == 0
    assert_one_line_error(buyer.run("payoff", "--user", LIN, "--trade", trade["trade_no"]), 1, "already paid off")
    table = buyer.run("bills", "--user", LIN)
    assert table.returncode == 0 and "Installment plans" in table.stdout and "CNY 600.00" in table.stdout


def test_scan_a_static_code_needs_the_typed_amount(buyer: Wallet, merchant: App):
    payload = static_code(merchant)
    missing, typed = buyer.cli.run_many([
        ["wallet", "scan", payload, "--user", LIN, "--json", "--data-dir", str(buyer.data_dir)],
        ["wallet", "scan", payload, "--user", LIN, "--amount", "12.5", "--json", "--data-dir", str(buyer.data_dir)],
    ])
    assert_one_line_error(missing, 1, "amount")
    assert typed.returncode == 0, typed.stderr
    assert json.loads(typed.stdout)["amount_minor"] == 1250
    assert balance(merchant) == 500_000 - 1250


@pytest.mark.parametrize(
    ("payload", "fragments"),
    [
        ("garbage", ["not a valid collection code"]),
        ("CRC", ["not a valid collection code", "CRC"]),
        ("FOREIGN", ["not a paypos collection code"]),
        ("PAID", ["already paid"]),
    ],
    ids=["garbage", "bad-crc", "another-networks-code", "already-paid"],
)
def test_scan_refuses_a_bad_payload_with_exit_1_and_the_reason(buyer: Wallet, merchant: App, payload, fragments):
    if payload == "CRC":
        good = precreate(merchant, "crc", "1.00")
        payload = good[:-4] + ("0000" if good[-4:] != "0000" else "FFFF")
    elif payload == "FOREIGN":
        from tests.e2e.test_cli_qr import FOREIGN_PAYLOAD

        payload = FOREIGN_PAYLOAD
    elif payload == "PAID":
        payload = precreate(merchant, "paid", "1.00")
        assert buyer.run("scan", payload, "--user", LIN).returncode == 0
    before = balance(merchant)
    assert_one_line_error(buyer.run("scan", payload, "--user", LIN, "--json"), 1, *fragments)
    assert balance(merchant) == before


def test_scan_refusals_leave_the_wallet_and_the_trade_as_they_were(buyer: Wallet, merchant: App):
    payload = precreate(merchant, "poor", "50.00")
    poor, usd = buyer.cli.run_many([
        ["wallet", "scan", payload, "--user", ZHANG, "--data-dir", str(buyer.data_dir)],
        ["wallet", "scan", payload, "--user", SAM, "--data-dir", str(buyer.data_dir)],
    ])
    assert_one_line_error(poor, 1, "not enough funds")
    assert_one_line_error(usd, 1, "USD", "CNY")
    assert balance(merchant, ZHANG) == 1_000
    assert buyer.json("scan", payload, "--user", LIN)["state"] == "TRADE_SUCCESS"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--installments", "5"], "--installments"),
        (["--funding", "cash"], "--funding"),
        (["--amount", "1.234"], "2 decimal places"),
        (["--amount", "-1"], "above zero"),
        (["--amount", "1e3"], "plain decimal"),
        ([], "Missing option '--user'"),
    ],
    ids=["installments", "funding", "too-many-decimals", "negative", "exponent", "no-user"],
)
def test_scan_usage_errors_exit_2(buyer: Wallet, merchant: App, args, fragment):
    user = ["--user", LIN] if args else []
    result = buyer.run("scan", static_code(merchant), *user, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert fragment in " ".join(result.stderr.split()) and "Traceback" not in result.stderr


def test_unknown_user_exits_1_and_an_uninitialised_data_dir_exits_2(buyer: Wallet, tmp_path: Path):
    assert_one_line_error(buyer.run("show", "--user", "2088199999999999"), 1, "no wallet user")
    empty = buyer.cli.run("wallet", "show", "--user", LIN, "--data-dir", str(tmp_path / "none"))
    assert_one_line_error(empty, 2, "paypos init")


# --- payment code and confirm ---------------------------------------------------------------------------


def test_code_prints_a_fresh_18_digit_code_as_json_text_qr_and_code_128(buyer: Wallet, tmp_path: Path):
    shown = buyer.json("code", "--user", LIN)
    assert len(shown["code"]) == 18 and shown["code"].isdigit() and shown["user_id"] == LIN
    assert shown["no_confirm_limit_minor"] == 20_000 and shown["valid_until"]
    svg = tmp_path / "code.svg"
    drawn = buyer.run("code", "--user", LIN, "--qr", "--barcode", str(svg))
    assert drawn.returncode == 0, drawn.stderr
    assert set("▀▄█") & set(drawn.stdout) and f"wrote {svg}" in " ".join(drawn.stderr.split())
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert any(el.tag.endswith("rect") for el in root.iter())


def test_code_usage_errors_exit_2(buyer: Wallet, tmp_path: Path):
    for result in buyer.cli.run_many([
        ["wallet", "code", "--user", LIN, "--qr", "--json", "--data-dir", str(buyer.data_dir)],
        ["wallet", "code", "--user", LIN, "--barcode", str(tmp_path / "c.png"), "--data-dir", str(buyer.data_dir)],
    ]):
        assert_one_line_error(result, 2)
    assert not (tmp_path / "c.png").exists()


def test_a_charge_above_the_limit_waits_until_the_buyer_confirms(buyer: Wallet, merchant: App):
    code = buyer.json("code", "--user", LIN)["code"]
    biz = {"out_trade_no": "bar-big", "scene": "bar_code", "auth_code": code, "total_amount": "300.00",
           "subject": "Cake"}
    with merchant.uow() as uow:
        status, fields = wallet.pay_by_code(uow, merchant.vault, merchant.clock(), uow.wallet.get_app(CAFE_APP),
                                            biz, None)
        uow.commit()
    assert status == "10003"
    waiting = buyer.json("show", "--user", LIN)["awaiting_confirmation"]
    assert [t["trade_no"] for t in waiting] == [fields["trade_no"]]
    assert "Awaiting your confirmation" in buyer.run("show", "--user", LIN).stdout

    paid = buyer.json("confirm", "--user", LIN)

    assert (paid["trade_no"], paid["state"], paid["amount_minor"]) == (fields["trade_no"], "TRADE_SUCCESS", 30_000)
    assert balance(merchant) == 500_000 - 30_000
    assert_one_line_error(buyer.run("confirm", "--user", LIN), 1, "no payment waits")


# --- top-up ---------------------------------------------------------------------------------------------


def test_topup_moves_money_from_a_linked_card_once_per_topup_id(buyer: Wallet):
    first = buyer.json("topup", "--user", LIN, "--card", "visa-cvn18-approve", "--amount", "100.50",
                       "--topup-id", "t-1")
    again = buyer.json("topup", "--user", LIN, "--card", "visa-cvn18-approve", "--amount", "100.50",
                       "--topup-id", "t-1")
    assert (first["topup_id"], first["amount_minor"]) == ("t-1", 10_050)
    assert first["wallet"]["balance_minor"] == again["wallet"]["balance_minor"] == 500_000 + 10_050
    assert_one_line_error(buyer.run("topup", "--user", LIN, "--card", "visa-usd-cvn18-approve", "--amount", "1"),
                          1, "linked cards")


def test_repay_with_nothing_owed_exits_1_and_card_without_card_source_exits_2(buyer: Wallet):
    nothing, misuse = buyer.cli.run_many([
        ["wallet", "repay", "--user", LIN, "--amount", "1", "--data-dir", str(buyer.data_dir)],
        ["wallet", "repay", "--user", LIN, "--amount", "1", "--card", "visa-cvn18-approve",
         "--data-dir", str(buyer.data_dir)],
    ])
    assert_one_line_error(nothing, 1, "nothing to repay")
    assert_one_line_error(misuse, 2, "--source card")
