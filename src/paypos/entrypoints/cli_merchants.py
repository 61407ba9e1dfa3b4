"""`paypos merchants api-keys create|list|revoke --merchant ID` — a merchant's secret API keys
from the operator's side (the merchant's own side is ``/v1/api_keys``, docs/api.md).

``create`` prints the new secret once (stdout with ``--json``); ``list`` never shows a secret;
``revoke`` refuses a merchant's last active key (exit 1). An unknown merchant or key exits 1;
bad input (a label over 64 characters) exits 2.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from paypos.adapters.db.uow import UnitOfWork
from paypos.bootstrap import App
from paypos.services import api_keys as service

# The CLI plumbing (options, app, one-line errors, tables/JSON) of the sibling command groups.
from paypos.entrypoints.cli_prepaid import DatabaseUrl, DataDir, JsonFlag, _fail, _show, in_unit_of_work

T = TypeVar("T")
merchants_app = typer.Typer(help="Merchants: applications and review, lifecycle (activate, suspend, reactivate, close), "
                             "secret API keys.", no_args_is_help=True)
api_keys_app = typer.Typer(help="A merchant's secret API keys: create (shown once), list, revoke.",
                           no_args_is_help=True)
merchants_app.add_typer(api_keys_app, name="api-keys")

MerchantId = Annotated[str, typer.Option("--merchant", help="The merchant id (paypos sandbox merchants).")]
_COLUMNS = ["id", "prefix", "label", "status", "created_at", "revoked_at"]


def _run(data_dir: Path | None, database_url: str | None, work: Callable[[App, UnitOfWork], T], *,
         write: bool = True) -> T:
    """One use case in one unit of work (committed when it writes); a refusal exits 1 in one line."""
    try:
        return in_unit_of_work(data_dir, database_url, work, write=write)
    except (service.KeyNotFound, service.MerchantNotFound, service.KeyRefused) as error:
        _fail(str(error), 1)
    except ValueError as error:  # bad input, such as a label too long
        _fail(str(error), 2)


@api_keys_app.command("create")
def create(merchant: MerchantId, label: Annotated[str, typer.Option("--label", help="A name for the key.")] = "",
           as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """A new secret key; the secret is printed this once (store it now)."""

    def work(paypos: App, uow: UnitOfWork) -> dict[str, Any]:
        return service.create(uow, merchant, label, paypos.clock())

    created = _run(data_dir, database_url, work)
    _show("New API key (the secret is shown once)", [created], [*_COLUMNS[:4], "secret"], as_json, created)


@api_keys_app.command("list")
def list_keys(merchant: MerchantId, as_json: JsonFlag = False, data_dir: DataDir = None,
              database_url: DatabaseUrl = None) -> None:
    """The merchant's keys, newest first (never a secret)."""
    rows, _ = _run(data_dir, database_url, lambda _p, uow: service.list_keys(uow, merchant), write=False)
    _show(f"API keys of {merchant}", rows, _COLUMNS, as_json)


@api_keys_app.command("revoke")
def revoke(merchant: MerchantId, key_id: Annotated[str, typer.Argument(help="The key id (api-keys list).")],
           as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Revoke a key at once (the merchant's last active key is refused)."""

    def work(paypos: App, uow: UnitOfWork) -> dict[str, Any]:
        return service.revoke(uow, merchant, key_id, paypos.clock())

    revoked = _run(data_dir, database_url, work)
    _show("Revoked API key", [revoked], _COLUMNS, as_json, revoked)


# Onboarding and the merchant's lifecycle (issue 7) live in their own module.
from paypos.entrypoints.cli_onboarding import register_lifecycle_commands  # noqa: E402

register_lifecycle_commands(merchants_app)
