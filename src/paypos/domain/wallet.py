"""The sandbox wallet's records and trade rules (pure: no I/O, no clock).

A trade is created by a merchant (precreate: the collection QR; pay: the buyer's payment
code) or by a buyer scanning a static code, and moves through the platform's states:

    WAIT_BUYER_PAY --pay--> TRADE_SUCCESS --refund all--> TRADE_CLOSED
          |                        |
          +--close/cancel/expire--> TRADE_CLOSED <--cancel (refunds the rest)--+

TRADE_FINISHED (no refund possible any more) is part of the vocabulary; the sandbox never
ends the refund window, so it never reaches it.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

WAIT_BUYER_PAY = "WAIT_BUYER_PAY"
TRADE_SUCCESS = "TRADE_SUCCESS"
TRADE_CLOSED = "TRADE_CLOSED"
TRADE_FINISHED = "TRADE_FINISHED"


class Funding(enum.StrEnum):
    BALANCE = "balance"
    CARD = "card"
    CREDITPAY = "creditpay"


class WalletError(Exception):
    """A wallet operation refused. ``code`` is a platform sub_code (``ACQ.*``) for what a
    merchant's gateway call can meet, else a buyer-side slug (``user_not_found``, ...);
    ``reason`` refines a code the platform shares between causes (a payment code that is
    ``expired``, ``reused`` or ``unknown``)."""

    def __init__(self, code: str, message: str, *, field: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field, self.reason = code, message, field, reason


@dataclass(frozen=True, slots=True)
class WalletApp:
    app_id: str
    merchant_id: str
    name: str
    app_public_key_pem: str
    status: str = "active"


@dataclass(frozen=True, slots=True)
class WalletUser:
    user_id: str
    phone: str
    name: str
    currency: str  # ISO 4217 alpha
    device_no: int
    paycode_last_step: int | None
    credit_score: int
    credit_line_minor: int
    no_confirm_limit_minor: int
    bill_day: int
    due_day: int
    status: str = "active"

    @property
    def masked_phone(self) -> str:
        """The platform's buyer_logon_id: 138******01."""
        return self.phone[:3] + "*" * max(0, len(self.phone) - 5) + self.phone[-2:]


@dataclass(frozen=True, slots=True)
class Trade:
    trade_no: str
    app_id: str
    merchant_id: str
    out_trade_no: str
    subject: str
    total_amount_minor: int
    currency: str
    scene: str  # qr_code | bar_code
    state: str
    fingerprint: str
    qr_code: str | None
    buyer_user_id: str | None
    funding: str | None
    funding_card_id: str | None
    installments: int
    fee_payer: str | None
    fee_minor: int
    refunded_minor: int
    notify_url: str | None
    terminal_id: str | None
    awaiting_confirmation: bool
    expires_at: datetime
    paid_at: datetime | None
    closed_at: datetime | None
    created_at: datetime

    def replace(self, **changes: Any) -> Trade:
        return dataclasses.replace(self, **changes)

    @property
    def refundable_minor(self) -> int:
        return self.total_amount_minor - self.refunded_minor if self.state == TRADE_SUCCESS else 0

    def is_expired(self, now: datetime) -> bool:
        return self.state == WAIT_BUYER_PAY and now >= self.expires_at


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    trade_no: str
    event: str
    notify_url: str
    params: dict[str, str]
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str
    delivered_at: datetime | None
