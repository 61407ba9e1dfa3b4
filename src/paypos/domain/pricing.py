"""Merchant fees. A flat merchant discount rate until pricing plans land (issue 7)."""

from __future__ import annotations

# 0.60 % of the amount, in basis points.
DEFAULT_MDR_BPS = 60


def fee_minor(amount_minor: int, rate_bps: int = DEFAULT_MDR_BPS) -> int:
    """Fee in minor units, rounded half up, integer arithmetic only (never a float)."""
    if type(amount_minor) is not int or amount_minor < 0:
        raise ValueError("amount must be a non-negative int of minor units")
    return (amount_minor * rate_bps + 5_000) // 10_000
