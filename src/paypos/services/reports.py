"""Reports (issue 7, docs/reports.md): the merchant-transactions search, daily and monthly
statements (CSV, PDF) and their check against the ledger, the operator's report, and the
rollups behind a dashboard that stays exact (rollups + the journal tail since the watermark).

Money is int minor units with an ISO 4217 alpha code; decimal strings are made with integer
arithmetic (never a float). Days and months are the merchant's local ones in ``tz``
(default Asia/Shanghai) until per-merchant settlement settings carry a zone.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db import reports as sql
from paypos.adapters.db.schema import host_transactions, ledger_transfers, merchants, report_rollups
from paypos.adapters.db.uow import UnitOfWork
from paypos.authorization.result import RESULT_OF_CODE
from paypos.domain.money import MoneyError
from paypos.domain.money import currency as iso_currency
from paypos.domain.pricing import PaymentMethod

if TYPE_CHECKING:
    from paypos.bootstrap import App

DEFAULT_TZ = "Asia/Shanghai"
STATUSES = ("approved", "declined", "reversed", "pending", "completed")
KINDS = ("sale", "refund", "preauth", "balance")
HOST_WATERMARK, REVERSALS_WATERMARK = "host_transactions", "ledger_reversals"


class ReportError(ValueError):
    """Bad input to a report: ``field`` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


class MerchantNotFound(LookupError):
    pass


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError("timezone", f"unknown time zone {name!r}") from None


def decimal_string(amount_minor: int, currency: str) -> str:
    """12345 CNY → "123.45"; integer arithmetic only."""
    exponent = _exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, part = divmod(abs(amount_minor), 10 ** exponent)
    return f"{sign}{whole}.{part:0{exponent}d}" if exponent else f"{sign}{whole}"


def _exponent(currency: str) -> int:
    try:
        return iso_currency(currency).exponent
    except MoneyError:  # an unknown code is shown with 2 decimals
        return 2


# --- the merchant-transactions view and its search ------------------------------------------

@dataclass(frozen=True, slots=True)
class TransactionRow:
    id: str  # ht_<12 digits> (card present), pay_/re_ (online payment/refund), wt_/wr_<12> (wallet gateway)
    at: datetime
    merchant_id: str
    terminal_id: str  # or "online", "wallet"
    method: str
    kind: str  # sale | refund | preauth | balance
    status: str  # approved | declined | reversed | pending | completed
    amount_minor: int
    fee_minor: int
    currency: str
    pan_masked: str | None
    rrn: str | None
    approval_code: str | None
    order_id: str | None
    reason: str | None  # a decline's response code (card present) or failure code (online)

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "at": self.at.isoformat().replace("+00:00", "Z"), "merchant_id": self.merchant_id,
                "terminal_id": self.terminal_id, "method": self.method, "kind": self.kind, "status": self.status,
                "amount_minor": self.amount_minor, "amount": decimal_string(self.amount_minor, self.currency),
                "fee_minor": self.fee_minor, "currency": self.currency, "pan_masked": self.pan_masked,
                "rrn": self.rrn, "approval_code": self.approval_code, "order_id": self.order_id,
                "reason": self.reason}


