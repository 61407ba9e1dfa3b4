"""The terminal engine: what a cashier's key press turns into on the wire.

Every request follows the same durable path: counters advanced and a journal
row marked ``sending`` are committed first; then the request is sent; then the
answer is recorded. A missing answer queues a reversal (0400) that is re-sent
until the host answers; an unreachable host lets a chip card under the floor
limit approve offline (TC), stored and forwarded later as a 0220 advice. On
start, any row still ``sending`` (the terminal died mid-request) is reversed.

Wallet payments (the buyer's payment code, the merchant's collection code) take the
same path; while the buyer decides, the row is ``pending`` and the engine asks the
host (0600) until it is paid or refused, cancelling (0400) at its timeout.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from paypos import limits
from paypos.protocol import emv, iso8583
from paypos.protocol.card import luhn_valid, mask_pan
from paypos.protocol.dukpt import (
    KsnExhausted,
    WorkingKeys,
    derive_transaction_key,
    ksn_counter,
    ksn_with_counter,
    next_ksn,
    parse_ksn,
    working_keys,
)
from paypos.protocol.mac import retail_mac, verify_retail_mac
from paypos.protocol.pinblock import encode_pinblock_iso_0, encrypt_pinblock
from paypos.terminal.card import CardProfile, SoftCard, SoftCardError, TerminalData
from paypos.terminal.link import HostLink, HostUnreachable, NoAnswer
from paypos.terminal.risk import Decision, RiskInputError, TerminalLimits, decide
from paypos.terminal.store import JournalEntry, TerminalConfig, TerminalStore

RESPONSE_TEXT = {
    "00": "APPROVED", "05": "DO NOT HONOUR", "09": "WAITING FOR THE BUYER", "12": "INVALID TRANSACTION",
    "13": "INVALID AMOUNT", "14": "INVALID CARD NUMBER", "21": "NO ACTION TAKEN", "25": "RECORD NOT FOUND",
    "30": "FORMAT ERROR", "51": "INSUFFICIENT FUNDS",
    "54": "EXPIRED CARD", "55": "INCORRECT PIN", "57": "NOT PERMITTED TO CARDHOLDER",
    "58": "NOT PERMITTED TO TERMINAL", "62": "RESTRICTED CARD", "63": "SECURITY VIOLATION",
    "65": "PIN REQUIRED", "75": "PIN TRIES EXCEEDED", "91": "HOST UNAVAILABLE", "94": "DUPLICATE",
    "95": "RECONCILE ERROR", "96": "SYSTEM MALFUNCTION",
}
ENTRY_CODES = {"chip": "05", "contactless": "07", "swipe": "02", "manual": "01"}

# Wallet payments (docs/iso8583.md §5.8): 0200 with field 22 = 032; the journal's entry
# column says which side showed the code. These limits belong in paypos.limits once that
# file is free to edit.
WALLET_ENTRIES = {"paycode": "buyer's payment code", "qr": "merchant's collection code"}
WALLET_ENTRY_MODE = "032"  # bar code (ISO 8583:1987 field 22 positions 1-2 = 03), no PIN
WALLET_POLL_INTERVAL_S = 1.5  # 0600 status requests while the buyer decides
WALLET_PAY_TIMEOUT_S_DEFAULT = 60.0  # the buyer confirms a payment-code charge above their limit
WALLET_QR_TIMEOUT_S_DEFAULT = 300.0  # the wallet's own trade timeout (limits.wallet_trade_timeout_s)
WALLET_TIMEOUT_S_MAX = 900.0
WALLET_SETTLE_STATUS_MAX = 100  # pending wallet payments resolved before an end of day
PAYMENT_CODE_DIGITS = 18
# Field 44 of a wallet answer, in the cashier's words.
WALLET_DETAIL_TEXT = {
    "PAYCODEEXPIRED": "PAYMENT CODE EXPIRED — ask the buyer to refresh the code",
    "PAYCODEREUSED": "PAYMENT CODE ALREADY USED — ask the buyer for a new code",
    "PAYCODEUNKNOWN": "PAYMENT CODE UNKNOWN — not a code of this wallet",
    "PAYCODEINVALID": "NOT A PAYMENT CODE — rescan it",
    "BALANCENOTENOUGH": "BUYER'S BALANCE TOO LOW",
    "CURRENCYMISMATCH": "BUYER'S WALLET IS IN ANOTHER CURRENCY",
    "TRADEEXPIRED": "QR CODE EXPIRED — the buyer did not pay in time",
    "TRADECLOSED": "PAYMENT CLOSED",
    "TRADECANCELLED": "PAYMENT CANCELLED",
    "TRADEREFUNDED": "PAYMENT REFUNDED",
    "WALLETNOTENABLED": "WALLET PAYMENTS NOT ENABLED FOR THIS MERCHANT",
}
# 0610 codes that say nothing final about the payment: it stays pending.
_STATUS_NOT_FINAL = frozenset({"09", "25", "30", "63", "91", "94", "96"})


class TerminalError(RuntimeError):
    """A request the terminal refuses before sending (bad input, no keys, KSN exhausted)."""


class PinRequired(TerminalError):
    """The risk decision needs the cardholder's PIN and none was entered (nothing was sent)."""


