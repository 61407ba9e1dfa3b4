"""paypos.protocol.pinblock: ISO 9564-1 PIN block format 0 and its TDES encipherment.

Every known-answer vector below was run against this code and cites where it was published.

  [psec]    psec (github.com/knovichikhin/psec): tests/test_pinblock.py at
            033ea3c7b3dced3585e07dad5e834c75c3852ae5, and the psec/pinblock.py docstring
            example of psec 1.3.0.
  [x9.24]   ANSI X9.24-1:2009 A.4 test data, PIN 1234 and PAN 4012345678909, as reproduced
            in openemv/dukpt test/dukpt_tdes_test.c at 0478f0568327d28ce2b902ab2b17b6c6aa34e139
            (clear block and encrypted blocks) and in marianovolker/jmps-public
            C++/Spotcheck/SpotCheckTrunk/Uploader/GVRlib/dukpt3.py at
            b2ca4a6921974e78a2dd128688d42beca121eec6 (the PIN keys).
  [hand]    worked by hand from the ISO 9564-1 construction, shown next to the vector.
"""

import warnings

import psec
import pytest
from cryptography.utils import CryptographyDeprecationWarning
from hypothesis import given
from hypothesis import strategies as st

from paypos.protocol.pinblock import (
    PinBlockError,
    decode_pinblock_iso_0,
    decrypt_pinblock,
    encode_pinblock_iso_0,
    encrypt_pinblock,
    pin_from_encrypted_block,
)

DIGITS = "0123456789"
X924_PIN, X924_PAN = "1234", "4012345678909"
TDES_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")

# --- Clear format 0 blocks -------------------------------------------------------------

FORMAT_0_VECTORS = [
    ("1234", "4012345678909", "041274EDCBA9876F"),  # [x9.24]
    ("1234", "5544332211009966", "041277CDDEEFF669"),  # [psec] docstring
    ("1234", "5555555551234567", "041261AAAAEDCBA9"),  # [psec]
    ("123456789", "5555555551234567", "091261032D8DCBA9"),  # [psec]
    ("1234567890", "5555555551234567", "0A1261032D82CBA9"),  # [psec]
    ("123456789012", "5555555551234567", "0C1261032D8226A9"),  # [psec] 12 digits: length C
    # [hand] 041234FFFFFFFFFF XOR 0000111111111111
    ("1234", "4111111111111111", "041225EEEEEEEEEE"),
    # [hand] a 12-digit PAN has 11 digits before its check digit, left-padded with a zero:
    # 041234FFFFFFFFFF XOR 0000012345678901
    ("1234", "123456789012", "041235DCBA9876FE"),
]


@pytest.mark.parametrize(("pin", "pan", "block_hex"), FORMAT_0_VECTORS)
def test_encode_matches_published_format_0_blocks(pin, pan, block_hex):
    assert encode_pinblock_iso_0(pin, pan).hex().upper() == block_hex


@pytest.mark.parametrize(("pin", "pan", "block_hex"), FORMAT_0_VECTORS)
def test_decode_reads_published_format_0_blocks(pin, pan, block_hex):
    assert decode_pinblock_iso_0(bytes.fromhex(block_hex), pan) == pin


@pytest.mark.parametrize("pin", ["123", "1234567890123", "", "12a4", "12 34", "١٢٣٤", 1234, None])
def test_encode_rejects_a_pin_that_is_not_4_to_12_ascii_digits(pin):
    with pytest.raises(PinBlockError) as error:
        encode_pinblock_iso_0(pin, X924_PAN)
    assert error.value.field == "52"


@pytest.mark.parametrize("pan", ["12345678901", "4" * 20, "401234567890x", "", 4012345678909, None])
def test_encode_rejects_a_pan_that_is_not_12_to_19_digits(pan):
    with pytest.raises(PinBlockError) as error:
        encode_pinblock_iso_0(X924_PIN, pan)
    assert error.value.field == "2"


# [psec] test_decode_pinblock_iso_0_exception: each block breaks one format 0 rule for
# PAN 5555555551234567.
@pytest.mark.parametrize(
    ("block_hex", "rule"),
    [
        ("241261AAAAEDCBA9", "control field must be 0"),
        ("0F1261AAAAEDCBA9", "PIN length must be 4-12"),
        ("021261AAAAEDCBA9", "PIN length must be 4-12"),
        ("041261AAAAEDCBAA", "fill nibbles must be F"),
        ("051261AAAAEDCBA9", "PIN nibbles must be digits"),
    ],
)
def test_decode_rejects_a_block_that_breaks_a_format_0_rule(block_hex, rule):
    with pytest.raises(PinBlockError, match=rule) as error:
        decode_pinblock_iso_0(bytes.fromhex(block_hex), "5555555551234567")
    assert error.value.field == "52"


def test_decode_errors_never_echo_pin_digits():
    # psec's own message for this block is "PIN is not numeric: `1234F`".
    with pytest.raises(PinBlockError) as error:
        decode_pinblock_iso_0(bytes.fromhex("051261AAAAEDCBA9"), "5555555551234567")
    assert "1234" not in str(error.value)


@pytest.mark.parametrize("block", [bytes(7), bytes(9), b"", "041274EDCBA9876F", None])
def test_decode_rejects_a_block_that_is_not_8_bytes(block):
    with pytest.raises(PinBlockError) as error:
        decode_pinblock_iso_0(block, X924_PAN)
    assert error.value.field == "52"


def test_decode_with_another_pan_fails():
    block = encode_pinblock_iso_0(X924_PIN, X924_PAN)
    with pytest.raises(PinBlockError) as error:
        decode_pinblock_iso_0(block, "4111111111111111")
    assert error.value.field == "52"