@dataclass(frozen=True, slots=True)
class SearchFilters:
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    amount_min: int | None = None
    amount_max: int | None = None
    status: str | None = None
    method: str | None = None
    last4: str | None = None
    rrn: str | None = None
    order_id: str | None = None

    def validate(self) -> SearchFilters:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ReportError(name, f"{name} must carry a time zone")
        if self.since and self.until and self.until <= self.since:
            raise ReportError("until", "until must be after since")
        for name in ("amount_min", "amount_max"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise ReportError(name, f"{name} must be a non-negative int of minor units")
        if self.status is not None and self.status not in STATUSES:
            raise ReportError("status", f"status must be one of {', '.join(STATUSES)}")
        if self.method is not None and self.method not in {m.value for m in PaymentMethod}:
            raise ReportError("method", f"method must be one of {', '.join(m.value for m in PaymentMethod)}")
        if self.last4 is not None and (len(self.last4) != 4 or not self.last4.isdigit()):
            raise ReportError("last4", "last4 must be 4 digits")
        if self.rrn is not None and (len(self.rrn) != 12 or not self.rrn.isdigit()):
            raise ReportError("rrn", "rrn must be 12 digits")
        if self.order_id is not None and not 1 <= len(self.order_id) <= 64:
            raise ReportError("order_id", "order_id must be 1..64 characters")
        return self


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[TransactionRow]
    next_cursor: str | None


_PREFIXES = (sql.HOST_PREFIX, sql.PAYMENT_PREFIX, sql.REFUND_PREFIX, sql.WALLET_REFUND_PREFIX,
             sql.WALLET_TRADE_PREFIX)


def encode_cursor(row: TransactionRow) -> str:
    raw = json.dumps([row.at.isoformat(), row.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at_text, uid = json.loads(raw)
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None or not isinstance(uid, str) or not uid.startswith(_PREFIXES):
            raise ValueError(uid)
        if uid.startswith(sql.NUMERIC_PREFIXES):
            int(uid[3:])
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ReportError("cursor", "cursor is not one this search returned") from None
    return at.astimezone(UTC), uid


def search(uow: UnitOfWork, merchant_id: str | None, filters: SearchFilters, *, limit: int =
           limits.reports_page_size_default, cursor: str | None = None) -> Page:
    """Newest first. ``merchant_id`` None is the operator's view of every merchant."""
    if type(limit) is not int or not 1 <= limit <= limits.reports_page_size_max:
        raise ReportError("limit", f"limit must be 1..{limits.reports_page_size_max}")
    filters.validate()
    after = decode_cursor(cursor) if cursor else None
    rows: list[TransactionRow] = []
    for source in _sources(merchant_id, filters):
        query = _filtered(source, filters, after).limit(limit + 1)
        rows.extend(_row(r) for r in uow.connection.execute(query))
    rows.sort(key=lambda r: (r.at, r.id), reverse=True)
    page = rows[:limit]
    return Page(page, encode_cursor(page[-1]) if len(rows) > limit else None)


def _sources(merchant_id: str | None, filters: SearchFilters) -> list[tuple[str, sa.Select]]:
    sources: list[tuple[str, sa.Select]] = []
    if filters.order_id is None:
        sources.append((sql.HOST_PREFIX, sql.host_rows(merchant_id)))
    if filters.rrn is None:
        sources += [(sql.PAYMENT_PREFIX, sql.payment_rows(merchant_id)),
                    (sql.REFUND_PREFIX, sql.refund_rows(merchant_id)),
                    (sql.WALLET_REFUND_PREFIX, sql.wallet_refund_rows(merchant_id)),
                    (sql.WALLET_TRADE_PREFIX, sql.wallet_trade_rows(merchant_id))]
    return sources


def _filtered(source: tuple[str, sa.Select], filters: SearchFilters, after: tuple[datetime, str] | None) -> sa.Select:
    prefix, query = source
    columns = query.selected_columns
    at, amount = columns.at, columns.amount_minor
    conditions: list[sa.ColumnElement[bool]] = []
    if filters.since is not None:
        conditions.append(at >= filters.since)
    if filters.until is not None:
        conditions.append(at < filters.until)
    if filters.amount_min is not None:
        conditions.append(amount >= filters.amount_min)
    if filters.amount_max is not None:
        conditions.append(amount <= filters.amount_max)
    if filters.status is not None:
        conditions.append(columns.status == filters.status)
    if filters.method is not None:
        conditions.append(columns.method == filters.method)
    if filters.last4 is not None:
        conditions.append(columns.pan_masked.like(f"%{filters.last4}"))
    if filters.rrn is not None:
        conditions.append(host_transactions.c.id == int(filters.rrn))
    if filters.order_id is not None:
        conditions.append(columns.order_id == filters.order_id)
    if after is not None:
        conditions.append(_before(prefix, columns, after))
    key = columns.num if prefix in sql.NUMERIC_PREFIXES else columns.uid
    return query.where(*conditions).order_by(at.desc(), key.desc())


def _before(prefix: str, columns: sa.ColumnCollection, after: tuple[datetime, str]) -> sa.ColumnElement[bool]:
    """Rows after the cursor in (time, uid) descending order; ``ht_`` < ``pay_`` < ``re_``."""
    at, uid = after
    if uid.startswith(prefix):
        same = columns.num < int(uid[len(prefix):]) if prefix in sql.NUMERIC_PREFIXES else columns.uid < uid
    else:
        same = sa.true() if prefix < uid else sa.false()
    return sa.or_(columns.at < at, sa.and_(columns.at == at, same))


def _row(r: sa.Row) -> TransactionRow:
    numeric = r.uid in sql.NUMERIC_PREFIXES
    host = r.uid == sql.HOST_PREFIX
    fee = int(r.fee_minor)
    return TransactionRow(
        id=f"{r.uid}{int(r.num):012d}" if numeric else r.uid, at=r.at, merchant_id=r.merchant_id,
        terminal_id=r.terminal_id, method=r.method, kind=r.kind, status=r.status,
        amount_minor=int(r.amount_minor), fee_minor=fee, currency=r.currency, pan_masked=r.pan_masked,
        rrn=f"{int(r.num):012d}" if host else None, approval_code=r.approval_code, order_id=r.order_id,
        reason=None if r.status == "approved" else r.reason)


def _all_rows(uow: UnitOfWork, merchant_id: str | None, start: datetime, end: datetime, *,
              online_only: bool = False) -> Iterable[TransactionRow]:
    filters = SearchFilters(since=start, until=end)
    for source in _sources(merchant_id, filters):
        if online_only and source[0] == sql.HOST_PREFIX:
            continue
        for r in uow.connection.execute(_filtered(source, filters, None)):
            yield _row(r)


@dataclass(frozen=True, slots=True)
class Group:
    """Transactions alike in every column reports group by: card present aggregated in SQL
    (``at`` is the UTC hour), online one transaction each (``at`` is its time)."""

    merchant_id: str
    at: datetime
    method: str
    terminal_id: str
    kind: str
    status: str
    currency: str
    reason: str | None
    count: int
    amount_minor: int
    fee_minor: int


def _groups(uow: UnitOfWork, merchant_id: str | None, start: datetime, end: datetime) -> Iterable[Group]:
    db, t = uow.connection, host_transactions
    hour, method, kind = sql.hour_of(db, t.c.created_at), sql.host_method(), sql.host_kind()
    reason = sa.case((t.c.status == "declined", t.c.response_code), else_=sa.null())
    keys = (t.c.merchant_id, hour, method, t.c.terminal_id, kind, t.c.status, t.c.currency, reason)
    query = (sa.select(*keys, sa.func.count(), sa.func.sum(t.c.amount_minor), sa.func.sum(t.c.fee_minor))
             .select_from(sql._host_from()).where(t.c.created_at >= start, t.c.created_at < end).group_by(*keys))
    if merchant_id is not None:
        query = query.where(t.c.merchant_id == merchant_id)
    for m, h, method_, term, kind_, status, currency, why, n, amount, fee in db.execute(query):
        yield Group(m, sql.as_utc_hour(h), method_, term, kind_, status, currency, why, int(n), int(amount), int(fee))
    for row in _all_rows(uow, merchant_id, start, end, online_only=True):
        yield Group(row.merchant_id, row.at, row.method, row.terminal_id, row.kind, row.status, row.currency,
                    row.reason, 1, row.amount_minor, row.fee_minor)


# --- statements -----------------------------------------------------------------------------

@dataclass(slots=True)
class Totals:
    sales_count: int = 0
    sales_minor: int = 0
    refunds_count: int = 0
    refunds_minor: int = 0
    fees_minor: int = 0

    @property
    def net_minor(self) -> int:
        """What the merchant is owed: sales − refunds − fees."""
        return self.sales_minor - self.refunds_minor - self.fees_minor

    def add(self, group: Group) -> None:
        if group.status != "approved":
            return
        if group.kind == "sale":
            self.sales_count += group.count
            self.sales_minor += group.amount_minor
            self.fees_minor += group.fee_minor
        elif group.kind == "refund":
            self.refunds_count += group.count
            self.refunds_minor += group.amount_minor
            self.fees_minor += group.fee_minor


@dataclass(frozen=True, slots=True)
class Statement:
    merchant_id: str
    merchant_name: str
    period: str  # "2026-11-22" (a day) or "2026-11" (a month)
    timezone: str
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    currency: str
    totals: Totals
    by_method: dict[str, Totals]
    by_terminal: dict[str, Totals]


def period_bounds(period: str, tz: str = DEFAULT_TZ) -> tuple[datetime, datetime]:
    """"YYYY-MM-DD" or "YYYY-MM" in local time ``tz`` → [start, end) in UTC."""
    zoneinfo = zone(tz)
    try:
        if len(period) == 10:
            first = date.fromisoformat(period)
            after = first + timedelta(days=1)
        elif len(period) == 7:
            first = date.fromisoformat(period + "-01")
            after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        else:
            raise ValueError(period)
    except ValueError:
        raise ReportError("period", "period must be a day YYYY-MM-DD or a month YYYY-MM") from None
    return (datetime.combine(first, time(), zoneinfo).astimezone(UTC),
            datetime.combine(after, time(), zoneinfo).astimezone(UTC))


def statement(uow: UnitOfWork, merchant_id: str, period: str, *, tz: str = DEFAULT_TZ) -> Statement:
    """A day's or a month's statement; rows in other currencies than the merchant's are left out."""
    start, end = period_bounds(period, tz)
    merchant = uow.connection.execute(sa.select(merchants.c.name, merchants.c.currency)
                                      .where(merchants.c.merchant_id == merchant_id)).one_or_none()
    if merchant is None:
        raise MerchantNotFound(f"no merchant {merchant_id}")
    currency = _alpha(merchant.currency)
    totals, by_method, by_terminal = Totals(), defaultdict(Totals), defaultdict(Totals)
    for group in _groups(uow, merchant_id, start, end):
        if group.currency != currency:
            continue
        for bucket in (totals, by_method[group.method], by_terminal[group.terminal_id]):
            bucket.add(group)
    return Statement(merchant_id, merchant.name, period, tz, start, end, currency, totals,
                     dict(sorted(by_method.items())), dict(sorted(by_terminal.items())))


def _alpha(currency: str) -> str:
    """Merchants store ISO 4217 numeric ("156"), payments alpha ("CNY")."""
    return iso_currency(currency).alpha


@dataclass(frozen=True, slots=True)
class LedgerCheck:
    statement: dict[str, int]
    ledger: dict[str, int]

    @property
    def equal(self) -> bool:
        return self.statement == self.ledger


def check_against_ledger(uow: UnitOfWork, stmt: Statement) -> LedgerCheck:
    """The statement's sales, refunds and fees against the ledger's postings to the merchant's
    accounts in the same period (adapters/db/reports.ledger_sums): equal to the cent."""
    sums = sql.ledger_sums(uow.connection, stmt.merchant_id, stmt.currency, stmt.start, stmt.end)
    mine = {"sales_minor": stmt.totals.sales_minor, "refunds_minor": stmt.totals.refunds_minor,
            "fees_minor": stmt.totals.fees_minor}
    return LedgerCheck(mine, {"sales_minor": sums.sales_minor, "refunds_minor": sums.refunds_minor,
                              "fees_minor": sums.fees_minor})


CSV_COLUMNS = ("section", "key", "sales_count", "sales_minor", "sales", "refunds_count", "refunds_minor", "refunds",
               "fees_minor", "fees", "net_minor", "net", "currency")


def statement_csv(stmt: Statement) -> str:
    """One header row (CSV_COLUMNS), then a ``total`` row, ``method`` rows and ``terminal`` rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    sections = [("total", {stmt.period: stmt.totals}), ("method", stmt.by_method), ("terminal", stmt.by_terminal)]
    for section, groups in sections:
        for key, totals in groups.items():
            writer.writerow(_csv_row(section, key, totals, stmt.currency))
    return out.getvalue()


def _csv_row(section: str, key: str, t: Totals, currency: str) -> list[object]:
    money = [(t.sales_minor), (t.refunds_minor), (t.fees_minor), (t.net_minor)]
    sales, refunds, fees, net = ((m, decimal_string(m, currency)) for m in money)
    return [section, key, t.sales_count, *sales, t.refunds_count, *refunds, *fees, *net, currency]


def statement_pdf(stmt: Statement) -> bytes:
    """A one-page A4 PDF: a summary table and a by-method and by-terminal table."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, title=f"Statement {stmt.merchant_id} {stmt.period}")
    c = stmt.currency
    summary = [["", "Count", f"Amount ({c})"],
               ["Sales", stmt.totals.sales_count, decimal_string(stmt.totals.sales_minor, c)],
               ["Refunds", stmt.totals.refunds_count, decimal_string(stmt.totals.refunds_minor, c)],
               ["Fees", "", decimal_string(stmt.totals.fees_minor, c)],
               ["Net", "", decimal_string(stmt.totals.net_minor, c)]]
    style = TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.grey), ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                        ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey)])

    def breakdown(title: str, groups: dict[str, Totals]) -> Table:
        rows = [[title, "Sales", "Sales amount", "Refunds", "Fees", "Net"]]
        rows += [[key, t.sales_count, decimal_string(t.sales_minor, c), decimal_string(t.refunds_minor, c),
                  decimal_string(t.fees_minor, c), decimal_string(t.net_minor, c)] for key, t in groups.items()]
        return Table(rows, style=style)

    story = [Paragraph(f"Statement {stmt.period} ({stmt.timezone})", styles["Title"]),
             Paragraph(f"{stmt.merchant_name} - merchant {stmt.merchant_id}", styles["Normal"]), Spacer(1, 12),
             Table(summary, style=style), Spacer(1, 12), breakdown("Method", stmt.by_method), Spacer(1, 12),
             breakdown("Terminal", stmt.by_terminal)]
    doc.build(story)
    return buffer.getvalue()


