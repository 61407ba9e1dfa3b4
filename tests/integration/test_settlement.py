"""Settlement and payouts on SQLite and PostgreSQL (services/settlement.py, docs/settlement.md):
T+1, weekly and T+0 cycles, holidays, rolling reserves, the clearing run's idempotency and
resumption, the clearing file, the sandbox bank's statement, returned payouts and the binding
of bank accounts by micro-deposits; the ledger clean after each."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from paypos.adapters.db.ledger_check import check_ledger
from paypos.adapters.db.schema import bank_accounts, events, payouts
from paypos.bootstrap import App
from paypos.domain.ledger import TransferRequest
from paypos.domain.registry import Acquirer, Merchant
from paypos.domain.settlement import STATEMENT_AMOUNT, CsvFile, FileError, SettlementError, render
from paypos.services import payout_recon, settlement
from paypos.services import reconciliation as recon
from paypos.services.sandbox import merchant_owner
from tests.conftest import FakeClock

ACTOR = "cli:test"
CARD = "6222021234567890128"  # 19 digits, Luhn valid
SUN, MON, TUE = date(2026, 11, 22), date(2026, 11, 23), date(2026, 11, 24)  # the fake clock starts on SUN 09:00 UTC


def add_merchant(app: App, merchant_id: str, name: str = "Cafe Lumen") -> None:
    with app.uow() as uow:
        if uow.registry.get_acquirer("00000000001") is None:
            uow.registry.add_acquirer(Acquirer("00000000001", "Test acquirer"), app.clock())
        uow.registry.add_merchant(Merchant(merchant_id, "00000000001", name, "5812", "CNY", "156", "Shanghai"),
                                  app.clock())
        uow.commit()


def sale(app: App, merchant_id: str, transfer_id: str, amount: int, fee: int = 0) -> None:
    """A sale chain as the host posts it: card → merchant_pending, then the fee to fees_revenue."""
    with app.uow() as uow:
        owner = merchant_owner(merchant_id)
        card = uow.ledger.open_account("test:cards", "test", "card_funding", "CNY").id
        pending = uow.ledger.open_account(owner, owner, "merchant_pending", "CNY").id
        fees = uow.ledger.open_account("platform", "platform", "fees_revenue", "CNY").id
        chain = [TransferRequest(f"{transfer_id}:sale", card, pending, amount, "CNY", code="sale", linked=fee > 0)]
        if fee:
            chain.append(TransferRequest(f"{transfer_id}:fee", pending, fees, fee, "CNY", code="fee"))
        uow.ledger.create_transfers(chain, app.clock())
        uow.commit()


def refund(app: App, merchant_id: str, transfer_id: str, amount: int) -> None:
    with app.uow() as uow:
        owner = merchant_owner(merchant_id)
        card = uow.ledger.open_account("test:cards", "test", "card_funding", "CNY").id
        pending = uow.ledger.open_account(owner, owner, "merchant_pending", "CNY").id
        uow.ledger.create_transfers([TransferRequest(transfer_id, pending, card, amount, "CNY", code="refund")],
                                    app.clock())
        uow.commit()


def balance(app: App, merchant_id: str, code: str) -> int:
    with app.uow(write=False) as uow:
        account = uow.ledger.find_account(merchant_owner(merchant_id), code, "CNY")
        return 0 if account is None else account.balances.net_posted


def platform(app: App, code: str) -> int:
    with app.uow(write=False) as uow:
        account = uow.ledger.find_account("platform", code, "CNY")
        return 0 if account is None else account.balances.net_posted


def ledger_clean(app: App) -> None:
    with app.uow(write=False) as uow:
        assert check_ledger(uow.connection, app.clock()) == []


def verified_account(app: App, merchant_id: str, name: str = "Cafe Lumen", number: str = CARD) -> str:
    with app.uow() as uow:
        bound = settlement.bind_bank_account(uow, app.vault, merchant_id, number, name, ACTOR, app.clock())
        amounts = settlement.micro_deposits(uow, bound["id"])["amounts_minor"]
        settlement.confirm_micro_deposits(uow, merchant_id, bound["id"], tuple(amounts), ACTOR, app.clock())
        uow.commit()
    return str(bound["id"])


def set_settings(app: App, merchant_id: str, **changes: Any) -> None:
    with app.uow() as uow:
        settlement.set_settings(uow, merchant_id, changes, ACTOR, app.clock())
        uow.commit()


def batches(app: App, merchant_id: str) -> list[dict[str, Any]]:
    with app.uow(write=False) as uow:
        return settlement.list_batches(uow, merchant_id)


def payouts_of(app: App, merchant_id: str) -> list[dict[str, Any]]:
    with app.uow(write=False) as uow:
        return settlement.list_payouts(uow, merchant_id)


def at(clock: FakeClock, day: date, hour: int = 9) -> None:
    """Move the fake clock to ``day`` at ``hour``:00 UTC, never back."""
    clock.now = max(clock.now, datetime(day.year, day.month, day.day, hour, tzinfo=UTC))


def run_on(app: App, day: date, **options: Any) -> dict[str, Any]:
    """The clearing run of ``day``, run on that day (09:00 UTC, 17:00 in Shanghai) or later."""
    at(app.clock, day)  # type: ignore[arg-type]
    return settlement.run_clearing(app, day, **options)


# --- cycles ------------------------------------------------------------------------------------------

def test_a_t1_merchants_sales_of_a_day_settle_and_pay_out_the_next_day_net_of_fees_and_refunds(
        app: App, clock: FakeClock) -> None:
    add_merchant(app, "M1")
    verified_account(app, "M1")
    sale(app, "M1", "s1", 10_000, fee=60)
    sale(app, "M1", "s2", 5_000, fee=30)
    refund(app, "M1", "r1", 2_000)
    assert run_on(app, SUN)["batches"] == 1  # the window closed at Saturday's cut-off
    assert balance(app, "M1", "merchant_pending") == 12_910 and payouts_of(app, "M1") == []
    at(clock, MON)
    summary = run_on(app, MON)
    assert (summary["status"], summary["merchants_done"], summary["payouts"]) == ("done", 1, 1)
    monday = batches(app, "M1")[0]
    assert (monday["gross_minor"], monday["fees_minor"], monday["refunds_minor"], monday["settled_minor"]) == (
        15_000, 90, 2_000, 12_910)
    (payout,) = payouts_of(app, "M1")
    assert (payout["amount_minor"], payout["status"], payout["id"]) == (12_910, "created", "po_M1_20261123")
    assert balance(app, "M1", "merchant_pending") == 0 and balance(app, "M1", "merchant_available") == 0
    assert platform(app, "payouts_in_transit") == 12_910
    ledger_clean(app)


def test_a_sale_after_the_cut_off_waits_for_the_next_window(app: App, clock: FakeClock) -> None:
    add_merchant(app, "M1")
    at(clock, SUN, 16)  # 00:00 Monday in Shanghai: after Sunday's 23:00 cut-off
    sale(app, "M1", "late", 1_000)
    at(clock, MON)
    run_on(app, MON)
    assert batches(app, "M1")[0]["settled_minor"] == 0 and balance(app, "M1", "merchant_pending") == 1_000
    run_on(app, TUE)
    assert batches(app, "M1")[0]["settled_minor"] == 1_000
    assert batches(app, "M1")[0]["note"] == "no verified bank account"  # settled, not paid out
    assert balance(app, "M1", "merchant_available") == 1_000


def test_a_weekly_merchant_waits_for_its_weekday(app: App, clock: FakeClock) -> None:
    add_merchant(app, "M1")
    verified_account(app, "M1")
    set_settings(app, "M1", cycle=settlement.Cycle.WEEKLY, weekday=3)  # Thursday
    sale(app, "M1", "s1", 4_000)
    for day in range(23, 26):  # Monday .. Wednesday: not due
        assert run_on(app, date(2026, 11, day))["merchants_total"] == 0
    assert run_on(app, date(2026, 11, 26))["payouts"] == 1
    assert payouts_of(app, "M1")[0]["amount_minor"] == 4_000


def test_a_t0_merchant_settles_the_same_day_and_pays_the_instant_rate(app: App, clock: FakeClock) -> None:
    add_merchant(app, "M1")
    verified_account(app, "M1")
    set_settings(app, "M1", cycle=settlement.Cycle.T0, instant_rate_bps=50)
    sale(app, "M1", "s1", 10_001)
    clock.advance(120)  # during the day, before the 23:00 cut-off: the window closes a minute before now
    run_on(app, SUN)
    (batch,) = batches(app, "M1")
    assert (batch["settled_minor"], batch["instant_fee_minor"]) == (10_001, 50)  # 50.005 rounds half up
    assert payouts_of(app, "M1")[0]["amount_minor"] == 9_951 and platform(app, "fees_revenue") == 50
    ledger_clean(app)


def test_a_t0_run_during_the_day_leaves_later_sales_to_the_next_window_never_skipping_them(
        app: App, clock: FakeClock) -> None:
    add_merchant(app, "M1")
    set_settings(app, "M1", cycle=settlement.Cycle.T0)
    sale(app, "M1", "early", 1_000)
    clock.advance(30)
    sale(app, "M1", "in-flight", 200)  # stamped within the last minute: left for the next window
    run_on(app, SUN)
    assert batches(app, "M1")[0]["settled_minor"] == 0  # the 09:00 sale is within the minute too
    clock.advance(3_600)
    sale(app, "M1", "afternoon", 300)  # after Sunday's window closed, before its 23:00 cut-off
    at(clock, MON)
    run_on(app, MON)
    assert batches(app, "M1")[0]["settled_minor"] == 1_500 and balance(app, "M1", "merchant_pending") == 0


def test_a_holiday_refuses_a_run_and_the_next_working_day_settles_both_days(app: App, clock: FakeClock) -> None:
    add_merchant(app, "M1")
    with app.uow() as uow:
        settlement.add_holiday(uow, MON, "test holiday", ACTOR, clock())
        settlement.add_holiday(uow, MON, "again", ACTOR, clock())  # idempotent
        uow.commit()
    sale(app, "M1", "sunday", 1_000)
    at(clock, MON)
    sale(app, "M1", "monday", 2_000)
    with pytest.raises(settlement.Refused, match="holiday"):
        run_on(app, MON)
    at(clock, TUE)
    run_on(app, TUE)
    assert batches(app, "M1")[0]["settled_minor"] == 3_000


def test_a_weekly_merchant_whose_weekday_is_a_holiday_settles_on_the_next_working_day(
        app: App, clock: FakeClock) -> None:
    add_merchant(app, "M1")
    set_settings(app, "M1", cycle=settlement.Cycle.WEEKLY, weekday=0)  # Monday
    with app.uow() as uow:
        settlement.add_holiday(uow, MON, "", ACTOR, clock())
        uow.commit()
    sale(app, "M1", "s1", 700)
    assert run_on(app, TUE)["merchants_total"] == 1
    assert run_on(app, date(2026, 11, 25))["merchants_total"] == 0
    assert batches(app, "M1")[0]["settled_minor"] == 700


# --- reserves ---------------------------------------------------------------------------------------------

def test_a_rolling_reserve_is_held_and_released_after_its_hold_days(app: App, clock: FakeClock) -> None:
    add_merchant(app, "M1")
    verified_account(app, "M1")
    set_settings(app, "M1", reserve_bps=1_000, reserve_hold_days=2)
    sale(app, "M1", "s1", 10_009, fee=9)
    run_on(app, MON)
    assert batches(app, "M1")[0]["reserve_minor"] == 1_000  # 10 % of 10,009 gross, rounded down
    assert balance(app, "M1", "merchant_reserve") == 1_000 and payouts_of(app, "M1")[0]["amount_minor"] == 9_000
    run_on(app, TUE)
    assert balance(app, "M1", "merchant_reserve") == 1_000  # one day held: not yet
    run_on(app, date(2026, 11, 25))
    assert balance(app, "M1", "merchant_reserve") == 0
    assert batches(app, "M1")[0]["reserve_released_minor"] == 1_000
    assert payouts_of(app, "M1")[0]["amount_minor"] == 1_000
    ledger_clean(app)


def test_settings_out_of_range_are_refused_naming_the_field(app: App) -> None:
    add_merchant(app, "M1")
    for changes, field in (({"reserve_bps": 10_001}, "reserve_bps"), ({"cutoff_local": "24:00"}, "cutoff"),
                           ({"time_zone": "Mars/Olympus"}, "time_zone"), ({"weekday": 7}, "weekday"),
                           ({"cycle": "T2"}, "cycle"), ({"colour": "red"}, "colour"),
                           ({"reserve_bps": "10"}, "reserve_bps"), ({"time_zone": 8}, "time_zone")):
        with pytest.raises(SettlementError) as refused, app.uow() as uow:
            settlement.set_settings(uow, "M1", changes, ACTOR, app.clock())
        assert refused.value.field == field
    with pytest.raises(settlement.NotFound), app.uow() as uow:
        settlement.set_settings(uow, "NOPE", {"reserve_bps": 1}, ACTOR, app.clock())


# --- idempotency and resumption -------------------------------------------------------------------------

def test_running_the_same_day_twice_pays_once(app: App, clock: FakeClock) -> None:
    add_merchant(app, "M1")
    verified_account(app, "M1")
    sale(app, "M1", "s1", 3_000)
    first = run_on(app, MON)
    second = run_on(app, MON)
    assert first == second and len(payouts_of(app, "M1")) == 1 and platform(app, "payouts_in_transit") == 3_000
    ledger_clean(app)


def crash_on_the_third_merchant(monkeypatch: pytest.MonkeyPatch) -> None:
    real = settlement._settle
    calls: list[str] = []

    def crash(uow: Any, store: Any, merchant: Merchant, *args: Any) -> dict[str, Any]:
        calls.append(merchant.merchant_id)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a kill would stop it: mid-transaction
        return real(uow, store, merchant, *args)

    monkeypatch.setattr(settlement, "_settle", crash)


def three_merchants_with_sales(app: App) -> None:
    for merchant_id in ("M1", "M2", "M3"):
        add_merchant(app, merchant_id)
        verified_account(app, merchant_id)
        sale(app, merchant_id, f"{merchant_id}:s1", 1_000)


def test_a_run_that_stopped_part_way_resumes_without_paying_twice(
        app: App, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    three_merchants_with_sales(app)
    crash_on_the_third_merchant(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_on(app, MON, merchants_per_transaction=1)
    stopped = settlement.run_summary(app, MON)
    assert (stopped["status"], stopped["merchants_done"], stopped["payouts"]) == ("running", 2, 2)
    monkeypatch.undo()
    summary = run_on(app, MON)
    assert (summary["status"], summary["merchants_done"], summary["payouts"]) == ("done", 3, 3)
    with app.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(payouts)).scalar_one() == 3
    assert platform(app, "payouts_in_transit") == 3_000
    ledger_clean(app)


def test_a_group_of_merchants_stopped_mid_transaction_leaves_nothing_half_done(
        app: App, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    three_merchants_with_sales(app)
    crash_on_the_third_merchant(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_on(app, MON, merchants_per_transaction=3)
    assert settlement.run_summary(app, MON)["merchants_done"] == 0
    assert platform(app, "payouts_in_transit") == 0 and balance(app, "M1", "merchant_pending") == 1_000
    monkeypatch.undo()
    assert run_on(app, MON)["payouts"] == 3
    ledger_clean(app)


def test_a_run_refuses_a_group_size_out_of_range(app: App) -> None:
    with pytest.raises(SettlementError):
        run_on(app, MON, merchants_per_transaction=0)


def test_a_run_reports_progress_per_merchant(app: App) -> None:
    for merchant_id in ("M1", "M2"):
        add_merchant(app, merchant_id)
    seen: list[tuple[int, int]] = []
    run_on(app, MON, progress=lambda done, total: seen.append((done, total)),
                            merchants_per_transaction=1)
    assert seen == [(1, 2), (2, 2)]


def test_an_unknown_run_is_not_found(app: App) -> None:
    with pytest.raises(settlement.NotFound):
        settlement.run_summary(app, MON)


# --- the clearing file, the bank, the statement ----------------------------------------------------------------

def paid_out(app: App, clock: FakeClock, merchant_id: str = "M1", amount: int = 5_000) -> tuple[bytes, str]:
    add_merchant(app, merchant_id)
    account = verified_account(app, merchant_id)
    sale(app, merchant_id, f"{merchant_id}:s1", amount)
    at(clock, MON)
    run_on(app, MON)
    with app.uow() as uow:
        data = settlement.write_clearing_file(uow, app.vault, MON, ACTOR, clock())
        uow.commit()
    return data, account


def bank(app: App, data: bytes) -> bytes:
    with app.uow(write=False) as uow:
        return settlement.bank_import(uow, app.vault, data, app.clock())


def apply(app: App, statement: bytes) -> dict[str, Any]:
    with app.uow() as uow:
        result = settlement.import_statement(uow, statement, ACTOR, app.clock())
        uow.commit()
    return result


def test_the_clearing_file_carries_the_full_account_number_and_a_control_record(
        app: App, clock: FakeClock) -> None:
    data, _ = paid_out(app, clock)
    lines = data.decode().splitlines()
    assert lines[0].startswith("H,CF20261123,2026-11-23,") and lines[0].endswith(",PAYPOS")
    assert lines[1] == f"D,po_M1_20261123,M1,{CARD},Cafe Lumen,5000,CNY"
    assert lines[2].startswith("T,1,5000,") and len(lines[2].split(",")[3]) == 64
    assert payouts_of(app, "M1")[0]["status"] == "sent"
    with app.engine.connect() as connection:  # at rest the number is sealed, shown masked
        row = connection.execute(sa.select(bank_accounts)).one()
    assert CARD.encode() not in row.number_sealed and row.number_masked == "622202*********0128"


def test_the_bank_pays_and_the_statement_moves_the_payout_to_bank_settlement_once(
        app: App, clock: FakeClock) -> None:
    data, _ = paid_out(app, clock)
    statement = bank(app, data)
    assert statement.decode().splitlines()[1] == "D,po_M1_20261123,paid,,,5000,CNY"
    assert apply(app, statement) == {"statement_id": "ST20261123", "file_id": "CF20261123", "paid": 1,
                                     "returned": 0, "skipped": 0}
    assert apply(app, statement)["skipped"] == 1  # importing it again changes nothing
    assert payouts_of(app, "M1")[0]["status"] == "paid"
    assert platform(app, "payouts_in_transit") == 0 and platform(app, "bank_settlement") == 5_000
    with app.engine.connect() as connection:
        assert list(connection.execute(sa.select(events.c.type)).scalars()) == ["payout.paid"]
    ledger_clean(app)


def test_a_payout_to_a_closed_account_is_returned_to_the_available_balance(app: App, clock: FakeClock) -> None:
    data, account = paid_out(app, clock)
    with app.uow() as uow:
        settlement.flag_bank_account(uow, account, "account_closed", ACTOR, clock())
        uow.commit()
    statement = bank(app, data)
    assert statement.decode().splitlines()[1] == "D,po_M1_20261123,returned,R02,account closed,5000,CNY"
    assert apply(app, statement)["returned"] == 1
    (payout,) = payouts_of(app, "M1")
    assert (payout["status"], payout["return_code"]) == ("returned", "R02")
    assert balance(app, "M1", "merchant_available") == 5_000 and platform(app, "payouts_in_transit") == 0
    with app.engine.connect() as connection:
        assert list(connection.execute(sa.select(events.c.type)).scalars()) == ["payout.returned"]
    with app.uow() as uow:  # the payout leg of reconciliation lists it once, to be resolved
        returned = [e for e in recon.list_exceptions(uow) if e.kind in recon.PAYOUT_KINDS]
        assert [(e.kind, e.transaction_ref) for e in returned] == [("payout_returned", "po_M1_20261123:returned")]
        assert payout_recon.record_payout_exceptions(uow, clock()) == 0  # stored once
        recon.resolve(uow, returned[0].id, "merchant gave a new account", ACTOR, clock())
        uow.commit()
    with app.uow() as uow:  # the account works again: the next run pays the money out again
        settlement.flag_bank_account(uow, account, None, ACTOR, clock())
        uow.commit()
    run_on(app, TUE)
    assert [(p["id"], p["amount_minor"], p["status"]) for p in payouts_of(app, "M1")] == [
        ("po_M1_20261124", 5_000, "created"), ("po_M1_20261123", 5_000, "returned")]
    ledger_clean(app)


@pytest.mark.parametrize(("tamper", "reason"), [
    (lambda d: d.replace(b",5000,CNY", b",5001,CNY"), "hash"),
    (lambda d: d.replace(b"T,1,", b"T,2,"), "counts"),
    (lambda d: d.rsplit(b"T,", 1)[0], "control record"),
])
def test_a_tampered_clearing_file_is_refused_whole_with_the_reason(app: App, clock: FakeClock, tamper: Any,
                                                                   reason: str) -> None:
    data, _ = paid_out(app, clock)
    with pytest.raises(FileError, match=reason):
        bank(app, tamper(data))


def test_a_statement_naming_an_unknown_payout_is_refused_and_nothing_moves(app: App, clock: FakeClock) -> None:
    data, _ = paid_out(app, clock)
    bank(app, data)
    statement = render("H", CsvFile(["ST20261123", "CF20261123", "2026-11-23T10:00:00Z"], [
        ["po_M1_20261123", "paid", "", "", "5000", "CNY"], ["po_M9_20261123", "paid", "", "", "5000", "CNY"]]),
        STATEMENT_AMOUNT)
    with pytest.raises(FileError, match="no payout"):
        apply(app, statement)
    assert payouts_of(app, "M1")[0]["status"] == "sent" and platform(app, "bank_settlement") == 0


# --- bank accounts -----------------------------------------------------------------------------------------

def test_binding_a_bank_account_by_micro_deposits_verifies_it(app: App) -> None:
    add_merchant(app, "M1", "Café  Lumen Ltd")
    with app.uow() as uow:
        bound = settlement.bind_bank_account(uow, app.vault, "M1", "6222 0212 3456 7890 128", "café lumen ltd",
                                             ACTOR, app.clock())
        uow.commit()
    assert (bound["status"], bound["number"], bound["attempts_left"]) == ("pending_verification",
                                                                        "622202*********0128", 3)
    with app.uow() as uow:
        amounts = settlement.micro_deposits(uow, bound["id"])["amounts_minor"]
        assert all(1 <= a <= 99 for a in amounts)
        done = settlement.confirm_micro_deposits(uow, "M1", bound["id"], (amounts[1], amounts[0]), ACTOR,
                                                 app.clock())
        uow.commit()
    assert (done["status"], done["confirmed"]) == ("verified", True)


def test_three_wrong_micro_deposit_confirmations_fail_the_binding(app: App) -> None:
    add_merchant(app, "M1")
    with app.uow() as uow:
        bound = settlement.bind_bank_account(uow, app.vault, "M1", "DE89370400440532013000", "Cafe Lumen", ACTOR,
                                             app.clock())
        right = settlement.micro_deposits(uow, bound["id"])["amounts_minor"]
        wrong = (right[0] % 99 + 1, right[1])
        for left in (2, 1, 0):
            answer = settlement.confirm_micro_deposits(uow, "M1", bound["id"], wrong, ACTOR, app.clock())
            assert (answer["confirmed"], answer["attempts_left"]) == (False, left)
        assert answer["status"] == "failed"
        with pytest.raises(settlement.Refused, match="failed"):
            settlement.confirm_micro_deposits(uow, "M1", bound["id"], tuple(right), ACTOR, app.clock())
        uow.commit()


@pytest.mark.parametrize(("number", "holder", "field"), [
    (CARD, "Someone Else", "holder_name"),
    ("6222021234567890123", "Cafe Lumen", "account_number"),  # Luhn fails
    ("622202123456789", "Cafe Lumen", "account_number"),  # 15 digits
    ("DE89370400440532013001", "Cafe Lumen", "account_number"),  # IBAN check digits fail
])
def test_a_bank_account_with_a_bad_number_or_another_holder_is_refused(app: App, number: str, holder: str,
                                                                        field: str) -> None:
    add_merchant(app, "M1")
    with pytest.raises(SettlementError) as refused, app.uow() as uow:
        settlement.bind_bank_account(uow, app.vault, "M1", number, holder, ACTOR, app.clock())
    assert refused.value.field == field


def test_an_unverified_account_receives_no_payout(app: App, clock: FakeClock) -> None:
    add_merchant(app, "M1")
    with app.uow() as uow:
        settlement.bind_bank_account(uow, app.vault, "M1", CARD, "Cafe Lumen", ACTOR, clock())
        uow.commit()
    sale(app, "M1", "s1", 2_000)
    run_on(app, MON)
    assert payouts_of(app, "M1") == [] and batches(app, "M1")[0]["note"] == "no verified bank account"
    assert balance(app, "M1", "merchant_available") == 2_000


# --- the merchant's REST API ------------------------------------------------------------------------------

def test_a_merchant_lists_its_own_settlements_and_payouts_over_rest(app: App, clock: FakeClock) -> None:
    from tests.integration.online_api import CAFE, CAFE_AUTH, SHOP_AUTH, sandbox_client

    with sandbox_client(app) as client:
        verified_account(app, CAFE, "Harbour Café")
        sale(app, CAFE, "s1", 8_000, fee=48)
        run_on(app, MON)
        body = client.get("/v1/payouts", headers=CAFE_AUTH).json()
        assert [(p["id"], p["amount_minor"], p["status"]) for p in body["data"]] == [
            (f"po_{CAFE}_20261123", 7_952, "created")]
        assert CARD not in str(body) and "number" not in body["data"][0]
        (batch,) = client.get("/v1/settlements", headers=CAFE_AUTH, params={"business_date": "2026-11-23"}).json()[
            "data"]
        assert (batch["gross_minor"], batch["fees_minor"], batch["payout_minor"]) == (8_000, 48, 7_952)
        assert client.get("/v1/payouts", headers=SHOP_AUTH).json()["data"] == []  # only its own


def test_the_settlement_listings_refuse_a_bad_query_and_a_missing_key(app: App) -> None:
    from tests.integration.online_api import CAFE_AUTH, sandbox_client

    with sandbox_client(app) as client:
        bad_date = client.get("/v1/settlements", headers=CAFE_AUTH, params={"business_date": "2026-13-01"})
        assert bad_date.status_code == 422 and bad_date.headers["content-type"] == "application/problem+json"
        assert client.get("/v1/payouts", headers=CAFE_AUTH, params={"limit": 0}).status_code == 422
        assert client.get("/v1/payouts").status_code == 401


def test_merchants_sharing_a_window_are_summed_in_one_scan_with_the_same_results(
        app: App, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    from paypos import limits

    monkeypatch.setattr(limits, "settlement_shared_window_merchants_min", 2)
    for n, merchant_id in enumerate(("M1", "M2", "M3")):
        add_merchant(app, merchant_id)
        sale(app, merchant_id, f"{merchant_id}:s1", 10_000 + n, fee=60)
        refund(app, merchant_id, f"{merchant_id}:r1", 1_000)
    set_settings(app, "M3", cutoff_local="08:00")  # a window of its own (the sales came after it)
    from paypos.adapters.db.settlement import SqlSettlementStore

    alone: list[int] = []
    real = SqlSettlementStore.window_sums
    monkeypatch.setattr(SqlSettlementStore, "window_sums",
                        lambda self, *args: alone.append(args[0]) or real(self, *args))
    clock.advance(3_600)
    sale(app, "M1", "M1:late", 500)  # 10:00 UTC, still before M1's 23:00 cut-off (15:00 UTC)
    run_on(app, MON)
    got = {b["merchant_id"]: (b["gross_minor"], b["fees_minor"], b["refunds_minor"], b["settled_minor"])
           for b in (batches(app, m)[0] for m in ("M1", "M2", "M3"))}
    assert got == {"M1": (10_500, 60, 1_000, 9_440), "M2": (10_001, 60, 1_000, 8_941), "M3": (0, 0, 0, 0)}
    assert len(alone) == 1  # M3 alone; M1 and M2 from the shared scan
    assert balance(app, "M3", "merchant_pending") == 8_942
    ledger_clean(app)


def test_outstanding_pricing_charges_from_the_hook_are_collected_before_the_payout_capped_by_available(
        app: App, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    add_merchant(app, "M1")
    add_merchant(app, "M2")
    verified_account(app, "M1")
    sale(app, "M1", "s1", 3_000)
    sale(app, "M2", "s2", 500)
    asked: list[tuple[str, str, date]] = []

    def rent(uow: Any, merchant_id: str, currency: str, business_date: date) -> list[settlement.Charge]:
        asked.append((merchant_id, currency, business_date))
        return [settlement.Charge(f"rent-{merchant_id}-nov", 1_000, "terminal rent")]

    monkeypatch.setattr(settlement, "CHARGES_HOOKS", [rent])
    run_on(app, MON)
    assert asked == [("M1", "CNY", MON), ("M2", "CNY", MON)]
    assert (batches(app, "M1")[0]["charges_minor"], batches(app, "M2")[0]["charges_minor"]) == (1_000, 500)
    assert payouts_of(app, "M1")[0]["amount_minor"] == 2_000 and platform(app, "fees_revenue") == 1_500
    ledger_clean(app)


def test_a_monthly_fee_billing_could_not_take_is_collected_by_the_next_clearing_once(
        app: App, clock: FakeClock) -> None:
    """docs/pricing.md: a charge the merchant's available balance could not pay is owed; the
    next clearing run takes it (whole, under its own id) before the payout, and billing the
    month again never takes it a second time."""
    from paypos.domain.pricing import PaymentMethod, plan_from_json
    from paypos.services import pricing

    add_merchant(app, "M1")
    verified_account(app, "M1")
    plan = plan_from_json({"id": "monthly", "name": "Monthly", "currency": "CNY",
                           "rates": {m.value: 60 for m in PaymentMethod}, "monthly_fee_minor": 3_000})
    with app.uow() as uow:
        pricing.create_plan(uow, plan, app.clock(), ACTOR)
        pricing.assign(uow, "M1", "monthly", app.clock(), app.clock(), ACTOR)
        owed = pricing.bill_month(uow, "2026-11", app.clock()).as_json()
        uow.commit()
    assert [c["status"] for c in owed["pending"]] == ["pending"]
    sale(app, "M1", "s1", 10_000)
    run_on(app, MON)
    assert batches(app, "M1")[0]["charges_minor"] == 3_000
    assert payouts_of(app, "M1")[0]["amount_minor"] == 7_000
    clock.advance(60)
    with app.uow() as uow:
        assert pricing.outstanding_charges(uow, "M1", "CNY") == []
        again = pricing.bill_month(uow, "2026-11", app.clock()).as_json()
        uow.commit()
    assert again["posted"] == [] and again["pending"] == []
    assert platform(app, "fees_revenue") == 3_000
    ledger_clean(app)


def test_an_owed_charge_larger_than_what_is_available_stays_owed_and_the_payout_is_not_cut(
        app: App, clock: FakeClock) -> None:
    from paypos.domain.pricing import PaymentMethod, plan_from_json
    from paypos.services import pricing

    add_merchant(app, "M1")
    verified_account(app, "M1")
    plan = plan_from_json({"id": "monthly", "name": "Monthly", "currency": "CNY",
                           "rates": {m.value: 60 for m in PaymentMethod}, "monthly_fee_minor": 30_000})
    with app.uow() as uow:
        pricing.create_plan(uow, plan, app.clock(), ACTOR)
        pricing.assign(uow, "M1", "monthly", app.clock(), app.clock(), ACTOR)
        pricing.bill_month(uow, "2026-11", app.clock())
        uow.commit()
    sale(app, "M1", "s1", 10_000)
    run_on(app, MON)
    assert batches(app, "M1")[0]["charges_minor"] == 0 and payouts_of(app, "M1")[0]["amount_minor"] == 10_000
    with app.uow(write=False) as uow:
        assert [c.amount_minor for c in pricing.outstanding_charges(uow, "M1", "CNY")] == [30_000]
    ledger_clean(app)
