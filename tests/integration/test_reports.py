"""Reports on SQLite and PostgreSQL (services/reports.py): the transaction search and its bad
input, merchant isolation, statements equal to the ledger to the cent after real card-present
and online payments and refunds, CSV layout, PDF text, operator report, rollups exact after a
refresh and with an un-folded tail and a late reversal, the dashboard."""

from __future__ import annotations

import csv
import dataclasses
import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from paypos.adapters.db.schema import report_rollups
from paypos.bootstrap import App
from paypos.domain.online_payment import card_entry
from paypos.domain.pricing import fee_minor
from paypos.protocol import emv, iso8583
from paypos.services import ledger as ledger_service
from paypos.services import online_payments, reports, sandbox
from paypos.services.host import IsoHost
from paypos.services.reports import ReportError, SearchFilters
from paypos.terminal.simulator import SoftTerminal
from tests.conftest import FakeClock
from tests.integration.online_api import CAFE, CAFE_AUTH, SHOP_AUTH, TestClient, sandbox_client

DAY = "2026-11-22"  # the FakeClock's 09:00 UTC is 17:00 in Shanghai
APPROVE = "visa-cvn18-approve"


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with sandbox_client(app) as test_client:
        yield test_client


@pytest.fixture
def host(app: App, client: TestClient) -> IsoHost:
    return IsoHost(app)


@pytest.fixture
def cards(app: App, client: TestClient) -> dict[str, dict[str, Any]]:
    with app.uow(write=False) as uow:
        return {c["id"]: c for c in sandbox.list_cards(uow, app.vault)}


def terminal(app: App, terminal_id: str = "CAFE0001") -> SoftTerminal:
    with app.uow(write=False) as uow:
        row = next(t for t in sandbox.list_terminals(uow, app.vault) if t["terminal_id"] == terminal_id)
    return SoftTerminal(**{k: row[k] for k in ("terminal_id", "merchant_id", "currency", "bdk", "initial_ksn",
                                               "mac_required")})


def card_message(t: SoftTerminal, card: dict[str, Any], amount: int, code: str = "000000", *,
                 pin: str | None = "1234", **extra: str) -> bytes:
    icc = t.icc(card, amount)
    return t.message("0200", {"3": code, "4": f"{amount:012d}", "22": "051" if pin else "052",
                              "23": card["psn"].zfill(3), "35": card["track2"], "55": emv.encode_field_55(icc), **extra},
                     pin=pin, pan=card["pan"])


def send(host: IsoHost, raw: bytes) -> dict[str, str]:
    response = host.handle(raw)
    assert response is not None
    return iso8583.decode_message(response)


def reverse(host: IsoHost, t: SoftTerminal, sale_raw: bytes, amount: int) -> dict[str, str]:
    sale = iso8583.decode_message(sale_raw)
    original = iso8583.OriginalData("0200", sale["11"], sale["7"], "0", "0")
    return send(host, t.message("0400", {"3": "000000", "4": f"{amount:012d}",
                                         "90": iso8583.format_original_data_elements(original)}))


def online_paid(app: App, client: TestClient, cards: dict[str, Any], amount: int, order_id: str) -> str:
    response = client.post("/v1/payment_requests", json={"amount": amount, "currency": "CNY", "order_id": order_id},
                           headers=CAFE_AUTH)
    assert response.status_code in (200, 201), response.text
    request_id = str(response.json()["id"])
    card = cards[APPROVE]
    entry = card_entry(pan=card["pan"], expiry=f"{card['expiry'][2:]}/{card['expiry'][:2]}", cvv2=card["cvv2"],
                       name="Test Buyer")
    with app.uow() as uow:
        online_payments.submit_card(uow, app.vault, request_id, entry, now=app.clock(), base_url="http://t/")
        uow.commit()
    return request_id


