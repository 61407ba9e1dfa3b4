"""The card side of EMV for the software card reader: a sandbox card that answers GENERATE AC.

A :class:`SoftCard` is one sandbox chip card as a reference terminal sees it: it keeps its own
Application Transaction Counter (9F36) in an :class:`AtcStore`, computes its application
cryptogram (9F26) with Visa CVN 10 or CVN 18 (:mod:`paypos.protocol.emv`), and returns the
field 55 data elements the acquiring host of issue 3 verifies. It also checks the issuer's
answer (tag 91, the ARPC) and, for the magnetic stripe, hands out track 2.

Standards and conventions, each cited where it is used:

- EMV 4.4 Book 3 section 6.5.5 table 15: Cryptogram Information Data (9F27) bits 8-7,
  '00' AAC, '01' TC, '10' ARQC.
- EMV 4.4 Book 3 Annex C1: Application Interchange Profile (82) byte 1 b5 "cardholder
  verification is supported", b4 "terminal risk management is to be performed", b3 "issuer
  authentication is supported" (by EXTERNAL AUTHENTICATE, section 10.9).
- EMV 4.4 Book 3 Annex C3 table 43 (CVM codes) and table 44 (conditions); Book 4 Annex A4
  (CVM Results, 9F34: code performed, condition, result '00' unknown / '02' successful).
- EMV Contactless Book C-2 (Kernel 2) CVM.4: consumer device CVM reported as '01 00 02', the
  convention :func:`paypos.protocol.emv.cvm_performed` reads.
- Visa Integrated Circuit Card Specification (VIS) 1.5 Appendix A, Issuer Application Data
  formats 0/1: length '06', derivation key index, cryptogram version, then the Card
  Verification Results (CVR): byte 1 its length '03'; byte 2 b8-7 the cryptogram returned in
  the second GENERATE AC ('10' = not requested), b6-5 the one returned in the first
  ('00' AAC, '01' TC, '10' ARQC). The layouts are those the paypos host verifies
  (``SoftTerminal.icc``): CVN 10 ``06 01 0A`` + CVR, CVN 18 ``06 01 12`` + CVR + 25 zero bytes.

Nothing here logs or prints a PAN: :class:`CardProfile`'s ``repr`` masks it (PCI DSS v4.0
requirement 3.4.1) and hides the PIN, CVV2 and key. Errors name the field at fault and never
echo card data.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal, Protocol, get_args

from paypos import limits
from paypos.protocol import emv
from paypos.protocol.card import (
    CardDataError,
    mask_pan,
    parse_track2,
    validate_expiry,
    validate_pan,
    validate_service_code,
)
from paypos.protocol.errors import KeepsFields

__all__ = [
    "ATC_MAX",
    "AID_BY_SCHEME",
    "AtcStore",
    "CardDataError",
    "CardProfile",
    "CryptogramType",
    "Cvm",
    "InMemoryAtcStore",
    "SoftCard",
    "SoftCardError",
    "SqliteAtcStore",
    "TerminalData",
    "swipe",
    "tag_9f10_visa_iad",
    "tag_9f34_cvm_results",
    "track2_equivalent",
]

CryptogramType = Literal["ARQC", "TC", "AAC"]
Cvm = Literal["online_pin", "cdcvm", "no_cvm", "signature"]
TransactionType = Literal["00", "20", "31"]  # 9C: purchase, refund, balance inquiry
CardInterface = Literal["chip", "contactless", "magstripe"]

# The ATC is 2 bytes binary (EMV 4.4 Book 3 Annex A, tag 9F36); a card whose counter reaches
# the top can authorise nothing more.
ATC_MAX = 0xFFFF
# Application identifiers (tag 84) of the schemes' debit/credit applications: Visa
# A0000000031010, Mastercard A0000000041010, UnionPay debit A000000333010101.
AID_BY_SCHEME: Mapping[str, str] = {
    "visa": "A0000000031010",
    "mastercard": "A0000000041010",
    "unionpay": "A000000333010101",
}
_SCHEME_LABELS: Mapping[str, str] = {"visa": "VISA", "mastercard": "MASTERCARD", "unionpay": "UNIONPAY"}
_CARD_INTERFACES: frozenset[str] = frozenset(get_args(CardInterface))
_EMV_INTERFACES = frozenset({"chip", "contactless"})
_CARD_ID_CHARS_MAX = 64
_PIN_DIGITS = range(4, 13)  # ISO 9564-1: 4 to 12 digits
_N12_MAX = 999_999_999_999  # 9F02 / 9F03 are n 12

# 9F27, EMV 4.4 Book 3 table 15.
_CID: Mapping[str, int] = {"ARQC": 0x80, "TC": 0x40, "AAC": 0x00}
# VIS CVR byte 2: b8-7 '10' (second GENERATE AC not requested) | b6-5 first GENERATE AC type.
_CVR_BYTE_2: Mapping[str, int] = {"ARQC": 0xA0, "TC": 0x90, "AAC": 0x80}
_CVR_LENGTH = 0x03
_IAD_LENGTH = 0x06
_IAD_DKI = 0x01
_CVN_18_DISCRETIONARY = bytes(25)
# 82: b5 CVM supported | b4 terminal risk management; CVN 10 cards also take EXTERNAL
# AUTHENTICATE (b3); CVN 18 cards check the ARPC inside the second GENERATE AC instead.
_AIP: Mapping[int, bytes] = {emv.CVN_10: bytes.fromhex("1C00"), emv.CVN_18: bytes.fromhex("1800")}
# 9F34, as a card with the usual CVM list (42 03, 1E 03, 1F 03) reports it: online PIN '42'
# ('02' | b7 "apply succeeding rule if unsuccessful") and signature '1E', both with condition
# '03' (if the terminal supports the CVM) and result '00' unknown (checked later, by the issuer
# or the cashier); no CVM '1F', condition '00' (always), '02' successful; CDCVM Kernel 2's
# '01 00 02'; None '3F 00 00', no CVM performed.
_CVM_RESULTS: Mapping[str | None, bytes] = {
    "online_pin": bytes.fromhex("420300"),
    "signature": bytes.fromhex("1E0300"),
    "no_cvm": bytes.fromhex("1F0002"),
    "cdcvm": bytes.fromhex("010002"),
    None: bytes.fromhex("3F0000"),
}
_TRANSACTION_TYPES: frozenset[str] = frozenset(get_args(TransactionType))
_TAG_ORDER = ("9F26", "9F27", "9F10", "9F37", "9F36", "95", "9A", "9C", "9F02", "5F2A", "82",
              "9F1A", "9F03", "84", "9F34", "5F34")


class SoftCardError(KeepsFields, ValueError):
    """The card cannot do what was asked; ``field`` names why ("cvn", "9F27", "9F36", ...)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


