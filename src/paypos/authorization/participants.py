"""The host's participants. Each checks one thing, stages its work in the context
(or in the unit of work, committed or rolled back as a whole by the host), and
ends the transaction with a `Decline` carrying one canonical `Result`.

Pipeline (issue order): parse → MAC → duplicate check → validate → risk →
route → issuer → ledger → respond. Parsing happens before the pipeline
(`services.host`); "terminal" and "KSN" checks sit with MAC, as both need the
terminal's keys.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta

from paypos import limits
from paypos.authorization.context import AuthContext, Replay, business_fingerprint
from paypos.authorization.result import Decline, Result
from paypos.domain.money import MoneyError, currency
from paypos.domain.registry import CardInterface
from paypos.networks.issuer import IssuerRequest, SandboxIssuer, cardholder_notice
from paypos.protocol import emv, iso8583
from paypos.protocol.card import CardDataError, parse_track2, validate_expiry, validate_pan
from paypos.protocol.dukpt import (
    DukptError,
    TransactionKeyCache,
    WorkingKeys,
    derive_ipek,
    initial_ksn,
    ksn_counter,
    parse_ksn,
    working_keys,
)
from paypos.protocol.mac import verify_retail_mac
from paypos.protocol.pinblock import PinBlockError, decrypt_pinblock


class _Base:
    name = "participant"

    def commit(self, ctx: AuthContext) -> None:
        return None

    def abort(self, ctx: AuthContext) -> None:
        return None


# --- envelope: terminal, MAC, duplicates, KSN --------------------------------


class ResolveTerminal(_Base):
    name = "terminal"

    def prepare(self, ctx: AuthContext) -> None:
        terminal = ctx.uow.registry.get_terminal(ctx.terminal_id)
        if terminal is None:
            raise Decline(Result.NOT_PERMITTED_TO_TERMINAL, f"unknown terminal {ctx.terminal_id!r}")
        merchant = ctx.uow.registry.get_merchant(terminal.merchant_id)
        if merchant is None or terminal.status != "active" or merchant.status != "active":
            raise Decline(Result.NOT_PERMITTED_TO_TERMINAL, f"terminal {terminal.terminal_id} is not active")
        if "42" in ctx.request and ctx.request["42"].strip() != merchant.merchant_id:
            raise Decline(Result.NOT_PERMITTED_TO_TERMINAL, "field 42 is not this terminal's merchant")
        ctx.terminal, ctx.merchant = terminal, merchant


class CheckMac(_Base):
    """ISO 9797-1 MAC algorithm 3 under the DUKPT MAC request key of field 62's KSN."""

    name = "mac"

    def prepare(self, ctx: AuthContext) -> None:
        terminal = ctx.terminal
        try:
            mac = iso8583.mac_input_and_value(ctx.raw, ctx.request)
        except iso8583.MessageError as error:
            raise Decline(Result.SECURITY_VIOLATION, str(error)) from None
        ctx.mac_present = mac is not None
        if "62" in ctx.request:
            ctx.keys = self._keys(ctx)
        if mac is None:
            if terminal is not None and terminal.mac_required and not ctx.mti.startswith("08"):
                raise Decline(Result.SECURITY_VIOLATION, "MAC required on this terminal and missing")
            return
        if ctx.keys is None:
            raise Decline(Result.SECURITY_VIOLATION, "MAC without a KSN in field 62")
        data, value = mac
        if not verify_retail_mac(ctx.keys.mac_request, data, value):
            raise Decline(Result.SECURITY_VIOLATION, "MAC does not verify")

    def _keys(self, ctx: AuthContext) -> WorkingKeys:
        sealed = ctx.uow.registry.terminal_bdk_sealed(ctx.terminal_id) or b""
        try:
            ksn = parse_ksn(ctx.request["62"])
            key = _TRANSACTION_KEYS.derive(_ipek(ctx.vault.open(sealed, "bdk"), initial_ksn(ksn)), ksn)
        except DukptError as error:
            raise Decline(Result.SECURITY_VIOLATION, str(error)) from None
        return working_keys(key, with_data=False)  # the host never decrypts data fields


_TRANSACTION_KEYS = TransactionKeyCache(limits.dukpt_key_cache_entries_max)


@functools.lru_cache(maxsize=limits.iso_ipek_cache_entries_max)
def _ipek(bdk_hex: str, ksn_base: bytes) -> bytes:
    """A terminal's initial key, derived once per process (it never changes for its key set)."""
    return derive_ipek(bytes.fromhex(bdk_hex), ksn_base)


