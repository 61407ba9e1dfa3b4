"""Merchant onboarding (issue 7, docs/merchant-lifecycle.md): applications, their documents,
maker-checker review, and the merchant's lifecycle after approval.

Every function takes the unit of work and the ``actor`` (``user:<id>`` from the console,
``audit.cli_actor()`` from the CLI) and writes an audit entry in the same transaction; the
caller commits. Refusals are typed: :class:`ApplicationNotFound` / :class:`DocumentNotFound`
/ :class:`MerchantNotFound` (404), :class:`MakerCheckerRefused`, :class:`TooManyDocuments`
and ``domain.merchant_application.IllegalTransition`` (409), and
``domain.merchant_application.OnboardingError`` for bad input (422, naming the field).

Maker-checker: every actor who created, edited, submitted or added a document to an
application is one of its *editors*; none of them may approve or reject it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.schema import merchant_applications as apps
from paypos.adapters.db.schema import merchant_documents as docs
from paypos.adapters.db.schema import merchants
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import Vault
from paypos.domain import merchant_application as rules
from paypos.domain.registry import Merchant
from paypos.networks.sandbox import catalog
from paypos.services import audit, events
from paypos.services.sandbox import PLATFORM, open_merchant_accounts

# Onboarding is for Chinese sellers (resident ID, unified social credit code): CNY, China.
CURRENCY = "CNY"
COUNTRY_NUMERIC = "156"
MERCHANT_ID_PREFIX = "PM"  # + 13 random digits = the 15 characters of ISO 8583 field 42
ID_NUMBER_PURPOSE = "resident_id"  # the vault's purpose (AEAD associated data) for ID numbers
DOCUMENTS_DIR = "documents"
_ID_RANDOM_BYTES = 15  # 120 bits = 24 base32 characters


class ApplicationNotFound(LookupError):
    def __init__(self, application_id: str) -> None:
        super().__init__(f"no application {application_id!r}")


class DocumentNotFound(LookupError):
    def __init__(self, document_id: str) -> None:
        super().__init__(f"no document {document_id!r}")


class MerchantNotFound(LookupError):
    def __init__(self, merchant_id: str) -> None:
        super().__init__(f"no merchant {merchant_id!r}")


class MakerCheckerRefused(Exception):
    def __init__(self, actor: str) -> None:
        super().__init__(f"{actor} edited this application: another operator must review it (maker-checker)")


class TooManyDocuments(Exception):
    def __init__(self) -> None:
        super().__init__(f"an application holds at most {limits.documents_per_application_max} documents")


class DocumentCorrupted(RuntimeError):
    """A stored document's bytes no longer match its SHA-256 (tampering or disk damage)."""


def new_id(prefix: str, random: Callable[[int], bytes] = secrets.token_bytes) -> str:
    return prefix + base64.b32encode(random(_ID_RANDOM_BYTES)).decode().lower()


# --- applications --------------------------------------------------------------------------


def create_application(uow: UnitOfWork, vault: Vault, actor: str, now: datetime, fields: dict[str, Any], *,
                       reference: str | None = None) -> dict[str, Any]:
    """A new draft. ``reference`` (the caller's retry key, up to 64 characters) makes a retry
    answer the first application instead of creating a second."""
    if reference is not None:
        if not 1 <= len(reference) <= 64:
            raise rules.OnboardingError("reference", "must be 1..64 characters")
        existing = uow.connection.execute(sa.select(apps.c.id).where(apps.c.reference == reference)).scalar()
        if existing is not None:
            return get_application(uow, existing)
    valid = rules.validate_fields(fields)
    application_id = new_id("app_")
    uow.connection.execute(apps.insert().values(
        id=application_id, reference=reference, **_stored(valid, vault), currency=CURRENCY, country=COUNTRY_NUMERIC,
        status="draft", editors_json=json.dumps([actor]), last_editor=actor, created_at=now, updated_at=now))
    audit.record(uow, now, actor, "application.create", "application", application_id,
                 details={"kind": valid.kind, "mcc": valid.mcc})
    return get_application(uow, application_id)


