"""domain/settlement.py: cycles and cut-offs in the merchant's zone, holidays, reserve and
instant-fee rounding, account numbers, names, micro-deposits, and the clearing file's control
record (render and parse round-trip; any change refused)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypos.domain import settlement as rules
from paypos.domain.settlement import Cycle, CsvFile, FileError, SettlementError, SettlementSettings

MON = date(2026, 11, 23)


def test_a_t1_window_closes_at_yesterdays_cut_off_in_the_merchants_zone() -> None:
    settings = SettlementSettings("M1")  # 23:00 Asia/Shanghai (UTC+8)
    assert rules.window_end(settings, MON) == datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


def test_a_t0_window_closes_at_todays_cut_off() -> None:
    settings = SettlementSettings("M1", Cycle.T0, cutoff_local="18:30", time_zone="Europe/Berlin")
    assert rules.window_end(settings, MON) == datetime(2026, 11, 23, 17, 30, tzinfo=UTC)


def test_a_cut_off_follows_daylight_saving_time() -> None:
    settings = SettlementSettings("M1", cutoff_local="12:00", time_zone="America/New_York")
    assert rules.cutoff_at(settings, date(2026, 7, 1)).hour == 16
    assert rules.cutoff_at(settings, date(2026, 12, 1)).hour == 17


def test_weekly_is_due_on_its_weekday_or_the_first_working_day_after_holidays() -> None:
    settings = SettlementSettings("M1", Cycle.WEEKLY, weekday=0)
    assert rules.is_due(settings, MON, frozenset())
    assert not rules.is_due(settings, date(2026, 11, 24), frozenset())
    holidays = frozenset({MON, date(2026, 11, 24)})
    assert not rules.is_due(settings, MON, holidays)
    assert rules.is_due(settings, date(2026, 11, 25), holidays)
    assert not rules.is_due(settings, date(2026, 11, 26), holidays)


def test_nothing_is_due_on_a_holiday() -> None:
    assert not rules.is_due(SettlementSettings("M1"), MON, frozenset({MON}))


@given(st.integers(0, 10**15), st.integers(0, 10_000))
def test_the_reserve_never_exceeds_its_share_of_gross_and_rounds_down(gross: int, bps: int) -> None:
    held = rules.reserve_minor(gross, bps)
    assert 0 <= held <= gross and held * 10_000 <= gross * bps < (held + 1) * 10_000


@given(st.integers(0, 10**15), st.integers(0, 10_000))
def test_the_instant_fee_is_the_rate_rounded_half_up(net: int, bps: int) -> None:
    fee = rules.instant_fee_minor(net, bps)
    assert abs(fee * 10_000 - net * bps) <= 5_000 and 0 <= fee <= net


def test_negative_amounts_hold_no_reserve_and_pay_no_instant_fee() -> None:
    assert rules.reserve_minor(-500, 1_000) == 0 and rules.instant_fee_minor(-500, 1_000) == 0


@pytest.mark.parametrize(("text", "compact", "kind"), [
    ("6222 0212 3456 7890 128", "6222021234567890128", rules.AccountKind.CARD),
    ("6222-0212-3456-7894", "6222021234567894", rules.AccountKind.CARD),
    ("de89 3704 0044 0532 0130 00", "DE89370400440532013000", rules.AccountKind.IBAN),
])
def test_bank_card_numbers_and_ibans_are_accepted_compacted(text: str, compact: str,
                                                            kind: rules.AccountKind) -> None:
    assert rules.account_number(text) == (compact, kind)


@pytest.mark.parametrize("text", ["", "6222021234567890123", "622202123456789", "62220212345678901234",
                                  "DE89370400440532013001", "not a number"])
def test_bad_account_numbers_are_refused(text: str) -> None:
    with pytest.raises(SettlementError) as refused:
        rules.account_number(text)
    assert refused.value.field == "account_number"


def test_account_numbers_are_masked_first_six_last_four() -> None:
    assert rules.mask_account("6222021234567890128") == "622202*********0128"
    assert rules.mask_account("DE89370400440532013000") == "DE89**************3000"


def test_holder_names_match_after_case_width_and_space_normalisation() -> None:
    assert rules.holder_matches("  harbour   CAFÉ ", "Harbour Café")
    assert rules.holder_matches("ＡＢＣ Ltd", "abc ltd")  # full-width letters (NFKC)
    assert not rules.holder_matches("Harbour Cafe", "Harbour Café")
    assert not rules.holder_matches("", "")


def test_micro_deposits_match_in_either_order_only_both() -> None:
    assert rules.micro_deposits_match((12, 34), (34, 12))
    assert not rules.micro_deposits_match((12, 34), (12, 35))


@pytest.mark.parametrize(("changes", "field"), [
    ({"cutoff_local": "7:00"}, "cutoff"), ({"time_zone": "Nowhere/Town"}, "time_zone"),
    ({"reserve_bps": -1}, "reserve_bps"), ({"instant_rate_bps": 10_001}, "instant_rate_bps"),
    ({"reserve_hold_days": 366}, "reserve_hold_days"), ({"payout_minor_min": 0}, "payout_minor_min"),
])
def test_settings_out_of_range_name_their_field(changes: dict[str, object], field: str) -> None:
    from dataclasses import replace

    with pytest.raises(SettlementError) as refused:
        rules.check_settings(replace(SettlementSettings("M1"), **changes))  # type: ignore[arg-type]
    assert refused.value.field == field


def test_weekday_names_parse_and_a_wrong_one_is_refused() -> None:
    assert rules.parse_weekday("Friday") == 4
    with pytest.raises(SettlementError):
        rules.parse_weekday("funday")


details = st.lists(st.tuples(st.text(alphabet="abcXYZ09_,\"", min_size=1, max_size=12),
                             st.integers(0, 10**12)), max_size=5)


@given(details)
def test_a_file_round_trips_through_its_control_record(rows: list[tuple[str, int]]) -> None:
    made = CsvFile(["F1", "2026-11-23", "now", "PAYPOS"], [[name, "M1", "n", "h", str(a), "CNY"] for name, a in rows])
    data = rules.render("H", made, rules.CLEARING_AMOUNT)
    assert rules.parse(data, rules.CLEARING_HEADER_FIELDS, rules.CLEARING_DETAIL_FIELDS,
                       rules.CLEARING_AMOUNT) == made


@given(details.filter(bool), st.data())
def test_any_changed_byte_before_the_control_record_is_refused(rows: list[tuple[str, int]],
                                                               data: st.DataObject) -> None:
    made = CsvFile(["F1", "2026-11-23", "now", "PAYPOS"], [[name, "M1", "n", "h", str(a), "CNY"] for name, a in rows])
    raw = bytearray(rules.render("H", made, rules.CLEARING_AMOUNT))
    body_end = raw.rstrip(b"\n").rfind(b"\n")
    at = data.draw(st.integers(0, body_end - 1))
    raw[at] = (raw[at] + 1) % 128 or 1
    with pytest.raises(FileError):
        rules.parse(bytes(raw), rules.CLEARING_HEADER_FIELDS, rules.CLEARING_DETAIL_FIELDS, rules.CLEARING_AMOUNT)


def test_a_control_record_with_a_wrong_sum_is_refused_naming_it() -> None:
    made = CsvFile(["F1", "2026-11-23", "now", "PAYPOS"], [["p1", "M1", "n", "h", "5", "CNY"]])
    raw = rules.render("H", made, rules.CLEARING_AMOUNT).replace(b"T,1,5,", b"T,1,6,")
    with pytest.raises(FileError, match="sums 6"):
        rules.parse(raw, rules.CLEARING_HEADER_FIELDS, rules.CLEARING_DETAIL_FIELDS, rules.CLEARING_AMOUNT)
