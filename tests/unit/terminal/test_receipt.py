"""Receipts: golden text for each kind of receipt, PDF and ESC/POS renderings, bad input.

The golden receipts are the exact text a cashier sees; a change to any of them is a change
to what merchants and cardholders hold in their hands, so it should show up in review.
"""

from __future__ import annotations

import io
import socket
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pypdf
import pytest

from paypos.domain.money import MoneyError
from paypos.terminal.receipt import (
    CardholderVerification,
    EntryMode,
    PrinterError,
    ReceiptCopy,
    ReceiptData,
    ReceiptError,
    TransactionKind,
    print_escpos,
    receipt_lines,
    render_escpos,
    render_pdf,
    render_text,
)

MERCHANT = dict(
    merchant_name="PAYPOS DEMO CAFE",
    merchant_address="88 Century Avenue",
    merchant_city="Shanghai",
    terminal_id="CAFE0001",
    merchant_id="M00000000000001",
    # 09:00:05 UTC is 17:00:05 in Shanghai (UTC+8, no daylight saving).
    timestamp=datetime(2026, 11, 22, 9, 0, 5, tzinfo=UTC),
    timezone="Asia/Shanghai",
    currency="CNY",
    copy=ReceiptCopy.MERCHANT,
)

CHIP_PIN_SALE = ReceiptData(
    **MERCHANT,
    kind=TransactionKind.SALE,
    masked_pan="476173******0010",
    entry_mode=EntryMode.CHIP,
    aid="A0000000031010",
    application_label="VISA CREDIT",
    amount_minor=2500,
    approved=True,
    approval_code="123456",
    rrn="633109000001",
    verification=CardholderVerification.PIN,
    e_receipt_url="http://127.0.0.1:8000/r/633109000001",
)

CONTACTLESS_NO_CVM_SALE = ReceiptData(
    **MERCHANT,
    kind=TransactionKind.SALE,
    masked_pan="520000******0007",
    entry_mode=EntryMode.CONTACTLESS,
    aid="A0000000041010",
    application_label="MASTERCARD",
    amount_minor=1250,
    approved=True,
    approval_code="A1B2C3",
    rrn="633109000002",
    verification=CardholderVerification.NO_SIGNATURE,
    e_receipt_url="http://127.0.0.1:8000/r/633109000002",
)

DECLINED_SALE = ReceiptData(
    **MERCHANT,
    kind=TransactionKind.SALE,
    masked_pan="476173******0028",
    entry_mode=EntryMode.CHIP,
    aid="A0000000031010",
    application_label="VISA DEBIT",
    amount_minor=5000,
    approved=False,
    rrn="633109000003",
    response_code="51",
    response_text="INSUFFICIENT FUNDS",
    verification=CardholderVerification.PIN,
)

SWIPE_REFUND = ReceiptData(
    **MERCHANT,
    kind=TransactionKind.REFUND,
    masked_pan="543210******1234",
    entry_mode=EntryMode.SWIPE,
    amount_minor=4200,
    approved=True,
    approval_code="998877",
    rrn="633109000004",
    verification=CardholderVerification.SIGNATURE,
    e_receipt_url="http://127.0.0.1:8000/r/633109000004",
)

OFFLINE_SALE = ReceiptData(
    **MERCHANT,
    kind=TransactionKind.SALE,
    masked_pan="476173******0010",
    entry_mode=EntryMode.CHIP,
    aid="A0000000031010",
    application_label="VISA CREDIT",
    amount_minor=1800,
    approved=True,
    offline=True,
    verification=CardholderVerification.NO_SIGNATURE,
)

# --- golden receipts (40 columns) ---------------------------------------------------