def test_decode_rejects_a_bad_pan():
    with pytest.raises(PinBlockError) as error:
        decode_pinblock_iso_0(bytes.fromhex("041274EDCBA9876F"), "40123456789")
    assert error.value.field == "2"


pins = st.text(DIGITS, min_size=4, max_size=12)
pans = st.text(DIGITS, min_size=12, max_size=19)


@given(pin=pins, pan=pans)
def test_decode_inverts_encode(pin, pan):
    assert decode_pinblock_iso_0(encode_pinblock_iso_0(pin, pan), pan) == pin


@given(pin=pins, pan=st.text(DIGITS, min_size=13, max_size=19))
def test_encode_agrees_with_psec(pin, pan):
    # psec needs 13 or more PAN digits; both use the 12 before the check digit.
    assert encode_pinblock_iso_0(pin, pan) == psec.pinblock.encode_pinblock_iso_0(pin, pan)


# --- Encipherment under a DUKPT PIN key -------------------------------------------------

# (PIN key, PIN 1234 / PAN 4012345678909 block encrypted under it): [x9.24] A.4.2 and A.4.3.
ENCRYPTED_VECTORS = [
    ("042666B49184CF5C68DE9628D0397B36", "1B9C1845EB993A7A"),  # KSN ...E00001
    ("C46551CEF9FD244FAA9AD834130D3B38", "10A01C8D02C69107"),  # KSN ...E00002
    ("0DF3D9422ACA561A47676D07AD6BAD05", "18DC07B94797B466"),  # KSN ...E00003
    ("279C0F6AEED0BE9A2B2C733E1383AE6E", "0BC79509D5645DF7"),  # KSN ...E00004
    ("5F8DC6D2C845C1DA508DDC048093B8C0", "5BC0AF22AD87B327"),  # KSN ...E00005
    ("F9CDFEBF4F5B1D61B3EC12454527E189", "33365F5CC6F23C35"),  # KSN ...EFF800
    ("AA4D58DB653EC7B548C75F2F047DD24A", "73EC88AD0AC5830E"),  # KSN ...F00000
]


@pytest.mark.parametrize(("pin_key_hex", "encrypted_hex"), ENCRYPTED_VECTORS)
def test_encrypt_matches_the_x9_24_annex_a_pin_blocks(pin_key_hex, encrypted_hex):
    block = encode_pinblock_iso_0(X924_PIN, X924_PAN)
    assert encrypt_pinblock(bytes.fromhex(pin_key_hex), block).hex().upper() == encrypted_hex


@pytest.mark.parametrize(("pin_key_hex", "encrypted_hex"), ENCRYPTED_VECTORS)
def test_pin_from_encrypted_block_recovers_the_x9_24_pin(pin_key_hex, encrypted_hex):
    key, encrypted = bytes.fromhex(pin_key_hex), bytes.fromhex(encrypted_hex)
    assert pin_from_encrypted_block(key, encrypted, X924_PAN) == X924_PIN


def test_pin_from_encrypted_block_under_the_wrong_key_fails():
    # The E00002 block under the E00001 PIN key decrypts to a block that is not format 0.
    wrong_key = bytes.fromhex(ENCRYPTED_VECTORS[0][0])
    with pytest.raises(PinBlockError) as error:
        pin_from_encrypted_block(wrong_key, bytes.fromhex(ENCRYPTED_VECTORS[1][1]), X924_PAN)
    assert error.value.field == "52"


tdes_keys = st.binary(min_size=16, max_size=16).filter(
    lambda key: bytes(b & 0xFE for b in key[:8]) != bytes(b & 0xFE for b in key[8:])
)


@given(key=tdes_keys, pin=pins, pan=pans)
def test_decrypt_inverts_encrypt(key, pin, pan):
    block = encode_pinblock_iso_0(pin, pan)
    assert decrypt_pinblock(key, encrypt_pinblock(key, block)) == block
    assert pin_from_encrypted_block(key, encrypt_pinblock(key, block), pan) == pin


def _psec_tdes_ecb(key: bytes, block: bytes) -> bytes:
    """psec's TDES-ECB; it builds ``cryptography``'s TripleDES, deprecated there."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*TripleDES", category=CryptographyDeprecationWarning
        )
        return psec.des.encrypt_tdes_ecb(key, block)


@given(key=tdes_keys, block=st.binary(min_size=8, max_size=8))
def test_encrypt_is_tdes_ecb_as_psec_computes_it(key, block):
    assert encrypt_pinblock(key, block) == _psec_tdes_ecb(key, block)


@pytest.mark.parametrize("function", [encrypt_pinblock, decrypt_pinblock])
@pytest.mark.parametrize("key", [bytes(15), bytes(24), b"", "00" * 16, None])
def test_encipherment_rejects_a_key_that_is_not_16_bytes(function, key):
    with pytest.raises(PinBlockError) as error:
        function(key, bytes(8))
    assert error.value.field == "pin_key"


@pytest.mark.parametrize(
    "key_hex",
    [
        "00000000000000000000000000000000",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123456789ABCDEF0022446688AACCEE",  # halves differ only in the DES parity bits
    ],
)
def test_encipherment_rejects_a_key_whose_halves_make_single_des(key_hex):
    key = bytes.fromhex(key_hex)
    with pytest.raises(PinBlockError) as error:
        encrypt_pinblock(key, bytes(8))
    assert error.value.field == "pin_key"


@pytest.mark.parametrize("function", [encrypt_pinblock, decrypt_pinblock])
@pytest.mark.parametrize("block", [bytes(7), bytes(16), b"", None])
def test_encipherment_rejects_a_block_that_is_not_8_bytes(function, block):
    with pytest.raises(PinBlockError) as error:
        function(TDES_KEY, block)
    assert error.value.field == "52"
