"""`paypos terminal …` — the scriptable side of the POS terminal (same engine as the TUI).

The simulated cards and the terminal's keys come from the sandbox of the same
``--data-dir`` / ``--database-url`` as the server; the terminal's own store
(counters, journal, queues) lives in ``<data dir>/terminals/<TID>/``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paypos import limits

terminal_app = typer.Typer(help="The POS terminal: the cashier's screen (no command), or scriptable pay (card or "
                                "wallet payment code), qr (collection code), refund, void, pre-authorize, settle.",
                           invoke_without_command=True)
out = Console()
err = Console(stderr=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (as for `paypos serve`).")]
DatabaseUrl = Annotated[str | None, typer.Option("--database-url", help="The sandbox's database.")]
Host = Annotated[str, typer.Option("--host", help="The acquiring host.")]
Port = Annotated[int, typer.Option("--port", help="Its ISO 8583 port.")]
TerminalId = Annotated[str | None, typer.Option("--terminal", help="Terminal id (default: the first sandbox terminal).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]
Card = Annotated[str, typer.Option("--card", help="Sandbox card id (see `paypos sandbox cards`).")]
Entry = Annotated[str, typer.Option("--entry", help="chip | contactless | swipe | manual")]
Pin = Annotated[str | None, typer.Option("--pin", help="The cardholder's PIN, typed on the PIN pad.")]
Amount = Annotated[str, typer.Option("--amount", help="Amount in major units, e.g. 12.50")]
ApiUrl = Annotated[str | None, typer.Option(
    "--api", help="Fetch the sandbox cards and terminal keys from a remote host's API (e.g. http://host:8000).")]


@terminal_app.callback()
def cashier(ctx: typer.Context, terminal: TerminalId = None, host: Host = "127.0.0.1",
            port: Port = limits.iso_port_default, data_dir: DataDir = None, database_url: DatabaseUrl = None,
            api: ApiUrl = None) -> None:
    """With no command: the cashier's screen (a Textual TUI on the same engine)."""
    if ctx.invoked_subcommand is not None:
        return
    from paypos.terminal.tui import run_tui

    run_tui(data_dir, database_url, terminal, host, port, api=api)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _session(data_dir: Path | None, database_url: str | None, terminal_id: str | None,
             host: str, port: int, api: str | None = None) -> Iterator[Any]:
    from paypos.terminal.session import TerminalSessionError, open_session

    try:
        with open_session(data_dir, database_url, terminal_id, host, port, api=api) as session:
            yield session
    except TerminalSessionError as error:
        _fail(str(error))


def _print(outcome: Any, as_json: bool) -> None:
    data = outcome if isinstance(outcome, dict) else outcome.as_json()
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return
    for key, value in data.items():
        if key != "receipt_text":
            out.print(f"{key:>16}: {value}", highlight=False)
    if data.get("receipt_text"):
        out.print(str(data["receipt_text"]), highlight=False, markup=False)


Printer = Annotated[str | None, typer.Option(
    "--printer", help="Also print the cardholder copy as ESC/POS: a file path or tcp://host:port.")]


WalletTimeout = Annotated[float | None, typer.Option(
    "--timeout", min=1, max=900, help="Seconds to wait for the buyer before cancelling "
    "(pay --qr-code: 60, qr: 300).")]


@terminal_app.command()
def pay(amount: Amount,
        card: Annotated[str | None, typer.Option("--card", help="Sandbox card id (see `paypos sandbox cards`).")] = None,
        qr_code: Annotated[str | None, typer.Option(
            "--qr-code", help="The buyer's 18-digit wallet payment code, as scanned (instead of --card).")] = None,
        entry: Entry = "chip", pin: Pin = None, printer: Printer = None,
        chip_failures: Annotated[int, typer.Option(
            "--chip-failures", min=0, max=9, help="Failed chip reads before this swipe (fallback after 3).")] = 0,
        timeout: WalletTimeout = None, as_json: AsJson = False,
        terminal: TerminalId = None, host: Host = "127.0.0.1", port: Port = limits.iso_port_default,
        data_dir: DataDir = None, database_url: DatabaseUrl = None, api: ApiUrl = None) -> None:
    """A sale: the card is read (chip, tap, swipe or keyed), PIN when needed, then sent to the host.
    With --qr-code: the buyer's wallet payment code; above the buyer's no-confirmation limit the
    terminal waits for their confirmation and cancels at --timeout."""
    from paypos.terminal.engine import WALLET_PAY_TIMEOUT_S_DEFAULT
    from paypos.terminal.receipt import PrinterError

    if (card is None) == (qr_code is None):
        _fail("give --card (a card sale) or --qr-code (the buyer's wallet payment code)")
    with _session(data_dir, database_url, terminal, host, port, api) as session:
        session.printer = printer
        try:
            if qr_code is not None:
                _print(session.pay_code(amount, qr_code, timeout or WALLET_PAY_TIMEOUT_S_DEFAULT), as_json)
            else:
                _print(session.pay(amount, str(card), entry, pin, chip_failures=chip_failures), as_json)
        except PrinterError as error:
            _fail(f"--printer: {error} (the sale itself is recorded in the journal)")


