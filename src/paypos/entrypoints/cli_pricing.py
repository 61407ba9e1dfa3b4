"""`paypos pricing ...` — pricing plans, merchant assignments, quotes and monthly billing
(docs/pricing.md). The operator's tool: whoever runs it holds the database.

- ``paypos pricing plans create --id ID --name NAME --rate 0.60 [...]`` or ``--file plan.json``;
  ``plans list``; ``plans show ID``.
- ``paypos pricing assign --merchant M --plan ID [--from 2027-01-01T00:00:00Z]``;
  ``paypos pricing assignments --merchant M`` (the history).
- ``paypos pricing quote --merchant M --method contactless --amount 100.00 [--at ...]``.
- ``paypos pricing bill --month 2026-12`` (a second run charges nothing twice).

Amounts are major units ("0.50") in the plan's or merchant's currency; rates are basis points
(60 = 0.60 %). Refusals print ``error: ...`` on stderr and exit 1; bad input exits 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
import typer
from rich.progress import Progress

from paypos.adapters.db.uow import UnitOfWork
from paypos.bootstrap import App
from paypos.domain.money import MoneyError, parse_major
from paypos.domain.pricing import DeviceKind, PaymentMethod, PricingError, plan_from_json, plan_to_json
from paypos.entrypoints.cli_prepaid import DatabaseUrl, DataDir, JsonFlag, _fail, _show, in_unit_of_work
from paypos.services import audit
from paypos.services import pricing as service

T = TypeVar("T")
pricing_app = typer.Typer(help="Pricing plans: create, assign to merchants, quote a fee, bill a month.",
                          no_args_is_help=True)
plans_app = typer.Typer(help="Pricing plans (immutable once created): create, list, show.", no_args_is_help=True)
pricing_app.add_typer(plans_app, name="plans")

_METHODS = ", ".join(m.value for m in PaymentMethod)
MerchantId = Annotated[str, typer.Option("--merchant", help="The merchant id (paypos sandbox merchants).")]
Moment = Annotated[str | None, typer.Option(
    "--at", help="The moment to price at (ISO 8601, e.g. 2027-01-01T00:00:00Z; no zone means UTC); default now.")]
_CHARGE_COLUMNS = ["id", "amount_minor", "currency", "status"]


def _run(data_dir: Path | None, database_url: str | None, work: Callable[[App, UnitOfWork], T], *,
         write: bool = True) -> T:
    """One use case in one unit of work (committed when it writes); bad input exits 2, a refusal 1."""
    try:
        return in_unit_of_work(data_dir, database_url, work, write=write)
    except PricingError as error:
        _fail(str(error), 1 if error.field in ("merchant", "plan", "id", "from") else 2)
    except MoneyError as error:
        _fail(f"amount: {error}", 2)
    except (service.ConcurrentCharge, sa.exc.IntegrityError):
        _fail("another run changed the same records meanwhile: nothing was written, run it again", 1)


# --- plans ----------------------------------------------------------------------------------------


@plans_app.command("create")
def create_plan(
    plan_id: Annotated[str | None, typer.Option("--id", help="Plan id: a-z 0-9 _ - (up to 32).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="A name people read.")] = None,
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 alpha code.")] = "CNY",
    rate: Annotated[int | None, typer.Option("--rate", help="Basis points for every method (60 = 0.60 %).")] = None,
    method_rate: Annotated[list[str] | None, typer.Option(
        "--method-rate", help=f"METHOD=BPS, overrides --rate for one method (repeatable). Methods: {_METHODS}.")]
    = None,
    minimum: Annotated[list[str] | None, typer.Option(
        "--min", help="METHOD=AMOUNT (or *=AMOUNT): the least rate part of a fee, major units (repeatable).")] = None,
    cap: Annotated[list[str] | None, typer.Option(
        "--cap", help="METHOD=AMOUNT (or *=AMOUNT): the most rate part of a fee, major units (repeatable).")] = None,
    fixed_fee: Annotated[str, typer.Option("--fixed-fee", help="Added to every payment's fee, major units.")] = "0",
    monthly_fee: Annotated[str, typer.Option("--monthly-fee", help="Billed by `pricing bill`, major units.")] = "0",
    device: Annotated[DeviceKind, typer.Option("--device", help="The device model.")] = DeviceKind.NONE,
    threshold: Annotated[str, typer.Option("--threshold", help="free_with_threshold: the sales volume.")] = "0",
    window_days: Annotated[int, typer.Option(
        "--window-days", help="free_with_threshold / deposit: days after assignment to reach it.")] = 0,
    device_fee: Annotated[str, typer.Option("--device-fee", help="free_with_threshold: charged if missed.")] = "0",
    deposit: Annotated[str, typer.Option("--deposit", help="deposit: taken when the plan is assigned.")] = "0",
    target: Annotated[str, typer.Option("--target", help="deposit: the sales volume that returns it.")] = "0",
    price: Annotated[str, typer.Option("--price", help="buyout: the device's price.")] = "0",
    promotion: Annotated[list[str] | None, typer.Option(
        "--promotion", help="NAME,METHOD=BPS[,METHOD=BPS...],until=ISO-8601 (repeatable): rates until the end.")]
    = None,
    spec_file: Annotated[Path | None, typer.Option(
        "--file", help="A plan as JSON (the shape `plans show --json` prints); other plan options are ignored.")]
    = None,
    as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None,
) -> None:
    """Create a plan (the same plan again is a no-op; other terms under an existing id: exit 1)."""
    if spec_file is not None:
        try:
            spec = json.loads(spec_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            _fail(f"--file: {error}", 2)
    else:
        if plan_id is None or name is None or rate is None:
            _fail("--id, --name and --rate are needed (or --file)", 2)
        spec = _spec_from_options(plan_id, name, currency, rate, method_rate or [], minimum or [], cap or [],
                                  {"fixed_fee": fixed_fee, "monthly_fee": monthly_fee, "threshold": threshold,
                                   "device_fee": device_fee, "deposit": deposit, "target": target, "price": price},
                                  device, window_days, promotion or [])
    try:
        plan = plan_from_json(spec)
    except PricingError as error:
        _fail(str(error), 2)

    def work(paypos: App, uow: UnitOfWork) -> dict[str, Any]:
        stored, created = service.create_plan(uow, plan, paypos.clock(), audit.cli_actor())
        return {**plan_to_json(stored), "created": created}

    result = _run(data_dir, database_url, work)
    _show_plan(result, as_json)


@plans_app.command("list")
def list_plans(as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Every plan, by id."""
    def work(_paypos: App, uow: UnitOfWork) -> list[dict[str, Any]]:
        return [{**_summary(plan_to_json(plan)), "created_at": _iso(at)} for plan, at in uow.pricing.list_plans()]

    rows = _run(data_dir, database_url, work, write=False)
    _show("Pricing plans", rows, ["id", "name", "currency", "fixed_fee_minor", "monthly_fee_minor", "device",
                                  "promotions", "created_at"], as_json)


