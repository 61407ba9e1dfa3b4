"""Pricing plans on SQLite and PostgreSQL (services/pricing.py, docs/pricing.md): plan and
assignment history, the plan's fee at authorization for each method through the real paths
(host chip, contactless, credit and prepaid cards; online card; wallet balance; prepaid
online), promotions ending, and monthly billing (idempotent, owed charges, device threshold
met or missed, deposit returned once)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from paypos.adapters.db.schema import host_transactions
from paypos.bootstrap import App, init_database
from paypos.domain.ledger import TransferRequest
from paypos.domain.online_payment import card_entry
from paypos.domain.pricing import PaymentMethod, PricingError, plan_from_json
from paypos.networks.sandbox import catalog
from paypos.protocol import emv, iso8583
from paypos.services import ledger as ledger_service
from paypos.services import audit, online_payments, prepaid, pricing, wallet
from paypos.services import sandbox as sandbox_service
from paypos.services.host import IsoHost
from paypos.terminal.simulator import SoftTerminal
from tests.conftest import FakeClock
from tests.integration.online_api import CAFE_AUTH, sandbox_client

CAFE = catalog.CAFE.merchant_id
SHOP = catalog.SHOP.merchant_id
# One rate per method, so each path's fee names the method it was priced as (CNY 100.00 → rate).
RATES = {PaymentMethod.DEBIT_CARD.value: 100, "credit_card": 110, "contactless": 120, "wallet_balance": 130, "wallet_card": 140,
         "credit_pay": 150, "prepaid": 160, "card_not_present": 170}


@pytest.fixture
def host(app: App) -> IsoHost:
    init_database(app, sandbox=True)
    return IsoHost(app)


def create(app: App, plan_id: str, currency: str = "CNY", **spec: Any) -> None:
    plan = plan_from_json({"id": plan_id, "name": plan_id.title(), "currency": currency, "rates": RATES} | spec)
    with app.uow() as uow:
        pricing.create_plan(uow, plan, app.clock(), "test")
        uow.commit()


def assign(app: App, plan_id: str, merchant: str = CAFE, after: timedelta = timedelta(0)) -> int:
    app.clock.advance(1)  # type: ignore[attr-defined]  # the fake clock stands still: after the seed's
    with app.uow() as uow:
        assignment, _ = pricing.assign(uow, merchant, plan_id, app.clock() + after, app.clock(), "test")
        uow.commit()
    return assignment.id


def bill(app: App, month: str) -> dict[str, Any]:
    with app.uow() as uow:
        report = pricing.bill_month(uow, month, app.clock()).as_json()
        uow.commit()
    return report


def balance(app: App, owner: str, code: str, currency: str = "CNY") -> int:
    return next((a.balances.net_posted for a in ledger_service.accounts(app.engine, [owner])
                 if a.code == code and a.currency == currency), 0)


def fund_available(app: App, amount: int, merchant: str = CAFE, ref: str = "fund") -> None:
    """Credit the merchant's available balance as settlement would (from scheme clearing)."""
    with app.uow() as uow:
        source = uow.ledger.find_account_id("platform", "scheme_clearing", "CNY")
        target = uow.ledger.find_account_id(f"merchant:{merchant}", "merchant_available", "CNY")
        [outcome] = uow.ledger.create_transfers([TransferRequest(f"test:{ref}", source, target, amount, "CNY")],
                                                app.clock())
        assert outcome.result.ok
        uow.commit()


def terminal(app: App, terminal_id: str = "CAFE0001") -> SoftTerminal:
    with app.uow(write=False) as uow:
        row = next(t for t in sandbox_service.list_terminals(uow, app.vault) if t["terminal_id"] == terminal_id)
    return SoftTerminal(**{k: row[k] for k in ("terminal_id", "merchant_id", "currency", "bdk", "initial_ksn",
                                               "mac_required")})


def card(app: App, card_id: str) -> dict[str, Any]:
    with app.uow(write=False) as uow:
        (row,) = sandbox_service.list_cards(uow, app.vault, {card_id})
    return row


