"""`paypos wallet …` — the sandbox wallet app, as its buyer sees it (docs/wallet.md).

Pay a merchant's collection code (``scan``), show a one-time payment code for the
merchant's scanner (``code``), approve a payment above the no-confirmation limit
(``confirm``), top up from a linked card, and read and repay credit-pay bills.

Every command takes ``--user`` (a sandbox wallet user: `paypos sandbox wallet-users`),
``--json``, ``--data-dir`` and ``--database-url``. Amounts are typed in major units
("12.50") and read exactly in the user's currency; JSON shows integers of minor units.
A refused operation (a ``WalletError``) exits 1 with ``error: <message>`` on stderr; a
usage error (a malformed amount, conflicting options) exits 2.
"""

from __future__ import annotations

import enum
import json
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, NoReturn

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import VaultError
from paypos.bootstrap import App, NotInitialisedError, bootstrap, require_schema
from paypos.config import ConfigError, load_settings
from paypos.domain.money import Money, MoneyError, money, parse_major
from paypos.domain.wallet import Funding, WalletError, WalletUser
from paypos.services import creditpay as creditpay_service
from paypos.services import wallet as wallet_service

wallet_app = typer.Typer(
    help="The sandbox wallet app, as its buyer sees it: pay a merchant's QR code, show a payment code, "
         "confirm, top up, credit-pay bills and repayments.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


class Installments(enum.StrEnum):
    """The platform's installment offers (domain.creditpay.INSTALLMENT_MONTHS)."""

    THREE = "3"
    SIX = "6"
    TWELVE = "12"


class RepaySource(enum.StrEnum):
    BALANCE = "balance"
    CARD = "card"


User = Annotated[str, typer.Option(
    "--user", help="Wallet user id (paypos sandbox wallet-users), e.g. 2088100000000001.")]
FundingOption = Annotated[Funding, typer.Option(
    "--funding", help="Pay from the wallet balance, a linked card, or credit pay.")]
CardOption = Annotated[str | None, typer.Option("--card", help="Linked card id (default: the first linked card).")]
InstallmentsOption = Annotated[Installments | None, typer.Option(
    "--installments", help="Credit pay in 3, 6 or 12 monthly installments.")]
RepaySourceOption = Annotated[RepaySource, typer.Option(
    "--source", help="Pay from the wallet balance or a linked card (--card).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON to stdout instead of a table.")]
AsOf = Annotated[str | None, typer.Option(
    "--as-of", help="Sandbox test clock: act as on this later day (YYYY-MM-DD, noon GMT+8), e.g. to see a bill "
                    "issued or interest charged without waiting a month. Never earlier than today.")]
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


# --- plumbing (the pattern of entrypoints/cli.py) ---------------------------------------


@contextmanager
def _app(data_dir: Path | None, database_url: str | None) -> Iterator[App]:
    """Build the app or exit 2 with one readable line (never a traceback for bad input)."""
    paypos: App | None = None
    try:
        paypos = bootstrap(load_settings(data_dir, database_url), initialising=False)
        require_schema(paypos)
        yield paypos
    except (ConfigError, NotInitialisedError, VaultError) as error:
        _fail(str(error), 2)
    except sa.exc.OperationalError as error:
        _fail(f"database unreachable: {str(error.orig).strip().splitlines()[0]}", 2)
    finally:
        if paypos is not None:
            paypos.close()


@contextmanager
def _refused() -> Iterator[None]:
    """A wallet refusal becomes ``error: <message>`` and exit 1."""
    try:
        yield
    except WalletError as error:
        _fail(error.message, 1)


def _fail(message: str, code: int) -> NoReturn:
    """One line on stderr (never wrapped, never read as markup), then exit ``code``."""
    err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code) from None


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _user(uow: UnitOfWork, user_id: str) -> WalletUser:
    user = uow.wallet.get_user(user_id)
    if user is None:
        raise WalletError("user_not_found", f"no wallet user {user_id!r}", field="user")
    return user


def _amount(uow: UnitOfWork, user_id: str, text: str) -> Money:
    """``--amount`` in major units of the user's currency, exactly, above zero — else exit 2."""
    try:
        amount = parse_major(text, _user(uow, user_id).currency)
    except MoneyError as error:
        _fail(f"--amount: {error}", 2)
    if amount.amount_minor <= 0:
        _fail(f"--amount: must be above zero, got {text!r}", 2)
    return amount


