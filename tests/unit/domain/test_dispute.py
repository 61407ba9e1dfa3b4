"""paypos.domain.dispute: the dispute state machine, Visa reason codes, amounts, evidence deadline."""

from datetime import UTC, datetime, timedelta

import pytest

from paypos import limits
from paypos.domain.dispute import (
    DISPUTE_TRANSITIONS,
    REASON_CODES,
    Dispute,
    DisputeError,
    DisputeEvent,
    DisputeStatus,
    IllegalDisputeTransition,
    dispute_transition,
    disputed_amount,
    evidence,
    evidence_due_by,
    is_id,
    new_id,
    reason_code,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def dispute(status: DisputeStatus = DisputeStatus.NEEDS_RESPONSE) -> Dispute:
    return Dispute(id=new_id(bytes(15)), payment_id="pay_x", payment_request_id="pr_x", merchant_id="M",
                   amount_minor=1_000, currency="CNY", fee_minor=limits.dispute_fee_minor, reason_code="13.1",
                   status=status, source="merchant_pending", evidence_text=None, evidence_submitted_at=None,
                   evidence_due_by=evidence_due_by(NOW), closed_at=None, created_at=NOW, updated_at=NOW)


@pytest.mark.parametrize(("current", "event", "after"), [(c, e, a) for (c, e), a in DISPUTE_TRANSITIONS.items()])
def test_each_dispute_transition_moves_to_its_state(current: DisputeStatus, event: DisputeEvent,
                                                    after: DisputeStatus) -> None:
    assert dispute_transition(current, event) is after


@pytest.mark.parametrize("current", [DisputeStatus.WON, DisputeStatus.LOST])
def test_a_closed_dispute_allows_no_event(current: DisputeStatus) -> None:
    for event in DisputeEvent:
        with pytest.raises(IllegalDisputeTransition, match=f"is {current.value}"):
            dispute_transition(current, event)


def test_reason_codes_are_visa_codes_and_others_are_refused_naming_the_field() -> None:
    assert reason_code("10.4") == "10.4" and REASON_CODES["13.1"].startswith("Merchandise")
    with pytest.raises(DisputeError) as caught:
        reason_code("4837")  # a Mastercard code: not in the Visa table
    assert caught.value.field == "reason_code"


def test_the_disputed_amount_defaults_to_all_that_is_left_and_never_exceeds_it() -> None:
    assert disputed_amount(None, 900) == 900 and disputed_amount(300, 900) == 300
    for asked, left in ((901, 900), (0, 900), (None, 0)):
        with pytest.raises(DisputeError) as caught:
            disputed_amount(asked, left)
        assert caught.value.field == "amount"


def test_evidence_is_taken_before_the_deadline_and_refused_at_it() -> None:
    assert evidence(dispute(), " signed note ", NOW) == "signed note"
    due = NOW + timedelta(seconds=limits.dispute_evidence_window_s)
    with pytest.raises(IllegalDisputeTransition, match="due by"):
        evidence(dispute(), "late", due)
    with pytest.raises(IllegalDisputeTransition, match="under_review"):
        evidence(dispute(DisputeStatus.UNDER_REVIEW), "again", NOW)
    for bad in ("", "   ", "a\x00b", "x" * (limits.dispute_evidence_chars_max + 1)):
        with pytest.raises(DisputeError, match="text"):
            evidence(dispute(), bad, NOW)


def test_an_id_is_dp_and_24_base32_characters() -> None:
    assert is_id(new_id(bytes(range(15)))) and not is_id("dp_short")
