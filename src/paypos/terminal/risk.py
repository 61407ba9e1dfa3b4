"""Terminal risk management for the software terminal: pure decisions, no I/O.

:func:`decide` takes how the card is presented, the amount and the terminal's limits (the
sandbox terminal record) and answers with a :class:`Decision`: go online, approve offline,
decline, or refuse the presentation; which cryptogram to ask the card for; which cardholder
verification to perform; and the Terminal Verification Results (95) to send.

The rules (issue 4, item 3):

- contactless: above the contactless transaction limit the tap is refused ("insert or swipe
  card"); above the contactless CVM limit a card needs online PIN and a phone its own
  CDCVM; at or under it, no CVM (UnionPay QuickPass style). Contactless always goes online.
- chip: online PIN, online (ARQC). With the host unreachable, at or under the floor limit
  the sale is approved offline (TC, stored and forwarded as a 0220 advice) with a signature,
  since an online PIN cannot be checked offline; above it, it is declined "host unavailable"
  and the card is asked for an AAC.
- swipe: a chip card (service code 2xx or 6xx, ISO/IEC 7813) only as fallback after
  ``chip_failures_before_fallback`` failed chip reads, else "insert chip card"; online PIN.
- manual: key entry, signature, online.

Every limit is inclusive: it is the largest amount allowed without its consequence, so the
consequence starts strictly above it. That is how issue 4 ("no PIN under the limit"), the
sandbox ("CVM limit CNY 1,000.00", QuickPass's no PIN up to and including 1,000 yuan) and the
host read them (issue 3: no CVM needed while amount <= CVM limit, ``networks/issuer.py``).
The EMV texts trigger at equality instead: Book 3 section 10.6.1 sets "transaction exceeds
floor limit" when the amount is equal to or greater than the floor limit, and Contactless
Book B (Entry Point) requirements 3.1.1.5 and 3.1.1.8 use "greater than or equal to" for the
contactless transaction and CVM required limits. Only an amount exactly at a limit differs.

TVR bits are EMV 4.4 Book 3 Annex C5 (table 46), written (byte index from 0, mask) next to
the 1-based "byte n, bit m" the book uses.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from paypos import limits as _limits
from paypos.protocol.errors import KeepsFields
from paypos.terminal.card import Cvm, CryptogramType

__all__ = [
    "CHIP_FAILURES_BEFORE_FALLBACK_DEFAULT",
    "ENTRY_MODES",
    "HOST_UNAVAILABLE",
    "INSERT_CHIP",
    "INSERT_OR_SWIPE",
    "TVR_OFFLINE_DATA_AUTHENTICATION_NOT_PERFORMED",
    "TVR_ONLINE_CVM_CAPTURED",
    "TVR_TRANSACTION_EXCEEDS_FLOOR_LIMIT",
    "TVR_ISSUER_AUTHENTICATION_FAILED",
    "Action",
    "Decision",
    "Entry",
    "RiskInputError",
    "TerminalLimits",
    "TvrBit",
    "decide",
    "tvr_has",
    "tvr_with",
]

Entry = Literal["chip", "contactless", "swipe", "manual"]
Action = Literal["online", "offline_approve", "decline", "refuse"]
ENTRY_MODES: tuple[str, ...] = get_args(Entry)
_ACTIONS: frozenset[str] = frozenset(get_args(Action))
_CRYPTOGRAMS: frozenset[str | None] = frozenset({*get_args(CryptogramType), None})
_CVMS: frozenset[str | None] = frozenset({*get_args(Cvm), None})
_CARD_INTERFACES = frozenset({"chip", "contactless", "magstripe"})
_INTERFACE_FOR_ENTRY: Mapping[str, str] = {"chip": "chip", "contactless": "contactless", "swipe": "magstripe"}
# ISO/IEC 7813 service code, first digit: 2 (international) or 6 (national) = chip card.
_CHIP_SERVICE_CODE_FIRST_DIGITS = ("2", "6")
_TVR_BYTES = 5
CHIP_FAILURES_BEFORE_FALLBACK_DEFAULT = 3

TvrBit = tuple[int, int]
# Byte 1 b8: this terminal holds no CA public keys and the soft cards' AIP offers no
# SDA/DDA/CDA, so offline data authentication is never performed (Book 3 section 10.3).
TVR_OFFLINE_DATA_AUTHENTICATION_NOT_PERFORMED: TvrBit = (0, 0x80)
# Byte 3 b3: "Online CVM captured" (EMV 4.3: "Online PIN entered").
TVR_ONLINE_CVM_CAPTURED: TvrBit = (2, 0x04)
# Byte 4 b8: "Transaction exceeds floor limit" (Book 3 section 10.6.1).
TVR_TRANSACTION_EXCEEDS_FLOOR_LIMIT: TvrBit = (3, 0x80)
# Byte 5 b7: "Issuer authentication failed" (Book 3 section 10.9), for the terminal to set
# when the ARPC in tag 91 does not verify.
TVR_ISSUER_AUTHENTICATION_FAILED: TvrBit = (4, 0x40)

INSERT_OR_SWIPE = "insert or swipe card"
INSERT_CHIP = "insert chip card"
HOST_UNAVAILABLE = "host unavailable"


class RiskInputError(KeepsFields, ValueError):
    """An input to risk management broke a rule; ``field`` names it ("entry", ...)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def tvr_with(*bits: TvrBit, tvr: bytes = bytes(_TVR_BYTES)) -> bytes:
    """``tvr`` (5 bytes, zero by default) with each of ``bits`` set."""
    out = bytearray(tvr)
    if len(out) != _TVR_BYTES:
        raise RiskInputError("95: TVR must be 5 bytes", field="95")
    for index, mask in bits:
        out[index] |= mask
    return bytes(out)


