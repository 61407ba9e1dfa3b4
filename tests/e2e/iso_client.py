"""An independent terminal for "paypos ISO 8583 profile v1", written on public libraries only.

Nothing here imports paypos: what the client knows of the host is the wire profile (issue 3,
``docs/iso8583.md``) and the sandbox data that ``paypos sandbox cards|terminals --json``
prints. Each standard comes from a third-party library, so the host is checked against
someone else's reading of it:

- wire: pyiso8583, ``iso8583.specs.default_ascii`` (ISO 8583:1987, ASCII), framed with a
  2-byte big-endian length;
- keys and PINs: pydukpt (ANSI X9.24-1:2009 TDES DUKPT, ISO 9564-1 format 0 PIN blocks);
- MAC: psec (ISO/IEC 9797-1 MAC algorithm 3, padding method 1) under the DUKPT MAC request
  key, the response checked under the MAC response key;
- chip: pyemv (Visa CVN 10 / CVN 18 ARQC and ARPC, EMV BER-TLV for field 55).

The client keeps what a terminal keeps: its STAN, its DUKPT counter, and each card's ATC.
Many requests may be in flight on one :class:`Connection`; responses are matched by field 11
+ field 41.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import iso8583
import iso8583.specs
import psec
import pydukpt
from pyemv import cvn as emv_cvn
from pyemv import tlv

SPEC: Mapping[str, Any] = iso8583.specs.default_ascii
LENGTH_PREFIX = struct.Struct(">H")
MAC_HEX_CHARS = 16
RESPONSE_TIMEOUT_S = 15.0
ACQUIRER_ID = "10000000001"  # the sandbox acquirer (docs/sandbox.md), field 90's acquirer id
FORWARDING_ID = "00000000000"

# Visa Issuer Application Data (9F10): length 06, derivation key index 01, CVN, then the
# 4-byte Card Verification Results; CVN 18 (Visa IAD format 2 size) pads to 32 bytes with
# issuer discretionary data.
_CVR = bytes.fromhex("03A00000")
IAD = {10: bytes.fromhex("06010A") + _CVR, 18: bytes.fromhex("060112") + _CVR + bytes(25)}
AID_VISA = bytes.fromhex("A0000000031010")
AIP = bytes.fromhex("1800")  # Application Interchange Profile: SDA/DDA-capable, issuer auth supported
CID_ARQC = b"\x80"  # Cryptogram Information Data: ARQC
# CVM Results (9F34), EMV Book 4 Annex A4: CVM code, condition, result.
CVM_ONLINE_PIN = bytes.fromhex("420300")  # online PIN (result unknown to the card, as EMV says)
CVM_NONE = bytes.fromhex("1F0002")  # no CVM required
CVM_CDCVM = bytes.fromhex("010002")  # consumer device CVM, as EMV contactless kernels report it
TX_PURCHASE, TX_REFUND, TX_BALANCE = 0x00, 0x20, 0x31


class ClientError(AssertionError):
    """The host broke the wire profile (bad framing, an unmatched or unsigned response)."""


class ConnectionClosed(ClientError):
    """The host closed the connection before answering."""


# --- sandbox data -------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """A sandbox card as ``paypos sandbox cards --json`` prints it."""

    id: str
    pan: str
    expiry: str
    psn: str
    track2: str
    pin: str
    cvn: int | None
    imk_ac: bytes | None
    currency: str
    funding: str
    token_for: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Card:
        return cls(
            id=data["id"], pan=data["pan"], expiry=data["expiry"], psn=data["psn"], track2=data["track2"],
            pin=data["pin"], cvn=data["cvn"], imk_ac=bytes.fromhex(data["imk_ac"]) if data.get("imk_ac") else None,
            currency=data["currency"], funding=data["funding"], token_for=data.get("token_for"),
        )

    @property
    def field_23(self) -> str:
        """The PAN sequence number as ISO 8583 field 23 (n3) carries it."""
        return self.psn.zfill(3)


@dataclass(frozen=True)
class TerminalConfig:
    """A sandbox terminal as ``paypos sandbox terminals --json`` prints it."""

    terminal_id: str
    merchant_id: str
    currency: str
    bdk: bytes
    initial_ksn: bytes
    mac_required: bool
    contactless_cvm_limit_minor: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TerminalConfig:
        return cls(
            terminal_id=data["terminal_id"], merchant_id=data["merchant_id"], currency=data["currency"],
            bdk=bytes.fromhex(data["bdk"]), initial_ksn=bytes.fromhex(data["initial_ksn"]),
            mac_required=data["mac_required"], contactless_cvm_limit_minor=data["contactless_cvm_limit_minor"],
        )


# --- the chip -------------------------------------------------------------------------


def _bcd(digits: str) -> bytes:
    return bytes.fromhex(digits if len(digits) % 2 == 0 else "0" + digits)


@dataclass
class Chip:
    """A card's EMV application: generates ARQCs (pyemv) and checks the issuer's ARPC."""

    card: Card
    atc: int = 0  # the last ATC used; the card's counter only rises

    def _application(self) -> emv_cvn.VisaCVN10 | emv_cvn.VisaCVN18:
        imk = self.card.imk_ac
        if imk is None or self.card.cvn not in (10, 18):
            raise ValueError(f"card {self.card.id} has no CVN 10/18 chip application")
        # Only the AC master key matters here; the secure-messaging keys are not used.
        kind = emv_cvn.VisaCVN10 if self.card.cvn == 10 else emv_cvn.VisaCVN18
        return kind(imk, imk, imk, self.card.pan, self.card.psn)

    def generate_arqc(self, amount_minor: int, currency: str, *, tx_type: int = TX_PURCHASE,
                      cvm_results: bytes = CVM_ONLINE_PIN, atc: int | None = None,
                      tamper: bool = False) -> dict[str, bytes]:
        """The chip data of one GENERATE AC (ARQC) for ``amount_minor``: field 55's tags."""
        if atc is None:
            atc = self.atc + 1
        self.atc = max(self.atc, atc)
        iad = IAD[self.card.cvn or 0]
        tags = {
            "9F02": _bcd(f"{amount_minor:012d}"), "9F03": bytes(6), "9F1A": _bcd(f"{int(currency):04d}"),
            "95": bytes(5), "5F2A": _bcd(f"{int(currency):04d}"),
            "9A": _bcd(datetime.now(UTC).strftime("%y%m%d")), "9C": bytes([tx_type]),
            "9F37": os.urandom(4), "82": AIP, "9F36": atc.to_bytes(2, "big"), "9F10": iad,
        }
        application = self._application()
        order = ("9F02", "9F03", "9F1A", "95", "5F2A", "9A", "9C", "9F37", "82", "9F36")
        last = iad[3:7] if self.card.cvn == 10 else iad  # CVN 10: the CVR; CVN 18: the whole IAD
        arqc = application.generate_ac(*(tags[tag] for tag in order), last)
        if tamper:
            arqc = bytes([arqc[0] ^ 0x01]) + arqc[1:]
        tags.update({"9F26": arqc, "9F27": CID_ARQC, "9F34": cvm_results, "84": AID_VISA,
                     "5F34": _bcd(self.card.psn)})
        return tags

    def verify_arpc(self, tags: Mapping[str, bytes], tag_91: bytes) -> bytes:
        """Issuer authentication: the ARC (CVN 10) or CSU (CVN 18) of a verified tag 91.

        Raises :class:`ClientError` when the ARPC does not verify.
        """
        application = self._application()
        if isinstance(application, emv_cvn.VisaCVN10):  # ARPC method 1: ARPC (8) || ARC (2)
            arpc, arc = tag_91[:8], tag_91[8:]
            if len(tag_91) != 10 or application.generate_arpc(tags["9F26"], arc) != arpc:
                raise ClientError(f"tag 91 {tag_91.hex().upper()} is not the CVN 10 ARPC of this ARQC")
            return arc
        arpc, csu, proprietary = tag_91[:4], tag_91[4:8], tag_91[8:]  # method 2: ARPC (4) || CSU (4)
        expected = application.generate_arpc(tags["9F26"], tags["9F36"], csu, proprietary or None)
        if len(tag_91) < 8 or expected != arpc:
            raise ClientError(f"tag 91 {tag_91.hex().upper()} is not the CVN 18 ARPC of this ARQC")
        return csu

    def issuer_approves(self, tags: Mapping[str, bytes], tag_91: bytes) -> bool:
        """Whether a verified tag 91 tells the card that the issuer approved.

        CVN 10: the ARC is "00". CVN 18: CSU byte 2 bit 8, "Issuer Approves Online
        Transaction" (Visa VIS 1.6, Card Status Update).
        """
        arc_or_csu = self.verify_arpc(tags, tag_91)
        if self.card.cvn == 10:
            return arc_or_csu == b"00"
        return bool(arc_or_csu[1] & 0x80)