def _major(amount_minor: int | None, alpha: str) -> str:
    return "" if amount_minor is None else f"{alpha} {money(amount_minor, alpha).to_major_str()}"


def _fields(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in rows:
        table.add_row(name, "" if value is None else str(value))
    return table


def _rows(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    return table


def _trade_table(title: str, trade: dict[str, Any]) -> Table:
    alpha = trade["currency"]
    rows = [("trade_no", trade["trade_no"]), ("merchant", trade["merchant_id"]), ("subject", trade["subject"]),
            ("amount", _major(trade["amount_minor"], alpha)), ("state", trade["state"]),
            ("funding", trade["funding"])]
    if trade.get("installments"):
        rows.append(("installments", f"{trade['installments']} (fee paid by {trade['fee_payer']})"))
    rows.append(("paid_at", trade["paid_at"]))
    return _fields(title, rows)


def _trades_rows(trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**t, "amount": _major(t["amount_minor"], t["currency"])} for t in trades]


_TRADE_COLUMNS = ["trade_no", "merchant_id", "subject", "amount", "state", "funding", "installments"]


def _installments(value: Installments | None) -> int:
    return int(value.value) if value else 0


# --- pay -------------------------------------------------------------------------------------


@wallet_app.command()
def scan(
    payload: Annotated[str, typer.Argument(help="The merchant's collection code, as read from its QR.")],
    user: User,
    funding: FundingOption = Funding.BALANCE,
    card: CardOption = None,
    installments: InstallmentsOption = None,
    amount: Annotated[str | None, typer.Option(
        "--amount", help="Amount in major units, e.g. 12.50 (static codes, which carry none).")] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Scan a merchant's collection code and pay it (dynamic codes carry their amount)."""
    with _app(data_dir, database_url) as paypos, _refused(), paypos.uow() as uow:
        amount_minor = _amount(uow, user, amount).amount_minor if amount is not None else None
        trade = wallet_service.scan(uow, paypos.vault, paypos.clock(), payload, user, funding=funding.value,
                                    card_id=card, installments=_installments(installments),
                                    amount_minor=amount_minor)
        uow.commit()
    _print_json(trade) if as_json else out.print(_trade_table("Paid", trade))


@wallet_app.command()
def code(
    user: User,
    qr: Annotated[bool, typer.Option("--qr", help="Also draw the code as a QR code in text.")] = False,
    barcode: Annotated[Path | None, typer.Option(
        "--barcode", help="Write the code as a Code 128 barcode to this .svg file.")] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Show a fresh one-time payment code (18 digits) for the merchant's scanner."""
    if qr and as_json:
        _fail("--qr draws to stdout: use it without --json", 2)
    if barcode is not None and barcode.suffix.lower() != ".svg":
        _fail(f"--barcode {barcode}: the barcode is drawn as SVG; name a .svg file", 2)
    with _app(data_dir, database_url) as paypos, _refused(), paypos.uow(write=False) as uow:
        shown = wallet_service.payment_code(uow, paypos.vault, paypos.clock(), user)
    if barcode is not None:
        _write_barcode(barcode, shown["code"])
    if as_json:
        _print_json(shown)
        return
    out.print(_fields("Payment code", [("code", shown["code"]), ("valid_until", shown["valid_until"]),
                                       ("no_confirm_limit_minor", shown["no_confirm_limit_minor"])]))
    if qr:
        sys.stdout.write(_qr_text(shown["code"]))


def _write_barcode(path: Path, payment_code: str) -> None:
    from paypos.adapters import qrimage

    try:
        path.write_text(qrimage.render_code128_svg(payment_code), encoding="utf-8")
    except OSError as error:
        _fail(f"cannot write {path}: {error.strerror or error}", 1)
    err.print(f"wrote {escape(str(path))}")


def _qr_text(payment_code: str) -> str:
    """The payment code as a QR code in half-block text (light on dark, level M, 4-module
    quiet zone), as `paypos qr render --text` draws a collection code.

    adapters.qrimage draws only EMVCo merchant-presented payloads, which a payment code is
    not; segno draws it here the same way.
    """
    import segno

    from paypos.adapters import qrimage

    symbol = segno.make_qr(payment_code, error="m", boost_error=False)
    rows = [[not dark for dark in row]
            for row in symbol.matrix_iter(scale=1, border=qrimage.QR_QUIET_ZONE_MODULES)]
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))
    blocks = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}
    return "".join("".join(blocks[pair] for pair in zip(upper, lower)) + "\n"
                   for upper, lower in zip(rows[0::2], rows[1::2]))