class CheckDuplicate(_Base):
    """(41, 11, 7) seen before: same business content → the first answer; else 94."""

    name = "duplicate"

    def prepare(self, ctx: AuthContext) -> None:
        answered = ctx.uow.host.answered(ctx.terminal_id, ctx.stan, ctx.transmission_dt)
        if answered is None:
            return
        if answered.fingerprint == business_fingerprint(ctx.request):
            raise Replay(answered.response)
        raise Decline(Result.DUPLICATE_DIFFERENT_CONTENT, "same 41/11/7 with different content")


class CheckKsn(_Base):
    """The DUKPT counter must rise (X9.24-1): a replayed or rewound KSN is refused."""

    name = "ksn"

    def prepare(self, ctx: AuthContext) -> None:
        ctx.terminal_state = ctx.uow.host.terminal_state(ctx.terminal_id, ctx.now)
        if "62" not in ctx.request:
            if "52" in ctx.request:
                raise Decline(Result.SECURITY_VIOLATION, "PIN block without a KSN in field 62")
            return
        counter = ksn_counter(parse_ksn(ctx.request["62"]))
        if counter <= ctx.terminal_state.ksn_counter_last:
            raise Decline(Result.SECURITY_VIOLATION,
                          f"KSN counter {counter} not above the last {ctx.terminal_state.ksn_counter_last}")
        ctx.uow.host.update_terminal_state(ctx.terminal_id, ctx.now, ksn_counter_last=counter)


# --- validation ----------------------------------------------------------------

ENTRY_MODES = {"05": CardInterface.CHIP, "07": CardInterface.CONTACTLESS, "02": CardInterface.MAGSTRIPE, "01": None}


@dataclass(frozen=True)
class ValidateFinancial(_Base):
    """Fields a card transaction needs, with their formats; the card data read."""

    name: str = "validate"
    needs_card: bool = True

    def prepare(self, ctx: AuthContext) -> None:
        request = ctx.request
        for required in ("3", "4", "7", "11", "41", "49"):
            if not request.get(required):
                raise Decline(Result.FORMAT_ERROR, f"field {required} missing")
        try:
            ctx.amount_minor = iso8583.parse_amount(request["4"])
            ctx.currency_alpha = currency(request["49"]).alpha
        except (iso8583.MessageError, MoneyError) as error:
            raise Decline(Result.FORMAT_ERROR, str(error)) from None
        if ctx.terminal is not None and request["49"] != ctx.terminal.currency:
            raise Decline(Result.NOT_PERMITTED_TO_TERMINAL, "field 49 is not the terminal's currency")
        if ctx.amount_minor <= 0 and ctx.processing_code[:2] != "31":
            raise Decline(Result.INVALID_AMOUNT, "field 4: amount must be above zero")
        if ctx.amount_minor > limits.iso_amount_minor_max:
            raise Decline(Result.INVALID_AMOUNT, "field 4: amount above the host's limit")
        if self.needs_card:
            self._card_data(ctx)

    def _card_data(self, ctx: AuthContext) -> None:
        request = ctx.request
        entry = request.get("22", "")
        if len(entry) != 3 or entry[:2] not in ENTRY_MODES or entry[2] not in "012":
            raise Decline(Result.FORMAT_ERROR, "field 22: entry mode must be 051, 071, 021 or 011 (+PIN digit)")
        ctx.interface = ENTRY_MODES[entry[:2]]
        ctx.pin_entered = entry[2] == "1"
        try:
            if "35" in request:
                ctx.pan = parse_track2(request["35"]).pan
            elif "2" in request and ctx.interface is None:
                ctx.pan = validate_pan(request["2"])
                validate_expiry(request.get("14", ""))
            else:
                raise Decline(Result.FORMAT_ERROR, "field 35 (or 2 with 14 for manual entry) missing")
        except CardDataError as error:
            raise Decline(Result.INVALID_CARD_NUMBER if error.field == "pan" else Result.FORMAT_ERROR,
                          str(error)) from None
        if ctx.pin_entered != ("52" in request):
            raise Decline(Result.FORMAT_ERROR, "field 22 PIN digit and field 52 disagree")
        self._chip_data(ctx)

    def _chip_data(self, ctx: AuthContext) -> None:
        if "55" in ctx.request:
            try:
                ctx.icc = emv.decode_field_55(ctx.request["55"])
            except emv.EmvError as error:
                raise Decline(Result.FORMAT_ERROR, f"field 55: {error}") from None
        if "52" in ctx.request:
            if ctx.keys is None:
                raise Decline(Result.SECURITY_VIOLATION, "PIN block without DUKPT keys")
            try:
                ctx.pin_block = decrypt_pinblock(ctx.keys.pin, bytes.fromhex(ctx.request["52"]))
            except (PinBlockError, ValueError) as error:
                raise Decline(Result.FORMAT_ERROR, str(error)) from None


