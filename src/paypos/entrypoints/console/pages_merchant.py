"""The merchant's pages: dashboard, transactions (+ detail, refund), API keys, webhooks, team,
disputes. Every lookup is scoped to ``ctx.merchant_id``: another merchant's id is a 404."""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from fastapi.responses import Response

from paypos import limits
from paypos.adapters.db.console import SqlConsoleStore
from paypos.domain.console_roles import Permission as P
from paypos.domain.console_roles import Role, refund_allowance_minor
from paypos.domain.dispute import DisputeError, IllegalDisputeTransition
from paypos.domain.money import MoneyError, parse_major
from paypos.domain.payment_request import IllegalTransition, PaymentRequestError
from paypos.entrypoints.console import charts
from paypos.entrypoints.console.core import PREFIX, Ctx, NotFound, format_money, page
from paypos.services import api_keys, audit, console_queries, disputes, online_payments, webhooks
from paypos.services import console_auth as auth

_FORM_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
_STATUSES = {"online": ("succeeded", "authorized", "requires_challenge", "failed", "canceled"),
             "card_present": ("approved", "declined", "reversed", "completed")}


# --- dashboard ---------------------------------------------------------------------------------------

@page("/dashboard", permission=P.DASHBOARD_VIEW, nav="Dashboard")
def dashboard(ctx: Ctx) -> Response:
    with ctx.app.uow(write=False) as uow:
        data = console_queries.dashboard(uow, ctx.merchant_id, ctx.now())
    code = data.currency

    def label(value: int) -> str:
        return format_money(value, code)

    hourly = charts.bar_chart([(f"{h:02d}", v) for h, v in enumerate(data.today_by_hour)],
                              title="Today's sales by hour (UTC)", value_label=label, label_every=3)
    daily = charts.bar_chart([(day[5:], v) for day, v in data.week_by_day], title="Sales by day, last 7 days",
                             value_label=label)
    methods = charts.bar_chart([(m.replace("_", " "), v) for m, v in data.by_method.items()],
                               title="Sales by method, last 7 days", value_label=label, width=420)
    return ctx.render("dashboard.html", data=data, hourly=hourly, daily=daily, methods=methods)


# --- transactions ------------------------------------------------------------------------------------

def _date(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC) if text else None
    except ValueError:
        return None


@page("/transactions", permission=P.SALES_VIEW, nav="Transactions")
def transactions(ctx: Ctx) -> Response:
    source = ctx.query("source", "online")
    source = source if source in _STATUSES else "online"
    status = ctx.query("status")
    status = status if status in _STATUSES[source] else ""
    since, until = _date(ctx.query("since")), _date(ctx.query("until"))
    try:
        number = max(1, min(int(ctx.query("page", "1")), 10_000))
    except ValueError:
        number = 1
    lister = console_queries.online_sales if source == "online" else console_queries.card_present_sales
    with ctx.app.uow(write=False) as uow:
        found = lister(uow, ctx.merchant_id, status=status or None, since=since,
                       until=until + timedelta(days=1) if until else None, page=number, rows=limits.console_page_rows)
    return ctx.render("transactions.html", sales=found, source=source, status=status, statuses=_STATUSES[source],
                      since=ctx.query("since") if since else "", until=ctx.query("until") if until else "")


def _payment_view(ctx: Ctx, payment_id: str, *, error: str | None = None, status: int = 200) -> Response:
    with ctx.app.uow(write=False) as uow:
        try:
            payment = online_payments.get_payment(uow, ctx.merchant_id, payment_id)
        except online_payments.PaymentNotFound:
            raise NotFound() from None
        refunds = online_payments.list_refunds(uow, ctx.merchant_id, limit=50, cursor=None, payment_id=payment.id).data
        user = SqlConsoleStore(uow.connection).get_user(ctx.user.id) or ctx.user
    allowance = refund_allowance_minor(Role(user.role), payment.refundable_minor, user.refund_limit_minor)
    return ctx.render("payment.html", http_status=status, payment=payment, refunds=refunds, allowance=allowance,
                      can_refund=ctx.can(P.SALES_REFUND) and allowance > 0 and payment.status.value == "succeeded",
                      form_key=secrets.token_urlsafe(24), error=error)


@page("/payments/{payment_id}", permission=P.SALES_VIEW, params={"payment_id": "payment"})
def payment_detail(ctx: Ctx) -> Response:
    return _payment_view(ctx, ctx.path_param("payment_id"))


