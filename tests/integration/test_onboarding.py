"""Merchant onboarding (services/onboarding.py, entrypoints/api_onboarding.py) on SQLite and
PostgreSQL: an application through maker-checker review to a merchant with its ledger
accounts, rejections with reasons, documents stored by their SHA-256 and served only to the
operator or the owning merchant, and a suspended or closed merchant refused by the API."""

from __future__ import annotations

import hashlib
import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.schema import events, merchant_applications, merchant_documents
from paypos.bootstrap import App, init_database
from paypos.domain import merchant_application as rules
from paypos.services import audit, ledger as ledger_service
from paypos.services import onboarding
from tests.integration.online_api import CAFE, CAFE_AUTH, TestClient, sandbox_client

MAKER, CHECKER = "user:maker", "user:checker"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
OPERATOR_TOKEN = "t" * limits.operator_token_chars_min


def fields(**changes: str) -> dict[str, str]:
    return {"kind": "business", "legal_name": "Lotus Tea House Co., Ltd.", "id_number": "360426199101010071",
            "licence_number": "91110000600037341L", "phone": "13912345678", "mcc": "5814", "city": "Hangzhou",
            "address": "1 West Lake Road", **changes}


def in_uow(app: App, work: Any, *, commit: bool = True) -> Any:
    with app.uow() as uow:
        result = work(uow)
        if commit:
            uow.commit()
        return result


def submitted(app: App, maker: str = MAKER) -> str:
    now = app.clock()
    created = in_uow(app, lambda uow: onboarding.create_application(uow, app.vault, maker, now, fields()))
    in_uow(app, lambda uow: onboarding.submit_application(uow, maker, now, created["id"]))
    return created["id"]


def approved(app: App) -> dict[str, Any]:
    application_id = submitted(app)
    return in_uow(app, lambda uow: onboarding.approve_application(uow, CHECKER, app.clock(), application_id))


def test_an_application_approved_by_another_operator_becomes_a_merchant_with_its_accounts(app: App) -> None:
    shown = approved(app)
    merchant_id = shown["merchant_id"]
    assert shown["status"] == "approved" and shown["decided_by"] == CHECKER and len(merchant_id) == 15
    with app.uow(write=False) as uow:
        merchant = uow.registry.get_merchant(merchant_id)
        assert merchant is not None and merchant.status == "approved" and merchant.name == fields()["legal_name"]
        assert merchant.currency == "CNY" and merchant.mcc == "5814"
        for code in ("merchant_pending", "merchant_escrow", "merchant_available"):
            assert uow.ledger.find_account_id(f"merchant:{merchant_id}", code, "CNY") is not None
        actions = [e.action for e in audit.entries(uow, subject_id=shown["id"])]
        assert actions == ["application.approve", "application.submit", "application.create"]
        event = uow.connection.execute(sa.select(events).where(events.c.merchant_id == merchant_id)).one()
        assert event.type == "merchant.approved"
    assert ledger_service.check(app.engine, app.clock) == []


def test_the_approvers_retry_answers_the_same_merchant_and_a_second_approval_is_refused(app: App) -> None:
    first = approved(app)
    again = in_uow(app, lambda uow: onboarding.approve_application(uow, CHECKER, app.clock(), first["id"]))
    assert again["merchant_id"] == first["merchant_id"]
    with pytest.raises(rules.IllegalTransition, match="is approved; it cannot become approved"):
        in_uow(app, lambda uow: onboarding.approve_application(uow, "user:third", app.clock(), first["id"]))


@pytest.mark.parametrize("who", [MAKER, "user:doc-adder"])
def test_anyone_who_edited_the_application_may_not_approve_or_reject_it(app: App, who: str) -> None:
    now = app.clock()
    created = in_uow(app, lambda uow: onboarding.create_application(uow, app.vault, MAKER, now, fields()))
    in_uow(app, lambda uow: onboarding.add_document(uow, app.settings.data_dir, "user:doc-adder", now,
                                                    created["id"], PDF, "application/pdf", "licence.pdf"))
    in_uow(app, lambda uow: onboarding.submit_application(uow, MAKER, now, created["id"]))
    with pytest.raises(onboarding.MakerCheckerRefused, match="maker-checker"):
        in_uow(app, lambda uow: onboarding.approve_application(uow, who, now, created["id"]))
    with pytest.raises(onboarding.MakerCheckerRefused):
        in_uow(app, lambda uow: onboarding.reject_application(uow, who, now, created["id"], ["id_invalid"]))
    with app.uow(write=False) as uow:
        assert onboarding.get_application(uow, created["id"])["status"] == "submitted"
        assert uow.registry.list_merchants() == []


