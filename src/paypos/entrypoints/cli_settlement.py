"""`paypos settlement ...` (the operator's clearing) and `paypos bank ...` (bank accounts and
the sandbox bank); docs/settlement.md.

- ``paypos settlement run --date YYYY-MM-DD``: the clearing run of a business date (a progress
  bar on stderr; resumes a run that stopped; a finished one pays nothing again).
- ``paypos settlement runs|batches|payouts``, ``holidays add|list``, ``settings set|show``.
- ``paypos settlement file --date D --out F`` writes the clearing file (payouts become sent);
  ``paypos settlement statement import F`` applies the bank's statement.
- ``paypos bank accounts add|confirm|list``, ``paypos bank micro-deposits``, ``paypos bank flag``
  and ``paypos bank import F --out S`` (the sandbox bank answers a clearing file).

Refusals print one line ``error: ...`` on stderr: exit 1 for a state refusal or an unknown
object, exit 2 for bad input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from paypos import limits
from paypos.adapters.db.uow import UnitOfWork
from paypos.bootstrap import App
from paypos.domain.settlement import WEEKDAYS, Cycle, FileError, SettlementError, parse_weekday
from paypos.entrypoints.cli_prepaid import DatabaseUrl, DataDir, JsonFlag, _app, _fail, _show, in_unit_of_work
from paypos.services import audit
from paypos.services import settlement as service

T = TypeVar("T")
settlement_app = typer.Typer(help="Settlement: clearing runs, batches, payouts, holidays, settings, clearing files.",
                             no_args_is_help=True)
holidays_app = typer.Typer(help="Dates on which nothing settles or pays out.", no_args_is_help=True)
settings_app = typer.Typer(help="A merchant's settlement cycle, cut-off, zone, reserve and rates.",
                           no_args_is_help=True)
statement_app = typer.Typer(help="The bank's payout statement: apply it.", no_args_is_help=True)
settlement_app.add_typer(holidays_app, name="holidays")
settlement_app.add_typer(settings_app, name="settings")
settlement_app.add_typer(statement_app, name="statement")
bank_app = typer.Typer(help="Merchants' bank accounts and the sandbox bank (micro-deposits, flags, statements).",
                       no_args_is_help=True)
accounts_app = typer.Typer(help="Bind, confirm and list merchants' bank accounts.", no_args_is_help=True)
bank_app.add_typer(accounts_app, name="accounts")

err = Console(stderr=True)
DateOption = Annotated[str, typer.Option("--date", help="The business date, YYYY-MM-DD.")]
MerchantFilter = Annotated[str | None, typer.Option("--merchant", help="Only this merchant.")]
DateFilter = Annotated[str | None, typer.Option("--date", help="Only this business date, YYYY-MM-DD.")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=limits.settlement_page_size_max,
                                    help="Rows at most, newest first.")]
# Tables show the main columns (--json shows every field).
_RUN_COLUMNS = ["business_date", "status", "merchants_total", "merchants_done", "payouts"]
_BATCH_COLUMNS = ["id", "gross_minor", "settled_minor", "reserve_minor", "payout_minor", "note"]
_PAYOUT_COLUMNS = ["id", "amount_minor", "currency", "status", "return_code"]
_ACCOUNT_COLUMNS = ["id", "merchant_id", "number", "status", "attempts_left", "bank_flag"]


def _run(data_dir: Path | None, database_url: str | None, work: Callable[[App, UnitOfWork], T], *,
         write: bool = True) -> T:
    """One use case in one unit of work (committed when it writes); a refusal exits in one line."""
    with _refusals():
        return in_unit_of_work(data_dir, database_url, work, write=write)


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except SettlementError as error:
        _fail(f"{error.field}: {error}", 2)
    except FileError as error:
        _fail(f"file refused: {error}", 1)
    except (service.NotFound, service.Refused) as error:
        _fail(str(error), 1)


def _date(text: str | None, option: str = "--date") -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        _fail(f"{option} must be a date YYYY-MM-DD, got {text!r}", 2)


def _day(text: str) -> date:
    day = _date(text)
    if day is None:  # typer requires the option: never None here
        _fail("--date is required", 2)
    return day


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size > limits.clearing_file_bytes_max:
            _fail(f"{path}: larger than {limits.clearing_file_bytes_max} bytes", 2)
        return path.read_bytes()
    except OSError as error:
        _fail(f"{path}: {error.strerror}", 2)


def _write(path: Path, data: bytes) -> None:
    """Write whole or not at all: a temporary file renamed over the target."""
    temporary = path.with_name(path.name + ".part")
    try:
        temporary.write_bytes(data)
        temporary.replace(path)
    except OSError as error:
        _fail(f"{path}: {error.strerror}", 2)


# --- settlement ----------------------------------------------------------------------------------

@settlement_app.command("run")
def run(business_date: DateOption,
        group: Annotated[int, typer.Option(
            "--merchants-per-transaction", min=1, max=limits.settlement_merchants_per_transaction_max,
            help="Merchants settled per transaction (a crash redoes at most one group).")]
        = limits.settlement_merchants_per_transaction,
        as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """The clearing run of a business date: settle every due merchant, create payouts."""
    day = _day(business_date)
    bar = Progress(TextColumn("clearing {task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=err, transient=as_json)
    task = bar.add_task(day.isoformat(), total=None)

    def progress(done: int, total: int) -> None:
        if not bar.live.is_started:  # shown once merchants are being settled (not before a refusal)
            bar.start()
        bar.update(task, completed=done, total=total)

    try:
        with _app(data_dir, database_url) as paypos, _refusals():
            summary = service.run_clearing(paypos, day, progress, actor=audit.cli_actor(),
                                           merchants_per_transaction=group)
    finally:
        bar.stop()
    _show(f"Clearing run {day.isoformat()}", [summary], _RUN_COLUMNS, as_json, summary)


@settlement_app.command("runs")
def runs(limit: Limit = 50, as_json: JsonFlag = False, data_dir: DataDir = None,
         database_url: DatabaseUrl = None) -> None:
    """Clearing runs, newest first."""
    rows = _run(data_dir, database_url, lambda _p, uow: service.list_runs(uow, limit), write=False)
    _show("Clearing runs", rows, _RUN_COLUMNS, as_json)


@settlement_app.command("batches")
def batches(merchant: MerchantFilter = None, business_date: DateFilter = None, limit: Limit = 100,
            as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Settlement batches (one per merchant and business date), minor units."""
    day = _date(business_date)
    rows = _run(data_dir, database_url, lambda _p, uow: service.list_batches(uow, merchant, day, limit), write=False)
    _show("Settlement batches", rows, _BATCH_COLUMNS, as_json)