CHIP_PIN_SALE_MERCHANT_COPY = """\
            PAYPOS DEMO CAFE
           88 Century Avenue
                Shanghai
----------------------------------------
TID                             CAFE0001
MID                      M00000000000001
DATE                          2026-11-22
TIME                            17:00:05
----------------------------------------
                  SALE
CARD                    476173******0010
ENTRY                               CHIP
APP                          VISA CREDIT
AID                       A0000000031010
----------------------------------------
AMOUNT                         CNY 25.00
----------------------------------------
                APPROVED
APPROVAL CODE                     123456
RRN                         633109000001
              PIN VERIFIED
----------------------------------------
             MERCHANT COPY
               E-RECEIPT
  http://127.0.0.1:8000/r/633109000001
"""

CHIP_PIN_SALE_CARDHOLDER_COPY = """\
            PAYPOS DEMO CAFE
           88 Century Avenue
                Shanghai
----------------------------------------
TID                             CAFE0001
MID                      M00000000000001
DATE                          2026-11-22
TIME                            17:00:05
----------------------------------------
                  SALE
CARD                    476173******0010
ENTRY                               CHIP
APP                          VISA CREDIT
AID                       A0000000031010
----------------------------------------
AMOUNT                         CNY 25.00
----------------------------------------
                APPROVED
APPROVAL CODE                     123456
RRN                         633109000001
              PIN VERIFIED
----------------------------------------
            CARDHOLDER COPY
               E-RECEIPT
  http://127.0.0.1:8000/r/633109000001
"""

CONTACTLESS_NO_CVM_SALE_CARDHOLDER_COPY = """\
            PAYPOS DEMO CAFE
           88 Century Avenue
                Shanghai
----------------------------------------
TID                             CAFE0001
MID                      M00000000000001
DATE                          2026-11-22
TIME                            17:00:05
----------------------------------------
                  SALE
CARD                    520000******0007
ENTRY                        CONTACTLESS
APP                           MASTERCARD
AID                       A0000000041010
----------------------------------------
AMOUNT                         CNY 12.50
----------------------------------------
                APPROVED
APPROVAL CODE                     A1B2C3
RRN                         633109000002
         NO SIGNATURE REQUIRED
----------------------------------------
            CARDHOLDER COPY
               E-RECEIPT
  http://127.0.0.1:8000/r/633109000002
"""

DECLINED_SALE_MERCHANT_COPY = """\
            PAYPOS DEMO CAFE
           88 Century Avenue
                Shanghai
----------------------------------------
TID                             CAFE0001
MID                      M00000000000001
DATE                          2026-11-22
TIME                            17:00:05
----------------------------------------
                  SALE
CARD                    476173******0028
ENTRY                               CHIP
APP                           VISA DEBIT
AID                       A0000000031010
----------------------------------------
AMOUNT                         CNY 50.00
----------------------------------------
                DECLINED
RRN                         633109000003
RESPONSE CODE                         51
           INSUFFICIENT FUNDS
----------------------------------------
             MERCHANT COPY
"""

SWIPE_REFUND_MERCHANT_COPY = """\
            PAYPOS DEMO CAFE
           88 Century Avenue
                Shanghai
----------------------------------------
TID                             CAFE0001
MID                      M00000000000001
DATE                          2026-11-22
TIME                            17:00:05
----------------------------------------
                 REFUND
CARD                    543210******1234
ENTRY                              SWIPE
----------------------------------------
AMOUNT                         CNY 42.00
----------------------------------------
                APPROVED
APPROVAL CODE                     998877
RRN                         633109000004


SIGNATURE: _____________________________
----------------------------------------
             MERCHANT COPY
               E-RECEIPT
  http://127.0.0.1:8000/r/633109000004
"""

OFFLINE_SALE_MERCHANT_COPY = """\
            PAYPOS DEMO CAFE
           88 Century Avenue
                Shanghai
----------------------------------------
TID                             CAFE0001
MID                      M00000000000001
DATE                          2026-11-22
TIME                            17:00:05
----------------------------------------
                  SALE
CARD                    476173******0010
ENTRY                               CHIP
APP                          VISA CREDIT
AID                       A0000000031010
----------------------------------------
AMOUNT                         CNY 18.00
----------------------------------------
                APPROVED
         NO SIGNATURE REQUIRED
----------------------------------------
    OFFLINE — STORED FOR FORWARDING
             MERCHANT COPY
"""

