"""Prepaid cards on the platform's own BIN (services/prepaid.py) on SQLite and PostgreSQL:
issue, top-ups, freeze, expiry, online payments and refunds, the float report — and, with no
change to the host, sales and balance inquiries over ISO 8583 at a paypos terminal (on-us).
The ledger check passes after every step."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from paypos.bootstrap import App
from paypos.domain.pricing import fee_minor
from paypos.networks.sandbox import wallet_catalog
from paypos.protocol import emv
from paypos.protocol.card import luhn_valid
from paypos.services import ledger as ledger_service
from paypos.services import prepaid
from paypos.services import sandbox as sandbox_service
from paypos.services.host import IsoHost
from paypos.terminal.simulator import SoftTerminal

from tests.conftest import FakeClock
from test_host import host, send, terminal  # noqa: F401 — fixtures

CAFE = "PPCAFE000000001"
SHOP = "PPSHOP000000001"
LIN_WEI, ZHANG_MIN, SAM_LEE = (user.user_id for user in wallet_catalog.USERS)  # sandbox wallet users


# --- helpers ------------------------------------------------------------------------------------


def books_ok(app: App) -> None:
    """`paypos ledger check` finds nothing, and the float report agrees for every program."""
    assert ledger_service.check(app.engine, app.clock) == []
    with app.uow(write=False) as uow:
        assert all(row["agrees"] for row in prepaid.float_report(uow))


def issue(app: App, issue_id: str = "issue-1", *, merchant: str = CAFE, kind: str = "reloadable",
          load: int = 10_000, pin: str = "1234", **extra: Any) -> dict[str, Any]:
    return prepaid.transact(app, lambda uow: prepaid.issue_card(
        uow, app.vault, program_merchant_id=merchant, kind=kind, initial_load_minor=load, pin=pin,
        issue_id=issue_id, now=app.clock(), **extra))


def top_up(app: App, card_id: str, amount: int, topup_id: str = "topup-1", source: str = "cash",
           user: str | None = None) -> dict[str, Any]:
    return prepaid.transact(app, lambda uow: prepaid.top_up(
        uow, card_id=card_id, amount_minor=amount, source=source, topup_id=topup_id, wallet_user_id=user,
        now=app.clock()))


def wallet_balance(app: App, user_id: str) -> int:
    with app.uow(write=False) as uow:
        account = uow.ledger.find_account(f"wallet_user:{user_id}", "wallet_balance", "CNY")
    assert account is not None
    return account.balances.available_credit_balance


def card_balance(app: App, card_id: str) -> int:
    with app.uow(write=False) as uow:
        return int(prepaid.balance(uow, card_id)["balance_minor"])


def float_row(app: App, merchant: str = CAFE) -> dict[str, Any]:
    with app.uow(write=False) as uow:
        return next(r for r in prepaid.float_report(uow) if r["program_merchant_id"] == merchant)


def terminal_card(app: App, card_id: str) -> dict[str, Any]:
    """What a test card carries for a terminal (PAN, track 2, IMK-AC, ...), as the sandbox lists it."""
    with app.uow(write=False) as uow:
        (row,) = sandbox_service.list_cards(uow, app.vault, {card_id})
    return row


@pytest.fixture
def cafe(app: App, host: IsoHost) -> SoftTerminal:
    """CAFE0001, one per test: its STAN and DUKPT counter rise from request to request."""
    return terminal(app, "CAFE0001")


def tap(t: SoftTerminal, card: dict[str, Any], amount: int, processing_code: str = "000000") -> bytes:
    return t.message("0200", {"3": processing_code, "4": f"{amount:012d}", "22": "072",
                              "23": card["psn"].zfill(3), "35": card["track2"],
                              "55": emv.encode_field_55(t.icc(card, amount))})


def swipe(t: SoftTerminal, card: dict[str, Any], amount: int, pin: str | None) -> bytes:
    return t.message("0200", {"3": "000000", "4": f"{amount:012d}", "22": "021" if pin else "022",
                              "35": card["track2"]}, pin=pin, pan=card["pan"])


class refused:  # noqa: N801 — used like pytest.raises
    """``with refused("card_frozen"):`` — a PrepaidError with that code, nothing else."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:  # type: ignore[no-untyped-def]
        assert exc is not None, f"expected PrepaidError {self.code}, nothing was raised"
        assert isinstance(exc, prepaid.PrepaidError), exc
        assert exc.code == self.code, (exc.code, str(exc))
        return True


