"""`paypos reports ...` and `paypos recon ...` (docs/reports.md, docs/reconciliation.md).

- ``paypos reports statement --merchant M --day 2026-11-22 | --month 2026-11 [--format csv|pdf --out F]``:
  a merchant's statement in its local days (``--timezone``, default Asia/Shanghai); with
  ``--check-ledger`` it also compares the totals with the ledger's postings (exit 1 if unequal).
- ``paypos reports search --merchant M [--since --until --status --method --last4 --rrn --order-id
  --amount-min --amount-max --limit --cursor]``: newest first, one page and its next cursor.
- ``paypos reports operator --from 2026-11-01 --to 2026-12-01``: volume, approval rate, decline
  reasons, top merchants, fees revenue, disputes.
- ``paypos reports refresh [--rebuild]``: fold the journal into the rollups until caught up.
- ``paypos recon batch --terminal T --batch N [--journal F.csv]``: compare the terminal's batch
  (its store in the data dir, or an exported journal) with the host's journal; store exceptions.
- ``paypos recon list [--status open|resolved|all]`` and ``paypos recon resolve ID --note "..."``.

Every command takes ``--json``, ``--data-dir`` and ``--database-url``. A refusal prints one line
``error: ...`` on stderr and exits 1; bad input exits 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn

from paypos.adapters.db.uow import UnitOfWork
from paypos.bootstrap import App
from paypos.entrypoints.cli_prepaid import DatabaseUrl, DataDir, JsonFlag, _app, _fail, _show, err, in_unit_of_work

T = TypeVar("T")
reports_app = typer.Typer(help="Reports: statements (CSV, PDF), transaction search, operator report, rollups.",
                          no_args_is_help=True)
recon_app = typer.Typer(help="Reconciliation: terminal batches against the host journal; exceptions to resolve.",
                        no_args_is_help=True)

Merchant = Annotated[str, typer.Option("--merchant", help="The merchant id (paypos sandbox merchants).")]
Timezone = Annotated[str, typer.Option("--timezone", help="IANA zone of the merchant's days.")]


class Format(StrEnum):
    CSV = "csv"
    PDF = "pdf"


class StatusChoice(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    ALL = "all"


def _run(data_dir: Path | None, database_url: str | None, work: Callable[[App, UnitOfWork], T], *,
         write: bool = False) -> T:
    from paypos.services import reconciliation as recon
    from paypos.services.reports import MerchantNotFound, ReportError

    try:
        return in_unit_of_work(data_dir, database_url, work, write=write)
    except (ReportError, recon.ReconciliationError) as error:
        _fail(f"{error.field}: {error}", 2)
    except (MerchantNotFound, recon.ExceptionNotFound, recon.AlreadyResolved) as error:
        _fail(str(error), 1)


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"{option} must be an ISO 8601 date or date and time, e.g. 2026-11-22T09:00:00Z", 2)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _dump(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@reports_app.command("statement")
def statement(merchant: Merchant,
              day: Annotated[str | None, typer.Option("--day", help="A local day, YYYY-MM-DD.")] = None,
              month: Annotated[str | None, typer.Option("--month", help="A local month, YYYY-MM.")] = None,
              fmt: Annotated[Format | None, typer.Option("--format", help="Write csv or pdf to --out.")] = None,
              out: Annotated[Path | None, typer.Option("--out", help="The file --format writes.")] = None,
              check_ledger: Annotated[bool, typer.Option(
                  "--check-ledger", help="Compare the totals with the ledger's postings; exit 1 if unequal.")] = False,
              timezone: Timezone = "Asia/Shanghai", as_json: JsonFlag = False, data_dir: DataDir = None,
              database_url: DatabaseUrl = None) -> None:
    """A merchant's daily or monthly statement: sales, refunds, fees, net, by method and terminal."""
    from paypos.services import reports

    if (day is None) == (month is None):
        _fail("give exactly one of --day and --month", 2)
    if (fmt is None) != (out is None):
        _fail("--format and --out go together", 2)
    period = day or month or ""
    if month is not None and len(month) != 7:
        _fail("--month must be YYYY-MM", 2)

    def work(_paypos: App, uow: UnitOfWork) -> tuple[Any, Any]:
        stmt = reports.statement(uow, merchant, period, tz=timezone)
        return stmt, reports.check_against_ledger(uow, stmt) if check_ledger else None

    stmt, check = _run(data_dir, database_url, work)
    if fmt is not None and out is not None:
        payload = reports.statement_csv(stmt).encode() if fmt is Format.CSV else reports.statement_pdf(stmt)
        try:
            out.write_bytes(payload)
        except OSError as error:
            _fail(f"cannot write {out}: {error.strerror}", 1)
    rows = [{"group": "total", "key": period, **_totals(stmt.totals, stmt.currency)}]
    rows += [{"group": "method", "key": k, **_totals(t, stmt.currency)} for k, t in stmt.by_method.items()]
    rows += [{"group": "terminal", "key": k, **_totals(t, stmt.currency)} for k, t in stmt.by_terminal.items()]
    data = {"merchant_id": stmt.merchant_id, "period": period, "timezone": timezone, "currency": stmt.currency,
            "rows": rows} | ({"ledger_check": {"equal": check.equal, "statement": check.statement,
                                                "ledger": check.ledger}} if check else {})
    _show(f"Statement {merchant} {period} ({timezone}, {stmt.currency})", rows,
          ["group", "key", "sales_count", "sales", "refunds_count", "refunds", "fees", "net"], as_json, data)
    if check is not None and not check.equal:
        _fail(f"statement {check.statement} != ledger {check.ledger}", 1)
    if check is not None and not as_json:
        err.print("ledger check: the statement's totals equal the ledger's")


