"""The operator's pages: merchants (+ detail), terminals, disputes, audit log, console users."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.responses import Response

from paypos import limits
from paypos.adapters.db.schema import disputes as disputes_table
from paypos.adapters.db.schema import terminals as terminals_table
from paypos.domain.console_roles import OPERATOR_ROLES, Role
from paypos.domain.console_roles import Permission as P
from paypos.domain.money import MoneyError, currency
from paypos.entrypoints.console.core import PREFIX, Ctx, NotFound, page
from paypos.services import audit
from paypos.services import terminals as terminal_service
from paypos.services import console_auth as auth


def _alpha(code: str) -> str:
    try:
        return currency(code).alpha
    except MoneyError:
        return code


@page("/ops/merchants", permission=P.OPS_MERCHANTS_VIEW, nav="Merchants", section="operator")
def merchants(ctx: Ctx) -> Response:
    with ctx.app.uow(write=False) as uow:
        found = uow.registry.list_merchants()
    return ctx.render("ops_merchants.html", merchants=found)


@page("/ops/merchants/{merchant_id}", permission=P.OPS_MERCHANTS_VIEW, section="operator",
      params={"merchant_id": "merchant"})
def merchant_detail(ctx: Ctx) -> Response:
    with ctx.app.uow(write=False) as uow:
        merchant = uow.registry.get_merchant(ctx.path_param("merchant_id"))
        if merchant is None:
            raise NotFound()
        terminals = _terminals(uow, merchant.merchant_id)
        users = auth.list_users(uow, merchant_id=merchant.merchant_id)
        recent = audit.entries(uow, merchant_id=merchant.merchant_id, limit=20)
    return ctx.render("ops_merchant.html", merchant=merchant, terminals=terminals, users=users, entries=recent,
                      manage=ctx.can(P.OPS_MERCHANTS_MANAGE))


def _terminals(uow: object, merchant_id: str | None) -> list[dict[str, object]]:
    t = terminals_table
    query = sa.select(t.c.terminal_id, t.c.merchant_id, t.c.currency, t.c.status, t.c.created_at).order_by(
        t.c.terminal_id).limit(limits.console_users_listed_max)
    if merchant_id is not None:
        query = query.where(t.c.merchant_id == merchant_id)
    return [{"terminal_id": r.terminal_id, "merchant_id": r.merchant_id, "currency": _alpha(r.currency),
             "status": r.status, "created_at": r.created_at} for r in uow.connection.execute(query)]  # type: ignore[attr-defined]


@page("/ops/terminals", permission=P.OPS_TERMINALS_VIEW, nav="Terminals", section="operator")
def terminals(ctx: Ctx) -> Response:
    """Terminals and open requests (provision, suspend, resume, replace: pages_lifecycle.py)."""
    with ctx.app.uow(write=False) as uow:
        found = terminal_service.list_terminals(uow)
    return ctx.render("ops_terminals.html", terminals=found, manage=ctx.can(P.OPS_TERMINALS_MANAGE))


@page("/ops/disputes", permission=P.OPS_DISPUTES_VIEW, nav="Disputes", section="operator")
def ops_disputes(ctx: Ctx) -> Response:
    d = disputes_table
    with ctx.app.uow(write=False) as uow:
        rows = uow.connection.execute(sa.select(d).order_by(d.c.created_at.desc(), d.c.id.desc())
                                      .limit(limits.disputes_page_size_max)).all()
    return ctx.render("disputes.html", disputes=rows, operator=True)


@page("/ops/audit", permission=P.OPS_AUDIT_VIEW, nav="Audit log", section="operator")
def audit_log(ctx: Ctx) -> Response:
    before = ctx.query("before")
    merchant = ctx.query("merchant") or None
    with ctx.app.uow(write=False) as uow:
        found = audit.entries(uow, merchant_id=merchant, before_seq=int(before) if before.isdigit() else None,
                              limit=limits.console_page_rows + 1)
    shown = found[:limits.console_page_rows]
    return ctx.render("ops_audit.html", entries=shown, merchant=merchant or "",
                      next_before=shown[-1].seq if len(found) > len(shown) else None)


@page("/ops/users", permission=P.OPS_USERS_MANAGE, nav="Users", section="operator")
def users(ctx: Ctx, error: str | None = None, status: int = 200) -> Response:
    with ctx.app.uow(write=False) as uow:
        found = auth.list_users(uow)
    return ctx.render("ops_users.html", http_status=status, users=found, error=error,
                      roles=[r.value for r in Role], now=ctx.now())


@page("/ops/users", methods=("POST",), permission=P.OPS_USERS_MANAGE, section="operator")
def users_create(ctx: Ctx) -> Response:
    try:
        with ctx.app.uow() as uow:
            auth.create_user(uow, email=ctx.field("email"), role=ctx.field("role"), password=ctx.field("password"),
                             now=ctx.now(), actor=ctx.actor, merchant_id=ctx.field("merchant_id").strip() or None,
                             display_name=ctx.field("display_name")[:200])
            uow.commit()
    except (auth.ConsoleError, auth.UserRefused) as error:
        return users(ctx, error=str(error), status=422)
    return ctx.redirect(PREFIX + "/ops/users", "User created.")


def _user_action(ctx: Ctx, action: str) -> Response:
    with ctx.app.uow() as uow:
        try:
            user = auth.find_user(uow, ctx.path_param("user_id"), lock=True)
        except auth.UserNotFound:
            raise NotFound() from None
        if action == "disable":
            if user.id == ctx.user.id:
                return ctx.redirect(PREFIX + "/ops/users", "You cannot disable yourself.")
            auth.disable_user(uow, user, ctx.now(), ctx.actor)
        elif action == "unlock":
            auth.unlock(uow, user, ctx.now(), ctx.actor)
        else:
            role = ctx.field("role")
            if (Role(user.role) in OPERATOR_ROLES) != (role in {r.value for r in OPERATOR_ROLES}):
                return ctx.redirect(PREFIX + "/ops/users", "A role changes only within its role set.")
            try:
                auth.set_role(uow, user, role, ctx.now(), ctx.actor)
            except auth.ConsoleError as error:
                return ctx.redirect(PREFIX + "/ops/users", str(error))
        uow.commit()
    return ctx.redirect(PREFIX + "/ops/users", f"{user.email}: {action} done.")


@page("/ops/users/{user_id}/disable", methods=("POST",), permission=P.OPS_USERS_MANAGE, section="operator",
      params={"user_id": "user"})
def users_disable(ctx: Ctx) -> Response:
    return _user_action(ctx, "disable")


@page("/ops/users/{user_id}/unlock", methods=("POST",), permission=P.OPS_USERS_MANAGE, section="operator",
      params={"user_id": "user"})
def users_unlock(ctx: Ctx) -> Response:
    return _user_action(ctx, "unlock")


@page("/ops/users/{user_id}/role", methods=("POST",), permission=P.OPS_USERS_MANAGE, section="operator",
      params={"user_id": "user"})
def users_role(ctx: Ctx) -> Response:
    return _user_action(ctx, "role")