def original_identity(ctx: AuthContext) -> iso8583.OriginalData:
    """Field 90 of a message that names an earlier one (0220 completion, 0400, 0600)."""
    try:
        return iso8583.parse_original_data_elements(ctx.request.get("90", ""))
    except iso8583.MessageError as error:
        raise Decline(Result.FORMAT_ERROR, f"field 90: {error}") from None


class RefuseUnsupported(_Base):
    """A message type or processing code the host does not offer: 12, after the envelope
    (terminal, MAC, duplicate, KSN) so that the answer is signed like any other."""

    name = "unsupported"

    def prepare(self, ctx: AuthContext) -> None:
        raise Decline(Result.INVALID_TRANSACTION, "unsupported MTI/processing code")


class RefuseReversedOriginal(_Base):
    """An original whose reversal came first is never posted."""

    name = "reversed-first"

    def prepare(self, ctx: AuthContext) -> None:
        if ctx.uow.host.has_tombstone(ctx.terminal_id, ctx.stan, ctx.transmission_dt):
            raise Decline(Result.INVALID_TRANSACTION, "this transaction was reversed before it arrived")


class Risk(_Base):
    """Placeholder rule set (the risk engine replaces it): velocity per card."""

    name = "risk"

    def prepare(self, ctx: AuthContext) -> None:
        if ctx.card is None:
            return
        since = ctx.now - timedelta(seconds=limits.risk_velocity_window_s)
        if ctx.uow.host.recent_count_for_card(ctx.card.card_id, since) >= limits.risk_card_velocity_max:
            raise Decline(Result.DO_NOT_HONOUR, "card velocity limit")


class RouteCard(_Base):
    """Find the card's issuer; a wallet token is mapped to its funding card (token vault)."""

    name = "route"

    def prepare(self, ctx: AuthContext) -> None:
        pan = ctx.require("pan")
        card = ctx.uow.registry.find_card_by_pan_hash(ctx.vault.lookup_hash(str(pan)))
        if card is None:
            raise Decline(Result.INVALID_CARD_NUMBER, "no issuer for this card")
        funding = card
        if card.token_for_card_id:
            funding = ctx.uow.registry.get_card(card.token_for_card_id)
            if funding is None:
                raise Decline(Result.RESTRICTED_CARD, "token has no funding card")
        ctx.card, ctx.funding_card = card, funding


@dataclass(frozen=True)
class Issuer(_Base):
    name: str = "issuer"
    check_cryptogram: bool = True

    def _request(self, ctx: AuthContext) -> IssuerRequest:
        terminal, card, funding = ctx.require("terminal"), ctx.require("card"), ctx.require("funding_card")
        return IssuerRequest(
            card=card, funding_card=funding, pan=str(ctx.pan), amount_minor=ctx.amount_minor,
            currency=ctx.request["49"], interface=ctx.interface, icc=ctx.icc, pin_block=ctx.pin_block,
            terminal_cvm_limit_minor=terminal.contactless_cvm_limit_minor,  # type: ignore[attr-defined]
            needs_cryptogram=self.check_cryptogram,
        )

    def prepare(self, ctx: AuthContext) -> None:
        decision = SandboxIssuer(ctx.uow, ctx.vault, ctx.now).authorize(self._request(ctx))
        ctx.tag_91 = decision.tag_91
        if decision.result is not Result.APPROVED:
            raise Decline(decision.result, decision.reason)

    def commit(self, ctx: AuthContext) -> None:
        """Every participant prepared: the payment is approved, so the issuer notifies the cardholder."""
        if ctx.card is None or ctx.processing_code[:2] not in ("00", "20"):
            return
        merchant = ctx.merchant.name if ctx.merchant else ctx.request.get("42", "")
        ctx.uow.host.add_notification(**cardholder_notice(ctx.card, ctx.pan or "", merchant, ctx.amount_minor,
                                                          ctx.currency_alpha, ctx.processing_code[:2] == "20",
                                                          f"{ctx.terminal_id}:{ctx.transmission_dt}:{ctx.stan}",
                                                          ctx.now))

    def abort(self, ctx: AuthContext) -> None:
        """The issuer approved but a later step declined (the ledger's 51, a balance inquiry's
        57): the card must not get issuer authentication data that says "approved"."""
        if ctx.tag_91 is not None:
            ctx.tag_91 = SandboxIssuer(ctx.uow, ctx.vault, ctx.now).issuer_authentication(
                self._request(ctx), approved=False)
