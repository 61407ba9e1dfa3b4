"""Console users and sign-in (docs/console.md): create, disable, reset, unlock; authenticate
with argon2id passwords, lock-out, optional TOTP; sessions with CSRF tokens.

Rules:
- Emails are normalised (trimmed, lower-case) and unique.
- Passwords are hashed with argon2id (argon2-cffi ``PasswordHasher``); a hash made with older
  parameters is rehashed at the next good sign-in.
- ``limits.console_login_failures_max`` failures in a row (wrong password or TOTP code) lock the
  account for ``limits.console_lockout_s``. Every refusal — unknown email, wrong password,
  locked or disabled account — answers the same :data:`REFUSED` text after the same argon2 work,
  so the answer never tells whether an email exists.
- A session token (32 random bytes) lives only in the browser's cookie; the store keeps its
  SHA-256. Sessions end after ``console_session_idle_s`` idle or ``console_session_absolute_s``.
- Every change a person makes is audited (services/audit.record).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from paypos import limits
from paypos.adapters.db.console import ConsoleUser, SessionRow, SqlConsoleStore
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import Vault
from paypos.domain import totp
from paypos.domain.console_roles import Role, RoleError, check_binding, parse_role
from paypos.services import audit

REFUSED = ("Sign-in refused: the email or password is not right, or the account is locked for "
           f"{limits.console_lockout_s // 60} minutes after {limits.console_login_failures_max} failed attempts.")
_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory parameters (t=3, m=64 MiB, p=4)
TOTP_PURPOSE = "console-totp"


class ConsoleError(ValueError):
    """Bad input for a console user (exit 2 / a form message)."""


class UserNotFound(LookupError):
    def __init__(self, what: str) -> None:
        super().__init__(f"no console user {what!r}")


class UserRefused(Exception):
    """A rule refuses the change (exit 1): an email taken, a merchant unknown."""


@dataclass(frozen=True, slots=True)
class SignIn:
    """The outcome of a password check: ``user`` is None when refused (show :data:`REFUSED`)."""

    user: ConsoleUser | None
    totp_required: bool = False


@dataclass(frozen=True, slots=True)
class Session:
    token: str  # only ever in the cookie
    csrf_token: str
    user: ConsoleUser
    awaiting_totp: bool


def normalise_email(email: str) -> str:
    text = email.strip().lower()
    if not 3 <= len(text) <= limits.console_email_chars_max or "@" not in text[1:-1] or any(c.isspace() for c in text):
        raise ConsoleError("email must look like name@example.com")
    return text


def check_password(password: str) -> str:
    if not limits.console_password_chars_min <= len(password) <= limits.console_password_chars_max:
        raise ConsoleError(f"password must be {limits.console_password_chars_min}.."
                           f"{limits.console_password_chars_max} characters")
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(check_password(password))


def actor_of(user: ConsoleUser) -> str:
    return f"user:{user.id}"


# --- users -------------------------------------------------------------------------------------

def create_user(uow: UnitOfWork, *, email: str, role: str, password: str, now: datetime, actor: str,
                merchant_id: str | None = None, display_name: str = "", refund_limit_minor: int = 0,
                password_hash: str | None = None) -> ConsoleUser:
    """A new active user (``password_hash`` lets the sandbox seed skip argon2's work)."""
    parsed = _role(role)
    merchant_id = merchant_id or None
    try:
        check_binding(parsed, merchant_id)
    except RoleError as error:
        raise ConsoleError(str(error)) from None
    if refund_limit_minor < 0:
        raise ConsoleError("refund limit must be 0 or more minor units")
    if len(display_name) > limits.console_display_name_chars_max:
        raise ConsoleError(f"display name must be at most {limits.console_display_name_chars_max} characters")
    normalised = normalise_email(email)
    store = SqlConsoleStore(uow.connection)
    if merchant_id is not None and uow.registry.get_merchant(merchant_id) is None:
        raise UserRefused(f"no merchant {merchant_id!r}")
    if store.user_by_email(normalised) is not None:
        raise UserRefused(f"a console user with email {normalised} exists")
    user = ConsoleUser(id="cu_" + secrets.token_hex(10), email=normalised, display_name=display_name.strip(),
                       password_hash=password_hash or hash_password(password), role=parsed.value,
                       merchant_id=merchant_id, refund_limit_minor=refund_limit_minor, totp_secret_enc=None,
                       totp_enabled=False, totp_last_step=None, failed_attempts=0, locked_until=None,
                       status="active", created_at=now, updated_at=now)
    store.add_user(user)
    audit.record(uow, now, actor, "console_user.create", "console_user", user.id, merchant_id=merchant_id,
                 details={"role": user.role, "email": user.email})
    return user


def _role(text: str) -> Role:
    try:
        return parse_role(text)
    except RoleError as error:
        raise ConsoleError(str(error)) from None


def find_user(uow: UnitOfWork, id_or_email: str, *, merchant_id: str | None = None, lock: bool = False) -> ConsoleUser:
    """By id or email; with ``merchant_id``, only that merchant's users (else UserNotFound)."""
    store = SqlConsoleStore(uow.connection)
    found = store.get_user(id_or_email, lock=lock) if id_or_email.startswith("cu_") else None
    if found is None and "@" in id_or_email:
        found = store.user_by_email(id_or_email.strip().lower(), lock=lock)
    if found is None or (merchant_id is not None and found.merchant_id != merchant_id):
        raise UserNotFound(id_or_email)
    return found


def list_users(uow: UnitOfWork, *, merchant_id: str | None = None, operators_only: bool = False) -> list[ConsoleUser]:
    return SqlConsoleStore(uow.connection).list_users(merchant_id=merchant_id, operators_only=operators_only,
                                                      limit=limits.console_users_listed_max)


def disable_user(uow: UnitOfWork, user: ConsoleUser, now: datetime, actor: str) -> ConsoleUser:
    """Disabled at once: its sessions end. Disabling a disabled user changes nothing."""
    if user.status == "disabled":
        return user
    store = SqlConsoleStore(uow.connection)
    store.update_user(user.id, now, status="disabled")
    store.delete_sessions_of(user.id)
    audit.record(uow, now, actor, "console_user.disable", "console_user", user.id, merchant_id=user.merchant_id)
    return replace(user, status="disabled", updated_at=now)


def reset_password(uow: UnitOfWork, user: ConsoleUser, password: str, now: datetime, actor: str) -> ConsoleUser:
    """A new password; the user's sessions end and any lock is lifted."""
    hashed = hash_password(password)
    store = SqlConsoleStore(uow.connection)
    store.update_user(user.id, now, password_hash=hashed, failed_attempts=0, locked_until=None)
    store.delete_sessions_of(user.id)
    audit.record(uow, now, actor, "console_user.reset_password", "console_user", user.id,
                 merchant_id=user.merchant_id)
    return replace(user, password_hash=hashed, failed_attempts=0, locked_until=None, updated_at=now)


def unlock(uow: UnitOfWork, user: ConsoleUser, now: datetime, actor: str) -> ConsoleUser:
    SqlConsoleStore(uow.connection).update_user(user.id, now, failed_attempts=0, locked_until=None)
    audit.record(uow, now, actor, "console_user.unlock", "console_user", user.id, merchant_id=user.merchant_id)
    return replace(user, failed_attempts=0, locked_until=None, updated_at=now)


def set_role(uow: UnitOfWork, user: ConsoleUser, role: str, now: datetime, actor: str) -> ConsoleUser:
    """Change a user's role within its role set (a merchant user stays a merchant user)."""
    parsed = _role(role)
    try:
        check_binding(parsed, user.merchant_id)
    except RoleError as error:
        raise ConsoleError(str(error)) from None
    SqlConsoleStore(uow.connection).update_user(user.id, now, role=parsed.value)
    audit.record(uow, now, actor, "console_user.role_change", "console_user", user.id, merchant_id=user.merchant_id,
                 details={"from": user.role, "to": parsed.value})
    return replace(user, role=parsed.value, updated_at=now)


# --- sign-in -------------------------------------------------------------------------------------

def authenticate(uow: UnitOfWork, email: str, password: str, now: datetime) -> SignIn:
    """Check a password; counts failures and locks (the caller commits either way)."""
    store = SqlConsoleStore(uow.connection)
    try:
        user = store.user_by_email(normalise_email(email), lock=True)
    except ConsoleError:
        user = None
    if user is None:
        _verify(_dummy_hash(), password)
        audit.record(uow, now, "anonymous", "console.login_failed", "console_user", "unknown",
                     details={"reason": "unknown_email"})
        return SignIn(None)
    good = _verify(user.password_hash, password)
    if user.status != "active" or (user.locked_until is not None and user.locked_until > now):
        audit.record(uow, now, actor_of(user), "console.login_failed", "console_user", user.id,
                     merchant_id=user.merchant_id, details={"reason": user.status if user.status != "active" else "locked"})
        return SignIn(None)
    if not good:
        record_failure(uow, user, now, "bad_password")
        return SignIn(None)
    if _HASHER.check_needs_rehash(user.password_hash):
        store.update_user(user.id, now, password_hash=_HASHER.hash(password))
    if user.totp_enabled:
        return SignIn(user, totp_required=True)
    store.update_user(user.id, now, failed_attempts=0, locked_until=None)
    audit.record(uow, now, actor_of(user), "console.login", "console_user", user.id, merchant_id=user.merchant_id)
    return SignIn(user)


@functools.cache
def _dummy_hash() -> str:
    """Verified against for unknown emails: the same argon2 work as for a real user."""
    return _HASHER.hash("paypos-console-dummy-password")


def _verify(encoded: str, password: str) -> bool:
    try:
        return _HASHER.verify(encoded, password[:limits.console_password_chars_max])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def record_failure(uow: UnitOfWork, user: ConsoleUser, now: datetime, reason: str) -> None:
    """One more failure; the last allowed one locks the account (and is audited as a lock)."""
    store = SqlConsoleStore(uow.connection)
    failures = user.failed_attempts + 1
    audit.record(uow, now, actor_of(user), "console.login_failed", "console_user", user.id,
                 merchant_id=user.merchant_id, details={"reason": reason})
    if failures >= limits.console_login_failures_max:
        until = now + timedelta(seconds=limits.console_lockout_s)
        store.update_user(user.id, now, failed_attempts=0, locked_until=until)
        audit.record(uow, now, "system", "console_user.lock", "console_user", user.id, merchant_id=user.merchant_id,
                     details={"until": until.isoformat(), "failures": failures})
    else:
        store.update_user(user.id, now, failed_attempts=failures)


# --- TOTP --------------------------------------------------------------------------------------------

def verify_totp(uow: UnitOfWork, vault: Vault, user_id: str, code: str, now: datetime) -> ConsoleUser | None:
    """The second factor at sign-in: a valid, unused code signs in; a wrong one is a failure."""
    user = SqlConsoleStore(uow.connection).get_user(user_id, lock=True)
    if user is None or user.status != "active" or not user.totp_enabled or user.totp_secret_enc is None:
        return None
    if user.locked_until is not None and user.locked_until > now:
        return None
    step = _step(vault, user, code, now)
    if step is None:
        record_failure(uow, user, now, "bad_totp")
        return None
    SqlConsoleStore(uow.connection).update_user(user.id, now, totp_last_step=step, failed_attempts=0,
                                                locked_until=None)
    audit.record(uow, now, actor_of(user), "console.login", "console_user", user.id, merchant_id=user.merchant_id,
                 details={"totp": True})
    return replace(user, totp_last_step=step)


def _step(vault: Vault, user: ConsoleUser, code: str, now: datetime) -> int | None:
    secret = vault.open(user.totp_secret_enc or b"", TOTP_PURPOSE)
    return totp.matched_step(secret, code, now.timestamp(), step_s=limits.console_totp_step_s,
                             window_steps=limits.console_totp_window_steps, last_step=user.totp_last_step)


def begin_totp(uow: UnitOfWork, vault: Vault, user: ConsoleUser, now: datetime) -> str:
    """A new (not yet enabled) secret for the user to scan; returns it (base32)."""
    if user.totp_enabled:
        raise UserRefused("two-step sign-in is already on")
    secret = totp.new_secret()
    SqlConsoleStore(uow.connection).update_user(user.id, now, totp_secret_enc=vault.seal(secret, TOTP_PURPOSE),
                                                totp_last_step=None)
    return secret


def pending_totp_secret(vault: Vault, user: ConsoleUser) -> str | None:
    if user.totp_enabled or user.totp_secret_enc is None:
        return None
    return vault.open(user.totp_secret_enc, TOTP_PURPOSE)


def confirm_totp(uow: UnitOfWork, vault: Vault, user: ConsoleUser, code: str, now: datetime) -> bool:
    """Turn TOTP on once the user proves the app shows the right code."""
    if user.totp_enabled or user.totp_secret_enc is None:
        return False
    step = _step(vault, user, code, now)
    if step is None:
        return False
    SqlConsoleStore(uow.connection).update_user(user.id, now, totp_enabled=True, totp_last_step=step)
    audit.record(uow, now, actor_of(user), "console_user.totp_enable", "console_user", user.id,
                 merchant_id=user.merchant_id)
    return True


# --- sessions ----------------------------------------------------------------------------------------

def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(uow: UnitOfWork, user: ConsoleUser, now: datetime, *, awaiting_totp: bool = False) -> Session:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    SqlConsoleStore(uow.connection).add_session(SessionRow(
        token_hash=token_hash(token), user_id=user.id, csrf_token=csrf, awaiting_totp=awaiting_totp,
        created_at=now, last_seen_at=now, expires_at=now + timedelta(seconds=limits.console_session_absolute_s)))
    return Session(token, csrf, user, awaiting_totp)


def resume_session(uow: UnitOfWork, token: str, now: datetime) -> Session | None:
    """The live session behind a cookie (its last-seen time refreshed), or None (ended/expired)."""
    if not token or len(token) > 128:
        return None
    store = SqlConsoleStore(uow.connection)
    hashed = token_hash(token)
    row = store.get_session(hashed)
    if row is None:
        return None
    idle_end = row.last_seen_at + timedelta(seconds=limits.console_session_idle_s)
    user = store.get_user(row.user_id)
    if now >= row.expires_at or now >= idle_end or user is None or user.status != "active":
        store.delete_session(hashed)
        return None
    if (now - row.last_seen_at).total_seconds() >= limits.console_session_touch_interval_s:
        store.touch_session(hashed, now)
    return Session(token, row.csrf_token, user, row.awaiting_totp)


def complete_totp(uow: UnitOfWork, session: Session) -> None:
    SqlConsoleStore(uow.connection).set_session_awaiting_totp(token_hash(session.token), False)


def end_session(uow: UnitOfWork, session: Session, now: datetime) -> None:
    SqlConsoleStore(uow.connection).delete_session(token_hash(session.token))
    audit.record(uow, now, actor_of(session.user), "console.logout", "console_user", session.user.id,
                 merchant_id=session.user.merchant_id)
