"""The console's report formatting (entrypoints/console/pages_reports.py): basis points shown as
a percentage with integer arithmetic (floor to the hundredth of a percent, never a float)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paypos.entrypoints.console.pages_reports import _percent


@given(st.integers(0, 10_000))
def test_a_rate_in_basis_points_reads_back_exactly_as_a_percentage(bps: int) -> None:
    shown = _percent(bps)
    whole, hundredths = shown.removesuffix("%").split(".")
    assert len(hundredths) == 2 and int(whole) * 100 + int(hundredths) == bps


def test_no_rate_is_a_dash_and_two_thirds_is_floored() -> None:
    assert _percent(None) == "–"
    assert _percent(2 * 10_000 // 3) == "66.66%" and _percent(10_000) == "100.00%" and _percent(5) == "0.05%"
