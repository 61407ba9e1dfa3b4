"""Pricing plans in the console (issue 7, docs/console.md, docs/pricing.md).

Operator (finance, admin): *Pricing plans* lists the plans; a plan's page shows its rates per
method (minimum, cap), fixed and monthly fees, device model and promotions, and assigns it to a
merchant from an instant; a merchant's page shows its assignment history. *New plan* is a form
read into the plan's JSON form and validated by ``domain.pricing.plan_from_json``; a bad field is
shown next to it (422) and nothing is stored. Creating goes through ``services.pricing.create_plan``
and assigning through ``services.pricing.assign`` (both audit-logged there, with the console user
as the actor; both idempotent: the same plan or assignment again changes nothing).

Merchant (owner): *Pricing* shows the plan in force now and the merchant's history, read-only.
Money in the forms is typed in major units (``12.34``) and converted exactly; rates are whole
basis points.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.responses import Response

from paypos.domain.console_roles import Permission as P
from paypos.domain.money import MoneyError, parse_major
from paypos.domain.pricing import DeviceKind, PaymentMethod, PricingError, PricingPlan, plan_from_json, plan_to_json
from paypos.entrypoints.console.core import PREFIX, Ctx, NotFound, page
from paypos.services import pricing

METHODS = tuple(m.value for m in PaymentMethod)
DEVICE_KINDS = tuple(k.value for k in DeviceKind)
# The device model's money fields and its one count (days), as the form names them.
_DEVICE_MONEY = ("threshold_minor", "device_fee_minor", "deposit_minor", "target_minor", "price_minor")


# --- reading the form ------------------------------------------------------------------------------------

def _minor(text: str, name: str, currency: str) -> int:
    try:
        value = parse_major(text.strip() or "0", currency).amount_minor
    except MoneyError as error:
        raise PricingError(f"{name}: {error}", field=name) from None
    if value < 0:
        raise PricingError(f"{name}: never negative", field=name)
    return value


def _whole(text: str, name: str) -> int:
    text = text.strip() or "0"
    if not text.isdigit() or len(text) > 9:
        raise PricingError(f"{name}: a whole number", field=name)
    return int(text)


def _instant(text: str, name: str) -> datetime:
    """"YYYY-MM-DD" (midnight UTC) or "YYYY-MM-DDTHH:MM" / "YYYY-MM-DD HH:MM" (UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        raise PricingError(f"{name}: a UTC day YYYY-MM-DD or time YYYY-MM-DD HH:MM", field=name) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def plan_from_form(form: dict[str, str]) -> PricingPlan:
    """The *New plan* form → a validated plan. Per method ``rate_<m>`` (bps), ``min_<m>`` and
    ``cap_<m>`` (major units; an empty cap is no cap); ``fixed_fee``, ``monthly_fee``; the device
    ``device_kind`` with its fields; one optional promotion (``promo_name``, ``promo_rate`` bps for
    every method, ``promo_ends`` a UTC day or time). Raises PricingError naming the field."""
    currency = form.get("currency", "").strip().upper()
    if currency:
        try:
            parse_major("0", currency)
        except MoneyError:
            raise PricingError("currency: an ISO 4217 alpha code such as CNY", field="currency") from None
    code = currency or "CNY"
    rates: dict[str, Any] = {}
    for method in METHODS:
        cap_text = form.get(f"cap_{method}", "").strip()
        rates[method] = {"rate_bps": _whole(form.get(f"rate_{method}", ""), f"rate_{method}"),
                         "min_minor": _minor(form.get(f"min_{method}", ""), f"min_{method}", code),
                         "cap_minor": _minor(cap_text, f"cap_{method}", code) if cap_text else None}
    kind = form.get("device_kind", "none").strip() or "none"
    device: dict[str, Any] = {"kind": kind}
    for name in _DEVICE_MONEY:
        device[name] = _minor(form.get(f"device_{name}", ""), f"device.{name}", code)
    device["window_days"] = _whole(form.get("device_window_days", ""), "device.window_days")
    promotions = []
    if form.get("promo_name", "").strip():
        rate = _whole(form.get("promo_rate", ""), "promotion.rate_bps")
        ends = _instant(form.get("promo_ends", ""), "promotion.ends_at")
        promotions.append({"name": form["promo_name"].strip(), "rates_bps": {m: rate for m in METHODS},
                           "ends_at": ends.isoformat()})
    return plan_from_json({
        "id": form.get("id", "").strip(), "name": form.get("name", "").strip(), "currency": currency,
        "rates": rates, "fixed_fee_minor": _minor(form.get("fixed_fee", ""), "fixed_fee_minor", code),
        "monthly_fee_minor": _minor(form.get("monthly_fee", ""), "monthly_fee_minor", code),
        "device": device, "promotions": promotions})


# --- operator pages ----------------------------------------------------------------------------------------

def _plans_view(ctx: Ctx, *, errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                status: int = 200) -> Response:
    with ctx.app.uow(write=False) as uow:
        plans = uow.pricing.list_plans()
    return ctx.render("pricing_plans.html", http_status=status, plans=plans, errors=errors or {},
                      values=values or {}, methods=METHODS, device_kinds=DEVICE_KINDS)


@page("/ops/pricing", permission=P.OPS_PRICING_MANAGE, nav="Pricing plans", section="operator")
def plans(ctx: Ctx) -> Response:
    return _plans_view(ctx)


@page("/ops/pricing", methods=("POST",), permission=P.OPS_PRICING_MANAGE, section="operator")
def plan_create(ctx: Ctx) -> Response:
    """Create a plan (immutable; the same plan again is a no-op, other terms under its id 422)."""
    values = {k: v[:200] for k, v in ctx.form.items() if k != "csrf_token"}
    try:
        plan = plan_from_form(values)
        with ctx.app.uow() as uow:
            _, created = pricing.create_plan(uow, plan, ctx.now(), ctx.actor)
            uow.commit()
    except PricingError as error:
        return _plans_view(ctx, errors={error.field: str(error)}, values=values, status=422)
    note = f"Plan {plan.id} created." if created else f"Plan {plan.id} already exists with these terms."
    return ctx.redirect(f"{PREFIX}/ops/pricing/plans/{plan.id}", note)


def _plan_view(ctx: Ctx, plan_id: str, *, errors: dict[str, str] | None = None,
               values: dict[str, str] | None = None, status: int = 200) -> Response:
    with ctx.app.uow(write=False) as uow:
        plan = uow.pricing.get_plan(plan_id[:40])
        if plan is None:
            raise NotFound()
        assigned = [a for a in uow.pricing.assignments() if a.plan_id == plan.id]
    return ctx.render("pricing_plan.html", http_status=status, plan=plan, spec=plan_to_json(plan),
                      assigned=assigned, errors=errors or {}, values=values or {}, now=ctx.now())


@page("/ops/pricing/plans/{plan_id}", permission=P.OPS_PRICING_MANAGE, section="operator",
      params={"plan_id": "pricing_plan"})
def plan_detail(ctx: Ctx) -> Response:
    return _plan_view(ctx, ctx.path_param("plan_id"))


@page("/ops/pricing/plans/{plan_id}/assign", methods=("POST",), permission=P.OPS_PRICING_MANAGE,
      section="operator", params={"plan_id": "pricing_plan"})
def plan_assign(ctx: Ctx) -> Response:
    """Assign the plan to ``merchant`` from ``effective_from`` (a UTC day or time; empty: now)."""
    plan_id = ctx.path_param("plan_id")
    values = {"merchant": ctx.field("merchant").strip()[:32], "effective_from": ctx.field("effective_from")[:32]}
    try:
        with ctx.app.uow() as uow:
            if uow.pricing.get_plan(plan_id[:40]) is None:
                raise NotFound()
            if not values["merchant"]:
                raise PricingError("merchant: give the merchant id", field="merchant")
            text = values["effective_from"].strip()
            effective = _instant(text, "from") if text else ctx.now()
            assignment, created = pricing.assign(uow, values["merchant"], plan_id, effective, ctx.now(), ctx.actor)
            uow.commit()
    except PricingError as error:
        field = "effective_from" if error.field == "from" else error.field
        return _plan_view(ctx, plan_id, errors={field: str(error)}, values=values, status=422)
    note = (f"Merchant {assignment.merchant_id} is on plan {plan_id} from "
            f"{assignment.effective_from.astimezone(UTC):%Y-%m-%d %H:%M} UTC.")
    return ctx.redirect(f"{PREFIX}/ops/pricing/merchants/{assignment.merchant_id}",
                        note if created else "This assignment was already made.")


@page("/ops/pricing/merchants/{merchant_id}", permission=P.OPS_PRICING_MANAGE, section="operator",
      params={"merchant_id": "merchant"})
def merchant_pricing(ctx: Ctx) -> Response:
    return _history_view(ctx, ctx.path_param("merchant_id"), operator=True)


# --- merchant page -----------------------------------------------------------------------------------------

@page("/pricing", permission=P.PRICING_VIEW, nav="Pricing")
def own_pricing(ctx: Ctx) -> Response:
    return _history_view(ctx, ctx.merchant_id, operator=False)


def _history_view(ctx: Ctx, merchant_id: str, *, operator: bool) -> Response:
    with ctx.app.uow(write=False) as uow:
        merchant = uow.registry.get_merchant(merchant_id[:32])
        if merchant is None:
            raise NotFound()
        current = pricing.plan_at(uow, merchant.merchant_id, merchant.currency, ctx.now())
        history = uow.pricing.assignments(merchant.merchant_id)
    return ctx.render("pricing_merchant.html", merchant=merchant, plan=current, spec=plan_to_json(current),
                      history=list(reversed(history)), operator=operator, now=ctx.now())
