"""Who may do what in the web console (docs/console.md): the one table of roles → permissions.

Two role sets. Merchant roles (a user bound to one merchant): ``owner`` sees and manages all of
its merchant; ``cashier`` sees only sales and refunds up to a per-user limit. Operator roles
(no merchant): ``reviewer``, ``risk``, ``finance``, ``admin``. Every console route declares the
one :class:`Permission` it needs; :func:`allows` is the only place that answers.
Pure: no I/O.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    CASHIER = "cashier"
    REVIEWER = "reviewer"
    RISK = "risk"
    FINANCE = "finance"
    ADMIN = "admin"


MERCHANT_ROLES = frozenset({Role.OWNER, Role.CASHIER})
OPERATOR_ROLES = frozenset({Role.REVIEWER, Role.RISK, Role.FINANCE, Role.ADMIN})


class Permission(StrEnum):
    ACCOUNT_SELF = "account.self"  # one's own sign-in settings (TOTP)
    # merchant side
    DASHBOARD_VIEW = "merchant.dashboard.view"
    SALES_VIEW = "merchant.sales.view"
    SALES_REFUND = "merchant.sales.refund"
    KEYS_MANAGE = "merchant.keys.manage"
    WEBHOOKS_MANAGE = "merchant.webhooks.manage"
    TEAM_MANAGE = "merchant.team.manage"
    DISPUTES_MANAGE = "merchant.disputes.manage"
    TERMINALS_MANAGE = "merchant.terminals.manage"  # see and request terminals (owner)
    SETTLEMENTS_VIEW = "merchant.settlements.view"  # settlements and payouts (issue 7 csettle)
    BANK_MANAGE = "merchant.bank.manage"  # bind and confirm the payout bank account
    STATEMENTS_VIEW = "merchant.statements.view"  # daily / monthly statements, CSV and PDF (issue 7 creports)
    PRICING_VIEW = "merchant.pricing.view"  # one's own pricing plan and its history, read-only
    # operator side
    OPS_MERCHANTS_VIEW = "ops.merchants.view"
    OPS_TERMINALS_VIEW = "ops.terminals.view"
    OPS_DISPUTES_VIEW = "ops.disputes.view"
    OPS_AUDIT_VIEW = "ops.audit.view"
    OPS_USERS_MANAGE = "ops.users.manage"
    OPS_APPLICATIONS_REVIEW = "ops.applications.review"  # read, approve, reject; the owner's login
    OPS_TERMINALS_MANAGE = "ops.terminals.manage"  # provision, suspend, resume, replace
    OPS_MERCHANTS_MANAGE = "ops.merchants.manage"  # activate, suspend, reactivate, close a merchant
    OPS_SETTLEMENT_MANAGE = "ops.settlement.manage"  # runs, payouts, files, statements, holidays, settings
    OPS_REPORTS_VIEW = "ops.reports.view"  # the operator's report: volume, approvals, declines, fees, disputes
    OPS_RECON_MANAGE = "ops.reconciliation.manage"  # reconciliation exceptions: see and resolve
    OPS_PRICING_MANAGE = "ops.pricing.manage"  # pricing plans: see, create, assign to a merchant


P = Permission
_OPERATOR_COMMON = {P.ACCOUNT_SELF, P.OPS_MERCHANTS_VIEW, P.OPS_TERMINALS_VIEW}
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset({P.ACCOUNT_SELF, P.DASHBOARD_VIEW, P.SALES_VIEW, P.SALES_REFUND, P.KEYS_MANAGE,
                           P.WEBHOOKS_MANAGE, P.TEAM_MANAGE, P.DISPUTES_MANAGE, P.TERMINALS_MANAGE}
                          | {P.SETTLEMENTS_VIEW, P.BANK_MANAGE} | {P.STATEMENTS_VIEW, P.PRICING_VIEW}),
    Role.CASHIER: frozenset({P.ACCOUNT_SELF, P.SALES_VIEW, P.SALES_REFUND}),
    Role.REVIEWER: frozenset(_OPERATOR_COMMON | {P.OPS_APPLICATIONS_REVIEW, P.OPS_TERMINALS_MANAGE}),
    Role.RISK: frozenset(_OPERATOR_COMMON | {P.OPS_DISPUTES_VIEW, P.OPS_AUDIT_VIEW}
                         | {P.OPS_REPORTS_VIEW, P.OPS_RECON_MANAGE}),
    Role.FINANCE: frozenset(_OPERATOR_COMMON | {P.OPS_DISPUTES_VIEW, P.OPS_AUDIT_VIEW}
                            | {P.OPS_SETTLEMENT_MANAGE}
                            | {P.OPS_REPORTS_VIEW, P.OPS_RECON_MANAGE, P.OPS_PRICING_MANAGE}),
    Role.ADMIN: frozenset(_OPERATOR_COMMON | {P.OPS_DISPUTES_VIEW, P.OPS_AUDIT_VIEW, P.OPS_USERS_MANAGE,
                                              P.OPS_APPLICATIONS_REVIEW, P.OPS_TERMINALS_MANAGE,
                                              P.OPS_MERCHANTS_MANAGE}
                          | {P.OPS_SETTLEMENT_MANAGE}
                          | {P.OPS_REPORTS_VIEW, P.OPS_RECON_MANAGE, P.OPS_PRICING_MANAGE}),
}


class RoleError(ValueError):
    """A user's role and merchant do not fit together, or the role is unknown."""


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise RoleError(f"role must be one of {', '.join(r.value for r in Role)}") from None


def allows(role: Role | str, permission: Permission) -> bool:
    """Whether ``role`` holds ``permission`` (an unknown role holds nothing)."""
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False


def is_merchant_role(role: Role | str) -> bool:
    return role in MERCHANT_ROLES


def check_binding(role: Role, merchant_id: str | None) -> None:
    """Merchant roles belong to exactly one merchant; operator roles to none."""
    if role in MERCHANT_ROLES and not merchant_id:
        raise RoleError(f"{'an' if role is Role.OWNER else 'a'} {role} belongs to a merchant: give --merchant")
    if role in OPERATOR_ROLES and merchant_id:
        raise RoleError(f"an operator ({role}) belongs to no merchant")


def refund_allowance_minor(role: Role, refundable_minor: int, cashier_limit_minor: int) -> int:
    """The most this user may refund of a payment now: an owner all that is refundable, a cashier
    the smaller of that and their per-refund limit; nobody else anything (all minor units)."""
    if refundable_minor < 0 or cashier_limit_minor < 0:
        raise ValueError("amounts are never negative")
    if role is Role.OWNER:
        return refundable_minor
    if role is Role.CASHIER:
        return min(refundable_minor, cashier_limit_minor)
    return 0


def home_path(role: Role) -> str:
    """Where a user lands after signing in (a cashier has no dashboard)."""
    if role is Role.OWNER:
        return "/console/dashboard"
    if role is Role.CASHIER:
        return "/console/transactions"
    return "/console/ops/merchants"