@pytest.fixture
def activity(app: App, client: TestClient, host: IsoHost, cards: dict[str, Any]) -> dict[str, Any]:
    """Two chip sales (one refunded in part), a reversed sale, a decline, an online payment
    refunded in part: all on the FakeClock's day."""
    t, card = terminal(app), cards[APPROVE]
    first = send(host, card_message(t, card, 12_345))
    send(host, card_message(t, card, 5_000))
    reversed_raw = card_message(t, card, 7_000)
    send(host, reversed_raw)
    assert reverse(host, t, reversed_raw, 7_000)["39"] == "00"
    declined = send(host, card_message(t, cards["visa-cvn18-insufficient-funds"], 900_000))
    refund = send(host, card_message(t, card, 2_000, "200000", **{"37": first["37"]}))
    assert first["39"] == "00" and refund["39"] == "00" and declined["39"] != "00"
    request_id = online_paid(app, client, cards, 30_000, "order-42")
    response = client.post("/v1/refunds", json={"payment_request": request_id, "amount": 1_000}, headers=CAFE_AUTH)
    assert response.status_code in (200, 201), response.text
    return {"rrn": first["37"], "request_id": request_id, "terminal": t}


def run(app: App, work: Any) -> Any:
    with app.uow(write=False) as uow:
        return work(uow)


# --- statements equal the ledger ------------------------------------------------------------

def test_a_days_statement_equals_the_ledgers_postings_to_the_cent(app: App, activity: dict[str, Any]) -> None:
    stmt = run(app, lambda uow: reports.statement(uow, CAFE, DAY))
    sales = 12_345 + 5_000 + 30_000
    assert (stmt.totals.sales_count, stmt.totals.sales_minor) == (3, sales)
    assert (stmt.totals.refunds_count, stmt.totals.refunds_minor) == (2, 3_000)
    assert stmt.totals.fees_minor == fee_minor(12_345) + fee_minor(5_000) + fee_minor(30_000)
    assert stmt.totals.net_minor == sales - 3_000 - stmt.totals.fees_minor
    assert set(stmt.by_terminal) == {"CAFE0001", "online"}
    assert stmt.by_method["card_not_present"].sales_minor == 30_000
    check = run(app, lambda uow: reports.check_against_ledger(uow, stmt))
    assert check.equal, (check.statement, check.ledger)
    month = run(app, lambda uow: reports.statement(uow, CAFE, DAY[:7]))
    assert month.totals == stmt.totals
    assert run(app, lambda uow: reports.check_against_ledger(uow, month)).equal
    assert ledger_service.check(app.engine, app.clock) == []


def test_a_statement_of_another_day_is_empty_and_a_bad_period_or_zone_is_refused(
        app: App, activity: dict[str, Any]) -> None:
    assert run(app, lambda uow: reports.statement(uow, CAFE, "2026-11-23")).totals.sales_count == 0
    for period, tz, field_name in (("2026-13", "Asia/Shanghai", "period"), ("22/11/2026", "Asia/Shanghai", "period"),
                                   (DAY, "Mars/Olympus", "timezone")):
        with pytest.raises(ReportError) as refused:
            run(app, lambda uow, p=period, z=tz: reports.statement(uow, CAFE, p, tz=z))
        assert refused.value.field == field_name
    with pytest.raises(reports.MerchantNotFound):
        run(app, lambda uow: reports.statement(uow, "NOSUCHMERCHANT1", DAY))


