"""Reports and reconciliation in the console (issue 7, docs/console.md, docs/reports.md,
docs/reconciliation.md).

Merchant: *Statements* (owner: a day's or a month's statement — sales, refunds, fees, net, by
method and by terminal — and its CSV / PDF as attachments, from ``services.reports.statement``)
and *Search* (owner and cashier: ``services.reports.search`` with its filters and cursor paging;
a cashier sees sales only). Every read is scoped to ``ctx.merchant_id``.

Operator: *Reports* (risk, finance, admin: ``reports.operator_report`` over a period of local
days, with SVG charts) and *Reconciliation* (risk, finance, admin: the terminal-batch exceptions,
filtered; resolving one with a note goes through ``services.reconciliation.resolve``, which
audit-logs it in the same unit of work; the same note again answers the same).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from fastapi.responses import Response

from paypos import limits
from paypos.domain.console_roles import Permission as P
from paypos.domain.console_roles import Role
from paypos.domain.money import MoneyError, parse_major
from paypos.domain.pricing import PaymentMethod
from paypos.entrypoints.console import charts
from paypos.entrypoints.console.core import PREFIX, Ctx, NotFound, format_money, page
from paypos.entrypoints.console.pages_lifecycle import attachment
from paypos.services import reconciliation, reports

# Days and months of statements and the operator's report are local to this zone (as the REST
# API's default, reports.DEFAULT_TZ); search dates are UTC days, as on the transactions page.
REPORT_TZ = reports.DEFAULT_TZ
_SEARCH_FIELDS = ("since", "until", "amount_min", "amount_max", "status", "method", "last4", "rrn", "order_id")


def _local_today(ctx: Ctx) -> date:
    return ctx.now().astimezone(reports.zone(REPORT_TZ)).date()


# --- merchant: statements ------------------------------------------------------------------------------

def _statement_for(ctx: Ctx, period: str) -> reports.Statement:
    with ctx.app.uow(write=False) as uow:
        try:
            return reports.statement(uow, ctx.merchant_id, period, tz=REPORT_TZ)
        except reports.MerchantNotFound:
            raise NotFound() from None


def _period(ctx: Ctx) -> str:
    """The asked period: ``period`` (YYYY-MM-DD or YYYY-MM), else ``day`` / ``month`` from the form's
    two choosers, else today (local)."""
    return (ctx.query("period") or ctx.query("day") or ctx.query("month")).strip() or _local_today(ctx).isoformat()


@page("/statements", permission=P.STATEMENTS_VIEW, nav="Statements")
def statements(ctx: Ctx) -> Response:
    period = _period(ctx)
    try:
        stmt = _statement_for(ctx, period)
    except reports.ReportError as error:
        return ctx.render("reports_statement.html", http_status=422, stmt=None, period=period, error=str(error),
                          tz=REPORT_TZ)
    return ctx.render("reports_statement.html", stmt=stmt, period=period, error=None, tz=REPORT_TZ)


@page("/statements/download", permission=P.STATEMENTS_VIEW)
def statement_download(ctx: Ctx) -> Response:
    """``?period=…&format=csv|pdf``: the statement as an attachment ``statement-<merchant>-<period>``."""
    period, kind = _period(ctx), ctx.query("format", "csv")
    if kind not in ("csv", "pdf"):
        return ctx.render("reports_statement.html", http_status=422, stmt=None, period=period, tz=REPORT_TZ,
                          error="format must be csv or pdf")
    try:
        stmt = _statement_for(ctx, period)
    except reports.ReportError as error:
        return ctx.render("reports_statement.html", http_status=422, stmt=None, period=period, error=str(error),
                          tz=REPORT_TZ)
    name = f"statement-{stmt.merchant_id}-{stmt.period}.{kind}"
    headers = {"Content-Disposition": attachment(name), "X-Content-Type-Options": "nosniff"}
    if kind == "pdf":
        return Response(reports.statement_pdf(stmt), media_type="application/pdf", headers=headers)
    return Response(reports.statement_csv(stmt), media_type="text/csv; charset=utf-8", headers=headers)


# --- merchant: transaction search -----------------------------------------------------------------------

def _utc_day(text: str, name: str, *, after: bool = False) -> datetime | None:
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise reports.ReportError(name, f"{name}: a day as YYYY-MM-DD") from None
    return day + timedelta(days=1) if after else day  # "until" includes its day


def _amount(text: str, name: str, code: str) -> int | None:
    if not text:
        return None
    try:
        value = parse_major(text, code).amount_minor
    except MoneyError as error:
        raise reports.ReportError(name, f"{name}: {error}") from None
    if value < 0:
        raise reports.ReportError(name, f"{name}: never negative")
    return value


def search_filters(values: dict[str, str], currency: str) -> reports.SearchFilters:
    """The search form (days, amounts in major units) → validated ``SearchFilters``; a bad field
    raises ``ReportError`` naming it."""
    return reports.SearchFilters(
        since=_utc_day(values["since"], "since"), until=_utc_day(values["until"], "until", after=True),
        amount_min=_amount(values["amount_min"], "amount_min", currency),
        amount_max=_amount(values["amount_max"], "amount_max", currency),
        status=values["status"] or None, method=values["method"] or None, last4=values["last4"] or None,
        rrn=values["rrn"] or None, order_id=values["order_id"] or None).validate()


@page("/search", permission=P.SALES_VIEW, nav="Search")
def search(ctx: Ctx) -> Response:
    """Every transaction of the merchant, newest first, 25 a page (``cursor``: the next page).
    A cashier sees sales only (refunds and other kinds are left out of their pages)."""
    values = {name: ctx.query(name).strip()[:64] for name in _SEARCH_FIELDS}
    cursor = ctx.query("cursor").strip()
    with ctx.app.uow(write=False) as uow:
        merchant = uow.registry.get_merchant(ctx.merchant_id)
        code = merchant.currency if merchant else "CNY"
        try:
            found = reports.search(uow, ctx.merchant_id, search_filters(values, code),
                                   limit=limits.console_page_rows, cursor=cursor or None)
        except reports.ReportError as error:
            return ctx.render("reports_search.html", http_status=422, values=values, rows=[], next_cursor=None,
                              errors={error.field: str(error)}, statuses=reports.STATUSES, methods=_METHODS)
    rows = found.rows if ctx.role is not Role.CASHIER else [r for r in found.rows if r.kind == "sale"]
    return ctx.render("reports_search.html", values=values, rows=rows, next_cursor=found.next_cursor, errors={},
                      statuses=reports.STATUSES, methods=_METHODS, cursor=cursor)


_METHODS = tuple(m.value for m in PaymentMethod)


# --- operator: the report ---------------------------------------------------------------------------------

def _report_days(ctx: Ctx) -> tuple[str, str]:
    today = _local_today(ctx)
    first = ctx.query("from").strip() or (today - timedelta(days=6)).isoformat()
    last = ctx.query("to").strip() or today.isoformat()
    return first, last


@page("/ops/reports", permission=P.OPS_REPORTS_VIEW, nav="Reports", section="operator")
def operator_report(ctx: Ctx) -> Response:
    """``from`` .. ``to`` (local days, both included; the last 7 days by default)."""
    first, last = _report_days(ctx)
    try:
        for name, text in (("from", first), ("to", last)):
            if not _is_day(text):
                raise reports.ReportError(name, f"{name}: a day as YYYY-MM-DD")
        start, _ = reports.period_bounds(first, REPORT_TZ)
        _, end = reports.period_bounds(last, REPORT_TZ)
        with ctx.app.uow(write=False) as uow:
            report = reports.operator_report(uow, start, end, tz=REPORT_TZ, top=10)
    except reports.ReportError as error:  # the range's own rule names "to"
        return ctx.render("reports_operator.html", http_status=422, report=None, first=first, last=last,
                          errors={error.field: str(error)}, charts_svg={}, tz=REPORT_TZ, rate="–")
    return ctx.render("reports_operator.html", report=report, first=first, last=last, errors={}, tz=REPORT_TZ,
                      charts_svg=_report_charts(report), rate=_percent(report.approval_rate_bps))


def _is_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _percent(bps: int | None) -> str:
    """Basis points → "97.53%" (integer arithmetic); None → "–"."""
    return "–" if bps is None else f"{bps // 100}.{bps % 100:02d}%"


def _report_charts(report: reports.OperatorReport) -> dict[str, str]:
    """One volume-by-day chart per currency and one of decline reasons (counts)."""
    out: dict[str, str] = {}
    currencies = sorted({str(row["currency"]) for row in report.volume_by_day})
    for code in currencies:
        data = [(str(row["day"])[5:], int(row["amount_minor"]))  # type: ignore[call-overload]
                for row in report.volume_by_day if row["currency"] == code]
        out[f"Volume by day ({code})"] = charts.bar_chart(
            data, title=f"Approved sales by day, {code}", value_label=lambda v, c=code: format_money(v, c))
    if not currencies:
        out["Volume by day"] = charts.bar_chart([], title="Approved sales by day")
    out["Decline reasons"] = charts.bar_chart(
        [(str(r["code"]), int(r["count"])) for r in report.decline_reasons],  # type: ignore[call-overload]
        title="Declined sales by reason (count)", width=420)
    return out


# --- operator: reconciliation -----------------------------------------------------------------------------

_RECON_STATUSES = ("open", "resolved", "all")


@page("/ops/reconciliation", permission=P.OPS_RECON_MANAGE, nav="Reconciliation", section="operator")
def recon_exceptions(ctx: Ctx) -> Response:
    """Exceptions oldest first (up to recon_page_size_max), filtered by status, kind and merchant."""
    status = ctx.query("status", "open")
    status = status if status in _RECON_STATUSES else "open"
    kind = ctx.query("kind")
    kind = kind if kind in reconciliation.KINDS else ""
    merchant = ctx.query("merchant").strip()[:32]
    with ctx.app.uow(write=False) as uow:
        found = reconciliation.list_exceptions(uow, status=None if status == "all" else status,
                                               merchant_id=merchant or None, limit=limits.recon_page_size_max)
    if kind:
        found = [e for e in found if e.kind == kind]
    return ctx.render("reports_recon.html", exceptions=found, status=status, kind=kind, merchant=merchant,
                      statuses=_RECON_STATUSES, kinds=reconciliation.KINDS)


def _exception(ctx: Ctx, text: str) -> reconciliation.ReconException:
    if not text.isdigit() or len(text) > 18:
        raise NotFound()
    with ctx.app.uow(write=False) as uow:
        for found in reconciliation.list_exceptions(uow, status=None, after_id=int(text) - 1, limit=1):
            if found.id == int(text):
                return found
    raise NotFound()


def _recon_view(ctx: Ctx, exception_id: str, *, error: str | None = None, status: int = 200,
                note: str = "") -> Response:
    found = _exception(ctx, exception_id)
    return ctx.render("reports_recon_detail.html", http_status=status, item=found, error=error, note=note)


@page("/ops/reconciliation/{exception_id}", permission=P.OPS_RECON_MANAGE, section="operator",
      params={"exception_id": "recon_exception"})
def recon_exception(ctx: Ctx) -> Response:
    return _recon_view(ctx, ctx.path_param("exception_id"))


@page("/ops/reconciliation/{exception_id}/resolve", methods=("POST",), permission=P.OPS_RECON_MANAGE,
      section="operator", params={"exception_id": "recon_exception"})
def recon_resolve(ctx: Ctx) -> Response:
    """open → resolved with the note (audit ``recon_exception.resolve``); the same note again
    answers the same, another note on a resolved exception is refused (409)."""
    exception_id = ctx.path_param("exception_id")
    _exception(ctx, exception_id)  # 404 first
    note = ctx.field("note")[:limits.recon_resolution_chars_max + 1]
    with ctx.app.uow() as uow:
        try:
            done = reconciliation.resolve(uow, int(exception_id), note, ctx.actor, ctx.now())
        except reconciliation.ReconciliationError as error:
            return _recon_view(ctx, exception_id, error=str(error), status=422, note=note)
        except reconciliation.AlreadyResolved as error:
            return _recon_view(ctx, exception_id, error=f"{error}: with another note.", status=409, note=note)
        except reconciliation.ExceptionNotFound:
            raise NotFound() from None
        uow.commit()
    return ctx.redirect(f"{PREFIX}/ops/reconciliation/{done.id}", f"Exception {done.id} resolved.")

