"""The acquirer's and the sandbox issuer's records, as plain values (no I/O).

Keys and PANs are never fields of these records: they stay sealed in the store
and are opened only by the code that needs them (see ``adapters.vault``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Funding(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"
    PREPAID = "prepaid"


class CardInterface(StrEnum):
    CHIP = "chip"
    CONTACTLESS = "contactless"
    MAGSTRIPE = "magstripe"


@dataclass(frozen=True, slots=True)
class Acquirer:
    acquirer_id: str  # ISO 8583 field 32, up to 11 digits
    name: str


@dataclass(frozen=True, slots=True)
class Merchant:
    merchant_id: str  # ISO 8583 field 42, 15 characters
    acquirer_id: str
    name: str
    mcc: str  # ISO 18245 merchant category code
    currency: str  # ISO 4217 alpha
    country: str  # ISO 3166-1 numeric
    city: str
    address: str = ""
    status: str = "active"


@dataclass(frozen=True, slots=True)
class Terminal:
    terminal_id: str  # ISO 8583 field 41, 8 characters
    merchant_id: str
    currency: str  # ISO 4217 numeric (field 49)
    initial_ksn: str  # ANSI X9.24 KSN with a zero transaction counter, 20 hex
    mac_required: bool
    contactless_cvm_limit_minor: int
    contactless_txn_limit_minor: int
    floor_limit_minor: int
    status: str = "active"


@dataclass(frozen=True, slots=True)
class IssuerCard:
    card_id: str
    issuer_id: str
    pan_first6: str
    pan_last4: str
    expiry: str  # YYMM
    psn: str
    service_code: str
    scheme: str
    funding: Funding
    currency: str  # ISO 4217 numeric
    interfaces: tuple[CardInterface, ...]
    cvn: int | None
    behavior: str
    status: str
    pin_offset: str
    token_for_card_id: str | None

    @property
    def masked_pan(self) -> str:
        return f"{self.pan_first6}{'*' * 6}{self.pan_last4}"
