"""The `paypos` command line (Typer + Rich).

Every command that touches state takes ``--data-dir`` and ``--database-url`` (else ``PAYPOS_DATA_DIR``
/ ``PAYPOS_DATABASE_URL``, else ``./.paypos`` and SQLite in it). Machine-readable
output (``--json``) goes to stdout alone; messages go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paypos import limits
from paypos.adapters.vault import VaultError
from paypos.bootstrap import App, NotInitialisedError, bootstrap, init_database, require_schema, settle_for_serving
from paypos.config import ConfigError, load_settings
from paypos.networks.sandbox.wallet_tokens import wallet_user_token
from paypos.services import ledger as ledger_service
from paypos.services import sandbox as sandbox_service
from paypos.entrypoints.lazy import lazy_groups

_ENTRYPOINTS = "paypos.entrypoints"
app = typer.Typer(
    help="paypos — point-of-sale payment platform: acquiring host, sandbox networks, double-entry ledger.",
    no_args_is_help=True,
    add_completion=False,
    # Groups imported when used (paypos.entrypoints.lazy), listed in this order after the commands.
    cls=lazy_groups({
        "ledger": f"{_ENTRYPOINTS}.cli:ledger_app",
        "terminal": f"{_ENTRYPOINTS}.terminal_cli:terminal_app",
        "qr": f"{_ENTRYPOINTS}.cli_qr:qr_app",
        "sandbox": f"{_ENTRYPOINTS}.cli:sandbox_app",
        "wallet": f"{_ENTRYPOINTS}.cli_wallet:wallet_app",
        "prepaid": f"{_ENTRYPOINTS}.cli_prepaid:prepaid_app",
        "webhooks": f"{_ENTRYPOINTS}.cli_webhooks:webhooks_app",
        "escrow": f"{_ENTRYPOINTS}.cli_escrow:escrow_app",
        "merchants": f"{_ENTRYPOINTS}.cli_merchants:merchants_app",
        "terminals": f"{_ENTRYPOINTS}.cli_terminals:terminals_app",
        "console": f"{_ENTRYPOINTS}.cli_console:console_app",
        "settlement": f"{_ENTRYPOINTS}.cli_settlement:settlement_app",
        "bank": f"{_ENTRYPOINTS}.cli_settlement:bank_app",
        "pricing": f"{_ENTRYPOINTS}.cli_pricing:pricing_app",
        "reports": f"{_ENTRYPOINTS}.cli_reports:reports_app",
        "recon": f"{_ENTRYPOINTS}.cli_reports:recon_app",
    }),
)
ledger_app = typer.Typer(help="Inspect and check the double-entry ledger.", no_args_is_help=True)
sandbox_app = typer.Typer(
    help="List the sandbox's TEST merchants, terminals, cards and wallet users and apps (with their test keys).",
    no_args_is_help=True,
    cls=lazy_groups({"dispute": f"{_ENTRYPOINTS}.cli_escrow:dispute_app"}),
)

out = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Local state directory [env PAYPOS_DATA_DIR; default ./.paypos]."),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="sqlite:///file.db or postgresql://user@host/db [env PAYPOS_DATABASE_URL; default SQLite in the data dir].",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON to stdout instead of a table.")]


@contextmanager
def _app(data_dir: Path | None, database_url: str | None, *, need_schema: bool = True) -> Iterator[App]:
    """Build the app or exit 2 with one readable line (never a traceback for bad input)."""
    paypos: App | None = None
    try:
        paypos = bootstrap(load_settings(data_dir, database_url), initialising=not need_schema)
        if need_schema:
            require_schema(paypos)
        yield paypos
    except (ConfigError, NotInitialisedError, VaultError) as error:
        _fail(str(error))
    except sa.exc.OperationalError as error:
        _fail(f"database unreachable: {str(error.orig).strip().splitlines()[0]}")
    finally:
        if paypos is not None:
            paypos.close()


def _fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr (never wrapped, never read as markup), then exit ``code``."""
    err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code) from None


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column == "masked_pan")  # a PAN reads whole
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    return table


# --- init / serve / demo ------------------------------------------------------


