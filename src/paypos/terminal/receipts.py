"""Receipts for a terminal outcome: the cardholder copy as text (in the JSON answer)
and both copies as PDF files under ``<terminal dir>/receipts/``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from paypos.domain.money import currency
from paypos.terminal.engine import RESPONSE_TEXT, Outcome
from paypos.terminal.receipt import (
    CardholderVerification,
    EntryMode,
    ReceiptCopy,
    ReceiptData,
    TransactionKind,
    print_escpos,
    render_pdf,
    render_text,
)

if TYPE_CHECKING:
    from paypos.terminal.session import TerminalSession

_KINDS = {"purchase": TransactionKind.SALE, "refund": TransactionKind.REFUND, "preauth": TransactionKind.PRE_AUTH,
          "completion": TransactionKind.COMPLETION, "balance": TransactionKind.BALANCE}
_ENTRIES = {"chip": EntryMode.CHIP, "contactless": EntryMode.CONTACTLESS, "swipe": EntryMode.SWIPE,
            "manual": EntryMode.MANUAL, "paycode": EntryMode.PAYMENT_CODE}
# No receipt yet for a wallet payment still waiting for its buyer, nor for a collection
# code (the buyer's wallet shows its own receipt; there is no account to print).
_NO_RECEIPT_ENTRIES = frozenset({"qr"})
_CVMS = {"online_pin": CardholderVerification.PIN, "cdcvm": CardholderVerification.CDCVM,
         "no_cvm": CardholderVerification.NO_SIGNATURE, "signature": CardholderVerification.SIGNATURE}


def receipt_files(session: TerminalSession, outcome: Outcome) -> dict[str, Any]:
    """``receipt_text`` (cardholder copy) and ``receipt_pdf`` (path) for a journalled outcome."""
    if outcome.journal_id is None:
        return {"receipt_text": None, "receipt_pdf": None}
    entry = session.engine.store.entry(outcome.journal_id)
    if entry is None or entry.pan_masked is None or entry.kind not in _KINDS or entry.status == "pending" \
            or entry.entry in _NO_RECEIPT_ENTRIES:
        return {"receipt_text": None, "receipt_pdf": None}
    config = session.engine.config
    code = outcome.response_code if outcome.response_code not in ("", "Y1") else None
    data = {
        "merchant_name": session.merchant_name or config.merchant_id, "merchant_address": session.merchant_address or "-",
        "merchant_city": session.merchant_city or "-", "terminal_id": config.terminal_id,
        "merchant_id": config.merchant_id, "timestamp": datetime.fromisoformat(entry.created_at).astimezone(UTC),
        "kind": _KINDS[entry.kind], "masked_pan": entry.pan_masked, "entry_mode": _ENTRIES.get(entry.entry or "chip",
        EntryMode.CHIP), "amount_minor": entry.amount_minor, "currency": currency(entry.currency).alpha,
        "approved": outcome.approved, "aid": entry.aid, "approval_code": outcome.approval_code if outcome.approved
        else None, "rrn": outcome.rrn, "response_code": None if outcome.approved else code,
        "response_text": None if outcome.approved else _short_reason(code, outcome.message),
        "verification": _CVMS.get(entry.cvm or "") if outcome.approved else None, "offline": outcome.offline,
        "e_receipt_url": f"{session.api_base}/r/{outcome.rrn}?code={outcome.approval_code}"
        if outcome.rrn and outcome.approval_code else None,
    }
    cardholder = ReceiptData(**data, copy=ReceiptCopy.CARDHOLDER)
    merchant = ReceiptData(**data, copy=ReceiptCopy.MERCHANT)
    folder = session.directory / "receipts"
    folder.mkdir(parents=True, exist_ok=True)
    pdf = folder / f"{outcome.journal_id:08d}.pdf"
    pdf.write_bytes(render_pdf(merchant))
    (folder / f"{outcome.journal_id:08d}-cardholder.pdf").write_bytes(render_pdf(cardholder))
    if session.printer:
        print_escpos(cardholder, session.printer)
    return {"receipt_text": render_text(cardholder), "receipt_pdf": str(pdf)}


def _short_reason(code: str | None, message: str) -> str:
    """The decline in words, short enough for a receipt line ("NOT COMPLETED — …" → "NOT COMPLETED")."""
    return RESPONSE_TEXT.get(code or "") or message.split(" — ")[0][:40] or "DECLINED"