GOLDEN = [
    pytest.param(CHIP_PIN_SALE, CHIP_PIN_SALE_MERCHANT_COPY, id="chip-pin-merchant"),
    pytest.param(
        replace(CHIP_PIN_SALE, copy=ReceiptCopy.CARDHOLDER),
        CHIP_PIN_SALE_CARDHOLDER_COPY,
        id="chip-pin-cardholder",
    ),
    pytest.param(
        replace(CONTACTLESS_NO_CVM_SALE, copy=ReceiptCopy.CARDHOLDER),
        CONTACTLESS_NO_CVM_SALE_CARDHOLDER_COPY,
        id="contactless-no-cvm-cardholder",
    ),
    pytest.param(DECLINED_SALE, DECLINED_SALE_MERCHANT_COPY, id="declined-merchant"),
    pytest.param(SWIPE_REFUND, SWIPE_REFUND_MERCHANT_COPY, id="refund-merchant"),
    pytest.param(OFFLINE_SALE, OFFLINE_SALE_MERCHANT_COPY, id="offline-merchant"),
]


# --- text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "golden"), GOLDEN)
def test_text_receipt_matches_the_golden_copy(data: ReceiptData, golden: str) -> None:
    assert render_text(data) == golden


def test_text_receipt_is_deterministic_and_fits_the_width() -> None:
    for width in (32, 40, 48, 64):
        text = render_text(CHIP_PIN_SALE, width=width)
        assert text == render_text(CHIP_PIN_SALE, width=width)
        assert all(len(line) <= width and line == line.rstrip() for line in text.splitlines())


def test_wide_characters_take_two_columns_when_centering() -> None:
    # 7 CJK characters (14 columns) + " PAYPOS" (7) = 21 columns: (32 - 21) // 2 = 5 spaces.
    data = replace(CHIP_PIN_SALE, merchant_name="上海演示咖啡馆 PAYPOS")
    assert render_text(data, width=32).startswith("     上海演示咖啡馆 PAYPOS\n")


def test_wide_characters_take_two_columns_when_wrapping() -> None:
    data = replace(CHIP_PIN_SALE, merchant_name="上海演示咖啡馆 PAYPOS 外滩旗舰店 长长长长长长长长长长长长长长长长长")
    for line in receipt_lines(data, width=32):
        columns = sum(2 if "\u4e00" <= char <= "\u9fff" else 1 for char in line.text)
        assert columns <= 32


def test_timestamp_is_printed_in_the_merchant_time_zone_default_utc() -> None:
    fields = {**MERCHANT, "kind": "SALE", "masked_pan": "476173******0010", "entry_mode": "CHIP"}
    del fields["timezone"]
    utc = ReceiptData(**fields, amount_minor=100, approved=True, approval_code="123456")
    assert utc.timezone == "UTC"
    assert "TIME                            09:00:05\n" in render_text(utc)
    late = replace(CHIP_PIN_SALE, timestamp=datetime(2026, 11, 22, 20, 30, tzinfo=UTC))
    # 20:30 UTC is 04:30 the next day in Shanghai.
    assert "DATE                          2026-11-23\n" in render_text(late)


def test_jpy_has_no_minor_unit_and_prints_without_decimals() -> None:
    data = replace(CHIP_PIN_SALE, amount_minor=1234, currency="JPY")
    assert "AMOUNT                          JPY 1234\n" in render_text(data)


def test_bhd_prints_three_decimals() -> None:
    data = replace(CHIP_PIN_SALE, amount_minor=1234, currency="BHD")
    assert "AMOUNT                         BHD 1.234\n" in render_text(data)


def test_balance_inquiry_labels_the_amount_as_balance() -> None:
    data = replace(CHIP_PIN_SALE, kind=TransactionKind.BALANCE, amount_minor=98_765)
    assert "BALANCE                       CNY 987.65\n" in render_text(data)


