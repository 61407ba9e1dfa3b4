"""Wallet payments through the ISO 8583 host, in-process on SQLite and PostgreSQL
(docs/iso8583.md §5.8): the buyer's payment code (0200, 22 = 032, field 2) paid at once
or after the buyer's confirmation, the merchant's collection code (0200 without field 2,
payload in 63), status (0600) and cancel (0400); distinct refusals for expired, reused,
unknown and malformed codes; reconciliation (0500) counting wallet sales; the same
requests in one group-commit batch. The wallet posts to the ledger, the host never does:
`paypos ledger check` passes after each and every balance moves exactly once."""

from __future__ import annotations

from typing import Any

import pytest

from paypos.bootstrap import App
from paypos.domain.pricing import fee_minor
from paypos.domain.wallet import WalletError
from paypos.protocol import iso8583, paycode, qr
from paypos.services import ledger as ledger_service
from paypos.services import wallet
from paypos.services.host import IsoHost
from paypos.terminal.simulator import SoftTerminal

from test_host import balance, card_available, cards, chip_sale, host, send, terminal  # noqa: F401 — fixtures

LIN = "2088100000000001"  # CNY 5000.00, confirms above CNY 200.00
MERCHANT = "PPCAFE000000001"
STEP_S = 60  # limits.paycode_step_s: one payment code per step


# --- messages -------------------------------------------------------------------------------


def code_sale(t: SoftTerminal, code: str, amount: int) -> bytes:
    return t.message("0200", {"3": "000000", "4": f"{amount:012d}", "22": "032", "2": code})


def qr_sale(t: SoftTerminal, amount: int) -> bytes:
    return t.message("0200", {"3": "000000", "4": f"{amount:012d}", "22": "032"})


def _naming(t: SoftTerminal, mti: str, raw: bytes) -> bytes:
    sale = iso8583.decode_message(raw)
    original = iso8583.OriginalData("0200", sale["11"], sale["7"], "0", "0")
    return t.message(mti, {"3": "000000", "4": sale["4"], "90": iso8583.format_original_data_elements(original)})


def status_of(t: SoftTerminal, raw: bytes) -> bytes:
    return _naming(t, "0600", raw)


def cancel_of(t: SoftTerminal, raw: bytes) -> bytes:
    return _naming(t, "0400", raw)


# --- the buyer and the books ----------------------------------------------------------------


def fresh_code(app: App, clock: Any) -> str:
    """A new payment code: each step's code pays once, so move to the next step first."""
    clock.advance(STEP_S)
    with app.uow() as uow:
        return str(wallet.payment_code(uow, app.vault, app.clock(), LIN)["code"])


