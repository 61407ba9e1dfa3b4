"""Settlement and payouts in the console (issue 7, docs/console.md, docs/settlement.md).

Merchant (owner): *Settlements* (batches and payouts, paged) and *Bank account* (bind by
number + holder name, confirm the two sandbox micro-deposits, settings read-only). Every lookup
is scoped to ``ctx.merchant_id``: another merchant's bank account id is a 404.

Operator (finance, admin): settlement runs (run a business date now, synchronously, after a
confirmation), batches and payouts of every merchant with filters, the clearing file of a date
(a POST: it marks the payouts sent and answers the file as an attachment), the bank's statement
import (upload; idempotent), holidays, bank accounts (masked) and a merchant's settings.

Every change goes through ``services.settlement`` in one unit of work with the console actor,
which records the audit entry.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.responses import Response

from paypos import limits
from paypos.domain import settlement as rules
from paypos.domain.console_roles import Permission as P
from paypos.domain.money import MoneyError, parse_major
from paypos.domain.settlement import FileError, SettlementError
from paypos.entrypoints.console.core import PREFIX, Ctx, NotFound, page
from paypos.services import payout_recon, settlement

_CYCLES = [c.value for c in rules.Cycle]


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None


def _page_number(ctx: Ctx) -> int:
    text = ctx.query("page", "1")
    return max(1, min(int(text), 10_000)) if text.isdigit() else 1


def _paged(rows: list[dict[str, Any]], number: int) -> tuple[list[dict[str, Any]], bool]:
    """Page ``number`` (1-based) of rows fetched with ``_fetch_limit``; whether more follow."""
    size = limits.console_page_rows
    return rows[(number - 1) * size:number * size], len(rows) > number * size


def _fetch_limit(number: int) -> int:
    return min(number * limits.console_page_rows + 1, limits.console_settlement_rows_max)


def today_for_settlement(now: datetime) -> date:
    """The default business date offered: today in the default settlement time zone."""
    return now.astimezone(ZoneInfo(limits.settlement_time_zone_default)).date()


# --- merchant: settlements and payouts ---------------------------------------------------------------

@page("/settlements", permission=P.SETTLEMENTS_VIEW, nav="Settlements")
def settlements(ctx: Ctx) -> Response:
    number = _page_number(ctx)
    with ctx.app.uow(write=False) as uow:
        found_batches = settlement.list_batches(uow, ctx.merchant_id, limit=_fetch_limit(number))
        found_payouts = settlement.list_payouts(uow, ctx.merchant_id, limit=_fetch_limit(number))
        accounts = {a["id"]: a["number"] for a in settlement.list_bank_accounts(uow, ctx.merchant_id)}
        chosen = settlement.get_settings(uow, ctx.merchant_id)
    batches, more_batches = _paged(found_batches, number)
    payouts, more_payouts = _paged(found_payouts, number)
    return ctx.render("settlement_merchant.html", batches=batches, payouts=payouts, accounts=accounts,
                      settings=settlement.settings_json(chosen), page=number,
                      has_more=more_batches or more_payouts)


# --- merchant: the bank account ----------------------------------------------------------------------

def _bank_view(ctx: Ctx, *, errors: dict[str, str] | None = None, status: int = 200,
               values: dict[str, str] | None = None) -> Response:
    with ctx.app.uow(write=False) as uow:
        accounts = settlement.list_bank_accounts(uow, ctx.merchant_id)
        chosen = settlement.settings_json(settlement.get_settings(uow, ctx.merchant_id))
        merchant = uow.registry.get_merchant(ctx.merchant_id)
    return ctx.render("settlement_bank.html", http_status=status, accounts=accounts, settings=chosen,
                      errors=errors or {}, values=values or {}, merchant=merchant,
                      pending=[a for a in accounts if a["status"] == "pending_verification"],
                      verified=[a for a in accounts if a["status"] == "verified"])


@page("/bank-account", permission=P.BANK_MANAGE, nav="Bank account")
def bank_account(ctx: Ctx) -> Response:
    return _bank_view(ctx)


_BIND_FIELDS = {"account_number": "account_number", "number": "account_number", "holder_name": "holder_name"}


@page("/bank-account", methods=("POST",), permission=P.BANK_MANAGE)
def bank_account_bind(ctx: Ctx) -> Response:
    number, holder = ctx.field("account_number").strip(), ctx.field("holder_name").strip()
    values = {"holder_name": holder[:limits.bank_holder_name_chars_max]}
    errors = {}
    if not number:
        errors["account_number"] = "Enter the account number."
    if not holder:
        errors["holder_name"] = "Enter the account holder's name."
    if errors:
        return _bank_view(ctx, errors=errors, status=422, values=values)
    try:
        with ctx.app.uow() as uow:
            bound = settlement.bind_bank_account(uow, ctx.app.vault, ctx.merchant_id, number, holder, ctx.actor,
                                                 ctx.now())
            uow.commit()
    except SettlementError as error:
        return _bank_view(ctx, errors={_BIND_FIELDS.get(error.field, "account_number"): str(error)}, status=422,
                          values=values)
    return ctx.redirect(PREFIX + "/bank-account",
                        f"Account {bound['number']} added: two small deposits are on their way; confirm them below.")


@page("/bank-account/confirm", methods=("POST",), permission=P.BANK_MANAGE)
def bank_account_confirm(ctx: Ctx) -> Response:
    """The two micro-deposit amounts, typed in major units as the bank statement shows them."""
    account_id = ctx.field("bank_account_id").strip()
    with ctx.app.uow(write=False) as uow:
        mine = {a["id"]: a for a in settlement.list_bank_accounts(uow, ctx.merchant_id)}
        merchant = uow.registry.get_merchant(ctx.merchant_id)
    if account_id not in mine or merchant is None:
        raise NotFound()
    amounts, errors = [], {}
    for name in ("amount_1", "amount_2"):
        try:
            minor = parse_major(ctx.field(name).strip(), merchant.currency).amount_minor
        except MoneyError as error:
            errors[name] = f"{error}"
            continue
        if minor <= 0:  # a micro-deposit is a positive amount; a malformed one is no try
            errors[name] = "the amount is more than zero"
        amounts.append(minor)
    if errors:
        return _bank_view(ctx, errors=errors, status=422)
    try:
        with ctx.app.uow() as uow:
            outcome = settlement.confirm_micro_deposits(uow, ctx.merchant_id, account_id,
                                                        (amounts[0], amounts[1]), ctx.actor, ctx.now())
            uow.commit()
    except settlement.NotFound:
        raise NotFound() from None
    except settlement.Refused as error:
        return _bank_view(ctx, errors={"confirm": str(error)}, status=409)
    if outcome["confirmed"]:
        return ctx.redirect(PREFIX + "/bank-account", f"Account {outcome['number']} is verified: payouts go there.")
    if outcome["status"] == "failed":
        return _bank_view(ctx, errors={"confirm": "Those amounts are wrong and no tries are left: the binding "
                                                  "failed. Add the account again."}, status=422)
    return _bank_view(ctx, errors={"confirm": f"Those amounts are wrong: {outcome['attempts_left']} "
                                              f"{'try' if outcome['attempts_left'] == 1 else 'tries'} left."},
                      status=422)


# --- operator: runs ----------------------------------------------------------------------------------

def _runs_view(ctx: Ctx, *, error: str | None = None, status: int = 200, summary: dict[str, Any] | None = None,
               chosen: str = "") -> Response:
    with ctx.app.uow(write=False) as uow:
        runs = settlement.list_runs(uow, limit=limits.console_page_rows)
    return ctx.render("settlement_runs.html", http_status=status, runs=runs, error=error, summary=summary,
                      chosen=chosen or today_for_settlement(ctx.now()).isoformat())


@page("/ops/settlement/runs", permission=P.OPS_SETTLEMENT_MANAGE, nav="Settlement runs", section="operator")
def runs(ctx: Ctx) -> Response:
    return _runs_view(ctx)


@page("/ops/settlement/runs", methods=("POST",), permission=P.OPS_SETTLEMENT_MANAGE, section="operator")
def run_now(ctx: Ctx) -> Response:
    """Run a business date now (synchronously: the sandbox's size) once the box is ticked; a
    finished run is answered again, nothing posts twice."""
    text = ctx.field("business_date")
    day = _day(text)
    if day is None:
        return _runs_view(ctx, error="business date: give a date as YYYY-MM-DD.", status=422, chosen=text[:10])
    if ctx.field("confirm") != "yes":
        return _runs_view(ctx, error=f"Tick the box to confirm the run of {day.isoformat()}.", status=422,
                          chosen=day.isoformat())
    try:
        summary = settlement.run_clearing(ctx.app, day, actor=ctx.actor)
    except (settlement.Refused, SettlementError) as error:
        return _runs_view(ctx, error=str(error), status=409, chosen=day.isoformat())
    return _runs_view(ctx, summary=summary, chosen=day.isoformat())


# --- operator: batches and payouts, the clearing file ------------------------------------------------------

def _payouts_view(ctx: Ctx, *, error: str | None = None, status: int = 200) -> Response:
    merchant = ctx.query("merchant").strip()
    day = _day(ctx.query("date"))
    wanted = ctx.query("status")
    wanted = wanted if wanted in ("created", "sent", "paid", "returned") else ""
    number = _page_number(ctx)
    with ctx.app.uow(write=False) as uow:
        found_batches = settlement.list_batches(uow, merchant or None, day, limit=_fetch_limit(number))
        found_payouts = settlement.list_payouts(uow, merchant or None, day, limit=limits.console_settlement_rows_max)
        accounts = {a["id"]: a["number"] for a in settlement.list_bank_accounts(uow, merchant or None)}
    if wanted:
        found_payouts = [p for p in found_payouts if p["status"] == wanted]
    batches, more_batches = _paged(found_batches, number)
    payouts, more_payouts = _paged(found_payouts, number)
    return ctx.render("settlement_payouts.html", http_status=status, batches=batches, payouts=payouts,
                      accounts=accounts, merchant=merchant, day=day.isoformat() if day else "", wanted=wanted,
                      page=number, has_more=more_batches or more_payouts, error=error,
                      file_date=day.isoformat() if day else today_for_settlement(ctx.now()).isoformat())


@page("/ops/settlement/payouts", permission=P.OPS_SETTLEMENT_MANAGE, nav="Payouts", section="operator")
def payouts(ctx: Ctx) -> Response:
    return _payouts_view(ctx)


@page("/ops/settlement/clearing-file", methods=("POST",), permission=P.OPS_SETTLEMENT_MANAGE, section="operator")
def clearing_file(ctx: Ctx) -> Response:
    """The clearing file of a date as an attachment; its created payouts become ``sent`` (asking
    again answers the same payouts under the same file id)."""
    day = _day(ctx.field("business_date"))
    if day is None:
        return _payouts_view(ctx, error="business date: give a date as YYYY-MM-DD.", status=422)
    with ctx.app.uow() as uow:
        data = settlement.write_clearing_file(uow, ctx.app.vault, day, ctx.actor, ctx.now())
        uow.commit()
    name = rules.clearing_file_id(day) + ".csv"
    return Response(data, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@page("/ops/settlement/exceptions", permission=P.OPS_SETTLEMENT_MANAGE, nav="Payout exceptions",
      section="operator")
def payout_exceptions(ctx: Ctx) -> Response:
    """The payout leg of reconciliation: payouts whose ledger transfers or bank answer disagree."""
    merchant = ctx.query("merchant").strip()
    day = _day(ctx.query("date"))
    with ctx.app.uow(write=False) as uow:
        found = payout_recon.payout_exceptions(uow, ctx.now(), business_date=day, merchant_id=merchant or None)
    return ctx.render("settlement_exceptions.html", exceptions=found, merchant=merchant,
                      day=day.isoformat() if day else "", stale_days=limits.payout_stale_after_days)


# --- operator: the bank's statement ---------------------------------------------------------------------------

def _statements_view(ctx: Ctx, *, error: str | None = None, status: int = 200,
                     applied: dict[str, Any] | None = None) -> Response:
    return ctx.render("settlement_statements.html", http_status=status, error=error, applied=applied)


@page("/ops/settlement/statements", permission=P.OPS_SETTLEMENT_MANAGE, nav="Bank statements", section="operator")
def statements(ctx: Ctx) -> Response:
    return _statements_view(ctx)


@page("/ops/settlement/statements", methods=("POST",), permission=P.OPS_SETTLEMENT_MANAGE, section="operator")
def statement_import(ctx: Ctx) -> Response:
    """Apply an uploaded statement: paid and returned payouts; lines already applied are skipped."""
    upload = ctx.files.get("statement")
    data = upload.content if upload is not None else b""
    if not data:
        return _statements_view(ctx, error="statement: choose the bank's statement file (CSV).", status=422)
    if len(data) > limits.console_upload_bytes_max:
        return _statements_view(ctx, error=f"statement: at most {limits.console_upload_bytes_max} bytes.",
                                status=422)
    try:
        with ctx.app.uow() as uow:
            applied = settlement.import_statement(uow, data, ctx.actor, ctx.now())
            uow.commit()
    except FileError as error:
        return _statements_view(ctx, error=f"statement refused, nothing applied: {error}", status=422)
    return _statements_view(ctx, applied=applied)


# --- operator: holidays ----------------------------------------------------------------------------------------

def _holidays_view(ctx: Ctx, *, error: str | None = None, status: int = 200) -> Response:
    with ctx.app.uow(write=False) as uow:
        found = settlement.list_holidays(uow)
    return ctx.render("settlement_holidays.html", http_status=status, holidays=found, error=error)


@page("/ops/settlement/holidays", permission=P.OPS_SETTLEMENT_MANAGE, nav="Holidays", section="operator")
def holidays(ctx: Ctx) -> Response:
    return _holidays_view(ctx)


@page("/ops/settlement/holidays", methods=("POST",), permission=P.OPS_SETTLEMENT_MANAGE, section="operator")
def holiday_add(ctx: Ctx) -> Response:
    day = _day(ctx.field("date"))
    if day is None:
        return _holidays_view(ctx, error="date: give a date as YYYY-MM-DD.", status=422)
    with ctx.app.uow() as uow:
        settlement.add_holiday(uow, day, ctx.field("name"), ctx.actor, ctx.now())
        uow.commit()
    return ctx.redirect(PREFIX + "/ops/settlement/holidays", f"{day.isoformat()} is a holiday.")


# --- operator: bank accounts and a merchant's settings ------------------------------------------------------------

@page("/ops/settlement/bank-accounts", permission=P.OPS_SETTLEMENT_MANAGE, nav="Bank accounts", section="operator")
def bank_accounts(ctx: Ctx) -> Response:
    merchant = ctx.query("merchant").strip()
    with ctx.app.uow(write=False) as uow:
        found = settlement.list_bank_accounts(uow, merchant or None)
    return ctx.render("settlement_bank_accounts.html", accounts=found, merchant=merchant)


def _settings_view(ctx: Ctx, merchant_id: str, *, errors: dict[str, str] | None = None, status: int = 200,
                   values: dict[str, str] | None = None) -> Response:
    with ctx.app.uow(write=False) as uow:
        merchant = uow.registry.get_merchant(merchant_id)
        if merchant is None:
            raise NotFound()
        current = settlement.settings_json(settlement.get_settings(uow, merchant_id))
    typed = {k: v for k, v in (values or {}).items() if v}  # what was sent, shown again next to its error
    return ctx.render("settlement_settings.html", http_status=status, merchant=merchant,
                      settings={**current, **typed}, errors=errors or {}, cycles=_CYCLES, weekdays=rules.WEEKDAYS)


@page("/ops/settlement/merchants/{merchant_id}", permission=P.OPS_SETTLEMENT_MANAGE, section="operator",
      params={"merchant_id": "merchant"})
def merchant_settings(ctx: Ctx) -> Response:
    return _settings_view(ctx, ctx.path_param("merchant_id"))


_SETTINGS_FORM = ("cycle", "weekday", "cutoff_local", "time_zone", "reserve_bps", "reserve_hold_days")
_WHOLE_NUMBERS = ("reserve_bps", "reserve_hold_days")


@page("/ops/settlement/merchants/{merchant_id}", methods=("POST",), permission=P.OPS_SETTLEMENT_MANAGE,
      section="operator", params={"merchant_id": "merchant"})
def merchant_settings_save(ctx: Ctx) -> Response:
    """Validated by ``services.settlement.set_settings``; a bad field is shown next to it (422)."""
    merchant_id = ctx.path_param("merchant_id")
    values = {name: ctx.field(name).strip()[:64] for name in _SETTINGS_FORM}
    changes: dict[str, Any] = {}
    try:
        for name, text in values.items():
            if not text:
                continue
            if name in _WHOLE_NUMBERS:
                if not text.isdigit():
                    raise SettlementError(name, f"{name} must be a whole number")
                changes[name] = int(text)
            elif name == "weekday":
                changes[name] = rules.parse_weekday(text)
            else:
                changes[name] = text
        with ctx.app.uow() as uow:
            settlement.set_settings(uow, merchant_id, changes, ctx.actor, ctx.now())
            uow.commit()
    except settlement.NotFound:
        raise NotFound() from None
    except SettlementError as error:
        field = "cutoff_local" if error.field == "cutoff" else error.field
        return _settings_view(ctx, merchant_id, errors={field: str(error)}, status=422, values=values)
    return ctx.redirect(f"{PREFIX}/ops/settlement/merchants/{merchant_id}", "Settlement settings saved.")