def test_enum_fields_accept_their_printed_values() -> None:
    data = replace(CHIP_PIN_SALE, kind="PRE-AUTH", entry_mode="MANUAL", copy="CARDHOLDER COPY")
    assert data.kind is TransactionKind.PRE_AUTH
    assert "PRE-AUTH" in render_text(data)


def test_declined_receipt_has_no_verification_line() -> None:
    assert "PIN VERIFIED" not in render_text(DECLINED_SALE)


def test_device_verified_line_for_cdcvm() -> None:
    data = replace(CONTACTLESS_NO_CVM_SALE, verification=CardholderVerification.CDCVM)
    assert "\n            DEVICE VERIFIED\n" in render_text(data)


# --- PDF -----------------------------------------------------------------------------------


def test_pdf_opens_and_has_the_approval_code_and_amount() -> None:
    pdf = render_pdf(CHIP_PIN_SALE)
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    assert "123456" in text
    assert "CNY 25.00" in text
    assert "MERCHANT COPY" in text


def test_pdf_is_deterministic() -> None:
    assert render_pdf(CHIP_PIN_SALE) == render_pdf(CHIP_PIN_SALE)


def test_pdf_without_e_receipt_url_still_renders() -> None:
    reader = pypdf.PdfReader(io.BytesIO(render_pdf(OFFLINE_SALE)))
    assert "OFFLINE" in reader.pages[0].extract_text()


# --- ESC/POS -------------------------------------------------------------------------------

ESC_INIT = b"\x1b@"
GS_CUT = b"\x1dV"
GS_QR = b"\x1d(k"


def test_escpos_starts_with_initialisation_and_contains_the_amount() -> None:
    payload = render_escpos(CHIP_PIN_SALE)
    assert payload.startswith(ESC_INIT)
    assert b"CNY 25.00" in payload
    assert b"APPROVAL CODE                     123456\n" in payload


def test_escpos_has_the_qr_of_the_e_receipt_url_and_ends_with_a_cut() -> None:
    payload = render_escpos(CHIP_PIN_SALE)
    url = b"http://127.0.0.1:8000/r/633109000001"
    # GS ( k pL pH cn=49 fn=80 m=48 data: store the QR data (Epson ESC/POS, function 180).
    assert GS_QR + bytes([len(url) + 3, 0]) + b"1P0" + url in payload
    assert GS_CUT in payload[-4:]


def test_escpos_without_e_receipt_url_has_no_qr() -> None:
    assert GS_QR not in render_escpos(OFFLINE_SALE)


def test_escpos_is_deterministic() -> None:
    assert render_escpos(SWIPE_REFUND) == render_escpos(SWIPE_REFUND)


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pan",
    [
        "4761739310000010",  # a full PAN
        "4761731*****0010",  # seven leading digits
        "476173*****10010",  # five trailing digits
        "476173XXXXXX0010",  # a mask character other than '*'
        "476173******001",  # too few trailing digits
    ],
)
def test_a_pan_showing_more_than_first_6_and_last_4_is_refused(pan: str) -> None:
    with pytest.raises(ReceiptError) as caught:
        replace(CHIP_PIN_SALE, masked_pan=pan)
    assert caught.value.field == "masked_pan"
    assert pan not in str(caught.value)


def test_a_twelve_digit_pan_masked_to_6_and_4_is_accepted() -> None:
    assert replace(CHIP_PIN_SALE, masked_pan="476173**0010").masked_pan == "476173**0010"


@pytest.mark.parametrize("amount", [25.0, True, "2500", None])
def test_an_amount_that_is_not_an_int_of_minor_units_is_refused(amount: object) -> None:
    with pytest.raises(MoneyError):
        replace(CHIP_PIN_SALE, amount_minor=amount)


def test_a_negative_amount_is_refused() -> None:
    with pytest.raises(ReceiptError, match="amount_minor"):
        replace(SWIPE_REFUND, amount_minor=-4200)


def test_an_unknown_currency_is_refused() -> None:
    with pytest.raises(MoneyError):
        replace(CHIP_PIN_SALE, currency="XXY")


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ReceiptError, match="timestamp"):
        replace(CHIP_PIN_SALE, timestamp=datetime(2026, 11, 22, 9, 0))


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ReceiptError, match="timezone"):
        replace(CHIP_PIN_SALE, timezone="Mars/Olympus_Mons")