def update_application(uow: UnitOfWork, vault: Vault, actor: str, now: datetime, application_id: str,
                       changes: dict[str, Any]) -> dict[str, Any]:
    """Change some fields of a draft (or of a rejected application, which becomes a draft again)."""
    row = _locked(uow, application_id)
    status = rules.application_transition(row.status, "draft")
    current = {"kind": row.kind, "legal_name": row.legal_name, "id_number": vault.open(row.id_number_enc,
               ID_NUMBER_PURPOSE), "licence_number": row.licence_number, "phone": row.phone, "mcc": row.mcc,
               "city": row.city, "address": row.address}
    merged = {**current, **changes}
    if merged.get("kind") == "individual" and "kind" in changes and "licence_number" not in changes:
        merged["licence_number"] = None  # a business turned individual seller drops its licence
    valid = rules.validate_fields(merged)
    uow.connection.execute(apps.update().where(apps.c.id == application_id).values(
        **_stored(valid, vault), status=status, reject_codes=None, reject_text=None, decided_by=None,
        decided_at=None, **_edited_by(row, actor), updated_at=now))
    audit.record(uow, now, actor, "application.update", "application", application_id,
                 details={"fields": sorted(changes)})
    return get_application(uow, application_id)


def submit_application(uow: UnitOfWork, actor: str, now: datetime, application_id: str) -> dict[str, Any]:
    """Send a draft for review; submitting a submitted application answers it unchanged."""
    row = _locked(uow, application_id)
    if row.status == "submitted":
        return _json(row, _documents_of(uow, application_id))
    status = rules.application_transition(row.status, "submitted")
    uow.connection.execute(apps.update().where(apps.c.id == application_id).values(
        status=status, **_edited_by(row, actor), updated_at=now))
    audit.record(uow, now, actor, "application.submit", "application", application_id)
    return get_application(uow, application_id)


def approve_application(uow: UnitOfWork, actor: str, now: datetime, application_id: str) -> dict[str, Any]:
    """Approve a submitted application (by an operator who never edited it): the merchant is
    created with status ``approved`` and its ledger accounts. The same approver's retry
    answers the approved application."""
    row = _locked(uow, application_id)
    if row.status == "approved" and row.decided_by == actor:
        return _json(row, _documents_of(uow, application_id))
    _check_checker(row, actor)
    status = rules.application_transition(row.status, "approved")
    merchant_id = _new_merchant(uow, row, now)
    uow.connection.execute(apps.update().where(apps.c.id == application_id).values(
        status=status, decided_by=actor, decided_at=now, merchant_id=merchant_id, updated_at=now))
    audit.record(uow, now, actor, "application.approve", "application", application_id, merchant_id=merchant_id)
    audit.record(uow, now, actor, "merchant.create", "merchant", merchant_id, merchant_id=merchant_id,
                 details={"application_id": application_id, "status": "approved"})
    events.emit(uow, merchant_id, "merchant.approved", merchant_json(uow, merchant_id), now)
    return get_application(uow, application_id)


def reject_application(uow: UnitOfWork, actor: str, now: datetime, application_id: str, codes: list[str],
                       text: str = "") -> dict[str, Any]:
    """Reject a submitted application with reason codes (``rules.REJECT_CODES``) and a text;
    the applicant may edit and resubmit it."""
    codes, text = rules.validate_rejection(codes, text)
    row = _locked(uow, application_id)
    if row.status == "rejected" and row.decided_by == actor:
        return _json(row, _documents_of(uow, application_id))
    _check_checker(row, actor)
    status = rules.application_transition(row.status, "rejected")
    uow.connection.execute(apps.update().where(apps.c.id == application_id).values(
        status=status, reject_codes=",".join(codes), reject_text=text, decided_by=actor, decided_at=now,
        updated_at=now))
    audit.record(uow, now, actor, "application.reject", "application", application_id,
                 details={"reasons": codes, "text": text})
    return get_application(uow, application_id)