# --- the operator's report ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OperatorReport:
    start: datetime
    end: datetime
    timezone: str
    volume_by_day: list[dict[str, object]]  # day, currency, count, amount_minor (approved sales)
    approved_count: int
    declined_count: int
    approval_rate_bps: int | None  # approved / (approved + declined) of sales, in basis points
    decline_reasons: list[dict[str, object]]  # code, meaning, count
    top_merchants: list[dict[str, object]]  # merchant_id, currency, count, amount_minor
    fees_revenue: dict[str, int]  # currency → minor units (the ledger's fees_revenue)
    disputes: list[dict[str, object]]  # status, reason_code, currency, count, amount_minor


def operator_report(uow: UnitOfWork, start: datetime, end: datetime, *, tz: str = DEFAULT_TZ,
                    top: int = 10) -> OperatorReport:
    if end <= start or end - start > timedelta(days=limits.reports_range_days_max):
        raise ReportError("to", f"the range must be 1 day..{limits.reports_range_days_max} days, from before to")
    if not 1 <= top <= limits.reports_top_merchants_max:
        raise ReportError("top", f"top must be 1..{limits.reports_top_merchants_max}")
    zoneinfo = zone(tz)
    by_day: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    by_merchant: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    reasons: dict[str, int] = defaultdict(int)
    approved = declined = 0
    for group in _groups(uow, None, start, end):
        if group.kind != "sale":
            continue
        if group.status == "declined":
            declined += group.count
            reasons[group.reason or "unknown"] += group.count
        elif group.status == "approved":
            approved += group.count
            for key, bucket in (((group.at.astimezone(zoneinfo).date().isoformat(), group.currency), by_day),
                                ((group.merchant_id, group.currency), by_merchant)):
                bucket[key][0] += group.count
                bucket[key][1] += group.amount_minor
    rate = None if approved + declined == 0 else approved * 10_000 // (approved + declined)  # floor
    return OperatorReport(
        start, end, tz,
        [{"day": d, "currency": c, "count": n, "amount_minor": a} for (d, c), (n, a) in sorted(by_day.items())],
        approved, declined, rate,
        [{"code": code, "meaning": _meaning(code), "count": n}
         for code, n in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))],
        [{"merchant_id": m, "currency": c, "count": n, "amount_minor": a}
         for (m, c), (n, a) in sorted(by_merchant.items(), key=lambda item: (-item[1][1], item[0]))[:top]],
        sql.fees_revenue(uow.connection, start, end),
        [{"status": s, "reason_code": r, "currency": c, "count": n, "amount_minor": a}
         for s, r, c, n, a in sql.dispute_totals(uow.connection, start, end, None)])


