"""Card issuers behind one interface; the sandbox issuer that verifies EMV
cryptograms (CVN 10 / 18), PINs (IBM 3624 offset) and card state.

The acquirer host gives the issuer what a network would carry: the card, the
amount, the entry mode, the chip data (field 55) and the PIN block — here the
clear ISO 9564 format-0 block, as the host's HSM role has already decrypted the
terminal's DUKPT-encrypted block (in production it would be translated to a
zone PIN key instead). Funds are not checked here: the ledger's no-overdraft
flag on the cardholder's account refuses an overdraft atomically (51).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from paypos.adapters.db.host import CardState
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import Vault
from paypos.authorization.result import Result
from paypos.domain.registry import CardInterface, IssuerCard
from paypos.protocol import emv
from paypos.domain.money import money
from paypos.protocol.card import is_expired, mask_pan
from paypos.protocol.cardsec import cvv2 as compute_cvv2
from paypos.protocol.cardsec import ibm3624_pin_from_offset
from paypos.protocol.pinblock import PinBlockError, decode_pinblock_iso_0

PIN_TRIES_MAX = 3
ARC_APPROVED = b"00"  # ISO 8583 response code in ASCII, EMV Book 2 8.2.1
ARC_DECLINED = b"05"
# CVN 18 Card Status Update (Visa VIS): byte 2 bit 8 = approved; all else zero.
CSU_APPROVED = bytes.fromhex("00800000")
CSU_DECLINED = bytes.fromhex("00000000")


@dataclass(frozen=True, slots=True)
class IssuerRequest:
    card: IssuerCard  # as presented (may be a wallet token)
    funding_card: IssuerCard  # whose account pays (the token's funding card, or the card itself)
    pan: str  # as presented
    amount_minor: int
    currency: str  # ISO 4217 numeric
    interface: CardInterface | None  # None for a keyed (manual) entry
    icc: Mapping[str, bytes] | None  # field 55 tags, for chip and contactless
    pin_block: bytes | None  # clear ISO 9564 format 0 block
    terminal_cvm_limit_minor: int
    needs_cryptogram: bool = True
    # Card not present (online checkout): the expiry (YYMM) and CVV2 the buyer typed. The CVV2
    # lives only in memory for this one check: it is never stored or logged.
    expiry: str | None = None
    cvv2: str | None = None

    def __repr__(self) -> str:  # never print card data, not even in a traceback
        return f"IssuerRequest(card={self.card.card_id}, amount_minor={self.amount_minor}, currency={self.currency})"


@dataclass(frozen=True, slots=True)
class IssuerDecision:
    result: Result
    reason: str
    tag_91: bytes | None = None  # issuer authentication data, for chip / contactless
    # Which card-not-present check failed ("cvv2", "expiry"): ISO 8583 field 39 has no code of
    # its own for them in profile v1 (Visa's private N7), so the decline is 05 and this names why.
    failed_check: str | None = None
    # Card not present: the issuer's risk asks for the cardholder's one-time code (3-D Secure
    # style) whatever the amount; the sandbox asks it of cards whose behaviour is "challenge".
    challenge_requested: bool = False


class CardIssuer(Protocol):
    def authorize(self, request: IssuerRequest) -> IssuerDecision: ...


class SandboxIssuer:
    """The sandbox issuer, working inside the host's unit of work."""

    def __init__(self, uow: UnitOfWork, vault: Vault, now: datetime) -> None:
        self._uow, self._vault, self._now = uow, vault, now
        self._states: dict[str, CardState] = {}

    def _card_state(self, card_id: str) -> CardState:
        """The card's ATC and PIN tries, locked once per authorization."""
        if card_id not in self._states:
            self._states[card_id] = self._uow.host.card_state(card_id, self._now, PIN_TRIES_MAX)
        return self._states[card_id]

    def _set_card_state(self, card_id: str, **values: int) -> None:
        self._uow.host.update_card_state(card_id, self._now, **values)
        self._states[card_id] = replace(self._card_state(card_id), **values)

    def authorize(self, request: IssuerRequest) -> IssuerDecision:
        card = request.card
        early = self._check_card(request) or self._check_card_not_present(request)
        if early is not None:
            return early
        tag_91 = None
        if request.icc is not None and request.needs_cryptogram:
            checked = self._check_cryptogram(request)
            if isinstance(checked, IssuerDecision):
                return checked
            tag_91 = checked
        pin_result = self._check_pin(request)
        if pin_result is not None:
            return self._decline(request, pin_result, "PIN not verified", tag_91 is not None)
        if self._needs_cvm(request):
            return self._decline(request, Result.CONTACTLESS_PIN_REQUIRED, "contactless above the CVM limit "
                                 "without PIN or CDCVM", tag_91 is not None)
        card_not_present = request.cvv2 is not None
        return IssuerDecision(Result.APPROVED, f"card {card.card_id} approved", tag_91,
                              challenge_requested=card_not_present and card.behavior == "challenge")

    # --- checks ---------------------------------------------------------------

    def _check_card(self, request: IssuerRequest) -> IssuerDecision | None:
        card = request.card
        if card.status != "active" or request.funding_card.status != "active":
            return IssuerDecision(Result.RESTRICTED_CARD, f"card {card.card_id} is {card.status}")
        if is_expired(card.expiry, self._now.date()):
            return IssuerDecision(Result.EXPIRED_CARD, f"card {card.card_id} expired {card.expiry}")
        if request.interface is not None and request.interface not in card.interfaces:
            return IssuerDecision(Result.NOT_PERMITTED_TO_CARDHOLDER, f"card has no {request.interface.value} interface")
        if request.currency != request.funding_card.currency:
            return IssuerDecision(Result.NOT_PERMITTED_TO_CARDHOLDER, "card currency differs from the transaction's")
        chip = request.interface in (CardInterface.CHIP, CardInterface.CONTACTLESS)
        if request.needs_cryptogram and request.icc is None and chip:
            return IssuerDecision(Result.DO_NOT_HONOUR, "chip data (field 55) missing")
        return None

    def _check_card_not_present(self, request: IssuerRequest) -> IssuerDecision | None:
        """Expiry as typed against the card's, then the CVV2 (computed with the card's CVK)."""
        if request.cvv2 is None and request.expiry is None:
            return None
        card = request.card
        if request.expiry != card.expiry:
            return IssuerDecision(Result.DO_NOT_HONOUR, "expiry does not match the card's", failed_check="expiry")
        sealed = self._uow.registry.card_sealed(card.card_id)
        cvk = self._vault.open(sealed["cvk_enc"] or b"", "cvk")
        expected = compute_cvv2(cvk, request.pan, card.expiry)
        if request.cvv2 is None or not hmac.compare_digest(expected, request.cvv2):
            return IssuerDecision(Result.DO_NOT_HONOUR, "CVV2 does not verify", failed_check="cvv2")
        return None

    def _check_cryptogram(self, request: IssuerRequest) -> bytes | IssuerDecision:
        card, icc = request.card, request.icc or {}
        if card.cvn is None:
            return IssuerDecision(Result.DO_NOT_HONOUR, "card has no chip application")
        sealed = self._uow.registry.card_sealed(card.card_id)["imk_ac_enc"]
        imk = bytes.fromhex(self._vault.open(sealed or b"", "imk_ac"))
        try:
            atc = int.from_bytes(icc["9F36"], "big")
            amount = int(icc["9F02"].hex())
            key = emv.ac_key(card.cvn, imk, request.pan, card.psn, icc)  # once, for the ARQC and the ARPC
            valid = emv.verify_arqc_under(card.cvn, key, icc)
        except (KeyError, ValueError, emv.EmvError) as error:
            return IssuerDecision(Result.DO_NOT_HONOUR, f"chip data unusable: {error}")
        if not valid:
            return IssuerDecision(Result.DO_NOT_HONOUR, "ARQC does not verify")
        if amount != request.amount_minor:
            return IssuerDecision(Result.DO_NOT_HONOUR, "cryptogram amount 9F02 differs from field 4")
        state = self._card_state(card.card_id)
        if atc <= state.atc_last:
            return IssuerDecision(Result.DO_NOT_HONOUR, f"ATC {atc} not above the last seen {state.atc_last}")
        self._set_card_state(card.card_id, atc_last=atc)
        return self._arpc(request, key, approved=True)

    def _arpc(self, request: IssuerRequest, key: bytes, *, approved: bool) -> bytes:
        """Tag 91 under the card's AC key (`emv.ac_key`)."""
        card, icc = request.card, request.icc or {}
        if card.cvn == 10:
            return emv.arpc_under(10, key, icc, arc=ARC_APPROVED if approved else ARC_DECLINED)
        return emv.arpc_under(18, key, icc, csu=CSU_APPROVED if approved else CSU_DECLINED)

    def _decline(self, request: IssuerRequest, result: Result, reason: str, chip: bool) -> IssuerDecision:
        return IssuerDecision(result, reason, self.issuer_authentication(request, approved=False) if chip else None)

    def issuer_authentication(self, request: IssuerRequest, *, approved: bool) -> bytes | None:
        """Tag 91 for a request whose ARQC verified: ARPC + ARC (CVN 10) or + CSU (CVN 18)."""
        if request.card.cvn is None or request.icc is None:
            return None
        sealed = self._uow.registry.card_sealed(request.card.card_id)["imk_ac_enc"]
        imk = bytes.fromhex(self._vault.open(sealed or b"", "imk_ac"))
        card = request.card
        return self._arpc(request, emv.ac_key(card.cvn, imk, request.pan, card.psn, request.icc), approved=approved)

    def _check_pin(self, request: IssuerRequest) -> Result | None:
        if request.pin_block is None:
            return None
        card = request.card  # the PIN (and its offset) belong to the card or device presented
        state = self._card_state(card.card_id)
        if state.pin_tries_left <= 0:
            return Result.PIN_TRIES_EXCEEDED
        pan = self._vault.open(self._uow.registry.card_sealed(card.card_id)["pan_enc"] or b"", "pan")
        pvk = self._vault.open(self._uow.registry.card_sealed(card.card_id)["pvk_enc"] or b"", "pvk")
        try:
            entered = decode_pinblock_iso_0(request.pin_block, request.pan)
        except PinBlockError:
            entered = None
        if entered is not None and len(entered) == len(card.pin_offset):
            if entered == ibm3624_pin_from_offset(pvk, pan, card.pin_offset):
                if state.pin_tries_left != PIN_TRIES_MAX:
                    self._set_card_state(card.card_id, pin_tries_left=PIN_TRIES_MAX)
                return None
        tries_left = state.pin_tries_left - 1
        self._set_card_state(card.card_id, pin_tries_left=tries_left)
        return Result.PIN_TRIES_EXCEEDED if tries_left <= 0 else Result.INCORRECT_PIN

    def _needs_cvm(self, request: IssuerRequest) -> bool:
        if request.interface is not CardInterface.CONTACTLESS or request.pin_block is not None:
            return False
        if request.amount_minor <= request.terminal_cvm_limit_minor:
            return False
        return not _cdcvm_performed(request.icc or {})


