"""SQL of reports (services/reports.py): the merchant-transactions view over the card-present
journal and the online payments and refunds, aggregates for statements and operator reports,
the ledger's postings to a merchant, and the rollups' fold.

Each source is one SELECT with the same labelled columns (``uid``, ``at``, ``merchant_id``,
``terminal_id``, ``method``, ``kind``, ``status``, ``amount_minor``, ``fee_minor``,
``currency``, ``pan_masked``, ``num``, ``approval_code``, ``order_id``, ``reason``); the service
merges them. ``uid`` orders rows at the same instant: ``ht_<12-digit id>`` < ``pay_...`` <
``re_...`` < ``wr_<12-digit id>`` < ``wt_<trade no>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from paypos.adapters.db.schema import (
    disputes,
    host_transactions,
    issuer_cards,
    ledger_accounts,
    ledger_transfers,
    payment_requests,
    payments,
    refunds,
    report_rollups,
    report_watermarks,
    wallet_refunds,
    wallet_trades,
)
from paypos.domain.pricing import PaymentMethod

HOST_PREFIX, PAYMENT_PREFIX, REFUND_PREFIX = "ht_", "pay_", "re_"
WALLET_REFUND_PREFIX, WALLET_TRADE_PREFIX = "wr_", "wt_"
# Sources whose rows are told apart by an integer id (``num``), written 12 digits wide in ``id``.
NUMERIC_PREFIXES = (HOST_PREFIX, WALLET_REFUND_PREFIX)
ONLINE_TERMINAL, WALLET_TERMINAL = "online", "wallet"
# Ledger transfer codes that bring a sale's money to a merchant, and take a refund's away.
SALE_CODES = ("sale", "completion", "online_capture", "wallet_sale")
REFUND_CODES = ("refund", "wallet_refund")
# Suffixes of the host's reversal transfers (authorization/posting.py Reverse._undo).
REVERSAL_SUFFIXES = (":rev:sale", ":rev:refund", ":void")

t = host_transactions
_cards = issuer_cards.alias("rc")


def host_method() -> sa.ColumnElement[str]:
    """The method of a journal row (domain.pricing.card_present_method in SQL): the row's own
    ``method`` column where a later schema has it, else derived from the card's funding and
    field 22. A wallet payment at a terminal (no card, entry mode 03x) counts as wallet_balance."""
    entry = sa.func.substr(t.c.entry_mode, 1, 2)
    derived = sa.case(
        (_cards.c.funding == "prepaid", PaymentMethod.PREPAID.value),
        (entry.in_(("07", "91")), PaymentMethod.CONTACTLESS.value),
        (_cards.c.funding == "credit", PaymentMethod.CREDIT_CARD.value),
        (sa.and_(t.c.card_id.is_(None), entry == "03"), PaymentMethod.WALLET_BALANCE.value),
        else_=PaymentMethod.DEBIT_CARD.value)
    own = t.c.get("method")
    return derived if own is None else sa.func.coalesce(own, derived)


def host_kind() -> sa.ColumnElement[str]:
    return sa.case((t.c.kind.in_(("purchase", "completion")), "sale"), else_=t.c.kind)


def _host_from() -> sa.FromClause:
    return t.outerjoin(_cards, _cards.c.card_id == t.c.card_id)


def host_rows(merchant_id: str | None) -> sa.Select:
    uid = sa.literal(HOST_PREFIX)  # the full uid is made in Python from num
    query = sa.select(
        uid.label("uid"), t.c.created_at.label("at"), t.c.merchant_id, t.c.terminal_id,
        host_method().label("method"), host_kind().label("kind"), t.c.status, t.c.amount_minor,
        t.c.fee_minor, t.c.currency, t.c.pan_masked, t.c.id.label("num"), t.c.approval_code,
        sa.null().label("order_id"), t.c.response_code.label("reason"),
    ).select_from(_host_from())
    return query if merchant_id is None else query.where(t.c.merchant_id == merchant_id)


_trades = wallet_trades.alias("wt")


def payment_method() -> sa.ColumnElement[str]:
    return sa.case(
        (payments.c.method == "card", PaymentMethod.CARD_NOT_PRESENT.value),
        (_trades.c.funding == "card", PaymentMethod.WALLET_CARD.value),
        (_trades.c.funding == "creditpay", PaymentMethod.CREDIT_PAY.value),
        else_=PaymentMethod.WALLET_BALANCE.value)


def payment_status() -> sa.ColumnElement[str]:
    return sa.case((payments.c.status == "succeeded", "approved"), (payments.c.status == "failed", "declined"),
                   (payments.c.status == "canceled", "reversed"), else_="pending")


def payment_rows(merchant_id: str | None) -> sa.Select:
    """Online payments: the amount is what was captured once captured; the fee is what the
    ledger posted (the sale or capture chain's ``<payment id>:fee`` transfer, priced by the
    merchant's plan at the time), a wallet's is the trade's; none before capture."""
    p = payments
    fee_transfer = ledger_transfers.alias("fee_transfer")
    amount = sa.case((p.c.status == "succeeded", p.c.captured_minor), else_=p.c.amount_minor)
    query = sa.select(
        p.c.id.label("uid"), p.c.created_at.label("at"), p.c.merchant_id,
        sa.literal(ONLINE_TERMINAL).label("terminal_id"),
        payment_method().label("method"), sa.literal("sale").label("kind"), payment_status().label("status"),
        amount.label("amount_minor"),
        sa.func.coalesce(_trades.c.fee_minor, fee_transfer.c.amount, 0).label("fee_minor"), p.c.currency,
        p.c.masked_pan.label("pan_masked"), sa.null().label("num"), sa.null().label("approval_code"),
        payment_requests.c.order_id, p.c.failure_code.label("reason"),
    ).select_from(p.join(payment_requests, payment_requests.c.id == p.c.payment_request_id)
                  .outerjoin(_trades, _trades.c.trade_no == p.c.wallet_trade_no)
                  .outerjoin(fee_transfer, fee_transfer.c.id == p.c.id + ":fee"))
    return query if merchant_id is None else query.where(p.c.merchant_id == merchant_id)


def refund_rows(merchant_id: str | None) -> sa.Select:
    r, p = refunds, payments
    query = sa.select(
        r.c.id.label("uid"), r.c.created_at.label("at"), r.c.merchant_id,
        sa.literal(ONLINE_TERMINAL).label("terminal_id"),
        payment_method().label("method"), sa.literal("refund").label("kind"), sa.literal("approved").label("status"),
        r.c.amount_minor, sa.literal(0).label("fee_minor"), r.c.currency, p.c.masked_pan.label("pan_masked"),
        sa.null().label("num"), sa.null().label("approval_code"), payment_requests.c.order_id,
        sa.null().label("reason"),
    ).select_from(r.join(p, p.c.id == r.c.payment_id)
                  .join(payment_requests, payment_requests.c.id == r.c.payment_request_id)
                  .outerjoin(_trades, _trades.c.trade_no == p.c.wallet_trade_no))
    return query if merchant_id is None else query.where(r.c.merchant_id == merchant_id)


def _wallet_method(trades: sa.FromClause) -> sa.ColumnElement[str]:
    return sa.case((trades.c.funding == "card", PaymentMethod.WALLET_CARD.value),
                   (trades.c.funding == "creditpay", PaymentMethod.CREDIT_PAY.value),
                   else_=PaymentMethod.WALLET_BALANCE.value)


def _gateway_only(trades: sa.FromClause) -> sa.ColumnElement[bool]:
    """Trades of the wallet's merchant gateway alone: not a terminal's (the host journals
    those) and not an online payment's (``payments`` has those)."""
    return sa.and_(trades.c.terminal_id.is_(None),
                   ~sa.exists().where(payments.c.wallet_trade_no == trades.c.trade_no))


def wallet_trade_rows(merchant_id: str | None) -> sa.Select:
    """Wallet gateway trades (docs/wallet-gateway.md): a sale once paid (at its payment time),
    pending while waiting, reversed when closed unpaid; the order id is ``out_trade_no``."""
    w = wallet_trades.alias("wg")
    status = sa.case((w.c.paid_at.is_not(None), "approved"), (w.c.state == "WAIT_BUYER_PAY", "pending"),
                     else_="reversed")
    query = sa.select(
        (sa.literal(WALLET_TRADE_PREFIX) + w.c.trade_no).label("uid"),
        sa.func.coalesce(w.c.paid_at, w.c.created_at).label("at"), w.c.merchant_id,
        sa.literal(WALLET_TERMINAL).label("terminal_id"), _wallet_method(w).label("method"),
        sa.literal("sale").label("kind"), status.label("status"), w.c.total_amount_minor.label("amount_minor"),
        w.c.fee_minor, w.c.currency, sa.null().label("pan_masked"), sa.null().label("num"),
        sa.null().label("approval_code"), w.c.out_trade_no.label("order_id"), sa.null().label("reason"),
    ).where(_gateway_only(w))
    return query if merchant_id is None else query.where(w.c.merchant_id == merchant_id)


def wallet_refund_rows(merchant_id: str | None) -> sa.Select:
    w, r = wallet_trades.alias("wg"), wallet_refunds
    query = sa.select(
        sa.literal(WALLET_REFUND_PREFIX).label("uid"), r.c.created_at.label("at"), w.c.merchant_id,
        sa.literal(WALLET_TERMINAL).label("terminal_id"), _wallet_method(w).label("method"),
        sa.literal("refund").label("kind"), sa.literal("approved").label("status"), r.c.amount_minor,
        sa.literal(0).label("fee_minor"), w.c.currency, sa.null().label("pan_masked"), r.c.id.label("num"),
        sa.null().label("approval_code"), w.c.out_trade_no.label("order_id"), sa.null().label("reason"),
    ).select_from(r.join(w, w.c.trade_no == r.c.trade_no)).where(_gateway_only(w), r.c.amount_minor > 0)
    return query if merchant_id is None else query.where(w.c.merchant_id == merchant_id)


# --- the ledger's side of a statement -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LedgerSums:
    sales_minor: int
    refunds_minor: int
    fees_minor: int


def ledger_sums(connection: sa.Connection, merchant_id: str, currency: str, start: datetime,
                end: datetime) -> LedgerSums:
    """Postings to the merchant's accounts in [start, end): sales in (less sale reversals),
    refunds out (less refund reversals), fees out (less fee reversals and fee returns)."""
    mine = sa.select(ledger_accounts.c.id).where(ledger_accounts.c.owner_ref == f"merchant:{merchant_id}",
                                                 ledger_accounts.c.currency == currency)
    lt = ledger_transfers
    into, out_of = lt.c.credit_account_id.in_(mine), lt.c.debit_account_id.in_(mine)

    def total(*conditions: sa.ColumnElement[bool]) -> int:
        return int(connection.execute(sa.select(sa.func.coalesce(sa.func.sum(lt.c.amount), 0)).where(
            lt.c.created_at >= start, lt.c.created_at < end, lt.c.currency == currency, *conditions)).scalar_one())

    def reversal(suffix: str) -> sa.ColumnElement[bool]:
        return sa.and_(lt.c.code == "reversal", lt.c.id.like(f"%{suffix}"))

    return LedgerSums(
        sales_minor=total(into, lt.c.code.in_(SALE_CODES)) - total(out_of, reversal(":rev:sale")),
        refunds_minor=total(out_of, lt.c.code.in_(REFUND_CODES)) - total(into, reversal(":rev:refund")),
        fees_minor=total(out_of, lt.c.code == "fee") - total(into, reversal(":rev:fee"))
        - total(into, lt.c.code == "fee_return"),
    )


def fees_revenue(connection: sa.Connection, start: datetime, end: datetime) -> dict[str, int]:
    """Net postings to the platform's fees_revenue accounts in [start, end), by currency."""
    fees = sa.select(ledger_accounts.c.id).where(ledger_accounts.c.owner_ref == "platform",
                                                 ledger_accounts.c.code == "fees_revenue")
    lt = ledger_transfers
    signed = sa.case((lt.c.credit_account_id.in_(fees), lt.c.amount), else_=-lt.c.amount)
    rows = connection.execute(sa.select(lt.c.currency, sa.func.sum(signed)).where(
        lt.c.created_at >= start, lt.c.created_at < end,
        sa.or_(lt.c.credit_account_id.in_(fees), lt.c.debit_account_id.in_(fees))).group_by(lt.c.currency))
    return {currency: int(amount) for currency, amount in rows}


def dispute_totals(connection: sa.Connection, start: datetime, end: datetime,
                   merchant_id: str | None) -> list[tuple[str, str, str, int, int]]:
    """(status, reason code, currency, count, amount) of disputes opened in [start, end)."""
    d = disputes
    query = sa.select(d.c.status, d.c.reason_code, d.c.currency, sa.func.count(), sa.func.sum(d.c.amount_minor)) \
        .where(d.c.created_at >= start, d.c.created_at < end) \
        .group_by(d.c.status, d.c.reason_code, d.c.currency).order_by(d.c.status, d.c.reason_code)
    if merchant_id is not None:
        query = query.where(d.c.merchant_id == merchant_id)
    return [(s, r, c, int(n), int(a)) for s, r, c, n, a in connection.execute(query)]


# --- rollups --------------------------------------------------------------------------------

def lock_watermark(connection: sa.Connection, name: str, now: datetime) -> int:
    """The watermark, its row locked for this transaction (created at 0 on first use), so that
    two refreshes (``paypos serve`` and ``paypos reports refresh``) never fold a row twice."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    connection.execute(dialect.insert(report_watermarks).values(name=name, value=0, updated_at=now)
                       .on_conflict_do_nothing(index_elements=["name"]))
    return int(connection.execute(sa.select(report_watermarks.c.value).where(report_watermarks.c.name == name)
                                  .with_for_update()).scalar_one())


def watermark(connection: sa.Connection, name: str) -> int:
    value = connection.execute(sa.select(report_watermarks.c.value)
                               .where(report_watermarks.c.name == name)).scalar_one_or_none()
    return 0 if value is None else int(value)


def set_watermark(connection: sa.Connection, name: str, value: int, now: datetime) -> None:
    updated = connection.execute(report_watermarks.update().where(report_watermarks.c.name == name)
                                 .values(value=value, updated_at=now))
    if updated.rowcount == 0:
        connection.execute(report_watermarks.insert().values(name=name, value=value, updated_at=now))


def hour_of(connection: sa.Connection, column: sa.ColumnElement[datetime]) -> sa.ColumnElement[object]:
    if connection.dialect.name == "postgresql":
        return sa.func.date_trunc("hour", sa.func.timezone("UTC", column))
    return sa.func.strftime("%Y-%m-%d %H:00:00", column)


def as_utc_hour(value: object) -> datetime:
    """A bucket as SQL returned it (SQLite text, PostgreSQL naive UTC timestamp) → aware UTC."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise TypeError(f"hour bucket {value!r}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


ROLLUP_KEY = ("merchant_id", "bucket_start", "method", "terminal_id", "kind", "status", "currency")


def add_to_rollups(connection: sa.Connection, deltas: dict[tuple[object, ...], tuple[int, int, int]]) -> None:
    """Add (count, amount, fee) to each key's rollup row, creating it on first use."""
    if not deltas:
        return
    rows = [dict(zip(ROLLUP_KEY, key, strict=True), count=n, amount_minor=a, fee_minor=f)
            for key, (n, a, f) in deltas.items()]
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(report_rollups)
    connection.execute(insert.on_conflict_do_update(index_elements=list(ROLLUP_KEY), set_={
        "count": report_rollups.c.count + insert.excluded.count,
        "amount_minor": report_rollups.c.amount_minor + insert.excluded.amount_minor,
        "fee_minor": report_rollups.c.fee_minor + insert.excluded.fee_minor}), rows)