def sale(host: IsoHost, t: SoftTerminal, card_row: dict[str, Any], amount: int, entry: str) -> dict[str, str]:
    """A card-present sale read as field 22 says: 051 chip with PIN, 072 contactless."""
    pin = "1234" if entry[:2] == "05" else None
    raw = t.message("0200", {"3": "000000", "4": f"{amount:012d}", "22": entry, "23": card_row["psn"].zfill(3),
                             "35": card_row["track2"], "55": emv.encode_field_55(t.icc(card_row, amount))},
                    pin=pin, pan=card_row["pan"])
    response = host.handle(raw)
    assert response is not None
    return iso8583.decode_message(response)


def journal(app: App, rrn: str) -> Any:
    with app.engine.connect() as connection:
        return connection.execute(sa.select(host_transactions.c.fee_minor, host_transactions.c.method)
                                  .where(host_transactions.c.id == int(rrn))).one()


# --- plans and assignments ---------------------------------------------------------------------------


def test_the_sandbox_puts_every_merchant_on_a_standard_plan_in_its_currency(app: App, host: IsoHost) -> None:
    with app.uow(write=False) as uow:
        assert [a.plan_id for a in uow.pricing.assignments(CAFE)] == ["standard"]
        assert [a.plan_id for a in uow.pricing.assignments(SHOP)] == ["standard-usd"]
        assert pricing.quote(uow, CAFE, "credit_pay", 10_000, app.clock())["fee_minor"] == 80
        assert pricing.quote(uow, CAFE, "contactless", 12_345, app.clock())["fee_minor"] == 74


def test_the_plan_in_force_at_each_moment_applies_and_history_is_kept(app: App, host: IsoHost,
                                                                      clock: FakeClock) -> None:
    create(app, "early")
    create(app, "late", rates={"*": 10})
    assign(app, "early", after=timedelta(days=1))
    assign(app, "late", after=timedelta(days=10))
    now = clock.now
    with app.uow(write=False) as uow:
        plans = [pricing.plan_at(uow, CAFE, "CNY", now + timedelta(days=d)).id for d in (0, 1, 9, 10, 400)]
        assert plans == ["standard", "early", "early", "late", "late"]
        assert [a.plan_id for a in uow.pricing.assignments(CAFE)] == ["standard", "early", "late"]
        assert pricing.plan_at(uow, CAFE, "USD", now + timedelta(days=2)).id == "standard"  # another currency


def test_an_assignment_again_is_a_no_op_and_bad_ones_are_refused(app: App, host: IsoHost) -> None:
    create(app, "one")
    create(app, "two")
    create(app, "dollars", "USD")
    start = app.clock() + timedelta(hours=1)
    with app.uow() as uow:
        first, created = pricing.assign(uow, CAFE, "one", start, app.clock(), "test")
        again, created_again = pricing.assign(uow, CAFE, "one", start, app.clock(), "test")
        uow.commit()
    assert (again, created, created_again) == (first, True, False)
    for plan_id, merchant, at, field in (("two", CAFE, start, "from"),  # another plan at the same moment
                                         ("one", CAFE, app.clock() - timedelta(seconds=1), "from"),  # past
                                         ("nope", CAFE, start, "plan"),
                                         ("one", "NOPE", start, "merchant"),
                                         ("dollars", CAFE, start, "plan")):  # another currency
        with app.uow() as uow, pytest.raises(PricingError) as refused:
            pricing.assign(uow, merchant, plan_id, at, app.clock(), "test")
        assert refused.value.field == field
    with app.uow(write=False) as uow:
        assert [a.plan_id for a in uow.pricing.assignments(CAFE)] == ["standard", "one"]
        logged = audit.entries(uow, merchant_id=CAFE, subject_type="merchant")
    assert [(e.action, e.actor) for e in logged][:2] == [("pricing.assign", "test"), ("pricing.assign", "system")]


def test_a_plan_is_immutable_creating_it_again_is_a_no_op(app: App, host: IsoHost) -> None:
    create(app, "fixed", fixed_fee_minor=5)
    create(app, "fixed", fixed_fee_minor=5)
    with pytest.raises(PricingError, match="immutable"):
        create(app, "fixed", fixed_fee_minor=6)
    with app.uow(write=False) as uow:
        assert uow.pricing.get_plan("fixed").fixed_fee_minor == 5  # type: ignore[union-attr]
        logged = audit.entries(uow, subject_type="pricing_plan", subject_id="fixed")
    assert [(e.action, e.actor) for e in logged] == [("pricing_plan.create", "test")]  # created once