@wallet_app.command()
def confirm(
    user: User,
    trade: Annotated[str | None, typer.Option(
        "--trade", help="The trade to approve (needed only when several wait).")] = None,
    funding: FundingOption = Funding.BALANCE,
    card: CardOption = None,
    installments: InstallmentsOption = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Approve a payment-code charge above your no-confirmation limit, and pay it."""
    with _app(data_dir, database_url) as paypos, _refused(), paypos.uow() as uow:
        paid = wallet_service.confirm(uow, paypos.vault, paypos.clock(), user, trade, funding=funding.value,
                                      card_id=card, installments=_installments(installments))
        uow.commit()
    _print_json(paid) if as_json else out.print(_trade_table("Confirmed and paid", paid))


# --- the wallet ----------------------------------------------------------------------------


@wallet_app.command()
def show(user: User, as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Balance, credit pay, payments awaiting your confirmation and recent trades."""
    with _app(data_dir, database_url) as paypos, _refused(), paypos.uow(write=False) as uow:
        summary = wallet_service.buyer_summary(uow, user)
    if as_json:
        _print_json(summary)
        return
    alpha = summary["currency"]
    out.print(_fields(f"Wallet of {summary['name']}", [
        ("user_id", summary["user_id"]), ("phone", summary["phone"]),
        ("balance", _major(summary["balance_minor"], alpha)),
        ("credit limit", _major(summary["credit_limit_minor"], alpha)),
        ("credit available", _major(summary["credit_available_minor"], alpha)),
        ("credit owed", _major(summary["credit_owed_minor"], alpha)),
        ("no-confirmation limit", _major(summary["no_confirm_limit_minor"], alpha)),
        ("linked cards", ", ".join(summary["linked_cards"])),
    ]))
    if summary["awaiting_confirmation"]:
        out.print(_rows("Awaiting your confirmation (paypos wallet confirm)",
                        _trades_rows(summary["awaiting_confirmation"]), _TRADE_COLUMNS))
    out.print(_rows("Recent trades", _trades_rows(summary["recent_trades"]), _TRADE_COLUMNS))


@wallet_app.command()
def topup(
    user: User,
    card: Annotated[str, typer.Option("--card", help="The linked card to take the money from.")],
    amount: Annotated[str, typer.Option("--amount", help="Amount in major units, e.g. 100.00.")],
    topup_id: Annotated[str | None, typer.Option(
        "--topup-id", help="Your id for this top-up: running again with it tops up once [default: random].")] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Move money from a linked card to the wallet balance."""
    topup_id = topup_id or uuid.uuid4().hex
    with _app(data_dir, database_url) as paypos, _refused(), paypos.uow() as uow:
        amount_minor = _amount(uow, user, amount).amount_minor
        row = wallet_service.top_up(uow, paypos.clock(), user, card, amount_minor, topup_id)
        uow.commit()
    if as_json:
        _print_json({"topup_id": topup_id, "amount_minor": amount_minor, "wallet": row})
        return
    out.print(_fields("Topped up", [("topup_id", topup_id), ("amount", _major(amount_minor, row["currency"])),
                                    ("balance", _major(row["balance_minor"], row["currency"]))]))


# --- credit pay ----------------------------------------------------------------------------


@wallet_app.command()
def bills(user: User, as_of: AsOf = None, as_json: JsonFlag = False, data_dir: DataDir = None,
          database_url: DatabaseUrl = None) -> None:
    """Credit-pay bills and installment plans (closes due bills and accrues overdue interest first)."""
    with _app(data_dir, database_url) as paypos, _refused(), paypos.uow() as uow:
        statement = creditpay_service.bills(uow, _moment(paypos, as_of), user)
        uow.commit()
    if as_json:
        _print_json(statement)
        return
    alpha = statement["currency"]
    out.print(_fields("Credit pay", [
        ("credit limit", _major(statement["credit_limit_minor"], alpha)),
        ("available", _major(statement["available_minor"], alpha)),
        ("owed", _major(statement["owed_minor"], alpha)),
    ]))
    out.print(_rows("Bills", _in_major(statement["bills"], alpha),
                    ["bill_date", "due_date", "amount", "interest", "minimum", "paid", "unpaid", "state"]))
    if statement["plans"]:
        out.print(_rows("Installment plans (paypos wallet payoff)", _in_major(statement["plans"], alpha),
                        ["trade_no", "principal", "installments", "installments_billed", "fee_payer", "buyer_fee",
                         "paid_off_on"]))


def _moment(paypos: App, as_of: str | None) -> datetime:
    """Now, or noon (GMT+8, the wallet's time zone) of the --as-of day; a day before today is refused
    (the books only move forward)."""
    now = paypos.clock()
    if as_of is None:
        return now
    try:
        day = date.fromisoformat(as_of)
    except ValueError:
        _fail("--as-of must be a date YYYY-MM-DD", 2)
    moment = datetime.combine(day, time(12), tzinfo=timezone(timedelta(hours=8))).astimezone(UTC)
    if day < creditpay_service.local_day(now):
        _fail("--as-of must not be before today", 2)
    return max(moment, now)


def _in_major(rows: list[dict[str, Any]], alpha: str) -> list[dict[str, Any]]:
    """Each ``<name>_minor`` also as ``<name>`` in major units, for a table."""
    return [{**row, **{key.removesuffix("_minor"): _major(value, alpha) for key, value in row.items()
                       if key.endswith("_minor") and isinstance(value, int)}} for row in rows]


@wallet_app.command()
def repay(
    user: User,
    amount: Annotated[str, typer.Option("--amount", help="Amount in major units, e.g. 50.00.")],
    source: RepaySourceOption = RepaySource.BALANCE,
    card: CardOption = None,
    as_of: AsOf = None,
    repayment_id: Annotated[str | None, typer.Option(
        "--repayment-id", help="Your id for this repayment: running again with it repays once [default: random].")]
    = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Repay credit pay: overdue interest first, then the oldest amounts due."""
    if card is not None and source is not RepaySource.CARD:
        _fail("--card goes with --source card", 2)
    repayment_id = repayment_id or uuid.uuid4().hex
    with _app(data_dir, database_url) as paypos, _refused(), paypos.uow() as uow:
        typed = _amount(uow, user, amount)
        done = creditpay_service.repay(uow, _moment(paypos, as_of), user, typed.amount_minor, source=source.value,
                                       card_id=card, repayment_id=repayment_id)
        uow.commit()
    if as_json:
        _print_json(done)
        return
    alpha = typed.currency.alpha
    out.print(_fields("Repaid", [
        ("repayment_id", done["repayment_id"]), ("amount", _major(done["amount_minor"], alpha)),
        *((f"to {name.removesuffix('_minor').replace('_', ' ')}", _major(value, alpha))
          for name, value in done["allocation"].items()),
        ("owed", _major(done["owed_minor"], alpha)), ("available", _major(done["available_minor"], alpha)),
    ]))


@wallet_app.command()
def payoff(
    user: User,
    trade: Annotated[str, typer.Option("--trade", help="The credit-pay trade whose installment plan to pay off.")],
    source: RepaySourceOption = RepaySource.BALANCE,
    card: CardOption = None,
    as_of: AsOf = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Pay off an installment plan early: its unbilled principal now, its unbilled fees waived."""
    if card is not None and source is not RepaySource.CARD:
        _fail("--card goes with --source card", 2)
    with _app(data_dir, database_url) as paypos, _refused(), paypos.uow() as uow:
        done = creditpay_service.payoff(uow, _moment(paypos, as_of), user, trade, source=source.value, card_id=card)
        alpha = _user(uow, user).currency
        uow.commit()
    if as_json:
        _print_json(done)
        return
    out.print(_fields("Paid off early", [
        ("trade_no", done["trade_no"]), ("installments left", done["installments_left"]),
        ("principal paid", _major(done["principal_paid_minor"], alpha)),
        ("fees waived", _major(done["fee_waived_minor"], alpha)),
        ("owed", _major(done["owed_minor"], alpha)), ("available", _major(done["available_minor"], alpha)),
    ]))
