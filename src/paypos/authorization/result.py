"""One canonical result per authorization, mapped to ISO 8583 field 39 once.

Participants never write a response code; they end the pipeline with a
`Result` (and a reason for the log), and `response_code` turns it into DE39 at
the very end (jPOS's TransactionManager pattern).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Result(StrEnum):
    APPROVED = "approved"
    REQUEST_IN_PROGRESS = "request_in_progress"  # a wallet payment waiting for the buyer
    DO_NOT_HONOUR = "do_not_honour"
    INVALID_TRANSACTION = "invalid_transaction"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_CARD_NUMBER = "invalid_card_number"
    NO_ACTION_TAKEN = "no_action_taken"
    RECORD_NOT_FOUND = "record_not_found"
    FORMAT_ERROR = "format_error"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXPIRED_CARD = "expired_card"
    INCORRECT_PIN = "incorrect_pin"
    NOT_PERMITTED_TO_CARDHOLDER = "not_permitted_to_cardholder"
    NOT_PERMITTED_TO_TERMINAL = "not_permitted_to_terminal"
    RESTRICTED_CARD = "restricted_card"
    SECURITY_VIOLATION = "security_violation"
    CONTACTLESS_PIN_REQUIRED = "contactless_pin_required"
    PIN_TRIES_EXCEEDED = "pin_tries_exceeded"
    ISSUER_UNAVAILABLE = "issuer_unavailable"
    DUPLICATE_DIFFERENT_CONTENT = "duplicate_different_content"
    RECONCILE_ERROR = "reconcile_error"
    SYSTEM_MALFUNCTION = "system_malfunction"


# paypos ISO 8583 profile v1, field 39 (docs/iso8583.md).
RESPONSE_CODE: dict[Result, str] = {
    Result.APPROVED: "00",
    Result.REQUEST_IN_PROGRESS: "09",
    Result.DO_NOT_HONOUR: "05",
    Result.INVALID_TRANSACTION: "12",
    Result.INVALID_AMOUNT: "13",
    Result.INVALID_CARD_NUMBER: "14",
    Result.NO_ACTION_TAKEN: "21",
    Result.RECORD_NOT_FOUND: "25",
    Result.FORMAT_ERROR: "30",
    Result.INSUFFICIENT_FUNDS: "51",
    Result.EXPIRED_CARD: "54",
    Result.INCORRECT_PIN: "55",
    Result.NOT_PERMITTED_TO_CARDHOLDER: "57",
    Result.NOT_PERMITTED_TO_TERMINAL: "58",
    Result.RESTRICTED_CARD: "62",
    Result.SECURITY_VIOLATION: "63",
    Result.CONTACTLESS_PIN_REQUIRED: "65",
    Result.PIN_TRIES_EXCEEDED: "75",
    Result.ISSUER_UNAVAILABLE: "91",
    Result.DUPLICATE_DIFFERENT_CONTENT: "94",
    Result.RECONCILE_ERROR: "95",
    Result.SYSTEM_MALFUNCTION: "96",
}

if set(RESPONSE_CODE) != set(Result):  # a programmer error: every result needs a code
    raise RuntimeError("RESPONSE_CODE must map every Result")


RESULT_OF_CODE: dict[str, Result] = {code: result for result, code in RESPONSE_CODE.items()}


def response_code(result: Result) -> str:
    return RESPONSE_CODE[result]


def result_of(code: str) -> Result:
    """The result a stored field 39 stands for (96 for a code profile v1 does not use)."""
    return RESULT_OF_CODE.get(code, Result.SYSTEM_MALFUNCTION)


@dataclass(frozen=True, slots=True)
class Decline(Exception):
    """Raised by a participant's ``prepare`` to end the pipeline with ``result``."""

    result: Result
    reason: str

    def __str__(self) -> str:
        return f"{self.result.value}: {self.reason}"