# --- fees at authorization ---------------------------------------------------------------------------


@pytest.mark.parametrize(("card_id", "entry", "method"), [
    ("visa-cvn18-approve", "051", "debit_card"),
    ("visa-cvn18-approve", "072", "contactless"),
    ("visa-cvn10-approve", "051", "credit_card"),
    ("unionpay-prepaid-approve", "072", "prepaid"),  # prepaid however it is read
])
def test_a_host_sale_pays_its_plans_fee_for_the_method_read(app: App, host: IsoHost, card_id: str, entry: str,
                                                           method: str) -> None:
    create(app, "methods")
    t = terminal(app)
    sale(host, t, card(app, card_id), 1_000, entry)  # on the standard plan, the host's cache warm
    assign(app, "methods")  # clears this process's cache: the next sale sees it

    response = sale(host, t, card(app, card_id), 10_000, entry)

    assert response["39"] == "00"
    assert tuple(journal(app, response["37"])) == (RATES[method], method)
    assert balance(app, "platform", "fees_revenue") == 6 + RATES[method]  # 60 bps of 10.00, then the plan's
    assert ledger_service.check(app.engine, app.clock) == []


def test_a_completion_is_priced_as_its_pre_authorization_was_read(app: App, host: IsoHost) -> None:
    create(app, "methods")
    assign(app, "methods")
    t, visa = terminal(app), card(app, "visa-cvn18-approve")
    raw = t.message("0100", {"3": "000000", "4": "000000020000", "22": "072", "23": visa["psn"].zfill(3),
                             "35": visa["track2"], "55": emv.encode_field_55(t.icc(visa, 20_000))})
    auth = iso8583.decode_message(raw)
    assert iso8583.decode_message(host.handle(raw))["39"] == "00"  # type: ignore[arg-type]
    original = iso8583.OriginalData("0100", auth["11"], auth["7"], "0", "0")
    completion = t.message("0220", {"3": "000000", "4": "000000010000",
                                    "90": iso8583.format_original_data_elements(original)})
    done = iso8583.decode_message(host.handle(completion))  # type: ignore[arg-type]
    assert done["39"] == "00"
    assert tuple(journal(app, done["37"])) == (RATES["contactless"], "contactless")


def test_a_plan_with_cap_min_and_fixed_fee_is_what_the_host_posts(app: App, host: IsoHost) -> None:
    create(app, "capped", rates={"*": {"rate_bps": 100, "min_minor": 50, "cap_minor": 300}}, fixed_fee_minor=20)
    assign(app, "capped")
    t, visa = terminal(app), card(app, "visa-cvn18-approve")
    fees = [journal(app, sale(host, t, visa, amount, "051")["37"]).fee_minor for amount in (1_000, 20_000, 90_000)]
    assert fees == [50 + 20, 200 + 20, 300 + 20]
    assert balance(app, f"merchant:{CAFE}", "merchant_pending") == 111_000 - sum(fees)


def test_a_promotion_prices_taps_until_it_ends(app: App, host: IsoHost, clock: FakeClock) -> None:
    ends = clock.now + timedelta(days=3)
    create(app, "launch", promotions=[{"name": "free taps", "rates_bps": {"contactless": 0},
                                       "ends_at": ends.isoformat()}])
    assign(app, "launch")
    t, visa = terminal(app), card(app, "visa-cvn18-approve")
    during = sale(host, t, visa, 10_000, "072")
    clock.now = ends
    after = sale(host, t, visa, 10_000, "072")
    assert (journal(app, during["37"]).fee_minor, journal(app, after["37"]).fee_minor) == (0, 120)