@settlement_app.command("payouts")
def payouts(merchant: MerchantFilter = None, business_date: DateFilter = None, limit: Limit = 100,
            as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Payouts: created → sent (in a clearing file) → paid | returned."""
    day = _date(business_date)
    rows = _run(data_dir, database_url, lambda _p, uow: service.list_payouts(uow, merchant, day, limit), write=False)
    _show("Payouts", rows, _PAYOUT_COLUMNS, as_json)


@settlement_app.command("file")
def clearing_file(business_date: DateOption,
                  out: Annotated[Path, typer.Option("--out", help="Where to write the clearing file (CSV).")],
                  as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Write the clearing file of a business date's payouts (they become sent)."""
    day = _day(business_date)
    data = _run(data_dir, database_url, lambda paypos, uow: service.write_clearing_file(
        uow, paypos.vault, day, audit.cli_actor(), paypos.clock()))
    _write(out, data)
    summary = {"file": str(out), "file_id": f"CF{day:%Y%m%d}", "payouts": data.count(b"\nD,")}
    _show("Clearing file", [summary], ["file", "file_id", "payouts"], as_json, summary)


@statement_app.command("import")
def statement_import(path: Annotated[Path, typer.Argument(help="The bank's statement (CSV).")],
                     as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Apply the bank's statement: paid payouts leave the platform, returned ones go back to available."""
    data = _read(path)
    result = _run(data_dir, database_url, lambda paypos, uow: service.import_statement(
        uow, data, audit.cli_actor(), paypos.clock()))
    _show("Statement applied", [result], list(result), as_json, result)


@holidays_app.command("add")
def holiday_add(business_date: DateOption,
                name: Annotated[str, typer.Option("--name", help="What the holiday is (at most 64 characters).")] = "",
                as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Add a holiday (adding it again changes nothing)."""
    day = _day(business_date)
    row = _run(data_dir, database_url, lambda paypos, uow: service.add_holiday(
        uow, day, name, audit.cli_actor(), paypos.clock()))
    _show("Holiday", [row], ["date", "name"], as_json, row)


@holidays_app.command("list")
def holiday_list(as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Every holiday, oldest first."""
    _show("Holidays", _run(data_dir, database_url, lambda _p, uow: service.list_holidays(uow), write=False),
          ["date", "name"], as_json)


@settings_app.command("set")
def settings_set(
    merchant: Annotated[str, typer.Option("--merchant", help="The merchant id.")],
    cycle: Annotated[Cycle | None, typer.Option("--cycle", help="T0 (instant, extra rate), T1 or WEEKLY.")] = None,
    weekday: Annotated[str | None, typer.Option("--weekday", help=f"WEEKLY's day: {', '.join(WEEKDAYS)}.")] = None,
    cutoff: Annotated[str | None, typer.Option("--cutoff", help="Cut-off, HH:MM local time.")] = None,
    time_zone: Annotated[str | None, typer.Option("--time-zone", help="IANA zone, e.g. Asia/Shanghai.")] = None,
    reserve_bps: Annotated[int | None, typer.Option("--reserve-bps", help="Rolling reserve, bps of gross.")] = None,
    reserve_hold_days: Annotated[int | None, typer.Option("--reserve-hold-days", help="Days a reserve is held.")]
    = None,
    instant_rate_bps: Annotated[int | None, typer.Option("--instant-rate-bps", help="T0's extra rate, bps.")] = None,
    payout_min: Annotated[int | None, typer.Option("--payout-min", help="Smallest payout, minor units.")] = None,
    as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None,
) -> None:
    """Change a merchant's settlement settings (the options given; the rest stay)."""
    try:
        day = None if weekday is None else parse_weekday(weekday)
    except SettlementError as error:
        _fail(f"--weekday: {error}", 2)
    given = {"cycle": cycle, "weekday": day, "cutoff_local": cutoff, "time_zone": time_zone,
             "reserve_bps": reserve_bps, "reserve_hold_days": reserve_hold_days,
             "instant_rate_bps": instant_rate_bps, "payout_minor_min": payout_min}
    changes = {key: value for key, value in given.items() if value is not None}
    row = _run(data_dir, database_url, lambda paypos, uow: service.set_settings(
        uow, merchant, changes, audit.cli_actor(), paypos.clock()))
    _show("Settlement settings", [row], list(row), as_json, row)


@settings_app.command("show")
def settings_show(merchant: Annotated[str, typer.Option("--merchant", help="The merchant id.")],
                  as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """A merchant's settlement settings (the defaults when none were set)."""
    def work(_paypos: App, uow: UnitOfWork) -> dict[str, Any]:
        service._merchant(uow, merchant)
        return service.settings_json(service.get_settings(uow, merchant))

    row = _run(data_dir, database_url, work, write=False)
    _show("Settlement settings", [row], list(row), as_json, row)


# --- bank accounts and the sandbox bank -------------------------------------------------------------

@accounts_app.command("add")
def account_add(merchant: Annotated[str, typer.Option("--merchant", help="The merchant id.")],
                number: Annotated[str, typer.Option("--number", help="Bank card number (16-19 digits) or IBAN.")],
                holder: Annotated[str, typer.Option("--holder", help="Holder name: the merchant's registered name.")],
                as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Bind a bank account: the sandbox bank sends two micro-deposits to confirm."""
    row = _run(data_dir, database_url, lambda paypos, uow: service.bind_bank_account(
        uow, paypos.vault, merchant, number, holder, audit.cli_actor(), paypos.clock()))
    _show("Bank account (confirm the two micro-deposits)", [row], _ACCOUNT_COLUMNS, as_json, row)


@accounts_app.command("confirm")
def account_confirm(merchant: Annotated[str, typer.Option("--merchant", help="The merchant id.")],
                    account: Annotated[str, typer.Option("--account", help="The bank account id (ba_...).")],
                    amounts: Annotated[str, typer.Option(
                        "--amounts", help="The two micro-deposits in minor units: 12,34.")],
                    as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Confirm the two micro-deposit amounts (three wrong tries fail the binding; exit 1 when wrong)."""
    parts = [part.strip() for part in amounts.split(",")]
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        _fail("--amounts must be two whole numbers of minor units, e.g. 12,34", 2)
    given = (int(parts[0]), int(parts[1]))
    row = _run(data_dir, database_url, lambda paypos, uow: service.confirm_micro_deposits(
        uow, merchant, account, given, audit.cli_actor(), paypos.clock()))
    _show("Bank account", [row], _ACCOUNT_COLUMNS, as_json, row)
    if not row["confirmed"]:
        _fail(f"wrong amounts: {row['attempts_left']} tries left (binding {row['status']})", 1)


@accounts_app.command("list")
def account_list(merchant: MerchantFilter = None, as_json: JsonFlag = False, data_dir: DataDir = None,
                 database_url: DatabaseUrl = None) -> None:
    """Bank accounts, newest first (numbers masked)."""
    rows = _run(data_dir, database_url, lambda _p, uow: service.list_bank_accounts(uow, merchant), write=False)
    _show("Bank accounts", rows, _ACCOUNT_COLUMNS, as_json)


@bank_app.command("micro-deposits")
def micro_deposits(account: Annotated[str, typer.Option("--account", help="The bank account id (ba_...).")],
                   as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Sandbox bank: the two micro-deposits sent to an account (what its statement shows)."""
    row = _run(data_dir, database_url, lambda _p, uow: service.micro_deposits(uow, account), write=False)
    _show("Micro-deposits", [row], list(row), as_json, row)


@bank_app.command("flag")
def flag(account: Annotated[str, typer.Option("--account", help="The bank account id (ba_...).")],
         reason: Annotated[str, typer.Option("--flag", help="account_closed, name_mismatch, or none to clear.")],
         as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Sandbox bank: payouts to a flagged account are returned (R02 closed, R03 name mismatch)."""
    chosen = None if reason == "none" else reason
    row = _run(data_dir, database_url, lambda paypos, uow: service.flag_bank_account(
        uow, account, chosen, audit.cli_actor(), paypos.clock()))
    _show("Bank account", [row], _ACCOUNT_COLUMNS, as_json, row)


@bank_app.command("import")
def bank_import(path: Annotated[Path, typer.Argument(help="A clearing file (paypos settlement file).")],
                out: Annotated[Path, typer.Option("--out", help="Where to write the bank's statement (CSV).")],
                as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Sandbox bank: verify a clearing file's control record and answer its payout statement."""
    data = _read(path)
    statement = _run(data_dir, database_url, lambda paypos, uow: service.bank_import(
        uow, paypos.vault, data, paypos.clock()), write=False)
    _write(out, statement)
    lines = statement.decode().splitlines()[1:-1]
    summary = {"statement": str(out), "paid": sum(1 for line in lines if ",paid," in line),
               "returned": sum(1 for line in lines if ",returned," in line)}
    _show("Bank statement", [summary], list(summary), as_json, summary)