def get_application(uow: UnitOfWork, application_id: str, *, vault: Vault | None = None) -> dict[str, Any]:
    """The application as the CLI and API show it; with ``vault`` the full ID number too
    (a reviewer comparing it with the documents)."""
    row = uow.connection.execute(sa.select(apps).where(apps.c.id == application_id)).one_or_none()
    if row is None:
        raise ApplicationNotFound(application_id)
    shown = _json(row, _documents_of(uow, application_id))
    if vault is not None:
        shown["id_number"] = vault.open(row.id_number_enc, ID_NUMBER_PURPOSE)
    return shown


def list_applications(uow: UnitOfWork, *, status: str | None = None,
                      limit: int = limits.applications_listed_max) -> list[dict[str, Any]]:
    """Newest first, without documents; ``status`` filters."""
    if status is not None and status not in rules.APPLICATION_TRANSITIONS:
        raise rules.OnboardingError("status", f"must be one of {', '.join(rules.APPLICATION_TRANSITIONS)}")
    if not 1 <= limit <= limits.applications_listed_max:
        raise rules.OnboardingError("limit", f"must be 1..{limits.applications_listed_max}")
    query = sa.select(apps).order_by(apps.c.created_at.desc(), apps.c.id).limit(limit)
    if status is not None:
        query = query.where(apps.c.status == status)
    return [_json(r, None) for r in uow.connection.execute(query)]


def _stored(valid: rules.ApplicationFields, vault: Vault) -> dict[str, Any]:
    return {"kind": valid.kind, "legal_name": valid.legal_name,
            "id_number_enc": vault.seal(valid.id_number, ID_NUMBER_PURPOSE),
            "id_number_masked": rules.mask_id_number(valid.id_number), "licence_number": valid.licence_number,
            "phone": valid.phone, "mcc": valid.mcc, "city": valid.city, "address": valid.address}


def _locked(uow: UnitOfWork, application_id: str) -> sa.Row[Any]:
    """The application's row, locked for the rest of the transaction (serialises its changes)."""
    row = uow.connection.execute(sa.select(apps).where(apps.c.id == application_id).with_for_update()).one_or_none()
    if row is None:
        raise ApplicationNotFound(application_id)
    return row


def _edited_by(row: sa.Row[Any], actor: str) -> dict[str, str]:
    editors = json.loads(row.editors_json)
    if actor not in editors:
        editors.append(actor)
    return {"editors_json": json.dumps(editors), "last_editor": actor}


def _check_checker(row: sa.Row[Any], actor: str) -> None:
    if actor in json.loads(row.editors_json) or actor == row.last_editor:
        raise MakerCheckerRefused(actor)


def _new_merchant(uow: UnitOfWork, row: sa.Row[Any], now: datetime) -> str:
    if uow.registry.get_acquirer(catalog.ACQUIRER.acquirer_id) is None:
        uow.registry.add_acquirer(catalog.ACQUIRER, now)  # a data dir initialised without --sandbox
    while True:
        merchant_id = MERCHANT_ID_PREFIX + "".join(secrets.choice("0123456789") for _ in range(13))
        if uow.registry.get_merchant(merchant_id) is None:
            break
    uow.registry.add_merchant(Merchant(merchant_id, catalog.ACQUIRER.acquirer_id, row.legal_name, row.mcc,
                                       row.currency, row.country, row.city, row.address, "approved"), now)
    open_merchant_accounts(uow, merchant_id, row.currency)
    for code in ("fees_revenue", "scheme_clearing", "disputes_clearing"):  # the host posts fees here
        uow.ledger.open_account(PLATFORM, PLATFORM, code, row.currency)
    return merchant_id