@plans_app.command("show")
def show_plan(plan_id: Annotated[str, typer.Argument(help="The plan id (plans list).")], as_json: JsonFlag = False,
              data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """One plan: its rates, mins and caps per method, fees, device model and promotions."""
    def work(_paypos: App, uow: UnitOfWork) -> dict[str, Any]:
        plan = uow.pricing.get_plan(plan_id)
        if plan is None:
            raise PricingError(f"no plan {plan_id!r}", field="plan")
        return plan_to_json(plan)

    _show_plan(_run(data_dir, database_url, work, write=False), as_json)


# --- assignments, quotes, billing -----------------------------------------------------------------


@pricing_app.command("assign")
def assign(merchant: MerchantId,
           plan: Annotated[str, typer.Option("--plan", help="The plan id (plans list).")],
           effective_from: Annotated[str | None, typer.Option(
               "--from", help="When it takes effect (ISO 8601; no zone means UTC); default now, never earlier.")]
           = None,
           as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Put a merchant on a plan from a moment on (history kept; the same assignment again is a no-op)."""
    def work(paypos: App, uow: UnitOfWork) -> dict[str, Any]:
        now = paypos.clock()
        start = now if effective_from is None else _moment(effective_from, "--from")
        assignment, created = service.assign(uow, merchant, plan, start, now, audit.cli_actor())
        return {**_assignment(assignment), "created": created}

    row = _run(data_dir, database_url, work)
    _show("Pricing assignment", [row], ["id", "merchant_id", "plan_id", "effective_from", "created"], as_json, row)


@pricing_app.command("assignments")
def assignments(merchant: MerchantId, as_json: JsonFlag = False, data_dir: DataDir = None,
                database_url: DatabaseUrl = None) -> None:
    """A merchant's plan history, oldest first (none: the standard plan)."""
    rows = _run(data_dir, database_url, lambda _p, uow: [_assignment(a) for a in uow.pricing.assignments(merchant)],
                write=False)
    _show(f"Pricing plans of {merchant}", rows, ["id", "plan_id", "effective_from", "actor", "created_at"], as_json)


@pricing_app.command("quote")
def quote(merchant: MerchantId,
          method: Annotated[str, typer.Option("--method", help=f"One of {_METHODS}.")],
          amount: Annotated[str, typer.Option("--amount", help="Amount in major units, e.g. 100.00.")],
          at: Moment = None, as_json: JsonFlag = False, data_dir: DataDir = None,
          database_url: DatabaseUrl = None) -> None:
    """The fee the merchant's plan charges for one payment (as authorization would post it)."""
    def work(paypos: App, uow: UnitOfWork) -> dict[str, Any]:
        found = uow.registry.get_merchant(merchant)
        if found is None:
            raise PricingError(f"no merchant {merchant!r}", field="merchant")
        moment = paypos.clock() if at is None else _moment(at, "--at")
        return service.quote(uow, merchant, method, parse_major(amount, found.currency).amount_minor, moment)

    row = _run(data_dir, database_url, work, write=False)
    _show("Fee quote", [row], ["merchant_id", "plan_id", "method", "amount_minor", "rate_bps", "fee_minor",
                               "currency"], as_json, row)


@pricing_app.command("bill")
def bill(month: Annotated[str, typer.Option("--month", help="The month to bill, YYYY-MM.")],
         as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Charge monthly and device fees, take and return deposits; retry what is owed. Idempotent."""
    def work(paypos: App, uow: UnitOfWork) -> dict[str, Any]:
        with Progress(transient=True, disable=as_json) as progress:
            progress.add_task(f"billing {month}", total=None)
            return service.bill_month(uow, month, paypos.clock()).as_json()

    report = _run(data_dir, database_url, work)
    rows = [*report["posted"], *report["pending"]]
    _show(f"Billing {month}: {len(report['posted'])} posted, {len(report['pending'])} owed", rows,
          _CHARGE_COLUMNS, as_json, report)


# --- helpers --------------------------------------------------------------------------------------


def _spec_from_options(plan_id: str, name: str, currency: str, rate: int, method_rate: list[str],
                       minimum: list[str], cap: list[str], amounts: dict[str, str], device: DeviceKind,
                       window_days: int, promotions: list[str]) -> dict[str, Any]:
    minor = {key: _minor(value, currency, f"--{key.replace('_', '-')}") for key, value in amounts.items()}
    rates: dict[str, dict[str, Any]] = {m.value: {"rate_bps": rate} for m in PaymentMethod}
    for method, value in _pairs(method_rate, "--method-rate"):
        rates[method]["rate_bps"] = _int(value, "--method-rate")
    for option, key, pairs in (("--min", "min_minor", minimum), ("--cap", "cap_minor", cap)):
        for method, value in _pairs(pairs, option):
            for target in (rates if method == "*" else [method]):
                rates[target][key] = _minor(value, currency, option)
    spec_device: dict[str, Any] = {"kind": device.value}
    if device is DeviceKind.FREE_WITH_THRESHOLD:
        spec_device |= {"threshold_minor": minor["threshold"], "window_days": window_days,
                        "device_fee_minor": minor["device_fee"]}
    elif device is DeviceKind.DEPOSIT:
        spec_device |= {"deposit_minor": minor["deposit"], "target_minor": minor["target"],
                        "window_days": window_days}
    elif device is DeviceKind.BUYOUT:
        spec_device |= {"price_minor": minor["price"]}
    return {"id": plan_id, "name": name, "currency": currency, "rates": rates,
            "fixed_fee_minor": minor["fixed_fee"], "monthly_fee_minor": minor["monthly_fee"],
            "device": spec_device, "promotions": [_promotion(text) for text in promotions]}


def _pairs(items: list[str], option: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        method, sep, value = item.partition("=")
        if not sep or (method != "*" and method not in {m.value for m in PaymentMethod}):
            _fail(f"{option}: METHOD=VALUE with METHOD one of {_METHODS} (or *), not {item!r}", 2)
        if method == "*" and option == "--method-rate":
            _fail("--method-rate: name a method (--rate sets every method)", 2)
        pairs.append((method, value))
    return pairs


def _promotion(text: str) -> dict[str, Any]:
    name, *parts = text.split(",")
    rates, until = {}, None
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep:
            _fail(f"--promotion: NAME,METHOD=BPS,...,until=ISO-8601, not {text!r}", 2)
        if key == "until":
            until = _iso(_moment(value, "--promotion until"))
        else:
            rates[key] = _int(value, "--promotion")
    if until is None:
        _fail("--promotion: until=ISO-8601 is needed (promotions end)", 2)
    return {"name": name, "rates_bps": rates, "ends_at": until}


def _int(text: str, option: str) -> int:
    if not text.isdigit():
        _fail(f"{option}: basis points must be a whole number, not {text!r}", 2)
    return int(text)


def _minor(text: str, currency: str, option: str) -> int:
    try:
        return parse_major(text, currency).amount_minor
    except MoneyError as error:
        _fail(f"{option}: {error}", 2)


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        _fail(f"{option} must be an ISO 8601 date and time, e.g. 2027-01-01T00:00:00Z", 2)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _summary(plan: dict[str, Any]) -> dict[str, Any]:
    return {**plan, "device": plan["device"]["kind"], "promotions": len(plan["promotions"])}


def _assignment(assignment: Any) -> dict[str, Any]:
    return {"id": assignment.id, "merchant_id": assignment.merchant_id, "plan_id": assignment.plan_id,
            "effective_from": _iso(assignment.effective_from), "actor": assignment.actor,
            "created_at": _iso(assignment.created_at)}


def _show_plan(plan: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _show("", [], [], True, plan)
        return
    rows = [{"method": method, **price} for method, price in plan["rates"].items()]
    _show(f"Plan {plan['id']} — {plan['name']} ({plan['currency']}); fixed fee {plan['fixed_fee_minor']}, "
          f"monthly fee {plan['monthly_fee_minor']} (minor units); device {json.dumps(plan['device'])}",
          rows, ["method", "rate_bps", "min_minor", "cap_minor"], False)
    if plan["promotions"]:
        _show("Promotions", [{**p, "rates_bps": json.dumps(p["rates_bps"])} for p in plan["promotions"]],
              ["name", "rates_bps", "ends_at"], False)
