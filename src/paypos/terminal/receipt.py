"""Receipts: one frozen ``ReceiptData``, three renderings (text, PDF, ESC/POS bytes).

Every rendering starts from the same list of lines (:func:`receipt_lines`), so the screen,
the PDF and the printer show the same words in the same order. Rendering is pure and
deterministic: the same data gives the same text, the same PDF bytes and the same ESC/POS
bytes. Only :func:`print_escpos` does I/O.

What a receipt may show:

- PCI DSS v4.0 requirement 3.4.1: at most the first six and last four PAN digits. The
  masked PAN is checked here, and a full PAN is refused.
- Money is an ``int`` of minor units plus an ISO 4217 code (:mod:`paypos.domain.money`);
  a float amount is refused.
- Text fields are refused if they hold control characters, so no field can smuggle a
  printer command (ESC, GS) or an extra line onto a receipt.

ESC/POS reference: Epson "ESC/POS Application Programming Guide" — ESC @ (initialise
printer), ESC E (emphasis), GS ( k (QR code), GS V (cut paper).
"""

from __future__ import annotations

import io
import re
import socket
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import segno
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from paypos.domain.money import Money, money
from paypos.protocol.errors import KeepsFields

__all__ = [
    "APPLICATION_LABEL_CHARS_MAX",
    "MERCHANT_TEXT_CHARS_MAX",
    "OFFLINE_MARKER",
    "PRINTER_TIMEOUT_S",
    "RECEIPT_WIDTH_CHARS_DEFAULT",
    "RECEIPT_WIDTH_CHARS_MAX",
    "RECEIPT_WIDTH_CHARS_MIN",
    "CardholderVerification",
    "EntryMode",
    "PrinterError",
    "ReceiptCopy",
    "ReceiptData",
    "ReceiptError",
    "ReceiptLine",
    "TransactionKind",
    "print_escpos",
    "receipt_lines",
    "render_escpos",
    "render_pdf",
    "render_text",
]

# Characters per line: 40 fits an 80 mm roll in font A (48 columns) with a margin;
# 32 is a 58 mm roll in font A, 64 an 80 mm roll in font B.
RECEIPT_WIDTH_CHARS_DEFAULT = 40
RECEIPT_WIDTH_CHARS_MIN = 32
RECEIPT_WIDTH_CHARS_MAX = 64
# Merchant name, address, city, response text: bounded so a receipt stays a receipt.
MERCHANT_TEXT_CHARS_MAX = 64
# EMV Book 3, tag 50 (application label): 1-16 characters.
APPLICATION_LABEL_CHARS_MAX = 16
E_RECEIPT_URL_CHARS_MAX = 512
# Connecting to and writing to a network receipt printer (raw TCP, usually port 9100).
# Belongs with the other timeouts in paypos.limits once that file is free to edit.
PRINTER_TIMEOUT_S = 10.0

# ISO 8583 field 41 (card acceptor terminal id) ans 8, field 42 (card acceptor id) ans 15.
_TERMINAL_ID = re.compile(r"[ -~]{1,8}")
_MERCHANT_ID = re.compile(r"[ -~]{1,15}")
# Field 38 (approval code) an 6, field 37 (retrieval reference number) an 12, field 39 an 2.
_APPROVAL_CODE = re.compile(r"[0-9A-Za-z ]{1,6}")
_RRN = re.compile(r"[0-9A-Za-z]{1,12}")
_RESPONSE_CODE = re.compile(r"[0-9A-Z]{2}")
# EMV tag 4F / 84 (AID): 5-16 bytes, printed as hex.
_AID = re.compile(r"(?:[0-9A-F]{2}){5,16}")
# PCI DSS 3.4.1: six digits, '*' for every hidden digit, four digits; 12-19 in all.
_MASKED_PAN = re.compile(r"[0-9]{6}\*{2,9}[0-9]{4}")
_MASKED_PAN_RULE = "masked_pan: must be the first 6 and last 4 digits with '*' between"
_PDF_FONT = "Courier"
_PDF_FONT_BOLD = "Courier-Bold"
_PDF_FONT_PT = 8
_PDF_LEADING_PT = 10
_PDF_MARGIN_PT = 4 * mm
_PDF_QR_PT = 30 * mm
# GS ( k function 167: QR module size in printer dots (1-16).
_ESCPOS_QR_DOT = 6
_TCP_SCHEME = "tcp"
_E = TypeVar("_E", bound=StrEnum)


