"""`paypos prepaid …` (the Typer app, in-process) against a real sandbox data dir, and the
issue's acceptance run: issue, top up, pay at a terminal over ISO 8583/TCP (`paypos serve` and
`paypos terminal`, real processes), balance inquiry, freeze — `paypos ledger check` passes
after each step."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from paypos import limits
from paypos.entrypoints.cli_prepaid import prepaid_app
from paypos.networks.sandbox import wallet_catalog
from paypos.protocol.card import luhn_valid
from tests.e2e.hostproc import running_host

if TYPE_CHECKING:
    from conftest import PayposCli

CAFE = "PPCAFE000000001"
LIN_WEI = wallet_catalog.USERS[0].user_id  # a CNY sandbox wallet user with a balance
# The environment without any PAYPOS_* setting: only the options given count.
CLEAN_ENV: dict[str, str | None] = {k: None for k in os.environ if k.startswith("PAYPOS_")}


def prepaid(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(prepaid_app, [*args, "--data-dir", str(data_dir)], env={**CLEAN_ENV, "COLUMNS": "200"})


def prepaid_json(data_dir: Path, *args: str) -> Any:
    result = prepaid(data_dir, *args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def ledger_ok(cli: PayposCli, data_dir: Path) -> None:
    result = cli.run("ledger", "check", "--data-dir", str(data_dir))
    assert result.returncode == 0 and "ledger OK" in result.stdout, (result.stdout, result.stderr)


# --- the commands --------------------------------------------------------------------------------


def test_issue_prints_a_luhn_valid_pan_once_and_list_shows_it_masked(sandbox_copy: Path) -> None:
    card = prepaid_json(sandbox_copy, "issue", "--merchant", CAFE, "--kind", "gift", "--load", "100.00",
                        "--pin", "1234", "--issue-id", "gift-1")
    assert card["pan"].startswith("6299990") and luhn_valid(card["pan"]) and card["balance_minor"] == 10_000
    assert prepaid_json(sandbox_copy, "issue", "--merchant", CAFE, "--kind", "gift", "--load", "100.00",
                        "--pin", "1234", "--issue-id", "gift-1") == card
    listed = prepaid_json(sandbox_copy, "list", "--merchant", CAFE)
    assert [(c["card_id"], c["masked_pan"]) for c in listed] == [(card["card_id"], card["masked_pan"])]
    table = prepaid(sandbox_copy, "list")
    assert table.exit_code == 0 and card["masked_pan"] in table.stdout and card["pan"] not in table.stdout


def test_top_ups_in_major_units_from_cash_and_a_wallet_and_the_float(sandbox_copy: Path) -> None:
    card = prepaid_json(sandbox_copy, "issue", "--merchant", CAFE, "--kind", "reloadable", "--pin", "1234")
    assert card["balance_minor"] == 0
    cash = prepaid_json(sandbox_copy, "topup", card["card_id"], "--amount", "12.50", "--topup-id", "t1")
    assert cash["balance_minor"] == 1_250
    assert prepaid_json(sandbox_copy, "topup", card["card_id"], "--amount", "12.50", "--topup-id", "t1") == cash
    wallet = prepaid_json(sandbox_copy, "topup", card["card_id"], "--amount", "0.75", "--source", "wallet",
                          "--user", LIN_WEI)
    assert wallet["balance_minor"] == 1_325
    (row,) = prepaid_json(sandbox_copy, "float")
    assert (row["unspent_minor"], row["float_minor"], row["wallet_loaded_minor"], row["agrees"]) == \
        (1_325, 1_250, 75, True)
    assert prepaid(sandbox_copy, "float").exit_code == 0


def test_freeze_refuses_a_top_up_until_unfrozen(sandbox_copy: Path) -> None:
    card_id = prepaid_json(sandbox_copy, "issue", "--merchant", CAFE, "--kind", "reloadable", "--load", "1",
                           "--pin", "1234")["card_id"]
    assert prepaid_json(sandbox_copy, "freeze", card_id)["status"] == "frozen"
    assert_one_line_error(prepaid(sandbox_copy, "topup", card_id, "--amount", "1.00"), 1, "frozen")
    assert prepaid_json(sandbox_copy, "unfreeze", card_id)["status"] == "active"
    assert prepaid_json(sandbox_copy, "topup", card_id, "--amount", "1.00")["balance_minor"] == 200
    assert prepaid_json(sandbox_copy, "balance", card_id)["balance_minor"] == 200


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (["issue", "--merchant", CAFE, "--kind", "gift", "--load", "1.001", "--pin", "1234"], 2, "--load"),
    (["issue", "--merchant", CAFE, "--kind", "gift", "--load", "0", "--pin", "1234"], 2, "initial load"),
    (["issue", "--merchant", CAFE, "--kind", "gift", "--load", "1", "--pin", "12"], 2, "PIN"),
    (["issue", "--merchant", CAFE, "--kind", "gift", "--load", "1", "--pin", "1234", "--interfaces", "nfc"], 2,
     "--interfaces"),
    (["issue", "--merchant", "NOSUCHMERCHANT1", "--kind", "gift", "--load", "1", "--pin", "1234"], 1,
     "no merchant"),
    (["topup", "prepaid-missing", "--amount", "1.00"], 1, "no prepaid card"),
    (["topup", "prepaid-missing", "--amount", "1.00", "--user", "x"], 2, "--user"),
    (["balance", "visa-cvn18-approve"], 1, "no prepaid card"),
    (["freeze", "prepaid-missing"], 1, "no prepaid card"),
])
def test_bad_input_exits_2_and_a_refusal_1_with_one_line(
    sandbox_copy: Path, args: list[str], code: int, fragment: str
) -> None:
    assert_one_line_error(prepaid(sandbox_copy, *args), code, fragment)


def test_a_gift_card_top_up_is_refused_in_one_line(sandbox_copy: Path) -> None:
    card_id = prepaid_json(sandbox_copy, "issue", "--merchant", CAFE, "--kind", "gift", "--load", "5",
                           "--pin", "1234")["card_id"]
    assert_one_line_error(prepaid(sandbox_copy, "topup", card_id, "--amount", "1.00"), 1, "gift card")


def test_an_uninitialised_data_dir_exits_2(tmp_path: Path) -> None:
    assert_one_line_error(prepaid(tmp_path / "none", "list"), 2, "paypos init")


# --- acceptance: over ISO 8583 through the real host ---------------------------------------------


def test_issue_top_up_pay_at_the_terminal_balance_inquiry_and_freeze_keep_the_ledger_checked(
    cli: PayposCli, sandbox_copy: Path, tmp_path: Path
) -> None:
    data = str(sandbox_copy)
    card = prepaid_json(sandbox_copy, "issue", "--merchant", CAFE, "--kind", "reloadable", "--load", "100.00",
                        "--pin", "4321", "--issue-id", "acceptance")
    card_id = card["card_id"]
    stripe_id = prepaid_json(sandbox_copy, "issue", "--merchant", CAFE, "--kind", "gift", "--load", "20.00",
                             "--pin", "8642", "--interfaces", "magstripe")["card_id"]  # swiped: no chip
    ledger_ok(cli, sandbox_copy)
    assert prepaid_json(sandbox_copy, "topup", card_id, "--amount", "50.00")["balance_minor"] == 15_000
    ledger_ok(cli, sandbox_copy)
    with running_host(cli.command, sandbox_copy, tmp_path / "serve.log", env=cli.env()) as (iso_port, _):
        terminal = ["--terminal", "CAFE0001", "--port", str(iso_port), "--data-dir", data, "--json"]
        tap = cli.run("terminal", "pay", "--amount", "12.34", "--card", card_id, "--entry", "contactless", *terminal)
        assert tap.returncode == 0 and json.loads(tap.stdout)["response_code"] == "00", (tap.stdout, tap.stderr)
        swipe = cli.run("terminal", "pay", "--amount", "0.66", "--card", stripe_id, "--entry", "swipe",
                        "--pin", "8642", *terminal)
        assert swipe.returncode == 0 and json.loads(swipe.stdout)["response_code"] == "00", swipe.stdout
        assert prepaid_json(sandbox_copy, "balance", card_id)["balance_minor"] == 15_000 - 1_234
        assert prepaid_json(sandbox_copy, "balance", stripe_id)["balance_minor"] == 2_000 - 66
        ledger_ok(cli, sandbox_copy)
        inquiry = cli.run("terminal", "balance", "--card", card_id, "--entry", "chip", "--pin", "4321", *terminal)
        assert inquiry.returncode == 0, (inquiry.stdout, inquiry.stderr)
        assert json.loads(inquiry.stdout)["balance_minor"] == 15_000 - 1_234
        ledger_ok(cli, sandbox_copy)
        assert prepaid_json(sandbox_copy, "freeze", card_id)["status"] == "frozen"
        ledger_ok(cli, sandbox_copy)
        time.sleep(limits.registry_cache_ttl_s + 0.5)  # the running host's cached copy of the card expires
        frozen = cli.run("terminal", "pay", "--amount", "1.00", "--card", card_id, "--entry", "contactless", *terminal)
        assert json.loads(frozen.stdout)["response_code"] == "62", (frozen.stdout, frozen.stderr)
    assert prepaid_json(sandbox_copy, "balance", card_id)["balance_minor"] == 15_000 - 1_234
    (row,) = prepaid_json(sandbox_copy, "float")
    assert (row["unspent_minor"], row["float_minor"], row["redeemed_minor"], row["agrees"]) == \
        (15_000 - 1_234 + 2_000 - 66, 17_000, 1_300, True)
    ledger_ok(cli, sandbox_copy)