def buyer(app: App, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with app.uow() as uow:
        result = fn(uow, app.vault, app.clock(), *args, **kwargs)
        uow.commit()
        return result


def lin_balance(app: App) -> int:
    with app.uow(write=False) as uow:
        return int(wallet.buyer_summary(uow, LIN)["balance_minor"])


def pending(app: App) -> int:
    return balance(app, f"merchant:{MERCHANT}", "merchant_pending")


def journal_row(app: App, raw: bytes) -> Any:
    sale = iso8583.decode_message(raw)
    with app.uow(write=False) as uow:
        return uow.host.transaction_by_identity(sale["41"], sale["11"], sale["7"])


def ledger_ok(app: App) -> None:
    assert ledger_service.check(app.engine, app.clock) == []


def wallet_fee(amount: int) -> int:
    """The sandbox wallet's merchant fee for a balance payment: 60 bps, half up."""
    return (amount * 60 + 5_000) // 10_000


# --- payment code ----------------------------------------------------------------------------


def test_a_payment_code_under_the_limit_is_paid_at_once_and_posted_by_the_wallet_only(app: App, host: IsoHost,
                                                                                       clock) -> None:
    t = terminal(app, "CAFE0001")
    before, pending_before = lin_balance(app), pending(app)
    code = fresh_code(app, clock)
    raw = code_sale(t, code, 1_250)
    answer = send(host, raw)
    assert answer["t"] == "0210" and answer["39"] == "00" and len(answer["38"]) == 6 and len(answer["37"]) == 12
    assert "44" not in answer and "63" not in answer
    assert lin_balance(app) == before - 1_250
    assert pending(app) == pending_before + 1_250 - wallet_fee(1_250)  # once: by the wallet, not the host
    row = journal_row(app, raw)
    assert (row.kind, row.status, row.card_id, row.entry_mode) == ("purchase", "approved", None, "032")
    assert row.pan_masked == code[:6] + "********" + code[-4:] and row.rrn == answer["37"]
    assert row.fee_minor == wallet_fee(1_250)
    assert send(host, raw) == answer  # a retransmission: the first answer, nothing charged again
    assert lin_balance(app) == before - 1_250
    ledger_ok(app)


def test_above_the_limit_the_payment_waits_for_the_buyer_then_the_status_says_paid(app: App, host: IsoHost,
                                                                                    clock) -> None:
    t = terminal(app, "CAFE0001")
    before = lin_balance(app)
    raw = code_sale(t, fresh_code(app, clock), 30_000)
    waiting = send(host, raw)
    assert waiting["39"] == "09" and len(waiting["37"]) == 12 and "38" not in waiting
    assert journal_row(app, raw).status == "pending"
    assert send(host, status_of(t, raw))["39"] == "09"
    assert lin_balance(app) == before

    buyer(app, wallet.confirm, LIN)

    paid = send(host, status_of(t, raw))
    assert paid["t"] == "0610" and paid["39"] == "00" and paid["37"] == waiting["37"] and len(paid["38"]) == 6
    assert send(host, status_of(t, raw))["38"] == paid["38"]  # the approval code is kept
    row = journal_row(app, raw)
    assert (row.status, row.approval_code, row.response_code) == ("approved", paid["38"], "00")
    assert lin_balance(app) == before - 30_000
    ledger_ok(app)


def test_the_terminal_cancels_an_unconfirmed_payment_and_the_buyer_can_no_longer_pay_it(app: App, host: IsoHost,
                                                                                        clock) -> None:
    t = terminal(app, "CAFE0001")
    before, pending_before = lin_balance(app), pending(app)
    raw = code_sale(t, fresh_code(app, clock), 25_000)
    assert send(host, raw)["39"] == "09"
    cancelled = send(host, cancel_of(t, raw))
    assert cancelled["t"] == "0410" and cancelled["39"] == "00"
    assert journal_row(app, raw).status == "reversed"
    with pytest.raises(WalletError):
        buyer(app, wallet.confirm, LIN)
    status = send(host, status_of(t, raw))
    assert (status["39"], status["44"]) == ("05", "TRADECANCELLED")
    assert (lin_balance(app), pending(app)) == (before, pending_before)
    ledger_ok(app)


def test_cancelling_a_paid_code_payment_refunds_the_buyer(app: App, host: IsoHost, clock) -> None:
    t = terminal(app, "CAFE0001")
    before, pending_before = lin_balance(app), pending(app)
    raw = code_sale(t, fresh_code(app, clock), 4_200)
    assert send(host, raw)["39"] == "00"
    reversal = cancel_of(t, raw)
    assert send(host, reversal)["39"] == "00"
    assert send(host, reversal)["39"] == "00"  # replayed: the same answer, nothing refunded twice
    assert lin_balance(app) == before
    assert pending(app) == pending_before - wallet_fee(4_200)  # the wallet keeps its fee on a refund
    assert journal_row(app, raw).status == "reversed"
    ledger_ok(app)


def test_expired_reused_unknown_and_malformed_codes_are_refused_distinctly(app: App, host: IsoHost, clock) -> None:
    t = terminal(app, "CAFE0001")
    before = lin_balance(app)
    code = fresh_code(app, clock)
    assert send(host, code_sale(t, code, 100))["39"] == "00"
    reused = send(host, code_sale(t, code, 100))

    stale = fresh_code(app, clock)
    clock.advance(5 * STEP_S)
    expired = send(host, code_sale(t, stale, 100))

    step = paycode.time_step(clock(), STEP_S)
    unknown = send(host, code_sale(t, paycode.code_for_step(bytes(32), 1_000_001, step), 100))
    good = fresh_code(app, clock)
    bad_luhn = good[:-1] + str((int(good[-1]) + 1) % 10)
    malformed = send(host, code_sale(t, bad_luhn, 100))

    assert (reused["39"], reused["44"]) == ("62", "PAYCODEREUSED")
    assert (expired["39"], expired["44"]) == ("54", "PAYCODEEXPIRED")
    assert (unknown["39"], unknown["44"]) == ("14", "PAYCODEUNKNOWN")
    assert (malformed["39"], malformed["44"]) == ("14", "PAYCODEINVALID")
    assert all(len(a["37"]) == 12 and "38" not in a for a in (reused, expired, unknown, malformed))
    assert lin_balance(app) == before - 100  # only the first payment
    # A refused code left nothing behind: the buyer's next code still pays.
    assert send(host, code_sale(t, good, 100))["39"] == "00"
    ledger_ok(app)


def test_a_code_payment_above_the_balance_is_51_and_leaves_no_trade(app: App, host: IsoHost, clock) -> None:
    t = terminal(app, "CAFE0001")
    spend = send(host, qr_sale(t, lin_balance(app) - 100))["63"]
    buyer(app, wallet.scan, spend, LIN)  # CNY 1.00 left
    assert lin_balance(app) == 100
    short = send(host, code_sale(t, fresh_code(app, clock), 150))
    assert (short["39"], short["44"]) == ("51", "BALANCENOTENOUGH")
    assert send(host, code_sale(t, fresh_code(app, clock), 100))["39"] == "00"
    assert lin_balance(app) == 0
    ledger_ok(app)


def test_wallet_messages_are_format_checked_and_a_mac_terminal_signs_them(app: App, host: IsoHost, clock) -> None:
    t = terminal(app, "CAFE0001")
    code = fresh_code(app, clock)
    with_pin = t.message("0200", {"3": "000000", "4": "000000000100", "22": "031", "2": code})
    assert send(host, with_pin)["39"] == "30"
    mixed = t.message("0200", {"3": "000000", "4": "000000000100", "22": "032", "2": code, "35": "4761739001010010=30122011"})
    assert send(host, mixed)["39"] == "30"
    nowhere = t.message("0600", {"90": iso8583.format_original_data_elements(
        iso8583.OriginalData("0200", "999999", "1122090000", "0", "0"))})
    assert send(host, nowhere)["39"] == "25"
    signed = terminal(app, "CAFE0002")
    raw = code_sale(signed, code, 300)
    paid = send(host, raw)
    assert paid["39"] == "00" and "64" in paid
    status = send(host, status_of(signed, raw))
    assert status["39"] == "00" and "64" in status  # the 0610 has no field above 64
    request = status_of(signed, raw)
    assert "128" in iso8583.decode_message(request)  # the 0600 has 90: its MAC is in 128
    tampered = request[:-1] + (b"0" if request[-1:] != b"0" else b"1")
    assert send(host, tampered)["39"] == "63"
    ledger_ok(app)


def test_a_card_sale_status_is_not_a_wallet_question(app: App, host: IsoHost, cards) -> None:
    t = terminal(app, "CAFE0001")
    sale = chip_sale(t, cards["visa-cvn18-approve"], 500)
    assert send(host, sale)["39"] == "00"
    assert send(host, status_of(t, sale))["39"] == "12"


def test_a_cancel_before_its_wallet_payment_is_21_and_the_late_payment_is_refused(app: App, host: IsoHost,
                                                                                 clock) -> None:
    t = terminal(app, "CAFE0001")
    before = lin_balance(app)
    raw = code_sale(t, fresh_code(app, clock), 700)
    assert send(host, cancel_of(t, raw))["39"] == "21"
    assert send(host, raw)["39"] == "12"
    assert lin_balance(app) == before


# --- collection code (merchant-presented) ----------------------------------------------------


def test_a_collection_code_is_paid_by_the_buyer_scanning_it(app: App, host: IsoHost) -> None:
    t = terminal(app, "CAFE0001")
    before, pending_before = lin_balance(app), pending(app)
    raw = qr_sale(t, 8_888)
    shown = send(host, raw)
    assert shown["39"] == "09" and len(shown["37"]) == 12 and "38" not in shown
    payload = shown["63"]
    objects = qr.decode_mpm(payload)
    assert objects["01"] == "12" and objects["54"] == "88.88" and objects["26"]["01"] == MERCHANT
    row = journal_row(app, raw)
    assert (row.status, row.pan_masked, row.entry_mode, row.card_id) == ("pending", "QR", "032", None)
    assert send(host, status_of(t, raw))["39"] == "09"

    buyer(app, wallet.scan, payload, LIN)

    paid = send(host, status_of(t, raw))
    assert paid["39"] == "00" and len(paid["38"]) == 6 and paid["37"] == shown["37"]
    assert lin_balance(app) == before - 8_888
    assert pending(app) == pending_before + 8_888 - wallet_fee(8_888)
    ledger_ok(app)


def test_an_unpaid_collection_code_expires_and_the_status_says_so(app: App, host: IsoHost, clock) -> None:
    t = terminal(app, "CAFE0001")
    raw = qr_sale(t, 1_000)
    payload = send(host, raw)["63"]
    clock.advance(301)  # limits.wallet_trade_timeout_s: 5 minutes
    expired = send(host, status_of(t, raw))
    assert (expired["39"], expired["44"]) == ("05", "TRADEEXPIRED")
    assert journal_row(app, raw).status == "declined"
    with pytest.raises(WalletError):
        buyer(app, wallet.scan, payload, LIN)
    assert send(host, status_of(t, raw))["39"] == "05"  # stays final
    assert send(host, cancel_of(t, raw))["39"] == "00"  # nothing to undo
    ledger_ok(app)


def test_a_cancelled_collection_code_cannot_be_paid(app: App, host: IsoHost) -> None:
    t = terminal(app, "CAFE0001")
    before = lin_balance(app)
    raw = qr_sale(t, 1_500)
    payload = send(host, raw)["63"]
    assert send(host, cancel_of(t, raw))["39"] == "00"
    with pytest.raises(WalletError):
        buyer(app, wallet.scan, payload, LIN)
    assert lin_balance(app) == before
    ledger_ok(app)


# --- reconciliation and group commit ---------------------------------------------------------


def test_reconciliation_counts_approved_wallet_sales_like_card_sales(app: App, host: IsoHost, cards,
                                                                     clock) -> None:
    t = terminal(app, "CAFE0001")
    assert send(host, chip_sale(t, cards["visa-cvn18-approve"], 1_000))["39"] == "00"
    assert send(host, code_sale(t, fresh_code(app, clock), 2_000))["39"] == "00"
    scanned = qr_sale(t, 3_000)
    buyer(app, wallet.scan, send(host, scanned)["63"], LIN)
    assert send(host, status_of(t, scanned))["39"] == "00"
    cancelled = code_sale(t, fresh_code(app, clock), 40_000)
    assert send(host, cancelled)["39"] == "09"
    assert send(host, cancel_of(t, cancelled))["39"] == "00"
    assert send(host, qr_sale(t, 5_000))["39"] == "09"  # still pending: not counted

    cards_only = t.message("0500", {"74": "0000000000", "76": "0000000001", "86": "0000000000000000",
                                    "88": "0000000000001000"})
    refused = send(host, cards_only)
    assert refused["39"] == "95" and (int(refused["76"]), int(refused["88"])) == (3, 6_000)
    agreed = t.message("0500", {"74": "0000000000", "76": "0000000003", "86": "0000000000000000",
                                "88": "0000000000006000"})
    assert send(host, agreed)["39"] == "00"
    ledger_ok(app)


def test_wallet_requests_in_a_batch_are_answered_as_one_by_one(app: App, host: IsoHost, cards, clock) -> None:
    t1, t2 = terminal(app, "CAFE0001"), terminal(app, "CAFE0002")
    card = cards["visa-cvn18-approve"]
    before, pending_before = lin_balance(app), pending(app)
    code = fresh_code(app, clock)
    card_first = chip_sale(t1, card, 1_000)
    coded = code_sale(t1, code, 1_200)
    shown = qr_sale(t2, 2_400)
    card_after = chip_sale(t1, card, 600)  # the same terminal after its wallet request: kept in order
    waiting = code_sale(t2, fresh_code(app, clock), 20_001)
    answers = [iso8583.decode_message(a) for a in host.handle_batch([card_first, coded, shown, card_after, waiting])]
    assert [a["39"] for a in answers] == ["00", "00", "09", "00", "09"]
    assert len({a["37"] for a in answers}) == 5
    buyer(app, wallet.scan, answers[2]["63"], LIN)
    buyer(app, wallet.confirm, LIN)
    follow = [iso8583.decode_message(a) for a in host.handle_batch(
        [status_of(t2, shown), chip_sale(t1, card, 400), status_of(t2, waiting), cancel_of(t1, coded)])]
    assert [a["39"] for a in follow] == ["00", "00", "00", "00"]
    assert lin_balance(app) == before - 2_400 - 20_001  # the code payment was cancelled (refunded)
    fees = wallet_fee(1_200) + wallet_fee(2_400) + wallet_fee(20_001)
    assert pending(app) - pending_before == (1_000 + 600 + 400 - fee_minor(1_000) - fee_minor(600) - fee_minor(400)
                                            + 2_400 + 20_001 - fees)
    assert card_available(app, card["id"]) == card["available_minor"] - 2_000
    # Every answer was recorded: replayed in a batch, the same answers and no new money.
    assert [iso8583.decode_message(a) for a in host.handle_batch([coded, shown])] == [answers[1], answers[2]]
    assert lin_balance(app) == before - 2_400 - 20_001
    ledger_ok(app)
