"""`paypos pricing ...` (the Typer app, in-process) on a sandbox data dir: create a plan, assign
it, quote a fee, bill a month twice (charged once), and the one-line refusals (exit 1 / 2)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from paypos.entrypoints.cli import app as cli_app
from paypos.entrypoints.cli_pricing import pricing_app
from paypos.networks.sandbox import catalog

CAFE = catalog.CAFE.merchant_id
CLEAN_ENV: dict[str, str | None] = {k: None for k in os.environ if k.startswith("PAYPOS_")}
PLAN = ["plans", "create", "--id", "tap-promo", "--name", "Tap promo", "--rate", "55",
        "--method-rate", "credit_pay=90", "--cap", "*=20.00", "--min", "debit_card=0.10", "--fixed-fee", "0.05",
        "--monthly-fee", "30.00", "--device", "buyout", "--price", "199.00",
        "--promotion", "launch,contactless=0,until=2099-01-01T00:00:00Z"]


def pricing(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(pricing_app, [*args, "--data-dir", str(data_dir)], env={**CLEAN_ENV, "COLUMNS": "200"})


def pricing_json(data_dir: Path, *args: str) -> Any:
    result = pricing(data_dir, *args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def assert_one_line_error(result: Result, code: int, fragment: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


def test_create_assign_quote_and_bill_a_month_once(sandbox_copy: Path) -> None:
    plan = pricing_json(sandbox_copy, *PLAN)
    assert plan["created"] is True and plan["rates"]["credit_pay"] == {"rate_bps": 90, "min_minor": 0,
                                                                       "cap_minor": 2000}
    assert pricing_json(sandbox_copy, *PLAN)["created"] is False  # the same plan again: a no-op
    assert {p["id"] for p in pricing_json(sandbox_copy, "plans", "list")} == {"standard", "standard-usd",
                                                                             "tap-promo"}
    assert "contactless" in pricing(sandbox_copy, "plans", "show", "tap-promo").stdout
    assert pricing_json(sandbox_copy, "assign", "--merchant", CAFE, "--plan", "tap-promo")["created"] is True
    assert [a["plan_id"] for a in pricing_json(sandbox_copy, "assignments", "--merchant", CAFE)] == \
        ["standard", "tap-promo"]
    tap = pricing_json(sandbox_copy, "quote", "--merchant", CAFE, "--method", "contactless", "--amount", "100.00")
    chip = pricing_json(sandbox_copy, "quote", "--merchant", CAFE, "--method", "debit_card", "--amount", "1.00")
    assert (tap["fee_minor"], chip["fee_minor"]) == (5, 15)  # promotion 0 + 0.05; minimum 0.10 + 0.05
    later = pricing_json(sandbox_copy, "quote", "--merchant", CAFE, "--method", "contactless", "--amount", "100.00",
                         "--at", "2099-01-01T00:00:00Z")
    assert (later["rate_bps"], later["fee_minor"]) == (55, 60)  # the promotion has ended
    month = pricing_json(sandbox_copy, "bill", "--month", "2026-12")  # the sandbox merchant has no funds yet
    assert sorted(c["item"] for c in month["pending"])[1] == "monthly_fee" and month["posted"] == []
    again = pricing_json(sandbox_copy, "bill", "--month", "2026-12")
    assert len(again["pending"]) == 2 and again["posted"] == []  # still owed, never twice


def test_a_plan_is_created_from_a_json_file(sandbox_copy: Path, tmp_path: Path) -> None:
    shown = pricing_json(sandbox_copy, "plans", "show", "standard")
    spec = tmp_path / "plan.json"
    spec.write_text(json.dumps(shown | {"id": "copy", "fixed_fee_minor": 7}), encoding="utf-8")
    created = pricing_json(sandbox_copy, "plans", "create", "--file", str(spec))
    assert (created["id"], created["fixed_fee_minor"], created["rates"]) == ("copy", 7, shown["rates"])
    spec.write_text("{not json", encoding="utf-8")
    assert_one_line_error(pricing(sandbox_copy, "plans", "create", "--file", str(spec)), 2, "--file")


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (["quote", "--merchant", "NOPE", "--method", "prepaid", "--amount", "1.00"], 1, "no merchant"),
    (["quote", "--merchant", CAFE, "--method", "cheque", "--amount", "1.00"], 2, "method"),
    (["quote", "--merchant", CAFE, "--method", "prepaid", "--amount", "1.001"], 2, "amount"),
    (["assign", "--merchant", CAFE, "--plan", "nope"], 1, "no plan"),
    (["assign", "--merchant", CAFE, "--plan", "standard", "--from", "2001-01-01T00:00:00Z"], 1, "past"),
    (["assign", "--merchant", CAFE, "--plan", "standard", "--from", "tomorrow"], 2, "ISO 8601"),
    (["plans", "show", "nope"], 1, "no plan"),
    (["plans", "create", "--id", "x"], 2, "--rate"),
    (["plans", "create", "--id", "Bad Id", "--name", "n", "--rate", "60"], 2, "plan id"),
    (["plans", "create", "--id", "x", "--name", "n", "--rate", "60", "--method-rate", "cash=1"], 2, "METHOD"),
    (["plans", "create", "--id", "x", "--name", "n", "--rate", "60", "--promotion", "p,contactless=0"], 2, "until"),
    (["plans", "create", "--id", "standard", "--name", "n", "--rate", "61"], 1, "immutable"),
    (["bill", "--month", "2026-13"], 2, "YYYY-MM"),
    (["bill", "--month", "2999-01"], 2, "not begun"),
])
def test_a_refusal_is_one_line_exit_1_and_bad_input_exit_2(sandbox_copy: Path, args: list[str], code: int,
                                                            fragment: str) -> None:
    assert_one_line_error(pricing(sandbox_copy, *args), code, fragment)


@pytest.mark.parametrize("command", [["pricing"], ["pricing", "plans"], ["pricing", "plans", "create"],
                                     ["pricing", "plans", "list"], ["pricing", "plans", "show"],
                                     ["pricing", "assign"], ["pricing", "assignments"], ["pricing", "quote"],
                                     ["pricing", "bill"]])
def test_help_for_every_pricing_command(command: list[str]) -> None:
    result = CliRunner().invoke(cli_app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Usage: " in result.output
    if command[-1] not in ("pricing", "plans"):
        assert "--data-dir" in result.output and "--database-url" in result.output and "--json" in result.output