def test_a_rejected_application_keeps_its_reasons_and_can_be_fixed_and_resubmitted(app: App) -> None:
    application_id = submitted(app)
    now = app.clock()
    rejected = in_uow(app, lambda uow: onboarding.reject_application(
        uow, CHECKER, now, application_id, ["id_mismatch", "other"], "the scan is blurred"))
    assert rejected["status"] == "rejected" and rejected["reject_reasons"] == ["id_mismatch", "other"]
    assert rejected["reject_text"] == "the scan is blurred"
    fixed = in_uow(app, lambda uow: onboarding.update_application(
        uow, app.vault, MAKER, now, application_id, {"id_number": "11010519491231002X"}))
    assert fixed["status"] == "draft" and fixed["reject_reasons"] == [] and fixed["id_number_masked"].endswith("002X")
    assert in_uow(app, lambda uow: onboarding.submit_application(uow, MAKER, now, application_id))["status"] == "submitted"


def test_a_rejection_without_a_known_reason_is_refused_and_changes_nothing(app: App) -> None:
    application_id = submitted(app)
    for codes in ([], ["because"]):
        with pytest.raises(rules.OnboardingError, match="^reasons: "):
            in_uow(app, lambda uow, codes=codes: onboarding.reject_application(
                uow, CHECKER, app.clock(), application_id, codes))
    with app.uow(write=False) as uow:
        assert onboarding.get_application(uow, application_id)["status"] == "submitted"


def test_a_bad_field_names_itself_and_writes_nothing(app: App) -> None:
    with pytest.raises(rules.OnboardingError, match="^licence_number: ") as raised:
        in_uow(app, lambda uow: onboarding.create_application(
            uow, app.vault, MAKER, app.clock(), fields(licence_number="91110000600037341A")))
    assert raised.value.field == "licence_number"
    with app.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(merchant_applications)).scalar_one() == 0


def test_a_create_with_the_same_reference_answers_the_first_application(app: App) -> None:
    now = app.clock()
    first = in_uow(app, lambda uow: onboarding.create_application(uow, app.vault, MAKER, now, fields(), reference="r-1"))
    again = in_uow(app, lambda uow: onboarding.create_application(uow, app.vault, MAKER, now, fields(), reference="r-1"))
    assert again["id"] == first["id"]


def test_the_resident_id_is_sealed_at_rest_and_shown_masked_unless_revealed(app: App) -> None:
    created = in_uow(app, lambda uow: onboarding.create_application(uow, app.vault, MAKER, app.clock(), fields()))
    with app.engine.connect() as connection:
        row = connection.execute(sa.select(merchant_applications)).one()
    assert b"360426199101010071" not in row.id_number_enc and row.id_number_masked == "360426********0071"
    assert "360426199101010071" not in json.dumps(created)
    with app.uow(write=False) as uow:
        assert onboarding.get_application(uow, created["id"], vault=app.vault)["id_number"] == "360426199101010071"


def test_a_submitted_application_cannot_be_edited(app: App) -> None:
    application_id = submitted(app)
    with pytest.raises(rules.IllegalTransition, match="is submitted; it cannot become draft"):
        in_uow(app, lambda uow: onboarding.update_application(uow, app.vault, MAKER, app.clock(), application_id,
                                                              {"city": "Suzhou"}))
    with pytest.raises(rules.IllegalTransition):
        in_uow(app, lambda uow: onboarding.add_document(uow, app.settings.data_dir, MAKER, app.clock(),
                                                        application_id, PDF, "application/pdf", "x.pdf"))


# --- documents ---------------------------------------------------------------------------------


def draft(app: App) -> str:
    return in_uow(app, lambda uow: onboarding.create_application(uow, app.vault, MAKER, app.clock(), fields()))["id"]


def test_a_document_is_stored_by_its_sha256_owner_only_and_read_back_checked(app: App) -> None:
    application_id = draft(app)
    added = in_uow(app, lambda uow: onboarding.add_document(uow, app.settings.data_dir, MAKER, app.clock(),
                                                            application_id, PDF, "application/pdf", "../营业执照.pdf"))
    digest = hashlib.sha256(PDF).hexdigest()
    stored = Path(app.settings.data_dir) / "documents" / digest
    assert added["sha256"] == digest and added["size_bytes"] == len(PDF) and added["file_name"] == "营业执照.pdf"
    assert added["id"].startswith("doc_") and len(added["id"]) == 28
    assert stored.read_bytes() == PDF and stat.S_IMODE(stored.stat().st_mode) == 0o600
    with app.uow(write=False) as uow:
        meta, content = onboarding.read_document(uow, app.settings.data_dir, added["id"])
    assert content == PDF and meta["media_type"] == "application/pdf"


