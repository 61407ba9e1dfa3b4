"""`paypos settlement ...` and `paypos bank ...` (the Typer app, in-process) on a sandbox data
dir: help on every command, binding a bank account by micro-deposits, settings, holidays,
a run and its listings, and the one-line refusals (exit 1 state, exit 2 bad input)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from paypos.entrypoints.cli import app as cli_app
from paypos.networks.sandbox import catalog

CAFE = catalog.CAFE.merchant_id
CLEAN_ENV: dict[str, str | None] = {k: None for k in os.environ if k.startswith("PAYPOS_")}
LEAVES = [["settlement", "run"], ["settlement", "runs"], ["settlement", "batches"], ["settlement", "payouts"],
          ["settlement", "file"], ["settlement", "statement", "import"], ["settlement", "holidays", "add"],
          ["settlement", "holidays", "list"], ["settlement", "settings", "set"], ["settlement", "settings", "show"],
          ["bank", "accounts", "add"], ["bank", "accounts", "confirm"], ["bank", "accounts", "list"],
          ["bank", "micro-deposits"], ["bank", "flag"], ["bank", "import"]]


def paypos(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(cli_app, [*args, "--data-dir", str(data_dir)], env={**CLEAN_ENV, "COLUMNS": "200"})


def as_json(data_dir: Path, *args: str) -> Any:
    result = paypos(data_dir, *args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def one_line_error(result: Result, code: int, fragment: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


@pytest.mark.parametrize("command", [["settlement"], ["bank"], *LEAVES], ids=" ".join)
def test_help_for_every_settlement_command_exits_0_and_leaves_take_data_dir_and_json(command: list[str]) -> None:
    result = CliRunner().invoke(cli_app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Usage: " in result.output
    if command in LEAVES:
        assert "--data-dir" in result.output and "--database-url" in result.output and "--json" in result.output


def test_a_merchant_binds_an_account_by_micro_deposits_and_a_run_pays_nothing_without_sales(
        sandbox_copy: Path) -> None:
    bound = as_json(sandbox_copy, "bank", "accounts", "add", "--merchant", CAFE, "--number", "6222021234567890128",
                    "--holder", "harbour café")
    assert (bound["status"], bound["number"]) == ("pending_verification", "622202*********0128")
    amounts = as_json(sandbox_copy, "bank", "micro-deposits", "--account", bound["id"])["amounts_minor"]
    wrong = paypos(sandbox_copy, "bank", "accounts", "confirm", "--merchant", CAFE, "--account", bound["id"],
                   "--amounts", f"{amounts[0] % 99 + 1},{amounts[1]}")
    assert wrong.exit_code == 1 and "2 tries left" in wrong.stderr
    done = as_json(sandbox_copy, "bank", "accounts", "confirm", "--merchant", CAFE, "--account", bound["id"],
                   "--amounts", f"{amounts[1]},{amounts[0]}")
    assert done["status"] == "verified"
    assert as_json(sandbox_copy, "settlement", "settings", "set", "--merchant", CAFE, "--cycle", "WEEKLY",
                   "--weekday", "mon", "--reserve-bps", "500")["weekday"] == "mon"
    assert as_json(sandbox_copy, "settlement", "holidays", "add", "--date", "2026-11-24") == {
        "date": "2026-11-24", "name": ""}
    summary = as_json(sandbox_copy, "settlement", "run", "--date", "2026-11-23")
    assert (summary["status"], summary["merchants_total"], summary["payouts"]) == ("done", 2, 0)
    assert len(as_json(sandbox_copy, "settlement", "batches", "--date", "2026-11-23")) == 2
    one_line_error(paypos(sandbox_copy, "settlement", "run", "--date", "2026-11-24"), 1, "holiday")


def test_bad_input_exits_2_and_unknown_objects_exit_1_in_one_line(sandbox_copy: Path) -> None:
    one_line_error(paypos(sandbox_copy, "settlement", "run", "--date", "2026-02-30"), 2, "--date")
    one_line_error(paypos(sandbox_copy, "bank", "accounts", "add", "--merchant", CAFE, "--number", "1234",
                          "--holder", "Harbour Café"), 2, "account_number")
    one_line_error(paypos(sandbox_copy, "bank", "accounts", "add", "--merchant", CAFE, "--number",
                          "6222021234567890128", "--holder", "Someone"), 2, "holder_name")
    one_line_error(paypos(sandbox_copy, "settlement", "settings", "set", "--merchant", CAFE, "--time-zone", "X/Y"),
                   2, "time_zone")
    one_line_error(paypos(sandbox_copy, "bank", "accounts", "confirm", "--merchant", CAFE, "--account", "ba_x",
                          "--amounts", "1"), 2, "--amounts")
    one_line_error(paypos(sandbox_copy, "settlement", "settings", "show", "--merchant", "NOPE"), 1, "no merchant")
    one_line_error(paypos(sandbox_copy, "bank", "micro-deposits", "--account", "ba_nope"), 1, "no bank account")
    one_line_error(paypos(sandbox_copy, "settlement", "statement", "import", str(sandbox_copy / "missing.csv")), 2,
                   "missing.csv")