def test_an_online_card_payment_pays_the_card_not_present_fee(app: App) -> None:
    with sandbox_client(app) as client:
        create(app, "methods")
        assign(app, "methods")
        created = client.post("/v1/payment_requests", json={"amount": 10_000, "currency": "CNY", "order_id": "o-1"},
                              headers=CAFE_AUTH)
        visa = card(app, "visa-cvn18-approve")
        entry = card_entry(pan=visa["pan"], expiry=f"{visa['expiry'][2:]}/{visa['expiry'][:2]}",
                                           cvv2=visa["cvv2"], name="Test Buyer")
        with app.uow() as uow:
            outcome = online_payments.submit_card(uow, app.vault, created.json()["id"], entry, now=app.clock(),
                                                  base_url="http://testserver/")
            uow.commit()
    assert outcome.payment.status.value == "succeeded"
    with app.uow(write=False) as uow:
        assert online_payments.sale_fee(uow, outcome.payment) == RATES["card_not_present"]
    assert balance(app, "platform", "fees_revenue") == RATES["card_not_present"]


def test_a_wallet_balance_payment_pays_the_wallet_balance_fee(app: App, host: IsoHost) -> None:
    create(app, "methods")
    assign(app, "methods")
    with app.uow() as uow:
        wallet_app = uow.wallet.get_app("2021000000000001")
        created = wallet.precreate(uow, app.vault, app.clock(), wallet_app,
                                   {"out_trade_no": "w-1", "total_amount": "100.00", "subject": "Tea"}, None)
        uow.commit()
    with app.uow() as uow:
        paid = wallet.scan(uow, app.vault, app.clock(), created["qr_code"], "2088100000000001", funding="balance")
        uow.commit()
    assert paid["state"] == "TRADE_SUCCESS"
    with app.uow(write=False) as uow:
        assert uow.wallet.trade_by_out_trade_no("2021000000000001", "w-1").fee_minor == RATES["wallet_balance"]


def test_a_payment_code_at_the_terminal_pays_the_wallet_balance_fee_and_the_journal_says_so(
        app: App, host: IsoHost, clock: FakeClock) -> None:
    create(app, "methods")
    assign(app, "methods")
    clock.advance(60)  # a fresh payment-code step
    with app.uow() as uow:
        code = str(wallet.payment_code(uow, app.vault, app.clock(), "2088100000000001")["code"])
        uow.commit()
    t = terminal(app)
    answer = iso8583.decode_message(host.handle(t.message(  # type: ignore[arg-type]
        "0200", {"3": "000000", "4": "000000010000", "22": "032", "2": code})))
    assert answer["39"] == "00"
    assert tuple(journal(app, answer["37"])) == (RATES["wallet_balance"], "wallet_balance")


def test_a_prepaid_online_payment_pays_the_prepaid_fee_and_a_replay_the_same(app: App, host: IsoHost,
                                                                             clock: FakeClock) -> None:
    create(app, "methods", promotions=[{"name": "p", "rates_bps": {"prepaid": 0},
                                        "ends_at": (clock.now + timedelta(hours=1)).isoformat()}])
    assign(app, "methods")
    issued = prepaid.transact(app, lambda uow: prepaid.issue_card(
        uow, app.vault, program_merchant_id=CAFE, kind="reloadable", initial_load_minor=50_000, pin="1234",
        issue_id="i-1", now=app.clock()))

    def pay(amount: int) -> dict[str, Any]:
        return prepaid.transact(app, lambda uow: prepaid.pay_online(
            uow, card_id=issued["card_id"], merchant_id=CAFE, amount_minor=amount, payment_id="pp-1",
            now=app.clock()))

    first = pay(10_000)
    clock.advance(2 * 3600)  # the promotion is over: a replay is still priced as the first attempt was
    assert (first["fee_minor"], pay(10_000)["fee_minor"]) == (0, 0)
    assert prepaid.transact(app, lambda uow: prepaid.pay_online(
        uow, card_id=issued["card_id"], merchant_id=CAFE, amount_minor=10_000, payment_id="pp-2",
        now=app.clock()))["fee_minor"] == RATES["prepaid"]


def test_a_fee_for_an_unknown_method_or_merchant_is_refused(app: App, host: IsoHost) -> None:
    with app.uow(write=False) as uow:
        with pytest.raises(PricingError) as method:
            pricing.quote(uow, CAFE, "cheque", 100, app.clock())
        with pytest.raises(PricingError) as merchant:
            pricing.quote(uow, "NOPE", "prepaid", 100, app.clock())
    assert (method.value.field, merchant.value.field) == ("method", "merchant")