def test_the_csv_has_one_header_then_total_method_and_terminal_rows_in_minor_units_and_decimals(
        app: App, activity: dict[str, Any]) -> None:
    stmt = run(app, lambda uow: reports.statement(uow, CAFE, DAY))
    text = reports.statement_csv(stmt)
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == reports.CSV_COLUMNS
    # the example in docs/reports.md
    assert text.splitlines()[1] == "total,2026-11-22,3,47345,473.45,2,3000,30.00,284,2.84,44061,440.61,CNY"
    assert "terminal,CAFE0001,2,17345,173.45,1,2000,20.00,104,1.04,15241,152.41,CNY" in text.splitlines()
    assert "method,card_not_present,1,30000,300.00,1,1000,10.00,180,1.80,28820,288.20,CNY" in text.splitlines()
    total = dict(zip(rows[0], rows[1], strict=True))
    assert total["section"] == "total" and total["key"] == DAY
    assert int(total["sales_minor"]) == stmt.totals.sales_minor == 47_345 and total["sales"] == "473.45"
    assert int(total["net_minor"]) == stmt.totals.net_minor and total["currency"] == "CNY"
    assert [r[0] for r in rows[2:]] == ["method"] * len(stmt.by_method) + ["terminal"] * len(stmt.by_terminal)
    assert sum(int(r[3]) for r in rows[2:] if r[0] == "terminal") == stmt.totals.sales_minor


def test_the_pdf_parses_and_shows_the_totals(app: App, activity: dict[str, Any]) -> None:
    stmt = run(app, lambda uow: reports.statement(uow, CAFE, DAY))
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(reports.statement_pdf(stmt))).pages)
    assert f"Statement {DAY}" in text and CAFE in text
    for amount in (stmt.totals.sales_minor, stmt.totals.refunds_minor, stmt.totals.fees_minor, stmt.totals.net_minor):
        assert reports.decimal_string(amount, "CNY") in text
    assert "card_not_present" in text and "CAFE0001" in text


# --- search -------------------------------------------------------------------------------------

def test_search_filters_by_rrn_order_last4_status_method_amount_and_time(app: App, activity: dict[str, Any],
                                                                          cards: dict[str, Any]) -> None:
    def find(**kw: Any) -> list[reports.TransactionRow]:
        return run(app, lambda uow: reports.search(uow, CAFE, SearchFilters(**kw), limit=100).rows)

    everything = find()
    assert len(everything) == 7  # 4 chip sales (one reversed, one declined), a refund, online pay + refund
    by_rrn = find(rrn=activity["rrn"])
    assert [(r.amount_minor, r.kind, r.rrn) for r in by_rrn] == [(12_345, "sale", activity["rrn"])]
    assert by_rrn[0].pan_masked and "*" in by_rrn[0].pan_masked and len(by_rrn[0].approval_code or "") == 6
    assert {(r.kind, r.amount_minor) for r in find(order_id="order-42")} == {("sale", 30_000), ("refund", 1_000)}
    assert len(find(last4=cards[APPROVE]["pan"][-4:])) == len([r for r in everything if r.pan_masked
                                                              and r.pan_masked.endswith(cards[APPROVE]["pan"][-4:])])
    assert [r.amount_minor for r in find(status="reversed")] == [7_000]
    assert {r.status for r in find(status="declined")} == {"declined"}
    assert {(r.terminal_id, r.kind) for r in find(method="card_not_present")} == {("online", "sale"),
                                                                                  ("online", "refund")}
    assert {r.amount_minor for r in find(amount_min=5_000, amount_max=12_345, status="approved")} == \
        {5_000, 12_345}
    now = app.clock()
    assert find(since=now + timedelta(hours=1)) == [] and len(find(until=now + timedelta(seconds=1))) == len(everything)


def test_search_pages_by_cursor_without_gaps_or_repeats(app: App, activity: dict[str, Any]) -> None:
    everything = run(app, lambda uow: reports.search(uow, CAFE, SearchFilters(), limit=100).rows)
    seen, cursor = [], None
    while True:
        page = run(app, lambda uow, c=cursor: reports.search(uow, CAFE, SearchFilters(), limit=3, cursor=c))
        seen += page.rows
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [r.id for r in seen] == [r.id for r in everything]