@page("/payments/{payment_id}/refund", methods=("POST",), permission=P.SALES_REFUND, params={"payment_id": "payment"})
def payment_refund(ctx: Ctx) -> Response:
    """One refund per form (its ``form_key``): a double submit answers the first refund."""
    payment_id, key = ctx.path_param("payment_id"), ctx.field("form_key")
    back = f"{PREFIX}/payments/{payment_id}"
    if not _FORM_KEY.fullmatch(key):
        return _payment_view(ctx, payment_id, error="The form is incomplete: reload the page.", status=422)
    app = ctx.app
    with app.uow() as uow:
        store = SqlConsoleStore(uow.connection)
        done = store.form_result(key)
        if done is not None:
            return ctx.redirect(back, f"Refund {json.loads(done)['refund']} was already made.")
        try:
            payment = online_payments.get_payment(uow, ctx.merchant_id, payment_id)
        except online_payments.PaymentNotFound:
            raise NotFound() from None
        try:
            amount = parse_major(ctx.field("amount").strip(), payment.currency).amount_minor
        except MoneyError as error:
            return _payment_view(ctx, payment_id, error=f"amount: {error}", status=422)
        user = store.get_user(ctx.user.id) or ctx.user
        allowance = refund_allowance_minor(Role(user.role), payment.refundable_minor, user.refund_limit_minor)
        if amount <= 0 or amount > allowance:
            return _payment_view(ctx, payment_id, status=422, error=(
                f"You may refund 0.01 up to {format_money(allowance, payment.currency)} of this payment."))
        try:
            item = online_payments.refund(uow, app.vault, ctx.merchant_id, payment.payment_request_id, amount,
                                          ctx.field("reason")[:200] or None, now=ctx.now())
        except (PaymentRequestError, IllegalTransition, online_payments.InsufficientBalance) as error:
            return _payment_view(ctx, payment_id, error=str(error), status=422)
        audit.record(uow, ctx.now(), ctx.actor, "payment.refund", "payment", payment.id, merchant_id=ctx.merchant_id,
                     details={"refund": item.id, "amount_minor": item.amount_minor, "currency": item.currency})
        try:  # the form's key is the lock: of two submits racing, the second rolls back whole
            store.add_form_result(key, ctx.user.id, json.dumps({"refund": item.id}), ctx.now())
            uow.commit()
        except sa.exc.IntegrityError:
            return ctx.redirect(back, "This refund was already made.")
    return ctx.redirect(back, f"Refunded {format_money(item.amount_minor, item.currency)} ({item.id}).")


@page("/card-sales/{rrn}", permission=P.SALES_VIEW, params={"rrn": "card_sale"})
def card_sale_detail(ctx: Ctx) -> Response:
    with ctx.app.uow(write=False) as uow:
        sale = console_queries.card_present_sale(uow, ctx.merchant_id, ctx.path_param("rrn"))
    if sale is None:
        raise NotFound()
    return ctx.render("card_sale.html", sale=sale)


# --- API keys ----------------------------------------------------------------------------------------

@page("/api-keys", permission=P.KEYS_MANAGE, nav="API keys")
def keys_page(ctx: Ctx, created: dict[str, str] | None = None, error: str | None = None) -> Response:
    with ctx.app.uow(write=False) as uow:
        keys, _more = api_keys.list_keys(uow, ctx.merchant_id)
    return ctx.render("api_keys.html", keys=keys, created=created, error=error)


@page("/api-keys", methods=("POST",), permission=P.KEYS_MANAGE)
def keys_create(ctx: Ctx) -> Response:
    """The new secret is shown on this answer only (never stored, never in a redirect)."""
    try:
        with ctx.app.uow() as uow:
            created = api_keys.create(uow, ctx.merchant_id, ctx.field("label")[:200].strip(), ctx.now())
            audit.record(uow, ctx.now(), ctx.actor, "api_key.create", "api_key", created["id"],
                         merchant_id=ctx.merchant_id)
            uow.commit()
    except (ValueError, api_keys.KeyRefused) as error:
        return keys_page(ctx, error=str(error))
    return keys_page(ctx, created=created)


@page("/api-keys/{key_id}/revoke", methods=("POST",), permission=P.KEYS_MANAGE, params={"key_id": "api_key"})
def keys_revoke(ctx: Ctx) -> Response:
    key_id = ctx.path_param("key_id")
    try:
        with ctx.app.uow() as uow:
            api_keys.revoke(uow, ctx.merchant_id, key_id, ctx.now())
            audit.record(uow, ctx.now(), ctx.actor, "api_key.revoke", "api_key", key_id, merchant_id=ctx.merchant_id)
            uow.commit()
    except api_keys.KeyNotFound:
        raise NotFound() from None
    except api_keys.KeyRefused as error:
        return ctx.redirect(PREFIX + "/api-keys", str(error))
    return ctx.redirect(PREFIX + "/api-keys", f"Revoked {key_id}.")


# --- webhooks ----------------------------------------------------------------------------------------

@page("/webhooks", permission=P.WEBHOOKS_MANAGE, nav="Webhooks")
def webhooks_page(ctx: Ctx) -> Response:
    with ctx.app.uow(write=False) as uow:
        endpoints = webhooks.list_endpoints(uow, ctx.merchant_id)
        recent = webhooks.list_events(uow, ctx.merchant_id, limit=limits.console_page_rows).data
    return ctx.render("webhooks.html", endpoints=endpoints, events=recent)


@page("/webhooks/events/{event_id}", permission=P.WEBHOOKS_MANAGE, params={"event_id": "event"})
def webhook_event(ctx: Ctx) -> Response:
    with ctx.app.uow(write=False) as uow:
        try:
            event = webhooks.get_event(uow, ctx.merchant_id, ctx.path_param("event_id"))
            deliveries = webhooks.deliveries_of(uow, ctx.merchant_id, event.id)
        except webhooks.NotFound:
            raise NotFound() from None
    return ctx.render("webhook_event.html", event=event, deliveries=deliveries)