# --- issue ---------------------------------------------------------------------------------------


def test_an_issued_card_has_a_luhn_valid_16_digit_pan_on_the_platform_bin_and_listings_mask_it(
    app: App, host: IsoHost
) -> None:
    card = issue(app, load=25_000)
    pan = card["pan"]
    assert len(pan) == 16 and pan.startswith(prepaid.PREPAID_BIN) and luhn_valid(pan)
    assert card["masked_pan"] == pan[:6] + "******" + pan[-4:]
    assert card["balance_minor"] == 25_000 and card["currency"] == "CNY" and card["status"] == "active"
    assert card["expiry"] == "2911"  # issued 2026-11: three years
    assert len(card["cvv2"]) == 3
    with app.uow(write=False) as uow:
        listed = prepaid.list_cards(uow, CAFE)
    assert [c["card_id"] for c in listed] == [card["card_id"]]
    assert pan not in repr(listed) and listed[0]["masked_pan"] == card["masked_pan"]
    books_ok(app)


def test_cards_get_consecutive_numbers_on_the_bin(app: App, host: IsoHost) -> None:
    first, second = issue(app, "a"), issue(app, "b")
    assert first["pan"][:15] == prepaid.PREPAID_BIN + "00000001"
    assert second["pan"][:15] == prepaid.PREPAID_BIN + "00000002"
    assert luhn_valid(first["pan"]) and luhn_valid(second["pan"])


def test_issuing_again_with_the_same_issue_id_returns_the_same_card_and_loads_once(app: App, host: IsoHost) -> None:
    first = issue(app, load=5_000)
    again = issue(app, load=5_000)
    assert again == first
    assert card_balance(app, first["card_id"]) == 5_000
    with app.uow(write=False) as uow:
        assert len(prepaid.list_cards(uow)) == 1
    books_ok(app)


def test_two_merchants_may_use_the_same_issue_id(app: App, host: IsoHost) -> None:
    cafe, shop = issue(app, "same"), issue(app, "same", merchant=SHOP)
    assert cafe["card_id"] != shop["card_id"] and shop["currency"] == "USD"


@pytest.mark.parametrize("change", [{"load": 6_000}, {"kind": "gift"}, {"pin": "9999"}, {"expiry": "3001"}])
def test_the_same_issue_id_with_other_parameters_is_an_idempotency_mismatch(
    app: App, host: IsoHost, change: dict[str, Any]
) -> None:
    issue(app, load=5_000)
    with refused("idempotency_mismatch"):
        issue(app, **{"load": 5_000, **change})
    with app.uow(write=False) as uow:
        assert len(prepaid.list_cards(uow)) == 1


