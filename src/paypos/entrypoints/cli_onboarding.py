"""`paypos merchants applications create|update|submit|approve|reject|show|list|documents`
and `paypos merchants activate|suspend|reactivate|close` — merchant onboarding from the
operator's shell (docs/merchant-lifecycle.md); `paypos terminals ...` is cli_terminals.py.

The actor recorded in the audit log (and checked by maker-checker) is ``cli:<os user>``, or
``cli:<os user>/<name>`` with ``--operator NAME`` when operators share an OS account. Not
found and refusals (wrong state, maker-checker) exit 1; bad input (a field, naming it) exits 2.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from paypos import limits
from paypos.adapters.db.uow import UnitOfWork
from paypos.bootstrap import App
from paypos.domain import merchant_application as rules
from paypos.entrypoints.cli_prepaid import DatabaseUrl, DataDir, JsonFlag, _app, _fail, _show
from paypos.services import audit
from paypos.services import onboarding as service
from paypos.services import terminals as terminal_service

T = TypeVar("T")
applications_app = typer.Typer(
    help="Merchant applications: create, update, add documents, submit; another operator approves or rejects.",
    no_args_is_help=True)
documents_app = typer.Typer(help="An application's documents (PDF, PNG, JPEG up to 5 MiB): add, save.",
                            no_args_is_help=True)
applications_app.add_typer(documents_app, name="documents")

ApplicationId = Annotated[str, typer.Argument(help="The application id (app_...; applications list).")]
MerchantArg = Annotated[str, typer.Argument(help="The merchant id (15 characters).")]
Operator = Annotated[str | None, typer.Option(
    "--operator", help="Your name, recorded as cli:<os user>/<name> (maker-checker between operators).")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")]
_COLUMNS = ["id", "status", "kind", "legal_name", "merchant_id"]
_DOC_COLUMNS = ["id", "media_type", "size_bytes", "file_name"]
_MERCHANT_COLUMNS = ["id", "name", "mcc", "currency", "status"]

# Refusals exit 1, bad input 2 (shared with cli_terminals).
REFUSALS: tuple[type[Exception], ...] = (
    service.ApplicationNotFound, service.DocumentNotFound, service.MerchantNotFound,
    terminal_service.TerminalNotFound, rules.IllegalTransition, service.MakerCheckerRefused, service.TooManyDocuments,
    service.DocumentCorrupted, terminal_service.ActivationRefused, terminal_service.MerchantNotTrading)


def actor(operator: str | None) -> str:
    base = audit.cli_actor()
    if operator is None:
        return base
    name = operator.strip()
    if not name or not name.isprintable() or len(f"{base}/{name}".encode()) > audit.ACTOR_BYTES_MAX:
        _fail("--operator: a printable name, at most about 60 characters", 2)
    return f"{base}/{name}"


def run(data_dir: Path | None, database_url: str | None, work: Callable[[App, UnitOfWork], T], *,
        write: bool = True) -> T:
    """One use case in one unit of work (committed when it writes); a refusal exits 1 in one
    line, bad input 2. A wrong activation code is committed before it is refused (it counts)."""
    with _app(data_dir, database_url) as paypos:
        try:
            with paypos.uow(write=write) as uow:
                try:
                    result = work(paypos, uow)
                except terminal_service.WrongActivationCode:
                    uow.commit()
                    raise
                if write:
                    uow.commit()
                return result
        except rules.OnboardingError as error:
            _fail(str(error), 2)
        except REFUSALS as error:
            _fail(str(error), 1)


def _fields(**values: str | None) -> dict[str, str]:
    return {name: value for name, value in values.items() if value is not None}


Kind = Annotated[str | None, typer.Option("--kind", help="individual (a seller) or business.")]
LegalName = Annotated[str | None, typer.Option("--legal-name", help="The seller's or business's legal name.")]
IdNumber = Annotated[str | None, typer.Option(
    "--id-number", help="Resident identity number (18 characters): the seller's, or the legal representative's.")]
Licence = Annotated[str | None, typer.Option(
    "--licence-number", help="Business: unified social credit code (18 characters).")]
Phone = Annotated[str | None, typer.Option("--phone", help="Contact: CN mobile (13912345678) or E.164 (+44...).")]
Mcc = Annotated[str | None, typer.Option("--mcc", help="ISO 18245 merchant category code (allow-list in the docs).")]
City = Annotated[str | None, typer.Option("--city", help="City of the business.")]
Address = Annotated[str | None, typer.Option("--address", help="Street address of the business.")]


@applications_app.command("create")
def create(kind: Kind = None, legal_name: LegalName = None, id_number: IdNumber = None, licence_number: Licence = None,
           phone: Phone = None, mcc: Mcc = None, city: City = None, address: Address = None,
           reference: Annotated[str | None, typer.Option(
               "--reference", help="Your retry key: the same reference answers the first application.")] = None,
           operator: Operator = None, as_json: JsonFlag = False, data_dir: DataDir = None,
           database_url: DatabaseUrl = None) -> None:
    """A new draft application (every field checked; identity numbers by their check character)."""
    fields = _fields(kind=kind, legal_name=legal_name, id_number=id_number, licence_number=licence_number,
                     phone=phone, mcc=mcc, city=city, address=address)
    who = actor(operator)
    created = run(data_dir, database_url, lambda p, uow: service.create_application(
        uow, p.vault, who, p.clock(), fields, reference=reference))
    _show("New application (draft)", [created], _COLUMNS, as_json, created)


@applications_app.command("update")
def update(application_id: ApplicationId, kind: Kind = None, legal_name: LegalName = None,
           id_number: IdNumber = None, licence_number: Licence = None, phone: Phone = None, mcc: Mcc = None,
           city: City = None, address: Address = None, operator: Operator = None, as_json: JsonFlag = False,
           data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Change fields of a draft (or of a rejected application, which becomes a draft again)."""
    changes = _fields(kind=kind, legal_name=legal_name, id_number=id_number, licence_number=licence_number,
                      phone=phone, mcc=mcc, city=city, address=address)
    if not changes:
        _fail("give at least one field to change (see --help)", 2)
    who = actor(operator)
    updated = run(data_dir, database_url, lambda p, uow: service.update_application(
        uow, p.vault, who, p.clock(), application_id, changes))
    _show("Updated application", [updated], _COLUMNS, as_json, updated)


