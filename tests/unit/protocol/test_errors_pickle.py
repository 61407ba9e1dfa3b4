"""paypos's field-carrying input errors survive pickling whole (protocol/errors.py): type,
message, field and every other attribute. Python's default rebuilds an exception from its
args alone, which fails for a keyword-only field (EmvError, CardDataError, ...), drops it
(MacError, PinBlockError), or prefixes a built message twice (QrError, PayCodeError)."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from paypos.domain.creditpay import CreditPayError
from paypos.domain.dispute import DisputeError
from paypos.protocol.card import CardDataError
from paypos.protocol.dukpt import DukptError, KsnExhausted
from paypos.protocol.emv import EmvError
from paypos.protocol.iso8583 import FrameError, MessageError
from paypos.protocol.mac import MacError
from paypos.protocol.paycode import PayCodeError, PayCodeFormatError
from paypos.protocol.pinblock import PinBlockError
from paypos.protocol.qr import QrError
from paypos.terminal.card import SoftCardError
from paypos.terminal.receipt import ReceiptError
from paypos.terminal.risk import RiskInputError

ERRORS = [
    EmvError("ARQC length must be 8 bytes", field="9F26"),
    CardDataError("PAN fails the Luhn check", field="pan"),
    MessageError("amount must be 12 digits", field="4"),
    MessageError("message too short"),
    FrameError("length prefix 0", frames=[b"0800"]),
    MacError("MAC key must be 16 bytes", field="mac_key"),
    PinBlockError("PIN must be 4 to 12 digits", field="pin"),
    QrError("amount must be a decimal", field="54"),
    PayCodeError("OTP expired", field="code"),
    PayCodeFormatError("must be 18 digits", field="code"),
    DukptError("counter has more than ten 1 bits", field="62"),
    KsnExhausted("no next counter"),
    ReceiptError("merchant name too long", field="merchant_name"),
    SoftCardError("card has no CVN 10 key", field="cvn"),
    RiskInputError("unknown entry mode", field="entry"),
    CreditPayError("installments must be 3, 6 or 12", field="installments"),
    DisputeError("reason code unknown", field="reason"),
]


def _same(a: BaseException, b: BaseException) -> None:
    assert type(a) is type(b)
    assert str(a) == str(b) and a.args == b.args
    assert vars(a) == vars(b)


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_pickling_keeps_type_message_and_fields(error: BaseException) -> None:
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        _same(pickle.loads(pickle.dumps(error, protocol)), error)


def _raise(index: int) -> None:
    raise ERRORS[index]


def test_an_error_raised_in_a_worker_process_comes_back_as_itself() -> None:
    with ProcessPoolExecutor(max_workers=1) as pool:
        for index in (0, 1, 7):  # EmvError, CardDataError, QrError: the ones that broke
            with pytest.raises(type(ERRORS[index])) as caught:
                pool.submit(_raise, index).result()
            _same(caught.value, ERRORS[index])
