"""The console's users, sessions and form keys (SQLAlchemy Core), on the caller's connection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paypos.adapters.db.schema import console_form_keys, console_sessions, console_users


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    id: str
    email: str
    display_name: str
    password_hash: str
    role: str
    merchant_id: str | None
    refund_limit_minor: int
    totp_secret_enc: bytes | None
    totp_enabled: bool
    totp_last_step: int | None
    failed_attempts: int
    locked_until: datetime | None
    status: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SessionRow:
    token_hash: str
    user_id: str
    csrf_token: str
    awaiting_totp: bool
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


def _user(row: Any) -> ConsoleUser:
    return ConsoleUser(**{name: getattr(row, name) for name in ConsoleUser.__slots__})


class SqlConsoleStore:
    def __init__(self, connection: sa.Connection) -> None:
        self._c = connection

    # --- users ---
    def add_user(self, user: ConsoleUser) -> None:
        self._c.execute(sa.insert(console_users).values(**{n: getattr(user, n) for n in ConsoleUser.__slots__}))

    def get_user(self, user_id: str, *, lock: bool = False) -> ConsoleUser | None:
        query = sa.select(console_users).where(console_users.c.id == user_id)
        row = self._c.execute(query.with_for_update() if lock else query).first()
        return _user(row) if row else None

    def user_by_email(self, email: str, *, lock: bool = False) -> ConsoleUser | None:
        query = sa.select(console_users).where(console_users.c.email == email)
        row = self._c.execute(query.with_for_update() if lock else query).first()
        return _user(row) if row else None

    def update_user(self, user_id: str, now: datetime, **values: Any) -> None:
        self._c.execute(sa.update(console_users).where(console_users.c.id == user_id)
                        .values(**values, updated_at=now))

    def list_users(self, *, merchant_id: str | None = None, operators_only: bool = False,
                   limit: int) -> list[ConsoleUser]:
        query = sa.select(console_users).order_by(console_users.c.created_at, console_users.c.id).limit(limit)
        if merchant_id is not None:
            query = query.where(console_users.c.merchant_id == merchant_id)
        if operators_only:
            query = query.where(console_users.c.merchant_id.is_(None))
        return [_user(r) for r in self._c.execute(query)]

    # --- sessions ---
    def add_session(self, session: SessionRow) -> None:
        self._c.execute(sa.insert(console_sessions).values(
            **{n: getattr(session, n) for n in SessionRow.__slots__}))

    def get_session(self, token_hash: str) -> SessionRow | None:
        row = self._c.execute(sa.select(console_sessions).where(console_sessions.c.token_hash == token_hash)).first()
        return SessionRow(**{n: getattr(row, n) for n in SessionRow.__slots__}) if row else None

    def touch_session(self, token_hash: str, now: datetime) -> None:
        self._c.execute(sa.update(console_sessions).where(console_sessions.c.token_hash == token_hash)
                        .values(last_seen_at=now))

    def set_session_awaiting_totp(self, token_hash: str, awaiting: bool) -> None:
        self._c.execute(sa.update(console_sessions).where(console_sessions.c.token_hash == token_hash)
                        .values(awaiting_totp=awaiting))

    def delete_session(self, token_hash: str) -> None:
        self._c.execute(sa.delete(console_sessions).where(console_sessions.c.token_hash == token_hash))

    def delete_sessions_of(self, user_id: str) -> None:
        self._c.execute(sa.delete(console_sessions).where(console_sessions.c.user_id == user_id))

    # --- form keys ---
    def form_result(self, form_key: str) -> str | None:
        row = self._c.execute(sa.select(console_form_keys.c.result_json)
                              .where(console_form_keys.c.form_key == form_key)).first()
        return str(row[0]) if row else None

    def add_form_result(self, form_key: str, user_id: str, result_json: str, now: datetime) -> None:
        self._c.execute(sa.insert(console_form_keys).values(form_key=form_key, user_id=user_id,
                                                            result_json=result_json, created_at=now))