@dataclass
class Outcome:
    """What the cashier sees; `as_json` is `paypos terminal ... --json`."""

    approved: bool
    response_code: str
    message: str
    amount_minor: int
    currency: str
    approval_code: str | None = None
    rrn: str | None = None
    offline: bool = False
    journal_id: int | None = None
    balance_minor: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "approved": self.approved, "response_code": self.response_code, "message": self.message,
            "approval_code": self.approval_code, "rrn": self.rrn, "amount_minor": self.amount_minor,
            "currency": self.currency, "offline": self.offline, "journal_id": self.journal_id, **self.extra,
        }


class TerminalEngine:
    def __init__(
        self, store: TerminalStore, link: HostLink, card_for: Callable[[CardProfile], SoftCard],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC), *, country: str | None = None,
    ) -> None:
        self.store, self.link, self.card_for, self.clock = store, link, card_for, clock
        self.config: TerminalConfig = store.config()
        # ISO 3166-1 numeric country of the terminal (9F1A); the merchant's country.
        self.country = country or self.config.currency

    # --- envelope: counters, keys, MAC ------------------------------------------

    def _now(self) -> str:
        return self.clock().isoformat()

    def _next_keys(self, db: sqlite3.Connection) -> tuple[str, WorkingKeys]:
        """Advance the DUKPT counter (persisted with the request) and derive its keys."""
        base = parse_ksn(self.config.initial_ksn)
        counter = self.store.ksn_counter()
        try:
            ksn = next_ksn(ksn_with_counter(base, counter)) if counter else next_ksn(base)
        except KsnExhausted:
            raise TerminalError("DUKPT key exhausted: load new keys into this terminal") from None
        key = derive_transaction_key(bytes.fromhex(self.config.ipek), ksn)
        self.store.set_ksn_counter(db, ksn_counter(ksn))
        keys = working_keys(key, with_data=False)
        return ksn.hex().upper(), keys

    def _identity(self, db: sqlite3.Connection) -> tuple[str, str]:
        return self.store.next_stan(db), self.clock().strftime("%m%d%H%M%S")

    def _build(self, db: sqlite3.Connection, fields: dict[str, str], *, pin: str | None = None,
               pan: str | None = None) -> tuple[bytes, WorkingKeys | None]:
        keys = None
        if pin is not None or self.config.mac_required:
            ksn, keys = self._next_keys(db)
            fields["62"] = ksn
        if pin is not None:
            fields["52"] = encrypt_pinblock(keys.pin, encode_pinblock_iso_0(pin, pan or "")).hex().upper()  # type: ignore[union-attr]
        if self.config.mac_required and keys is not None:
            mac_key = keys.mac_request
            return iso8583.encode_with_mac(fields, lambda data: retail_mac(mac_key, data)), keys
        return iso8583.encode_message(fields), keys

    def _base_fields(self, mti: str, stan: str, dt: str) -> dict[str, str]:
        return {"t": mti, "7": dt, "11": stan, "41": self.config.terminal_id, "42": self.config.merchant_id,
                "49": self.config.currency}

    def _check_response_mac(self, raw_response: dict[str, str], keys: WorkingKeys | None) -> bool:
        if keys is None or not self.config.mac_required:
            return True
        encoded = iso8583.encode_message(raw_response)
        found = iso8583.mac_input_and_value(encoded)
        return found is not None and verify_retail_mac(keys.mac_response, *found)

    # --- start-up recovery and queues -------------------------------------------

    def recover(self) -> int:
        """Reverse every request a crash left unanswered; returns how many were queued."""
        stuck = self.store.in_flight()
        with self.store.transaction() as db:
            for entry in stuck:
                self.store.update_entry(db, entry.id, self._now(), status="reversal_pending",
                                        note="no answer recorded before the terminal stopped")
                stan, dt = self._identity(db)
                self.store.queue_reversal(db, entry.id, stan, dt, self._now())
        return len(stuck)

    def drain(self) -> dict[str, int]:
        """Send queued reversals, then stored advices in order; stop at the first failure."""
        sent = {"reversals": 0, "advices": 0}
        for row in self.store.reversals()[: limits.terminal_queue_drain_max]:
            if not self._send_reversal(row["journal_id"], row["stan"], row["transmission_dt"]):
                return sent
            sent["reversals"] += 1
        for seq, journal_id, fields, _attempts in self.store.advices()[: limits.terminal_queue_drain_max]:
            if not self._send_advice(seq, journal_id, fields):
                return sent
            sent["advices"] += 1
        return sent

    def _send_reversal(self, journal_id: int, stan: str, dt: str) -> bool:
        original = self.store.entry(journal_id)
        if original is None:
            raise TerminalError(f"reversal queued for unknown journal entry {journal_id}")
        fields = self._base_fields("0400", stan, dt)
        fields |= {"3": original.processing_code, "4": iso8583.format_amount(original.amount_minor),
                   "90": iso8583.format_original_data_elements(iso8583.OriginalData(
                       original.mti, original.stan, original.transmission_dt, "0", "0"))}
        self.store.reversal_attempted(journal_id)
        with self.store.transaction() as db:
            raw, keys = self._build(db, fields)
        try:
            response = self.link.exchange(raw)
        except (HostUnreachable, NoAnswer):
            return False
        with self.store.transaction() as db:
            self.store.update_entry(db, journal_id, self._now(), status="reversed",
                                    note=f"reversed (0410 {response.get('39')})")
            self.store.drop_reversal(db, journal_id)
        return True

    def _send_advice(self, seq: int, journal_id: int, fields: dict[str, str]) -> bool:
        self.store.advice_attempted(seq)
        with self.store.transaction() as db:
            raw, _keys = self._build(db, dict(fields))
        try:
            response = self.link.exchange(raw)
        except (HostUnreachable, NoAnswer):
            return False
        with self.store.transaction() as db:
            self.store.update_entry(db, journal_id, self._now(), status="approved" if response.get("39") == "00"
                                    else "advice_refused", rrn=response.get("37"), note=f"advice 0230 {response.get('39')}")
            self.store.drop_advice(db, seq)
        return True

    # --- network management ------------------------------------------------------

    def sign_on(self, code: str = "001") -> Outcome:
        with self.store.transaction() as db:
            stan, dt = self._identity(db)
            raw, keys = self._build(db, self._base_fields("0800", stan, dt) | {"70": code})
        try:
            response = self.link.exchange(raw)
        except (HostUnreachable, NoAnswer) as error:
            return Outcome(False, "91", str(error), 0, self.config.currency)
        code39 = response.get("39", "96")
        return Outcome(code39 == "00", code39, RESPONSE_TEXT.get(code39, code39), 0, self.config.currency)

    # --- card transactions -------------------------------------------------------

    def limits(self) -> TerminalLimits:
        return TerminalLimits(self.config.floor_limit_minor, self.config.contactless_txn_limit_minor,
                              self.config.contactless_cvm_limit_minor)

    def pay(self, card: CardProfile, amount_minor: int, entry: str, *, pin: str | None = None,
            chip_failures: int = 0, kind: str = "purchase") -> Outcome:
        """A sale (``kind`` purchase) or a pre-authorization (``kind`` preauth)."""
        if entry not in ENTRY_CODES:
            raise TerminalError(f"entry must be one of {', '.join(ENTRY_CODES)}")
        if type(amount_minor) is not int or amount_minor <= 0:
            raise TerminalError("amount must be a positive integer of minor units")
        try:
            decision = decide(entry, amount_minor, self.limits(), host_reachable=True, card_interfaces=card.interfaces,
                              is_phone=card.is_phone, chip_failures=chip_failures, service_code=card.service_code)
        except RiskInputError as error:
            raise TerminalError(str(error)) from None
        if decision.action in ("refuse", "decline"):
            return Outcome(False, "", decision.reason, amount_minor, self.config.currency)
        pin = pin if decision.cvm == "online_pin" else None
        if decision.cvm == "online_pin" and pin is None:
            raise PinRequired("this card needs the cardholder's PIN (--pin)")
        mti = "0100" if kind == "preauth" else "0200"
        return self._card_request(mti, "000000", kind, card, amount_minor, entry, decision, pin)

    def _card_request(self, mti: str, processing_code: str, kind: str, card: CardProfile, amount_minor: int,
                      entry: str, decision: Decision, pin: str | None, extra: dict[str, str] | None = None) -> Outcome:
        soft = self.card_for(card)
        icc = None
        if entry in ("chip", "contactless") and card.cvn is not None:
            try:
                icc = soft.generate_ac(self._terminal_data(amount_minor, processing_code, decision), "ARQC",
                                       cvm=decision.cvm)
            except (SoftCardError, emv.EmvError) as error:
                raise TerminalError(f"card read failed: {error}") from None
        fields = {"3": processing_code, "4": iso8583.format_amount(amount_minor),
                  "22": ENTRY_CODES[entry] + ("1" if pin else "2"), "35": card.track2}
        if entry == "manual":
            fields = {"3": processing_code, "4": iso8583.format_amount(amount_minor), "22": "01" + ("1" if pin else "2"),
                      "2": card.pan, "14": card.expiry}
        if entry in ("chip", "contactless"):
            fields["23"] = card.psn.zfill(3)
        if icc is not None:
            fields["55"] = emv.encode_field_55(icc)
        fields |= extra or {}
        with self.store.transaction() as db:
            stan, dt = self._identity(db)
            raw, keys = self._build(db, self._base_fields(mti, stan, dt) | fields, pin=pin, pan=card.pan)
            journal_id = self.store.add_entry(
                db, self._now(), kind=kind, mti=mti, stan=stan, transmission_dt=dt, processing_code=processing_code,
                amount_minor=amount_minor, currency=self.config.currency, card_id=card.card_id,
                pan_masked=mask_pan(card.pan), entry=entry, cvm=decision.cvm, aid=card.aid,
                batch_no=self.store.batch_no(), status="sending",
            )
        return self._exchange(journal_id, raw, keys, icc, soft, card, decision, fields, amount_minor)

    def _terminal_data(self, amount_minor: int, processing_code: str, decision: Decision) -> TerminalData:
        return TerminalData(amount_minor=amount_minor, other_amount_minor=0, currency=self.config.currency,
                            country=self.country,
                            transaction_date=self.clock().date(), transaction_type=processing_code[:2],
                            tvr=decision.tvr)

    def _exchange(self, journal_id: int, raw: bytes, keys: WorkingKeys | None, icc: dict[str, bytes] | None,
                  soft: SoftCard, card: CardProfile, decision: Decision, fields: dict[str, str],
                  amount_minor: int) -> Outcome:
        try:
            response = self.link.exchange(raw)
        except HostUnreachable:
            return self._offline(journal_id, soft, card, decision, fields, amount_minor)
        except NoAnswer as error:
            self._reverse_later(journal_id, f"no answer: {error}")
            self.drain()
            return Outcome(False, "", "NOT COMPLETED — no answer from the host; the sale is being reversed",
                           amount_minor, self.config.currency, journal_id=journal_id)
        return self._record(journal_id, response, keys, icc, soft, amount_minor)

    def _record(self, journal_id: int, response: dict[str, str], keys: WorkingKeys | None,
                icc: dict[str, bytes] | None, soft: SoftCard | None, amount_minor: int) -> Outcome:
        code39 = response.get("39", "96")
        approved = code39 == "00"
        note = ""
        if approved and not self._check_response_mac(response, keys):
            approved, note = False, "response MAC does not verify"
        tag_91 = emv.decode_field_55(response["55"]).get("91") if "55" in response else None
        if approved and soft is not None and icc is not None and tag_91 is not None \
                and not soft.verify_issuer_authentication(icc, tag_91):
            approved, note = False, "card/issuer mismatch: the ARPC does not verify"
        if note:  # the host approved but the terminal cannot: undo it at the host
            self._reverse_later(journal_id, note, rrn=response.get("37"))
            self.drain()
            return Outcome(False, code39, f"NOT COMPLETED — {note}", amount_minor, self.config.currency,
                           rrn=response.get("37"), journal_id=journal_id)
        with self.store.transaction() as db:
            self.store.update_entry(db, journal_id, self._now(), status="approved" if approved else "declined",
                                    response_code=code39, approval_code=response.get("38"), rrn=response.get("37"))
        balance = _balance_from_field_54(response.get("54"))
        return Outcome(approved, code39, RESPONSE_TEXT.get(code39, code39), amount_minor, self.config.currency,
                       approval_code=response.get("38"), rrn=response.get("37"), journal_id=journal_id,
                       balance_minor=balance)

    def _reverse_later(self, journal_id: int, note: str, rrn: str | None = None) -> None:
        with self.store.transaction() as db:
            self.store.update_entry(db, journal_id, self._now(), status="reversal_pending", note=note, rrn=rrn)
            stan, dt = self._identity(db)
            self.store.queue_reversal(db, journal_id, stan, dt, self._now())

    def _offline(self, journal_id: int, soft: SoftCard, card: CardProfile, decision: Decision,
                 fields: dict[str, str], amount_minor: int) -> Outcome:
        entry = self.store.entry(journal_id)
        offline = decide(entry.entry or "chip", amount_minor, self.limits(), host_reachable=False,  # type: ignore[union-attr]
                         card_interfaces=card.interfaces, is_phone=card.is_phone, chip_failures=0,
                         service_code=card.service_code)
        if offline.action != "offline_approve" or entry is None or entry.kind != "purchase":
            with self.store.transaction() as db:
                self.store.update_entry(db, journal_id, self._now(), status="declined", response_code="91",
                                        note="host unavailable")
            return Outcome(False, "91", "HOST UNAVAILABLE", amount_minor, self.config.currency, journal_id=journal_id)
        tc = soft.generate_ac(self._terminal_data(amount_minor, "000000", offline), "TC", cvm=offline.cvm)
        advice = {k: v for k, v in fields.items() if k not in ("52", "62", "64", "128")}
        advice |= {"55": emv.encode_field_55(tc), "22": advice["22"][:2] + "2"}
        with self.store.transaction() as db:
            stan, dt = self._identity(db)
            self.store.update_entry(db, journal_id, self._now(), status="offline_pending", offline=1,
                                    response_code="Y1", note="approved offline; stored for forwarding")
            self.store.queue_advice(db, journal_id, self._base_fields("0220", stan, dt) | advice, self._now())
        return Outcome(True, "Y1", "APPROVED OFFLINE", amount_minor, self.config.currency, offline=True,
                       journal_id=journal_id)

    def refund(self, card: CardProfile, amount_minor: int, entry: str, *, rrn: str | None = None,
               pin: str | None = None) -> Outcome:
        if type(amount_minor) is not int or amount_minor <= 0:
            raise TerminalError("amount must be a positive integer of minor units")
        decision = Decision("online", "ARQC", "online_pin" if pin else "no_cvm", bytes(5), "refund")
        extra = {"37": rrn} if rrn else {}
        return self._card_request("0200", "200000", "refund", card, amount_minor, entry, decision, pin, extra)

    def balance(self, card: CardProfile, entry: str, *, pin: str | None = None) -> Outcome:
        decision = Decision("online", "ARQC", "online_pin" if pin else "no_cvm", bytes(5), "balance")
        return self._card_request("0200", "310000", "balance", card, 0, entry, decision, pin)

    def void(self, journal_id: int) -> Outcome:
        """Reverse an approved transaction of the open batch (a 0400 naming it)."""
        entry = self.store.entry(journal_id)
        pending_wallet = entry is not None and entry.status == "pending" and entry.entry in WALLET_ENTRIES
        if entry is None or not (entry.status == "approved" or pending_wallet) \
                or entry.kind not in ("purchase", "preauth", "refund"):
            raise TerminalError(f"journal entry {journal_id} is not an approved sale, pre-auth or refund, "
                                "nor a pending wallet payment")
        self._reverse_later(journal_id, "voided by the cashier", rrn=entry.rrn)
        sent = self.drain()
        done = self.store.entry(journal_id)
        ok = done is not None and done.status == "reversed"
        return Outcome(ok, "00" if ok else "", "VOIDED" if ok else "VOID QUEUED (host unreachable)",
                       entry.amount_minor, entry.currency, journal_id=journal_id, extra={"queued": sent})

    def complete(self, journal_id: int, amount_minor: int) -> Outcome:
        """0220 completion of an approved pre-authorization, for at most its amount."""
        entry = self.store.entry(journal_id)
        if entry is None or entry.kind != "preauth" or entry.status != "approved":
            raise TerminalError(f"journal entry {journal_id} is not an approved pre-authorization")
        if amount_minor <= 0 or amount_minor > entry.amount_minor:
            raise TerminalError(f"completion must be 1..{entry.amount_minor} minor units")
        original = iso8583.OriginalData(entry.mti, entry.stan, entry.transmission_dt, "0", "0")
        with self.store.transaction() as db:
            stan, dt = self._identity(db)
            fields = self._base_fields("0220", stan, dt) | {
                "3": "000000", "4": iso8583.format_amount(amount_minor),
                "90": iso8583.format_original_data_elements(original)}
            raw, keys = self._build(db, fields)
            completion_id = self.store.add_entry(
                db, self._now(), kind="completion", mti="0220", stan=stan, transmission_dt=dt,
                processing_code="000000", amount_minor=amount_minor, currency=entry.currency, card_id=entry.card_id,
                pan_masked=entry.pan_masked, entry=entry.entry, cvm=entry.cvm, aid=entry.aid,
                batch_no=self.store.batch_no(), status="sending", original_id=entry.id)
        try:
            response = self.link.exchange(raw)
        except (HostUnreachable, NoAnswer) as error:
            self._reverse_later(completion_id, f"no answer: {error}")
            return Outcome(False, "", "NOT COMPLETED", amount_minor, entry.currency, journal_id=completion_id)
        return self._record(completion_id, response, keys, None, None, amount_minor)

    # --- wallet payments (docs/iso8583.md §5.8) ------------------------------------

    def pay_code(self, code: str, amount_minor: int) -> Outcome:
        """The buyer's payment code, scanned: 0200 with field 22 = 032 and the code in field 2.
        00 paid; 09 waits for the buyer's confirmation (then `await_wallet`)."""
        if not isinstance(code, str) or len(code) != PAYMENT_CODE_DIGITS or not luhn_valid(code):
            raise TerminalError(f"payment code: must be {PAYMENT_CODE_DIGITS} digits with a valid check digit "
                                "(rescan it)")
        return self._wallet_request(amount_minor, {"2": code}, mask_pan(code), "paycode")

    def collect_qr(self, amount_minor: int) -> Outcome:
        """Ask the host for a collection code (0200, 22 = 032, no field 2): 09 with the EMVCo
        payload (``extra["qr_payload"]``) to show the buyer; then `await_wallet`."""
        return self._wallet_request(amount_minor, {}, "QR", "qr")

    def _wallet_request(self, amount_minor: int, fields: dict[str, str], shown: str, entry: str) -> Outcome:
        if type(amount_minor) is not int or amount_minor <= 0:
            raise TerminalError("amount must be a positive integer of minor units")
        fields = {"3": "000000", "4": iso8583.format_amount(amount_minor), "22": WALLET_ENTRY_MODE, **fields}
        with self.store.transaction() as db:
            stan, dt = self._identity(db)
            raw, keys = self._build(db, self._base_fields("0200", stan, dt) | fields)
            journal_id = self.store.add_entry(
                db, self._now(), kind="purchase", mti="0200", stan=stan, transmission_dt=dt,
                processing_code="000000", amount_minor=amount_minor, currency=self.config.currency, card_id=None,
                pan_masked=shown, entry=entry, cvm=None, aid=None, batch_no=self.store.batch_no(), status="sending",
            )
        try:
            response = self.link.exchange(raw)
        except HostUnreachable:  # nothing was sent: no offline approval for a wallet
            with self.store.transaction() as db:
                self.store.update_entry(db, journal_id, self._now(), status="declined", response_code="91",
                                        note="host unavailable")
            return Outcome(False, "91", "HOST UNAVAILABLE", amount_minor, self.config.currency, journal_id=journal_id)
        except NoAnswer as error:
            self._reverse_later(journal_id, f"no answer: {error}")
            self.drain()
            return Outcome(False, "", "NOT COMPLETED — no answer from the host; the payment is being cancelled",
                           amount_minor, self.config.currency, journal_id=journal_id)
        return self._record_wallet(journal_id, response, keys, amount_minor)

    def _record_wallet(self, journal_id: int, response: dict[str, str], keys: WorkingKeys | None,
                       amount_minor: int) -> Outcome:
        code39 = response.get("39", "96")
        if code39 in ("00", "09") and not self._check_response_mac(response, keys):
            # An unsigned payload could send the buyer's money elsewhere: never show it.
            self._reverse_later(journal_id, "response MAC does not verify", rrn=response.get("37"))
            self.drain()
            return Outcome(False, code39, "NOT COMPLETED — response MAC does not verify", amount_minor,
                           self.config.currency, rrn=response.get("37"), journal_id=journal_id)
        status = {"00": "approved", "09": "pending"}.get(code39, "declined")
        with self.store.transaction() as db:
            self.store.update_entry(db, journal_id, self._now(), status=status, response_code=code39,
                                    approval_code=response.get("38"), rrn=response.get("37"),
                                    note=response.get("44", ""))
        outcome = self._wallet_outcome(journal_id, response)
        if "63" in response and status == "pending":
            outcome.extra["qr_payload"] = response["63"]
        return outcome

    def _wallet_outcome(self, journal_id: int, response: dict[str, str] | None = None) -> Outcome:
        entry = self.store.entry(journal_id)
        if entry is None:
            raise TerminalError(f"no journal entry {journal_id}")
        code39 = (response or {}).get("39") or entry.response_code or ""
        detail = (response or {}).get("44") or (entry.note if entry.note.isalnum() else "")
        if entry.status == "reversed":  # the 0410 answered the cancel; the original's code no longer applies
            code39 = ""
            message = f"CANCELLED — {entry.note}" if entry.note else "CANCELLED"
        else:
            message = WALLET_DETAIL_TEXT.get(detail) or RESPONSE_TEXT.get(code39, code39)
        extra: dict[str, object] = {"status": entry.status, "entry": entry.entry, "account": entry.pan_masked}
        if detail:
            extra["wallet_detail"] = detail
        return Outcome(entry.status == "approved", code39, message, entry.amount_minor, entry.currency,
                       approval_code=entry.approval_code, rrn=entry.rrn, journal_id=journal_id, extra=extra)

    def _wallet_entry(self, journal_id: int) -> JournalEntry:
        entry = self.store.entry(journal_id)
        if entry is None or entry.entry not in WALLET_ENTRIES:
            raise TerminalError(f"journal entry {journal_id} is not a wallet payment")
        return entry

    def wallet_status(self, journal_id: int) -> Outcome:
        """One 0600 for a pending wallet payment; the journal follows a final answer. A payment
        that is no longer pending is reported from the journal, without asking the host."""
        entry = self._wallet_entry(journal_id)
        if entry.status != "pending":
            return self._wallet_outcome(journal_id)
        original = iso8583.OriginalData(entry.mti, entry.stan, entry.transmission_dt, "0", "0")
        with self.store.transaction() as db:
            stan, dt = self._identity(db)
            raw, keys = self._build(db, self._base_fields("0600", stan, dt) | {
                "3": entry.processing_code, "4": iso8583.format_amount(entry.amount_minor),
                "90": iso8583.format_original_data_elements(original)})
        try:
            response = self.link.exchange(raw)
        except (HostUnreachable, NoAnswer) as error:
            outcome = self._wallet_outcome(journal_id)
            outcome.message = f"STATUS UNKNOWN — {error}; still pending"
            return outcome
        code39 = response.get("39", "96")
        trusted = self._check_response_mac(response, keys)
        if code39 in _STATUS_NOT_FINAL or not trusted:
            outcome = self._wallet_outcome(journal_id, {"39": "09", **({"44": response["44"]} if "44" in response
                                                                        else {})})
            if not trusted:
                outcome.message = "STATUS UNKNOWN — response MAC does not verify; still pending"
            elif code39 != "09":
                outcome.message = f"STATUS UNKNOWN — {RESPONSE_TEXT.get(code39, code39)}; still pending"
            return outcome
        approved = code39 == "00"
        with self.store.transaction() as db:
            self.store.update_entry(db, journal_id, self._now(), status="approved" if approved else "declined",
                                    response_code=code39, approval_code=response.get("38"),
                                    note=response.get("44", ""))
        return self._wallet_outcome(journal_id, response)

    def await_wallet(self, journal_id: int, timeout_s: float, *, reason: str = "buyer did not pay",
                     stop: threading.Event | None = None, monotonic: Callable[[], float] = time.monotonic,
                     interval_s: float = WALLET_POLL_INTERVAL_S) -> Outcome:
        """Poll (0600) until the wallet payment is paid or refused; at ``timeout_s``, or when
        ``stop`` is set (the cashier gave up), cancel it (0400) — a payment the buyer makes
        after that is refunded by the wallet."""
        if not 0 < timeout_s <= WALLET_TIMEOUT_S_MAX:
            raise TerminalError(f"timeout must be between 0 and {WALLET_TIMEOUT_S_MAX:.0f} seconds")
        stop = stop or threading.Event()
        deadline = monotonic() + timeout_s
        outcome = self._wallet_outcome(journal_id)
        while outcome.extra.get("status") == "pending":
            left = deadline - monotonic()
            if left <= 0:
                return self.cancel_wallet(journal_id, reason)
            if stop.wait(min(interval_s, left)):
                return self.cancel_wallet(journal_id, "by the cashier")
            outcome = self.wallet_status(journal_id)
        return outcome

    def cancel_wallet(self, journal_id: int, reason: str) -> Outcome:
        """0400 for a pending (or paid) wallet payment: the wallet closes or refunds it."""
        entry = self._wallet_entry(journal_id)
        if entry.status not in ("pending", "approved"):
            return self._wallet_outcome(journal_id)
        self._reverse_later(journal_id, reason, rrn=entry.rrn)
        self.drain()
        done = self.store.entry(journal_id)
        if done is not None and done.status == "reversed":
            with self.store.transaction() as db:
                self.store.update_entry(db, journal_id, self._now(), note=reason)
            return self._wallet_outcome(journal_id)
        return Outcome(False, "", f"CANCEL QUEUED — {reason} (host unreachable)", entry.amount_minor,
                       entry.currency, rrn=entry.rrn, journal_id=journal_id, extra={"status": "reversal_pending"})

    # --- end of day ---------------------------------------------------------------

    def totals(self) -> dict[str, int]:
        """The open batch: debits = approved sales and completions, credits = approved refunds."""
        entries = [e for e in self.store.journal(self.store.batch_no()) if e.status == "approved"]
        debits = [e for e in entries if e.kind in ("purchase", "completion")]
        credits = [e for e in entries if e.kind == "refund"]
        return {"credits_count": len(credits), "debits_count": len(debits),
                "credits_minor": sum(e.amount_minor for e in credits),
                "debits_minor": sum(e.amount_minor for e in debits)}

    def settle(self) -> Outcome:
        """Drain the queues, ask after pending wallet payments, then 0500 with the batch totals;
        00 closes the batch."""
        self.drain()
        waiting = [e for e in self.store.journal(self.store.batch_no())
                   if e.status == "pending" and e.entry in WALLET_ENTRIES]
        for entry in waiting[:WALLET_SETTLE_STATUS_MAX]:
            self.wallet_status(entry.id)
        totals = self.totals()
        with self.store.transaction() as db:
            stan, dt = self._identity(db)
            fields = self._base_fields("0500", stan, dt) | {
                "74": iso8583.format_count(totals["credits_count"], "74"),
                "76": iso8583.format_count(totals["debits_count"], "76"),
                "86": iso8583.format_amount(totals["credits_minor"], "86"),
                "88": iso8583.format_amount(totals["debits_minor"], "88")}
            raw, _keys = self._build(db, fields)
        try:
            response = self.link.exchange(raw)
        except (HostUnreachable, NoAnswer) as error:
            return Outcome(False, "91", str(error), totals["debits_minor"], self.config.currency, extra=totals)
        code39 = response.get("39", "96")
        host = {name: int(response[f]) for name, f in
                (("credits_count", "74"), ("debits_count", "76"), ("credits_minor", "86"), ("debits_minor", "88"))
                if f in response}
        extra: dict[str, object] = {"terminal_totals": totals, "host_totals": host or totals}
        if code39 == "00":
            self.store.close_batch()
        else:  # 95: show what the terminal counted, to compare with the host's books
            extra["batch_transactions"] = [journal_row(e) for e in self.store.journal(self.store.batch_no())]
        return Outcome(code39 == "00", code39, RESPONSE_TEXT.get(code39, code39), totals["debits_minor"],
                       self.config.currency, extra=extra)


def _balance_from_field_54(value: str | None) -> int | None:
    if not value:
        return None
    try:
        amounts = iso8583.parse_additional_amounts(value)
    except iso8583.MessageError:
        return None
    for amount in amounts:
        if amount.amount_type == "02":
            return amount.amount_minor if amount.sign == "C" else -amount.amount_minor
    return None


def journal_row(entry: JournalEntry) -> dict[str, object]:
    return {
        "journal_id": entry.id, "kind": entry.kind, "status": entry.status, "amount_minor": entry.amount_minor,
        "currency": entry.currency, "pan": entry.pan_masked, "entry": entry.entry, "response_code": entry.response_code,
        "approval_code": entry.approval_code, "rrn": entry.rrn, "offline": entry.offline, "stan": entry.stan,
        "batch_no": entry.batch_no, "note": entry.note, "time": entry.created_at,
    }
