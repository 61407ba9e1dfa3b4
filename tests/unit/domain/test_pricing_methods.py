"""Payment methods (domain.pricing): how card-present and wallet payments are grouped for
pricing plans and reports. Field 22 values from ISO 8583:1987 (PAN entry mode, positions 1-2)."""

from __future__ import annotations

import pytest

from paypos.domain.pricing import PaymentMethod, card_present_method, wallet_method


@pytest.mark.parametrize(("funding", "entry_mode", "method"), [
    ("debit", "051", PaymentMethod.DEBIT_CARD),  # chip
    ("debit", "021", PaymentMethod.DEBIT_CARD),  # swipe
    ("credit", "011", PaymentMethod.CREDIT_CARD),  # manual
    ("credit", "071", PaymentMethod.CONTACTLESS),  # contactless chip
    ("debit", "072", PaymentMethod.CONTACTLESS),
    ("debit", "911", PaymentMethod.CONTACTLESS),  # contactless magnetic stripe
    ("prepaid", "071", PaymentMethod.PREPAID),
    ("credit", None, PaymentMethod.CREDIT_CARD),
])
def test_a_card_present_payment_is_priced_by_funding_and_entry_mode(funding: str, entry_mode: str | None,
                                                                    method: PaymentMethod) -> None:
    assert card_present_method(funding, entry_mode) is method


@pytest.mark.parametrize(("funding", "method"), [("balance", PaymentMethod.WALLET_BALANCE),
                                                 ("card", PaymentMethod.WALLET_CARD),
                                                 ("creditpay", PaymentMethod.CREDIT_PAY)])
def test_a_wallet_payment_is_priced_by_its_funding(funding: str, method: PaymentMethod) -> None:
    assert wallet_method(funding) is method


def test_an_unknown_wallet_funding_is_refused() -> None:
    with pytest.raises(KeyError):
        wallet_method("cash")
