"""Issuer card security values: Visa CVV/CVV2/iCVV and IBM 3624 PINs with offsets.

Pure functions over ``str``. Keys are double-length TDES keys given as 32 hex
characters. The DES work is done by ``_des`` (on ``cryptography``); nothing here implements
a cipher, and the tests compare every value with ``psec``'s.

- CVV (Visa; Mastercard calls it CVC): TDES over PAN || YYMM || service code, then
  decimalised. CVV2 is the same algorithm with service code "000" and iCVV with "999"
  (AWS Payment Cryptography user guide, "Generate card data").
- IBM 3624 (IBM CCA "IBM 3624 PIN-calculation method" and "PIN offset"): encrypt the
  validation data under the PVK, decimalise with a table, keep the leftmost PIN-length
  digits (the *natural PIN*); the customer PIN is natural PIN + offset, digit by digit
  modulo 10.

PANs are checked for format (12-19 digits) but not Luhn: both algorithms are defined over
any account number, and their published vectors use PANs without a valid check digit.
"""

from __future__ import annotations

import string

from paypos.protocol._des import des_ecb_encrypt, tdes_ecb_encrypt, xor
from paypos.protocol.card import CardDataError, validate_expiry, validate_pan, validate_service_code

__all__ = [
    "CVV2_SERVICE_CODE",
    "DECIMALISATION_TABLE",
    "ICVV_SERVICE_CODE",
    "PIN_DIGITS_MAX",
    "PIN_DIGITS_MIN",
    "cvv",
    "cvv2",
    "icvv",
    "ibm3624_natural_pin",
    "ibm3624_offset",
    "ibm3624_pin_from_offset",
    "ibm3624_validation_data",
]

CVV2_SERVICE_CODE = "000"
ICVV_SERVICE_CODE = "999"
# Hex digit -> decimal digit: 0-9 stay, A-F become 0-5 (the IBM 3624 default table).
DECIMALISATION_TABLE = "0123456789012345"
# ISO 9564-1: a PIN is 4 to 12 digits.
PIN_DIGITS_MIN = 4
PIN_DIGITS_MAX = 12
_KEY_HEX_CHARS = 32
_CVV_DIGITS = 3
_VALIDATION_DATA_DIGITS_MAX = 16
_HEX_DIGITS = frozenset(string.hexdigits)


def _key(key_hex: str, field: str) -> bytes:
    well_formed = isinstance(key_hex, str) and len(key_hex) == _KEY_HEX_CHARS
    if not well_formed or not _HEX_DIGITS.issuperset(key_hex):
        raise CardDataError(
            f"{field.upper()} must be {_KEY_HEX_CHARS} hex characters (a double-length TDES key)",
            field=field,
        )
    return bytes.fromhex(key_hex)


def _digits(value: object, field: str, low: int, high: int) -> str:
    is_digits = isinstance(value, str) and value.isascii() and value.isdigit()
    if not is_digits or not low <= len(value) <= high:
        raise CardDataError(f"{field} must be {low}-{high} digits", field=field)
    return value


def _decimalise_visa(ciphertext: bytes) -> str:
    """Visa decimalisation: digits 0-9 left to right, then A-F left to right minus 10."""
    hex_text = ciphertext.hex().upper()
    digits = [char for char in hex_text if char.isdigit()]
    letters = [str(int(char, 16) - 10) for char in hex_text if not char.isdigit()]
    return "".join(digits + letters)


def _cvv_ciphertext(cvk: bytes, pan: str, expiry: str, service_code: str) -> bytes:
    """The CVV ciphertext as ``psec.cvv.generate_cvv`` builds it (the tests compare): the
    first 16 digits DES-encrypted under the key's left half, XORed with the next 16, then
    TDES-encrypted under the whole key. On `_des`: psec's runs under a process-wide
    warnings filter taken per call, ~25x the cost."""
    block = (pan + expiry + service_code).ljust(32, "0")
    left = des_ecb_encrypt(cvk[:8], bytes.fromhex(block[:16]))
    return tdes_ecb_encrypt(cvk, xor(left, bytes.fromhex(block[16:])))


def cvv(cvk_hex: str, pan: str, expiry_yymm: str, service_code: str) -> str:
    """The 3-digit Visa CVV (Mastercard CVC) for track data: ``psec.cvv.generate_cvv``'s
    value (the tests compare), completed where psec's is short.

    psec 1.3 keeps only the decimal digits of the ciphertext, so for the rare ciphertext
    with fewer than three of them (about 1 card in 18,000) it returns a short value. The
    Visa algorithm then continues with the hex digits A-F, left to right, minus 10 (steps
    7-10 of the Visa CVV description cited in the tests; jPOS ``decimalizeVisa`` does the
    same), which this function does.
    """
    key = _key(cvk_hex, "cvk")
    validate_pan(pan, luhn=False)
    validate_expiry(expiry_yymm)
    validate_service_code(service_code)
    return _decimalise_visa(_cvv_ciphertext(key, pan, expiry_yymm, service_code))[:_CVV_DIGITS]