# --- the sandbox card ----------------------------------------------------------------------


def _text(data: Mapping[str, object], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise CardDataError(f"{key}: must be a non-empty string", field=key)
    return value


def _digits(data: Mapping[str, object], key: str, lengths: range) -> str:
    value = _text(data, key)
    if not (value.isascii() and value.isdigit()) or len(value) not in lengths:
        count = f"{lengths.start}" if len(lengths) == 1 else f"{lengths.start}-{lengths.stop - 1}"
        raise CardDataError(f"{key}: must be {count} digits", field=key)
    return value


def _card_id(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= _CARD_ID_CHARS_MAX:
        raise CardDataError(f"id: must be 1-{_CARD_ID_CHARS_MAX} characters", field="id")
    return value


def _cvn(value: object) -> int | None:
    if value is None or (type(value) is int and value in (emv.CVN_10, emv.CVN_18)):
        return value
    raise CardDataError(f"cvn: must be {emv.CVN_10}, {emv.CVN_18} or null", field="cvn")


def _imk_ac(value: object, cvn: int | None) -> bytes | None:
    if cvn is None:
        return None
    if not isinstance(value, str) or len(value) != 32:
        raise CardDataError("imk_ac: a chip card needs a 16-byte key as 32 hex characters", field="imk_ac")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise CardDataError("imk_ac: must be hex characters", field="imk_ac") from None


def _interfaces(value: object) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise CardDataError("interfaces: must be a non-empty list", field="interfaces")
    if not _CARD_INTERFACES.issuperset(value) or len(set(value)) != len(value):
        raise CardDataError(f"interfaces: each once, from {sorted(_CARD_INTERFACES)}", field="interfaces")
    return tuple(value)


def _require_track2_matches(track2: str, pan: str, expiry: str, service_code: str) -> str:
    track = parse_track2(track2)
    if (track.pan, track.expiry, track.service_code) != (pan, expiry, service_code):
        raise CardDataError("track2: PAN, expiry or service code differ from the card's", field="track2")
    return track2


@dataclass(frozen=True, repr=False)
class CardProfile:
    """One card of ``paypos sandbox cards --json`` (docs/sandbox.md), validated.

    ``imk_ac`` is the issuer master key for application cryptograms (None for a card
    without a chip application); ``token_for`` names the funding card of a phone-wallet
    token. ``repr`` masks the PAN and hides the PIN, CVV2, track 2 and key.
    """

    card_id: str
    pan: str
    expiry: str
    psn: str
    track2: str
    service_code: str
    pin: str
    cvv2: str
    cvn: int | None
    imk_ac: bytes | None
    interfaces: tuple[str, ...]
    scheme: str
    currency: str
    behavior: str
    available_minor: int
    funding: str = ""
    token_for: str | None = None

    @classmethod
    def from_sandbox(cls, data: Mapping[str, object]) -> CardProfile:
        """Build a profile from one sandbox card JSON object; :class:`CardDataError` if bad."""
        if not isinstance(data, Mapping):
            raise CardDataError("card: must be a JSON object", field="card")
        pan, expiry = validate_pan(_text(data, "pan")), validate_expiry(_text(data, "expiry"))
        service_code = validate_service_code(_text(data, "service_code"))
        cvn = _cvn(data.get("cvn"))
        available = data.get("available_minor")
        if type(available) is not int:
            raise CardDataError("available_minor: must be an integer of minor units", field="available_minor")
        token_for = data.get("token_for")
        profile = cls(
            card_id=_card_id(data.get("id")), pan=pan, expiry=expiry, psn=_digits(data, "psn", range(2, 3)),
            track2=_require_track2_matches(_text(data, "track2"), pan, expiry, service_code),
            service_code=service_code, pin=_digits(data, "pin", _PIN_DIGITS), cvv2=_digits(data, "cvv2", range(3, 4)),
            cvn=cvn, imk_ac=_imk_ac(data.get("imk_ac"), cvn), interfaces=_interfaces(data.get("interfaces")),
            scheme=_text(data, "scheme"), currency=_digits(data, "currency", range(3, 4)),
            behavior=_text(data, "behavior"), available_minor=available,
            funding=str(data.get("funding") or ""), token_for=token_for if isinstance(token_for, str) else None,
        )
        profile._require_emv_consistency()
        return profile

    def _require_emv_consistency(self) -> None:
        if not _EMV_INTERFACES.intersection(self.interfaces):
            return
        if self.cvn is None:
            raise CardDataError("cvn: a chip or contactless card needs CVN 10 or 18", field="cvn")
        if self.scheme not in AID_BY_SCHEME:
            raise CardDataError(f"scheme: no AID for {self.scheme!r}; known: {sorted(AID_BY_SCHEME)}", field="scheme")

    @property
    def is_phone(self) -> bool:
        """A phone-wallet token (a device PAN bound to a funding card)."""
        return self.token_for is not None

    @property
    def aid(self) -> str | None:
        """Tag 84 as upper-case hex for a chip or contactless card, else None."""
        return AID_BY_SCHEME[self.scheme] if _EMV_INTERFACES.intersection(self.interfaces) else None

    @property
    def application_label(self) -> str | None:
        """Tag 50 style label for receipts, e.g. "VISA DEBIT" (at most 16 characters)."""
        if self.aid is None:
            return None
        return f"{_SCHEME_LABELS[self.scheme]} {self.funding.upper()}".strip()[:16]

    def __repr__(self) -> str:
        return (f"CardProfile(card_id={self.card_id!r}, pan={mask_pan(self.pan)!r}, scheme={self.scheme!r}, "
                f"cvn={self.cvn!r}, interfaces={self.interfaces!r}, phone={self.is_phone})")

    __str__ = __repr__


def track2_equivalent(profile: CardProfile) -> str:
    """Track 2 equivalent data read from the chip or by a tap (ISO 8583 field 35)."""
    if not _EMV_INTERFACES.intersection(profile.interfaces):
        raise SoftCardError(f"card {profile.card_id} has no chip or contactless interface", field="interfaces")
    return profile.track2


def swipe(profile: CardProfile) -> str:
    """The magnetic stripe reader: track 2 as swiped (ISO/IEC 7813), for field 35."""
    if "magstripe" not in profile.interfaces:
        raise SoftCardError(f"card {profile.card_id} has no magnetic stripe", field="interfaces")
    return profile.track2


# --- the Application Transaction Counter -----------------------------------------------------


class AtcStore(Protocol):
    """Where cards keep their ATC: ``next_atc`` returns the next value, persisted, rising."""

    def next_atc(self, card_id: str) -> int: ...


def _require_card_id(card_id: object) -> str:
    if not isinstance(card_id, str) or not 0 < len(card_id) <= _CARD_ID_CHARS_MAX:
        raise SoftCardError(f"card id must be 1-{_CARD_ID_CHARS_MAX} characters", field="card_id")
    return card_id


def _atc_after(current: int) -> int:
    if current >= ATC_MAX:
        raise SoftCardError(f"9F36: the ATC has reached {ATC_MAX}; the card is blocked", field="9F36")
    return current + 1


def _require_atc(atc: object) -> int:
    if type(atc) is not int or not 0 <= atc <= ATC_MAX:
        raise SoftCardError(f"9F36: an ATC is 0-{ATC_MAX}", field="9F36")
    return atc


class InMemoryAtcStore:
    """ATCs in a dict, for tests: thread-safe, gone with the process."""

    def __init__(self) -> None:
        self._atcs: dict[str, int] = {}
        self._lock = threading.Lock()

    def next_atc(self, card_id: str) -> int:
        _require_card_id(card_id)
        with self._lock:
            self._atcs[card_id] = _atc_after(self._atcs.get(card_id, 0))
            return self._atcs[card_id]

    def current_atc(self, card_id: str) -> int:
        """The last ATC handed out (0 before the first)."""
        with self._lock:
            return self._atcs.get(_require_card_id(card_id), 0)

    def advance_to(self, card_id: str, atc_last: int) -> None:
        """Make the next ATC at least ``atc_last + 1`` (e.g. the last one the host saw)."""
        _require_card_id(card_id)
        with self._lock:
            self._atcs[card_id] = max(self._atcs.get(card_id, 0), _require_atc(atc_last))


_SCHEMA = "CREATE TABLE IF NOT EXISTS card_atc (card_id TEXT PRIMARY KEY, atc INTEGER NOT NULL)"
_UPSERT = ("INSERT INTO card_atc (card_id, atc) VALUES (?, ?) "
           "ON CONFLICT (card_id) DO UPDATE SET atc = excluded.atc")


class SqliteAtcStore:
    """ATCs in one small SQLite table (WAL), shared by every process that opens ``path``.

    Each increment is one ``BEGIN IMMEDIATE`` transaction: the write lock is taken before the
    counter is read, so concurrent processes never hand out the same ATC. A connection is
    opened per call, which keeps the store safe across threads and ``fork``.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_ms: int = limits.sqlite_busy_timeout_ms) -> None:
        self.path = Path(path)
        self._timeout_s = busy_timeout_ms / 1000
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as conn:
            conn.execute(_SCHEMA)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with contextlib.closing(sqlite3.connect(self.path, timeout=self._timeout_s, isolation_level=None)) as conn:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _read(conn: sqlite3.Connection, card_id: str) -> int:
        row = conn.execute("SELECT atc FROM card_atc WHERE card_id = ?", (card_id,)).fetchone()
        return int(row[0]) if row else 0

    def next_atc(self, card_id: str) -> int:
        _require_card_id(card_id)
        with self._transaction() as conn:
            atc = _atc_after(self._read(conn, card_id))
            conn.execute(_UPSERT, (card_id, atc))
        return atc

    def current_atc(self, card_id: str) -> int:
        """The last ATC handed out (0 before the first)."""
        _require_card_id(card_id)
        with self._transaction() as conn:
            return self._read(conn, card_id)

    def advance_to(self, card_id: str, atc_last: int) -> None:
        """Make the next ATC at least ``atc_last + 1`` (e.g. the last one the host saw)."""
        _require_card_id(card_id)
        _require_atc(atc_last)
        with self._transaction() as conn:
            conn.execute(_UPSERT, (card_id, max(self._read(conn, card_id), atc_last)))


# --- terminal data ---------------------------------------------------------------------------


def _require_n12(value: object, tag: str) -> int:
    if type(value) is not int or not 0 <= value <= _N12_MAX:
        raise emv.EmvError(f"{tag}: amount must be an integer of minor units, 0-{_N12_MAX}", field=tag)
    return value


def _require_n3(value: object, tag: str, what: str) -> str:
    if not isinstance(value, str) or len(value) != 3 or not (value.isascii() and value.isdigit()):
        raise emv.EmvError(f"{tag}: {what} must be 3 digits (ISO numeric)", field=tag)
    return value


@dataclass(frozen=True)
class TerminalData:
    """What the terminal gives the card for GENERATE AC (its CDOL1 data).

    ``currency`` (5F2A) is ISO 4217 numeric and ``country`` (9F1A) ISO 3166-1 numeric, both 3
    digits; ``transaction_type`` (9C) is "00" purchase, "20" refund or "31" balance inquiry;
    ``tvr`` (95) the 5-byte Terminal Verification Results; ``unpredictable_number`` (9F37) 4
    bytes, or None for the card's random source to draw one.
    """

    amount_minor: int
    currency: str
    country: str
    transaction_date: date
    other_amount_minor: int = 0
    transaction_type: str = "00"
    tvr: bytes = bytes(5)
    unpredictable_number: bytes | None = None

    def __post_init__(self) -> None:
        _require_n12(self.amount_minor, "9F02")
        _require_n12(self.other_amount_minor, "9F03")
        _require_n3(self.currency, "5F2A", "transaction currency")
        _require_n3(self.country, "9F1A", "terminal country")
        if not isinstance(self.transaction_date, date):
            raise emv.EmvError("9A: transaction date must be a datetime.date", field="9A")
        if self.transaction_type not in _TRANSACTION_TYPES:
            raise emv.EmvError(f"9C: transaction type must be one of {sorted(_TRANSACTION_TYPES)}", field="9C")
        if not isinstance(self.tvr, bytes) or len(self.tvr) != 5:
            raise emv.EmvError("95: TVR must be 5 bytes", field="95")
        un = self.unpredictable_number
        if un is not None and (not isinstance(un, bytes) or len(un) != 4):
            raise emv.EmvError("9F37: unpredictable number must be 4 bytes", field="9F37")

    def tags(self, unpredictable_number: bytes) -> dict[str, bytes]:
        """The terminal's data elements, encoded (Book 3 Annex A formats)."""
        return {
            "9F02": bytes.fromhex(f"{self.amount_minor:012d}"),
            "9F03": bytes.fromhex(f"{self.other_amount_minor:012d}"),
            "9F1A": bytes.fromhex("0" + self.country),
            "95": self.tvr,
            "5F2A": bytes.fromhex("0" + self.currency),
            "9A": bytes.fromhex(self.transaction_date.strftime("%y%m%d")),
            "9C": bytes.fromhex(self.transaction_type),
            "9F37": unpredictable_number,
        }


def tag_9f34_cvm_results(cvm: Cvm | None) -> bytes:
    """CVM Results (9F34) for the verification the terminal performed (None: none)."""
    if not (cvm is None or isinstance(cvm, str)) or cvm not in _CVM_RESULTS:
        raise emv.EmvError(f"9F34: cvm must be one of {sorted(k for k in _CVM_RESULTS if k)} or None", field="9F34")
    return _CVM_RESULTS[cvm]


def _require_cryptogram_type(cryptogram_type: object) -> str:
    if cryptogram_type not in _CID:
        raise SoftCardError(f"9F27: cryptogram type must be one of {sorted(_CID)}", field="9F27")
    return str(cryptogram_type)


def tag_9f10_visa_iad(cvn: int, cryptogram_type: CryptogramType) -> bytes:
    """Visa Issuer Application Data (9F10) with a CVR that names ``cryptogram_type``."""
    kind = _require_cryptogram_type(cryptogram_type)
    cvr = bytes([_CVR_LENGTH, _CVR_BYTE_2[kind], 0x00, 0x00])
    if cvn == emv.CVN_10:
        return bytes([_IAD_LENGTH, _IAD_DKI, emv.CVN_10]) + cvr
    if cvn == emv.CVN_18:
        return bytes([_IAD_LENGTH, _IAD_DKI, emv.CVN_18]) + cvr + _CVN_18_DISCRETIONARY
    raise SoftCardError(f"cvn must be {emv.CVN_10} or {emv.CVN_18}", field="cvn")


# --- the card --------------------------------------------------------------------------------


class SoftCard:
    """A sandbox chip card answering GENERATE AC and checking the issuer's ARPC.

    ``random_bytes`` draws the unpredictable number when the terminal supplies none (a real
    random source by default; tests pass their own).
    """

    def __init__(self, profile: CardProfile, atc_store: AtcStore,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        if not isinstance(profile, CardProfile):
            raise SoftCardError("profile must be a CardProfile", field="profile")
        self.profile = profile
        self._atc_store = atc_store
        self._random_bytes = random_bytes

    def _chip(self) -> tuple[int, bytes]:
        cvn, imk = self.profile.cvn, self.profile.imk_ac
        if cvn is None or imk is None:
            raise SoftCardError(f"card {self.profile.card_id} has no chip application", field="cvn")
        return cvn, imk

    def _unpredictable_number(self, terminal_data: TerminalData) -> bytes:
        if terminal_data.unpredictable_number is not None:
            return terminal_data.unpredictable_number
        drawn = self._random_bytes(4)
        if not isinstance(drawn, bytes) or len(drawn) != 4:
            raise emv.EmvError("9F37: the random source must return 4 bytes", field="9F37")
        return drawn

    def generate_ac(self, terminal_data: TerminalData, cryptogram_type: CryptogramType, *,
                    cvm: Cvm | None = None) -> dict[str, bytes]:
        """Field 55 tags for one GENERATE AC: 9F26 over the CDOL data, 9F27, 9F10, a new 9F36.

        ``cvm`` is the verification the terminal performed, reported in 9F34. The card returns
        the cryptogram asked for (it runs no card risk management of its own), and each call
        spends one ATC.
        """
        cvn, imk = self._chip()
        kind = _require_cryptogram_type(cryptogram_type)
        if not isinstance(terminal_data, TerminalData):
            raise SoftCardError("terminal data must be a TerminalData", field="terminal_data")
        tags = terminal_data.tags(self._unpredictable_number(terminal_data))
        tags |= {"82": _AIP[cvn], "84": bytes.fromhex(AID_BY_SCHEME[self.profile.scheme]),
                 "9F34": tag_9f34_cvm_results(cvm), "5F34": bytes.fromhex(self.profile.psn),
                 "9F10": tag_9f10_visa_iad(cvn, kind), "9F27": bytes([_CID[kind]])}
        atc = self._atc_store.next_atc(self.profile.card_id)
        tags["9F36"] = _require_atc(atc).to_bytes(2, "big")
        tags["9F26"] = emv.generate_arqc(cvn, imk, self.profile.pan, self.profile.psn, tags)
        return {tag: tags[tag] for tag in _TAG_ORDER}

    def verify_issuer_authentication(self, tags_sent: Mapping[str, bytes], tag_91: bytes) -> bool:
        """The card's check of the issuer's tag 91 against the cryptogram it sent.

        False when the ARPC does not verify or tag 91 has the wrong length for the CVN: either
        way issuer authentication failed (Book 3 section 10.9), and the terminal reports a
        card/issuer mismatch. ``tags_sent`` lacking 9F26 / 9F36 is a programming error
        (:class:`~paypos.protocol.emv.EmvError`).
        """
        cvn, imk = self._chip()
        try:
            return emv.verify_arpc(cvn, imk, self.profile.pan, self.profile.psn, tags_sent, tag_91)
        except emv.EmvError as error:
            if error.field == "91":
                return False
            raise
