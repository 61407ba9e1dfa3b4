"""The console's roles → permissions table (domain/console_roles.py): who may do what, the
merchant/operator binding, and the refund allowance (hypothesis: never above what is refundable,
a cashier never above the limit)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypos.domain.console_roles import (MERCHANT_ROLES, OPERATOR_ROLES, ROLE_PERMISSIONS, Permission, Role,
                                         RoleError, allows, check_binding, home_path, parse_role,
                                         refund_allowance_minor)

P = Permission
# The table as the issue states it, row by row (a change to the rules changes this test).
EXPECTED = {
    Role.OWNER: {P.ACCOUNT_SELF, P.DASHBOARD_VIEW, P.SALES_VIEW, P.SALES_REFUND, P.KEYS_MANAGE, P.WEBHOOKS_MANAGE,
                 P.TEAM_MANAGE, P.DISPUTES_MANAGE, P.TERMINALS_MANAGE},
    Role.CASHIER: {P.ACCOUNT_SELF, P.SALES_VIEW, P.SALES_REFUND},
    Role.REVIEWER: {P.ACCOUNT_SELF, P.OPS_MERCHANTS_VIEW, P.OPS_TERMINALS_VIEW, P.OPS_APPLICATIONS_REVIEW,
                    P.OPS_TERMINALS_MANAGE},
    Role.RISK: {P.ACCOUNT_SELF, P.OPS_MERCHANTS_VIEW, P.OPS_TERMINALS_VIEW, P.OPS_DISPUTES_VIEW, P.OPS_AUDIT_VIEW},
    Role.FINANCE: {P.ACCOUNT_SELF, P.OPS_MERCHANTS_VIEW, P.OPS_TERMINALS_VIEW, P.OPS_DISPUTES_VIEW, P.OPS_AUDIT_VIEW},
    Role.ADMIN: {P.ACCOUNT_SELF, P.OPS_MERCHANTS_VIEW, P.OPS_TERMINALS_VIEW, P.OPS_DISPUTES_VIEW, P.OPS_AUDIT_VIEW,
                 P.OPS_USERS_MANAGE, P.OPS_APPLICATIONS_REVIEW, P.OPS_TERMINALS_MANAGE, P.OPS_MERCHANTS_MANAGE},
}
# Settlement and payouts (issue 7, csettle): the owner's settlements and bank account; finance and admin run them.
EXPECTED[Role.OWNER] |= {P.SETTLEMENTS_VIEW, P.BANK_MANAGE}
EXPECTED[Role.FINANCE] |= {P.OPS_SETTLEMENT_MANAGE}
EXPECTED[Role.ADMIN] |= {P.OPS_SETTLEMENT_MANAGE}
# Reports, reconciliation and pricing (issue 7, creports): the owner's statements and own plan; risk, finance and
# admin see the operator's report and resolve reconciliation exceptions; finance and admin manage pricing plans.
EXPECTED[Role.OWNER] |= {P.STATEMENTS_VIEW, P.PRICING_VIEW}
for _role in (Role.RISK, Role.FINANCE, Role.ADMIN):
    EXPECTED[_role] |= {P.OPS_REPORTS_VIEW, P.OPS_RECON_MANAGE}
EXPECTED[Role.FINANCE] |= {P.OPS_PRICING_MANAGE}
EXPECTED[Role.ADMIN] |= {P.OPS_PRICING_MANAGE}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_each_role_holds_exactly_its_permissions(role: Role, permission: Permission) -> None:
    assert allows(role, permission) is (permission in EXPECTED[role])
    assert allows(role.value, permission) is allows(role, permission)


def test_merchant_roles_hold_no_operator_permission_and_operators_no_merchant_one() -> None:
    for role in MERCHANT_ROLES:
        assert not any(p.value.startswith("ops.") for p in ROLE_PERMISSIONS[role])
    for role in OPERATOR_ROLES:
        assert not any(p.value.startswith("merchant.") for p in ROLE_PERMISSIONS[role])


def test_an_unknown_role_holds_nothing_and_does_not_parse() -> None:
    assert not any(allows("superuser", p) for p in Permission)
    with pytest.raises(RoleError, match="role must be one of"):
        parse_role("superuser")
    assert parse_role(" Owner ") is Role.OWNER


def test_merchant_roles_need_a_merchant_and_operators_must_not_have_one() -> None:
    check_binding(Role.OWNER, "PPCAFE000000001")
    check_binding(Role.ADMIN, None)
    with pytest.raises(RoleError, match="an owner belongs to a merchant"):
        check_binding(Role.OWNER, None)
    with pytest.raises(RoleError, match="belongs to no merchant"):
        check_binding(Role.RISK, "PPCAFE000000001")


def test_a_cashier_lands_on_sales_and_an_operator_on_merchants() -> None:
    assert home_path(Role.CASHIER) == "/console/transactions"
    assert home_path(Role.OWNER) == "/console/dashboard"
    assert all(home_path(r) == "/console/ops/merchants" for r in OPERATOR_ROLES)


@given(refundable=st.integers(0, 10**15), limit=st.integers(0, 10**15), role=st.sampled_from(list(Role)))
def test_the_refund_allowance_is_never_above_what_is_refundable_nor_a_cashiers_limit(
        refundable: int, limit: int, role: Role) -> None:
    allowed = refund_allowance_minor(role, refundable, limit)
    assert 0 <= allowed <= refundable
    if role is Role.CASHIER:
        assert allowed == min(refundable, limit)
    elif role is Role.OWNER:
        assert allowed == refundable
    else:
        assert allowed == 0


def test_negative_amounts_are_refused() -> None:
    with pytest.raises(ValueError):
        refund_allowance_minor(Role.OWNER, -1, 0)
    with pytest.raises(ValueError):
        refund_allowance_minor(Role.CASHIER, 1, -1)