class ReceiptError(KeepsFields, ValueError):
    """Receipt data broke a rule; ``field`` names the field at fault. Never echoes card data."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class PrinterError(OSError):
    """The receipt printer could not be reached or written to."""


class TransactionKind(StrEnum):
    SALE = "SALE"
    REFUND = "REFUND"
    PRE_AUTH = "PRE-AUTH"
    COMPLETION = "COMPLETION"
    VOID = "VOID"
    BALANCE = "BALANCE"


class EntryMode(StrEnum):
    CHIP = "CHIP"
    CONTACTLESS = "CONTACTLESS"
    SWIPE = "SWIPE"
    MANUAL = "MANUAL"
    PAYMENT_CODE = "PAYMENT CODE"  # a wallet's one-time code, masked like a PAN


class CardholderVerification(StrEnum):
    """The cardholder verification line; the value is what the receipt prints."""

    PIN = "PIN VERIFIED"
    NO_SIGNATURE = "NO SIGNATURE REQUIRED"
    SIGNATURE = "SIGNATURE: ____"
    CDCVM = "DEVICE VERIFIED"


class ReceiptCopy(StrEnum):
    MERCHANT = "MERCHANT COPY"
    CARDHOLDER = "CARDHOLDER COPY"


OFFLINE_MARKER = "OFFLINE — STORED FOR FORWARDING"


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    """One printed line; ``bold`` becomes ESC E on a printer and Courier-Bold in a PDF."""

    text: str
    bold: bool = False


@dataclass(frozen=True, slots=True)
class ReceiptData:
    """Everything a receipt prints. Build one per copy (``dataclasses.replace(data, copy=...)``).

    ``approved`` decides the result block: an approved receipt carries an approval code
    (offline approvals may have none yet) and a verification line; a declined one carries
    the response code and text and never an approval code.
    """

    merchant_name: str
    merchant_address: str
    merchant_city: str
    terminal_id: str
    merchant_id: str
    timestamp: datetime
    kind: TransactionKind
    masked_pan: str
    entry_mode: EntryMode
    amount_minor: int
    currency: str
    approved: bool
    copy: ReceiptCopy
    timezone: str = "UTC"
    aid: str | None = None
    application_label: str | None = None
    approval_code: str | None = None
    rrn: str | None = None
    response_code: str | None = None
    response_text: str | None = None
    verification: CardholderVerification | None = None
    offline: bool = False
    e_receipt_url: str | None = None

    def __post_init__(self) -> None:
        _coerce_enums(self)
        _check_merchant(self)
        _check_card(self)
        _check_amount(self)
        _check_time(self.timestamp, self.timezone)
        _check_result(self)
        _check_text("e_receipt_url", self.e_receipt_url, E_RECEIPT_URL_CHARS_MAX)

    @property
    def amount(self) -> Money:
        return money(self.amount_minor, self.currency)

    @property
    def local_time(self) -> datetime:
        """The timestamp in the merchant's time zone."""
        return self.timestamp.astimezone(ZoneInfo(self.timezone))


# --- validation --------------------------------------------------------------------------


def _coerce_enums(data: ReceiptData) -> None:
    """Accept the printed values as plain strings ("SALE", "CHIP") as well as the enums."""
    fields = (("kind", TransactionKind), ("entry_mode", EntryMode), ("copy", ReceiptCopy))
    for name, enum in fields:
        object.__setattr__(data, name, _enum(name, enum, getattr(data, name)))
    if data.verification is not None:
        verification = _enum("verification", CardholderVerification, data.verification)
        object.__setattr__(data, "verification", verification)


def _enum(name: str, enum: type[_E], value: object) -> _E:
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise ReceiptError(f"{name}: must be one of {choices}", field=name) from None


def _check_text(name: str, value: object, chars_max: int, *, required: bool = False) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise ReceiptError(f"{name}: must be a non-empty str", field=name)
    if len(value) > chars_max:
        raise ReceiptError(f"{name}: must be at most {chars_max} characters", field=name)
    if any(unicodedata.category(char).startswith("C") for char in value):
        raise ReceiptError(f"{name}: must not contain control characters", field=name)


def _check_pattern(name: str, value: object, pattern: re.Pattern[str], rule: str) -> None:
    if value is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
        raise ReceiptError(f"{name}: {rule}", field=name)


