"""ISO 9564-1 PIN block format 0 and its TDES encipherment: pure functions over ``bytes``.

Format 0 (ISO 9564-1, "format 0"; also the ANSI X9.8 PIN block) is the XOR of two 8-byte
fields:

- the PIN field: control nibble 0, the PIN length (4-C), the PIN digits, then F fill;
- the PAN field: four 0 nibbles, then the 12 rightmost PAN digits excluding the check
  digit (left-padded with zeros when the PAN has fewer).

The block is enciphered with TDES in ECB mode under a double-length key, here the DUKPT
PIN key (ANSI X9.24-1:2009 A.4.1). ISO 9564-1 requires an approved algorithm (TDEA) for
PIN encipherment, so a key whose halves are equal (which makes TDES single DES) is
rejected.

The format is coded here rather than with ``psec.pinblock``: psec requires a PAN of 13 or
more digits (ISO 9564-1 and :mod:`paypos.protocol.card` allow 12) and its error messages
echo PIN digits. Errors carry ``field``: "52" (PIN data) by default, "2" for the PAN,
"pin_key" for the key; no message includes PIN, PAN or key material.
"""

from __future__ import annotations

from paypos.protocol._des import tdes_ecb_decrypt, tdes_ecb_encrypt
from paypos.protocol.card import CardDataError, validate_pan
from paypos.protocol.errors import KeepsFields

__all__ = [
    "PIN_BLOCK_BYTES",
    "PIN_DIGITS_MAX",
    "PIN_DIGITS_MIN",
    "PIN_FIELD",
    "PinBlockError",
    "decode_pinblock_iso_0",
    "decrypt_pinblock",
    "encode_pinblock_iso_0",
    "encrypt_pinblock",
    "pin_from_encrypted_block",
]

PIN_BLOCK_BYTES = 8
PIN_DIGITS_MIN = 4
PIN_DIGITS_MAX = 12
PIN_FIELD = "52"  # ISO 8583 data element 52, PIN data
_PAN_FIELD = "2"  # ISO 8583 data element 2, primary account number
_KEY_FIELD = "pin_key"
_KEY_BYTES = 16
_FORMAT_0_CONTROL = "0"
_FILL = "F"


class PinBlockError(KeepsFields, ValueError):
    """A PIN block or its inputs broke an ISO 9564-1 rule; ``field`` is "52" unless named."""

    def __init__(self, message: str, *, field: str = PIN_FIELD) -> None:
        super().__init__(message)
        self.field = field


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def _pin_digits(pin: object) -> str:
    is_digits = isinstance(pin, str) and pin.isascii() and pin.isdigit()
    if not is_digits or not PIN_DIGITS_MIN <= len(pin) <= PIN_DIGITS_MAX:
        raise PinBlockError(
            f"field {PIN_FIELD}: PIN must be {PIN_DIGITS_MIN}-{PIN_DIGITS_MAX} digits (ISO 9564-1)"
        )
    return pin


def _pan_field(pan: str) -> bytes:
    """ISO 9564-1 format 0 PAN field: 0000 + the 12 rightmost digits before the check digit."""
    try:
        validate_pan(pan, luhn=False)
    except CardDataError as error:
        raise PinBlockError(f"field {_PAN_FIELD}: {error}", field=_PAN_FIELD) from None
    return bytes.fromhex(pan[:-1][-12:].rjust(16, "0"))


def _exact_bytes(value: object, length: int, message: str, field: str) -> bytes:
    data = bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else None
    if data is None or len(data) != length:
        raise PinBlockError(message, field=field)
    return data


def _block(block: object) -> bytes:
    rule = f"field {PIN_FIELD}: PIN block must be {PIN_BLOCK_BYTES} bytes"
    return _exact_bytes(block, PIN_BLOCK_BYTES, rule, PIN_FIELD)


def _tdes_key(key: object) -> bytes:
    """A double-length key whose halves differ (parity bits aside): real TDEA, ISO 9564-1."""
    rule = f"PIN key must be {_KEY_BYTES} bytes (a double-length TDES key)"
    data = _exact_bytes(key, _KEY_BYTES, rule, _KEY_FIELD)
    if bytes(b & 0xFE for b in data[:8]) == bytes(b & 0xFE for b in data[8:]):
        raise PinBlockError(
            "PIN key halves must differ: equal halves make TDES single DES (ISO 9564-1 needs TDEA)",
            field=_KEY_FIELD,
        )
    return data


def encode_pinblock_iso_0(pin: str, pan: str) -> bytes:
    """The clear 8-byte ISO 9564-1 format 0 PIN block for ``pin`` (4-12 digits) and ``pan``."""
    digits = _pin_digits(pin)
    pin_field = bytes.fromhex(f"{_FORMAT_0_CONTROL}{len(digits):X}{digits}".ljust(16, _FILL))
    return _xor(pin_field, _pan_field(pan))


def decode_pinblock_iso_0(block: bytes, pan: str) -> str:
    """The PIN in a clear ISO 9564-1 format 0 PIN block.

    Checks, in order: control nibble 0, PIN length 4-12, PIN nibbles 0-9, fill nibbles F.
    A block enciphered under the wrong key, or for another PAN, fails one of them.
    """
    nibbles = _xor(_block(block), _pan_field(pan)).hex().upper()
    if nibbles[0] != _FORMAT_0_CONTROL:
        raise PinBlockError(f"field {PIN_FIELD}: control field must be 0 (ISO 9564-1 format 0)")
    length = int(nibbles[1], 16)
    if not PIN_DIGITS_MIN <= length <= PIN_DIGITS_MAX:
        raise PinBlockError(
            f"field {PIN_FIELD}: PIN length must be {PIN_DIGITS_MIN}-{PIN_DIGITS_MAX} (ISO 9564-1)"
        )
    digits, fill = nibbles[2 : 2 + length], nibbles[2 + length :]
    if not digits.isdigit():
        raise PinBlockError(f"field {PIN_FIELD}: PIN nibbles must be digits 0-9 (ISO 9564-1)")
    if fill != _FILL * len(fill):
        raise PinBlockError(f"field {PIN_FIELD}: fill nibbles must be F (ISO 9564-1 format 0)")
    return digits


def encrypt_pinblock(key: bytes, block: bytes) -> bytes:
    """``block`` TDES-ECB-enciphered under a 16-byte PIN key (e.g. :func:`dukpt.pin_key`)."""
    return tdes_ecb_encrypt(_tdes_key(key), _block(block))


def decrypt_pinblock(key: bytes, block: bytes) -> bytes:
    """The clear PIN block from one TDES-ECB-enciphered under a 16-byte PIN key."""
    return tdes_ecb_decrypt(_tdes_key(key), _block(block))


def pin_from_encrypted_block(pin_key: bytes, encrypted_block: bytes, pan: str) -> str:
    """The PIN in a format 0 block enciphered under ``pin_key`` (field 52 to the PIN)."""
    return decode_pinblock_iso_0(decrypt_pinblock(pin_key, encrypted_block), pan)
