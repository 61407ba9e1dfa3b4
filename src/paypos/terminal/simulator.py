"""A software terminal and card: builds ISO 8583 requests exactly as the profile
(docs/iso8583.md) says — EMV field 55 with an ARQC, ISO 9564 PIN blocks under
DUKPT, retail MACs — and sends them over TCP. Used by `paypos demo` and the
host's tests; the cashier app of issue 4 grows from it. (The e2e suite checks the
host with an independent client written on public libraries instead.)"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
import struct
from dataclasses import dataclass, field

from paypos.protocol import emv, iso8583
from paypos.protocol.dukpt import derive_working_keys, ksn_counter, ksn_with_counter, next_ksn, parse_ksn
from paypos.protocol.mac import retail_mac
from paypos.protocol.pinblock import encode_pinblock_iso_0, encrypt_pinblock


@dataclass
class SoftTerminal:
    terminal_id: str
    merchant_id: str
    currency: str
    bdk: str
    initial_ksn: str
    mac_required: bool = False
    counter: int = 0
    stan: int = 0
    atcs: dict[str, int] = field(default_factory=dict)

    def advance_ksn(self) -> bytes:
        """Move to the next KSN a device may use and return it: X9.24-1:2009 A.2 skips counters
        with more than ten 1 bits (the first is 0x7FF, the 2047th transaction)."""
        ksn = next_ksn(ksn_with_counter(parse_ksn(self.initial_ksn), self.counter))
        self.counter = ksn_counter(ksn)
        return ksn

    def next_keys(self):  # type: ignore[no-untyped-def]
        ksn = self.advance_ksn()
        return ksn.hex().upper(), derive_working_keys(bytes.fromhex(self.bdk), ksn)

    def next_stan(self) -> str:
        self.stan += 1
        return f"{self.stan:06d}"

    def icc(self, card: dict, amount: int, *, atc: int | None = None, cvm: bytes | None = None,
            tamper: bool = False) -> dict[str, bytes]:
        if atc is None:
            atc = self.atcs.get(card["id"], 0) + 1
        self.atcs[card["id"]] = max(self.atcs.get(card["id"], 0), atc)
        cvn = card["cvn"]
        # Visa IAD: length, DKI, CVN, CVR (4 bytes); CVN 18 adds issuer discretionary data.
        iad = bytes.fromhex("06010A03A00000") if cvn == 10 else bytes.fromhex("06011203A00000") + bytes(25)
        tags = {
            "9F02": bytes.fromhex(f"{amount:012d}"),
            "9F03": bytes(6), "9F1A": bytes.fromhex("0" + card["currency"]),
            "95": bytes(5), "5F2A": bytes.fromhex("0" + card["currency"]), "9A": bytes.fromhex("261122"),
            "9C": b"\x00", "9F37": os.urandom(4), "82": bytes.fromhex("1800"), "9F36": atc.to_bytes(2, "big"),
            "9F10": iad, "9F27": b"\x80", "84": bytes.fromhex("A0000000031010"),
        }
        if cvm is not None:
            tags["9F34"] = cvm
        arqc = emv.generate_arqc(cvn, bytes.fromhex(card["imk_ac"]), card["pan"], card["psn"], tags)
        if tamper:
            arqc = bytes([arqc[0] ^ 1]) + arqc[1:]
        tags["9F26"] = arqc
        return tags

    def message(self, mti: str, fields: dict[str, str], *, pin: str | None = None, pan: str | None = None,
                mac: bool | None = None) -> bytes:
        msg = {"t": mti, "7": datetime.now(UTC).strftime("%m%d%H%M%S"), "11": self.next_stan(), "41": self.terminal_id,
               "42": self.merchant_id, "49": self.currency, **fields}
        use_mac = self.mac_required if mac is None else mac
        keys = None
        if pin is not None or use_mac:
            ksn, keys = self.next_keys()
            msg["62"] = ksn
        if pin is not None:
            msg["52"] = encrypt_pinblock(keys.pin, encode_pinblock_iso_0(pin, pan)).hex().upper()
        if use_mac:
            return iso8583.encode_with_mac(msg, lambda data: retail_mac(keys.mac_request, data))
        return iso8583.encode_message(msg)


class IsoClient:
    """A blocking ISO 8583 client: 2-byte big-endian length framing, one request at a time."""

    def __init__(self, host: str, port: int, timeout_s: float = 10.0) -> None:
        self._socket = socket.create_connection((host, port), timeout=timeout_s)

    def exchange(self, raw: bytes) -> dict[str, str]:
        self._socket.sendall(struct.pack(">H", len(raw)) + raw)
        header = self._read(2)
        return iso8583.decode_message(self._read(struct.unpack(">H", header)[0]))

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self._socket.recv(size - len(data))
            if not chunk:
                raise ConnectionError("host closed the connection")
            data += chunk
        return data

    def close(self) -> None:
        self._socket.close()