def _check_merchant(data: ReceiptData) -> None:
    for name in ("merchant_name", "merchant_address", "merchant_city"):
        _check_text(name, getattr(data, name), MERCHANT_TEXT_CHARS_MAX, required=True)
    if data.terminal_id is None or data.merchant_id is None:
        raise ReceiptError("terminal_id and merchant_id are required", field="terminal_id")
    _check_pattern("terminal_id", data.terminal_id, _TERMINAL_ID, "must be 1-8 printable ASCII")
    _check_pattern("merchant_id", data.merchant_id, _MERCHANT_ID, "must be 1-15 printable ASCII")


def _check_card(data: ReceiptData) -> None:
    if not isinstance(data.masked_pan, str) or not _MASKED_PAN.fullmatch(data.masked_pan):
        raise ReceiptError(_MASKED_PAN_RULE, field="masked_pan")
    _check_pattern("aid", data.aid, _AID, "must be 5-16 bytes as upper-case hex")
    _check_text("application_label", data.application_label, APPLICATION_LABEL_CHARS_MAX)


def _check_amount(data: ReceiptData) -> None:
    """``money()`` refuses floats, bools and unknown currencies with a ``MoneyError``."""
    if money(data.amount_minor, data.currency).amount_minor < 0:
        raise ReceiptError(
            "amount_minor: must not be negative; the kind says REFUND", field="amount_minor"
        )


def _check_time(timestamp: object, zone_key: object) -> None:
    if not isinstance(timestamp, datetime) or timestamp.utcoffset() is None:
        raise ReceiptError("timestamp: must be a timezone-aware datetime", field="timestamp")
    if not isinstance(zone_key, str):
        raise ReceiptError("timezone: must be an IANA zone key like 'Asia/Shanghai'", field="timezone")
    try:
        ZoneInfo(zone_key)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReceiptError("timezone: unknown IANA zone key", field="timezone") from None


def _check_result(data: ReceiptData) -> None:
    if not isinstance(data.approved, bool) or not isinstance(data.offline, bool):
        raise ReceiptError("approved and offline must be bool", field="approved")
    _check_pattern("approval_code", data.approval_code, _APPROVAL_CODE, "must be 1-6 letters/digits")
    _check_pattern("rrn", data.rrn, _RRN, "must be 1-12 letters/digits")
    _check_pattern("response_code", data.response_code, _RESPONSE_CODE, "must be 2 characters")
    _check_text("response_text", data.response_text, MERCHANT_TEXT_CHARS_MAX)
    if data.approved and data.approval_code is None and not data.offline:
        raise ReceiptError("approval_code: an online approval has one", field="approval_code")
    if not data.approved and data.approval_code is not None:
        raise ReceiptError("approval_code: a declined transaction has none", field="approval_code")
    if not data.approved and data.response_code is None and data.response_text is None:
        # A sale the host never answered has no code, only the reason ("NOT COMPLETED").
        raise ReceiptError("response_code: a declined transaction has a code or a reason", field="response_code")


# --- layout ------------------------------------------------------------------------------


