"""Reads behind the console's merchant pages (docs/console.md): the dashboard's figures and the
sales lists, every one scoped to one merchant.

The dashboard is one function returning one dataclass, :func:`dashboard`, over the reports
slice's rollup-backed ``reports.dashboard(...)``.
The lists read card-present sales (the host's journal, ``host_transactions``) and online ones
(``payments``). Amounts are minor units of the merchant's currency; the dashboard reads that
currency only (``other_currency`` stays 0 since it reads the rollups: kept for the template).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from paypos.adapters.db.schema import host_transactions, payments
from paypos.adapters.db.uow import UnitOfWork
from paypos.domain.money import MoneyError, currency

DAYS = 7


@dataclass(frozen=True, slots=True)
class Dashboard:
    merchant_id: str
    currency: str  # ISO 4217 alpha
    today: datetime  # midnight UTC of the day shown
    today_by_hour: list[int]  # 24 buckets, minor units of approved sales
    week_by_day: list[tuple[str, int]]  # the last 7 days (YYYY-MM-DD, minor units), oldest first
    by_method: dict[str, int] = field(default_factory=dict)  # card_present | card | wallet → minor units (7 days)
    approved: int = 0  # count over the 7 days
    declined: int = 0
    other_currency: int = 0
    by_pricing_method: dict[str, int] = field(default_factory=dict)  # domain.pricing method → minor units (7 days)

    @property
    def approval_rate_percent(self) -> int | None:
        """Approved / (approved + declined), rounded half up to a whole percent; None with no attempts."""
        decided = self.approved + self.declined
        return None if decided == 0 else (200 * self.approved + decided) // (2 * decided)

    @property
    def today_total_minor(self) -> int:
        return sum(self.today_by_hour)

    @property
    def week_total_minor(self) -> int:
        return sum(amount for _day, amount in self.week_by_day)


def dashboard(uow: UnitOfWork, merchant_id: str, now: datetime) -> Dashboard:
    """The owner's dashboard from the reports rollups (``services.reports.dashboard``: rollups +
    the journal tail, exact at any moment), in UTC days and hours: today by hour, the last 7 days
    by day, by channel, and the approval rate of sale attempts over the 7 days."""
    from paypos.services import reports

    merchant = uow.registry.get_merchant(merchant_id)
    alpha = _alpha(merchant.currency) if merchant else "XXX"
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=DAYS - 1)
    until = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)  # this hour too
    data = reports.dashboard(uow, merchant_id, start, until, "UTC", currency=alpha)
    by_hour = [0] * 24
    for bucket in data.sales_by_hour:
        hour = datetime.fromisoformat(bucket.key).astimezone(UTC)
        if hour >= today:
            by_hour[hour.hour] += bucket.amount_minor
    by_day = {(start + timedelta(days=i)).date().isoformat(): 0 for i in range(DAYS)}
    for bucket in data.sales_by_day:
        if bucket.key in by_day:
            by_day[bucket.key] += bucket.amount_minor
    channels = {"card_present": 0, "card": 0, "wallet": 0}
    methods: dict[str, int] = {}
    for bucket in data.sales_by_method:
        channels[CHANNEL_OF_METHOD.get(bucket.key, "card_present")] += bucket.amount_minor
        methods[bucket.key] = bucket.amount_minor
    return Dashboard(merchant_id, alpha, today, by_hour, list(by_day.items()), channels, data.approved_count,
                     data.declined_count, 0, methods)


# A pricing method (domain.pricing.PaymentMethod) → the dashboard's channel chart.
CHANNEL_OF_METHOD = {"card_not_present": "card", "wallet_balance": "wallet", "wallet_card": "wallet",
                     "credit_pay": "wallet"}


def _alpha(code: str) -> str:
    try:
        return currency(code).alpha
    except MoneyError:
        return code


# --- the sales lists ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SaleRow:
    source: str  # online | card_present
    id: str  # a payment id, or a card-present sale's RRN
    created_at: datetime
    method: str
    status: str
    amount_minor: int
    currency: str  # alpha
    refunded_minor: int
    masked_pan: str | None


@dataclass(frozen=True, slots=True)
class SalesPage:
    rows: list[SaleRow]
    page: int
    has_more: bool


def online_sales(uow: UnitOfWork, merchant_id: str, *, status: str | None, since: datetime | None,
                 until: datetime | None, page: int, rows: int) -> SalesPage:
    p = payments
    query = sa.select(p).where(p.c.merchant_id == merchant_id)
    if status:
        query = query.where(p.c.status == status)
    if since:
        query = query.where(p.c.created_at >= since)
    if until:
        query = query.where(p.c.created_at < until)
    query = query.order_by(p.c.created_at.desc(), p.c.id.desc()).limit(rows + 1).offset((page - 1) * rows)
    found = [SaleRow("online", r.id, r.created_at, r.method, r.status, int(r.amount_minor), r.currency,
                     int(r.refunded_minor), r.masked_pan) for r in uow.connection.execute(query)]
    return SalesPage(found[:rows], page, len(found) > rows)


def card_present_sales(uow: UnitOfWork, merchant_id: str, *, status: str | None, since: datetime | None,
                       until: datetime | None, page: int, rows: int) -> SalesPage:
    from paypos.adapters.db.host import rrn_of

    h = host_transactions
    query = sa.select(h).where(h.c.merchant_id == merchant_id, h.c.kind.in_(("purchase", "completion", "refund")))
    if status:
        query = query.where(h.c.status == status)
    if since:
        query = query.where(h.c.created_at >= since)
    if until:
        query = query.where(h.c.created_at < until)
    query = query.order_by(h.c.id.desc()).limit(rows + 1).offset((page - 1) * rows)
    found = [SaleRow("card_present", rrn_of(r.id), r.created_at, r.kind, r.status, int(r.amount_minor),
                     _alpha(r.currency), int(r.refunded_minor), r.pan_masked) for r in uow.connection.execute(query)]
    return SalesPage(found[:rows], page, len(found) > rows)


def card_present_sale(uow: UnitOfWork, merchant_id: str, rrn: str) -> dict[str, object] | None:
    """One journal row of this merchant by RRN (masked PAN only), or None."""
    from paypos.adapters.db.host import id_of_rrn

    h = host_transactions
    row = uow.connection.execute(sa.select(h).where(h.c.id == id_of_rrn(rrn), h.c.merchant_id == merchant_id)).first()
    if row is None:
        return None
    return {"rrn": rrn, "terminal_id": row.terminal_id, "kind": row.kind, "status": row.status,
            "amount_minor": int(row.amount_minor), "currency": _alpha(row.currency), "fee_minor": int(row.fee_minor),
            "masked_pan": row.pan_masked, "entry_mode": row.entry_mode, "response_code": row.response_code,
            "approval_code": row.approval_code, "refunded_minor": int(row.refunded_minor),
            "created_at": row.created_at}