def _json(row: sa.Row[Any], documents: list[dict[str, Any]] | None) -> dict[str, Any]:
    shown = {
        "id": row.id, "object": "merchant_application", "status": row.status, "kind": row.kind,
        "legal_name": row.legal_name, "id_number_masked": row.id_number_masked,
        "licence_number": row.licence_number, "phone": row.phone, "mcc": row.mcc, "city": row.city,
        "address": row.address, "currency": row.currency, "reference": row.reference,
        "editors": json.loads(row.editors_json), "last_editor": row.last_editor,
        "reject_reasons": row.reject_codes.split(",") if row.reject_codes else [],
        "reject_text": row.reject_text, "decided_by": row.decided_by, "decided_at": _iso(row.decided_at),
        "merchant_id": row.merchant_id, "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at),
    }
    if documents is not None:
        shown["documents"] = documents
    return shown


# --- documents -----------------------------------------------------------------------------


def add_document(uow: UnitOfWork, data_dir: Path, actor: str, now: datetime, application_id: str, content: bytes,
                 media_type: str, file_name: str) -> dict[str, Any]:
    """Store an uploaded file of an editable application (draft, or rejected) as
    ``<data dir>/documents/<sha256>`` (mode 0600) and a row with an unguessable id. The same
    bytes added twice to one application answer the first document."""
    media = rules.check_document(content, media_type)
    digest = hashlib.sha256(content).hexdigest()
    row = _locked(uow, application_id)
    if row.status not in ("draft", "rejected"):
        raise rules.IllegalTransition("the application", row.status, "edited (documents are added to a draft)")
    existing = uow.connection.execute(sa.select(docs).where(docs.c.application_id == application_id,
                                                            docs.c.sha256 == digest)).one_or_none()
    if existing is not None:
        return _document_json(existing)
    count = uow.connection.execute(sa.select(sa.func.count()).select_from(docs)
                                   .where(docs.c.application_id == application_id)).scalar_one()
    if count >= limits.documents_per_application_max:
        raise TooManyDocuments()
    _write_content(data_dir, digest, content)
    document_id = new_id("doc_")
    uow.connection.execute(docs.insert().values(
        id=document_id, application_id=application_id, sha256=digest, size_bytes=len(content), media_type=media,
        file_name=rules.sanitise_file_name(file_name), uploaded_by=actor, created_at=now))
    uow.connection.execute(apps.update().where(apps.c.id == application_id).values(
        **_edited_by(row, actor), updated_at=now))
    audit.record(uow, now, actor, "application.document_add", "application", application_id,
                 details={"document_id": document_id, "sha256": digest, "media_type": media})
    return _document_json(uow.connection.execute(sa.select(docs).where(docs.c.id == document_id)).one())


def read_document(uow: UnitOfWork, data_dir: Path, document_id: str, *,
                  merchant_id: str | None = None) -> tuple[dict[str, Any], bytes]:
    """A document and its bytes (checked against its SHA-256). With ``merchant_id`` only that
    merchant's own (an approved application's) documents; another's is not found."""
    row = uow.connection.execute(sa.select(docs, apps.c.merchant_id).join(apps, apps.c.id == docs.c.application_id)
                                 .where(docs.c.id == document_id)).one_or_none()
    if row is None or (merchant_id is not None and row.merchant_id != merchant_id):
        raise DocumentNotFound(document_id)
    try:
        content = _document_path(data_dir, row.sha256).read_bytes()
    except FileNotFoundError:
        raise DocumentCorrupted(f"document {document_id}: its file is missing from the data dir") from None
    if hashlib.sha256(content).hexdigest() != row.sha256:
        raise DocumentCorrupted(f"document {document_id}: stored bytes do not match their SHA-256")
    return _document_json(row), content


def _documents_of(uow: UnitOfWork, application_id: str) -> list[dict[str, Any]]:
    query = sa.select(docs).where(docs.c.application_id == application_id).order_by(docs.c.created_at, docs.c.id)
    return [_document_json(r) for r in uow.connection.execute(query)]