def test_the_same_bytes_twice_make_one_document(app: App) -> None:
    application_id = draft(app)

    def add(uow: Any) -> dict[str, Any]:
        return onboarding.add_document(uow, app.settings.data_dir, MAKER, app.clock(), application_id, PNG,
                                       "image/png", "id.png")

    assert in_uow(app, add)["id"] == in_uow(app, add)["id"]
    with app.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(merchant_documents)).scalar_one() == 1


@pytest.mark.parametrize("content, declared", [(PDF, "image/png"), (b"MZ\x90\x00", "application/pdf"),
                                               (b"<svg onload=alert(1)>", "image/svg+xml"), (b"", "image/png")])
def test_a_document_whose_type_is_not_allowed_or_lies_is_refused_and_nothing_is_written(
        app: App, content: bytes, declared: str) -> None:
    application_id = draft(app)
    with pytest.raises(rules.OnboardingError):
        in_uow(app, lambda uow: onboarding.add_document(uow, app.settings.data_dir, MAKER, app.clock(),
                                                        application_id, content, declared, "x"))
    assert not (Path(app.settings.data_dir) / "documents").exists()


def test_a_tampered_document_is_refused_when_read(app: App) -> None:
    application_id = draft(app)
    added = in_uow(app, lambda uow: onboarding.add_document(uow, app.settings.data_dir, MAKER, app.clock(),
                                                            application_id, PDF, "application/pdf", "a.pdf"))
    path = Path(app.settings.data_dir) / "documents" / added["sha256"]
    path.write_bytes(PDF + b"<script>")
    with app.uow(write=False) as uow, pytest.raises(onboarding.DocumentCorrupted):
        onboarding.read_document(uow, app.settings.data_dir, added["id"])


# --- REST: documents only to the operator or the owning merchant; suspended merchants refused ---


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    app.settings.operator_token = OPERATOR_TOKEN
    with sandbox_client(app) as test_client:
        yield test_client


OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}", "Paypos-Operator": "alice"}


def test_an_operator_uploads_over_multipart_and_downloads_an_attachment_that_is_never_sniffed(
        app: App, client: TestClient) -> None:
    application_id = draft(app)
    url = f"/v1/operator/applications/{application_id}/documents"
    response = client.post(url, files={"file": ("licence.png", PNG, "image/png")}, headers=OPERATOR)
    assert response.status_code == 201, response.text
    document = response.json()
    assert document["uploaded_by"] == "operator:alice"
    download = client.get(f"/v1/operator/documents/{document['id']}", headers=OPERATOR)
    assert download.status_code == 200 and download.content == PNG
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"
    lying = client.post(url, files={"file": ("evil.png", PDF, "image/png")}, headers=OPERATOR)
    assert lying.status_code == 422 and lying.json()["field"] == "file"
    assert client.get(f"/v1/operator/documents/{document['id']}").status_code == 401
    assert client.get(f"/v1/operator/documents/{document['id']}", headers=CAFE_AUTH).status_code == 401


def test_a_merchant_downloads_only_its_own_applications_documents(app: App, client: TestClient) -> None:
    application_id = draft(app)
    added = in_uow(app, lambda uow: onboarding.add_document(uow, app.settings.data_dir, MAKER, app.clock(),
                                                            application_id, PDF, "application/pdf", "a.pdf"))
    with app.engine.begin() as connection:  # as if the café had been onboarded through this application
        connection.execute(merchant_applications.update().values(merchant_id=CAFE))
    assert client.get(f"/v1/documents/{added['id']}", headers=CAFE_AUTH).content == PDF
    with app.engine.begin() as connection:
        connection.execute(merchant_applications.update().values(merchant_id=None))
    response = client.get(f"/v1/documents/{added['id']}", headers=CAFE_AUTH)
    assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"


def test_a_suspended_merchants_api_key_is_refused_until_it_is_reactivated(app: App, client: TestClient) -> None:
    assert client.get("/v1/payment_requests", headers=CAFE_AUTH).status_code == 200
    in_uow(app, lambda uow: onboarding.suspend_merchant(uow, CHECKER, app.clock(), CAFE, "fraud review"))
    refused = client.get("/v1/payment_requests", headers=CAFE_AUTH)
    assert refused.status_code == 403 and refused.json()["type"].endswith("merchant-not-active")
    in_uow(app, lambda uow: onboarding.reactivate_merchant(uow, CHECKER, app.clock(), CAFE))
    assert client.get("/v1/payment_requests", headers=CAFE_AUTH).status_code == 200


