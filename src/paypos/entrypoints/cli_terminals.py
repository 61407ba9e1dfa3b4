"""`paypos terminals apply|provision|activate|new-code|bind|suspend|resume|replace|list|show`
— the acquirer's side of a counter terminal's life (docs/merchant-lifecycle.md). (`paypos
terminal`, singular, is the terminal software itself.)

``provision`` and ``replace`` print the provisioning package (terminal id, merchant id,
initial KSN, IPEK, one-time activation code) this once; load it into the terminal. Not found
and refusals exit 1 (a wrong activation code too, after it was counted); bad input exits 2.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from paypos.adapters.db.uow import UnitOfWork
from paypos.bootstrap import App
from paypos.entrypoints.cli_onboarding import Operator, actor, run
from paypos.entrypoints.cli_prepaid import DatabaseUrl, DataDir, JsonFlag, _show
from paypos.services import terminals as service

terminals_app = typer.Typer(
    help="Counter terminals: apply, provision (keys from the BDK, shown once), activate with the one-time code, "
         "bind to a location, suspend, resume, replace, list.", no_args_is_help=True)

TerminalId = Annotated[str, typer.Argument(help="The terminal id (8 characters, ISO 8583 field 41).")]
Location = Annotated[str, typer.Option("--location", help="Where the terminal stands, e.g. 'Counter 1, 88 Main Rd'.")]
_COLUMNS = ["terminal_id", "merchant_id", "location", "status"]
_PACKAGE = ["terminal_id", "merchant_id", "initial_ksn", "ipek", "activation_code", "activation_expires_at"]


def _package(title: str, provisioned: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _show(title, [], [], True, provisioned)
        return
    rows = [{"field": name, "value": provisioned["package"][name]} for name in _PACKAGE]  # one per line: read whole
    _show(title, rows, ["field", "value"], False)


@terminals_app.command("apply")
def apply(merchant: Annotated[str, typer.Option("--merchant", help="The merchant id (approved or active).")],
          location: Location,
          reference: Annotated[str | None, typer.Option(
              "--reference", help="Your retry key: the same reference answers the first request.")] = None,
          operator: Operator = None, as_json: JsonFlag = False, data_dir: DataDir = None,
          database_url: DatabaseUrl = None) -> None:
    """Request a terminal for a merchant at a location (provision it next)."""
    who = actor(operator)
    shown = run(data_dir, database_url, lambda p, uow: service.apply(uow, who, p.clock(), merchant, location,
                                                                     reference=reference))
    _show("Terminal request", [shown], _COLUMNS, as_json, shown)


@terminals_app.command("provision")
def provision(request_id: Annotated[str, typer.Argument(help="The request id (trq_...; terminals apply).")],
              mac: Annotated[bool, typer.Option("--mac/--no-mac", help="Require a MAC on every request.")] = True,
              operator: Operator = None, as_json: JsonFlag = False, data_dir: DataDir = None,
              database_url: DatabaseUrl = None) -> None:
    """Create the terminal (id, initial KSN, IPEK from the BDK) and print its package ONCE."""
    who = actor(operator)
    provisioned = run(data_dir, database_url, lambda p, uow: service.provision(
        uow, p.vault, who, p.clock(), request_id, mac_required=mac))
    _package("Provisioning package (shown once: load it into the terminal)", provisioned, as_json)


@terminals_app.command("activate")
def activate(terminal_id: TerminalId,
             code: Annotated[str, typer.Option("--code", help="The one-time activation code from the package.")],
             operator: Operator = None, as_json: JsonFlag = False, data_dir: DataDir = None,
             database_url: DatabaseUrl = None) -> None:
    """Activate a provisioned terminal with its one-time code; the host accepts it from now on."""
    who = actor(operator)
    shown = run(data_dir, database_url, lambda p, uow: service.activate(uow, p.vault, who, p.clock(), terminal_id,
                                                                        code))
    _show("Activated terminal", [shown], _COLUMNS, as_json, shown)


@terminals_app.command("new-code")
def new_code(terminal_id: TerminalId, operator: Operator = None, as_json: JsonFlag = False,
             data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """A fresh activation code (shown once) for a provisioned terminal whose code expired or locked."""
    who = actor(operator)
    shown = run(data_dir, database_url, lambda p, uow: service.new_activation_code(
        uow, p.vault, who, p.clock(), terminal_id))
    _show("New activation code (shown once)", [shown], ["terminal_id", "activation_code", "activation_expires_at"],
          as_json, shown)


@terminals_app.command("bind")
def bind(terminal_id: TerminalId, location: Location, operator: Operator = None, as_json: JsonFlag = False,
         data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Move a terminal to another location of its merchant."""
    who = actor(operator)
    shown = run(data_dir, database_url, lambda p, uow: service.bind(uow, who, p.clock(), terminal_id, location))
    _show("Terminal", [shown], _COLUMNS, as_json, shown)


@terminals_app.command("suspend")
def suspend(terminal_id: TerminalId,
            reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")] = "",
            operator: Operator = None, as_json: JsonFlag = False, data_dir: DataDir = None,
            database_url: DatabaseUrl = None) -> None:
    """Stop a terminal: the host declines it (58) until it is resumed."""
    who = actor(operator)
    shown = run(data_dir, database_url, lambda p, uow: service.suspend(uow, who, p.clock(), terminal_id, reason))
    _show("Terminal", [shown], _COLUMNS, as_json, shown)


@terminals_app.command("resume")
def resume(terminal_id: TerminalId, operator: Operator = None, as_json: JsonFlag = False,
           data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """A suspended terminal back in service."""
    who = actor(operator)
    shown = run(data_dir, database_url, lambda p, uow: service.resume(uow, who, p.clock(), terminal_id))
    _show("Terminal", [shown], _COLUMNS, as_json, shown)


@terminals_app.command("replace")
def replace(terminal_id: TerminalId, operator: Operator = None, as_json: JsonFlag = False,
            data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Retire a terminal for good and provision its successor (same merchant and location); package ONCE."""
    who = actor(operator)
    provisioned = run(data_dir, database_url, lambda p, uow: service.replace(uow, p.vault, who, p.clock(),
                                                                             terminal_id))
    _package(f"Replacement for {terminal_id} (shown once: load it into the new terminal)", provisioned, as_json)


@terminals_app.command("list")
def list_terminals(
        merchant: Annotated[str | None, typer.Option("--merchant", help="Only this merchant's.")] = None,
        status: Annotated[str | None, typer.Option(
            "--status", help="requested, provisioned, active, suspended or replaced.")] = None,
        as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Terminals (sandbox ones too) and open requests; never a key."""

    def work(_p: App, uow: UnitOfWork) -> list[dict[str, Any]]:
        return service.list_terminals(uow, merchant_id=merchant, status=status)

    _show("Terminals", run(data_dir, database_url, work, write=False), _COLUMNS, as_json)


@terminals_app.command("show")
def show(terminal_id: TerminalId, as_json: JsonFlag = False, data_dir: DataDir = None,
         database_url: DatabaseUrl = None) -> None:
    """One terminal (never a key)."""
    shown = run(data_dir, database_url, lambda _p, uow: service.get(uow, terminal_id), write=False)
    _show("Terminal", [shown], [*_COLUMNS, "initial_ksn", "mac_required"], as_json, shown)