def _cdcvm_performed(icc: Mapping[str, bytes]) -> bool:
    """Consumer device CVM, as a Kernel 2 phone reports it in 9F34 or a Kernel 3 one in 9F6C."""
    try:
        if "9F34" in icc and emv.cvm_results_cdcvm(icc["9F34"]):
            return True
        return "9F6C" in icc and emv.ctq_consumer_device_cvm_performed(icc["9F6C"])
    except emv.EmvError:
        return False


def cardholder_phone(card: IssuerCard, currency_alpha: str) -> str:
    """The cardholder's sandbox TEST number: +86 138 0000 <last 4> for CNY, +1 415 555 <last 4> else."""
    last4 = card.pan_last4
    return f"+86 138 0000 {last4}" if currency_alpha == "CNY" else f"+1 415 555 {last4}"


def cardholder_notice(
    card: IssuerCard, pan: str, merchant: str, amount_minor: int, currency_alpha: str, refund: bool,
    reference: str, now: datetime,
) -> dict[str, object]:
    """The SMS the sandbox issuer sends after an approved payment (masked PAN only).

    Recipients are sandbox TEST numbers derived from the card: +86 138 0000 <last 4> for
    CNY cards, +1 415 555 <last 4> otherwise.
    """
    phone = cardholder_phone(card, currency_alpha)
    amount = money(amount_minor, currency_alpha)
    what = "refunded by" if refund else "spent at"
    text = (f"[paypos sandbox bank] Card {mask_pan(pan) if pan else card.masked_pan}: {amount} {what} {merchant} "
            f"on {now.strftime('%Y-%m-%d %H:%M')} UTC.")
    return {"card_id": card.card_id, "channel": "sms", "recipient": phone, "text": text[:320],
            "reference": f"{reference}:{'refund' if refund else 'payment'}", "now": now}
