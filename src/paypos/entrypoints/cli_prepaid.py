"""`paypos prepaid …` — stored-value cards on the platform's own BIN (docs/prepaid.md).

Issue a card for a program merchant, top it up (cash at the counter or a wallet), read its
balance, freeze and unfreeze it, list the cards and show the program's float. The card then
pays at any paypos terminal (`paypos terminal pay --card <card id>`).

Every command takes ``--json``, ``--data-dir`` and ``--database-url``. Amounts are typed in
major units ("12.50") and read exactly in the card's currency; JSON shows integers of minor
units. Ids for idempotent retries (``--issue-id``, ``--topup-id``) default to a new random id.
A refused operation (a frozen card, a gift top-up, insufficient funds …) exits 1 with
``error: <message>`` on stderr; bad input (a malformed amount, PIN or option) exits 2.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import VaultError
from paypos.bootstrap import App, NotInitialisedError, bootstrap, require_schema
from paypos.config import ConfigError, load_settings
from paypos.domain.money import MoneyError, money, parse_major
from paypos.domain.registry import CardInterface
from paypos.services import prepaid

prepaid_app = typer.Typer(
    help="Prepaid stored-value cards on the platform's own BIN: issue, top up, balance, freeze, float.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)
T = TypeVar("T")


class Kind(StrEnum):
    RELOADABLE = "reloadable"
    GIFT = "gift"


class Source(StrEnum):
    CASH = "cash"
    WALLET = "wallet"


CardId = Annotated[str, typer.Argument(help="The card id (paypos prepaid list).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON to stdout instead of a table.")]
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
_CARD_COLUMNS = ["card_id", "masked_pan", "kind", "status", "expiry", "program_merchant_id", "balance"]


# --- plumbing (the pattern of entrypoints/cli.py) ----------------------------------------------


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


def _fail(message: str, code: int) -> NoReturn:
    """One line on stderr (never wrapped, never read as markup), then exit ``code``."""
    err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code) from None


def in_unit_of_work(data_dir: Path | None, database_url: str | None, work: Callable[[App, UnitOfWork], T], *,
                    write: bool) -> T:
    """One use case in one unit of work, committed when it writes. The app's own failures (not
    initialised, database unreachable) exit 2 in one line; the use case's errors propagate for
    the command group to map to its one-line refusals."""
    with _app(data_dir, database_url) as paypos, paypos.uow(write=write) as uow:
        result = work(paypos, uow)
        if write:
            uow.commit()
        return result


def _run(data_dir: Path | None, database_url: str | None, work: Callable[[App, UnitOfWork], T],
         *, write: bool = True) -> T:
    """One use case in one committed unit of work; its refusal as one line on stderr."""
    with _app(data_dir, database_url) as paypos:
        try:
            if write:
                return prepaid.transact(paypos, lambda uow: work(paypos, uow))
            with paypos.uow(write=False) as uow:
                return work(paypos, uow)
        except prepaid.PrepaidError as error:
            _fail(str(error), 2 if error.code.startswith("invalid_") else 1)
        except MoneyError as error:
            _fail(f"--amount: {error}", 2)


def _amount(text: str, alpha: str, option: str) -> int:
    try:
        return parse_major(text, alpha).amount_minor
    except MoneyError as error:
        _fail(f"{option}: {error}", 2)


def _show(title: str, rows: list[dict[str, Any]], columns: list[str], as_json: bool, data: Any = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(rows if data is None else data, indent=2, ensure_ascii=False) + "\n")
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        # Ids and PANs read (and copy) whole; other columns fold to fit the terminal's width.
        whole = column in ("id", "masked_pan") or column.endswith("_id")
        table.add_column(column, overflow="fold", no_wrap=whole)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    out.print(table)


def _with_major(row: dict[str, Any]) -> dict[str, Any]:
    """A card row with its balance in major units for the table (JSON keeps minor units)."""
    return {**row, "balance": str(money(row["balance_minor"], row["currency"]))}


# --- commands ----------------------------------------------------------------------------------


@prepaid_app.command()
def issue(
    merchant: Annotated[str, typer.Option("--merchant", help="The program merchant (field 42 id).")],
    kind: Annotated[Kind, typer.Option("--kind", help="reloadable, or gift (no top-ups).")],
    pin: Annotated[str, typer.Option("--pin", help="The cardholder's PIN, 4-6 digits.")],
    load: Annotated[str, typer.Option("--load", help="Initial load in major units, e.g. 100.00.")] = "0",
    expiry: Annotated[str | None, typer.Option("--expiry", help="YYMM [default: three years from now].")] = None,
    interfaces: Annotated[str, typer.Option("--interfaces", help="Comma list of chip, contactless, magstripe.")]
    = "chip,contactless,magstripe",
    issue_id: Annotated[str | None, typer.Option("--issue-id", help="Idempotency id: a retry with it issues "
                                                                    "nothing new [default: a new one].")] = None,
    as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None,
) -> None:
    """Issue a card with an initial load paid in cash (the merchant's float). Shows the PAN and CVV2 once."""
    try:
        chosen = tuple(CardInterface(name.strip()) for name in interfaces.split(",") if name.strip())
    except ValueError:
        _fail(f"--interfaces: {interfaces!r} must be a comma list of chip, contactless, magstripe", 2)

    def work(paypos: App, uow: UnitOfWork) -> dict[str, Any]:
        found = uow.registry.get_merchant(merchant)
        if found is None:
            raise prepaid.PrepaidError("merchant_not_found", f"--merchant: no merchant {merchant!r}")
        return prepaid.issue_card(
            uow, paypos.vault, program_merchant_id=merchant, kind=kind.value,
            initial_load_minor=_amount(load, found.currency, "--load"), pin=pin,
            issue_id=issue_id or uuid.uuid4().hex, now=paypos.clock(), expiry=expiry, interfaces=chosen)

    card = _run(data_dir, database_url, work)
    _show("Prepaid card issued (PAN and CVV2 are shown this once)", [_with_major(card)],
          ["card_id", "pan", "cvv2", "expiry", "kind", "program_merchant_id", "balance"], as_json, card)


@prepaid_app.command()
def topup(
    card: CardId,
    amount: Annotated[str, typer.Option("--amount", help="Amount in major units, e.g. 50.00.")],
    source: Annotated[Source, typer.Option("--source", help="cash (at the counter) or wallet.")] = Source.CASH,
    user: Annotated[str | None, typer.Option("--user", help="The wallet user paying (with --source wallet).")]
    = None,
    topup_id: Annotated[str | None, typer.Option("--topup-id", help="Idempotency id [default: a new one].")] = None,
    as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None,
) -> None:
    """Top up a reloadable card: cash taken at the counter, or from a wallet user's balance."""
    if (source is Source.WALLET) != (user is not None):
        _fail("--user names the wallet user, with --source wallet (and only with it)", 2)

    def work(paypos: App, uow: UnitOfWork) -> dict[str, Any]:
        found = prepaid.get_card(uow, card)
        if found is None:
            raise prepaid.PrepaidError("card_not_found", f"no prepaid card {card!r}")
        return prepaid.top_up(uow, card_id=card, amount_minor=_amount(amount, found.currency.alpha, "--amount"),
                              source=source.value, topup_id=topup_id or uuid.uuid4().hex, wallet_user_id=user,
                              now=paypos.clock())

    result = _run(data_dir, database_url, work)
    _show("Top-up", [_with_major(result)], ["topup_id", "card_id", "source", "amount_minor", "balance"],
          as_json, result)


@prepaid_app.command()
def balance(card: CardId, as_json: JsonFlag = False, data_dir: DataDir = None,
            database_url: DatabaseUrl = None) -> None:
    """The card's available balance, status and expiry."""
    row = _run(data_dir, database_url, lambda paypos, uow: prepaid.balance(uow, card, paypos.clock()), write=False)
    _show("Prepaid card", [_with_major(row)], [*_CARD_COLUMNS, "expired"], as_json, row)


@prepaid_app.command()
def freeze(card: CardId, as_json: JsonFlag = False, data_dir: DataDir = None,
           database_url: DatabaseUrl = None) -> None:
    """Freeze a lost card: payments (ISO 8583: 62) and top-ups are refused until it is unfrozen."""
    row = _run(data_dir, database_url, lambda _paypos, uow: prepaid.freeze(uow, card))
    _show("Prepaid card frozen", [_with_major(row)], _CARD_COLUMNS, as_json, row)


@prepaid_app.command()
def unfreeze(card: CardId, as_json: JsonFlag = False, data_dir: DataDir = None,
             database_url: DatabaseUrl = None) -> None:
    """Make a frozen card usable again (not an expired or blocked one)."""
    row = _run(data_dir, database_url, lambda paypos, uow: prepaid.unfreeze(uow, card, paypos.clock()))
    _show("Prepaid card unfrozen", [_with_major(row)], _CARD_COLUMNS, as_json, row)


@prepaid_app.command("list")
def list_cards(
    merchant: Annotated[str | None, typer.Option("--merchant", help="Only this program merchant's cards.")] = None,
    as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None,
) -> None:
    """Prepaid cards, masked PANs only, with their balances."""
    rows = _run(data_dir, database_url, lambda paypos, uow: prepaid.list_cards(uow, merchant, paypos.clock()),
                write=False)
    _show("Prepaid cards", [_with_major(r) for r in rows], _CARD_COLUMNS, as_json, rows)


@prepaid_app.command("float")
def float_report(
    merchant: Annotated[str | None, typer.Option("--merchant", help="Only this program merchant.")] = None,
    as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None,
) -> None:
    """Per program merchant: cards, their unspent balance, the float, wallet loads, redeemed value.

    float + wallet_loaded = unspent + redeemed (the `agrees` column); exit 1 if it does not hold."""
    rows = _run(data_dir, database_url, lambda _paypos, uow: prepaid.float_report(uow, merchant), write=False)
    _show("Prepaid float (minor units)", rows,
          ["program_merchant_id", "currency", "cards", "unspent_minor", "float_minor", "wallet_loaded_minor",
           "redeemed_minor", "agrees"], as_json)
    if not all(row["agrees"] for row in rows):
        raise typer.Exit(1)
