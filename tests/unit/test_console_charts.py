"""The console's server-rendered SVG bar charts (entrypoints/console/charts.py): axis scale,
labels (escaped), empty data, bad input."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypos.entrypoints.console.charts import TICKS, axis_ticks, bar_chart, nice_ceiling

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(("value", "top"), [(0, 5), (1, 5), (5, 5), (6, 10), (11, 20), (21, 50), (51, 100),
                                            (4_200, 5_000), (10_001, 20_000)])
def test_the_axis_top_is_the_next_1_2_5_step(value: int, top: int) -> None:
    assert nice_ceiling(value) == top


@given(st.integers(0, 10**15))
def test_the_axis_top_covers_the_value_and_divides_into_whole_ticks(value: int) -> None:
    top = nice_ceiling(value)
    assert top >= value and top % TICKS == 0 and top < max(value, 1) * 5 + TICKS
    assert axis_ticks(top) == [top * i // TICKS for i in range(TICKS + 1)]


def test_bars_are_proportional_and_labelled() -> None:
    svg = bar_chart([("Mon", 50), ("Tue", 100)], title="Sales", value_label=lambda v: f"CNY {v / 100:.2f}")
    root = ET.fromstring(svg)
    bars = root.findall(f"{SVG}rect")
    heights = [int(b.get("height") or 0) for b in bars]
    assert heights[1] == 2 * heights[0] and heights[1] > 0
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "Mon" in texts and "Tue" in texts and "CNY 1.00" in texts  # the axis top (100)
    assert root.find(f"{SVG}title").text == "Sales"  # type: ignore[union-attr]


def test_empty_or_all_zero_data_draws_the_frame_and_says_so() -> None:
    for data in ([], [("a", 0), ("b", 0)]):
        svg = bar_chart(data, title="Nothing")
        ET.fromstring(svg)
        assert "No data yet" in svg


def test_labels_and_titles_are_escaped() -> None:
    svg = bar_chart([("<script>", 1)], title='a "b" & <c>')
    ET.fromstring(svg)  # well-formed
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_every_other_label_can_be_skipped_on_crowded_axes() -> None:
    svg = bar_chart([(f"{h:02d}", h) for h in range(24)], title="By hour", label_every=3)
    assert len(re.findall(r'class="label"', svg)) == 8


def test_negative_values_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        bar_chart([("a", -1)], title="Bad")
