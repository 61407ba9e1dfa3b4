"""The `paypos` command line, run as a subprocess: init, ledger check/balances, the sandbox
listings (issue 2 item 9 shapes), and one-line errors for bad input."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from paypos.adapters.db.engine import make_engine
from paypos.entrypoints.cli import app as cli_app
from tests.conftest import TEST_DATA_KEY, truncate_all

if TYPE_CHECKING:
    from conftest import PayposCli

# Issue 2 item 9: the keys a third-party terminal reads; extra keys are allowed.
CARD_KEYS = {
    "id", "pan", "expiry", "psn", "track2", "service_code", "pin", "cvv2", "cvn", "imk_ac",
    "interfaces", "scheme", "currency", "behavior", "available_minor",
}
TERMINAL_KEYS = {
    "terminal_id", "merchant_id", "currency", "bdk", "initial_ksn", "mac_required", "contactless_cvm_limit_minor",
}
MERCHANT_KEYS = {"merchant_id", "name", "currency", "api_key"}
BALANCE_KEYS = {
    "account_id", "owner", "code", "currency", "debits_posted", "credits_posted",
    "debits_pending", "credits_pending", "net_minor",
}
BALANCE_AMOUNTS = BALANCE_KEYS - {"owner", "code", "currency"}
OWNER = re.compile(r"platform|merchant:[A-Z0-9]{15}|card:\d{6}\*{6}\d{4}|issuer:[A-Z0-9-]+|wallet|wallet_user:\d{16}")
CARD_OWNER = "card:476173******0010"  # visa-cvn18-approve
LISTINGS = {
    "cards": ["sandbox", "cards", "--json"],
    "terminals": ["sandbox", "terminals", "--json"],
    "merchants": ["sandbox", "merchants", "--json"],
    "balances": ["ledger", "balances", "--json"],
}
COMMANDS = [
    [], ["init"], ["serve"], ["demo"], ["ledger"], ["ledger", "balances"], ["ledger", "check"], ["ledger", "expire"],
    ["sandbox"], ["sandbox", "cards"], ["sandbox", "terminals"], ["sandbox", "merchants"],
    ["sandbox", "console-users"], ["console"], ["console", "users"], ["console", "users", "create"],
    ["console", "users", "list"], ["console", "users", "disable"], ["console", "users", "reset-password"],
    ["console", "users", "unlock"],
]
GROUPS = ([], ["ledger"], ["sandbox"], ["console"], ["console", "users"])
Result = subprocess.CompletedProcess[str]


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def corrupt_card_balance(db: Path) -> tuple[int, str]:
    """Add 1 to a card account's stored credits by hand, as a bad write or a bad restore would."""
    with closing(sqlite3.connect(db)) as conn, conn:
        account_id, owner = conn.execute(
            "SELECT id, owner FROM ledger_accounts WHERE owner = ? AND code = 'cardholder_funds'", (CARD_OWNER,)
        ).fetchone()
        conn.execute("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = ?", (account_id,))
    return int(account_id), str(owner)


