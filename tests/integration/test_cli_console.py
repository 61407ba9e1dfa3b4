"""`paypos console users ...` and `paypos sandbox console-users` in-process (Typer's runner) on
SQLite and PostgreSQL: create (password from stdin, hashed with argon2id), list, disable,
reset-password, unlock; refusals exit 1 and bad input exits 2 with one `error:` line; every
change audited with the shell's user."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from paypos.adapters.db.schema import console_users
from paypos.bootstrap import App, init_database
from paypos.entrypoints.cli import app as cli_app
from paypos.networks.sandbox import catalog
from paypos.services import audit, console_auth

CAFE = catalog.CAFE.merchant_id


@pytest.fixture
def run(app: App, database_url: str, tmp_path: Path) -> Any:
    init_database(app, sandbox=True)
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None) -> Any:
        return runner.invoke(cli_app, [*args, "--data-dir", str(tmp_path / "cli"), "--database-url", database_url],
                             input=stdin)

    return invoke


def test_an_operator_creates_lists_disables_and_resets_a_user(run: Any, app: App) -> None:
    created = run("console", "users", "create", "--email", "Till@Cafe.example", "--role", "cashier", "--merchant",
                  CAFE, "--refund-limit-minor", "2500", "--password-stdin", "--json", stdin="a-long-password\n")
    assert created.exit_code == 0, created.output
    body = json.loads(created.stdout)
    assert body["email"] == "till@cafe.example" and body["refund_limit_minor"] == 2500 and "password" not in body
    with app.engine.connect() as connection:
        stored = connection.execute(sa.select(console_users.c.password_hash).where(
            console_users.c.id == body["id"])).scalar_one()
    assert stored.startswith("$argon2id$") and "a-long-password" not in stored
    listed = json.loads(run("console", "users", "list", "--merchant", CAFE, "--json").stdout)
    assert body["id"] in {u["id"] for u in listed}
    assert json.loads(run("console", "users", "disable", "till@cafe.example", "--json").stdout)["status"] == "disabled"
    reset = run("console", "users", "reset-password", body["id"], "--password-stdin", stdin="another-password\n")
    assert reset.exit_code == 0
    with app.uow() as uow:  # disabled: even the new password is refused
        assert console_auth.authenticate(uow, "till@cafe.example", "another-password", app.clock()).user is None
    with app.uow(write=False) as uow:
        entries = audit.entries(uow, subject_id=body["id"])
    assert {"console_user.create", "console_user.disable", "console_user.reset_password"} <= {e.action for e in entries}
    assert all(e.actor.startswith("cli:") for e in entries if e.action != "console.login_failed")


@pytest.mark.parametrize(("args", "stdin", "code", "message"), [
    (("--email", "x@y.example", "--role", "wizard"), "a-long-password\n", 2, "role must be one of"),
    (("--email", "x@y.example", "--role", "owner"), "a-long-password\n", 2, "belongs to a merchant"),
    (("--email", "x@y.example", "--role", "risk", "--merchant", CAFE), "a-long-password\n", 2, "no merchant"),
    (("--email", "x@y.example", "--role", "admin"), "short\n", 2, "password must be"),
    (("--email", "not-an-email", "--role", "admin"), "a-long-password\n", 2, "email must look like"),
    (("--email", "owner@cafe.example", "--role", "owner", "--merchant", CAFE), "a-long-password\n", 1, "exists"),
    (("--email", "x@y.example", "--role", "owner", "--merchant", "NOSUCHMERCHANT1"), "a-long-password\n", 1,
     "no merchant"),
])
def test_bad_input_exits_2_and_refusals_exit_1_with_one_line(run: Any, args: tuple[str, ...], stdin: str, code: int,
                                                              message: str) -> None:
    result = run("console", "users", "create", *args, "--password-stdin", stdin=stdin)
    assert result.exit_code == code, result.output
    assert message in result.stderr and result.stderr.startswith("error:") and len(result.stderr.splitlines()) == 1


def test_unknown_users_exit_1_and_unlock_lifts_a_lock(run: Any, app: App) -> None:
    assert run("console", "users", "unlock", "nobody@nowhere.example").exit_code == 1
    with app.uow() as uow:
        for _ in range(5):
            console_auth.authenticate(uow, "risk@ops.example", "wrong-password", app.clock())
        uow.commit()
    listed = {u["email"]: u for u in json.loads(run("console", "users", "list", "--json").stdout)}
    assert listed["risk@ops.example"]["locked_until"] is not None
    assert run("console", "users", "unlock", "risk@ops.example").exit_code == 0
    with app.uow() as uow:
        assert console_auth.authenticate(uow, "risk@ops.example", "sandbox-risk", app.clock()).user is not None


def test_the_sandbox_lists_its_console_logins(run: Any) -> None:
    rows = json.loads(run("sandbox", "console-users", "--json").stdout)
    assert {r["role"] for r in rows} == {"owner", "cashier", "reviewer", "risk", "finance", "admin"}
    assert {r["email"]: r["password"] for r in rows}["owner@cafe.example"] == "sandbox-cafe-owner"
