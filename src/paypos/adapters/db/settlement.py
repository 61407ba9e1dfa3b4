"""Settlement tables in SQL (schema.py, issue 7 block): settings, holidays, runs, batches,
payouts and bank accounts; and the one aggregate over a merchant_pending window."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from paypos.adapters.db.schema import (
    bank_accounts,
    ledger_transfers,
    payouts,
    settlement_batches,
    settlement_holidays,
    settlement_runs,
    settlement_settings,
)
from paypos.domain.settlement import Cycle, SettlementSettings

# Codes of the transfers settlement itself posts on merchant accounts: never part of a window.
SETTLEMENT_CODES = ("settlement", "settlement_reserve", "reserve_release", "instant_fee", "pricing_charge",
                    "payout", "payout_paid", "payout_return")
FEE_CODES = ("fee", "creditpay_fee", "creditpay_subsidy")
REFUND_CODES = ("refund", "wallet_refund", "reversal")
CHARGEBACK_CODES = ("dispute", "dispute_fee")
POSTED_KINDS = ("single", "post_pending")


class SqlSettlementStore:
    def __init__(self, connection: sa.Connection) -> None:
        self._db = connection

    # --- settings and holidays -------------------------------------------------------------

    def settings(self, merchant_id: str) -> SettlementSettings | None:
        row = self._db.execute(sa.select(settlement_settings).where(
            settlement_settings.c.merchant_id == merchant_id)).one_or_none()
        if row is None:
            return None
        return SettlementSettings(row.merchant_id, Cycle(row.cycle), row.weekday, row.cutoff_local, row.time_zone,
                                  row.reserve_bps, row.reserve_hold_days, row.instant_rate_bps, row.payout_minor_min)

    def all_settings(self) -> dict[str, SettlementSettings]:
        ids = self._db.execute(sa.select(settlement_settings.c.merchant_id)).scalars().all()
        return {merchant_id: s for merchant_id in ids if (s := self.settings(merchant_id)) is not None}

    def save_settings(self, settings: SettlementSettings, now: datetime) -> None:
        values = {"cycle": settings.cycle.value, "weekday": settings.weekday, "cutoff_local": settings.cutoff_local,
                  "time_zone": settings.time_zone, "reserve_bps": settings.reserve_bps,
                  "reserve_hold_days": settings.reserve_hold_days, "instant_rate_bps": settings.instant_rate_bps,
                  "payout_minor_min": settings.payout_minor_min, "updated_at": now}
        done = self._db.execute(settlement_settings.update().where(
            settlement_settings.c.merchant_id == settings.merchant_id).values(**values))
        if done.rowcount == 0:
            self._db.execute(settlement_settings.insert().values(merchant_id=settings.merchant_id, **values))

    def holidays(self) -> list[sa.Row]:
        return list(self._db.execute(sa.select(settlement_holidays).order_by(settlement_holidays.c.holiday_date)))

    def add_holiday(self, day: date, name: str, now: datetime) -> bool:
        exists = self._db.execute(sa.select(settlement_holidays.c.holiday_date).where(
            settlement_holidays.c.holiday_date == day)).first()
        if exists is None:
            self._db.execute(settlement_holidays.insert().values(holiday_date=day, name=name, created_at=now))
        return exists is None

    # --- runs -------------------------------------------------------------------------------

    def run(self, business_date: date, *, lock: bool = False) -> sa.Row | None:
        query = sa.select(settlement_runs).where(settlement_runs.c.business_date == business_date)
        return self._db.execute(query.with_for_update() if lock else query).one_or_none()

    def start_run(self, business_date: date, merchants_total: int, now: datetime) -> None:
        self._db.execute(settlement_runs.insert().values(
            business_date=business_date, status="running", merchants_total=merchants_total, started_at=now))

    def update_run(self, business_date: date, **values: Any) -> None:
        self._db.execute(settlement_runs.update().where(settlement_runs.c.business_date == business_date)
                         .values(**values))

    def count_merchant(self, business_date: date, *, paid_out: bool) -> None:
        """One more merchant settled (in that merchant's transaction)."""
        c = settlement_runs.c
        self.update_run(business_date, merchants_done=c.merchants_done + 1, batches=c.batches + 1,
                        payouts=c.payouts + (1 if paid_out else 0))

    def runs(self, limit: int) -> list[dict[str, Any]]:
        query = sa.select(settlement_runs).order_by(settlement_runs.c.business_date.desc()).limit(limit)
        return [dict(row._mapping) for row in self._db.execute(query)]

    # --- batches ------------------------------------------------------------------------------

    def batch_exists(self, merchant_id: str, business_date: date) -> bool:
        return self._db.execute(sa.select(settlement_batches.c.id).where(
            settlement_batches.c.merchant_id == merchant_id,
            settlement_batches.c.business_date == business_date)).first() is not None

    def merchants_with_batches(self, business_date: date) -> set[str]:
        return set(self._db.execute(sa.select(settlement_batches.c.merchant_id).where(
            settlement_batches.c.business_date == business_date)).scalars())

    def last_batch(self, merchant_id: str, before: date) -> sa.Row | None:
        return self._db.execute(sa.select(settlement_batches).where(
            settlement_batches.c.merchant_id == merchant_id, settlement_batches.c.business_date < before)
            .order_by(settlement_batches.c.business_date.desc()).limit(1)).one_or_none()

    def reserves_due(self, merchant_id: str, on_or_before: date) -> list[sa.Row]:
        return list(self._db.execute(sa.select(settlement_batches).where(
            settlement_batches.c.merchant_id == merchant_id, settlement_batches.c.reserve_minor > 0,
            settlement_batches.c.reserve_released_at.is_(None),
            settlement_batches.c.business_date <= on_or_before).order_by(settlement_batches.c.business_date)))

    def mark_reserve_released(self, batch_id: str, now: datetime) -> None:
        self._db.execute(settlement_batches.update().where(settlement_batches.c.id == batch_id)
                         .values(reserve_released_at=now))

    def add_batch(self, row: dict[str, Any]) -> None:
        self._db.execute(settlement_batches.insert().values(**row))

    def batches(self, *, merchant_id: str | None, business_date: date | None, limit: int) -> list[dict[str, Any]]:
        query = (sa.select(settlement_batches)
                 .order_by(settlement_batches.c.business_date.desc(), settlement_batches.c.merchant_id).limit(limit))
        if merchant_id is not None:
            query = query.where(settlement_batches.c.merchant_id == merchant_id)
        if business_date is not None:
            query = query.where(settlement_batches.c.business_date == business_date)
        return [dict(row._mapping) for row in self._db.execute(query)]

    def window_sums(self, account_id: int, start: datetime, end: datetime) -> dict[str, tuple[int, int]]:
        """``{code: (credits, debits)}`` of posted transfers on the account in (start, end],
        settlement's own transfers excluded: two indexed aggregates (credit side, debit side)."""
        sums: dict[str, tuple[int, int]] = {}
        for side, column in ((0, ledger_transfers.c.credit_account_id), (1, ledger_transfers.c.debit_account_id)):
            query = (sa.select(ledger_transfers.c.code, sa.func.coalesce(sa.func.sum(ledger_transfers.c.amount), 0))
                     .where(column == account_id, ledger_transfers.c.kind.in_(POSTED_KINDS),
                            ledger_transfers.c.created_at > start, ledger_transfers.c.created_at <= end,
                            ledger_transfers.c.code.not_in(SETTLEMENT_CODES))
                     .group_by(ledger_transfers.c.code))
            for code, amount in self._db.execute(query):
                credits, debits = sums.get(code, (0, 0))
                sums[code] = (credits + int(amount), debits) if side == 0 else (credits, debits + int(amount))
        return sums

    def window_sums_by_account(self, start: datetime, end: datetime) -> dict[int, dict[str, tuple[int, int]]]:
        """``window_sums`` of every account at once: ``{account id: {code: (credits, debits)}}``
        (two grouped scans of the window's transfers)."""
        sums: dict[int, dict[str, tuple[int, int]]] = {}
        for side, column in ((0, ledger_transfers.c.credit_account_id), (1, ledger_transfers.c.debit_account_id)):
            query = (sa.select(column, ledger_transfers.c.code, sa.func.sum(ledger_transfers.c.amount))
                     .where(ledger_transfers.c.kind.in_(POSTED_KINDS), ledger_transfers.c.created_at > start,
                            ledger_transfers.c.created_at <= end, ledger_transfers.c.code.not_in(SETTLEMENT_CODES))
                     .group_by(column, ledger_transfers.c.code))
            for account_id, code, amount in self._db.execute(query):
                codes = sums.setdefault(account_id, {})
                credits, debits = codes.get(code, (0, 0))
                codes[code] = (credits + int(amount), debits) if side == 0 else (credits, debits + int(amount))
        return sums

    # --- payouts --------------------------------------------------------------------------------

    def add_payout(self, row: dict[str, Any]) -> None:
        self._db.execute(payouts.insert().values(**row))

    def payout(self, payout_id: str, *, lock: bool = False) -> sa.Row | None:
        query = sa.select(payouts).where(payouts.c.id == payout_id)
        return self._db.execute(query.with_for_update() if lock else query).one_or_none()

    def payouts_for_file(self, business_date: date) -> list[sa.Row]:
        return list(self._db.execute(sa.select(payouts).where(
            payouts.c.business_date == business_date, payouts.c.status.in_(("created", "sent")))
            .order_by(payouts.c.id)))

    def update_payout(self, payout_id: str, **values: Any) -> None:
        self._db.execute(payouts.update().where(payouts.c.id == payout_id).values(**values))

    def payouts(self, *, merchant_id: str | None, business_date: date | None, limit: int) -> list[dict[str, Any]]:
        query = sa.select(payouts).order_by(payouts.c.business_date.desc(), payouts.c.id).limit(limit)
        if merchant_id is not None:
            query = query.where(payouts.c.merchant_id == merchant_id)
        if business_date is not None:
            query = query.where(payouts.c.business_date == business_date)
        return [dict(row._mapping) for row in self._db.execute(query)]

    # --- bank accounts --------------------------------------------------------------------------

    def add_bank_account(self, row: dict[str, Any]) -> None:
        self._db.execute(bank_accounts.insert().values(**row))

    def bank_account(self, account_id: str, *, lock: bool = False) -> sa.Row | None:
        query = sa.select(bank_accounts).where(bank_accounts.c.id == account_id)
        return self._db.execute(query.with_for_update() if lock else query).one_or_none()

    def bank_accounts_by_hash(self, number_hash: str) -> list[sa.Row]:
        return list(self._db.execute(sa.select(bank_accounts).where(bank_accounts.c.number_hash == number_hash)
                                     .order_by(bank_accounts.c.created_at.desc())))

    def verified_bank_account(self, merchant_id: str) -> sa.Row | None:
        return self._db.execute(sa.select(bank_accounts).where(
            bank_accounts.c.merchant_id == merchant_id, bank_accounts.c.status == "verified")
            .order_by(bank_accounts.c.verified_at.desc(), bank_accounts.c.id).limit(1)).one_or_none()

    def update_bank_account(self, account_id: str, **values: Any) -> None:
        self._db.execute(bank_accounts.update().where(bank_accounts.c.id == account_id).values(**values))

    def bank_accounts(self, merchant_id: str | None, limit: int) -> list[sa.Row]:
        query = sa.select(bank_accounts).order_by(bank_accounts.c.created_at.desc(), bank_accounts.c.id).limit(limit)
        if merchant_id is not None:
            query = query.where(bank_accounts.c.merchant_id == merchant_id)
        return list(self._db.execute(query))