def _json_line(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _show_collection_code(shown: dict[str, Any], as_json: bool) -> None:
    from paypos.adapters.qrimage import RenderError, render_qr_text

    if as_json:
        _json_line(shown)
        return
    try:
        out.print(render_qr_text(str(shown["qr_payload"])), highlight=False, markup=False, end="")
    except (RenderError, ValueError) as error:
        err.print(f"[yellow]warning:[/] cannot draw the code: {escape(str(error))}")
    out.print(f"{'payload':>16}: {shown['qr_payload']}", highlight=False, markup=False, soft_wrap=True)
    out.print(f"{'journal_id':>16}: {shown['journal_id']}", highlight=False)


@terminal_app.command()
def qr(amount: Amount, timeout: WalletTimeout = None,
       no_wait: Annotated[bool, typer.Option(
           "--no-wait", help="Show the code and return; then `qr-status JOURNAL_ID` or `void JOURNAL_ID`.")] = False,
       as_json: AsJson = False, terminal: TerminalId = None, host: Host = "127.0.0.1",
       port: Port = limits.iso_port_default, data_dir: DataDir = None, database_url: DatabaseUrl = None,
       api: ApiUrl = None) -> None:
    """A sale by the merchant's collection code: the host opens it, the terminal shows it as a
    QR code and waits until the buyer pays, it expires (--timeout) or Ctrl-C cancels it.
    With --json: one JSON line with the payload, then one with the outcome."""
    from paypos.terminal.engine import WALLET_QR_TIMEOUT_S_DEFAULT

    with _session(data_dir, database_url, terminal, host, port, api) as session:
        shown = session.collect_qr(amount)
        if shown.get("status") != "pending" or not shown.get("qr_payload"):
            _print(shown, as_json)
            raise typer.Exit(1)
        _show_collection_code(shown, as_json)
        if no_wait:
            return
        if not as_json:
            err.print("waiting for the buyer to scan and pay… (Ctrl-C cancels)")
        try:
            final = session.await_wallet(int(shown["journal_id"]), timeout or WALLET_QR_TIMEOUT_S_DEFAULT)
        except KeyboardInterrupt:
            final = session.cancel_wallet(int(shown["journal_id"]), "by the cashier")
        if as_json:
            _json_line(final)
        else:
            _print(final, False)


@terminal_app.command("qr-status")
def qr_status(journal_id: Annotated[int, typer.Argument(help="The wallet payment's journal id.")],
              as_json: AsJson = False, terminal: TerminalId = None, host: Host = "127.0.0.1",
              port: Port = limits.iso_port_default, data_dir: DataDir = None, database_url: DatabaseUrl = None,
              api: ApiUrl = None) -> None:
    """Ask the host once (0600) where a pending wallet payment stands."""
    with _session(data_dir, database_url, terminal, host, port, api) as session:
        _print(session.wallet_status(journal_id), as_json)


@terminal_app.command()
def preauth(amount: Amount, card: Card, entry: Entry = "chip", pin: Pin = None, as_json: AsJson = False,
            terminal: TerminalId = None, host: Host = "127.0.0.1", port: Port = limits.iso_port_default,
            data_dir: DataDir = None, database_url: DatabaseUrl = None, api: ApiUrl = None) -> None:
    """A pre-authorization (a hold on the card), completed later with `complete`."""
    with _session(data_dir, database_url, terminal, host, port, api) as session:
        _print(session.pay(amount, card, entry, pin, kind="preauth"), as_json)


@terminal_app.command()
def complete(journal_id: Annotated[int, typer.Argument(help="The pre-authorization's journal id.")], amount: Amount,
             as_json: AsJson = False, terminal: TerminalId = None, host: Host = "127.0.0.1",
             port: Port = limits.iso_port_default, data_dir: DataDir = None, database_url: DatabaseUrl = None, api: ApiUrl = None) -> None:
    """Complete a pre-authorization for at most its amount (0220)."""
    with _session(data_dir, database_url, terminal, host, port, api) as session:
        _print(session.complete(journal_id, amount), as_json)


@terminal_app.command()
def refund(amount: Amount, card: Card, entry: Entry = "chip",
           rrn: Annotated[str | None, typer.Option("--rrn", help="RRN of the sale to refund (from the journal).")] = None,
           pin: Pin = None, as_json: AsJson = False, terminal: TerminalId = None, host: Host = "127.0.0.1",
           port: Port = limits.iso_port_default, data_dir: DataDir = None, database_url: DatabaseUrl = None, api: ApiUrl = None) -> None:
    """Refund to the card: of a sale (--rrn), or standalone from the merchant's available funds."""
    with _session(data_dir, database_url, terminal, host, port, api) as session:
        _print(session.refund(amount, card, entry, rrn, pin), as_json)


@terminal_app.command()
def void(journal_id: Annotated[int, typer.Argument(help="Journal id of the transaction to void.")],
         as_json: AsJson = False, terminal: TerminalId = None, host: Host = "127.0.0.1",
         port: Port = limits.iso_port_default, data_dir: DataDir = None, database_url: DatabaseUrl = None, api: ApiUrl = None) -> None:
    """Void (reverse) an approved transaction of the open batch, or cancel a pending wallet payment."""
    with _session(data_dir, database_url, terminal, host, port, api) as session:
        _print(session.engine.void(journal_id), as_json)


@terminal_app.command()
def balance(card: Card, entry: Entry = "chip", pin: Pin = None, as_json: AsJson = False,
            terminal: TerminalId = None, host: Host = "127.0.0.1", port: Port = limits.iso_port_default,
            data_dir: DataDir = None, database_url: DatabaseUrl = None, api: ApiUrl = None) -> None:
    """Balance inquiry (prepaid cards)."""
    with _session(data_dir, database_url, terminal, host, port, api) as session:
        _print(session.balance(card, entry, pin), as_json)


@terminal_app.command()
def settle(as_json: AsJson = False, terminal: TerminalId = None, host: Host = "127.0.0.1",
           port: Port = limits.iso_port_default, data_dir: DataDir = None, database_url: DatabaseUrl = None, api: ApiUrl = None) -> None:
    """End of day: forward queued reversals and advices, then reconcile the batch (0500)."""
    with _session(data_dir, database_url, terminal, host, port, api) as session:
        outcome = session.engine.settle()
        _print(outcome, as_json)
        if not outcome.approved:
            raise typer.Exit(1)


@terminal_app.command()
def journal(as_json: AsJson = False, terminal: TerminalId = None, host: Host = "127.0.0.1",
            port: Port = limits.iso_port_default, data_dir: DataDir = None, database_url: DatabaseUrl = None, api: ApiUrl = None) -> None:
    """The terminal's journal (masked PANs only)."""
    from paypos.terminal.engine import journal_row

    with _session(data_dir, database_url, terminal, host, port, api) as session:
        rows = [journal_row(e) for e in session.engine.store.journal()]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title="Journal")
    columns = ["journal_id", "kind", "status", "amount_minor", "pan", "entry", "response_code", "approval_code", "rrn"]
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in columns))
    out.print(table)


@terminal_app.command()
def saf(as_json: AsJson = False, drain: Annotated[bool, typer.Option("--drain/--show", help="Send the queues.")] = False,
        terminal: TerminalId = None, host: Host = "127.0.0.1", port: Port = limits.iso_port_default,
        data_dir: DataDir = None, database_url: DatabaseUrl = None, api: ApiUrl = None) -> None:
    """Show (or --drain) the queued reversals and store-and-forward advices."""
    with _session(data_dir, database_url, terminal, host, port, api) as session:
        sent = session.engine.drain() if drain else {}
        store = session.engine.store
        data = {"sent": sent, "reversals": [dict(r) for r in store.reversals()],
                "advices": [{"seq": seq, "journal_id": jid, "attempts": attempts}
                            for seq, jid, _fields, attempts in store.advices()]}
    _print(data, as_json)