# --- billing -----------------------------------------------------------------------------------------


def test_a_monthly_fee_is_charged_once_however_often_the_month_is_billed(app: App, host: IsoHost,
                                                                         clock: FakeClock) -> None:
    create(app, "monthly", monthly_fee_minor=3_000)
    assign(app, "monthly")
    fund_available(app, 10_000)
    first = bill(app, "2026-11")
    clock.advance(60)
    again = bill(app, "2026-11")
    assert [c["id"] for c in first["posted"]] == [f"bill:{CAFE}:2026-11:monthly_fee"]
    assert again == {"month": "2026-11", "posted": [], "pending": []}
    assert balance(app, f"merchant:{CAFE}", "merchant_available") == 7_000
    assert balance(app, "platform", "fees_revenue") == 3_000
    assert ledger_service.check(app.engine, app.clock) == []


def test_a_month_not_begun_or_malformed_is_refused(app: App, host: IsoHost) -> None:
    for month in ("2027-01", "2026-13", "26-11", ""):
        with pytest.raises(PricingError):
            bill(app, month)


def test_a_charge_the_merchant_cannot_pay_is_owed_then_collected(app: App, host: IsoHost, clock: FakeClock) -> None:
    create(app, "monthly", monthly_fee_minor=3_000)
    assign(app, "monthly")
    fund_available(app, 1_000)
    owed = bill(app, "2026-11")
    assert [c["status"] for c in owed["pending"]] == ["pending"] and owed["posted"] == []
    with app.uow(write=False) as uow:
        assert [c.amount_minor for c in pricing.outstanding_charges(uow, CAFE, "CNY")] == [3_000]
    assert balance(app, f"merchant:{CAFE}", "merchant_available") == 1_000  # nothing half-taken
    fund_available(app, 5_000, ref="fund-2")
    clock.advance(60)
    with app.uow() as uow:
        assert pricing.collect_outstanding(uow, CAFE, "CNY", app.clock()) == []
        uow.commit()
    assert balance(app, f"merchant:{CAFE}", "merchant_available") == 3_000
    assert bill(app, "2026-11")["posted"] == []  # collected once, never again


def test_an_owed_charge_is_retried_by_the_next_billing_run(app: App, host: IsoHost, clock: FakeClock) -> None:
    create(app, "monthly", monthly_fee_minor=3_000)
    assign(app, "monthly")
    bill(app, "2026-11")
    fund_available(app, 10_000)
    clock.now += timedelta(days=10)  # December
    december = bill(app, "2026-12")
    assert sorted(c["month"] for c in december["posted"]) == ["2026-11", "2026-12"]
    assert balance(app, f"merchant:{CAFE}", "merchant_available") == 4_000


@pytest.mark.parametrize(("sold", "device_fee"), [(12_000, 0), (9_999, 5_000)])
def test_a_free_device_costs_its_fee_only_when_the_threshold_is_missed(app: App, host: IsoHost, clock: FakeClock,
                                                                       sold: int, device_fee: int) -> None:
    device = {"kind": "free_with_threshold", "threshold_minor": 10_000, "window_days": 30, "device_fee_minor": 5_000}
    create(app, "free-device", device=device)
    n = assign(app, "free-device")
    fund_available(app, 20_000)
    assert sale(host, terminal(app), card(app, "visa-cvn18-approve"), sold, "051")["39"] == "00"
    assert bill(app, "2026-11")["posted"] == []  # the window (to 2026-12-22) is still open
    clock.now += timedelta(days=45)  # 2027-01-06; December is never billed on its own
    after = bill(app, "2027-01")
    assert [(c["id"], c["amount_minor"]) for c in after["posted"]] == \
        ([(f"bill:{CAFE}:2026-12:device_fee-a{n}", 5_000)] if device_fee else [])  # the window's month
    assert bill(app, "2026-12")["posted"] == []  # charged once
    assert balance(app, f"merchant:{CAFE}", "merchant_available") == 20_000 - device_fee