def _columns(text: str) -> int:
    """Printed width: East Asian wide and fullwidth characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _split_columns(text: str, width: int) -> tuple[str, str]:
    """The longest head of ``text`` that fits ``width`` columns, and the rest."""
    used = 0
    for index, char in enumerate(text):
        used += _columns(char)
        if used > width:
            return text[:index], text[index:]
    return text, ""


def _wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap by printed columns; words longer than a line (URLs) are split."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if _columns(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = word
        while _columns(line) > width:
            head, line = _split_columns(line, width)
            lines.append(head)
    return [*lines, line] if line else lines


def _centered(text: str, width: int, *, bold: bool = False) -> list[ReceiptLine]:
    return [
        ReceiptLine(" " * ((width - _columns(line)) // 2) + line, bold) for line in _wrap(text, width)
    ]


def _pair(label: str, value: str, width: int, *, bold: bool = False) -> list[ReceiptLine]:
    """``label`` on the left, ``value`` right-aligned; a value too long goes below."""
    gap = width - _columns(label) - _columns(value)
    if gap >= 1:
        return [ReceiptLine(label + " " * gap + value, bold)]
    below = [ReceiptLine(" " * (width - _columns(line)) + line, bold) for line in _wrap(value, width)]
    return [ReceiptLine(label, bold), *below]


def _merchant_block(data: ReceiptData, width: int) -> list[ReceiptLine]:
    local = data.local_time
    return [
        *_centered(data.merchant_name, width, bold=True),
        *_centered(data.merchant_address, width),
        *_centered(data.merchant_city, width),
        ReceiptLine("-" * width),
        *_pair("TID", data.terminal_id, width),
        *_pair("MID", data.merchant_id, width),
        *_pair("DATE", local.strftime("%Y-%m-%d"), width),
        *_pair("TIME", local.strftime("%H:%M:%S"), width),
        ReceiptLine("-" * width),
    ]


def _card_block(data: ReceiptData, width: int) -> list[ReceiptLine]:
    lines = [
        *_centered(data.kind.value, width, bold=True),
        *_pair("CARD", data.masked_pan, width),
        *_pair("ENTRY", data.entry_mode.value, width),
    ]
    if data.application_label is not None:
        lines += _pair("APP", data.application_label, width)
    if data.aid is not None:
        lines += _pair("AID", data.aid, width)
    label = "BALANCE" if data.kind is TransactionKind.BALANCE else "AMOUNT"
    amount = data.amount
    return [
        *lines,
        ReceiptLine("-" * width),
        *_pair(label, f"{amount.currency.alpha} {amount.to_major_str()}", width, bold=True),
        ReceiptLine("-" * width),
    ]


def _result_block(data: ReceiptData, width: int) -> list[ReceiptLine]:
    lines = _centered("APPROVED" if data.approved else "DECLINED", width, bold=True)
    if data.approval_code is not None:
        lines += _pair("APPROVAL CODE", data.approval_code, width)
    if data.rrn is not None:
        lines += _pair("RRN", data.rrn, width)
    if data.response_code is not None and not data.approved:
        lines += _pair("RESPONSE CODE", data.response_code, width)
    if data.response_text is not None and not data.approved:
        lines += _centered(data.response_text, width)
    return lines


def _verification_block(data: ReceiptData, width: int) -> list[ReceiptLine]:
    if not data.approved or data.verification is None:
        return []
    if data.verification is CardholderVerification.SIGNATURE:
        label = "SIGNATURE: "
        return [ReceiptLine(""), ReceiptLine(""), ReceiptLine(label + "_" * (width - len(label)))]
    return _centered(data.verification.value, width)


def _footer_block(data: ReceiptData, width: int) -> list[ReceiptLine]:
    lines = [ReceiptLine("-" * width)]
    if data.offline:
        lines += _centered(OFFLINE_MARKER, width, bold=True)
    lines += _centered(data.copy.value, width, bold=True)
    if data.e_receipt_url is not None:
        lines += [*_centered("E-RECEIPT", width), *_centered(data.e_receipt_url, width)]
    return lines


def receipt_lines(data: ReceiptData, width: int = RECEIPT_WIDTH_CHARS_DEFAULT) -> list[ReceiptLine]:
    """The receipt as lines of at most ``width`` columns, no trailing spaces."""
    if type(width) is not int or not RECEIPT_WIDTH_CHARS_MIN <= width <= RECEIPT_WIDTH_CHARS_MAX:
        raise ReceiptError(
            f"width: must be {RECEIPT_WIDTH_CHARS_MIN}-{RECEIPT_WIDTH_CHARS_MAX} characters",
            field="width",
        )
    return [
        *_merchant_block(data, width),
        *_card_block(data, width),
        *_result_block(data, width),
        *_verification_block(data, width),
        *_footer_block(data, width),
    ]


# --- renderings --------------------------------------------------------------------------


def render_text(data: ReceiptData, width: int = RECEIPT_WIDTH_CHARS_DEFAULT) -> str:
    """Fixed-width plain text, one ``\\n`` after every line."""
    return "".join(line.text + "\n" for line in receipt_lines(data, width))


def _draw_qr(canvas: Canvas, url: str, x: float, y: float, size: float) -> None:
    """The QR code as vector squares (crisp at any zoom), one rectangle per dark run."""
    matrix = segno.make(url, error="m", micro=False).matrix
    module = size / len(matrix)
    for row_index, row in enumerate(matrix):
        top = y + size - (row_index + 1) * module
        start = None
        for col, dark in enumerate([*row, 0]):
            if dark and start is None:
                start = col
            elif not dark and start is not None:
                canvas.rect(x + start * module, top, (col - start) * module, module, stroke=0, fill=1)
                start = None


def render_pdf(data: ReceiptData, width: int = RECEIPT_WIDTH_CHARS_DEFAULT) -> bytes:
    """A receipt-roll-width PDF page (Courier, the same lines) with a QR of the e-receipt URL.

    ``invariant=1`` fixes the creation date and document id, so the bytes are reproducible.
    Courier covers Latin-1 (and WinAnsi's dash); other scripts need an embedded TTF font.
    """
    lines = receipt_lines(data, width)
    char_pt = _PDF_FONT_PT * 0.6  # Courier advances 600/1000 em per character
    page_w = width * char_pt + 2 * _PDF_MARGIN_PT
    qr_h = _PDF_QR_PT + _PDF_LEADING_PT if data.e_receipt_url is not None else 0
    page_h = len(lines) * _PDF_LEADING_PT + qr_h + 2 * _PDF_MARGIN_PT
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=(page_w, page_h), invariant=1, pageCompression=1)
    canvas.setTitle(f"Receipt {data.terminal_id} {data.rrn or ''}".strip())
    canvas.setCreator("paypos")
    baseline = page_h - _PDF_MARGIN_PT - _PDF_FONT_PT
    for index, line in enumerate(lines):
        canvas.setFont(_PDF_FONT_BOLD if line.bold else _PDF_FONT, _PDF_FONT_PT)
        canvas.drawString(_PDF_MARGIN_PT, baseline - index * _PDF_LEADING_PT, line.text)
    if data.e_receipt_url is not None:
        x = (page_w - _PDF_QR_PT) / 2
        _draw_qr(canvas, data.e_receipt_url, x, _PDF_MARGIN_PT, _PDF_QR_PT)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def render_escpos(data: ReceiptData, width: int = RECEIPT_WIDTH_CHARS_DEFAULT) -> bytes:
    """ESC/POS bytes: ESC @ first, the lines (bold as ESC E), the QR, a cut (GS V).

    The QR is the printer's own (GS ( k, ``native=True``): small, and built offline. The
    raster alternative (``native=False``) needs a printer profile with a known paper width,
    and without one python-escpos prints a warning to stdout, which would corrupt
    ``--json`` output. A printer without GS ( k skips the code; the URL is printed above it.
    """
    # Imported here, not at the top: importing python-escpos 3.1 loads its printer database
    # (~0.4 s), calls logging.basicConfig() and leaves a pickle in a fresh temp directory
    # (set ESCPOS_CAPABILITIES_PICKLE_DIR to reuse one). Only a process that prints pays.
    from escpos.printer import Dummy

    printer = Dummy()
    printer.hw("INIT")
    bold = False
    for line in receipt_lines(data, width):
        if line.bold != bold:
            printer.set(bold=line.bold)
            bold = line.bold
        printer.text(line.text + "\n")
    if bold:
        printer.set(bold=False)
    if data.e_receipt_url is not None:
        printer.set(align="center")
        printer.qr(data.e_receipt_url, size=_ESCPOS_QR_DOT, native=True)
        printer.set(align="left")
    printer.cut()
    return bytes(printer.output)


# --- printing ----------------------------------------------------------------------------


def _send_tcp(payload: bytes, host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=PRINTER_TIMEOUT_S) as connection:
            connection.sendall(payload)
            connection.shutdown(socket.SHUT_WR)
    except OSError as error:
        raise PrinterError(f"printer tcp://{host}:{port}: {error}") from error


def _tcp_address(target: str) -> tuple[str, int] | None:
    """``("host", port)`` for ``tcp://host:port``, None for anything else (a file path)."""
    if not target.startswith(f"{_TCP_SCHEME}://"):
        return None
    parts = urlsplit(target)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ReceiptError("target: a network printer is tcp://host:port", field="target")
    return parts.hostname, port


def print_escpos(data: ReceiptData, target: str, width: int = RECEIPT_WIDTH_CHARS_DEFAULT) -> None:
    """Send the ESC/POS bytes to ``tcp://host:port`` (a raw network printer, often port 9100)
    or to a file path (a file to keep, or a device such as ``/dev/usb/lp0``)."""
    if not isinstance(target, str) or not target:
        raise ReceiptError("target: must be a file path or tcp://host:port", field="target")
    address = _tcp_address(target)
    payload = render_escpos(data, width)
    if address is not None:
        _send_tcp(payload, *address)
        return
    try:
        Path(target).write_bytes(payload)
    except OSError as error:
        raise PrinterError(f"printer file {target}: {error.strerror}") from error
