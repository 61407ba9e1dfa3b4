"""DES building blocks shared by the payment-crypto modules.

Written here rather than called through psec/pyemv on the host's hot path: those
build ``cryptography``'s deprecated ``algorithms.TripleDES`` per call under a warnings
filter that must be swapped process-wide. Here every DES is a TripleDES of
``cryptography.hazmat.decrepit`` (where TDES lives, undeprecated, since cryptography 43)
with a three-key (24-byte) key: K1 K2 K1 for two-key TDES, K K K for single DES (EDE with
equal keys is DES). Measured on this machine: building and using one costs ~7 us, against
~20 us for pycryptodome's DES and ~70 us for its DES3 (whose key set-up runs in Python),
and a request needs a dozen (docs/performance.md). Nothing is cached: no key schedule
outlives the call. The tests cross-check every caller against pyemv / psec known answers.
"""

from __future__ import annotations

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

BLOCK = 8
_ZERO_IV = bytes(BLOCK)
# Odd parity for each byte value (the low bit of a DES key byte is its parity bit).
_ODD_PARITY = bytes((b & 0xFE) | ((bin(b & 0xFE).count("1") + 1) % 2) for b in range(256))


def xor(left: bytes, right: bytes) -> bytes:
    if len(left) != len(right):
        raise ValueError("xor of unequal lengths")
    return (int.from_bytes(left, "big") ^ int.from_bytes(right, "big")).to_bytes(len(left), "big")


def adjust_odd_parity(key: bytes) -> bytes:
    return key.translate(_ODD_PARITY)


_ECB = modes.ECB()


def _cipher(key: bytes, mode: modes.Mode = _ECB) -> Cipher[modes.Mode]:
    """DES (8-byte key) or two-key TDES (16) as three-key EDE: K K K, or K1 K2 K1."""
    key = bytes(key)
    if len(key) == BLOCK:
        key *= 3
    elif len(key) == 2 * BLOCK:
        key += key[:BLOCK]
    else:
        raise ValueError("a DES key is 8 bytes, a double-length TDES key 16")
    return Cipher(TripleDES(key), mode)


def des_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    return _cipher(key).encryptor().update(data)


def des_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    return _cipher(key).decryptor().update(data)


def tdes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """Two-key TDES (EDE) in ECB mode over whole 8-byte blocks (equal halves: single DES)."""
    return _cipher(key).encryptor().update(data)


def tdes_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    return _cipher(key).decryptor().update(data)


def mac_algorithm_3(key: bytes, padded: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 over already padded data: single-DES CBC under K
    (zero IV), then decrypt the last block under K' and encrypt it under K."""
    # E_K(D_K'(E_K(H ^ last))) is one two-key TDES (EDE) of H ^ last, H being the single-DES
    # CBC of the blocks before the last (the IV for one block): two ciphers to build, not three.
    if len(key) != 2 * BLOCK:
        raise ValueError("MAC algorithm 3 takes a double-length (16-byte) key")
    if len(padded) < BLOCK or len(padded) % BLOCK:
        raise ValueError("MAC input must be padded to whole 8-byte blocks")
    head, last = padded[:-BLOCK], padded[-BLOCK:]
    chained = _cipher(key[:BLOCK], modes.CBC(_ZERO_IV)).encryptor().update(head)[-BLOCK:] if head else _ZERO_IV
    return tdes_ecb_encrypt(key, xor(chained, last))


def pad_method_1(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 1: zeros up to a positive multiple of the block size."""
    return data + bytes(-len(data) % BLOCK if data else BLOCK)


def pad_method_2(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 0x80, then zeros up to a multiple of the block size."""
    data += b"\x80"
    return data + bytes(-len(data) % BLOCK)