def assert_check_names(result: subprocess.CompletedProcess[str], account_id: int, owner: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "ledger check failed" in result.stdout
    # One violation per line, whole: the line names the account id, its owner and the rule.
    named = [line for line in result.stdout.splitlines() if f"account {account_id} ({owner} " in line]
    assert named, result.stdout
    assert any("stored-balance" in line and "credits_posted" in line for line in named), result.stdout


# --- init and ledger check ------------------------------------------------------------------


def test_init_sandbox_twice_succeeds_and_the_second_run_adds_nothing(cli: PayposCli, sandbox_copy: Path) -> None:
    # sandbox_dir was made by a first `paypos init --sandbox`; run it again, then check.
    second = cli.run("init", "--sandbox", "--data-dir", str(sandbox_copy))
    check = cli.run("ledger", "check", "--data-dir", str(sandbox_copy))

    assert second.returncode == 0, second.stderr
    assert "already present, nothing to add" in " ".join(second.stderr.split())
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith("ledger OK")


def test_ledger_check_exits_1_naming_the_account_whose_stored_balance_was_corrupted(
    cli: PayposCli, sandbox_copy: Path
) -> None:
    account_id, owner = corrupt_card_balance(sandbox_copy / "paypos.db")

    result = cli.run("ledger", "check", "--data-dir", str(sandbox_copy))

    assert_check_names(result, account_id, owner)


# --- listings -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listings(cli: PayposCli, sandbox_dir: Path) -> dict[str, Any]:
    """The four JSON listings of one sandbox, run side by side."""
    names = list(LISTINGS)
    results = cli.run_many([[*LISTINGS[name], "--data-dir", str(sandbox_dir)] for name in names])
    parsed = {}
    for name, result in zip(names, results, strict=True):
        assert result.returncode == 0, (name, result.stderr)
        parsed[name] = json.loads(result.stdout)  # stdout holds the JSON alone
    return parsed


def test_sandbox_cards_json_is_an_array_of_cards_with_the_documented_keys(listings: dict[str, Any]) -> None:
    cards = listings["cards"]

    assert isinstance(cards, list) and len(cards) >= 8
    for card in cards:
        assert CARD_KEYS <= card.keys(), card.get("id")
        assert re.fullmatch(r"\d{4}", card["expiry"]) and re.fullmatch(r"\d{2}", card["psn"])
        assert card["track2"].startswith(f"{card['pan']}={card['expiry']}{card['service_code']}")
        assert card["cvn"] in (10, 18, None)
        assert re.fullmatch(r"\d{3}", card["currency"])
        assert type(card["available_minor"]) is int


def test_sandbox_terminals_json_is_an_array_of_terminals_with_the_documented_keys(listings: dict[str, Any]) -> None:
    terminals = listings["terminals"]

    assert isinstance(terminals, list) and len(terminals) >= 4
    for terminal in terminals:
        assert TERMINAL_KEYS <= terminal.keys()
        assert len(terminal["terminal_id"]) == 8 and len(terminal["merchant_id"]) == 15
        assert re.fullmatch(r"[0-9A-F]{32}", terminal["bdk"]) and re.fullmatch(r"[0-9A-F]{20}", terminal["initial_ksn"])
        assert type(terminal["mac_required"]) is bool


def test_sandbox_merchants_json_is_an_array_of_merchants_with_test_api_keys(listings: dict[str, Any]) -> None:
    merchants = listings["merchants"]

    assert isinstance(merchants, list) and len(merchants) == 2
    for merchant in merchants:
        assert MERCHANT_KEYS <= merchant.keys()
        assert merchant["api_key"].startswith("sk_test_")
    assert {m["currency"] for m in merchants} == {"CNY", "USD"}


def test_ledger_balances_json_has_exactly_the_documented_keys_and_owner_forms(listings: dict[str, Any]) -> None:
    rows = listings["balances"]

    assert isinstance(rows, list) and rows
    for row in rows:
        assert set(row) == BALANCE_KEYS
        assert all(type(row[key]) is int for key in BALANCE_AMOUNTS)
        assert row["net_minor"] == row["credits_posted"] - row["debits_posted"]
        assert OWNER.fullmatch(row["owner"]), row["owner"]
    owners = {row["owner"] for row in rows}
    assert {"platform", "merchant:PPCAFE000000001", "merchant:PPSHOP000000001", CARD_OWNER} <= owners


def test_the_listings_print_only_json_on_stdout_and_agree_with_each_other(listings: dict[str, Any]) -> None:
    merchant_ids = {m["merchant_id"] for m in listings["merchants"]}
    card_balances = {
        row["owner"]: row["net_minor"] for row in listings["balances"] if row["owner"].startswith("card:")
    }

    assert {t["merchant_id"] for t in listings["terminals"]} <= merchant_ids
    for card in listings["cards"]:
        if not card.get("token_for"):
            masked = f"card:{card['pan'][:6]}******{card['pan'][-4:]}"
            assert card_balances[masked] == card["available_minor"], card["id"]


# --- configuration and bad input: one line, exit 2, no traceback ---------------------------------


@pytest.fixture(scope="module")
def runs(cli: PayposCli, sandbox_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """Independent one-shot runs, side by side (each is mostly interpreter start-up); by name."""
    fresh = tmp_path_factory.mktemp("never-initialised")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    sandbox = ["--data-dir", str(sandbox_dir)]
    return cli.run_batch({
        "cards before init": ([*LISTINGS["cards"], "--data-dir", str(fresh / "a")], None),
        "unsupported scheme": (
            ["init", "--data-dir", str(fresh / "c"), "--database-url", "mysql://paypos:secret@db.example/paypos"], None
        ),
        "unreachable postgresql": (
            ["ledger", "check", "--data-dir", str(fresh / "d"),
             "--database-url", f"postgresql://paypos@127.0.0.1:{closed_port}/paypos"], None,
        ),
        "malformed data key": (["sandbox", "cards", *sandbox], cli.env(PAYPOS_DATA_KEY="not-hex")),
        # The data dir comes from the environment here: PAYPOS_DATA_DIR stands in for --data-dir.
        "another data key": (
            [*LISTINGS["cards"]], cli.env(PAYPOS_DATA_DIR=str(sandbox_dir), PAYPOS_DATA_KEY=TEST_DATA_KEY)
        ),
    })


def test_a_command_run_before_init_exits_2_with_one_line_asking_for_paypos_init(runs: dict[str, Result]) -> None:
    result = runs["cards before init"]

    assert_one_line_error(result, 2, "run `paypos init`")
    assert result.stdout == ""


def test_a_command_run_before_init_leaves_nothing_on_disk(runs: dict[str, Result], tmp_path_factory) -> None:
    data_dir = Path(runs["cards before init"].args[runs["cards before init"].args.index("--data-dir") + 1])
    assert not data_dir.exists()  # no data dir, no empty database, no fresh key


def test_a_database_url_with_an_unsupported_scheme_exits_2_naming_the_scheme(runs: dict[str, Result]) -> None:
    result = runs["unsupported scheme"]

    assert_one_line_error(result, 2, "database URL must be sqlite:///<file> or postgresql://", "'mysql'")
    assert "secret" not in result.stderr


def test_an_unreachable_postgresql_exits_2_with_one_line(runs: dict[str, Result]) -> None:
    assert_one_line_error(runs["unreachable postgresql"], 2, "database unreachable")


def test_a_malformed_data_key_in_the_environment_exits_2_naming_the_variable(runs: dict[str, Result]) -> None:
    result = runs["malformed data key"]

    assert_one_line_error(result, 2, "PAYPOS_DATA_KEY: data key must be hex")
    assert "not-hex" not in result.stderr


def test_listing_cards_under_another_data_key_exits_2_instead_of_printing_garbage(runs: dict[str, Result]) -> None:
    result = runs["another data key"]

    assert_one_line_error(result, 2, "pan: cannot be opened with this data key")
    assert result.stdout == ""


# --- help -------------------------------------------------------------------------------------


def test_the_console_script_prints_help_listing_every_top_level_command(cli: PayposCli) -> None:
    result = cli.run("--help")

    assert result.returncode == 0, result.stderr
    for command in ("init", "serve", "demo", "ledger", "sandbox"):
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "paypos")
def test_help_for_every_command_exits_0_and_every_leaf_command_takes_data_dir_and_database_url(
    command: list[str],
) -> None:
    # The Typer app that the console script runs, in-process: one start-up instead of twelve.
    result = CliRunner().invoke(cli_app, [*command, "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    if command not in GROUPS:
        assert "--data-dir" in result.output and "--database-url" in result.output


@pytest.mark.parametrize("command", [["wallets"], ["sandbox", "wallets"], ["ledger", "check", "--bogus"]])
def test_an_unknown_command_or_option_exits_2_with_usage(command: list[str]) -> None:
    result = CliRunner().invoke(cli_app, command)

    assert result.exit_code == 2
    assert "No such command" in result.output or "No such option" in result.output


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_sandbox(cli: PayposCli, postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """--data-dir / --database-url of a sandbox initialised twice on the shared PostgreSQL database."""
    engine = make_engine(postgres_url)
    truncate_all(engine)
    engine.dispose()
    flags = ["--data-dir", str(tmp_path_factory.mktemp("pg") / "data"), "--database-url", postgres_url]
    first = cli.run("init", "--sandbox", *flags)
    second = cli.run("init", "--sandbox", *flags)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0 and "nothing to add" in " ".join(second.stderr.split()), second.stderr
    yield flags


@pytest.mark.postgres
def test_on_postgresql_init_sandbox_twice_then_ledger_check_exits_0(cli: PayposCli, pg_sandbox: list[str]) -> None:
    result = cli.run("ledger", "check", *pg_sandbox)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ledger OK")


@pytest.mark.postgres
def test_on_postgresql_ledger_check_exits_1_naming_a_corrupted_account(
    cli: PayposCli, pg_sandbox: list[str], postgres_url: str
) -> None:
    engine = make_engine(postgres_url)
    corrupt = "UPDATE ledger_accounts SET credits_posted = credits_posted {} 1 WHERE id = :id"
    try:
        with engine.begin() as conn:
            account_id, owner = conn.execute(
                sa.text("SELECT id, owner FROM ledger_accounts WHERE owner = :owner AND code = 'cardholder_funds'"),
                {"owner": CARD_OWNER},
            ).one()
            conn.execute(sa.text(corrupt.format("+")), {"id": account_id})

        result = cli.run("ledger", "check", *pg_sandbox)

        assert_check_names(result, account_id, owner)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(corrupt.format("-")), {"id": account_id})
        engine.dispose()