@pytest.mark.parametrize(("kw", "field_name"), [
    ({"cursor": "not-a-cursor"}, "cursor"), ({"limit": 0}, "limit"), ({"limit": 501}, "limit"),
    ({"filters": SearchFilters(since=datetime(2026, 11, 22))}, "since"),
    ({"filters": SearchFilters(since=datetime(2026, 11, 22, tzinfo=UTC), until=datetime(2026, 11, 21, tzinfo=UTC))},
     "until"),
    ({"filters": SearchFilters(amount_min=-1)}, "amount_min"), ({"filters": SearchFilters(status="done")}, "status"),
    ({"filters": SearchFilters(method="cash")}, "method"), ({"filters": SearchFilters(last4="12a4")}, "last4"),
    ({"filters": SearchFilters(rrn="123")}, "rrn"), ({"filters": SearchFilters(order_id="")}, "order_id"),
])
def test_search_refuses_bad_input_naming_the_field(app: App, client: TestClient, kw: dict[str, Any],
                                                   field_name: str) -> None:
    kw = dict(kw)
    filters = kw.pop("filters", SearchFilters())
    with pytest.raises(ReportError) as refused:
        run(app, lambda uow: reports.search(uow, CAFE, filters, **kw))
    assert refused.value.field == field_name


def test_a_merchant_sees_only_its_own_transactions(app: App, activity: dict[str, Any]) -> None:
    shop = "PPSHOP000000001"
    assert run(app, lambda uow: reports.search(uow, shop, SearchFilters(), limit=100).rows) == []
    assert run(app, lambda uow: reports.search(uow, shop, SearchFilters(rrn=activity["rrn"])).rows) == []
    assert run(app, lambda uow: reports.statement(uow, shop, DAY)).totals.sales_count == 0
    every = run(app, lambda uow: reports.search(uow, None, SearchFilters(), limit=100).rows)
    assert {r.merchant_id for r in every} == {CAFE}


# --- operator report ------------------------------------------------------------------------

def test_the_operator_report_counts_volume_approvals_declines_fees_and_top_merchants(
        app: App, activity: dict[str, Any]) -> None:
    start = datetime(2026, 11, 22, tzinfo=UTC)
    report = run(app, lambda uow: reports.operator_report(uow, start, start + timedelta(days=1)))
    assert report.volume_by_day == [{"day": DAY, "currency": "CNY", "count": 3, "amount_minor": 47_345}]
    assert report.approved_count == 3 and report.declined_count >= 1
    assert report.approval_rate_bps == 3 * 10_000 // (3 + report.declined_count)
    assert all(reason["meaning"] for reason in report.decline_reasons)
    assert report.top_merchants[0]["merchant_id"] == CAFE
    assert report.fees_revenue == {"CNY": fee_minor(12_345) + fee_minor(5_000) + fee_minor(30_000)}
    with pytest.raises(ReportError):
        run(app, lambda uow: reports.operator_report(uow, start, start))


# --- rollups and the dashboard --------------------------------------------------------------

def test_the_dashboard_is_exact_before_after_a_refresh_and_after_a_late_reversal(
        app: App, clock: FakeClock, host: IsoHost, activity: dict[str, Any], cards: dict[str, Any]) -> None:
    since, until = clock.now - timedelta(hours=2), clock.now + timedelta(hours=2)

    def board() -> reports.DashboardData:
        mine = run(app, lambda uow: reports.dashboard(uow, CAFE, since, until))
        everyone = run(app, lambda uow: reports.dashboard(uow, None, since, until))  # only CAFE sold
        assert dataclasses.replace(everyone, merchant_id=CAFE) == mine
        return mine

    before = board()  # nothing folded yet: all tail
    assert (before.sales_count, before.sales_minor, before.refunds_minor) == (3, 47_345, 3_000)
    assert before.fees_minor == fee_minor(12_345) + fee_minor(5_000) + fee_minor(30_000)
    assert sum(b.amount_minor for b in before.sales_by_method) == before.sales_minor
    assert [b.key for b in before.sales_by_day] == [DAY]
    clock.advance(60)
    folded = reports.refresh_all(app.uow, clock)
    assert folded == 5  # the journal rows: 4 chip sales and a refund
    assert board() == before
    # a sale folded as approved, then reversed: the tail moves it until the next refresh folds the move
    t, card = activity["terminal"], cards["visa-cvn10-approve"]
    raw = card_message(t, card, 4_000, pin=None)
    assert send(host, raw)["39"] == "00"
    clock.advance(60)
    reports.refresh_all(app.uow, clock)
    assert board().sales_minor == 47_345 + 4_000
    assert reverse(host, t, raw, 4_000)["39"] == "00"
    assert board().sales_minor == 47_345
    clock.advance(60)
    with app.uow() as uow:
        assert reports.refresh(uow, clock()).reversals_applied == 1
        uow.commit()
    assert board() == before
    with app.uow() as uow:
        reports.refresh(uow, clock(), rebuild=True)
        uow.commit()
    assert board() == before