@page("/webhooks/events/{event_id}/redeliver", methods=("POST",), permission=P.WEBHOOKS_MANAGE,
      params={"event_id": "event"})
def webhook_redeliver(ctx: Ctx) -> Response:
    event_id = ctx.path_param("event_id")
    try:
        with ctx.app.uow() as uow:
            webhooks.redeliver(uow, ctx.merchant_id, event_id, None, ctx.now())
            audit.record(uow, ctx.now(), ctx.actor, "webhook_event.redeliver", "event", event_id,
                         merchant_id=ctx.merchant_id)
            uow.commit()
    except webhooks.NotFound:
        raise NotFound() from None
    except webhooks.Refused as error:
        return ctx.redirect(f"{PREFIX}/webhooks/events/{event_id}", str(error))
    return ctx.redirect(f"{PREFIX}/webhooks/events/{event_id}", "Queued for delivery again.")


# --- team --------------------------------------------------------------------------------------------

@page("/team", permission=P.TEAM_MANAGE, nav="Team")
def team(ctx: Ctx, error: str | None = None, status: int = 200) -> Response:
    with ctx.app.uow(write=False) as uow:
        users = auth.list_users(uow, merchant_id=ctx.merchant_id)
    return ctx.render("team.html", http_status=status, users=users, error=error)


@page("/team", methods=("POST",), permission=P.TEAM_MANAGE)
def team_create(ctx: Ctx) -> Response:
    """An owner adds cashiers to its own merchant (never another owner, never an operator)."""
    try:
        with ctx.app.uow() as uow:
            code = uow.registry.get_merchant(ctx.merchant_id)
            limit = parse_major(ctx.field("refund_limit", "0").strip() or "0",
                                code.currency if code else "XXX").amount_minor
            auth.create_user(uow, email=ctx.field("email"), role=Role.CASHIER.value, password=ctx.field("password"),
                             now=ctx.now(), actor=ctx.actor, merchant_id=ctx.merchant_id,
                             display_name=ctx.field("display_name")[:200], refund_limit_minor=limit)
            uow.commit()
    except (auth.ConsoleError, auth.UserRefused, MoneyError) as error:
        return team(ctx, error=str(error), status=422)
    return ctx.redirect(PREFIX + "/team", "Cashier added.")


@page("/team/{user_id}/disable", methods=("POST",), permission=P.TEAM_MANAGE, params={"user_id": "user"})
def team_disable(ctx: Ctx) -> Response:
    with ctx.app.uow() as uow:
        try:
            user = auth.find_user(uow, ctx.path_param("user_id"), merchant_id=ctx.merchant_id, lock=True)
        except auth.UserNotFound:
            raise NotFound() from None
        if user.id == ctx.user.id:
            return ctx.redirect(PREFIX + "/team", "You cannot disable yourself.")
        auth.disable_user(uow, user, ctx.now(), ctx.actor)
        uow.commit()
    return ctx.redirect(PREFIX + "/team", f"{user.email} is disabled.")


# --- disputes ----------------------------------------------------------------------------------------

@page("/disputes", permission=P.DISPUTES_MANAGE, nav="Disputes")
def disputes_page(ctx: Ctx) -> Response:
    with ctx.app.uow(write=False) as uow:
        found = disputes.list_disputes(uow, ctx.merchant_id, limit=limits.disputes_page_size_max, cursor=None).data
    return ctx.render("disputes.html", disputes=found, operator=False)


@page("/disputes/{dispute_id}", permission=P.DISPUTES_MANAGE, params={"dispute_id": "dispute"})
def dispute_detail(ctx: Ctx, error: str | None = None, status: int = 200) -> Response:
    with ctx.app.uow(write=False) as uow:
        try:
            found = disputes.get(uow, ctx.merchant_id, ctx.path_param("dispute_id"))
        except disputes.DisputeNotFound:
            raise NotFound() from None
    return ctx.render("dispute.html", http_status=status, dispute=found, error=error)


@page("/disputes/{dispute_id}/evidence", methods=("POST",), permission=P.DISPUTES_MANAGE,
      params={"dispute_id": "dispute"})
def dispute_evidence(ctx: Ctx) -> Response:
    dispute_id = ctx.path_param("dispute_id")
    try:
        with ctx.app.uow() as uow:
            disputes.submit_evidence(uow, ctx.merchant_id, dispute_id, ctx.field("evidence"), now=ctx.now())
            audit.record(uow, ctx.now(), ctx.actor, "dispute.evidence", "dispute", dispute_id,
                         merchant_id=ctx.merchant_id)
            uow.commit()
    except disputes.DisputeNotFound:
        raise NotFound() from None
    except (DisputeError, IllegalDisputeTransition) as error:
        return dispute_detail(ctx, error=str(error), status=422)
    return ctx.redirect(f"{PREFIX}/disputes/{dispute_id}", "Evidence submitted.")
