"""`paypos console users create|list|disable|reset-password|unlock` — the web console's users
from the operator's shell (docs/console.md).

A password is read from stdin with ``--password-stdin`` (one line, for scripts), else asked for
twice without echo. Refusals (an email taken, an unknown merchant or user) exit 1 with one
``error:`` line; bad input (an unknown role, a short password, an owner without a merchant)
exits 2. Every change is audited with the shell's user as the actor.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from paypos.adapters.db.console import ConsoleUser
from paypos.adapters.db.uow import UnitOfWork
from paypos.bootstrap import App
from paypos.entrypoints.cli_prepaid import DatabaseUrl, DataDir, JsonFlag, _fail, _show, in_unit_of_work

T = TypeVar("T")
console_app = typer.Typer(help="The web console (/console/ on `paypos serve`): its users.", no_args_is_help=True)
users_app = typer.Typer(help="Console users: create, list, disable, reset-password, unlock.", no_args_is_help=True)
console_app.add_typer(users_app, name="users")

User = Annotated[str, typer.Argument(help="The user's id (cu_...) or email.")]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin (one line).")]
_COLUMNS = ["id", "email", "role", "merchant_id", "status", "locked_until"]


def _row(user: ConsoleUser) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "display_name": user.display_name, "role": user.role,
            "merchant_id": user.merchant_id, "refund_limit_minor": user.refund_limit_minor, "status": user.status,
            "totp": user.totp_enabled, "locked_until": _iso(user.locked_until), "created_at": _iso(user.created_at)}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _run(data_dir: Path | None, database_url: str | None, work: Callable[[App, UnitOfWork], T]) -> T:
    from paypos.services import console_auth as auth

    try:
        return in_unit_of_work(data_dir, database_url, work, write=True)
    except (auth.UserNotFound, auth.UserRefused) as error:
        _fail(str(error), 1)
    except auth.ConsoleError as error:
        _fail(str(error), 2)


def _password(from_stdin: bool) -> str:
    from paypos.services import console_auth as auth

    if from_stdin:
        text = sys.stdin.readline().rstrip("\r\n")
    else:
        text = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        return auth.check_password(text)
    except auth.ConsoleError as error:
        _fail(str(error), 2)


@users_app.command("create")
def create(
    email: Annotated[str, typer.Option("--email", help="The sign-in email (stored lower-case).")],
    role: Annotated[str, typer.Option("--role", help="owner | cashier | reviewer | risk | finance | admin.")],
    merchant: Annotated[str | None, typer.Option("--merchant", help="The merchant id (owner and cashier).")] = None,
    name: Annotated[str, typer.Option("--name", help="A display name.")] = "",
    refund_limit_minor: Annotated[int, typer.Option("--refund-limit-minor", min=0,
                                                    help="A cashier's most per refund (minor units).")] = 0,
    password_stdin: PasswordStdin = False,
    as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None,
) -> None:
    """A new console user (the password is asked for, or read with --password-stdin)."""
    from paypos.services import audit
    from paypos.services import console_auth as auth

    password = _password(password_stdin)

    def work(paypos: App, uow: UnitOfWork) -> ConsoleUser:
        return auth.create_user(uow, email=email, role=role, password=password, now=paypos.clock(),
                                actor=audit.cli_actor(), merchant_id=merchant, display_name=name,
                                refund_limit_minor=refund_limit_minor)

    row = _row(_run(data_dir, database_url, work))
    _show("New console user", [row], _COLUMNS, as_json, row)


@users_app.command("list")
def list_users(
    merchant: Annotated[str | None, typer.Option("--merchant", help="Only this merchant's users.")] = None,
    as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None,
) -> None:
    """Every console user (or one merchant's), oldest first; never a password or secret."""
    from paypos.services import console_auth as auth

    users = _run(data_dir, database_url, lambda _p, uow: auth.list_users(uow, merchant_id=merchant))
    _show("Console users", [_row(u) for u in users], _COLUMNS, as_json)


def _change(user: str, action: Callable[[Any, UnitOfWork, ConsoleUser, datetime, str], ConsoleUser], title: str,
            as_json: bool, data_dir: Path | None, database_url: str | None) -> None:
    from paypos.services import audit
    from paypos.services import console_auth as auth

    def work(paypos: App, uow: UnitOfWork) -> ConsoleUser:
        found = auth.find_user(uow, user, lock=True)
        return action(paypos, uow, found, paypos.clock(), audit.cli_actor())

    row = _row(_run(data_dir, database_url, work))
    _show(title, [row], _COLUMNS, as_json, row)


@users_app.command("disable")
def disable(user: User, as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Disable a user at once (its sessions end)."""
    from paypos.services import console_auth as auth

    _change(user, lambda _p, uow, u, now, actor: auth.disable_user(uow, u, now, actor), "Disabled console user",
            as_json, data_dir, database_url)


@users_app.command("reset-password")
def reset_password(user: User, password_stdin: PasswordStdin = False, as_json: JsonFlag = False,
                   data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Set a new password (sessions end, any lock-out is lifted)."""
    from paypos.services import console_auth as auth

    password = _password(password_stdin)
    _change(user, lambda _p, uow, u, now, actor: auth.reset_password(uow, u, password, now, actor),
            "Console user with a new password", as_json, data_dir, database_url)


@users_app.command("unlock")
def unlock(user: User, as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Lift a lock-out after failed sign-ins."""
    from paypos.services import console_auth as auth

    _change(user, lambda _p, uow, u, now, actor: auth.unlock(uow, u, now, actor), "Unlocked console user",
            as_json, data_dir, database_url)