def _meaning(code: str) -> str:
    result = RESULT_OF_CODE.get(code)
    return code.replace("_", " ") if result is None else result.name.replace("_", " ").lower()


# --- rollups and the dashboard --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RefreshResult:
    rows_folded: int
    reversals_applied: int
    host_watermark: int
    reversals_watermark: int


def refresh(uow: UnitOfWork, now: datetime, *, rows_max: int = limits.reports_fold_batch_rows_max,
            rebuild: bool = False) -> RefreshResult:
    """Fold journal rows (host_transactions) with id above the watermark and at least
    limits.reports_fold_lag_s old into report_rollups, at most ``rows_max`` of them, and move
    rows folded earlier whose reversal was posted since (ledger reversal transfers above their
    own watermark) from their status to ``reversed``. A row reversed after this refresh's
    ledger watermark is folded as it was before the reversal, so the next pass moves it exactly
    once. The caller commits; run it again until the host watermark stays put to catch up
    (``refresh_all``). ``rebuild`` empties the rollups and starts again from nothing."""
    db = uow.connection
    host_mark = sql.lock_watermark(db, HOST_WATERMARK, now)  # first: the lock serializes refreshes
    reversal_mark = sql.lock_watermark(db, REVERSALS_WATERMARK, now)
    if rebuild:
        db.execute(report_rollups.delete())
        host_mark = reversal_mark = 0
    horizon = now - timedelta(seconds=limits.reports_fold_lag_s)
    lt = ledger_transfers
    new_reversal_mark = int(db.execute(sa.select(sa.func.coalesce(sa.func.max(lt.c.seq), reversal_mark))
                                       .where(lt.c.seq > reversal_mark, lt.c.created_at <= horizon)).scalar_one())
    moved = _reversal_moves(db, host_mark, reversal_mark, new_reversal_mark)
    sql.add_to_rollups(db, _with_all_merchants(moved))
    t = host_transactions
    new_host_mark = int(db.execute(sa.select(sa.func.coalesce(sa.func.max(t.c.id), host_mark)).where(
        t.c.id > host_mark, t.c.id <= host_mark + rows_max, t.c.created_at <= horizon)).scalar_one())
    deltas = _fold(db, host_mark, new_host_mark, new_reversal_mark)
    sql.add_to_rollups(db, _with_all_merchants(deltas))
    sql.set_watermark(db, HOST_WATERMARK, new_host_mark, now)
    sql.set_watermark(db, REVERSALS_WATERMARK, new_reversal_mark, now)
    return RefreshResult(sum(n for n, _, _ in deltas.values()), sum(n for n, _, _ in moved.values() if n > 0),
                         new_host_mark, new_reversal_mark)