def test_a_closed_merchant_is_never_reactivated(app: App) -> None:
    init_database(app, sandbox=True)
    closed = in_uow(app, lambda uow: onboarding.close_merchant(uow, CHECKER, app.clock(), CAFE, "asked to leave"))
    assert closed["status"] == "closed"
    with pytest.raises(rules.IllegalTransition, match="is closed; it cannot become active"):
        in_uow(app, lambda uow: onboarding.reactivate_merchant(uow, CHECKER, app.clock(), CAFE))
    with pytest.raises(onboarding.MerchantNotFound):
        in_uow(app, lambda uow: onboarding.suspend_merchant(uow, CHECKER, app.clock(), "NOPE00000000000"))
    with app.uow(write=False) as uow:
        actions = [e.action for e in audit.entries(uow, merchant_id=CAFE)]
    assert [a for a in actions if a.startswith("merchant.")] == ["merchant.close"]  # the seed audits its plan too


def test_the_operator_api_takes_an_application_to_an_active_terminal_with_maker_checker(client: TestClient) -> None:
    alice, bob = OPERATOR, {**OPERATOR, "Paypos-Operator": "bob"}
    created = client.post("/v1/operator/applications", json={**fields(), "reference": "web-1"}, headers=alice)
    assert created.status_code == 201, created.text
    url = f"/v1/operator/applications/{created.json()['id']}"
    assert client.post(url + "/submit", headers=alice).json()["status"] == "submitted"
    refused = client.post(url + "/approve", headers=alice)
    assert refused.status_code == 409 and refused.json()["type"].endswith("maker-checker")
    merchant_id = client.post(url + "/approve", headers=bob).json()["merchant_id"]
    request = client.post("/v1/operator/terminal_requests", json={"merchant": merchant_id, "location": "Till"},
                          headers=alice).json()
    provisioned = client.post(f"/v1/operator/terminal_requests/{request['request_id']}/provision", headers=alice)
    assert provisioned.status_code == 201 and provisioned.headers["cache-control"] == "no-store"
    package = provisioned.json()["package"]
    terminal_url = f"/v1/operator/terminals/{package['terminal_id']}"
    wrong = client.post(terminal_url + "/activate", json={"code": "AAAAAAAAAA"}, headers=alice)
    assert wrong.status_code == 409 and "4 attempts left" in wrong.json()["detail"]
    assert client.post(terminal_url + "/activate", json={"code": package["activation_code"]},
                       headers=alice).json()["status"] == "active"
    assert client.post(f"/v1/operator/merchants/{merchant_id}/suspend", json={"reason": "review"},
                       headers=alice).json()["status"] == "suspended"
    assert client.get(terminal_url, headers=alice).json()["status"] == "active"


def test_the_operator_api_refuses_bad_fields_a_missing_operator_name_and_no_token(client: TestClient) -> None:
    bad = client.post("/v1/operator/applications", json=fields(phone="12345"), headers=OPERATOR)
    assert bad.status_code == 422 and bad.json()["field"] == "phone"
    unnamed = client.post("/v1/operator/applications", json=fields(),
                          headers={"Authorization": OPERATOR["Authorization"]})
    assert unnamed.status_code == 422
    assert client.post("/v1/operator/applications", json=fields()).status_code == 401
    assert client.get("/v1/operator/terminals/NOPE0000", headers=OPERATOR).status_code == 404


def test_two_checkers_approving_at_once_make_one_merchant(app: App) -> None:
    application_id = submitted(app)
    barrier, outcomes = threading.Barrier(2), []

    def approve(checker: str) -> None:
        barrier.wait()
        try:
            outcomes.append(in_uow(app, lambda uow: onboarding.approve_application(
                uow, checker, app.clock(), application_id))["merchant_id"])
        except rules.IllegalTransition as error:
            outcomes.append(error)

    threads = [threading.Thread(target=approve, args=(f"user:checker-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(o, str) for o in outcomes) == 1 and sum(isinstance(o, Exception) for o in outcomes) == 1
    with app.uow(write=False) as uow:
        assert len(uow.registry.list_merchants()) == 1


def test_an_application_holds_at_most_its_limit_of_documents(app: App) -> None:
    application_id = draft(app)

    def add(n: int) -> Any:
        return in_uow(app, lambda uow: onboarding.add_document(
            uow, app.settings.data_dir, MAKER, app.clock(), application_id, PDF + str(n).encode(), "application/pdf",
            f"page-{n}.pdf"))

    for n in range(limits.documents_per_application_max):
        add(n)
    with pytest.raises(onboarding.TooManyDocuments):
        add(limits.documents_per_application_max)
