"""The web console (entrypoints/console) over FastAPI's TestClient on SQLite and PostgreSQL:
sign-in (argon2), no user enumeration, lock-out, sessions (idle and absolute expiry, sign-out),
CSRF on every POST, TOTP with replay refused, security headers, refunds (owner, cashier limit,
double submit once) — and two matrices generated from the page registry: every page × every
role (allowed, or 403 / the sign-in redirect), and merchant B asking for merchant A's objects
on every merchant-scoped page (404)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.schema import console_sessions, host_transactions, refunds
from paypos.bootstrap import App
from paypos.domain import totp
from paypos.domain.console_roles import Permission, allows
from paypos.entrypoints.console.core import PAGES, PUBLIC
from paypos.networks.sandbox import catalog
from paypos.networks.sandbox.console_catalog import CONSOLE_USERS
from paypos.services import audit, console_auth
from tests.conftest import FakeClock
from tests.integration.console_client import csrf, login_post, signed_in, user
from tests.integration.online_api import CAFE, SHOP_AUTH, TestClient
from tests.integration.test_online_payments import APPROVE, cards, client, pay, request_for  # noqa: F401

SHOP = catalog.SHOP.merchant_id
OWNER, CASHIER, SHOP_OWNER = user("owner", CAFE), user("cashier", CAFE), user("owner", SHOP)


@pytest.fixture
def api(client: TestClient) -> Any:
    return client.app


def paid_payment(client: TestClient, app: App, cards: dict[str, dict[str, Any]], amount: int, order: str) -> str:
    request_id = request_for(client, amount, order_id=order)
    outcome = pay(app, cards, request_id)
    assert outcome.payment is not None and outcome.payment.status.value == "succeeded"
    return outcome.payment.id


def actions(app: App, action: str) -> list[audit.AuditEntry]:
    with app.uow(write=False) as uow:
        return [e for e in audit.entries(uow, limit=500) if e.action == action]


# --- sign-in ---------------------------------------------------------------------------------------

def test_a_sandbox_owner_signs_in_lands_on_the_dashboard_and_is_audited(api: Any, app: App) -> None:
    browser = TestClient(api, follow_redirects=False)
    response = login_post(browser, OWNER.email.upper(), OWNER.password)
    assert response.status_code == 303 and response.headers["location"] == "/console/dashboard"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    token = browser.cookies.get("paypos_console") or ""
    with app.engine.connect() as connection:
        stored = connection.execute(sa.select(console_sessions.c.token_hash)).scalars().all()
    assert token not in stored and console_auth.token_hash(token) in stored  # only the hash is kept
    assert browser.get("/console/dashboard").status_code == 200
    assert [e.subject_id for e in actions(app, "console.login")] == [OWNER.id]


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(api: Any, app: App) -> None:
    wrong = login_post(TestClient(api), OWNER.email, "not-the-password")
    unknown = login_post(TestClient(api), "nobody@nowhere.example", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    message = re.compile(r'id="login-error">([^<]+)<')
    assert message.search(wrong.text).group(1) == message.search(unknown.text).group(1)  # type: ignore[union-attr]
    assert "paypos_console=" not in wrong.headers.get("set-cookie", "")


def test_a_login_post_without_the_forms_token_is_refused(api: Any) -> None:
    response = TestClient(api).post("/console/login", data={"email": OWNER.email, "password": OWNER.password})
    assert response.status_code == 403 and "paypos_console=" not in response.headers.get("set-cookie", "")


def test_five_failures_lock_the_account_for_fifteen_minutes_even_for_the_right_password(
        api: Any, app: App, clock: FakeClock) -> None:
    for _ in range(limits.console_login_failures_max):
        assert login_post(TestClient(api), CASHIER.email, "wrong-password-1").status_code == 401
    locked = login_post(TestClient(api), CASHIER.email, CASHIER.password)
    assert locked.status_code == 401 and console_auth.REFUSED.split(":")[0] in locked.text
    assert [e.subject_id for e in actions(app, "console_user.lock")] == [CASHIER.id]
    clock.advance(limits.console_lockout_s + 1)
    assert login_post(TestClient(api), CASHIER.email, CASHIER.password).status_code == 303


def test_an_operator_unlocks_a_locked_user_from_the_console(api: Any, app: App) -> None:
    for _ in range(limits.console_login_failures_max):
        login_post(TestClient(api), CASHIER.email, "wrong-password-1")
    admin = signed_in(api, user("admin"))
    assert admin.post(f"/console/ops/users/{CASHIER.id}/unlock", data={"csrf_token": csrf(admin)}).status_code == 303
    assert login_post(TestClient(api), CASHIER.email, CASHIER.password).status_code == 303
    assert [e.actor for e in actions(app, "console_user.unlock")] == [f"user:{user('admin').id}"]


def test_a_disabled_user_is_signed_out_and_cannot_sign_in(api: Any, app: App) -> None:
    cashier = signed_in(api, CASHIER)
    owner = signed_in(api, OWNER)
    assert owner.post(f"/console/team/{CASHIER.id}/disable", data={"csrf_token": csrf(owner)}).status_code == 303
    assert cashier.get("/console/transactions").status_code == 303  # back to sign-in
    assert login_post(TestClient(api), CASHIER.email, CASHIER.password).status_code == 401
    assert [e.subject_id for e in actions(app, "console_user.disable")] == [CASHIER.id]


# --- sessions and CSRF --------------------------------------------------------------------------------

def test_a_session_ends_after_thirty_idle_minutes(api: Any, clock: FakeClock) -> None:
    owner = signed_in(api, OWNER)
    clock.advance(limits.console_session_idle_s - 60)
    assert owner.get("/console/dashboard").status_code == 200
    clock.advance(limits.console_session_idle_s - 60)  # still within idle of the last request
    assert owner.get("/console/dashboard").status_code == 200
    clock.advance(limits.console_session_idle_s)
    gone = owner.get("/console/dashboard")
    assert gone.status_code == 303 and gone.headers["location"].startswith("/console/login?next=")


def test_a_busy_session_still_ends_after_twelve_hours(api: Any, clock: FakeClock) -> None:
    owner = signed_in(api, OWNER)
    step = limits.console_session_idle_s // 2
    for _ in range(limits.console_session_absolute_s // step - 1):
        clock.advance(step)
        assert owner.get("/console/account/security").status_code == 200
    clock.advance(step)
    assert owner.get("/console/account/security").status_code == 303


def test_sign_out_deletes_the_session(api: Any, app: App) -> None:
    owner = signed_in(api, OWNER)
    token = owner.cookies.get("paypos_console") or ""
    assert owner.post("/console/logout", data={"csrf_token": csrf(owner)}).status_code == 303
    with app.engine.connect() as connection:
        assert connection.execute(sa.select(console_sessions).where(
            console_sessions.c.token_hash == console_auth.token_hash(token))).first() is None
    replayed = TestClient(api, follow_redirects=False, cookies={"paypos_console": token})
    assert replayed.get("/console/dashboard").status_code == 303
    assert actions(app, "console.logout")


def test_a_post_without_or_with_a_wrong_csrf_token_is_403_and_changes_nothing(api: Any, app: App) -> None:
    owner = signed_in(api, OWNER)
    assert owner.post("/console/api-keys", data={"label": "x"}).status_code == 403
    assert owner.post("/console/api-keys", data={"label": "x", "csrf_token": "forged"}).status_code == 403
    assert owner.post("/console/api-keys", data={"label": "x"}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert not actions(app, "api_key.create")
    header_ok = owner.post("/console/api-keys", data={"label": "htmx"}, headers={"X-CSRF-Token": csrf(owner)})
    assert header_ok.status_code == 200 and "sk_test_" in header_ok.text  # the secret, shown once


def test_console_pages_carry_the_security_headers(api: Any) -> None:
    for response in (TestClient(api).get("/console/login"), signed_in(api, OWNER).get("/console/dashboard")):
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_the_sign_in_redirect_follows_only_console_paths(api: Any) -> None:
    for target, landing in (("/console/transactions", "/console/transactions"),
                            ("https://evil.example/", "/console/dashboard"), ("//evil.example", "/console/dashboard")):
        browser = TestClient(api, follow_redirects=False)
        browser.get("/console/login")
        response = browser.post("/console/login", data={
            "email": OWNER.email, "password": OWNER.password, "next": target,
            "login_token": browser.cookies.get("paypos_console_login") or ""})
        assert response.headers["location"] == landing


# --- TOTP ------------------------------------------------------------------------------------------------

def test_totp_enrolment_then_sign_in_needs_a_fresh_code_and_a_used_one_is_refused(
        api: Any, app: App, clock: FakeClock) -> None:
    owner = signed_in(api, OWNER)
    token = csrf(owner)
    assert owner.post("/console/account/totp/begin", data={"csrf_token": token}).status_code == 303
    page = owner.get("/console/account/security").text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)  # type: ignore[union-attr]
    assert "<svg" in page  # the QR, inline
    assert owner.post("/console/account/totp/confirm", data={"csrf_token": token, "code": "000000"}).status_code == 303
    assert "is <strong>on</strong>" not in owner.get("/console/account/security").text  # a wrong code: still off
    code = totp.code_at(secret, clock.now.timestamp())
    owner.post("/console/account/totp/confirm", data={"csrf_token": token, "code": code})
    assert "is <strong>on</strong>" in owner.get("/console/account/security").text
    assert [e.subject_id for e in actions(app, "console_user.totp_enable")] == [OWNER.id]

    second = TestClient(api, follow_redirects=False)
    assert login_post(second, OWNER.email, OWNER.password).headers["location"] == "/console/login/totp"
    assert second.get("/console/dashboard").headers["location"] == "/console/login/totp"  # not in yet
    step_token = csrf(second, "/console/login/totp")
    replay = second.post("/console/login/totp", data={"csrf_token": step_token, "code": code})
    assert replay.status_code == 401  # the code that turned TOTP on cannot be used again
    clock.advance(limits.console_totp_step_s)
    fresh = totp.code_at(secret, clock.now.timestamp())
    ok = second.post("/console/login/totp", data={"csrf_token": step_token, "code": fresh})
    assert ok.status_code == 303 and ok.headers["location"] == "/console/dashboard"
    assert second.get("/console/dashboard").status_code == 200


# --- refunds ---------------------------------------------------------------------------------------------

def _refund_form(client: TestClient, payment_id: str) -> dict[str, str]:
    page = client.get(f"/console/payments/{payment_id}").text
    key = re.search(r'name="form_key" value="([^"]+)"', page)
    assert key, page[:2000]
    return {"csrf_token": csrf(client), "form_key": key.group(1)}


def _refunded(app: App, payment_id: str) -> list[int]:
    with app.engine.connect() as connection:
        return list(connection.execute(sa.select(refunds.c.amount_minor).where(
            refunds.c.payment_id == payment_id)).scalars())


def test_an_owner_refunds_part_of_a_payment_once_however_often_the_form_is_sent(
        api: Any, app: App, client: TestClient, cards: dict[str, dict[str, Any]]) -> None:
    payment_id = paid_payment(client, app, cards, 10_000, "console-refund-1")
    owner = signed_in(api, OWNER)
    form = _refund_form(owner, payment_id) | {"amount": "12.34", "reason": "chipped cup"}
    first = owner.post(f"/console/payments/{payment_id}/refund", data=form)
    again = owner.post(f"/console/payments/{payment_id}/refund", data=form)
    assert first.status_code == again.status_code == 303
    assert _refunded(app, payment_id) == [1_234]
    assert "CNY 12.34" in owner.get(f"/console/payments/{payment_id}").text
    assert [e.details["amount_minor"] for e in actions(app, "payment.refund")] == [1_234]


def test_a_cashier_refunds_up_to_the_limit_and_no_more(
        api: Any, app: App, client: TestClient, cards: dict[str, dict[str, Any]]) -> None:
    payment_id = paid_payment(client, app, cards, 10_000, "console-refund-2")
    cashier = signed_in(api, CASHIER)
    over = cashier.post(f"/console/payments/{payment_id}/refund",
                        data=_refund_form(cashier, payment_id) | {"amount": "50.01"})
    assert over.status_code == 422 and "CNY 50.00" in over.text
    for bad in ("-1", "abc", "0", "1.234"):
        refused = cashier.post(f"/console/payments/{payment_id}/refund",
                               data=_refund_form(cashier, payment_id) | {"amount": bad})
        assert refused.status_code == 422, bad
    ok = cashier.post(f"/console/payments/{payment_id}/refund",
                      data=_refund_form(cashier, payment_id) | {"amount": "50.00"})
    assert ok.status_code == 303 and _refunded(app, payment_id) == [5_000]


# --- the matrices, generated from the page registry -----------------------------------------------------

def _fill(path: str, ids: dict[str, str], params: dict[str, str]) -> str:
    for name, kind in params.items():
        path = path.replace("{" + name + "}", ids.get(kind, "missing0000"))
    return path


def test_every_page_answers_every_role_as_the_roles_table_says(api: Any, app: App) -> None:
    """Allowed: anything but 403. Not allowed: 403. Nobody signed in: the sign-in page (GET) or 403."""
    wrong: list[str] = []
    anonymous = TestClient(api, follow_redirects=False)
    for who in CONSOLE_USERS:
        browser = signed_in(api, who)
        token = csrf(browser)
        for entry in PAGES:
            if entry.permission == PUBLIC or entry.path == "/logout":
                continue
            path = _fill(entry.full_path, {}, entry.params)
            for method in entry.methods:
                response = (browser.get(path) if method == "GET"
                            else browser.post(path, data={"csrf_token": token}))
                may = entry.permission is None or allows(who.role, entry.permission)  # type: ignore[arg-type]
                if (response.status_code == 403) == may or response.status_code >= 500:
                    wrong.append(f"{who.role} {method} {path} → {response.status_code}")
                if who is CONSOLE_USERS[0]:
                    out = anonymous.get(path) if method == "GET" else anonymous.post(path, data={})
                    expected = 303 if method == "GET" else 403
                    if out.status_code != expected:
                        wrong.append(f"anonymous {method} {path} → {out.status_code}")
    assert not wrong, "\n".join(wrong)


def _cafe_objects(app: App, client: TestClient, cards: dict[str, dict[str, Any]]) -> dict[str, str]:
    payment_id = paid_payment(client, app, cards, 3_000, "console-cross-1")
    dispute = client.post("/v1/sandbox/disputes", json={"payment": payment_id, "reason_code": "13.1"})
    assert dispute.status_code in (200, 201), dispute.text
    with app.engine.begin() as connection:
        sale_id = connection.execute(sa.insert(host_transactions).values(
            terminal_id="CAFE0001", merchant_id=CAFE, batch_no=1, mti="0200", processing_code="000000",
            kind="purchase", stan="000001", transmission_dt="1122090000", amount_minor=500, currency="156",
            pan_masked="476173******0010", response_code="00", approval_code="123456", status="approved",
            created_at=app.clock()).returning(host_transactions.c.id)).scalar_one()
        event_id = connection.execute(sa.text("SELECT id FROM events WHERE merchant_id = :m LIMIT 1"),
                                      {"m": CAFE}).scalar_one()
    return {"payment": payment_id, "dispute": dispute.json()["id"], "card_sale": f"{sale_id:012d}",
            "api_key": catalog.merchant_api_key(CAFE)[0], "event": str(event_id), "user": CASHIER.id,
            "terminal": "CAFE0001"}


def test_another_merchants_ids_are_404_on_every_merchant_page(
        api: Any, app: App, client: TestClient, cards: dict[str, dict[str, Any]]) -> None:
    ids = _cafe_objects(app, client, cards)
    scoped = [p for p in PAGES if str(p.permission).startswith("merchant.") and p.params]
    kinds = {kind for p in scoped for kind in p.params.values()}
    assert kinds <= set(ids), f"add a sample of {kinds - set(ids)} to _cafe_objects"
    cafe, shop = signed_in(api, OWNER), signed_in(api, SHOP_OWNER)
    shop_token = csrf(shop)
    wrong = []
    for entry in scoped:
        path = _fill(entry.full_path, ids, entry.params)
        if "GET" in entry.methods:
            assert cafe.get(path).status_code == 200, path  # the ids are real
            if shop.get(path).status_code != 404:
                wrong.append(f"GET {path}")
        if "POST" in entry.methods and shop.post(path, data={"csrf_token": shop_token}).status_code != 404:
            wrong.append(f"POST {path}")
    assert not wrong, wrong
    assert client.get("/v1/api_keys", headers=SHOP_AUTH).status_code == 200  # the shop is otherwise fine


def test_the_dashboard_shows_real_sales_with_charts_and_the_approval_rate(
        api: Any, app: App, client: TestClient, cards: dict[str, dict[str, Any]]) -> None:
    paid_payment(client, app, cards, 4_200, "console-dash-1")
    page = signed_in(api, OWNER).get("/console/dashboard").text
    assert re.search(r'id="today-total">CNY 42.00<', page) and re.search(r'id="approval-rate">100%<', page)
    assert page.count("<svg") == 3 and "No data yet" not in page
    assert "card: CNY 42.00</title>" in page  # the by-method bar of the card sale
    empty = signed_in(api, SHOP_OWNER).get("/console/dashboard").text  # the shop sold nothing
    assert empty.count("No data yet") == 3 and re.search(r'id="approval-rate">–<', empty)


# --- the owner's and the admin's changes, each audited ------------------------------------------------

def test_an_owner_adds_a_cashier_with_a_limit_and_bad_input_is_422(api: Any, app: App) -> None:
    owner = signed_in(api, OWNER)
    token = csrf(owner)
    short = owner.post("/console/team", data={"csrf_token": token, "email": "till@cafe.example", "password": "short"})
    assert short.status_code == 422 and "password must be" in short.text
    bad_limit = owner.post("/console/team", data={"csrf_token": token, "email": "till@cafe.example",
                                                  "password": "a-long-password", "refund_limit": "ten"})
    assert bad_limit.status_code == 422
    ok = owner.post("/console/team", data={"csrf_token": token, "email": "Till@Cafe.example",
                                           "password": "a-long-password", "refund_limit": "20.00"})
    assert ok.status_code == 303
    with app.uow(write=False) as uow:
        till = console_auth.find_user(uow, "till@cafe.example", merchant_id=CAFE)
    assert (till.role, till.refund_limit_minor) == ("cashier", 2_000)
    assert login_post(TestClient(api), "till@cafe.example", "a-long-password").headers["location"] == \
        "/console/transactions"


def test_an_admin_creates_users_and_changes_roles_only_within_their_set(api: Any, app: App) -> None:
    admin = signed_in(api, user("admin"))
    token = csrf(admin)
    refused = admin.post("/console/ops/users", data={"csrf_token": token, "email": "x@ops.example", "role": "owner",
                                                     "password": "a-long-password"})
    assert refused.status_code == 422 and "belongs to a merchant" in refused.text
    assert admin.post("/console/ops/users", data={"csrf_token": token, "email": "x@ops.example", "role": "risk",
                                                  "password": "a-long-password"}).status_code == 303
    risk = user("risk")
    assert admin.post(f"/console/ops/users/{risk.id}/role", data={"csrf_token": token, "role": "owner"}
                      ).status_code == 303  # refused with a message: a role set is never crossed
    assert admin.post(f"/console/ops/users/{risk.id}/role", data={"csrf_token": token, "role": "finance"}
                      ).status_code == 303
    with app.uow(write=False) as uow:
        assert console_auth.find_user(uow, risk.id).role == "finance"
    changes = actions(app, "console_user.role_change")
    assert [e.details for e in changes] == [{"from": "risk", "to": "finance"}]


def test_a_password_reset_ends_sessions_and_lifts_a_lock(api: Any, app: App) -> None:
    cashier = signed_in(api, CASHIER)
    for _ in range(limits.console_login_failures_max):
        login_post(TestClient(api), CASHIER.email, "wrong-password-1")
    with app.uow() as uow:
        console_auth.reset_password(uow, console_auth.find_user(uow, CASHIER.id), "brand-new-password", app.clock(),
                                    "cli:test")
        uow.commit()
    assert cashier.get("/console/transactions").status_code == 303
    assert login_post(TestClient(api), CASHIER.email, "brand-new-password").status_code == 303


def test_the_session_cookie_is_secure_over_https(api: Any) -> None:
    browser = TestClient(api, base_url="https://testserver", follow_redirects=False)
    response = login_post(browser, OWNER.email, OWNER.password)
    assert response.status_code == 303 and "Secure" in response.headers["set-cookie"]


def test_an_owner_submits_dispute_evidence_revokes_a_key_and_redelivers_an_event(
        api: Any, app: App, client: TestClient, cards: dict[str, dict[str, Any]]) -> None:
    from tests.integration.online_api import CAFE_AUTH

    endpoint = client.post("/v1/webhook_endpoints", headers=CAFE_AUTH,
                           json={"url": "https://hooks.example/paypos", "enabled_events": ["*"]})
    assert endpoint.status_code == 201, endpoint.text
    ids = _cafe_objects(app, client, cards)
    owner = signed_in(api, OWNER)
    token = csrf(owner)
    empty = owner.post(f"/console/disputes/{ids['dispute']}/evidence", data={"csrf_token": token, "evidence": ""})
    assert empty.status_code == 422
    assert owner.post(f"/console/disputes/{ids['dispute']}/evidence",
                      data={"csrf_token": token, "evidence": "Delivered, signed for."}).status_code == 303
    assert "under_review" in owner.get(f"/console/disputes/{ids['dispute']}").text
    created = owner.post("/console/api-keys", data={"csrf_token": token, "label": "till-2"})
    key_id = re.search(r"New key <code>([^<]+)</code>", created.text).group(1)  # type: ignore[union-attr]
    assert owner.post(f"/console/api-keys/{key_id}/revoke", data={"csrf_token": token}).status_code == 303
    with app.engine.connect() as connection:
        event_id = connection.execute(sa.text(
            "SELECT id FROM events WHERE merchant_id = :m ORDER BY seq DESC LIMIT 1"), {"m": CAFE}).scalar_one()
    assert owner.post(f"/console/webhooks/events/{event_id}/redeliver", data={"csrf_token": token}).status_code == 303
    done = {e.action for e in actions(app, "dispute.evidence") + actions(app, "api_key.create")
            + actions(app, "api_key.revoke") + actions(app, "webhook_event.redeliver")}
    assert done == {"dispute.evidence", "api_key.create", "api_key.revoke", "webhook_event.redeliver"}


def _host_sale(app: App, status: str, amount: int, stan: str) -> int:
    """A journal row as the host writes it (services/host.py: the currency's alpha code)."""
    with app.engine.begin() as connection:
        return int(connection.execute(sa.insert(host_transactions).values(
            terminal_id="CAFE0001", merchant_id=CAFE, batch_no=1, mti="0200", processing_code="000000",
            kind="purchase", stan=stan, transmission_dt="1122090000", amount_minor=amount, currency="CNY",
            pan_masked="476173******0010", response_code="00" if status == "approved" else "51",
            approval_code="123456" if status == "approved" else None, status=status,
            created_at=app.clock()).returning(host_transactions.c.id)).scalar_one())


def test_the_dashboard_counts_card_present_and_online_sales_and_declines(
        app: App, client: TestClient, cards: dict[str, dict[str, Any]], clock: FakeClock) -> None:
    from paypos.services import console_queries

    paid_payment(client, app, cards, 4_200, "console-dash-2")
    _host_sale(app, "approved", 500, "000011")
    _host_sale(app, "declined", 900, "000012")
    clock.advance(-2 * 24 * 3600)
    _host_sale(app, "approved", 300, "000013")  # two days ago: in the week, not today
    clock.advance(2 * 24 * 3600)
    with app.uow(write=False) as uow:
        data = console_queries.dashboard(uow, CAFE, clock.now)
    assert data.currency == "CNY" and data.today_total_minor == 4_700 and data.week_total_minor == 5_000
    assert data.by_method == {"card_present": 800, "card": 4_200, "wallet": 0}
    assert (data.approved, data.declined, data.approval_rate_percent) == (3, 1, 75)
    assert data.today_by_hour[clock.now.hour] == 4_700 and len(data.week_by_day) == 7
    with app.uow(write=False) as uow:
        empty = console_queries.dashboard(uow, SHOP, clock.now)
    assert empty.approval_rate_percent is None and empty.week_total_minor == 0


def test_transactions_filter_by_channel_status_and_date_without_javascript(
        api: Any, app: App, client: TestClient, cards: dict[str, dict[str, Any]]) -> None:
    payment_id = paid_payment(client, app, cards, 1_500, "console-list-1")
    rrn = f"{_host_sale(app, 'approved', 500, '000021'):012d}"
    cashier = signed_in(api, CASHIER)
    assert payment_id in cashier.get("/console/transactions").text
    assert payment_id not in cashier.get("/console/transactions?status=failed").text
    assert payment_id in cashier.get("/console/transactions?status=succeeded&since=2026-11-22&until=2026-11-22").text
    assert payment_id not in cashier.get("/console/transactions?since=2026-11-23").text
    card_present = cashier.get("/console/transactions?source=card_present").text
    assert rrn in card_present and payment_id not in card_present
    for odd in ("?source=nonsense", "?status=<script>", "?since=yesterday&page=-4", "?page=abc"):
        assert cashier.get("/console/transactions" + odd).status_code == 200  # ignored, never a crash
    assert "476173******0010" in cashier.get(f"/console/card-sales/{rrn}").text