Key = tuple[object, ...]
# Rollup rows of every merchant and terminal together (merchant "*", terminal "*"): the
# operator's dashboard reads a few thousand rows a week instead of every merchant's.
ALL_MERCHANTS = "*"


def _with_all_merchants(deltas: dict[Key, tuple[int, int, int]]) -> dict[Key, tuple[int, int, int]]:
    together: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0])
    for (_merchant, hour, method, _terminal, kind, status, currency), (n, amount, fee) in deltas.items():
        _add(together, (ALL_MERCHANTS, hour, method, ALL_MERCHANTS, kind, status, currency), n, amount, fee)
    return deltas | {k: (v[0], v[1], v[2]) for k, v in together.items()}


def _group_query(db: sa.Connection, low: int, high: int) -> sa.Select:
    t = host_transactions
    hour = sql.hour_of(db, t.c.created_at)
    method, kind = sql.host_method(), sql.host_kind()
    return (sa.select(t.c.merchant_id, hour, method, t.c.terminal_id, kind, t.c.status, t.c.currency,
                      sa.func.count(), sa.func.sum(t.c.amount_minor), sa.func.sum(t.c.fee_minor))
            .select_from(sql._host_from()).where(t.c.id > low, t.c.id <= high, t.c.status != "reversed")
            .group_by(t.c.merchant_id, hour, method, t.c.terminal_id, kind, t.c.status, t.c.currency))


