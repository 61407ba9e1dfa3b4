"""The sandbox wallet's store: keys, apps, users, trades, refunds, notifications, credit pay.

Plain reads and writes; every decision is in ``services.wallet``. Rows come back as the
records of ``domain.wallet``; sealed keys and device secrets stay ``bytes``.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from paypos.adapters.db.schema import (
    creditpay_bills,
    creditpay_purchases,
    creditpay_repayments,
    wallet_apps,
    wallet_keys,
    wallet_notifications,
    wallet_refunds,
    wallet_trades,
    wallet_user_cards,
    wallet_users,
)
from paypos.domain.wallet import Notification, Trade, WalletApp, WalletUser


class SqlWalletStore:
    def __init__(self, connection: sa.Connection) -> None:
        self._c = connection
        self._postgres = connection.dialect.name == "postgresql"

    def _lock(self, query: sa.Select[Any]) -> sa.Select[Any]:
        return query.with_for_update() if self._postgres else query

    # --- keys and apps ---------------------------------------------------------------

    def add_key(self, key_id: str, private_key_enc: bytes, public_key_pem: str, now: datetime) -> None:
        self._c.execute(sa.insert(wallet_keys).values(key_id=key_id, private_key_enc=private_key_enc,
                                                      public_key_pem=public_key_pem, created_at=now))

    def get_key(self, key_id: str) -> tuple[bytes, str] | None:
        row = self._c.execute(sa.select(wallet_keys.c.private_key_enc, wallet_keys.c.public_key_pem)
                              .where(wallet_keys.c.key_id == key_id)).first()
        return (row.private_key_enc, row.public_key_pem) if row else None

    def add_app(self, app: WalletApp, private_key_enc: bytes | None, now: datetime) -> None:
        self._c.execute(sa.insert(wallet_apps).values(
            app_id=app.app_id, merchant_id=app.merchant_id, name=app.name,
            app_public_key_pem=app.app_public_key_pem, app_private_key_enc=private_key_enc,
            status=app.status, created_at=now))

    def get_app(self, app_id: str) -> WalletApp | None:
        row = self._c.execute(sa.select(wallet_apps).where(wallet_apps.c.app_id == app_id)).first()
        return _app(row) if row else None

    def list_apps(self) -> list[WalletApp]:
        return [_app(r) for r in self._c.execute(sa.select(wallet_apps).order_by(wallet_apps.c.app_id))]

    def app_private_key_sealed(self, app_id: str) -> bytes | None:
        return self._c.execute(sa.select(wallet_apps.c.app_private_key_enc)
                               .where(wallet_apps.c.app_id == app_id)).scalar_one_or_none()

    def first_app_of_merchant(self, merchant_id: str) -> WalletApp | None:
        row = self._c.execute(sa.select(wallet_apps).where(wallet_apps.c.merchant_id == merchant_id,
                                                           wallet_apps.c.status == "active")
                              .order_by(wallet_apps.c.app_id).limit(1)).first()
        return _app(row) if row else None

    # --- users -----------------------------------------------------------------------

    def add_user(self, user: WalletUser, device_secret_enc: bytes, now: datetime) -> None:
        self._c.execute(sa.insert(wallet_users).values(
            user_id=user.user_id, phone=user.phone, name=user.name, currency=user.currency,
            device_no=user.device_no, device_secret_enc=device_secret_enc, paycode_last_step=None,
            credit_score=user.credit_score, credit_line_minor=user.credit_line_minor,
            no_confirm_limit_minor=user.no_confirm_limit_minor, bill_day=user.bill_day, due_day=user.due_day,
            status=user.status, created_at=now))

    def get_user(self, user_id: str, *, lock: bool = False) -> WalletUser | None:
        query = sa.select(wallet_users).where(wallet_users.c.user_id == user_id)
        row = self._c.execute(self._lock(query) if lock else query).first()
        return _user(row) if row else None

    def user_by_device(self, device_no: int, *, lock: bool = False) -> WalletUser | None:
        query = sa.select(wallet_users).where(wallet_users.c.device_no == device_no)
        row = self._c.execute(self._lock(query) if lock else query).first()
        return _user(row) if row else None

    def list_users(self) -> list[WalletUser]:
        return [_user(r) for r in self._c.execute(sa.select(wallet_users).order_by(wallet_users.c.user_id))]

    def device_secret_sealed(self, user_id: str) -> bytes:
        return self._c.execute(sa.select(wallet_users.c.device_secret_enc)
                               .where(wallet_users.c.user_id == user_id)).scalar_one()

    def set_paycode_step(self, user_id: str, step: int) -> None:
        self._c.execute(sa.update(wallet_users).where(wallet_users.c.user_id == user_id)
                        .values(paycode_last_step=step))

    def link_card(self, user_id: str, card_id: str, now: datetime) -> None:
        self._c.execute(sa.insert(wallet_user_cards).values(user_id=user_id, card_id=card_id, created_at=now))

    def linked_cards(self, user_id: str) -> list[str]:
        return list(self._c.execute(sa.select(wallet_user_cards.c.card_id)
                                    .where(wallet_user_cards.c.user_id == user_id)
                                    .order_by(wallet_user_cards.c.created_at, wallet_user_cards.c.card_id)).scalars())

    # --- trades ----------------------------------------------------------------------

    def add_trade(self, trade: Trade) -> None:
        self._c.execute(sa.insert(wallet_trades).values(**_trade_row(trade)))

    def get_trade(self, trade_no: str, *, lock: bool = False) -> Trade | None:
        query = sa.select(wallet_trades).where(wallet_trades.c.trade_no == trade_no)
        row = self._c.execute(self._lock(query) if lock else query).first()
        return _trade(row) if row else None

    def trade_by_out_trade_no(self, app_id: str, out_trade_no: str, *, lock: bool = False) -> Trade | None:
        query = sa.select(wallet_trades).where(wallet_trades.c.app_id == app_id,
                                               wallet_trades.c.out_trade_no == out_trade_no)
        row = self._c.execute(self._lock(query) if lock else query).first()
        return _trade(row) if row else None

    def update_trade(self, trade: Trade) -> None:
        values = _trade_row(trade)
        for key in ("trade_no", "app_id", "created_at"):
            values.pop(key)
        self._c.execute(sa.update(wallet_trades).where(wallet_trades.c.trade_no == trade.trade_no).values(**values))

    def trades_of_buyer(self, user_id: str, limit: int) -> list[Trade]:
        rows = self._c.execute(sa.select(wallet_trades).where(wallet_trades.c.buyer_user_id == user_id)
                               .order_by(wallet_trades.c.created_at.desc()).limit(limit))
        return [_trade(r) for r in rows]

    def expired_trade_nos(self, now: datetime, limit: int) -> list[str]:
        return list(self._c.execute(sa.select(wallet_trades.c.trade_no).where(
            wallet_trades.c.state == "WAIT_BUYER_PAY", wallet_trades.c.expires_at <= now)
            .order_by(wallet_trades.c.expires_at).limit(limit)).scalars())

    def awaiting_confirmation(self, user_id: str) -> list[Trade]:
        rows = self._c.execute(sa.select(wallet_trades).where(
            wallet_trades.c.buyer_user_id == user_id, wallet_trades.c.state == "WAIT_BUYER_PAY",
            wallet_trades.c.awaiting_confirmation.is_(True)).order_by(wallet_trades.c.created_at))
        return [_trade(r) for r in rows]

    # --- refunds ---------------------------------------------------------------------

    def get_refund(self, trade_no: str, out_request_no: str) -> dict[str, Any] | None:
        row = self._c.execute(sa.select(wallet_refunds).where(wallet_refunds.c.trade_no == trade_no,
                                                              wallet_refunds.c.out_request_no == out_request_no)).first()
        return dict(row._mapping) if row else None

    def add_refund(self, trade_no: str, out_request_no: str, amount_minor: int, reason: str, now: datetime) -> None:
        self._c.execute(sa.insert(wallet_refunds).values(trade_no=trade_no, out_request_no=out_request_no,
                                                         amount_minor=amount_minor, reason=reason, created_at=now))

    # --- notifications ---------------------------------------------------------------

    def add_notification(self, trade_no: str, event: str, notify_url: str, params: dict[str, str],
                         now: datetime) -> bool:
        """Queue a notice once per (trade, event); False when it was already queued."""
        exists = self._c.execute(sa.select(wallet_notifications.c.id).where(
            wallet_notifications.c.trade_no == trade_no, wallet_notifications.c.event == event)).first()
        if exists:
            return False
        self._c.execute(sa.insert(wallet_notifications).values(
            trade_no=trade_no, event=event, notify_url=notify_url, params_json=json.dumps(params),
            state="pending", attempts=0, next_attempt_at=now, last_error="", created_at=now))
        return True

    def due_notifications(self, now: datetime, limit: int) -> list[Notification]:
        query = (sa.select(wallet_notifications).where(wallet_notifications.c.state == "pending",
                                                       wallet_notifications.c.next_attempt_at <= now)
                 .order_by(wallet_notifications.c.next_attempt_at, wallet_notifications.c.id).limit(limit))
        if self._postgres:
            query = query.with_for_update(skip_locked=True)  # several host processes share the outbox
        return [_notification(r) for r in self._c.execute(query)]

    def notifications_of(self, trade_no: str) -> list[Notification]:
        rows = self._c.execute(sa.select(wallet_notifications).where(wallet_notifications.c.trade_no == trade_no)
                               .order_by(wallet_notifications.c.id))
        return [_notification(r) for r in rows]

    def update_notification(self, notification_id: int, *, if_state: str | None = None,
                            if_attempts: int | None = None, **values: Any) -> bool:
        """Update a notice; with ``if_state`` / ``if_attempts``, only while it still has them
        (a compare-and-set: two notifiers never both record an attempt). True if updated."""
        query = sa.update(wallet_notifications).where(wallet_notifications.c.id == notification_id)
        if if_state is not None:
            query = query.where(wallet_notifications.c.state == if_state)
        if if_attempts is not None:
            query = query.where(wallet_notifications.c.attempts == if_attempts)
        return self._c.execute(query.values(**values)).rowcount == 1

    # --- credit pay ------------------------------------------------------------------

    def add_purchase(self, row: dict[str, Any]) -> None:
        self._c.execute(sa.insert(creditpay_purchases).values(**row))

    def purchases_of(self, user_id: str) -> list[dict[str, Any]]:
        rows = self._c.execute(sa.select(creditpay_purchases).where(creditpay_purchases.c.user_id == user_id)
                               .order_by(creditpay_purchases.c.posted_on, creditpay_purchases.c.trade_no))
        return [dict(r._mapping) for r in rows]

    def get_purchase(self, trade_no: str) -> dict[str, Any] | None:
        row = self._c.execute(sa.select(creditpay_purchases).where(creditpay_purchases.c.trade_no == trade_no)).first()
        return dict(row._mapping) if row else None

    def update_purchase(self, trade_no: str, **values: Any) -> None:
        self._c.execute(sa.update(creditpay_purchases).where(creditpay_purchases.c.trade_no == trade_no)
                        .values(**values))

    def add_bill(self, row: dict[str, Any]) -> int:
        return int(self._c.execute(sa.insert(creditpay_bills).values(**row).returning(creditpay_bills.c.id)).scalar_one())

    def bills_of(self, user_id: str) -> list[dict[str, Any]]:
        rows = self._c.execute(sa.select(creditpay_bills).where(creditpay_bills.c.user_id == user_id)
                               .order_by(creditpay_bills.c.bill_date))
        return [dict(r._mapping) for r in rows]

    def get_bill(self, user_id: str, bill_date: date) -> dict[str, Any] | None:
        row = self._c.execute(sa.select(creditpay_bills).where(creditpay_bills.c.user_id == user_id,
                                                               creditpay_bills.c.bill_date == bill_date)).first()
        return dict(row._mapping) if row else None

    def update_bill(self, bill_id: int, **values: Any) -> None:
        self._c.execute(sa.update(creditpay_bills).where(creditpay_bills.c.id == bill_id).values(**values))

    def get_repayment(self, repayment_id: str) -> dict[str, Any] | None:
        row = self._c.execute(sa.select(creditpay_repayments)
                              .where(creditpay_repayments.c.repayment_id == repayment_id)).first()
        return dict(row._mapping) if row else None

    def add_repayment(self, row: dict[str, Any]) -> None:
        self._c.execute(sa.insert(creditpay_repayments).values(**row))


def _app(row: sa.Row) -> WalletApp:
    return WalletApp(app_id=row.app_id, merchant_id=row.merchant_id, name=row.name,
                     app_public_key_pem=row.app_public_key_pem, status=row.status)


def _user(row: sa.Row) -> WalletUser:
    return WalletUser(user_id=row.user_id, phone=row.phone, name=row.name, currency=row.currency,
                      device_no=row.device_no, paycode_last_step=row.paycode_last_step,
                      credit_score=row.credit_score, credit_line_minor=row.credit_line_minor,
                      no_confirm_limit_minor=row.no_confirm_limit_minor, bill_day=row.bill_day,
                      due_day=row.due_day, status=row.status)


_TRADE_FIELDS = tuple(Trade.__dataclass_fields__)


def _trade(row: sa.Row) -> Trade:
    mapping = row._mapping
    return Trade(**{name: mapping[name] for name in _TRADE_FIELDS})


def _trade_row(trade: Trade) -> dict[str, Any]:
    return {name: getattr(trade, name) for name in _TRADE_FIELDS}


def _notification(row: sa.Row) -> Notification:
    return Notification(id=row.id, trade_no=row.trade_no, event=row.event, notify_url=row.notify_url,
                        params=json.loads(row.params_json), state=row.state, attempts=row.attempts,
                        next_attempt_at=row.next_attempt_at, last_error=row.last_error,
                        delivered_at=row.delivered_at)