@pytest.mark.parametrize("name", ["CAFE\x1bd\x09", "CAFE\nTOTAL 0.00", "CAFE\u202e"])
def test_control_characters_cannot_reach_the_printer(name: str) -> None:
    with pytest.raises(ReceiptError, match="merchant_name"):
        replace(CHIP_PIN_SALE, merchant_name=name)


def test_a_declined_receipt_with_an_approval_code_is_refused() -> None:
    with pytest.raises(ReceiptError, match="approval_code"):
        replace(DECLINED_SALE, approval_code="123456")


def test_a_declined_receipt_needs_a_response_code_or_a_reason() -> None:
    with pytest.raises(ReceiptError, match="response_code"):
        replace(DECLINED_SALE, response_code=None, response_text=None)


def test_a_sale_the_host_never_answered_prints_its_reason_without_a_code() -> None:
    text = render_text(replace(DECLINED_SALE, response_code=None, response_text="NOT COMPLETED", rrn=None))
    assert "NOT COMPLETED" in text


def test_an_online_approval_needs_an_approval_code() -> None:
    with pytest.raises(ReceiptError, match="approval_code"):
        replace(CHIP_PIN_SALE, approval_code=None)


def test_an_unknown_entry_mode_is_refused() -> None:
    with pytest.raises(ReceiptError, match="entry_mode"):
        replace(CHIP_PIN_SALE, entry_mode="TELEPATHY")


def test_a_terminal_id_longer_than_field_41_is_refused() -> None:
    with pytest.raises(ReceiptError, match="terminal_id"):
        replace(CHIP_PIN_SALE, terminal_id="CAFE00001")


@pytest.mark.parametrize("width", [31, 65, 40.0])
def test_a_width_outside_the_roll_sizes_is_refused(width: object) -> None:
    with pytest.raises(ReceiptError, match="width"):
        render_text(CHIP_PIN_SALE, width=width)  # type: ignore[arg-type]


# --- printing ------------------------------------------------------------------------------


class LoopbackPrinter:
    """A raw TCP 'printer' on 127.0.0.1 that keeps every byte of one connection."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(5)
        self.port = self.server.getsockname()[1]
        self.received = bytearray()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.server.accept()
        with connection:
            connection.settimeout(5)
            while chunk := connection.recv(4096):
                self.received += chunk

    def close(self) -> bytes:
        self.thread.join(timeout=5)
        self.server.close()
        return bytes(self.received)


def test_print_to_a_network_printer_sends_the_escpos_bytes() -> None:
    printer = LoopbackPrinter()
    print_escpos(CHIP_PIN_SALE, f"tcp://127.0.0.1:{printer.port}")
    assert printer.close() == render_escpos(CHIP_PIN_SALE)


def test_print_to_a_file_writes_the_escpos_bytes(tmp_path: Path) -> None:
    target = tmp_path / "receipt.bin"
    print_escpos(CHIP_PIN_SALE, str(target))
    assert target.read_bytes() == render_escpos(CHIP_PIN_SALE)


def test_a_printer_that_refuses_the_connection_is_a_printer_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    with pytest.raises(PrinterError, match=f"tcp://127.0.0.1:{port}"):
        print_escpos(CHIP_PIN_SALE, f"tcp://127.0.0.1:{port}")


def test_a_missing_directory_is_a_printer_error(tmp_path: Path) -> None:
    with pytest.raises(PrinterError):
        print_escpos(CHIP_PIN_SALE, str(tmp_path / "missing" / "receipt.bin"))


@pytest.mark.parametrize("target", ["tcp://127.0.0.1", "tcp://:9100", "tcp://127.0.0.1:x", ""])
def test_a_malformed_printer_address_is_refused(target: str) -> None:
    with pytest.raises(ReceiptError, match="target"):
        print_escpos(CHIP_PIN_SALE, target)