def _fold(db: sa.Connection, low: int, high: int, reversal_mark: int) -> dict[Key, tuple[int, int, int]]:
    deltas: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0])
    if high <= low:
        return {}
    for m, hour, method, term, kind, status, cur, n, amount, fee in db.execute(_group_query(db, low, high)):
        _add(deltas, (m, sql.as_utc_hour(hour), method, term, kind, status, cur), n, amount, fee)
    for row, seq in _reversed_rows(db, sa.and_(host_transactions.c.id > low, host_transactions.c.id <= high)):
        status = "reversed" if seq is None or seq <= reversal_mark else "approved"
        _add(deltas, _key(row, status), 1, row.amount_minor, row.fee_minor)
    return {k: (v[0], v[1], v[2]) for k, v in deltas.items()}


def _reversal_moves(db: sa.Connection, host_mark: int, low: int, high: int) -> dict[Key, tuple[int, int, int]]:
    """Rows folded (id ≤ host_mark) as approved whose reversal posted in (low, high]: approved → reversed."""
    deltas: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0])
    if high <= low or host_mark == 0:
        return {}
    for row in _rows_reversed_since(db, low, high, host_transactions.c.id <= host_mark):
        _add(deltas, _key(row, "approved"), -1, -row.amount_minor, -row.fee_minor)
        _add(deltas, _key(row, "reversed"), 1, row.amount_minor, row.fee_minor)
    return {k: (v[0], v[1], v[2]) for k, v in deltas.items()}


def _row_columns() -> list[sa.ColumnElement[object]]:
    t = host_transactions
    return [t.c.merchant_id, t.c.created_at, sql.host_method().label("method"), t.c.terminal_id,
            sql.host_kind().label("kind"), t.c.currency, t.c.amount_minor, t.c.fee_minor]