def field_55(tags: Mapping[str, bytes]) -> str:
    return tlv.encode(dict(tags)).hex().upper()


# --- messages ---------------------------------------------------------------------------


def transmission_datetime() -> str:
    """Field 7: MMDDhhmmss in UTC."""
    return datetime.now(UTC).strftime("%m%d%H%M%S")


def original_data_elements(mti: str, stan: str, transmission_dt: str) -> str:
    """Field 90 (n42): original MTI, STAN, field 7, acquirer id, forwarding id."""
    return f"{mti}{stan}{transmission_dt}{ACQUIRER_ID}{FORWARDING_ID}"


def encode(fields: Mapping[str, str]) -> bytes:
    raw, _ = iso8583.encode(dict(fields), SPEC)  # pyiso8583 adds the bitmaps to the dict it gets
    return bytes(raw)


def decode(raw: bytes) -> dict[str, str]:
    fields, _ = iso8583.decode(bytearray(raw), SPEC)
    return fields


def retail_mac(key: bytes, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3, padding method 1, 8 bytes (psec)."""
    return psec.mac.generate_retail_mac(key[:8], key[8:], data, padding=1)


def mac_field(fields: Mapping[str, str]) -> str:
    """ISO 8583:1987 places the MAC in 128 when a field above 64 is present, else in 64."""
    above_64 = any(key.isdigit() and 64 < int(key) < 128 for key in fields)
    return "128" if above_64 else "64"


@dataclass(frozen=True)
class Message:
    """One request as sent: its business fields, its PIN (if any) and the encoded bytes."""

    fields: dict[str, str]  # everything but the security envelope (52, 62, 64/128)
    raw: bytes
    ksn: bytes | None
    mac_response_key: bytes | None
    pin: tuple[str, str] | None  # (PIN, PAN), to re-send under a fresh KSN

    @property
    def key(self) -> tuple[str, str]:
        return self.fields["11"], self.fields["41"]

    @property
    def mti(self) -> str:
        return self.fields["t"]


@dataclass(frozen=True)
class Response:
    fields: dict[str, str]
    raw: bytes
    mac_verified: bool  # a MAC was present and verified under the request's response key

    @property
    def code(self) -> str:
        return self.fields.get("39", "")

    @property
    def rrn(self) -> str | None:
        return self.fields.get("37")

    @property
    def approval_code(self) -> str | None:
        return self.fields.get("38")

    @property
    def icc(self) -> dict[str, bytes]:
        return tlv.decode(bytes.fromhex(self.fields["55"])) if "55" in self.fields else {}

    @property
    def tag_91(self) -> bytes | None:
        return self.icc.get("91")


@dataclass
class Terminal:
    """A terminal's own state: STAN and DUKPT counter; it builds and signs its requests."""

    config: TerminalConfig
    stan: int = 0
    ksn: bytes | None = None  # the last KSN used
    _ipek: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ipek = pydukpt.derive_ipek(self.config.bdk, self.config.initial_ksn)
        if self.ksn is None:
            self.ksn = self.config.initial_ksn

    @property
    def terminal_id(self) -> str:
        return self.config.terminal_id

    def next_stan(self) -> str:
        self.stan = self.stan % 999_999 + 1
        return f"{self.stan:06d}"

    def next_ksn(self) -> bytes:
        self.ksn = pydukpt.next_ksn(self.ksn or self.config.initial_ksn)
        return self.ksn

    def message(self, mti: str, fields: Mapping[str, str] | None = None, *, pin: tuple[str, str] | None = None,
                mac: bool | None = None, ksn: bytes | None = None) -> Message:
        """A request from this terminal: 7, 11, 41, 42, 49 filled in unless ``fields`` sets them.

        ``pin`` = (PIN, PAN) adds field 52 under the DUKPT PIN key; ``mac`` (default: the
        terminal's ``mac_required``) signs it; either uses the next KSN (or ``ksn``) in 62.
        """
        business = {"t": mti, "7": transmission_datetime(), "41": self.terminal_id,
                    "42": self.config.merchant_id, "49": self.config.currency, **(fields or {})}
        business.setdefault("11", self.next_stan())
        return self.sign(business, pin=pin, mac=mac, ksn=ksn)

    def sign(self, business: Mapping[str, str], *, pin: tuple[str, str] | None = None, mac: bool | None = None,
             ksn: bytes | None = None) -> Message:
        """Encode ``business`` with this terminal's security envelope (a fresh KSN unless given)."""
        use_mac = self.config.mac_required if mac is None else mac
        document = dict(business)
        key = None
        if pin is not None or use_mac:
            ksn = ksn or self.next_ksn()
            key = pydukpt.derive_key(self._ipek, ksn)
            document["62"] = ksn.hex().upper()
        if pin is not None and key is not None:
            document["52"] = pydukpt.encrypt_pin(key, *pin).hex().upper()
        if not use_mac or key is None:
            return Message(dict(business), encode(document), ksn, None, pin)
        document[mac_field(document)] = "0" * MAC_HEX_CHARS
        data = encode(document)[:-MAC_HEX_CHARS]
        signature = retail_mac(pydukpt.mac_request_key(key), data).hex().upper().encode("ascii")
        return Message(dict(business), data + signature, ksn, pydukpt.mac_response_key(key), pin)

    def resend(self, message: Message) -> Message:
        """The same request again under a fresh KSN (new PIN block and MAC), as terminals retry."""
        return self.sign(message.fields, pin=message.pin, mac=message.mac_response_key is not None)


class Connection:
    """One TCP link to the host; many requests in flight, answers matched by 11 + 41."""

    def __init__(self, host: str, port: int, *, timeout_s: float = RESPONSE_TIMEOUT_S) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout_s)
        self._arrived: dict[tuple[str, str], tuple[dict[str, str], bytes]] = {}

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, payload: bytes) -> None:
        self._sock.sendall(LENGTH_PREFIX.pack(len(payload)) + payload)

    def send(self, message: Message) -> None:
        self.send_raw(message.raw)

    def request(self, message: Message) -> Response:
        self.send(message)
        return self.wait(message)

    def wait(self, message: Message) -> Response:
        """The answer to ``message``, keeping any other answers that arrive first."""
        while message.key not in self._arrived:
            raw = self.read_frame()
            if raw is None:
                raise ConnectionClosed(f"connection closed before the answer to {message.key}")
            fields = decode(raw)
            self._arrived[(fields.get("11", ""), fields.get("41", ""))] = (fields, raw)
        fields, raw = self._arrived.pop(message.key)
        return Response(fields, raw, self._check_mac(message, fields, raw))

    def read_frame(self) -> bytes | None:
        """The next framed message, or None when the host closed the connection."""
        header = self._read_exactly(LENGTH_PREFIX.size)
        if header is None:
            return None
        (length,) = LENGTH_PREFIX.unpack(header)
        payload = self._read_exactly(length) if length else b""
        if payload is None:
            raise ClientError("connection closed inside a frame")
        return payload

    def _read_exactly(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self._sock.recv(size - len(data))
            if not chunk:
                if data:
                    raise ClientError("connection closed inside a frame")
                return None
            data += chunk
        return data

    @staticmethod
    def _check_mac(message: Message, fields: Mapping[str, str], raw: bytes) -> bool:
        """A signed request must get a signed response: MAC response key of the same KSN."""
        if message.mac_response_key is None:
            return False
        place = mac_field(fields)
        if place not in fields:
            raise ClientError(f"the response to signed request {message.key} has no MAC in field {place}")
        expected = retail_mac(message.mac_response_key, raw[:-MAC_HEX_CHARS]).hex().upper()
        if fields[place] != expected or raw[-MAC_HEX_CHARS:].decode("ascii") != expected:
            raise ClientError(f"the response MAC to {message.key} does not verify")
        return True
