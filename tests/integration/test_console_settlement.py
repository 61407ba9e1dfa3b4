"""The console's settlement pages (entrypoints/console/pages_settlement.py) over FastAPI's
TestClient on SQLite and PostgreSQL: the owner binds and confirms a bank account through the
pages, finance runs a business date and the payout shows on the owner's settlements page, the
clearing file download marks it sent and the statement import marks it paid (once however
often imported); a cashier and a reviewer are refused; every bad input is a 4xx with its reason
and changes nothing; every change is audited with the console user as the actor."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest

from paypos import limits
from paypos.bootstrap import App
from paypos.domain.ledger import TransferRequest
from paypos.networks.sandbox import catalog
from paypos.services import audit, settlement
from paypos.services.sandbox import merchant_owner
from tests.conftest import FakeClock
from tests.integration.console_client import csrf, signed_in, user
from tests.integration.online_api import CAFE, TestClient
from tests.integration.test_online_payments import client  # noqa: F401

CARD = "6222021234567890128"  # 19 digits, Luhn valid
MON = date(2026, 11, 23)  # the fake clock starts on Sunday 2026-11-22 09:00 UTC
OWNER, CASHIER, SHOP_OWNER = user("owner", CAFE), user("cashier", CAFE), user("owner", catalog.SHOP.merchant_id)
FINANCE, REVIEWER = user("finance"), user("reviewer")


@pytest.fixture
def api(client: TestClient) -> Any:
    return client.app


def actions(app: App, action: str) -> list[audit.AuditEntry]:
    with app.uow(write=False) as uow:
        return [e for e in audit.entries(uow, limit=500) if e.action == action]


def sale(app: App, transfer_id: str, amount: int, fee: int) -> None:
    """A card sale as the host posts it: card → merchant_pending, the fee → fees_revenue."""
    with app.uow() as uow:
        owner = merchant_owner(CAFE)
        card = uow.ledger.open_account("test:cards", "test", "card_funding", "CNY").id
        pending = uow.ledger.find_account_id(owner, "merchant_pending", "CNY") or uow.ledger.open_account(
            owner, owner, "merchant_pending", "CNY").id
        fees = uow.ledger.find_account_id("platform", "fees_revenue", "CNY") or uow.ledger.open_account(
            "platform", "platform", "fees_revenue", "CNY").id
        uow.ledger.create_transfers([
            TransferRequest(f"{transfer_id}:sale", card, pending, amount, "CNY", code="sale", linked=True),
            TransferRequest(f"{transfer_id}:fee", pending, fees, fee, "CNY", code="fee")], app.clock())
        uow.commit()


def pending_account(app: App) -> dict[str, Any]:
    with app.uow(write=False) as uow:
        (account,) = [a for a in settlement.list_bank_accounts(uow, CAFE) if a["status"] == "pending_verification"]
        return account | {"amounts": settlement.micro_deposits(uow, account["id"])["amounts_minor"]}


def major(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def bind_and_confirm(owner: TestClient, app: App) -> str:
    token = csrf(owner, "/console/bank-account")
    bound = owner.post("/console/bank-account", data={"csrf_token": token, "account_number": CARD,
                                                      "holder_name": catalog.CAFE.name})
    assert bound.status_code == 303, bound.text
    account = pending_account(app)
    first, second = account["amounts"]
    confirmed = owner.post("/console/bank-account/confirm", data={
        "csrf_token": token, "bank_account_id": account["id"], "amount_1": major(first), "amount_2": major(second)})
    assert confirmed.status_code == 303, confirmed.text
    return str(account["id"])


def run_monday(app: App, api: Any, clock: FakeClock) -> TestClient:
    """Monday 09:00 UTC: finance signs in and runs the business date (the window closed at
    Sunday's 23:00 in Shanghai, after the sale)."""
    clock.now = datetime(2026, 11, 23, 9, tzinfo=UTC)
    finance = signed_in(api, FINANCE)
    token = csrf(finance, "/console/ops/settlement/runs")
    ran = finance.post("/console/ops/settlement/runs", data={"csrf_token": token, "business_date": MON.isoformat(),
                                                             "confirm": "yes"})
    assert ran.status_code == 200, ran.text
    assert re.search(r'id="run-status">done<', ran.text) and re.search(r'id="run-payouts">1<', ran.text)
    return finance


# --- the owner's bank account --------------------------------------------------------------------------

def test_an_owner_binds_and_confirms_a_bank_account_through_the_pages_and_sees_it_masked(
        api: Any, app: App) -> None:
    owner = signed_in(api, OWNER)
    account_id = bind_and_confirm(owner, app)
    page = owner.get("/console/bank-account").text
    assert 'id="verified-account">Payouts go to <strong>622202*********0128<' in page  # first 6, last 4
    assert CARD not in page  # never the full number
    assert 'id="settlement-settings"' in page and "T1" in page and "23:00" in page and "Asia/Shanghai" in page
    with app.uow(write=False) as uow:
        (account,) = settlement.list_bank_accounts(uow, CAFE)
    assert (account["id"], account["status"]) == (account_id, "verified")
    actor = f"user:{OWNER.id}"
    assert [e.actor for e in actions(app, "bank_account.bind")] == [actor]
    assert [(e.actor, e.details["confirmed"]) for e in actions(app, "bank_account.confirm")] == [(actor, True)]


def test_a_bad_account_number_or_holder_name_is_shown_next_to_its_field_and_binds_nothing(
        api: Any, app: App) -> None:
    owner = signed_in(api, OWNER)
    token = csrf(owner, "/console/bank-account")
    for number, holder, shown in (("6222021234567890129", catalog.CAFE.name, "account_number"),  # Luhn wrong
                                  ("12", catalog.CAFE.name, "account_number"),
                                  ("", catalog.CAFE.name, "account_number"),
                                  (CARD, "Somebody Else Ltd", "holder_name"),
                                  (CARD, "", "holder_name")):
        refused = owner.post("/console/bank-account", data={"csrf_token": token, "account_number": number,
                                                            "holder_name": holder})
        assert refused.status_code == 422, (number, holder)
        form = refused.text.split('id="bind-form"')[1]
        field_at = form.index(f'name="{shown}"')
        assert form.index('class="error"', field_at) < form.index("<label", field_at + 1) if shown == "account_number" \
            else 'class="error"' in form[field_at:], (number, holder)
    with app.uow(write=False) as uow:
        assert settlement.list_bank_accounts(uow, CAFE) == []
    assert actions(app, "bank_account.bind") == []


def test_wrong_micro_deposit_amounts_count_down_the_tries_and_the_third_fails_the_binding(
        api: Any, app: App) -> None:
    owner = signed_in(api, OWNER)
    token = csrf(owner, "/console/bank-account")
    owner.post("/console/bank-account", data={"csrf_token": token, "account_number": CARD,
                                              "holder_name": catalog.CAFE.name})
    account = pending_account(app)
    first, second = account["amounts"]
    wrong = {"csrf_token": token, "bank_account_id": account["id"], "amount_1": major(second % 99 + 1),
             "amount_2": major(first % 99 + 1)}
    for bad in ("abc", "-0.01", "0.001", ""):
        malformed = owner.post("/console/bank-account/confirm", data=wrong | {"amount_1": bad})
        assert malformed.status_code == 422, bad  # never counted as a try
    assert pending_account(app)["attempts_left"] == 3
    if (second % 99 + 1, first % 99 + 1) == (first, second):  # pragma: no cover — the one collision
        wrong["amount_1"], wrong["amount_2"] = major(first % 99 + 1), major(second)
    once = owner.post("/console/bank-account/confirm", data=wrong)
    assert once.status_code == 422 and "2 tries left" in once.text
    assert owner.post("/console/bank-account/confirm", data=wrong).status_code == 422
    failed = owner.post("/console/bank-account/confirm", data=wrong)
    assert failed.status_code == 422 and "binding failed" in failed.text
    with app.uow(write=False) as uow:
        assert [a["status"] for a in settlement.list_bank_accounts(uow, CAFE)] == ["failed"]
    again = owner.post("/console/bank-account/confirm", data=wrong)
    assert again.status_code == 409  # failed for good: bind again


def test_another_merchants_bank_account_cannot_be_confirmed_it_is_a_404(api: Any, app: App) -> None:
    owner = signed_in(api, OWNER)
    token = csrf(owner, "/console/bank-account")
    owner.post("/console/bank-account", data={"csrf_token": token, "account_number": CARD,
                                              "holder_name": catalog.CAFE.name})
    account = pending_account(app)
    shop = signed_in(api, SHOP_OWNER)
    first, second = account["amounts"]
    stolen = shop.post("/console/bank-account/confirm", data={
        "csrf_token": csrf(shop), "bank_account_id": account["id"], "amount_1": major(first),
        "amount_2": major(second)})
    assert stolen.status_code == 404
    assert pending_account(app)["attempts_left"] == 3
    assert account["id"] not in shop.get("/console/bank-account").text


# --- the payout journey ----------------------------------------------------------------------------------

def test_a_run_by_finance_pays_out_on_the_owners_page_and_the_file_and_statement_mark_it_paid_once(
        api: Any, app: App, clock: FakeClock) -> None:
    bind_and_confirm(signed_in(api, OWNER), app)
    sale(app, "console-settle-1", 10_000, 60)
    finance = run_monday(app, api, clock)
    owner = signed_in(api, OWNER)
    page = owner.get("/console/settlements").text
    payout_id = f"po_{CAFE}_20261123"
    assert payout_id in page and "CNY 99.40" in page and "created" in page and "0128" in page
    assert "CNY 100.00" in page and "CNY 0.60" in page  # the batch: gross and fees
    second = owner.get("/console/settlements?page=2").text
    assert payout_id not in second and "<span>Page 2</span>" in second  # 25 rows a page
    assert payout_id in owner.get("/console/settlements?page=abc").text  # a bad page number: the first
    assert f'value="{MON.isoformat()}"' in finance.get("/console/ops/settlement/runs").text  # today, by the app clock
    assert payout_id in finance.get(f"/console/ops/settlement/payouts?merchant={CAFE}&date=2026-11-23").text
    assert payout_id not in finance.get("/console/ops/settlement/payouts?status=paid").text

    token = csrf(finance, "/console/ops/settlement/payouts")
    download = finance.post("/console/ops/settlement/clearing-file",
                            data={"csrf_token": token, "business_date": "2026-11-23"})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"] == 'attachment; filename="CF20261123.csv"'
    assert payout_id.encode() in download.content
    assert "sent" in owner.get("/console/settlements").text
    with app.uow(write=False) as uow:
        statement = settlement.bank_import(uow, app.vault, download.content, clock())
    for round_ in (1, 2):
        imported = finance.post("/console/ops/settlement/statements", data={"csrf_token": token},
                                files={"statement": ("statement.csv", statement, "text/csv")})
        assert imported.status_code == 200, imported.text
        expected = ("1", "0") if round_ == 1 else ("0", "1")  # (paid, already applied)
        counts = [re.search(rf'id="statement-{name}">(\d+)<', imported.text) for name in ("paid", "skipped")]
        assert tuple(found.group(1) if found else None for found in counts) == expected
    (payout,) = [p for p in owner.get("/console/settlements").text.split("<tr>") if payout_id in p]
    assert 'class="payout-status">paid<' in payout
    finance_actor = f"user:{FINANCE.id}"
    assert [e.actor for e in actions(app, "settlement.run")] == [finance_actor]
    assert [e.actor for e in actions(app, "settlement.file")] == [finance_actor]
    assert {e.actor for e in actions(app, "settlement.statement_import")} == {finance_actor}


def test_a_finished_run_asked_again_posts_nothing_more(api: Any, app: App, clock: FakeClock) -> None:
    bind_and_confirm(signed_in(api, OWNER), app)
    sale(app, "console-settle-2", 5_000, 30)
    finance = run_monday(app, api, clock)
    again = finance.post("/console/ops/settlement/runs", data={
        "csrf_token": csrf(finance), "business_date": "2026-11-23", "confirm": "yes"})
    assert again.status_code == 200 and re.search(r'id="run-payouts">1<', again.text)
    with app.uow(write=False) as uow:
        assert [p["amount_minor"] for p in settlement.list_payouts(uow, CAFE)] == [4_970]


def test_bad_run_input_a_holiday_and_a_bad_statement_are_refused_with_their_reason(
        api: Any, app: App, clock: FakeClock) -> None:
    finance = signed_in(api, FINANCE)
    token = csrf(finance)
    for form, reason in (({"business_date": "2026-13-40", "confirm": "yes"}, "YYYY-MM-DD"),
                         ({"business_date": "yesterday", "confirm": "yes"}, "YYYY-MM-DD"),
                         ({"business_date": "2026-11-23"}, "Tick the box")):
        refused = finance.post("/console/ops/settlement/runs", data={"csrf_token": token} | form)
        assert refused.status_code == 422 and reason in refused.text, form
    assert finance.post("/console/ops/settlement/holidays",
                        data={"csrf_token": token, "date": "not-a-date"}).status_code == 422
    assert finance.post("/console/ops/settlement/holidays",
                        data={"csrf_token": token, "date": "2026-11-23", "name": "Test day"}).status_code == 303
    assert "Test day" in finance.get("/console/ops/settlement/holidays").text
    holiday = finance.post("/console/ops/settlement/runs", data={
        "csrf_token": token, "business_date": "2026-11-23", "confirm": "yes"})
    assert holiday.status_code == 409 and "holiday" in holiday.text
    with app.uow(write=False) as uow:
        assert settlement.list_runs(uow) == []
    assert [e.actor for e in actions(app, "settlement.holiday_add")] == [f"user:{FINANCE.id}"]
    for data, reason in ((b"", "choose the bank"), (b"not,a,statement\n", "nothing applied"),
                         (b"H,ST1,CF1,2026-11-23T09:00:00Z\nD,po_nope,paid,,,100,CNY\nT,1,100\n", "nothing applied")):
        files = {"statement": ("s.csv", data, "text/csv")} if data else None
        bad = finance.post("/console/ops/settlement/statements", data={"csrf_token": token}, files=files)
        assert bad.status_code == 422 and reason in bad.text, data
    too_big = finance.post("/console/ops/settlement/statements", data={"csrf_token": token},
                           files={"statement": ("big.csv", b"H" * (limits.console_upload_bytes_max + 1), "text/csv")})
    assert too_big.status_code == 422 and f"at most {limits.console_upload_bytes_max} bytes" in too_big.text
    assert finance.post("/console/ops/settlement/clearing-file",
                        data={"csrf_token": token, "business_date": "23/11/2026"}).status_code == 422
    assert actions(app, "settlement.statement_import") == [] and actions(app, "settlement.file") == []


def test_finance_edits_a_merchants_settings_and_a_bad_field_is_shown_unchanged(api: Any, app: App) -> None:
    finance = signed_in(api, FINANCE)
    token = csrf(finance)
    path = f"/console/ops/settlement/merchants/{CAFE}"
    for field, bad in (("cutoff_local", "25:00"), ("time_zone", "Mars/Olympus"), ("reserve_bps", "10001"),
                       ("reserve_bps", "-5"), ("reserve_hold_days", "ten"), ("cycle", "T9"), ("weekday", "someday")):
        refused = finance.post(path, data={"csrf_token": token, field: bad})
        assert refused.status_code == 422, (field, bad)
        assert 'class="error"' in refused.text.split(f'name="{field}"')[1][:400], (field, bad)
    assert finance.post(path, data={"csrf_token": token, "cycle": "WEEKLY", "weekday": "thu", "cutoff_local": "22:30",
                                    "time_zone": "Asia/Shanghai", "reserve_bps": "500",
                                    "reserve_hold_days": "30"}).status_code == 303
    with app.uow(write=False) as uow:
        saved = settlement.settings_json(settlement.get_settings(uow, CAFE))
    assert (saved["cycle"], saved["weekday"], saved["cutoff_local"], saved["reserve_bps"],
            saved["reserve_hold_days"]) == ("WEEKLY", "thu", "22:30", 500, 30)
    assert [e.actor for e in actions(app, "settlement.settings")] == [f"user:{FINANCE.id}"]
    assert finance.post("/console/ops/settlement/merchants/PPNOBODY0000001",
                        data={"csrf_token": token, "reserve_bps": "1"}).status_code == 404
    owner_view = signed_in(api, OWNER).get("/console/bank-account").text
    assert "WEEKLY" in owner_view and "500 bps, held 30 days" in owner_view
    assert "0128" not in finance.get("/console/ops/settlement/bank-accounts").text  # nothing bound yet


# --- who may open what -------------------------------------------------------------------------------------

def test_a_cashier_is_refused_the_settlement_pages_and_a_reviewer_the_finance_pages(api: Any) -> None:
    cashier, reviewer = signed_in(api, CASHIER), signed_in(api, REVIEWER)
    for path in ("/console/settlements", "/console/bank-account"):
        assert cashier.get(path).status_code == 403, path
    assert cashier.post("/console/bank-account", data={"csrf_token": csrf(cashier), "account_number": CARD,
                                                       "holder_name": catalog.CAFE.name}).status_code == 403
    token = csrf(reviewer)
    for path in ("/console/ops/settlement/runs", "/console/ops/settlement/payouts", "/console/ops/settlement/holidays",
                 "/console/ops/settlement/statements", "/console/ops/settlement/bank-accounts",
                 f"/console/ops/settlement/merchants/{CAFE}"):
        assert reviewer.get(path).status_code == 403, path
    assert reviewer.post("/console/ops/settlement/runs", data={"csrf_token": token, "business_date": "2026-11-23",
                                                               "confirm": "yes"}).status_code == 403
    assert reviewer.post("/console/ops/settlement/clearing-file",
                         data={"csrf_token": token, "business_date": "2026-11-23"}).status_code == 403
    nav = signed_in(api, FINANCE).get("/console/ops/merchants").text
    assert "Settlement runs" in nav and "Settlement runs" not in reviewer.get("/console/ops/merchants").text


# --- the payout leg of reconciliation ------------------------------------------------------------------------

def test_payout_exceptions_show_a_returned_payout_a_status_without_its_transfer_and_a_stale_one(
        api: Any, app: App, clock: FakeClock) -> None:
    from paypos.adapters.db.schema import payouts as payouts_table
    from paypos.services import payout_recon

    account_id = bind_and_confirm(signed_in(api, OWNER), app)
    sale(app, "console-settle-3", 10_000, 60)
    finance = run_monday(app, api, clock)
    payout_id = f"po_{CAFE}_20261123"
    page = finance.get("/console/ops/settlement/exceptions").text
    assert "Every payout reconciles" in page and payout_id not in page
    with app.uow() as uow:
        settlement.flag_bank_account(uow, account_id, "account_closed", "cli:test", clock())
        uow.commit()
    token = csrf(finance)
    clearing = finance.post("/console/ops/settlement/clearing-file", data={"csrf_token": token,
                                                                         "business_date": "2026-11-23"})
    clock.advance(4 * 24 * 3600)  # sent four days ago, no statement yet
    with app.uow(write=False) as uow:
        (stale,) = payout_recon.payout_exceptions(uow, clock())
    assert (stale["payout_id"], stale["exceptions"]) == (payout_id, ["sent_unanswered"])
    with app.uow(write=False) as uow:
        statement = settlement.bank_import(uow, app.vault, clearing.content, clock())
    finance = signed_in(api, FINANCE)  # four days later: a new session
    imported = finance.post("/console/ops/settlement/statements", data={"csrf_token": csrf(finance)},
                            files={"statement": ("statement.csv", statement, "text/csv")})
    assert re.search(r'id="statement-returned">1<', imported.text)
    row = finance.get(f"/console/ops/settlement/exceptions?merchant={CAFE}&date=2026-11-23").text
    assert payout_id in row and 'class="exception-kinds">returned<' in row and "(R02)" in row
    with app.engine.begin() as connection:  # a status no transfer backs: what reconciliation must catch
        connection.execute(payouts_table.update().where(payouts_table.c.id == payout_id).values(status="paid"))
    with app.uow(write=False) as uow:
        (wrong,) = payout_recon.payout_exceptions(uow, clock(), merchant_id=CAFE)
    assert wrong["exceptions"] == ["paid_transfer_missing"] and wrong["return_transfer_minor"] == 9_940
    assert finance.get("/console/ops/settlement/exceptions?date=not-a-date").status_code == 200  # ignored
    assert signed_in(api, REVIEWER).get("/console/ops/settlement/exceptions").status_code == 403