def test_the_dashboard_refuses_a_naive_or_empty_range(app: App, client: TestClient) -> None:
    moment = datetime(2026, 11, 22, tzinfo=UTC)
    for since, until in ((moment.replace(tzinfo=None), moment), (moment, moment)):
        with pytest.raises(ReportError):
            run(app, lambda uow, s=since, u=until: reports.dashboard(uow, CAFE, s, u))


# --- REST -----------------------------------------------------------------------------------

def test_the_rest_search_and_statements_answer_the_merchant_only(app: App, client: TestClient,
                                                                  activity: dict[str, Any]) -> None:
    found = client.get("/v1/reports/transactions", params={"rrn": activity["rrn"]}, headers=CAFE_AUTH)
    assert found.status_code == 200 and [r["amount_minor"] for r in found.json()["data"]] == [12_345]
    page = client.get("/v1/reports/transactions", params={"limit": 2}, headers=CAFE_AUTH).json()
    more = client.get("/v1/reports/transactions", params={"limit": 2, "cursor": page["next_cursor"]},
                      headers=CAFE_AUTH).json()
    assert len(page["data"]) == len(more["data"]) == 2 and page["data"][-1]["id"] != more["data"][0]["id"]
    assert client.get("/v1/reports/transactions", headers=SHOP_AUTH).json()["data"] == []
    csv_answer = client.get(f"/v1/reports/statements/{DAY}.csv", headers=CAFE_AUTH)
    assert csv_answer.status_code == 200 and csv_answer.headers["content-type"].startswith("text/csv")
    assert csv_answer.text.splitlines()[1].startswith(f"total,{DAY},3,47345,473.45")
    pdf_answer = client.get(f"/v1/reports/statements/{DAY[:7]}.pdf", headers=CAFE_AUTH)
    assert pdf_answer.headers["content-type"] == "application/pdf"
    assert "473.45" in PdfReader(io.BytesIO(pdf_answer.content)).pages[0].extract_text()


@pytest.mark.parametrize(("path", "params", "field_name"), [
    ("/v1/reports/transactions", {"cursor": "zzz"}, "cursor"),
    ("/v1/reports/transactions", {"limit": 0}, "limit"),
    ("/v1/reports/transactions", {"since": "yesterday"}, "since"),
    ("/v1/reports/statements/2026-13-01.csv", {}, "period"),
    ("/v1/reports/statements/2026-11-22.csv", {"timezone": "Nowhere/Else"}, "timezone"),
])
def test_the_rest_reports_answer_bad_input_with_a_422_problem(client: TestClient, path: str, params: dict[str, Any],
                                                               field_name: str) -> None:
    answer = client.get(path, params=params, headers=CAFE_AUTH)
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert field_name in answer.text
    assert client.get(path, params=params).status_code == 401