def test_a_deposit_is_taken_at_assignment_and_returned_once_when_the_target_is_met(
        app: App, host: IsoHost, clock: FakeClock) -> None:
    device = {"kind": "deposit", "deposit_minor": 20_000, "target_minor": 10_000, "window_days": 60}
    create(app, "deposit", device=device)
    fund_available(app, 50_000)
    n = assign(app, "deposit")
    assert balance(app, f"merchant:{CAFE}", "merchant_available") == 30_000
    assert balance(app, "platform", "device_deposits") == 20_000  # held for the merchant
    assert bill(app, "2026-11")["posted"] == []  # no sales yet
    sale(host, terminal(app), card(app, "visa-cvn18-approve"), 12_000, "051")
    clock.advance(3600)
    returned = bill(app, "2026-11")
    assert [c["item"] for c in returned["posted"]] == [f"deposit_return-a{n}"]
    clock.now += timedelta(days=70)
    assert bill(app, "2026-11")["posted"] == bill(app, "2027-01")["posted"] == []  # returned once
    assert balance(app, f"merchant:{CAFE}", "merchant_available") == 50_000
    assert balance(app, "platform", "device_deposits") == 0
    assert ledger_service.check(app.engine, app.clock) == []


def test_a_deposit_is_kept_when_the_target_is_missed_and_waived_when_never_paid(
        app: App, host: IsoHost, clock: FakeClock) -> None:
    device = {"kind": "deposit", "deposit_minor": 20_000, "target_minor": 10_000, "window_days": 30}
    create(app, "deposit", device=device)
    fund_available(app, 20_000)
    kept = assign(app, "deposit")
    clock.now += timedelta(days=40)  # 2027-01-01: the window is over, no sales
    report = bill(app, "2026-12")
    assert [c["item"] for c in report["posted"]] == [f"deposit_kept-a{kept}"]
    assert balance(app, "platform", "fees_revenue") == 20_000
    assert balance(app, "platform", "device_deposits") == 0

    unpaid = assign(app, "deposit", merchant=CAFE, after=timedelta(hours=1))  # nothing left to take: owed
    with app.uow(write=False) as uow:
        assert [c.item for c in pricing.outstanding_charges(uow, CAFE, "CNY")] == [f"deposit-a{unpaid}"]
    clock.now += timedelta(days=40)
    bill(app, "2027-02")
    with app.uow(write=False) as uow:
        assert pricing.outstanding_charges(uow, CAFE, "CNY") == []  # never paid, no longer owed
        assert uow.pricing.charges(CAFE, status="waived")[0].item == f"deposit-a{unpaid}"


def test_a_buyout_is_charged_once(app: App, host: IsoHost, clock: FakeClock) -> None:
    create(app, "buy", device={"kind": "buyout", "price_minor": 99_900})
    n = assign(app, "buy")
    fund_available(app, 100_000)
    assert [c["item"] for c in bill(app, "2026-11")["posted"]] == [f"buyout-a{n}"]
    clock.now += timedelta(days=10)
    assert bill(app, "2026-12")["posted"] == []
    assert balance(app, f"merchant:{CAFE}", "merchant_available") == 100


# --- REST --------------------------------------------------------------------------------------------


def test_a_merchant_reads_its_plan_and_a_quote_over_rest(app: App) -> None:
    with sandbox_client(app) as client:
        create(app, "methods", fixed_fee_minor=5)
        assign(app, "methods")
        body = client.get("/v1/pricing", headers=CAFE_AUTH).json()
        quote = client.get("/v1/pricing/quote", params={"method": "contactless", "amount": 10_000},
                           headers=CAFE_AUTH)
        bad = client.get("/v1/pricing/quote", params={"method": "cheque", "amount": 1}, headers=CAFE_AUTH)
        anonymous = client.get("/v1/pricing")
    assert body["plan"]["id"] == "methods" and body["plan"]["rates"]["prepaid"]["rate_bps"] == 160
    assert [a["plan_id"] for a in body["assignments"]] == ["standard", "methods"]
    assert quote.json()["fee_minor"] == 125
    assert bad.status_code == 422 and bad.json()["field"] == "method"
    assert anonymous.status_code == 401
