"""The pure parts of reports and reconciliation: decimal strings by integer arithmetic, cursors,
local periods, search filter validation, and the per-transaction reconciliation rules."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypos.services import reconciliation as recon
from paypos.services import reports
from paypos.services.reports import ReportError, SearchFilters, TransactionRow


@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from(["CNY", "USD", "JPY", "KWD"]))
def test_a_decimal_string_is_the_exact_amount_in_major_units(amount: int, currency: str) -> None:
    exponent = {"CNY": 2, "USD": 2, "JPY": 0, "KWD": 3}[currency]
    text = reports.decimal_string(amount, currency)
    assert Decimal(text) == Decimal(amount).scaleb(-exponent)
    assert ("." in text) == (exponent > 0) and (text.split(".")[-1] if exponent else "").__len__() == exponent


@pytest.mark.parametrize(("amount", "text"), [(0, "0.00"), (5, "0.05"), (-5, "-0.05"), (12_345, "123.45")])
def test_decimal_strings_of_known_amounts(amount: int, text: str) -> None:
    assert reports.decimal_string(amount, "CNY") == text


def _row(at: datetime, uid: str) -> TransactionRow:
    return TransactionRow(uid, at, "M", "T", "debit_card", "sale", "approved", 1, 0, "CNY", None, None, None, None,
                          None)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
       st.sampled_from(["ht_000000000042", "pay_abc", "re_xyz"]))
def test_a_cursor_round_trips_its_time_and_id(at: datetime, uid: str) -> None:
    assert reports.decode_cursor(reports.encode_cursor(_row(at, uid))) == (at, uid)


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGpzb24", "WyIyMDI2LTExLTIyIiwieCJd",  # ["2026-11-22","x"]
                                    "WyIyMDI2LTExLTIyVDA5OjAwOjAwKzAwOjAwIiwiaHRfeCJd"])  # ht_ without digits
def test_a_bad_cursor_is_refused_naming_the_cursor(cursor: str) -> None:
    with pytest.raises(ReportError) as refused:
        reports.decode_cursor(cursor)
    assert refused.value.field == "cursor"


def test_a_shanghai_day_starts_at_16_utc_the_day_before_and_december_ends_in_january() -> None:
    assert reports.period_bounds("2026-11-22") == (datetime(2026, 11, 21, 16, tzinfo=UTC),
                                                   datetime(2026, 11, 22, 16, tzinfo=UTC))
    assert reports.period_bounds("2026-12", "UTC") == (datetime(2026, 12, 1, tzinfo=UTC),
                                                       datetime(2027, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("period", ["2026-11-31", "2026-1", "11-2026", "2026-11-22T00", ""])
def test_a_bad_period_is_refused(period: str) -> None:
    with pytest.raises(ReportError):
        reports.period_bounds(period)


def test_valid_filters_pass_and_each_bad_one_names_its_field() -> None:
    good = SearchFilters(since=datetime(2026, 1, 1, tzinfo=UTC), amount_min=0, status="approved",
                         method="contactless", last4="0010", rrn="000000000001", order_id="o-1")
    assert good.validate() is good
    for bad, name in ((SearchFilters(amount_max=-2), "amount_max"), (SearchFilters(method="cash"), "method"),
                      (SearchFilters(until=datetime(2026, 1, 1)), "until")):
        with pytest.raises(ReportError) as refused:
            bad.validate()
        assert refused.value.field == name


def _host(stan: str, amount: int, status: str = "approved", kind: str = "purchase") -> SimpleNamespace:
    return SimpleNamespace(stan=stan, transmission_dt="1122090000", kind=kind, status=status, amount_minor=amount)


def _line(stan: str, amount: int, status: str = "approved", kind: str = "purchase") -> recon.TerminalLine:
    return recon.TerminalLine(stan, "1122090000", kind, amount, status)


@pytest.mark.parametrize(("terminal", "host", "kind"), [
    ([_line("000001", 100)], [], "missing_at_host"),
    ([], [_host("000001", 100)], "missing_at_terminal"),
    ([_line("000001", 100, "declined")], [_host("000001", 100)], "missing_at_terminal"),
    ([_line("000001", 100)], [_host("000001", 150)], "amount_differs"),
    ([_line("000001", 100)], [_host("000001", 100, "reversed")], "reversed"),
    ([_line("000001", 100, "reversed")], [_host("000001", 100)], "reversed"),
    ([_line("000001", 100, kind="refund")], [_host("000001", 100, "declined", "refund")], "missing_at_host"),
])
def test_each_difference_has_its_kind(terminal: list, host: list, kind: str) -> None:
    assert [d.kind for d in recon.differences(terminal, host)] == [kind]


def test_agreeing_sides_and_non_money_kinds_have_no_difference() -> None:
    assert recon.differences([_line("000001", 100), _line("000002", 0, kind="balance")],
                             [_host("000001", 100), _host("000003", 0, kind="balance"),
                              _host("000004", 100, "reversed")]) == []