def _reversed_rows(db: sa.Connection, where: sa.ColumnElement[bool]) -> list[tuple[sa.Row, int | None]]:
    """Reversed journal rows with the ledger seq of their reversal transfer (None: the wallet
    reversed it, no host transfer). ``where`` must narrow by id range (the primary key)."""
    t, lt = host_transactions, ledger_transfers
    rev = sa.select(sa.func.min(lt.c.seq)).where(lt.c.id.in_([t.c.transfer_ref + s for s in sql.REVERSAL_SUFFIXES])) \
        .scalar_subquery()
    query = sa.select(*_row_columns(), rev.label("seq")).select_from(sql._host_from()).where(
        t.c.status == "reversed", where)
    return [(row, None if row.seq is None else int(row.seq)) for row in db.execute(query)]


def _rows_reversed_since(db: sa.Connection, low: int, high: int, where: sa.ColumnElement[bool]) -> list[sa.Row]:
    """Journal rows (matching ``where``) whose host reversal transfer has a ledger seq in (low,
    high]: found from the ledger's side (a seq range), then each row by its identity index."""
    lt, t = ledger_transfers, host_transactions
    refs: set[tuple[str, str, str]] = set()
    for (transfer_id,) in db.execute(sa.select(lt.c.id).where(lt.c.seq > low, lt.c.seq <= high,
                                                               lt.c.code == "reversal")):
        base = next((transfer_id[:-len(s)] for s in sql.REVERSAL_SUFFIXES if transfer_id.endswith(s)), None)
        parts = base.split(":") if base else []
        if len(parts) == 3:
            refs.add((parts[0], parts[1], parts[2]))
    rows: list[sa.Row] = []
    for terminal_id, transmission_dt, stan in sorted(refs):
        rows += db.execute(sa.select(*_row_columns()).select_from(sql._host_from()).where(
            t.c.terminal_id == terminal_id, t.c.transmission_dt == transmission_dt, t.c.stan == stan,
            t.c.status == "reversed", where)).all()
    return rows


def _key(row: sa.Row, status: str) -> Key:
    hour = row.created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return (row.merchant_id, hour, row.method, row.terminal_id, row.kind, status, row.currency)


def _add(deltas: dict[Key, list[int]], key: Key, n: int, amount: int, fee: int) -> None:
    bucket = deltas[key]
    bucket[0] += int(n)
    bucket[1] += int(amount)
    bucket[2] += int(fee)


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str  # an ISO local hour or day, or a method
    count: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class DashboardData:
    merchant_id: str | None  # None: every merchant (the operator's)
    since: datetime  # UTC, hour-aligned
    until: datetime
    timezone: str
    currency: str
    sales_count: int
    sales_minor: int
    refunds_count: int
    refunds_minor: int
    fees_minor: int
    approved_count: int
    declined_count: int
    approval_rate_bps: int | None
    sales_by_hour: list[Bucket] = field(default_factory=list)  # local hours with sales
    sales_by_day: list[Bucket] = field(default_factory=list)  # local days with sales
    sales_by_method: list[Bucket] = field(default_factory=list)

    @property
    def net_minor(self) -> int:
        return self.sales_minor - self.refunds_minor - self.fees_minor


def dashboard(uow: UnitOfWork, merchant_id: str | None, since: datetime, until: datetime, tz: str = DEFAULT_TZ,
              *, currency: str = "CNY") -> DashboardData:
    """Sales, refunds, fees and approval rate in [since, until) (truncated to whole UTC hours):
    card present from report_rollups plus the journal tail above the watermark and the
    reversals not yet folded, online payments read live. Exact at any moment."""
    if since.tzinfo is None or until.tzinfo is None or until <= since:
        raise ReportError("since", "since and until must carry a time zone, since before until")
    zoneinfo = zone(tz)
    start, end = (m.astimezone(UTC).replace(minute=0, second=0, microsecond=0) for m in (since, until))
    cells: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0])
    _rollup_cells(uow.connection, merchant_id, start, end, currency, cells)
    _tail_cells(uow.connection, merchant_id, start, end, currency, cells)
    for row in _all_rows(uow, merchant_id, start, end, online_only=True):
        if row.currency == currency:
            hour = row.at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            _add(cells, (hour, row.method, row.kind, row.status), 1, row.amount_minor, row.fee_minor)
    return _dashboard_of(cells, merchant_id, start, end, tz, zoneinfo, currency)


def _rollup_cells(db: sa.Connection, merchant_id: str | None, start: datetime, end: datetime, currency: str,
                  cells: dict[Key, list[int]]) -> None:
    r = report_rollups
    query = (sa.select(r.c.bucket_start, r.c.method, r.c.kind, r.c.status, sa.func.sum(r.c.count),
                       sa.func.sum(r.c.amount_minor), sa.func.sum(r.c.fee_minor))
             .where(r.c.bucket_start >= start, r.c.bucket_start < end, r.c.currency == currency)
             .group_by(r.c.bucket_start, r.c.method, r.c.kind, r.c.status))
    query = query.where(r.c.merchant_id == (ALL_MERCHANTS if merchant_id is None else merchant_id))
    for hour, method, kind, status, n, amount, fee in db.execute(query):
        _add(cells, (sql.as_utc_hour(hour), method, kind, status), n, amount, fee)


