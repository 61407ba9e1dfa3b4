"""The merchant lifecycle in the web console (entrypoints/console/pages_lifecycle.py) on SQLite
and PostgreSQL: the public application form (documents, its own CSRF token, a resend answers
the first, a rate limit), the reviewer's applications (masked ID number, documents as
attachments, approve / reject with reasons, the maker-checker refusal shown), the owner's
one-time login, the admin's merchant status actions (audited), the operator's terminal
provisioning (the package shown once), and the owner's terminals (cashier 403, other merchant 404)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from paypos import limits
from paypos.bootstrap import App
from paypos.entrypoints.console import pages_lifecycle
from paypos.services import audit, onboarding
from paypos.services import terminals as terminal_service
from tests.integration.console_client import csrf, login_post, signed_in, user
from tests.integration.online_api import CAFE, TestClient
from tests.integration.test_online_payments import client  # noqa: F401
from tests.integration.test_onboarding import PDF, PNG, fields, in_uow

OWNER, CASHIER, SHOP_OWNER = user("owner", CAFE), user("cashier", CAFE), user("owner", "PPSHOP000000001")


@pytest.fixture
def api(client: TestClient) -> Any:
    return client.app


def actions(app: App, action: str) -> list[audit.AuditEntry]:
    with app.uow(write=False) as uow:
        return [e for e in audit.entries(uow, limit=500) if e.action == action]


def found(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match, text[:2000]
    return match.group(1)


def apply_form(browser: TestClient) -> dict[str, str]:
    page = browser.get("/console/apply")
    assert page.status_code == 200
    token = re.search(r'name="apply_token" value="([^"]+)"', page.text)
    assert token
    values = fields()
    return {**values, "apply_token": token.group(1)}


def apply(browser: TestClient, form: dict[str, str], files: Any = None) -> Any:
    return browser.post("/console/apply", data=form,
                        files=files if files is not None else {"document": ("id card.png", PNG, "image/png")})


def submitted_via_form(api: Any) -> str:
    browser = TestClient(api, follow_redirects=False)
    answer = apply(browser, apply_form(browser))
    assert answer.status_code == 200, answer.text[:1000]
    found = re.search(r'id="application-id">([^<]+)<', answer.text)
    assert found
    return found.group(1)


@pytest.fixture(autouse=True)
def _fresh_rate_limit() -> None:
    pages_lifecycle.RATE_LIMIT._seen.clear()


# --- the public form --------------------------------------------------------------------------------

def test_an_applicant_applies_with_a_document_without_signing_in_and_a_resend_makes_one_application(
        api: Any, app: App) -> None:
    browser = TestClient(api, follow_redirects=False)
    form = apply_form(browser)
    first = apply(browser, form)
    again = apply(browser, form)
    assert first.status_code == again.status_code == 200
    ids = {found(r'id="application-id">([^<]+)<', r.text) for r in (first, again)}
    assert len(ids) == 1
    with app.uow(write=False) as uow:
        shown = onboarding.get_application(uow, ids.pop())
    assert shown["status"] == "submitted" and [d["media_type"] for d in shown["documents"]] == ["image/png"]
    assert shown["editors"] == [pages_lifecycle.PUBLIC_ACTOR]
    assert "360426199101010071" not in first.text


def test_the_public_form_refuses_a_missing_token_a_missing_document_and_a_bad_id_number(api: Any, app: App) -> None:
    browser = TestClient(api, follow_redirects=False)
    assert apply(browser, {**apply_form(browser), "apply_token": "forged-token-0000000000"}).status_code == 403
    assert apply(browser, apply_form(browser), files={}).status_code == 422
    bad = apply(browser, {**apply_form(browser), "id_number": "123"})  # each answer sets a fresh form token
    assert bad.status_code == 422 and "id_number" in bad.text and "Lotus Tea House" in bad.text
    bad_phone = apply(browser, {**apply_form(browser), "phone": "12"})
    assert bad_phone.status_code == 422 and "360426199101010071" not in bad_phone.text  # never echoed
    fake = apply(browser, apply_form(browser), files={"document": ("x.pdf", b"MZ not a pdf", "application/pdf")})
    assert fake.status_code == 422
    with app.uow(write=False) as uow:
        assert onboarding.list_applications(uow) == []


def test_the_public_form_is_rate_limited_per_address(api: Any, app: App) -> None:
    browser = TestClient(api, follow_redirects=False)
    for _ in range(limits.console_public_applications_per_ip_max):
        assert apply(browser, apply_form(browser)).status_code == 200
    refused = apply(browser, apply_form(browser))
    assert refused.status_code == 429
    with app.uow(write=False) as uow:
        assert len(onboarding.list_applications(uow)) == limits.console_public_applications_per_ip_max


# --- review -----------------------------------------------------------------------------------------

def test_a_reviewer_sees_the_masked_id_downloads_a_document_approves_and_creates_the_owner_login(
        api: Any, app: App) -> None:
    application_id = submitted_via_form(api)
    reviewer = signed_in(api, user("reviewer"))
    listed = reviewer.get("/console/ops/applications?status=submitted")
    assert listed.status_code == 200 and application_id in listed.text
    assert application_id not in reviewer.get("/console/ops/applications?status=approved").text
    detail = reviewer.get(f"/console/ops/applications/{application_id}")
    assert "360426********0071" in detail.text and "360426199101010071" not in detail.text
    document_id = re.search(r'/console/ops/documents/(doc_[a-z0-9]+)', detail.text).group(1)  # type: ignore[union-attr]
    download = reviewer.get(f"/console/ops/documents/{document_id}")
    assert download.status_code == 200 and download.content == PNG
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"

    token = csrf(reviewer)
    assert reviewer.post(f"/console/ops/applications/{application_id}/approve",
                         data={"csrf_token": token}).status_code == 303
    with app.uow(write=False) as uow:
        merchant_id = onboarding.get_application(uow, application_id)["merchant_id"]
    assert merchant_id and [e.actor for e in actions(app, "application.approve")] == [f"user:{user('reviewer').id}"]
    made = reviewer.post(f"/console/ops/applications/{application_id}/owner",
                         data={"csrf_token": token, "email": "lotus@tea.example"})
    password = re.search(r'id="owner-password">([^<]+)<', made.text).group(1)  # type: ignore[union-attr]
    assert made.status_code == 200 and len(password) >= limits.console_password_chars_min
    assert "owner-password" not in reviewer.get(f"/console/ops/applications/{application_id}").text  # once
    twice = reviewer.post(f"/console/ops/applications/{application_id}/owner",
                          data={"csrf_token": token, "email": "other@tea.example"})
    assert twice.status_code == 409
    owner = TestClient(api, follow_redirects=False)
    assert login_post(owner, "lotus@tea.example", password).headers["location"] == "/console/dashboard"
    assert owner.get("/console/terminals").status_code == 200


def test_a_reviewer_who_edited_an_application_is_refused_with_a_clear_message(api: Any, app: App) -> None:
    reviewer = user("reviewer")
    actor = f"user:{reviewer.id}"
    created = in_uow(app, lambda uow: onboarding.create_application(uow, app.vault, actor, app.clock(), fields()))
    in_uow(app, lambda uow: onboarding.submit_application(uow, actor, app.clock(), created["id"]))
    browser = signed_in(api, reviewer)
    refused = browser.post(f"/console/ops/applications/{created['id']}/approve", data={"csrf_token": csrf(browser)})
    assert refused.status_code == 409 and "maker-checker" in refused.text
    assert not actions(app, "application.approve")


def test_a_rejection_needs_a_reason_code_and_records_the_reasons(api: Any, app: App) -> None:
    application_id = submitted_via_form(api)
    admin = signed_in(api, user("admin"))
    token = csrf(admin)
    none = admin.post(f"/console/ops/applications/{application_id}/reject", data={"csrf_token": token})
    assert none.status_code == 422 and "reason" in none.text
    done = admin.post(f"/console/ops/applications/{application_id}/reject", data={
        "csrf_token": token, "reason_documents_missing": "1", "text": "Please add the licence."})
    assert done.status_code == 303
    assert [e.details["reasons"] for e in actions(app, "application.reject")] == [["documents_missing"]]
    assert "documents_missing" in admin.get(f"/console/ops/applications/{application_id}").text


def test_a_finance_operator_cannot_review_and_an_unknown_application_is_404(api: Any) -> None:
    finance = signed_in(api, user("finance"))
    assert finance.get("/console/ops/applications").status_code == 403
    reviewer = signed_in(api, user("reviewer"))
    assert reviewer.get("/console/ops/applications/app_nothere").status_code == 404
    assert reviewer.get("/console/ops/documents/doc_nothere").status_code == 404


# --- merchant status ----------------------------------------------------------------------------------

def test_an_admin_suspends_with_a_reason_and_reactivates_a_merchant_and_both_are_audited(
        api: Any, app: App) -> None:
    admin = signed_in(api, user("admin"))
    token = csrf(admin)
    no_reason = admin.post(f"/console/ops/merchants/{CAFE}/suspend", data={"csrf_token": token})
    assert no_reason.status_code == 303 and not actions(app, "merchant.suspend")
    assert admin.post(f"/console/ops/merchants/{CAFE}/suspend",
                      data={"csrf_token": token, "reason": "chargeback spike"}).status_code == 303
    wrong = admin.post(f"/console/ops/merchants/{CAFE}/activate", data={"csrf_token": token})
    assert wrong.status_code == 303 and not actions(app, "merchant.activate")  # suspended is not approved
    assert admin.post(f"/console/ops/merchants/{CAFE}/reactivate", data={"csrf_token": token}).status_code == 303
    assert admin.post(f"/console/ops/merchants/{CAFE}/close",
                      data={"csrf_token": token, "reason": "owner retired"}).status_code == 303
    assert "closed" in admin.get(f"/console/ops/merchants/{CAFE}").text
    assert [e.details.get("reason") for e in actions(app, "merchant.suspend")] == ["chargeback spike"]
    assert [e.details.get("reason") for e in actions(app, "merchant.close")] == ["owner retired"]
    assert actions(app, "merchant.reactivate")
    log = admin.get(f"/console/ops/audit?merchant={CAFE}").text
    assert "merchant.suspend" in log and "merchant.reactivate" in log
    reviewer = signed_in(api, user("reviewer"))
    assert reviewer.post(f"/console/ops/merchants/{CAFE}/close",
                         data={"csrf_token": csrf(reviewer), "reason": "x"}).status_code == 403


# --- terminals ------------------------------------------------------------------------------------------

def test_an_owner_requests_a_terminal_once_and_the_operator_provisions_it_showing_the_package_once(
        api: Any, app: App) -> None:
    owner = signed_in(api, OWNER)
    page = owner.get("/console/terminals").text
    key = re.search(r'name="form_key" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = {"csrf_token": csrf(owner), "form_key": key, "location": "Counter 3, 88 Zhongshan Rd"}
    assert owner.post("/console/terminals", data=form).status_code == 303
    assert owner.post("/console/terminals", data=form).status_code == 303  # a resend
    assert len(actions(app, "terminal.apply")) == 1
    blank = owner.post("/console/terminals", data={**form, "form_key": "k" * 24, "location": ""})
    assert blank.status_code == 422

    reviewer = signed_in(api, user("reviewer"))
    listing = reviewer.get("/console/ops/terminals").text
    request_id = found(r'/console/ops/terminal-requests/(trq_[a-z0-9]+)/provision', listing)
    token = csrf(reviewer)
    package = reviewer.post(f"/console/ops/terminal-requests/{request_id}/provision", data={"csrf_token": token})
    assert package.status_code == 200 and "Shown once" in package.text
    terminal_id = re.search(r'id="package-terminal-id">([^<]+)<', package.text).group(1)  # type: ignore[union-attr]
    code = re.search(r'id="package-code">([^<]+)<', package.text).group(1)  # type: ignore[union-attr]
    assert re.search(r'id="package-ipek">[0-9A-F]{32}<', package.text)
    again = reviewer.post(f"/console/ops/terminal-requests/{request_id}/provision", data={"csrf_token": token})
    assert again.status_code == 303 and code not in reviewer.get("/console/ops/terminals").text
    with app.uow() as uow:
        terminal_service.activate(uow, app.vault, "cli:test", app.clock(), terminal_id, code)
        uow.commit()
    assert reviewer.post(f"/console/ops/terminals/{terminal_id}/suspend",
                         data={"csrf_token": token, "reason": "lost"}).status_code == 303
    assert "suspended" in owner.get(f"/console/terminals/{terminal_id}").text
    assert reviewer.post(f"/console/ops/terminals/{terminal_id}/resume", data={"csrf_token": token}).status_code == 303
    replaced = reviewer.post(f"/console/ops/terminals/{terminal_id}/replace", data={"csrf_token": token})
    assert replaced.status_code == 200 and "package-code" in replaced.text
    assert [len(actions(app, a)) for a in ("terminal.suspend", "terminal.resume", "terminal.replace")] == [1, 1, 1]


def test_a_cashier_cannot_reach_terminals_and_another_merchant_cannot_see_a_cafe_terminal(api: Any) -> None:
    cashier = signed_in(api, CASHIER)
    assert cashier.get("/console/terminals").status_code == 403
    assert cashier.get("/console/terminals/CAFE0001").status_code == 403
    assert "Terminals" not in re.sub(r"<main>.*", "", cashier.get("/console/transactions").text, flags=re.S)
    shop = signed_in(api, SHOP_OWNER)
    assert shop.get("/console/terminals/CAFE0001").status_code == 404
    assert "CAFE0001" not in shop.get("/console/terminals").text
    assert signed_in(api, OWNER).get("/console/terminals/CAFE0001").status_code == 200


def test_a_new_activation_code_replaces_the_old_one_and_is_shown_once(api: Any, app: App) -> None:
    with app.uow() as uow:
        request = terminal_service.apply(uow, "cli:test", app.clock(), CAFE, "Counter 9")
        old = terminal_service.provision(uow, app.vault, "cli:test", app.clock(), request["request_id"])["package"]
        uow.commit()
    reviewer = signed_in(api, user("reviewer"))
    token = csrf(reviewer)
    fresh = reviewer.post(f"/console/ops/terminals/{old['terminal_id']}/new-code", data={"csrf_token": token})
    assert fresh.status_code == 200 and "Shown once" in fresh.text
    code = found(r'id="package-code">([^<]+)<', fresh.text)
    with app.uow() as uow:
        with pytest.raises(terminal_service.WrongActivationCode):
            terminal_service.activate(uow, app.vault, "cli:test", app.clock(), old["terminal_id"],
                                      old["activation_code"])
        assert terminal_service.activate(uow, app.vault, "cli:test", app.clock(), old["terminal_id"],
                                         code)["status"] == "active"
        uow.commit()
    refused = reviewer.post(f"/console/ops/terminals/{old['terminal_id']}/new-code", data={"csrf_token": token})
    assert refused.status_code == 303 and not actions(app, "terminal.new_activation_code")[1:]


def test_a_document_with_a_chinese_name_downloads_under_its_name(api: Any, app: App) -> None:
    browser = TestClient(api, follow_redirects=False)
    answer = apply(browser, apply_form(browser), files={"document": ("身份证.pdf", PDF, "application/pdf")})
    application_id = found(r'id="application-id">([^<]+)<', answer.text)
    reviewer = signed_in(api, user("reviewer"))
    detail = reviewer.get(f"/console/ops/applications/{application_id}").text
    download = reviewer.get("/console/ops/documents/" + found(r'/console/ops/documents/(doc_[a-z0-9]+)', detail))
    assert download.status_code == 200 and download.content == PDF
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"___.pdf\"; filename*=UTF-8''%E8%BA%AB%E4%BB%BD%E8%AF%81.pdf")


def test_a_console_form_over_the_size_limit_is_413_before_it_is_read(
        api: Any, app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    browser = TestClient(api, follow_redirects=False)
    form = apply_form(browser)
    monkeypatch.setattr(limits, "console_form_bytes_max", 4_000)
    big = apply(browser, form, files={"document": ("scan.png", PNG + b"\x00" * 5_000, "image/png")})
    assert big.status_code == 413 and big.headers["x-frame-options"] == "DENY"
    with app.uow(write=False) as uow:
        assert onboarding.list_applications(uow) == []


def test_a_console_post_without_a_length_is_411(api: Any) -> None:
    owner = signed_in(api, OWNER)
    chunked = owner.post("/console/terminals", content=iter([b"csrf_token=x&location=y"]),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert chunked.status_code == 411
