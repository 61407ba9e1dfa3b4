"""paypos.protocol.mac: ISO/IEC 9797-1 MAC algorithm 3, padding method 1 (ANSI X9.19).

Every known-answer vector below was run against this code and cites where it was published.

  [9797]   ISO/IEC 9797-1:2011 Annex B.4 examples (MAC algorithm 3, padding method 1, MAC
           truncated to 32 bits), as reproduced in openemv/crypto
           test/crypto_tdes2_retail_mac_test.c at 031b0ee05427ce091fd95c17722f7fa077b81f8e.
  [psec]   psec (github.com/knovichikhin/psec) tests/test_mac.py at
           40836d7e2c8636a854c0d2488c33f8bb56daa552, test_generate_retail_mac, padding 1:
           psec's key1 "AAAAAAAAAAAAAAAA" and key2 "BBBBBBBBBBBBBBBB" are TDES keys with
           equal halves, i.e. the single-DES keys K = "AAAAAAAA" and K' = "BBBBBBBB".
  [x9.24]  ANSI X9.24-1:2009 A.4.2 request and response MACs of "4012345678909D987" under
           the DUKPT MAC keys, as reproduced in moov-io/dukpt pkg/des/des_test.go at
           1155c927870e2005282046358fa0f4736146f4af (transaction keys from the same file).
"""

import warnings

import psec
import pytest
from cryptography.utils import CryptographyDeprecationWarning
from hypothesis import given
from hypothesis import strategies as st

from paypos.protocol.dukpt import mac_request_key, mac_response_key
from paypos.protocol.mac import MacError, retail_mac, verify_retail_mac

ISO_9797_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
X924_DATA = b"4012345678909D987"


@pytest.mark.parametrize(
    ("data", "mac32_hex"),
    [
        (b"Now is the time for all ", "A1C72E74"),  # [9797] 24 bytes: no padding
        (b"Now is the time for it", "2E2B1428"),  # [9797] 22 bytes: two zero bytes of padding
    ],
)
def test_retail_mac_matches_iso_9797_1_annex_b_truncated_to_32_bits(data, mac32_hex):
    assert retail_mac(ISO_9797_KEY, data)[:4].hex().upper() == mac32_hex


def test_retail_mac_matches_psec_published_value():
    mac = retail_mac(b"AAAAAAAABBBBBBBB", b"hello world")  # [psec]
    assert mac.hex().upper() == "3DDE5C5511661CBF"


# (current transaction key, request MAC, response MAC): [x9.24], counters 1-5
X924_MAC_VECTORS = [
    ("042666B49184CFA368DE9628D0397BC9", "9CCC78173FC4FB64", "20364223C1FF00FA"),
    ("C46551CEF9FD24B0AA9AD834130D3BC7", "F608A9BCA6FFC311", "D1FCA6BEF05D24D2"),
    ("0DF3D9422ACA56E547676D07AD6BADFA", "20B59A4FEAC937E3", "BAD4CC9CC2AE326C"),
    ("279C0F6AEED0BE652B2C733E1383AE91", "C7BFA6CC44161828", "1EB08AEECE6FF0C2"),
    ("5F8DC6D2C845C125508DDC048093B83F", "0202B96339022058", "5CBE3E81D1D2A0FB"),
]


@pytest.mark.parametrize(("key_hex", "request_hex", "response_hex"), X924_MAC_VECTORS)
def test_retail_mac_matches_the_x9_24_annex_a_dukpt_macs(key_hex, request_hex, response_hex):
    key = bytes.fromhex(key_hex)
    assert retail_mac(mac_request_key(key), X924_DATA).hex().upper() == request_hex
    assert retail_mac(mac_response_key(key), X924_DATA).hex().upper() == response_hex


@pytest.mark.parametrize(("key_hex", "request_hex", "response_hex"), X924_MAC_VECTORS)
def test_verify_accepts_the_x9_24_request_mac(key_hex, request_hex, response_hex):
    key = mac_request_key(bytes.fromhex(key_hex))
    assert verify_retail_mac(key, X924_DATA, bytes.fromhex(request_hex)) is True


