"""The console's reports, statements, search, reconciliation and pricing pages
(entrypoints/console/pages_reports.py, pages_pricing.py) over FastAPI's TestClient on SQLite and
PostgreSQL, with real payments made in each test: the statement page equals
``reports.statement`` and downloads as CSV and PDF; the search filters (each with a bad-input
twin); the operator's report; resolving a reconciliation exception once, audit-logged; creating
and assigning a plan, after which the next payment's fee follows it; who is refused."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from typing import Any

import pytest
from pypdf import PdfReader

from paypos.bootstrap import App
from paypos.domain.pricing import fee_minor
from paypos.networks.sandbox import catalog
from paypos.services import audit, online_payments, reports
from paypos.services import reconciliation as recon
from paypos.services.reconciliation import TerminalLine
from tests.conftest import FakeClock
from tests.integration.console_client import csrf, signed_in, user
from tests.integration.online_api import CAFE, TestClient
from tests.integration.test_online_payments import cards, client, pay, request_for  # noqa: F401

SHOP = catalog.SHOP.merchant_id
OWNER, CASHIER, SHOP_OWNER = user("owner", CAFE), user("cashier", CAFE), user("owner", SHOP)
DAY = "2026-11-22"  # the test clock's day (09:00 UTC, 17:00 in Asia/Shanghai)


@pytest.fixture
def api(client: TestClient) -> Any:
    return client.app


def paid(client: TestClient, app: App, cards: dict[str, dict[str, Any]], amount: int, order: str,
         card: str = "visa-cvn18-approve") -> online_payments.Payment | None:
    outcome = pay(app, cards, request_for(client, amount, order_id=order), card)
    return outcome.payment


def refund(app: App, payment: Any, amount: int) -> None:
    with app.uow() as uow:
        online_payments.refund(uow, app.vault, CAFE, payment.payment_request_id, amount, None, now=app.clock())
        uow.commit()


# --- statements -----------------------------------------------------------------------------------------

def test_the_statement_page_equals_the_service_and_downloads_as_csv_and_pdf(
        api: Any, app: App, client: TestClient, cards: dict[str, dict[str, Any]]) -> None:
    first = paid(client, app, cards, 12_345, "stmt-1")
    paid(client, app, cards, 5_000, "stmt-2")
    refund(app, first, 2_000)
    with app.uow(write=False) as uow:
        stmt = reports.statement(uow, CAFE, DAY)
    assert (stmt.totals.sales_minor, stmt.totals.refunds_minor) == (17_345, 2_000)
    owner = signed_in(api, OWNER)
    page = owner.get(f"/console/statements?day={DAY}")
    assert page.status_code == 200
    shown = {name: re.search(rf'id="{name}-total">([^<]+)<', page.text).group(1)  # type: ignore[union-attr]
             for name in ("sales", "refunds", "fees", "net")}
    assert shown == {"sales": "CNY 173.45", "refunds": "CNY 20.00",
                     "fees": f"CNY {stmt.totals.fees_minor / 100:.2f}",
                     "net": f"CNY {stmt.totals.net_minor // 100}.{stmt.totals.net_minor % 100:02d}"}
    assert "card_not_present" in page.text and "online" in page.text  # by method, by terminal
    assert owner.get("/console/statements?month=2026-11").status_code == 200
    got_csv = owner.get(f"/console/statements/download?period={DAY}&format=csv")
    assert got_csv.status_code == 200 and got_csv.headers["content-type"].startswith("text/csv")
    assert got_csv.headers["content-disposition"].startswith(f'attachment; filename="statement-{CAFE}-{DAY}.csv"')
    total = next(row for row in csv.DictReader(io.StringIO(got_csv.text)) if row["section"] == "total")
    assert int(total["net_minor"]) == stmt.totals.net_minor and total["sales"] == "173.45"
    got_pdf = owner.get(f"/console/statements/download?period={DAY}&format=pdf")
    assert got_pdf.status_code == 200 and got_pdf.headers["content-type"] == "application/pdf"
    assert "attachment" in got_pdf.headers["content-disposition"]
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(got_pdf.content)).pages)
    assert "173.45" in text and CAFE in text


def test_a_bad_period_or_format_is_422_and_nothing_is_downloaded(api: Any) -> None:
    owner = signed_in(api, OWNER)
    for bad in ("2026-13", "yesterday", "2026-11-31"):
        response = owner.get(f"/console/statements?period={bad}")
        assert response.status_code == 422 and "period must be" in response.text, bad
        assert owner.get(f"/console/statements/download?period={bad}").status_code == 422
    assert owner.get(f"/console/statements/download?period={DAY}&format=xlsx").status_code == 422


def test_a_cashier_and_operators_may_not_open_statements_and_the_shop_sees_only_its_own(
        api: Any, app: App, client: TestClient, cards: dict[str, dict[str, Any]]) -> None:
    paid(client, app, cards, 4_000, "stmt-own")
    assert signed_in(api, CASHIER).get("/console/statements").status_code == 403
    assert signed_in(api, user("finance")).get("/console/statements/download").status_code == 403
    shop = signed_in(api, SHOP_OWNER).get(f"/console/statements?day={DAY}").text
    assert re.search(r'id="sales-total">USD 0.00<', shop) and CAFE not in shop


# --- search ---------------------------------------------------------------------------------------------

def test_search_filters_by_amount_status_method_order_and_pages_with_a_cursor(
        api: Any, app: App, client: TestClient, cards: dict[str, dict[str, Any]], clock: FakeClock) -> None:
    ids = [paid(client, app, cards, 1_000 + i, f"search-{i}").id for i in range(3)]  # type: ignore[union-attr]
    declined = paid(client, app, cards, 5_000, "search-declined", "visa-cvn18-insufficient-funds")
    owner = signed_in(api, OWNER)
    everything = owner.get("/console/search").text
    assert all(f'href="/console/payments/{i}"' in everything for i in ids)
    assert "476173" not in everything.replace("476173******", "")  # masked PANs only
    by_amount = owner.get("/console/search?amount_min=10.01&amount_max=10.02").text
    assert ids[0] not in by_amount and ids[1] in by_amount and ids[2] in by_amount
    assert ids[2] in owner.get("/console/search?order_id=search-2").text
    assert ids[1] not in owner.get("/console/search?order_id=search-2").text
    failed = owner.get("/console/search?status=declined&method=card_not_present").text
    assert declined is not None and declined.id in failed and ids[0] not in failed
    assert ids[0] in owner.get(f"/console/search?since={DAY}&until={DAY}").text
    assert ids[0] not in owner.get("/console/search?since=2026-11-23").text
    # paging: 25 rows a page, the cursor brings the rest
    paging = []
    for i in range(24):  # newer, one a second
        clock.advance(1)
        paging.append(paid(client, app, cards, 100 + i, f"search-page-{i}").id)  # type: ignore[union-attr]
    first = owner.get("/console/search?status=approved")
    cursor = re.search(r'id="next-page" href="[^"]*cursor=([^&"]+)', first.text)
    assert cursor, "a second page"
    second = owner.get(f"/console/search?status=approved&cursor={cursor.group(1)}").text
    on_first, on_second = (re.findall(r">(pay_[a-z0-9]+)<", text) for text in (first.text, second))
    assert len(on_first) == 25 and len(on_second) == 2 and not set(on_first) & set(on_second)
    assert set(on_first) | set(on_second) == set(ids) | set(paging)


BAD_SEARCHES = [
    ("since=22-11-2026", "since"), ("until=2026-02-30", "until"), ("since=2026-11-23&until=2026-11-21", "until"),
    ("amount_min=ten", "amount_min"), ("amount_max=1.234", "amount_max"), ("status=lost", "status"),
    ("method=cash", "method"), ("last4=12a4", "last4"), ("rrn=123", "rrn"), ("cursor=not-a-cursor", "cursor"),
]


def test_a_bad_search_filter_is_422_and_named(api: Any) -> None:
    owner = signed_in(api, OWNER)
    for query, field in BAD_SEARCHES:  # one signed-in client for all (a fixture per case is slow)
        response = owner.get(f"/console/search?{query}")
        assert response.status_code == 422 and field in response.text and 'class="error"' in response.text, query


def test_a_cashier_searches_sales_only_and_never_another_merchants(
        api: Any, app: App, client: TestClient, cards: dict[str, dict[str, Any]]) -> None:
    sale = paid(client, app, cards, 3_000, "search-cashier")
    refund(app, sale, 1_000)
    cashier = signed_in(api, CASHIER).get("/console/search").text
    assert sale.id in cashier and ">refund<" not in cashier  # type: ignore[union-attr]
    assert ">refund<" in signed_in(api, OWNER).get("/console/search").text
    assert sale.id not in signed_in(api, SHOP_OWNER).get("/console/search").text  # type: ignore[union-attr]
    assert signed_in(api, user("risk")).get("/console/search").status_code == 403


# --- the operator's report ----------------------------------------------------------------------------

def test_the_operator_report_shows_volume_approvals_declines_and_fees_from_real_payments(
        api: Any, app: App, client: TestClient, cards: dict[str, dict[str, Any]]) -> None:
    paid(client, app, cards, 10_000, "ops-1")
    paid(client, app, cards, 2_500, "ops-2")
    paid(client, app, cards, 5_000, "ops-3", "visa-cvn18-insufficient-funds")
    page = signed_in(api, user("finance")).get(f"/console/ops/reports?from={DAY}&to={DAY}")
    assert page.status_code == 200
    figures = {name: re.search(rf'id="{name}">([^<]+)<', page.text).group(1)  # type: ignore[union-attr]
               for name in ("approved-count", "declined-count", "approval-rate", "fees-revenue")}
    assert figures == {"approved-count": "2", "declined-count": "1", "approval-rate": "66.66%",
                       "fees-revenue": f"CNY {(fee_minor(10_000) + fee_minor(2_500)) / 100:.2f}"}
    assert "insufficient funds" in page.text and CAFE in page.text  # a decline's meaning, the top merchant
    assert page.text.count("<svg") == 2 and "CNY 125.00" in page.text  # volume chart + decline reasons chart
    assert signed_in(api, user("risk")).get("/console/ops/reports").status_code == 200  # the last 7 days


def test_a_bad_report_period_is_422(api: Any) -> None:
    admin = signed_in(api, user("admin"))
    for query in ("from=2026-11-22&to=2026-11-21", "from=nope", "to=2026-11-99", "from=2024-01-01&to=2026-11-22"):
        response = admin.get(f"/console/ops/reports?{query}")
        assert response.status_code == 422 and 'class="error"' in response.text, query


def test_reviewers_and_merchants_may_not_open_the_operator_pages(api: Any) -> None:
    for who in (user("reviewer"), OWNER, CASHIER):
        browser = signed_in(api, who)
        for path in ("/console/ops/reports", "/console/ops/reconciliation", "/console/ops/pricing"):
            assert browser.get(path).status_code == 403, (who.role, path)
    assert signed_in(api, user("risk")).get("/console/ops/pricing").status_code == 403  # finance and admin only


# --- reconciliation -----------------------------------------------------------------------------------

def _exception(app: App) -> int:
    """One "missing at the host" exception from a terminal batch that claims a sale the host never saw."""
    with app.uow() as uow:
        found = recon.reconcile_batch(uow, "CAFE0001", 7, [TerminalLine("999999", "1122090000", "purchase", 700,
                                                                        "approved")], app.clock())
        uow.commit()
    assert len(found) == 1
    return found[0].id


def test_an_operator_resolves_an_exception_once_with_a_note_audited(api: Any, app: App) -> None:
    exception_id = _exception(app)
    risk = signed_in(api, user("risk"))
    listed = risk.get("/console/ops/reconciliation?kind=missing_at_host").text
    assert f"/console/ops/reconciliation/{exception_id}" in listed and "/console/ops/settlement/exceptions" in listed
    assert f"/reconciliation/{exception_id}" not in risk.get("/console/ops/reconciliation?kind=reversed").text
    assert f"/reconciliation/{exception_id}" not in risk.get(f"/console/ops/reconciliation?merchant={SHOP}").text
    token = csrf(risk)
    empty = risk.post(f"/console/ops/reconciliation/{exception_id}/resolve", data={"csrf_token": token, "note": " "})
    assert empty.status_code == 422 and "resolution must be" in empty.text
    note = "Terminal replayed a voided sale; no money moved."
    for _ in range(2):  # the same note again answers the same
        done = risk.post(f"/console/ops/reconciliation/{exception_id}/resolve",
                         data={"csrf_token": token, "note": note})
        assert done.status_code == 303
    other = risk.post(f"/console/ops/reconciliation/{exception_id}/resolve", data={"csrf_token": token, "note": "x"})
    assert other.status_code == 409
    detail = risk.get(f"/console/ops/reconciliation/{exception_id}").text
    assert re.search(r'id="recon-status">resolved<', detail) and note in detail
    assert f"/reconciliation/{exception_id}" in risk.get("/console/ops/reconciliation?status=resolved").text
    with app.uow(write=False) as uow:
        entries = [e for e in audit.entries(uow, limit=100) if e.action == "recon_exception.resolve"]
    assert [(e.actor, e.subject_id) for e in entries] == [(f"user:{user('risk').id}", str(exception_id))]
    assert risk.get("/console/ops/reconciliation/99999999").status_code == 404
    assert risk.post("/console/ops/reconciliation/nope/resolve", data={"csrf_token": token, "note": note}
                     ).status_code == 404


# --- pricing ------------------------------------------------------------------------------------------

def _plan_form(token: str, plan_id: str, rate: str = "120", **extra: str) -> dict[str, str]:
    methods = ("debit_card", "credit_card", "contactless", "wallet_balance", "wallet_card", "credit_pay", "prepaid",
               "card_not_present")
    form = {"csrf_token": token, "id": plan_id, "name": "Cafe special", "currency": "CNY", "monthly_fee": "9.90"}
    form |= {f"rate_{m}": rate for m in methods} | {"min_card_not_present": "0.50", "cap_card_not_present": "20.00"}
    return form | extra


def test_finance_creates_and_assigns_a_plan_and_the_next_payment_pays_its_fee(
        api: Any, app: App, client: TestClient, cards: dict[str, dict[str, Any]], clock: FakeClock) -> None:
    before = paid(client, app, cards, 10_000, "price-before")
    clock.advance(60)  # the sandbox put the cafe on "standard" at the clock's start
    finance = signed_in(api, user("finance"))
    token = csrf(finance)
    created = finance.post("/console/ops/pricing", data=_plan_form(token, "cafe-120"))
    assert created.status_code == 303 and created.headers["location"] == "/console/ops/pricing/plans/cafe-120"
    again = finance.post("/console/ops/pricing", data=_plan_form(token, "cafe-120"))  # the same plan: a no-op
    assert again.status_code == 303
    detail = finance.get("/console/ops/pricing/plans/cafe-120").text
    assert "CNY 9.90" in detail and "CNY 20.00" in detail and "120" in detail
    assert "cafe-120" in finance.get("/console/ops/pricing").text
    assigned = finance.post("/console/ops/pricing/plans/cafe-120/assign",
                            data={"csrf_token": token, "merchant": CAFE, "effective_from": ""})
    assert assigned.status_code == 303 and assigned.headers["location"] == f"/console/ops/pricing/merchants/{CAFE}"
    history = finance.get(f"/console/ops/pricing/merchants/{CAFE}").text
    assert re.search(r'id="current-plan">cafe-120<', history) and f"user:{user('finance').id}" in history
    clock.advance(60)
    after = paid(client, app, cards, 10_000, "price-after")
    with app.uow(write=False) as uow:
        fees = (online_payments.sale_fee(uow, before), online_payments.sale_fee(uow, after))  # type: ignore[arg-type]
    assert fees == (fee_minor(10_000), 120)  # 60 bps before, the plan's 120 bps after
    with app.uow(write=False) as uow:  # reports show the fee the ledger posted, not a recomputed one
        shown = {row.id: row.fee_minor for row in reports.search(uow, CAFE, reports.SearchFilters(), limit=50).rows}
        assert (shown[before.id], shown[after.id]) == fees  # type: ignore[attr-defined]
    own = signed_in(api, OWNER).get("/console/pricing").text
    assert re.search(r'id="current-plan">cafe-120<', own) and "/console/ops/pricing" not in own
    with app.uow(write=False) as uow:
        done = {e.action for e in audit.entries(uow, limit=200)}
    assert {"pricing_plan.create", "pricing.assign"} <= done


BAD_PLANS = [
    ({"id": "Bad Id!"}, "plan id"), ({"name": ""}, "plan name"), ({"currency": "XYZ"}, "currency"),
    ({"rate_prepaid": "ten"}, "rate_prepaid"), ({"rate_prepaid": "10001"}, "rate_bps"),
    ({"min_card_not_present": "0.505"}, "min_card_not_present"), ({"cap_card_not_present": "0.10"}, "cap_minor"),
    ({"monthly_fee": "-1"}, "monthly_fee_minor"), ({"device_kind": "rented"}, "device.kind"),
    ({"device_kind": "deposit"}, "device.window_days"), ({"promo_name": "Launch", "promo_ends": "soon"}, "ends_at"),
]


def test_a_bad_plan_form_is_422_next_to_its_field_and_stores_nothing(api: Any, app: App) -> None:
    finance = signed_in(api, user("finance"))
    token = csrf(finance)
    for change, field in BAD_PLANS:
        response = finance.post("/console/ops/pricing", data=_plan_form(token, "bad-plan") | change)
        assert response.status_code == 422 and field in response.text and 'class="error"' in response.text, change
    with app.uow(write=False) as uow:
        assert uow.pricing.get_plan("bad-plan") is None and uow.pricing.get_plan("Bad Id!") is None


def test_a_bad_assignment_is_422_and_an_unknown_plan_404(api: Any, app: App, clock: FakeClock) -> None:
    admin = signed_in(api, user("admin"))
    token = csrf(admin)
    promoted = _plan_form(token, "p-90", rate="90", promo_name="Launch", promo_rate="30", promo_ends="2026-12-31",
                          device_kind="free_with_threshold", device_threshold_minor="10000.00",
                          device_window_days="90", device_device_fee_minor="199.00")
    assert admin.post("/console/ops/pricing", data=promoted).status_code == 303
    shown = admin.get("/console/ops/pricing/plans/p-90").text
    assert "Launch until 2026-12-31T00:00:00Z" in shown and "card not present 30 bps" in shown
    assert "free with threshold; threshold CNY 10000.00; window days 90; device fee CNY 199.00" in shown
    yesterday = (clock.now - timedelta(days=1)).date().isoformat()
    for merchant, moment, text in ((CAFE, yesterday, "in the past"), ("PPNOSUCH0000001", "", "no merchant"),
                                   ("", "", "merchant"), (CAFE, "next tuesday", "YYYY-MM-DD")):
        response = admin.post("/console/ops/pricing/plans/p-90/assign",
                              data={"csrf_token": token, "merchant": merchant, "effective_from": moment})
        assert response.status_code == 422 and text in response.text, (merchant, moment)
    assert admin.post("/console/ops/pricing/plans/nope/assign",
                      data={"csrf_token": token, "merchant": CAFE}).status_code == 404
    assert admin.get("/console/ops/pricing/plans/nope").status_code == 404
    assert admin.get("/console/ops/pricing/merchants/PPNOSUCH0000001").status_code == 404
    with app.uow(write=False) as uow:
        assert [a.plan_id for a in uow.pricing.assignments(CAFE)] == ["standard"]  # the sandbox's, nothing new


def test_an_owner_sees_the_plan_in_force_read_only_and_a_cashier_is_refused(api: Any) -> None:
    page = signed_in(api, OWNER).get("/console/pricing")
    assert page.status_code == 200 and re.search(r'id="current-plan">standard<', page.text)
    assert "<form" not in page.text.split("<main", 1)[1]
    assert signed_in(api, CASHIER).get("/console/pricing").status_code == 403