def cvv2(cvk_hex: str, pan: str, expiry_yymm: str) -> str:
    """CVV2 (printed on the card): the CVV algorithm with service code "000"."""
    return cvv(cvk_hex, pan, expiry_yymm, CVV2_SERVICE_CODE)


def icvv(cvk_hex: str, pan: str, expiry_yymm: str) -> str:
    """iCVV (in the chip's track 2 equivalent data): the CVV algorithm with service code "999"."""
    return cvv(cvk_hex, pan, expiry_yymm, ICVV_SERVICE_CODE)


def ibm3624_validation_data(pan: str) -> str:
    """The default IBM 3624 validation data: the 12 rightmost PAN digits excluding the check digit.

    These are the account-number digits ISO 9564-1 PIN block format 0 uses, left-padded
    with zeros for a 12-digit PAN. psec pads them on the right to 16 hex digits with the
    pad character (default 'F') before encrypting.
    """
    validate_pan(pan, luhn=False)
    return pan[:-1][-12:].rjust(12, "0")


def _ibm3624_inputs(
    pvk_hex: str, pan: str, decimalisation_table: str, validation_data: str | None, pad: str
) -> tuple[bytes, str, str]:
    key = _key(pvk_hex, "pvk")
    validate_pan(pan, luhn=False)
    if validation_data is None:
        data = ibm3624_validation_data(pan)
    else:
        data = _digits(validation_data, "validation_data", 1, _VALIDATION_DATA_DIGITS_MAX)
    table = _digits(decimalisation_table, "decimalisation_table", 16, 16)
    if not isinstance(pad, str) or len(pad) != 1 or pad not in _HEX_DIGITS:
        raise CardDataError("pad must be one hex character", field="pad")
    return key, data, table


def _ibm3624_natural(key: bytes, table: str, data: str, pad: str, length: int) -> str:
    """IBM 3624 steps 1-3: validation data right-padded with ``pad`` to 16 hex digits,
    TDES-encrypted under the PVK, each hex digit of the result decimalised through the
    table; the leftmost ``length`` digits. (What psec's generate_ibm3624_pin computes, the
    tests compare; done here on `_des`, ~25x cheaper per call on the host's PIN path.)"""
    ciphertext = tdes_ecb_encrypt(key, bytes.fromhex(data.ljust(16, pad)[:16])).hex()
    return "".join(table[int(digit, 16)] for digit in ciphertext[:length])


def ibm3624_pin_from_offset(
    pvk_hex: str,
    pan: str,
    offset: str,
    *,
    decimalisation_table: str = DECIMALISATION_TABLE,
    validation_data: str | None = None,
    pad: str = "F",
) -> str:
    """The customer PIN: IBM 3624 natural PIN plus ``offset`` (its length is the PIN length).

    ``validation_data`` defaults to :func:`ibm3624_validation_data` of ``pan``; pass the
    issuer's own (up to 16 digits, right-padded with ``pad``) to override it.
    """
    key, data, table = _ibm3624_inputs(pvk_hex, pan, decimalisation_table, validation_data, pad)
    _digits(offset, "offset", PIN_DIGITS_MIN, PIN_DIGITS_MAX)
    natural = _ibm3624_natural(key, table, data, pad, len(offset))
    return "".join(str((int(n) + int(o)) % 10) for n, o in zip(natural, offset, strict=True))


def ibm3624_natural_pin(
    pvk_hex: str,
    pan: str,
    pin_length: int = 4,
    *,
    decimalisation_table: str = DECIMALISATION_TABLE,
    validation_data: str | None = None,
    pad: str = "F",
) -> str:
    """The IBM 3624 natural PIN: the PIN whose offset is all zeros."""
    if type(pin_length) is not int or not PIN_DIGITS_MIN <= pin_length <= PIN_DIGITS_MAX:
        raise CardDataError(
            f"pin_length must be {PIN_DIGITS_MIN}-{PIN_DIGITS_MAX}", field="pin_length"
        )
    return ibm3624_pin_from_offset(
        pvk_hex,
        pan,
        "0" * pin_length,
        decimalisation_table=decimalisation_table,
        validation_data=validation_data,
        pad=pad,
    )


def ibm3624_offset(
    pvk_hex: str,
    pan: str,
    pin: str,
    *,
    decimalisation_table: str = DECIMALISATION_TABLE,
    validation_data: str | None = None,
    pad: str = "F",
) -> str:
    """The IBM 3624 offset that turns the natural PIN into ``pin``.

    Each offset digit is the PIN digit minus the natural PIN digit, modulo 10.
    """
    key, data, table = _ibm3624_inputs(pvk_hex, pan, decimalisation_table, validation_data, pad)
    _digits(pin, "pin", PIN_DIGITS_MIN, PIN_DIGITS_MAX)
    natural = _ibm3624_natural(key, table, data, pad, len(pin))
    return "".join(str((int(p) - int(n)) % 10) for p, n in zip(pin, natural, strict=True))
