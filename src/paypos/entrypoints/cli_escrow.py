"""`paypos escrow ...` (the operator's side of escrow) and `paypos sandbox dispute ...` (the
sandbox issuer's chargebacks); docs/escrow-disputes.md.

- ``paypos escrow release-due [--as-of 2026-12-14T12:00:00Z]``: release shipped escrow
  requests whose auto-release time has come (as ``paypos serve``'s sweep does), optionally as
  of a later moment (a sandbox test clock; never earlier than now).
- ``paypos escrow decide pr_... --refund|--release``: the operator decides a refund request
  the merchant rejected. The CLI is the operator's tool: whoever runs it holds the database.
- ``paypos sandbox dispute open --payment pay_... --reason 10.4 [--amount N]`` and
  ``paypos sandbox dispute close dp_... --outcome won|lost``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from paypos.adapters.db.uow import UnitOfWork
from paypos.bootstrap import App
from paypos.domain.dispute import REASON_CODES, DisputeError, IllegalDisputeTransition
from paypos.domain.payment_request import IllegalTransition, PaymentRequestError
from paypos.entrypoints.cli_prepaid import DatabaseUrl, DataDir, _app, _fail
from paypos.services import disputes, escrow
from paypos.services import online_payments as payments
from paypos.services.payment_requests import NotFound

escrow_app = typer.Typer(help="Escrow of online payment requests: auto-release, the operator's decisions.",
                         no_args_is_help=True)
dispute_app = typer.Typer(help="The sandbox issuer's disputes (chargebacks) of card payments.", no_args_is_help=True)


class Outcome(StrEnum):
    WON = "won"
    LOST = "lost"


AsOf = Annotated[str | None, typer.Option(
    "--as-of", help="Sandbox test clock: release as of this later moment (ISO 8601, e.g. 2026-12-14T12:00:00Z; "
                    "no zone means UTC). Never earlier than now.")]


@escrow_app.command("release-due")
def release_due(as_of: AsOf = None, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Release shipped escrow requests past their auto-release time; prints the ids as JSON."""
    def work(paypos: App, uow: UnitOfWork) -> Any:
        return {"released": escrow.release_due(uow, _moment(paypos, as_of))}

    _print(_run(data_dir, database_url, work))


@escrow_app.command("decide")
def decide(request_id: Annotated[str, typer.Argument(help="A refund_disputed payment request (pr_...).")],
           refund: Annotated[bool, typer.Option("--refund/--release",
                                                help="Refund the buyer in full, or release to the merchant.")],
           data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """The operator decides a refund request the merchant rejected."""
    decision = "refund" if refund else "release"
    _print(_run(data_dir, database_url, lambda paypos, uow: escrow.operator_decide(
        uow, paypos.vault, request_id, decision, now=paypos.clock())))


@dispute_app.command("open")
def open_dispute(payment: Annotated[str, typer.Option("--payment", help="A captured card payment (pay_...).")],
                 reason: Annotated[str, typer.Option("--reason", help="Visa reason code: " + ", ".join(REASON_CODES))],
                 amount: Annotated[int | None, typer.Option("--amount", help="Minor units; default all that is left.")]
                 = None, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Open a dispute (chargeback) as the sandbox issuer; prints it as JSON."""
    _print(_run(data_dir, database_url, lambda paypos, uow: disputes.to_json(disputes.open_dispute(
        uow, payment, reason, amount, now=paypos.clock()))))


@dispute_app.command("close")
def close_dispute(dispute_id: Annotated[str, typer.Argument(help="The dispute (dp_...).")],
                  outcome: Annotated[Outcome, typer.Option("--outcome")],
                  data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Decide a dispute as the sandbox issuer: won (back to the merchant) or lost (to the card)."""
    _print(_run(data_dir, database_url, lambda paypos, uow: disputes.to_json(disputes.close_dispute(
        uow, dispute_id, outcome.value, now=paypos.clock()))))


def _run(data_dir: Any, database_url: Any, work: Callable[[App, UnitOfWork], Any]) -> Any:
    """One use case in one committed unit of work; a refusal is one line on stderr (exit 1, bad input 2)."""
    with _app(data_dir, database_url) as paypos:
        try:
            with paypos.uow() as uow:
                result = work(paypos, uow)
                uow.commit()
            return result
        except (PaymentRequestError, DisputeError) as error:
            _fail(f"{error.field}: {error}", 2)
        except (IllegalTransition, IllegalDisputeTransition, disputes.NotDisputable,
                payments.InsufficientBalance) as error:
            _fail(str(error), 1)
        except (NotFound, disputes.DisputeNotFound) as error:
            _fail(str(error), 1)


def _moment(paypos: App, as_of: str | None) -> datetime:
    now = paypos.clock()
    if as_of is None:
        return now
    try:
        moment = datetime.fromisoformat(as_of)
    except ValueError:
        _fail("--as-of must be an ISO 8601 date and time, e.g. 2026-12-14T12:00:00Z", 2)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment < now:
        _fail("--as-of must not be before now", 2)
    return moment


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