def _document_path(data_dir: Path, digest: str) -> Path:
    if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        raise ValueError("a document's name is its SHA-256 in lower-case hex")  # never a path from outside
    return Path(data_dir) / DOCUMENTS_DIR / digest


def _write_content(data_dir: Path, digest: str, content: bytes) -> None:
    """Write once, atomically (a temporary file renamed), readable and writable by the owner only."""
    path = _document_path(data_dir, digest)
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _document_json(row: sa.Row[Any]) -> dict[str, Any]:
    return {"id": row.id, "object": "merchant_document", "application_id": row.application_id,
            "sha256": row.sha256, "size_bytes": row.size_bytes, "media_type": row.media_type,
            "file_name": row.file_name, "uploaded_by": row.uploaded_by, "created_at": _iso(row.created_at)}


# --- the merchant after approval -----------------------------------------------------------


def merchant_json(uow: UnitOfWork, merchant_id: str) -> dict[str, Any]:
    merchant = uow.registry.get_merchant(merchant_id)
    if merchant is None:
        raise MerchantNotFound(merchant_id)
    return {"id": merchant.merchant_id, "object": "merchant", "name": merchant.name, "mcc": merchant.mcc,
            "currency": merchant.currency, "city": merchant.city, "address": merchant.address,
            "status": merchant.status}


def activate_merchant(uow: UnitOfWork, actor: str, now: datetime, merchant_id: str) -> dict[str, Any]:
    """An approved merchant starts trading (also done by its first terminal's activation);
    an active merchant answers unchanged."""
    return _set_status(uow, actor, now, merchant_id, "active", "merchant.activate", from_states=("approved",))


def suspend_merchant(uow: UnitOfWork, actor: str, now: datetime, merchant_id: str, reason: str = "") -> dict[str, Any]:
    """Its terminals are declined by the host (58) and its API keys refused (403) from now on."""
    return _set_status(uow, actor, now, merchant_id, "suspended", "merchant.suspend", reason=reason)


def reactivate_merchant(uow: UnitOfWork, actor: str, now: datetime, merchant_id: str) -> dict[str, Any]:
    return _set_status(uow, actor, now, merchant_id, "active", "merchant.reactivate", from_states=("suspended",))


def close_merchant(uow: UnitOfWork, actor: str, now: datetime, merchant_id: str, reason: str = "") -> dict[str, Any]:
    """For good: a closed merchant is never active again."""
    return _set_status(uow, actor, now, merchant_id, "closed", "merchant.close", reason=reason)


def _set_status(uow: UnitOfWork, actor: str, now: datetime, merchant_id: str, wanted: str, action: str, *,
                from_states: tuple[str, ...] | None = None, reason: str = "") -> dict[str, Any]:
    if len(reason) > limits.application_reject_text_chars_max:
        raise rules.OnboardingError("reason", f"must be at most {limits.application_reject_text_chars_max} characters")
    locked = sa.select(merchants.c.status).where(merchants.c.merchant_id == merchant_id).with_for_update()
    current = uow.connection.execute(locked).scalar()  # the row locked: one status change at a time
    if current is None:
        raise MerchantNotFound(merchant_id)
    if current == wanted:
        return merchant_json(uow, merchant_id)  # a retry
    if from_states is not None and current not in from_states:
        raise rules.IllegalTransition("the merchant", current, wanted)
    rules.merchant_transition(current, wanted)
    uow.registry.set_merchant_status(merchant_id, wanted)
    audit.record(uow, now, actor, action, "merchant", merchant_id, merchant_id=merchant_id,
                 details={"from": current, "to": wanted, **({"reason": reason} if reason else {})})
    shown = merchant_json(uow, merchant_id)
    if wanted == "active" and current == "approved":
        events.emit(uow, merchant_id, "merchant.activated", shown, now)
    return shown


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
