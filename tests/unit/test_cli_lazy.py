"""`paypos` imports a command group only when it is used (paypos.entrypoints.lazy): running one
command does not pay for every other group's services, and the command tree — names, order,
help — is the same as when every group was imported up front."""

from __future__ import annotations

import subprocess
import sys

import typer
from typer import _click as click
from typer.testing import CliRunner

from paypos.entrypoints.cli import app

GROUPS_IN_ORDER = ["ledger", "terminal", "qr", "sandbox", "wallet", "prepaid", "webhooks", "escrow", "merchants",
                   "terminals", "console", "settlement", "bank", "pricing", "reports", "recon"]

_PROBE = """
import sys
from typer.testing import CliRunner
from paypos.entrypoints.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
assert result.exit_code == 0, result.output
print(" ".join(sorted(m for m in sys.modules
                      if m.startswith(("paypos.entrypoints.cli_", "paypos.entrypoints.terminal_cli",
                                       "paypos.services.escrow", "paypos.services.settlement",
                                       "paypos.services.wallet")))))
"""


def imported_after(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_running_one_group_imports_that_group_alone() -> None:
    assert imported_after("ledger", "--help") == set()
    escrow = imported_after("escrow", "--help")
    assert {"paypos.entrypoints.cli_escrow", "paypos.services.escrow"} <= escrow
    others = {"paypos.entrypoints.cli_settlement", "paypos.entrypoints.cli_wallet", "paypos.entrypoints.cli_reports",
              "paypos.entrypoints.terminal_cli", "paypos.services.settlement", "paypos.services.wallet"}
    assert not escrow & others


def test_the_top_level_help_still_lists_every_group_with_its_help() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "Escrow of online payment requests" in result.output and "Reconciliation: terminal" in result.output


def test_groups_follow_the_commands_in_their_declared_order_and_nest() -> None:
    command = typer.main.get_command(app)
    root = click.Context(command)
    names = command.list_commands(root)

    assert names[:4] == ["init", "serve", "demo", "bench"]
    assert names[4:] == GROUPS_IN_ORDER
    sandbox = command.get_command(root, "sandbox")
    assert sandbox.list_commands(click.Context(sandbox))[-1] == "dispute"
    assert command.get_command(root, "escrow").name == "escrow"
    assert command.get_command(root, "no-such-group") is None