def test_verify_rejects_the_response_mac_under_the_request_key():
    key_hex, _, response_hex = X924_MAC_VECTORS[0]
    key = mac_request_key(bytes.fromhex(key_hex))
    assert verify_retail_mac(key, X924_DATA, bytes.fromhex(response_hex)) is False


def test_verify_rejects_altered_data():
    key_hex, request_hex, _ = X924_MAC_VECTORS[0]
    key = mac_request_key(bytes.fromhex(key_hex))
    assert verify_retail_mac(key, b"4012345678909D988", bytes.fromhex(request_hex)) is False


def test_padding_method_1_makes_trailing_zero_bytes_invisible():
    # A known property of padding method 1: data and data + zeros (up to the block) collide.
    assert retail_mac(ISO_9797_KEY, b"Now is the time for it") == retail_mac(
        ISO_9797_KEY, b"Now is the time for it\x00\x00"
    )


def test_empty_data_is_macd_as_one_block_of_zeros():
    assert retail_mac(ISO_9797_KEY, b"") == retail_mac(ISO_9797_KEY, bytes(8))


def _psec_retail_mac(key: bytes, data: bytes) -> bytes:
    """psec's retail MAC with K and K' as single-DES keys; it builds cryptography's TripleDES."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*TripleDES", category=CryptographyDeprecationWarning
        )
        return psec.mac.generate_retail_mac(key[:8], key[8:], data, padding=1)


@given(key=st.binary(min_size=16, max_size=16), data=st.binary(max_size=200))
def test_retail_mac_agrees_with_psec(key, data):
    assert retail_mac(key, data) == _psec_retail_mac(key, data)


@given(key=st.binary(min_size=16, max_size=16), data=st.binary(max_size=64))
def test_verify_accepts_the_mac_it_computes(key, data):
    assert verify_retail_mac(key, data, retail_mac(key, data)) is True


@pytest.mark.parametrize("key", [bytes(8), bytes(15), bytes(17), bytes(24), b"", "00" * 16, None])
def test_retail_mac_rejects_a_key_that_is_not_16_bytes(key):
    with pytest.raises(MacError) as error:
        retail_mac(key, X924_DATA)
    assert error.value.field == "mac_key"


@pytest.mark.parametrize("data", ["4012345678909D987", None, 17])
def test_retail_mac_rejects_data_that_is_not_bytes(data):
    with pytest.raises(MacError) as error:
        retail_mac(ISO_9797_KEY, data)
    assert error.value.field == "data"


@pytest.mark.parametrize("mac", [bytes(4), bytes(7), bytes(9), b"", "9CCC78173FC4FB64", None])
def test_verify_rejects_a_mac_that_is_not_8_bytes(mac):
    with pytest.raises(MacError) as error:
        verify_retail_mac(ISO_9797_KEY, X924_DATA, mac)
    assert error.value.field == "64"


def test_verify_rejects_a_bad_key_before_comparing():
    with pytest.raises(MacError) as error:
        verify_retail_mac(bytes(8), X924_DATA, bytes(8))
    assert error.value.field == "mac_key"


@pytest.mark.parametrize(("key", "padded"), [(bytes(8), bytes(8)), (bytes(24), bytes(8)), (bytes(16), bytes(7)),
                                             (bytes(16), bytes(12)), (bytes(16), b"")])
def test_mac_algorithm_3_refuses_a_single_length_key_and_unpadded_data(key, padded):
    from paypos.protocol._des import mac_algorithm_3

    with pytest.raises(ValueError):
        mac_algorithm_3(key, padded)


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=1, max_size=96))
def test_mac_algorithm_3_is_cbc_then_decrypt_and_encrypt_of_the_last_block(key, data):
    # ISO/IEC 9797-1 MAC algorithm 3 as the standard words it, with pycryptodome's DES.
    from Crypto.Cipher import DES

    from paypos.protocol._des import mac_algorithm_3, pad_method_1

    padded = pad_method_1(data)
    chained = DES.new(key[:8], DES.MODE_CBC, iv=bytes(8)).encrypt(padded)[-8:]
    expected = DES.new(key[:8], DES.MODE_ECB).encrypt(DES.new(key[8:], DES.MODE_ECB).decrypt(chained))
    assert mac_algorithm_3(key, padded) == expected