@applications_app.command("submit")
def submit(application_id: ApplicationId, operator: Operator = None, as_json: JsonFlag = False,
           data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Send a draft for review."""
    who = actor(operator)
    shown = run(data_dir, database_url, lambda p, uow: service.submit_application(uow, who, p.clock(), application_id))
    _show("Submitted application", [shown], _COLUMNS, as_json, shown)


@applications_app.command("approve")
def approve(application_id: ApplicationId, operator: Operator = None, as_json: JsonFlag = False,
            data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Approve (not by anyone who edited it): creates the merchant (status approved) and its accounts."""
    who = actor(operator)
    shown = run(data_dir, database_url, lambda p, uow: service.approve_application(uow, who, p.clock(), application_id))
    _show("Approved application", [shown], _COLUMNS, as_json, shown)


@applications_app.command("reject")
def reject(application_id: ApplicationId,
           reasons: Annotated[list[str], typer.Option(
               "--reason", help=f"A reason code, repeatable: {', '.join(rules.REJECT_CODES)}.")],
           text: Annotated[str, typer.Option("--text", help="What the applicant should fix.")] = "",
           operator: Operator = None, as_json: JsonFlag = False, data_dir: DataDir = None,
           database_url: DatabaseUrl = None) -> None:
    """Reject with reasons (not by anyone who edited it); the applicant may fix and resubmit."""
    who = actor(operator)
    shown = run(data_dir, database_url, lambda p, uow: service.reject_application(
        uow, who, p.clock(), application_id, reasons, text))
    _show("Rejected application", [shown], [*_COLUMNS, "reject_reasons", "reject_text"], as_json, shown)


@applications_app.command("show")
def show(application_id: ApplicationId,
         reveal: Annotated[bool, typer.Option(
             "--reveal", help="Show the full identity number (audit-logged).")] = False,
         operator: Operator = None, as_json: JsonFlag = False, data_dir: DataDir = None,
         database_url: DatabaseUrl = None) -> None:
    """One application with its documents (the identity number masked unless --reveal)."""
    who = actor(operator)

    def work(p: App, uow: UnitOfWork) -> dict[str, Any]:
        shown = service.get_application(uow, application_id, vault=p.vault if reveal else None)
        if reveal:
            audit.record(uow, p.clock(), who, "application.reveal_id", "application", application_id)
        return shown

    shown = run(data_dir, database_url, work, write=reveal)
    if as_json:
        _show("", [], [], True, shown)
        return
    _show(f"Application {application_id}", [shown],
          [*_COLUMNS, "id_number" if reveal else "id_number_masked", "licence_number", "phone", "reject_reasons"],
          False)
    if shown["documents"]:
        _show("Documents", shown["documents"], _DOC_COLUMNS, False)


@applications_app.command("list")
def list_applications(
        status: Annotated[str | None, typer.Option("--status", help="draft, submitted, approved or rejected.")] = None,
        as_json: JsonFlag = False, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Applications, newest first (at most 200)."""
    rows = run(data_dir, database_url, lambda _p, uow: service.list_applications(uow, status=status), write=False)
    _show("Applications", rows, _COLUMNS, as_json)


@documents_app.command("add")
def add_document(application_id: ApplicationId,
                 path: Annotated[Path, typer.Argument(help="The file: PDF, PNG or JPEG, at most 5 MiB.")],
                 media_type: Annotated[str | None, typer.Option(
                     "--media-type", help="Declared type (default: from the file name); must match the content.")
                 ] = None,
                 operator: Operator = None, as_json: JsonFlag = False, data_dir: DataDir = None,
                 database_url: DatabaseUrl = None) -> None:
    """Attach a document to a draft application (stored by its SHA-256, never by its name)."""
    try:
        if path.stat().st_size > limits.document_bytes_max:
            _fail(f"file: must be at most {limits.document_bytes_max} bytes", 2)
        content = path.read_bytes()
    except OSError as error:
        _fail(f"file: cannot read {path}: {error.strerror}", 2)
    declared = media_type or mimetypes.guess_type(path.name)[0] or ""
    who = actor(operator)
    added = run(data_dir, database_url, lambda p, uow: service.add_document(
        uow, p.settings.data_dir, who, p.clock(), application_id, content, declared, path.name))
    _show("Document", [added], _DOC_COLUMNS, as_json, added)


@documents_app.command("save")
def save_document(document_id: Annotated[str, typer.Argument(help="The document id (doc_...).")],
                  to: Annotated[Path, typer.Option("--to", help="Where to write the file (must not exist).")],
                  operator: Operator = None, as_json: JsonFlag = False, data_dir: DataDir = None,
                  database_url: DatabaseUrl = None) -> None:
    """Write a document's bytes (checked against their SHA-256) to a new file, for review."""
    who = actor(operator)

    def work(p: App, uow: UnitOfWork) -> tuple[dict[str, Any], bytes]:
        found = service.read_document(uow, p.settings.data_dir, document_id)
        audit.record(uow, p.clock(), who, "document.read", "application", found[0]["application_id"],
                     details={"document_id": document_id})
        return found

    if to.exists():
        _fail(f"--to: {to} exists", 2)
    meta, content = run(data_dir, database_url, work)
    try:
        with open(to, "xb") as out:
            out.write(content)
    except OSError as error:
        _fail(f"--to: cannot write {to}: {error.strerror}", 2)
    _show("Saved document", [{**meta, "file_name": str(to)}], _DOC_COLUMNS, as_json, meta)


# --- the merchant's lifecycle (registered on `paypos merchants` by cli_merchants.py) -----------


def register_lifecycle_commands(merchants_app: typer.Typer) -> None:
    merchants_app.add_typer(applications_app, name="applications")
    merchants_app.command("activate")(activate)
    merchants_app.command("suspend")(suspend)
    merchants_app.command("reactivate")(reactivate)
    merchants_app.command("close")(close)
    merchants_app.command("show")(show_merchant)


def _merchant_change(change: Callable[[UnitOfWork, Any], dict[str, Any]], title: str, as_json: bool,
                     data_dir: Path | None, database_url: str | None) -> None:
    shown = run(data_dir, database_url, lambda p, uow: change(uow, p.clock()))
    _show(title, [shown], _MERCHANT_COLUMNS, as_json, shown)


def activate(merchant_id: MerchantArg, operator: Operator = None, as_json: JsonFlag = False,
             data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """An approved merchant starts trading (its first terminal's activation does this too)."""
    who = actor(operator)
    _merchant_change(lambda uow, now: service.activate_merchant(uow, who, now, merchant_id),
                     "Merchant", as_json, data_dir, database_url)


def suspend(merchant_id: MerchantArg, reason: Reason = "", operator: Operator = None, as_json: JsonFlag = False,
            data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Stop a merchant: the host declines its terminals (58), the API refuses its keys (403)."""
    who = actor(operator)
    _merchant_change(lambda uow, now: service.suspend_merchant(uow, who, now, merchant_id, reason),
                     "Merchant", as_json, data_dir, database_url)


def reactivate(merchant_id: MerchantArg, operator: Operator = None, as_json: JsonFlag = False,
               data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """A suspended merchant trades again."""
    who = actor(operator)
    _merchant_change(lambda uow, now: service.reactivate_merchant(uow, who, now, merchant_id),
                     "Merchant", as_json, data_dir, database_url)


def close(merchant_id: MerchantArg, reason: Reason = "", operator: Operator = None, as_json: JsonFlag = False,
          data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Close a merchant for good (never active again)."""
    who = actor(operator)
    _merchant_change(lambda uow, now: service.close_merchant(uow, who, now, merchant_id, reason),
                     "Merchant", as_json, data_dir, database_url)


def show_merchant(merchant_id: MerchantArg, as_json: JsonFlag = False, data_dir: DataDir = None,
                  database_url: DatabaseUrl = None) -> None:
    """A merchant's name, category and lifecycle status."""
    shown = run(data_dir, database_url, lambda _p, uow: service.merchant_json(uow, merchant_id), write=False)
    _show("Merchant", [shown], _MERCHANT_COLUMNS, as_json, shown)