def test_the_operator_report_over_rest_needs_the_operator_token(app: App, client: TestClient,
                                                                activity: dict[str, Any]) -> None:
    path, params = "/v1/operator/reports", {"from": DAY, "to": "2026-11-23"}
    assert client.get(path, params=params).status_code == 404  # PAYPOS_OPERATOR_TOKEN unset: no operator API
    token = "operator-token-" * 3
    app.settings.operator_token = token
    assert client.get(path, params=params, headers=CAFE_AUTH).status_code == 401
    report = client.get(path, params=params, headers={"Authorization": f"Bearer {token}"}).json()
    assert report["approved_count"] == 3 and report["volume_by_day"][0]["amount_minor"] == 47_345
    bad = client.get(path, params={"from": DAY, "to": "2026/11/23"}, headers={"Authorization": f"Bearer {token}"})
    assert bad.status_code == 422 and bad.json()["field"] == "period"


def test_two_refreshes_at_once_fold_each_row_once(app: App, clock: FakeClock, activity: dict[str, Any]) -> None:
    clock.advance(60)
    done: list[int] = []

    def one() -> None:
        done.append(reports.refresh_all(app.uow, clock))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(done) == [0, 5]
    with app.uow(write=False) as uow:
        total = uow.connection.execute(sa.select(sa.func.sum(report_rollups.c.count))
                                       .where(report_rollups.c.merchant_id == CAFE)).scalar_one()
        together = uow.connection.execute(sa.select(sa.func.sum(report_rollups.c.count))
                                          .where(report_rollups.c.merchant_id == reports.ALL_MERCHANTS)).scalar_one()
    assert total == together == 5


# --- the wallet's merchant gateway ----------------------------------------------------------

def test_wallet_gateway_trades_and_refunds_are_in_the_view_and_the_statement_equals_the_ledger(
        app: App, client: TestClient, activity: dict[str, Any]) -> None:
    from paypos.services import wallet
    from tests.integration.test_wallet import LIN, gateway
    from tests.integration.test_wallet import run as wallet_run

    created = gateway(app, wallet.precreate, {"out_trade_no": "wg-1", "total_amount": "88.88", "subject": "Lattes"})
    assert wallet_run(app, wallet.scan, created["qr_code"], LIN, funding="balance")["state"] == "TRADE_SUCCESS"
    gateway(app, wallet.refund, {"out_trade_no": "wg-1", "refund_amount": "10.00", "out_request_no": "r1"})
    gateway(app, wallet.precreate, {"out_trade_no": "wg-2", "total_amount": "5.00", "subject": "Unpaid"})
    found = run(app, lambda uow: reports.search(uow, CAFE, SearchFilters(order_id="wg-1")).rows)
    assert {(r.kind, r.amount_minor, r.terminal_id, r.method, r.id[:3]) for r in found} == {
        ("sale", 8_888, "wallet", "wallet_balance", "wt_"), ("refund", 1_000, "wallet", "wallet_balance", "wr_")}
    assert [r.status for r in run(app, lambda uow: reports.search(uow, CAFE, SearchFilters(order_id="wg-2")).rows)] \
        == ["pending"]
    stmt = run(app, lambda uow: reports.statement(uow, CAFE, DAY))
    assert stmt.by_terminal["wallet"].sales_minor == 8_888 and stmt.by_terminal["wallet"].refunds_minor == 1_000
    check = run(app, lambda uow: reports.check_against_ledger(uow, stmt))
    assert check.equal, (check.statement, check.ledger)
    seen, cursor = [], None  # pages through five sources without gaps or repeats
    while True:
        page = run(app, lambda uow, c=cursor: reports.search(uow, CAFE, SearchFilters(), limit=2, cursor=c))
        seen += [r.id for r in page.rows]
        if (cursor := page.next_cursor) is None:
            break
    everything = run(app, lambda uow: reports.search(uow, CAFE, SearchFilters(), limit=100).rows)
    assert seen == [r.id for r in everything] and len(seen) == 10
