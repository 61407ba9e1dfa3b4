"""The payout leg of reconciliation (domain/payout_recon.py): a payout reconciles when its
transfers match its status and amount exactly; each disagreement has its own exception."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from paypos.domain.payout_recon import Leg, PayoutException, PayoutLegs, exceptions, transfer_ids

NOW = datetime(2026, 11, 23, 9, tzinfo=UTC)
STALE = timedelta(days=3)
E = PayoutException
SENT = PayoutLegs("po_M1_20261123", "M1", date(2026, 11, 23), 12_910, "CNY", "sent", NOW, None,
                  Leg(12_910, "CNY"), None, None)


def test_the_transfer_ids_are_those_settlement_posts() -> None:
    assert transfer_ids("po_M1_20261123", "M1", date(2026, 11, 23)) == (
        "payout:M1:20261123", "payout_paid:po_M1_20261123", "payout_return:po_M1_20261123")


def test_a_sent_payout_with_its_transfer_reconciles_and_a_paid_one_needs_its_paid_transfer() -> None:
    assert exceptions(SENT, NOW, STALE) == []
    paid = replace(SENT, status="paid", paid=Leg(12_910, "CNY"))
    assert exceptions(paid, NOW, STALE) == []
    assert exceptions(replace(paid, paid=None), NOW, STALE) == [E.PAID_TRANSFER_MISSING]


def test_a_returned_payout_is_always_an_exception_and_needs_its_return_transfer() -> None:
    returned = replace(SENT, status="returned", return_code="R02", returned=Leg(12_910, "CNY"))
    assert exceptions(returned, NOW, STALE) == [E.RETURNED]
    assert exceptions(replace(returned, returned=None), NOW, STALE) == [E.RETURN_TRANSFER_MISSING, E.RETURNED]


def test_a_status_behind_the_ledger_money_moved_twice_and_stale_payouts_are_exceptions() -> None:
    assert exceptions(replace(SENT, paid=Leg(12_910, "CNY")), NOW, STALE) == [E.STATUS_BEHIND_LEDGER]
    both = replace(SENT, status="paid", paid=Leg(12_910, "CNY"), returned=Leg(12_910, "CNY"))
    assert exceptions(both, NOW, STALE) == [E.PAID_AND_RETURNED]
    assert exceptions(SENT, NOW + STALE + timedelta(seconds=1), STALE) == [E.SENT_UNANSWERED]
    assert exceptions(SENT, NOW + STALE, STALE) == []  # exactly the stale age: not yet
    created = replace(SENT, status="created")
    assert exceptions(created, NOW + STALE + timedelta(seconds=1), STALE) == [E.NOT_SENT]
    assert exceptions(replace(SENT, payout=None), NOW, STALE) == [E.TRANSFER_MISSING]


@given(st.integers(min_value=1, max_value=10**15), st.integers(min_value=1, max_value=10**15),
       st.sampled_from(["CNY", "USD"]))
def test_a_transfer_of_another_amount_or_currency_never_reconciles(amount: int, posted: int, currency: str) -> None:
    legs = replace(SENT, amount_minor=amount, payout=Leg(posted, currency))
    assert (E.TRANSFER_MISSING in exceptions(legs, NOW, STALE)) is (posted != amount or currency != "CNY")
