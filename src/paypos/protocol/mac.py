"""Retail MAC: ISO/IEC 9797-1 MAC algorithm 3 with padding method 1 (ANSI X9.19).

Pure functions over ``bytes``. The key is double length, K || K' (16 bytes):

1. Padding method 1 (ISO/IEC 9797-1): append the fewest 0x00 bytes that make the
   length a positive multiple of 8 (empty data becomes one block of zeros).
2. Single-DES CBC under K with a zero IV over all blocks (the initial and iteration
   steps of algorithm 1).
3. Output transformation 3 (ISO/IEC 9797-1): decrypt the last block under K', then
   encrypt it under K. The whole 8-byte result is the MAC.

The DUKPT MAC request and response keys (:mod:`paypos.protocol.dukpt`) are such keys;
in ISO 8583 the MAC travels in field 64 (or 128), so errors carry ``field="64"`` unless
they concern the key ("mac_key") or the data ("data"). Built on the DES of ``_des`` for
speed; the tests cross-check it against ``psec.mac.generate_retail_mac``.
"""

from __future__ import annotations

import hmac

from paypos.protocol._des import mac_algorithm_3, pad_method_1
from paypos.protocol.errors import KeepsFields

__all__ = ["MAC_BYTES", "MAC_FIELD", "MAC_KEY_BYTES", "MacError", "retail_mac", "verify_retail_mac"]

MAC_BYTES = 8
MAC_KEY_BYTES = 16
MAC_FIELD = "64"  # ISO 8583 data element 64, message authentication code


class MacError(KeepsFields, ValueError):
    """A MAC input broke a rule; ``field`` is "64" unless it names "mac_key" or "data"."""

    def __init__(self, message: str, *, field: str = MAC_FIELD) -> None:
        super().__init__(message)
        self.field = field


def _bytes(value: object, what: str, field: str, length: int | None = None) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise MacError(f"{what} must be bytes", field=field)
    data = bytes(value)
    if length is not None and len(data) != length:
        raise MacError(f"{what} must be {length} bytes", field=field)
    return data




def retail_mac(key: bytes, data: bytes) -> bytes:
    """The 8-byte ISO/IEC 9797-1 MAC algorithm 3 (padding method 1) MAC of ``data``."""
    k = _bytes(key, "MAC key (K || K', ISO/IEC 9797-1 MAC algorithm 3)", "mac_key", MAC_KEY_BYTES)
    return mac_algorithm_3(k, pad_method_1(_bytes(data, "MAC input data", "data")))


def verify_retail_mac(key: bytes, data: bytes, mac: bytes) -> bool:
    """True when ``mac`` is the retail MAC of ``data``; compared in constant time.

    A ``mac`` that is not 8 bytes is a format error (:class:`MacError`, field 64), not a
    mismatch.
    """
    received = _bytes(mac, f"field {MAC_FIELD}: MAC", MAC_FIELD, MAC_BYTES)
    return hmac.compare_digest(retail_mac(key, data), received)
