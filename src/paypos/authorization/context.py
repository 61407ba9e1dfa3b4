"""The typed context one ISO 8583 request carries through the pipeline."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

from paypos.adapters.db.host import HostTransaction, TerminalState
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import Vault
from paypos.authorization.result import Result
from paypos.domain.registry import CardInterface, IssuerCard, Merchant, Terminal
from paypos.protocol import iso8583
from paypos.protocol.dukpt import WorkingKeys

def business_fingerprint(fields: dict[str, str]) -> str:
    """SHA-256 over every field but the security envelope (52, 62, 64, 128): a terminal
    re-sending a request under a fresh KSN changes those, and it is still the same request."""
    content = iso8583.business_fields(fields)
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


class Replay(Exception):
    """The request was answered before with the same content: send that answer again."""

    def __init__(self, response: dict[str, str]) -> None:
        super().__init__("retransmission")
        self.response = response


@dataclass
class AuthContext:
    request: dict[str, str]
    raw: bytes
    uow: UnitOfWork
    vault: Vault
    now: datetime
    # Filled in by the participants, in pipeline order.
    terminal: Terminal | None = None
    merchant: Merchant | None = None
    terminal_state: TerminalState | None = None
    keys: WorkingKeys | None = None
    mac_present: bool = False
    amount_minor: int = 0
    currency_alpha: str = ""
    interface: CardInterface | None = None
    pin_entered: bool = False
    pan: str | None = None
    account_masked: str | None = None  # what the journal shows instead of a masked PAN (wallet codes)
    card: IssuerCard | None = None
    funding_card: IssuerCard | None = None
    icc: dict[str, bytes] | None = None
    pin_block: bytes | None = None
    original: HostTransaction | None = None
    transaction_id: int | None = None
    fee_minor: int = 0
    method: str | None = None  # domain.pricing.PaymentMethod of a priced payment
    tag_91: bytes | None = None
    balance_minor: int | None = None
    approval_code: str | None = None
    response_extra: dict[str, str] = field(default_factory=dict)
    result: Result | None = None
    reason: str = ""

    @property
    def mti(self) -> str:
        return self.request["t"]

    @property
    def processing_code(self) -> str:
        return self.request.get("3", "")

    @property
    def terminal_id(self) -> str:
        return self.request.get("41", "")

    @property
    def stan(self) -> str:
        return self.request.get("11", "")

    @property
    def transmission_dt(self) -> str:
        return self.request.get("7", "")

    def require(self, name: str) -> object:
        value = getattr(self, name)
        if value is None:
            raise RuntimeError(f"pipeline order broken: {name} is not set yet")
        return value
