"""Merchant fees and the payment methods they are priced by.

A flat merchant discount rate until pricing plans land (issue 7)."""

from __future__ import annotations

import enum

# 0.60 % of the amount, in basis points.
DEFAULT_MDR_BPS = 60


def fee_minor(amount_minor: int, rate_bps: int = DEFAULT_MDR_BPS) -> int:
    """Fee in minor units, rounded half up, integer arithmetic only (never a float)."""
    if type(amount_minor) is not int or amount_minor < 0:
        raise ValueError("amount must be a non-negative int of minor units")
    return (amount_minor * rate_bps + 5_000) // 10_000


class PaymentMethod(enum.StrEnum):
    """How a payment was made, as pricing plans and reports group it (issue 7)."""

    DEBIT_CARD = "debit_card"
    CREDIT_CARD = "credit_card"
    CONTACTLESS = "contactless"
    WALLET_BALANCE = "wallet_balance"
    WALLET_CARD = "wallet_card"
    CREDIT_PAY = "credit_pay"
    PREPAID = "prepaid"
    CARD_NOT_PRESENT = "card_not_present"


# ISO 8583 field 22 positions 1-2 (PAN entry mode) that mean a contactless read.
_CONTACTLESS_ENTRY = ("07", "91")


def card_present_method(funding: str, entry_mode: str | None) -> PaymentMethod:
    """The method of a card-present transaction from the card's funding (debit, credit,
    prepaid) and field 22: a tap is contactless whatever the funding, except prepaid cards,
    which are priced as prepaid however they are read."""
    if funding == "prepaid":
        return PaymentMethod.PREPAID
    if entry_mode is not None and entry_mode[:2] in _CONTACTLESS_ENTRY:
        return PaymentMethod.CONTACTLESS
    return PaymentMethod.CREDIT_CARD if funding == "credit" else PaymentMethod.DEBIT_CARD


def wallet_method(funding: str) -> PaymentMethod:
    """The method of a wallet payment from its funding (balance, card, creditpay)."""
    return {"balance": PaymentMethod.WALLET_BALANCE, "card": PaymentMethod.WALLET_CARD,
            "creditpay": PaymentMethod.CREDIT_PAY}[funding]