@app.command()
def init(
    sandbox: Annotated[bool, typer.Option("--sandbox", help="Also create the sandbox test data.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create or upgrade the database schema (safe to run again); --sandbox seeds test data."""
    with _app(data_dir, database_url, need_schema=False) as paypos:
        report = init_database(paypos, sandbox=sandbox)
        err.print(f"[green]schema up to date[/] ({paypos.engine.dialect.name})")
        if report is not None:
            err.print(
                "sandbox: " + (", ".join(report.created) if report.created else "already present, nothing to add")
            )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = limits.http_host_default,
    http_port: Annotated[int, typer.Option("--http-port", help="HTTP API port.")] = limits.http_port_default,
    iso_port: Annotated[int, typer.Option("--iso-port", help="ISO 8583 TCP port (0 = off).")] = limits.iso_port_default,
    iso_processes: Annotated[int, typer.Option(
        "--iso-processes", min=1, max=limits.iso_processes_max,
        help="Host processes sharing the ISO port (SO_REUSEPORT), for PostgreSQL on several cores.")] = 1,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Serve the HTTP API (/healthz, /v1/accounts, docs at /docs) and the ISO 8583 host."""
    import asyncio
    import multiprocessing

    with _app(data_dir, database_url) as paypos:
        paypos.require_data_key()  # before any port opens: without the data key every card request is a 96
        err.print(f"paypos HTTP API on http://{host}:{http_port}"
                  + (f", ISO 8583 on {host}:{iso_port}" if iso_port else "")
                  + (f" × {iso_processes} processes" if iso_port and iso_processes > 1 else "")
                  + f" ({paypos.engine.dialect.name})")
        workers = []
        if iso_port and iso_processes > 1:
            spawn = multiprocessing.get_context("spawn")
            for _ in range(iso_processes - 1):
                worker = spawn.Process(target=_iso_process, args=(data_dir, database_url, host, iso_port, os.getpid()),
                                       daemon=True, name="paypos-iso")
                worker.start()
                workers.append(worker)
        try:
            asyncio.run(_serve(paypos, host, http_port, iso_port, reuse_port=iso_processes > 1))
        finally:
            for worker in workers:
                worker.terminate()
                worker.join(timeout=limits.http_shutdown_timeout_s)


def _iso_process(data_dir: Path | None, database_url: str | None, host: str, iso_port: int, parent: int) -> None:
    """One more ISO 8583 host process on the shared port; it ends with its parent, even after a kill -9."""
    import asyncio

    from paypos.adapters.iso.server import IsoServer
    from paypos.services.host import IsoHost

    async def run(paypos: App) -> None:
        iso = IsoServer(IsoHost(paypos).handle_batch, host, iso_port, reuse_port=True)
        await iso.start()
        settle_for_serving()
        try:
            while os.getppid() == parent:
                await asyncio.sleep(limits.iso_parent_check_s)
        finally:
            await iso.close()

    with _app(data_dir, database_url) as paypos:
        asyncio.run(run(paypos))


async def _serve(
    paypos: App, host: str, http_port: int, iso_port: int, servers: dict[str, Any] | None = None,
    log_level: str = "info", reuse_port: bool = False,
) -> None:
    import uvicorn

    from paypos.adapters.iso.server import IsoServer
    from paypos.entrypoints.api import create_app
    from paypos.services.host import IsoHost

    iso = IsoServer(IsoHost(paypos).handle_batch, host, iso_port, reuse_port=reuse_port) if iso_port else None
    if iso is not None:
        await iso.start()
    server = uvicorn.Server(uvicorn.Config(
        create_app(paypos, reports_refresh_interval_s=limits.reports_refresh_interval_s), host=host, port=http_port, log_level=log_level,
        timeout_graceful_shutdown=limits.http_shutdown_timeout_s,
    ))
    if servers is not None:
        servers["http"] = server
    settle_for_serving()
    try:
        await server.serve()
    finally:
        if iso is not None:
            await iso.close()


@app.command()
def demo(
    http_port: Annotated[int, typer.Option("--http-port", help="HTTP API port.")] = limits.http_port_default,
    iso_port: Annotated[int, typer.Option("--iso-port", help="ISO 8583 TCP port.")] = limits.iso_port_default,
    once: Annotated[bool, typer.Option("--once", help="Show the sandbox and exit instead of serving on.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Initialise the sandbox, start the host (HTTP + ISO 8583), run a few real payments
    through it, and show merchants, terminals, cards, payments and balances."""
    import asyncio

    from paypos.terminal.demo import run_demo_payments

    with _app(data_dir, database_url, need_schema=False) as paypos:
        init_database(paypos, sandbox=True)
        servers: dict[str, Any] = {}
        thread = threading.Thread(
            target=lambda: asyncio.run(_serve(paypos, "127.0.0.1", http_port, iso_port, servers, log_level="warning")),
            daemon=True,
        )
        thread.start()
        health = _wait_healthy(f"http://127.0.0.1:{http_port}/healthz", thread)
        out.print(f"[bold green]paypos is serving[/] http://127.0.0.1:{http_port} (/healthz → {health['status']}), "
                  f"ISO 8583 on 127.0.0.1:{iso_port}")
        _show_sandbox(paypos)
        payments = run_demo_payments(data_dir, database_url, "127.0.0.1", iso_port)
        out.print(_table("Payments through the host (ISO 8583 over TCP)", [
            {"what": p.what, "terminal": p.terminal_id, "card": p.card_id, "amount": p.amount,
             "39": p.outcome.get("response_code"), "approval": p.outcome.get("approval_code") or "",
             "rrn": p.outcome.get("rrn") or ""}
            for p in payments], ["what", "terminal", "card", "amount", "39", "approval", "rrn"]))
        for payment in payments:
            if payment.outcome.get("receipt_text"):
                out.print(f"[bold]Receipt — {payment.what}[/]")
                out.print(payment.outcome["receipt_text"], markup=False, highlight=False)
        _show_wallet_payments(paypos, f"http://127.0.0.1:{http_port}{WALLET_GATEWAY_PATH}")
        _show_balances(paypos)
        _show_console_logins(f"http://127.0.0.1:{http_port}/console/")
        if not once:
            out.print("Serving; press Ctrl-C to stop.")
            _wait_for_interrupt(thread)
        if "http" in servers:
            servers["http"].should_exit = True
        thread.join(timeout=limits.http_shutdown_timeout_s)


def _show_wallet_payments(paypos: App, gateway_url: str) -> None:
    """A QR payment and a credit-pay payment through the wallet gateway (docs/wallet.md)."""
    from paypos.entrypoints.demo_wallet import run_wallet_demo

    payments, account = run_wallet_demo(paypos, gateway_url)
    for payment in payments:
        out.print(f"[bold]Collection QR — {payment.what}[/]")
        out.print(payment.qr_text, markup=False, highlight=False)
    out.print(_table("Wallet payments (merchant app → /wallet/gateway.do; buyer scans)", [
        {"what": p.what, "out_trade_no": p.out_trade_no, "amount": p.amount, "funding": p.funding,
         "trade_status": p.status} for p in payments], ["what", "out_trade_no", "amount", "funding", "trade_status"]))
    out.print(_table("Buyer's credit pay", [
        {"user": account["user_id"], "limit": account["credit_limit_minor"], "available": account["available_minor"],
         "owed": account["owed_minor"], "plans": len(account["plans"])}], ["user", "limit", "available", "owed", "plans"]))


def _wait_healthy(url: str, thread: threading.Thread) -> dict[str, Any]:
    import httpx  # only `demo` needs an HTTP client; keep `--help` fast

    deadline = time.monotonic() + limits.http_startup_timeout_s
    while time.monotonic() < deadline:
        if not thread.is_alive():
            _fail(f"the server stopped during start-up (is the port of {url} free?)", 1)
        try:
            response = httpx.get(url, timeout=1.0)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    _fail(f"{url} did not answer within {limits.http_startup_timeout_s} s", 1)


def _wait_for_interrupt(thread: threading.Thread) -> None:
    try:
        while thread.is_alive():
            thread.join(timeout=0.5)
    except KeyboardInterrupt:
        pass


def _show_sandbox(paypos: App) -> None:
    with paypos.uow(write=False) as uow:
        merchants = sandbox_service.list_merchants(uow)
        terminals = sandbox_service.list_terminals(uow, paypos.vault)
        cards = sandbox_service.list_cards(uow, paypos.vault)
    out.print(_table("Sandbox merchants", merchants, ["merchant_id", "name", "mcc", "currency", "api_key"]))
    out.print(_table("Sandbox terminals", terminals,
                     ["terminal_id", "merchant_id", "currency", "initial_ksn", "mac_required", "contactless_cvm_limit_minor"]))
    out.print(_table("Sandbox cards (TEST)", cards,
                     ["id", "pan", "expiry", "pin", "cvn", "funding", "currency", "behavior", "available_minor"]))


def _show_console_logins(console_url: str) -> None:
    """The console's URL and the sandbox's TEST logins (docs/console.md)."""
    rows = [r for r in sandbox_service.list_console_users() if r["role"] in ("owner", "cashier", "admin")]
    out.print(f"[bold green]Web console[/] {console_url}")
    out.print(_table("Console logins (TEST; all: paypos sandbox console-users)", rows,
                     ["email", "password", "role", "merchant_id"]))


def _show_balances(paypos: App) -> None:
    rows = [ledger_service.balance_row(a) for a in ledger_service.accounts(paypos.engine)]
    out.print(_table("Ledger balances (minor units)", rows, _BALANCE_COLUMNS))


# --- ledger ------------------------------------------------------------------

_BALANCE_COLUMNS = ["account_id", "owner", "code", "currency", "debits_posted", "credits_posted",
                    "debits_pending", "credits_pending", "net_minor"]


@ledger_app.command("balances")
def ledger_balances(
    owner: Annotated[str | None, typer.Option(help="Only accounts whose owner starts with this, e.g. merchant:")] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Every account with its posted and pending debits and credits (integers of minor units)."""
    with _app(data_dir, database_url) as paypos:
        rows = [ledger_service.balance_row(a) for a in ledger_service.accounts(paypos.engine)]
    if owner:
        rows = [r for r in rows if str(r["owner"]).startswith(owner)]
    for row in rows:
        row.pop("flags", None)
    if as_json:
        _print_json(rows)
    else:
        out.print(_table("Ledger balances (minor units)", rows, _BALANCE_COLUMNS))


@ledger_app.command("check")
def ledger_check(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Recompute balances from the journal and check every invariant; exit 1 on any violation."""
    with _app(data_dir, database_url) as paypos:
        violations = ledger_service.check(paypos.engine, paypos.clock)
    if not violations:
        out.print("[green]ledger OK[/]: transfers balance per currency, stored balances match the journal, "
                  "limits hold, no expired hold left pending", soft_wrap=True)
        return
    out.print(f"[red]ledger check failed: {len(violations)} violation(s)[/]")
    for violation in violations:
        # One violation per line, whole, so that it can be grepped for its account.
        out.print(f"  {violation}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@ledger_app.command("expire")
def ledger_expire(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Release authorization holds past their timeout (`paypos serve` does this continuously)."""
    with _app(data_dir, database_url) as paypos:
        count = ledger_service.expire_pending(paypos.engine, paypos.clock)
    out.print(f"expired {count} hold(s)")


# --- sandbox -----------------------------------------------------------------


def _sandbox_listing(
    title: str, columns: list[str], rows_of: Callable[[App, Any], list[dict[str, Any]]],
    as_json: bool, data_dir: Path | None, database_url: str | None,
) -> None:
    with _app(data_dir, database_url) as paypos:
        with paypos.uow(write=False) as uow:
            rows = rows_of(paypos, uow)
    if as_json:
        _print_json(rows)
    else:
        out.print(_table(title, rows, columns))


@sandbox_app.command("cards")
def sandbox_cards(as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """TEST cards: PAN, expiry, PSN, track 2, PIN, CVV2, CVN, IMK-AC, behaviour, available balance."""
    _sandbox_listing(
        "Sandbox cards (TEST)",
        ["id", "pan", "expiry", "psn", "pin", "cvv2", "cvn", "interfaces", "scheme", "currency", "behavior",
         "available_minor"],
        lambda paypos, uow: sandbox_service.list_cards(uow, paypos.vault),
        as_json, data_dir, database_url,
    )


@sandbox_app.command("terminals")
def sandbox_terminals(as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """TEST terminals: terminal id (field 41), merchant id (field 42), BDK, initial KSN, limits."""
    _sandbox_listing(
        "Sandbox terminals (TEST keys)",
        ["terminal_id", "merchant_id", "currency", "bdk", "initial_ksn", "mac_required", "contactless_cvm_limit_minor"],
        lambda paypos, uow: sandbox_service.list_terminals(uow, paypos.vault),
        as_json, data_dir, database_url,
    )


@sandbox_app.command("merchants")
def sandbox_merchants(as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """TEST merchants with their test secret API keys (Bearer tokens for the REST API)."""
    _sandbox_listing(
        "Sandbox merchants", ["merchant_id", "name", "mcc", "currency", "api_key"],
        lambda _paypos, uow: sandbox_service.list_merchants(uow),
        as_json, data_dir, database_url,
    )


@sandbox_app.command("console-users")
def sandbox_console_users(as_json: JsonFlag = False, data_dir: DataDir = None,
                          database_url: DatabaseUrl = None) -> None:
    """TEST console logins (/console/): email, password, role, merchant (docs/sandbox.md)."""
    _sandbox_listing(
        "Sandbox console users (TEST passwords)", ["email", "password", "role", "merchant_id", "refund_limit_minor"],
        lambda _paypos, _uow: sandbox_service.list_console_users(),
        as_json, data_dir, database_url,
    )


# Where `paypos serve` answers the wallet's merchant gateway by default (api_wallet.GATEWAY_PATH;
# not imported from there, which would load FastAPI into every command).
WALLET_GATEWAY_PATH = "/wallet/gateway.do"
WALLET_GATEWAY_URL_DEFAULT = f"http://{limits.http_host_default}:{limits.http_port_default}{WALLET_GATEWAY_PATH}"


@sandbox_app.command("wallet-apps")
def sandbox_wallet_apps(
    gateway_url: Annotated[str, typer.Option(
        "--gateway-url", help="The gateway URL to print (where `paypos serve` answers it).")]
    = WALLET_GATEWAY_URL_DEFAULT,
    as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None,
) -> None:
    """TEST wallet merchant apps: app id, merchant, RSA2 key pair, the wallet's public key, gateway URL."""

    from paypos.domain.wallet import WalletError
    from paypos.services import wallet as wallet_service

    def rows_of(paypos: App, uow: Any) -> list[dict[str, Any]]:
        try:
            return wallet_service.list_apps(uow, paypos.vault, gateway_url)
        except WalletError as error:
            _fail(error.message, 1)

    _sandbox_listing("Sandbox wallet apps (TEST keys)", ["app_id", "merchant_id", "name", "gateway_url"],
                     rows_of, as_json, data_dir, database_url)


@sandbox_app.command("wallet-users")
def sandbox_wallet_users(as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """TEST wallet users: id, phone, balance, credit limit, linked cards, and their API token."""
    from paypos.services import wallet as wallet_service

    def rows_of(_paypos: App, uow: Any) -> list[dict[str, Any]]:
        return [{**row, "api_token": wallet_user_token(row["user_id"])} for row in wallet_service.list_users(uow)]

    _sandbox_listing(
        "Sandbox wallet users (TEST tokens)",
        ["user_id", "phone", "name", "currency", "balance_minor", "credit_limit_minor", "no_confirm_limit_minor",
         "api_token"],
        rows_of, as_json, data_dir, database_url,
    )


@sandbox_app.command("notifications")
def sandbox_notifications(
    card: Annotated[str | None, typer.Option("--card", help="Only this card's notices.")] = None,
    as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None,
) -> None:
    """The sandbox issuer's outbox: one SMS per approved payment or refund (masked PANs only)."""
    with _app(data_dir, database_url) as paypos:
        with paypos.uow(write=False) as uow:
            rows = uow.host.notifications(card)
    for row in rows:
        row["created_at"] = row["created_at"].isoformat()
    if as_json:
        _print_json(rows)
    else:
        out.print(_table("Cardholder notices (sandbox outbox)", rows, ["id", "created_at", "recipient", "text"]))


@sandbox_app.command("add-terminals")
def sandbox_add_terminals(
    count: Annotated[int, typer.Argument(min=1, max=10_000, help="How many terminals to add.")],
    merchant: Annotated[str, typer.Option("--merchant", help="Merchant id (field 42).")] = "PPCAFE000000001",
    mac: Annotated[bool, typer.Option("--mac/--no-mac", help="Require a MAC on every request.")] = False,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Provision COUNT more TEST terminals (for load generators: one per connection); prints them."""
    with _app(data_dir, database_url) as paypos:
        try:
            with paypos.uow() as uow:
                added = sandbox_service.add_terminals(uow, paypos.vault, count, merchant, mac, paypos.clock())
                uow.commit()
        except sandbox_service.SandboxInputError as error:
            _fail(str(error))
        with paypos.uow(write=False) as uow:
            rows = sandbox_service.list_terminals(uow, paypos.vault, set(added))
    _print_json(rows) if as_json else out.print(_table("Added terminals (TEST keys)", rows,
                                                        ["terminal_id", "merchant_id", "initial_ksn", "mac_required"]))


@sandbox_app.command("add-cards")
def sandbox_add_cards(
    count: Annotated[int, typer.Argument(min=1, max=100_000, help="How many cards to issue.")],
    cvn: Annotated[int, typer.Option("--cvn", help="Cryptogram version: 10 or 18.")] = 18,
    interfaces: Annotated[str, typer.Option("--interfaces", help="Comma list of chip, contactless, magstripe.")]
    = "chip,contactless,magstripe",
    available_minor: Annotated[int, typer.Option("--available-minor", help="Opening balance, minor units.")]
    = 10_000_000,
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 numeric: 156 or 840.")] = "156",
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Issue COUNT more approving TEST cards (for load generators); prints them in the `cards` shape."""
    from paypos.domain.registry import CardInterface

    try:
        chosen = tuple(CardInterface(name.strip()) for name in interfaces.split(",") if name.strip())
    except ValueError:
        _fail(f"--interfaces: {interfaces!r} must be a comma list of chip, contactless, magstripe")
    with _app(data_dir, database_url) as paypos:
        try:
            with paypos.uow() as uow:
                added = sandbox_service.add_cards(
                    uow, paypos.vault, count, cvn=cvn, interfaces=chosen, available_minor=available_minor,
                    currency_numeric=currency, now=paypos.clock(),
                )
                uow.commit()
        except sandbox_service.SandboxInputError as error:
            _fail(str(error))
        with paypos.uow(write=False) as uow:
            rows = sandbox_service.list_cards(uow, paypos.vault, set(added))
    _print_json(rows) if as_json else out.print(_table("Added cards (TEST)", rows,
                                                        ["id", "pan", "expiry", "pin", "cvn", "available_minor"]))


@app.command()
def bench(
    terminals: Annotated[int, typer.Option("--terminals", min=1, max=1000, help="Concurrent terminals.")] = 64,
    duration: Annotated[int, typer.Option("--duration", min=1, max=3600, help="Seconds of load.")] = 30,
    database_url: DatabaseUrl = None,
    host: Annotated[str | None, typer.Option("--host", help="A running host to load (default: start one).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Its ISO 8583 port.")] = None,
    iso_processes: Annotated[int | None, typer.Option(
        "--iso-processes", min=1, max=limits.iso_processes_max,
        help="Host processes for the self-started host (paypos serve --iso-processes); default: one per "
             "core on PostgreSQL, 1 on SQLite (one writer at a time).")] = None,
    sweep: Annotated[str | None, typer.Option(
        "--sweep", help="Comma-separated terminal counts (e.g. 8,16,32,64): one load of --duration each, "
                        "then the best approved/s whose p99 is within --p99-max-ms (--terminals is not used).")] = None,
    p99_max_ms: Annotated[float, typer.Option("--p99-max-ms", min=0.1, max=60_000,
                                              help="Latency bound of --sweep (ms).")] = 50.0,
) -> None:
    """Load the ISO 8583 host with N terminals (mix: 60% tap, 30% chip+PIN, 10% refunds/reversals);
    on PostgreSQL compare with pgbench TPC-B, run just before and just after the load. Prints each
    party's CPU per request (host, PostgreSQL, load generator) and per TPC-B transaction. Runs from
    a paypos checkout (bench/)."""
    checkout = Path(__file__).resolve().parents[3]
    if not (checkout / "bench" / "iso.py").exists():
        _fail("paypos bench runs from a source checkout (bench/iso.py not found)")
    sys.path.insert(0, str(checkout))
    from bench.iso import run

    if host is not None and port is None:
        _fail("--port is needed with --host")
    counts = _terminal_counts(sweep) if sweep is not None else None
    if iso_processes is None:
        on_postgresql = bool(database_url) and str(database_url).startswith("postgres")
        iso_processes = min(os.cpu_count() or 1, limits.iso_processes_max) if on_postgresql else 1
    run(terminals, duration, database_url, host, port, iso_processes=iso_processes, sweep=counts,
        p99_max_ms=p99_max_ms)


def _terminal_counts(text: str) -> list[int]:
    """--sweep's counts: integers 1..1000, at most limits.bench_sweep_counts_max of them."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isascii() and part.isdigit() for part in parts):
        _fail(f"--sweep: terminal counts are comma-separated whole numbers, not {text!r}")
    counts = [int(part) for part in parts]
    if not all(1 <= n <= 1000 for n in counts):
        _fail("--sweep: each terminal count is 1 to 1000")
    if len(counts) > limits.bench_sweep_counts_max:
        _fail(f"--sweep: at most {limits.bench_sweep_counts_max} terminal counts")
    return counts


def main() -> None:
    app()


if __name__ == "__main__":
    main()