def tvr_has(tvr: bytes, bit: TvrBit) -> bool:
    """True when ``bit`` is set in the 5-byte ``tvr``."""
    index, mask = bit
    return bool(tvr[index] & mask)


def _require_count(value: object, field: str, minimum: int = 0) -> int:
    if type(value) is not int or value < minimum:
        raise RiskInputError(f"{field}: must be an integer of at least {minimum}", field=field)
    return value


@dataclass(frozen=True)
class TerminalLimits:
    """A terminal's risk limits in minor units of its currency (sandbox terminal record)."""

    floor_limit_minor: int
    contactless_txn_limit_minor: int
    contactless_cvm_limit_minor: int
    chip_failures_before_fallback: int = CHIP_FAILURES_BEFORE_FALLBACK_DEFAULT

    def __post_init__(self) -> None:
        for name in ("floor_limit_minor", "contactless_txn_limit_minor", "contactless_cvm_limit_minor"):
            _require_count(getattr(self, name), name)
        _require_count(self.chip_failures_before_fallback, "chip_failures_before_fallback", 1)

    @classmethod
    def from_sandbox(cls, record: Mapping[str, object]) -> TerminalLimits:
        """From one object of ``paypos sandbox terminals --json``."""
        if not isinstance(record, Mapping):
            raise RiskInputError("terminal: must be a JSON object", field="terminal")
        names = ("floor_limit_minor", "contactless_txn_limit_minor", "contactless_cvm_limit_minor")
        return cls(*(_require_count(record.get(name), name) for name in names))


@dataclass(frozen=True)
class Decision:
    """What the terminal does with this presentation.

    ``cryptogram`` is what to ask the card for in GENERATE AC (None when no card
    cryptogram is involved); ``cvm`` the cardholder verification to perform (None when the
    sale goes no further); ``fallback`` marks a magnetic stripe read of a chip card.
    """

    action: Action
    cryptogram: CryptogramType | None
    cvm: Cvm | None
    tvr: bytes
    reason: str
    fallback: bool = False

    def __post_init__(self) -> None:
        if self.action not in _ACTIONS or self.cryptogram not in _CRYPTOGRAMS or self.cvm not in _CVMS:
            raise ValueError(f"Decision: unknown action, cryptogram or cvm: {self!r}")
        if not isinstance(self.tvr, bytes) or len(self.tvr) != _TVR_BYTES:
            raise ValueError("Decision: tvr must be 5 bytes")


# --- inputs ----------------------------------------------------------------------------------


def _require_entry(entry: object) -> str:
    if entry not in ENTRY_MODES:
        raise RiskInputError(f"entry: must be one of {', '.join(ENTRY_MODES)}, got {entry!r}", field="entry")
    return str(entry)


def _require_amount(amount_minor: object) -> int:
    if type(amount_minor) is not int or not 0 <= amount_minor <= _limits.iso_amount_minor_max:
        raise RiskInputError(
            f"amount_minor: must be an integer of minor units, 0-{_limits.iso_amount_minor_max}",
            field="amount_minor",
        )
    return amount_minor


def _require_interfaces(entry: str, card_interfaces: object, is_phone: bool) -> frozenset[str]:
    if isinstance(card_interfaces, str) or not isinstance(card_interfaces, Collection):
        raise RiskInputError("card_interfaces: must be a collection of interface names", field="card_interfaces")
    interfaces = frozenset(card_interfaces)
    if not interfaces or not _CARD_INTERFACES.issuperset(interfaces):
        raise RiskInputError(f"card_interfaces: must name some of {sorted(_CARD_INTERFACES)}", field="card_interfaces")
    needed = _INTERFACE_FOR_ENTRY.get(entry)
    if needed is not None and needed not in interfaces:
        raise RiskInputError(f"entry: the card has no {needed} interface for a {entry} read", field="entry")
    if entry == "manual" and is_phone:
        raise RiskInputError("entry: a phone wallet has no card number to key in", field="entry")
    return interfaces


def _require_bool(value: object, field: str) -> bool:
    if type(value) is not bool:
        raise RiskInputError(f"{field}: must be True or False", field=field)
    return value