def test_concurrent_issues_of_one_id_make_one_card_and_of_many_ids_distinct_pans(app: App, host: IsoHost) -> None:
    answers: list[dict[str, Any]] = []
    barrier = threading.Barrier(6)

    def issuer(issue_id: str) -> None:
        barrier.wait()
        answers.append(issue(app, issue_id))

    threads = [threading.Thread(target=issuer, args=(name,)) for name in ("x", "x", "x", "y", "z", "w")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 6
    by_id = {a["card_id"]: a["pan"] for a in answers}
    assert len(by_id) == 4 and len(set(by_id.values())) == 4
    assert card_balance(app, prepaid.card_id_for(CAFE, "x")) == 10_000
    books_ok(app)


@pytest.mark.parametrize(("change", "code"), [
    ({"kind": "gift", "load": 0}, "invalid_amount"),
    ({"load": -1}, "invalid_amount"),
    ({"load": prepaid.PREPAID_BALANCE_MAX_MINOR + 1}, "balance_limit"),
    ({"kind": "debit"}, "invalid_kind"),
    ({"pin": "12"}, "invalid_pin"),
    ({"pin": "1234567"}, "invalid_pin"),
    ({"pin": "12a4"}, "invalid_pin"),
    ({"expiry": "2610"}, "invalid_expiry"),
    ({"expiry": "2913"}, "invalid_expiry"),
    ({"merchant": "NOSUCHMERCHANT1"}, "merchant_not_found"),
    ({"issue_id": "has space"}, "invalid_id"),
    ({"issue_id": "x" * 41}, "invalid_id"),
    ({"interfaces": ()}, "invalid_interfaces"),
])
def test_bad_issue_input_is_refused_and_writes_nothing(
    app: App, host: IsoHost, change: dict[str, Any], code: str
) -> None:
    with refused(code):
        issue(app, **change)
    with app.uow(write=False) as uow:
        assert prepaid.list_cards(uow) == []
    books_ok(app)


def test_a_reloadable_card_may_start_empty(app: App, host: IsoHost) -> None:
    card = issue(app, load=0)
    assert card["balance_minor"] == 0
    books_ok(app)


# --- top-ups -------------------------------------------------------------------------------------


def test_a_cash_top_up_debits_the_merchants_float_and_a_replay_posts_once(app: App, host: IsoHost) -> None:
    card = issue(app, load=1_000)
    first = top_up(app, card["card_id"], 2_500)
    assert first["balance_minor"] == 3_500
    assert top_up(app, card["card_id"], 2_500) == first
    assert card_balance(app, card["card_id"]) == 3_500
    assert float_row(app)["float_minor"] == 3_500
    books_ok(app)


def test_a_top_up_id_reused_for_another_amount_or_card_is_a_mismatch(app: App, host: IsoHost) -> None:
    card, other = issue(app, "a"), issue(app, "b")
    top_up(app, card["card_id"], 100)
    with refused("idempotency_mismatch"):
        top_up(app, card["card_id"], 200)
    with refused("idempotency_mismatch"):
        top_up(app, other["card_id"], 100)
    assert card_balance(app, other["card_id"]) == 10_000


def test_a_gift_card_refuses_top_ups(app: App, host: IsoHost) -> None:
    card = issue(app, kind="gift", load=5_000)
    with refused("gift_card_not_reloadable"):
        top_up(app, card["card_id"], 100)
    assert card_balance(app, card["card_id"]) == 5_000
    books_ok(app)


def test_a_top_up_past_the_balance_limit_is_refused(app: App, host: IsoHost) -> None:
    card = issue(app, load=prepaid.PREPAID_BALANCE_MAX_MINOR - 100)
    top_up(app, card["card_id"], 100, "fill")
    with refused("balance_limit"):
        top_up(app, card["card_id"], 1, "over")
    assert card_balance(app, card["card_id"]) == prepaid.PREPAID_BALANCE_MAX_MINOR


@pytest.mark.parametrize(("args", "code"), [
    ({"amount": 0}, "invalid_amount"),
    ({"amount": -5}, "invalid_amount"),
    ({"source": "card"}, "invalid_source"),
    ({"source": "wallet"}, "invalid_source"),
    ({"user": "U1"}, "invalid_source"),
    ({"card_id": "prepaid-nope"}, "card_not_found"),
    ({"card_id": "visa-cvn18-approve"}, "card_not_found"),  # a card, but not a prepaid one
])
def test_bad_top_ups_are_refused(app: App, host: IsoHost, args: dict[str, Any], code: str) -> None:
    card = issue(app)
    with refused(code):
        top_up(app, **{"card_id": card["card_id"], "amount": 100, **args})
    assert card_balance(app, card["card_id"]) == 10_000


def test_a_wallet_top_up_debits_the_wallet_and_not_the_float(app: App, host: IsoHost) -> None:
    card = issue(app, load=1_000)
    lin_before = wallet_balance(app, LIN_WEI)
    assert top_up(app, card["card_id"], 4_000, source="wallet", user=LIN_WEI)["balance_minor"] == 5_000
    assert wallet_balance(app, LIN_WEI) == lin_before - 4_000
    with refused("insufficient_funds"):
        top_up(app, card["card_id"], wallet_balance(app, ZHANG_MIN) + 1, "again", source="wallet", user=ZHANG_MIN)
    with refused("wallet_not_found"):
        top_up(app, card["card_id"], 100, "nobody", source="wallet", user="2088100000009999")
    with refused("wallet_not_found"):  # a USD wallet cannot load a CNY card
        top_up(app, card["card_id"], 100, "sam", source="wallet", user=SAM_LEE)
    row = float_row(app)
    assert (row["float_minor"], row["wallet_loaded_minor"], row["unspent_minor"]) == (1_000, 4_000, 5_000)
    books_ok(app)


# --- at the terminal (ISO 8583, on-us) --------------------------------------------------------------


@pytest.mark.parametrize("entry", ["contactless", "swipe with PIN", "swipe without PIN"])
def test_a_sale_at_the_terminal_debits_the_prepaid_card_exactly(
    app: App, host: IsoHost, cafe: SoftTerminal, entry: str
) -> None:
    card = terminal_card(app, issue(app, load=20_000)["card_id"])
    pin = "1234" if entry == "swipe with PIN" else None
    raw = tap(cafe, card, 1_234) if entry == "contactless" else swipe(cafe, card, 1_234, pin)
    response = send(host, raw)
    assert response["39"] == "00", response
    assert card_balance(app, card["id"]) == 20_000 - 1_234
    assert send(host, raw) == response  # a retransmission posts nothing more
    assert card_balance(app, card["id"]) == 20_000 - 1_234
    books_ok(app)


def test_a_magstripe_only_card_has_no_chip_and_pays_by_swipe(app: App, host: IsoHost, cafe: SoftTerminal) -> None:
    issued = issue(app, interfaces=(prepaid.CardInterface.MAGSTRIPE,))
    card = terminal_card(app, issued["card_id"])
    assert (card["cvn"], card["service_code"], card["imk_ac"]) == (None, "101", None)
    assert send(host, swipe(cafe, card, 300, None))["39"] == "00"
    assert card_balance(app, card["id"]) == 10_000 - 300


def test_a_wrong_pin_at_the_terminal_is_55(app: App, host: IsoHost, cafe: SoftTerminal) -> None:
    card = terminal_card(app, issue(app, pin="2468")["card_id"])
    assert send(host, swipe(cafe, card, 500, "1357"))["39"] == "55"
    assert send(host, swipe(cafe, card, 500, "2468"))["39"] == "00"


def test_a_sale_above_the_balance_is_51_and_posts_nothing(app: App, host: IsoHost, cafe: SoftTerminal) -> None:
    card = terminal_card(app, issue(app, load=1_000)["card_id"])
    assert send(host, tap(cafe, card, 1_001))["39"] == "51"
    assert card_balance(app, card["id"]) == 1_000
    books_ok(app)


def test_a_balance_inquiry_answers_field_54_with_the_balance_after_a_top_up_and_a_sale(
    app: App, host: IsoHost, cafe: SoftTerminal
) -> None:
    card = terminal_card(app, issue(app, load=3_000)["card_id"])
    top_up(app, card["id"], 2_000)
    assert send(host, tap(cafe, card, 750))["39"] == "00"
    response = send(host, tap(cafe, card, 0, processing_code="310000"))
    assert response["39"] == "00"
    assert response["54"] == f"0002156C{3_000 + 2_000 - 750:012d}"
    books_ok(app)


def test_a_frozen_card_refuses_top_ups_and_payments_and_gets_62_at_the_terminal_until_unfrozen(
    app: App, host: IsoHost, cafe: SoftTerminal
) -> None:
    card = terminal_card(app, issue(app, load=5_000)["card_id"])
    assert send(host, tap(cafe, card, 100))["39"] == "00"  # the host has the card in its cache now
    frozen = prepaid.transact(app, lambda uow: prepaid.freeze(uow, card["id"]))
    assert frozen["status"] == "frozen"
    books_ok(app)
    assert send(host, tap(cafe, card, 100))["39"] == "62"
    with refused("card_frozen"):
        top_up(app, card["id"], 100)
    with refused("card_frozen"):
        prepaid.transact(app, lambda uow: prepaid.pay_online(
            uow, card_id=card["id"], merchant_id=CAFE, amount_minor=100, payment_id="p1", now=app.clock()))
    assert card_balance(app, card["id"]) == 4_900
    assert prepaid.transact(app, lambda uow: prepaid.unfreeze(uow, card["id"], app.clock()))["status"] == "active"
    assert send(host, tap(cafe, card, 100))["39"] == "00"
    assert card_balance(app, card["id"]) == 4_800
    books_ok(app)


def test_an_expired_card_gets_54_at_the_terminal_and_stays_unusable(
    app: App, host: IsoHost, cafe: SoftTerminal, clock: FakeClock
) -> None:
    card = terminal_card(app, issue(app, "expiring", expiry="2612")["card_id"])
    frozen = issue(app, "frozen-then-expired", expiry="2612")["card_id"]
    assert send(host, tap(cafe, card, 100))["39"] == "00"
    prepaid.transact(app, lambda uow: prepaid.freeze(uow, frozen))
    clock.advance(45 * 24 * 3600)  # 2027-01: past December 2026
    assert send(host, tap(cafe, card, 100))["39"] == "54"
    with refused("card_expired"):
        top_up(app, card["id"], 100)
    with refused("card_expired"):
        prepaid.transact(app, lambda uow: prepaid.unfreeze(uow, frozen, app.clock()))
    with app.uow(write=False) as uow:
        assert prepaid.balance(uow, card["id"], app.clock())["expired"] is True
        assert prepaid.balance(uow, frozen, app.clock())["status"] == "frozen"
    assert card_balance(app, card["id"]) == 10_000 - 100
    books_ok(app)


# --- online payments and refunds -------------------------------------------------------------------


def pay(app: App, card_id: str, amount: int, payment_id: str = "pay-1", merchant: str = CAFE,
        cvv2: str | None = None) -> dict[str, Any]:
    return prepaid.transact(app, lambda uow: prepaid.pay_online(
        uow, card_id=card_id, merchant_id=merchant, amount_minor=amount, payment_id=payment_id, now=app.clock(),
        cvv2=cvv2, vault=app.vault))


def refund(app: App, card_id: str, amount: int, refund_id: str = "refund-1") -> dict[str, Any]:
    return prepaid.transact(app, lambda uow: prepaid.refund(
        uow, card_id=card_id, merchant_id=CAFE, amount_minor=amount, refund_id=refund_id, now=app.clock()))


def test_an_online_payment_moves_the_amount_to_the_merchant_and_the_fee_to_the_platform_once(
    app: App, host: IsoHost
) -> None:
    card = issue(app, load=10_000)
    paid = pay(app, card["card_id"], 4_000, cvv2=card["cvv2"])
    assert paid["balance_minor"] == 6_000 and paid["fee_minor"] == fee_minor(4_000)
    assert pay(app, card["card_id"], 4_000, cvv2=card["cvv2"]) == paid
    with app.uow(write=False) as uow:
        pending = uow.ledger.find_account(f"merchant:{CAFE}", "merchant_pending", "CNY")
        fees = uow.ledger.find_account("platform", "fees_revenue", "CNY")
    assert pending.balances.net_posted == 4_000 - fee_minor(4_000)
    assert fees.balances.net_posted == fee_minor(4_000)
    with refused("insufficient_funds"):
        pay(app, card["card_id"], 6_001, "pay-2")
    with refused("idempotency_mismatch"):
        pay(app, card["card_id"], 1, "pay-1")
    books_ok(app)


def test_an_online_payment_with_a_wrong_cvv2_or_in_another_currency_is_refused(app: App, host: IsoHost) -> None:
    card = issue(app)
    wrong = "000" if card["cvv2"] != "000" else "001"
    with refused("invalid_cvv2"):
        pay(app, card["card_id"], 100, cvv2=wrong)
    with refused("currency_mismatch"):
        pay(app, card["card_id"], 100, merchant=SHOP)
    assert card_balance(app, card["card_id"]) == 10_000


def test_a_refund_returns_to_the_card_even_when_frozen_and_is_idempotent(app: App, host: IsoHost) -> None:
    card = issue(app, load=10_000)
    pay(app, card["card_id"], 4_000)
    prepaid.transact(app, lambda uow: prepaid.freeze(uow, card["card_id"]))
    first = refund(app, card["card_id"], 1_500)
    assert first["balance_minor"] == 7_500
    assert refund(app, card["card_id"], 1_500) == first
    with refused("merchant_insufficient_funds"):
        refund(app, card["card_id"], 10_000, "too-much")
    row = float_row(app)
    assert (row["unspent_minor"], row["float_minor"], row["redeemed_minor"]) == (7_500, 10_000, 2_500)
    books_ok(app)


# --- the float --------------------------------------------------------------------------------------


def test_the_float_equals_the_unspent_balance_until_cards_are_spent(
    app: App, host: IsoHost, cafe: SoftTerminal
) -> None:
    one, two = issue(app, "one", load=3_000), issue(app, "two", kind="gift", load=2_000)
    top_up(app, one["card_id"], 500)
    issue(app, "usd", merchant=SHOP, load=700)
    row = float_row(app)
    assert row == {"program_merchant_id": CAFE, "currency": "CNY", "cards": 2, "unspent_minor": 5_500,
                   "float_minor": 5_500, "wallet_loaded_minor": 0, "redeemed_minor": 0, "agrees": True}
    assert float_row(app, SHOP)["unspent_minor"] == float_row(app, SHOP)["float_minor"] == 700
    card = terminal_card(app, two["card_id"])
    assert send(host, tap(cafe, card, 1_200))["39"] == "00"
    row = float_row(app)
    assert (row["unspent_minor"], row["float_minor"], row["redeemed_minor"]) == (4_300, 5_500, 1_200)
    books_ok(app)