def _totals(t: Any, currency: str) -> dict[str, Any]:
    from paypos.services.reports import decimal_string

    return {"sales_count": t.sales_count, "sales_minor": t.sales_minor,
            "sales": decimal_string(t.sales_minor, currency),
            "refunds_count": t.refunds_count, "refunds_minor": t.refunds_minor,
            "refunds": decimal_string(t.refunds_minor, currency), "fees_minor": t.fees_minor,
            "fees": decimal_string(t.fees_minor, currency), "net_minor": t.net_minor,
            "net": decimal_string(t.net_minor, currency)}


@reports_app.command("search")
def search(merchant: Annotated[str | None, typer.Option("--merchant", help="One merchant; omit for all.")] = None,
           since: Annotated[str | None, typer.Option("--since", help="From this moment (ISO 8601; no zone = UTC).")]
           = None,
           until: Annotated[str | None, typer.Option("--until", help="Before this moment (ISO 8601).")] = None,
           status: Annotated[str | None, typer.Option("--status", help="approved, declined, reversed, pending, "
                                                                       "completed.")] = None,
           method: Annotated[str | None, typer.Option("--method", help="debit_card, credit_card, contactless, "
                                                                       "wallet_balance, ...")] = None,
           last4: Annotated[str | None, typer.Option("--last4", help="The card number's last 4 digits.")] = None,
           rrn: Annotated[str | None, typer.Option("--rrn", help="The 12-digit retrieval reference number.")] = None,
           order_id: Annotated[str | None, typer.Option("--order-id", help="The merchant's order id (online).")] = None,
           amount_min: Annotated[int | None, typer.Option("--amount-min", help="Minor units.")] = None,
           amount_max: Annotated[int | None, typer.Option("--amount-max", help="Minor units.")] = None,
           limit: Annotated[int, typer.Option("--limit", help="Rows per page, 1..500.")] = 50,
           cursor: Annotated[str | None, typer.Option("--cursor", help="next_cursor of the previous page.")] = None,
           as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Search transactions (card present and online), newest first."""
    from paypos.services import reports

    filters = reports.SearchFilters(since=_moment(since, "--since"), until=_moment(until, "--until"),
                                    amount_min=amount_min, amount_max=amount_max, status=status, method=method,
                                    last4=last4, rrn=rrn, order_id=order_id)
    page = _run(data_dir, database_url, lambda _p, uow: reports.search(uow, merchant, filters, limit=limit,
                                                                        cursor=cursor))
    rows = [r.to_json() for r in page.rows]
    _show("Transactions", rows, ["id", "at", "merchant_id", "terminal_id", "method", "kind", "status", "amount",
                                 "currency", "pan_masked", "rrn", "order_id"], as_json,
          {"rows": rows, "next_cursor": page.next_cursor})
    if not as_json and page.next_cursor:
        err.print(f"next page: --cursor {page.next_cursor}")


@reports_app.command("operator")
def operator(start: Annotated[str, typer.Option("--from", help="First local day, YYYY-MM-DD.")],
             end: Annotated[str, typer.Option("--to", help="Day after the last, YYYY-MM-DD.")],
             top: Annotated[int, typer.Option("--top", help="Merchants in the top list, 1..100.")] = 10,
             timezone: Timezone = "Asia/Shanghai", as_json: JsonFlag = False, data_dir: DataDir = None,
             database_url: DatabaseUrl = None) -> None:
    """The operator's report: volume by day, approval rate, decline reasons, top merchants, fees, disputes."""
    from dataclasses import asdict

    from paypos.services import reports

    def work(_p: App, uow: UnitOfWork) -> Any:
        first, _ = reports.period_bounds(start, timezone)
        last, _ = reports.period_bounds(end, timezone)
        return reports.operator_report(uow, first, last, tz=timezone, top=top)

    report = _run(data_dir, database_url, work)
    data = asdict(report) | {"start": report.start.isoformat(), "end": report.end.isoformat()}
    if as_json:
        _dump(data)
        return
    rate = "n/a" if report.approval_rate_bps is None else f"{report.approval_rate_bps / 100:.2f} %"
    _show("Volume by day (approved sales)", report.volume_by_day, ["day", "currency", "count", "amount_minor"], False)
    _show(f"Approval rate {rate} ({report.approved_count} approved, {report.declined_count} declined); "
          "decline reasons", report.decline_reasons, ["code", "meaning", "count"], False)
    _show("Top merchants", report.top_merchants, ["merchant_id", "currency", "count", "amount_minor"], False)
    _show("Fees revenue (ledger)", [{"currency": c, "amount_minor": a} for c, a in report.fees_revenue.items()],
          ["currency", "amount_minor"], False)
    _show("Disputes", report.disputes, ["status", "reason_code", "currency", "count", "amount_minor"], False)


@reports_app.command("refresh")
def refresh(rebuild: Annotated[bool, typer.Option("--rebuild", help="Empty the rollups and fold everything again.")]
            = False, as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Fold the card-present journal into the dashboard's rollups until caught up."""
    from paypos.services import reports

    with _app(data_dir, database_url) as paypos:
        if rebuild:
            with paypos.uow() as uow:
                first = reports.refresh(uow, paypos.clock(), rebuild=True)
                uow.commit()
        totals = {"rows_folded": first.rows_folded if rebuild else 0, "reversals_applied": 0}
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=err, disable=as_json) as progress:
            task = progress.add_task("folding the journal", total=None)

            def step(result: reports.RefreshResult) -> None:
                totals["reversals_applied"] += result.reversals_applied
                progress.update(task, description=f"folded up to journal id {result.host_watermark}")

            totals["rows_folded"] += reports.refresh_all(paypos.uow, paypos.clock, on_batch=step)
    _show("Rollups refreshed", [totals], ["rows_folded", "reversals_applied"], as_json, totals)


# --- reconciliation -------------------------------------------------------------------------

_RECON_COLUMNS = ["id", "kind", "terminal_id", "batch_no", "transaction_ref", "reason", "terminal_amount_minor",
                  "host_amount_minor", "status", "resolution"]


@recon_app.command("batch")
def batch(terminal: Annotated[str, typer.Option("--terminal", help="The terminal id (field 41).")],
          batch_no: Annotated[int, typer.Option("--batch", help="The batch number.")],
          journal: Annotated[Path | None, typer.Option(
              "--journal", help="The terminal's journal as CSV (stan,transmission_dt,kind,amount_minor,status); "
                                "default: the terminal's store in the data dir.")] = None,
          as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Compare a terminal batch with the host journal; store and show the differences."""
    from paypos.services import reconciliation as recon

    def work(paypos: App, uow: UnitOfWork) -> Any:
        if journal is not None:
            lines = recon.lines_from_csv(journal)
        else:
            from paypos.terminal.store import TerminalStore, terminal_dir

            path = terminal_dir(paypos.settings.data_dir, terminal) / "terminal.db"
            if not path.exists():
                raise recon.ReconciliationError("journal", f"no terminal store at {path}; pass --journal")
            store = TerminalStore(path)
            try:
                lines = recon.lines_from_store(store, batch_no)
            finally:
                store.close()
        return [e.to_json() for e in recon.reconcile_batch(uow, terminal, batch_no, lines, paypos.clock())]

    rows = _run(data_dir, database_url, work, write=True)
    _show(f"Reconciliation of {terminal} batch {batch_no}", rows, _RECON_COLUMNS, as_json)


@recon_app.command("payouts")
def payouts(business_date: Annotated[str | None, typer.Option(
                "--date", help="One business date's payouts (YYYY-MM-DD); default: the newest 500.")] = None,
            merchant: Annotated[str | None, typer.Option("--merchant", help="One merchant's.")] = None,
            as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """The payout leg: payouts against their ledger transfers and the bank's answers; store each
    problem once as an exception (kinds payout_*), then list the open payout exceptions."""
    from datetime import date as date_

    from paypos.services import payout_recon
    from paypos.services import reconciliation as recon

    def work(paypos: App, uow: UnitOfWork) -> Any:
        try:
            day = None if business_date is None else date_.fromisoformat(business_date)
        except ValueError:
            raise recon.ReconciliationError("date", f"--date must be YYYY-MM-DD, not {business_date!r}") from None
        payout_recon.record_payout_exceptions(uow, paypos.clock(), business_date=day, merchant_id=merchant)
        return [e.to_json() for e in recon.list_exceptions(uow, merchant_id=merchant, limit=500)
                if e.kind in recon.PAYOUT_KINDS]

    rows = _run(data_dir, database_url, work, write=True)
    _show("Payout reconciliation exceptions", rows, _RECON_COLUMNS, as_json)


@recon_app.command("list")
def list_(status: Annotated[StatusChoice, typer.Option("--status", help="open, resolved or all.")] = StatusChoice.OPEN,
          merchant: Annotated[str | None, typer.Option("--merchant", help="One merchant's.")] = None,
          terminal: Annotated[str | None, typer.Option("--terminal", help="One terminal's.")] = None,
          after: Annotated[int, typer.Option("--after", help="Ids above this (paging).")] = 0,
          limit: Annotated[int, typer.Option("--limit", help="1..500.")] = 100,
          as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Reconciliation exceptions, oldest first."""
    from paypos.services import reconciliation as recon

    rows = _run(data_dir, database_url, lambda _p, uow: [e.to_json() for e in recon.list_exceptions(
        uow, status=None if status is StatusChoice.ALL else status.value, merchant_id=merchant,
        terminal_id=terminal, after_id=after, limit=limit)])
    _show("Reconciliation exceptions", rows, _RECON_COLUMNS, as_json)


@recon_app.command("resolve")
def resolve(exception_id: Annotated[int, typer.Argument(help="The exception id (paypos recon list).")],
            note: Annotated[str, typer.Option("--note", help="What was done (1..500 characters).")],
            as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Resolve an open exception with a note; audit-logged with the operator's name."""
    from paypos.services import audit
    from paypos.services import reconciliation as recon

    done = _run(data_dir, database_url, lambda paypos, uow: recon.resolve(
        uow, exception_id, note, audit.cli_actor(), paypos.clock()).to_json(), write=True)
    _show("Resolved", [done], _RECON_COLUMNS, as_json, done)