def _tail_cells(db: sa.Connection, merchant_id: str | None, start: datetime, end: datetime, currency: str,
                cells: dict[Key, list[int]]) -> None:
    """Journal rows above the watermark as they are now, and folded rows reversed since."""
    t = host_transactions
    host_mark, reversal_mark = sql.watermark(db, HOST_WATERMARK), sql.watermark(db, REVERSALS_WATERMARK)
    query = (sa.select(t.c.created_at, sql.host_method().label("method"), sql.host_kind().label("kind"), t.c.status,
                       t.c.amount_minor, t.c.fee_minor).select_from(sql._host_from())
             .where(t.c.id > host_mark, t.c.created_at >= start, t.c.created_at < end, t.c.currency == currency))
    if merchant_id is not None:
        # coalesce() keeps the planner on the id range (the small tail), off the merchant index
        query = query.where(sa.func.coalesce(t.c.merchant_id, "") == merchant_id)
    for row in db.execute(query):
        hour = row.created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        _add(cells, (hour, row.method, row.kind, row.status), 1, row.amount_minor, row.fee_minor)
    in_range = sa.and_(t.c.id <= host_mark, t.c.created_at >= start, t.c.created_at < end, t.c.currency == currency,
                       sa.true() if merchant_id is None else t.c.merchant_id == merchant_id)
    for row in _rows_reversed_since(db, reversal_mark, 2**62, in_range):
        hour = row.created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        _add(cells, (hour, row.method, row.kind, "approved"), -1, -row.amount_minor, -row.fee_minor)
        _add(cells, (hour, row.method, row.kind, "reversed"), 1, row.amount_minor, row.fee_minor)


def _dashboard_of(cells: dict[Key, list[int]], merchant_id: str | None, start: datetime, end: datetime, tz: str,
                  zoneinfo: ZoneInfo, currency: str) -> DashboardData:
    hours: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    days: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    methods: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    totals = defaultdict(int)
    for (hour, method, kind, status), (n, amount, fee) in cells.items():
        if kind == "sale" and status == "declined":
            totals["declined"] += n
        if status != "approved" or kind not in ("sale", "refund"):
            continue
        totals[f"{kind}_count"] += n
        totals[f"{kind}_minor"] += amount
        totals["fees"] += fee
        if kind == "sale":
            local = hour.astimezone(zoneinfo)  # type: ignore[union-attr]
            for bucket, key in ((hours, local.isoformat()), (days, local.date().isoformat()), (methods, method)):
                bucket[key][0] += n
                bucket[key][1] += amount
    approved, declined = totals["sale_count"], totals["declined"]

    def buckets(groups: dict[str, list[int]]) -> list[Bucket]:
        return [Bucket(k, n, a) for k, (n, a) in sorted(groups.items()) if n]

    return DashboardData(
        merchant_id, start, end, tz, currency, approved, totals["sale_minor"], totals["refund_count"],
        totals["refund_minor"], totals["fees"], approved, declined,
        None if approved + declined == 0 else approved * 10_000 // (approved + declined),
        buckets(hours), buckets(days), buckets(methods))


def refresh_all(uow_factory: Callable[[], UnitOfWork], clock: Callable[[], datetime],
                *, on_batch: Callable[[RefreshResult], None] | None = None) -> int:
    """Refresh until caught up, one committed transaction per batch; returns rows folded."""
    folded, mark = 0, -1
    while True:
        with uow_factory() as uow:
            result = refresh(uow, clock())
            uow.commit()
        folded += result.rows_folded
        if on_batch is not None:
            on_batch(result)
        if result.host_watermark == mark:
            return folded
        mark = result.host_watermark


async def run_refresh(app: App, interval_s: float) -> None:
    """`paypos serve`'s loop: fold the journal into the rollups, a batch per transaction."""
    from paypos.services.background import run_batches

    def one_batch() -> int:
        with app.uow() as uow:
            result = refresh(uow, app.clock())
            uow.commit()
        return result.rows_folded

    await run_batches(one_batch, batch_max=limits.reports_fold_batch_rows_max, interval_s=interval_s,
                      what="reports refresh", log=logging.getLogger("paypos.reports"))