def _is_chip_card(service_code: object, interfaces: frozenset[str]) -> bool:
    if service_code is None:
        return "chip" in interfaces
    if not isinstance(service_code, str) or len(service_code) != 3 or not service_code.isascii() \
            or not service_code.isdigit():
        raise RiskInputError("service_code: must be 3 digits (ISO/IEC 7813)", field="service_code")
    return service_code.startswith(_CHIP_SERVICE_CODE_FIRST_DIGITS)


# --- rules -----------------------------------------------------------------------------------


def _emv_tvr(amount_minor: int, limits: TerminalLimits, *bits: TvrBit) -> bytes:
    over_floor = (TVR_TRANSACTION_EXCEEDS_FLOOR_LIMIT,) if amount_minor > limits.floor_limit_minor else ()
    return tvr_with(TVR_OFFLINE_DATA_AUTHENTICATION_NOT_PERFORMED, *over_floor, *bits)


def _contactless(amount_minor: int, limits: TerminalLimits, host_reachable: bool, is_phone: bool) -> Decision:
    if amount_minor > limits.contactless_txn_limit_minor:
        return Decision("refuse", None, None, bytes(_TVR_BYTES), INSERT_OR_SWIPE)
    if not host_reachable:
        return Decision("decline", None, None, _emv_tvr(amount_minor, limits), HOST_UNAVAILABLE)
    if amount_minor <= limits.contactless_cvm_limit_minor:
        return Decision("online", "ARQC", "no_cvm", _emv_tvr(amount_minor, limits),
                        "contactless at or under the CVM limit: no cardholder verification")
    if is_phone:
        return Decision("online", "ARQC", "cdcvm", _emv_tvr(amount_minor, limits),
                        "contactless above the CVM limit: the phone verifies the cardholder (CDCVM)")
    return Decision("online", "ARQC", "online_pin", _emv_tvr(amount_minor, limits, TVR_ONLINE_CVM_CAPTURED),
                    "contactless above the CVM limit: online PIN")


def _chip(amount_minor: int, limits: TerminalLimits, host_reachable: bool) -> Decision:
    if host_reachable:
        return Decision("online", "ARQC", "online_pin", _emv_tvr(amount_minor, limits, TVR_ONLINE_CVM_CAPTURED),
                        "chip: online authorization with online PIN")
    if amount_minor > limits.floor_limit_minor:
        return Decision("decline", "AAC", None, _emv_tvr(amount_minor, limits), HOST_UNAVAILABLE)
    return Decision("offline_approve", "TC", "signature", _emv_tvr(amount_minor, limits),
                    "host unavailable: approved offline at or under the floor limit, to be forwarded")


def _swipe(limits: TerminalLimits, host_reachable: bool, chip_card: bool, chip_failures: int) -> Decision:
    if chip_card and chip_failures < limits.chip_failures_before_fallback:
        return Decision("refuse", None, None, bytes(_TVR_BYTES), INSERT_CHIP)
    if not host_reachable:
        return Decision("decline", None, None, bytes(_TVR_BYTES), HOST_UNAVAILABLE, fallback=chip_card)
    reason = f"chip unreadable {chip_failures} times: magnetic stripe fallback" if chip_card else "magnetic stripe"
    return Decision("online", None, "online_pin", bytes(_TVR_BYTES), reason, fallback=chip_card)


def _manual(host_reachable: bool) -> Decision:
    if not host_reachable:
        return Decision("decline", None, None, bytes(_TVR_BYTES), HOST_UNAVAILABLE)
    return Decision("online", None, "signature", bytes(_TVR_BYTES), "key-entered card: signature")


def decide(
    entry: Entry,
    amount_minor: int,
    limits: TerminalLimits,
    *,
    host_reachable: bool,
    card_interfaces: Collection[str],
    is_phone: bool,
    chip_failures: int,
    service_code: str | None = None,
) -> Decision:
    """Terminal risk management for one presentation of a card (see the module docstring).

    ``card_interfaces`` are the card's ("chip", "contactless", "magstripe"); ``service_code``
    is track 2's, when the terminal has read it, and otherwise the card counts as a chip card
    when it has a chip interface. Bad input raises :class:`RiskInputError`: an unknown entry
    mode, an amount outside 0..``limits.iso_amount_minor_max``, a card without the interface
    the entry mode needs, a phone keyed in by hand.
    """
    entry_mode = _require_entry(entry)
    amount = _require_amount(amount_minor)
    if not isinstance(limits, TerminalLimits):
        raise RiskInputError("limits: must be a TerminalLimits", field="limits")
    reachable, phone = _require_bool(host_reachable, "host_reachable"), _require_bool(is_phone, "is_phone")
    interfaces = _require_interfaces(entry_mode, card_interfaces, phone)
    failures = _require_count(chip_failures, "chip_failures")
    chip_card = _is_chip_card(service_code, interfaces)
    if entry_mode == "contactless":
        return _contactless(amount, limits, reachable, phone)
    if entry_mode == "chip":
        return _chip(amount, limits, reachable)
    if entry_mode == "swipe":
        return _swipe(limits, reachable, chip_card, failures)
    return _manual(reachable)
