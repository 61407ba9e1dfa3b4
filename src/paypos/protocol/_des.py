"""DES building blocks shared by the payment-crypto modules (pycryptodome).

Written here rather than called through psec/pyemv on the host's hot path: those
build a ``cryptography`` TripleDES object per call under a warnings filter that
must be swapped process-wide (its TDES is deprecated there), ~10x the cost of
the DES operations themselves (docs/performance.md). The tests cross-check every
caller against pyemv / psec known answers.
"""

from __future__ import annotations

import functools
from typing import Any

from Crypto.Cipher import DES, DES3

from paypos import limits

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


# Why a memo of key schedules: building a pycryptodome cipher object costs ~15x an
# 8-byte encryption under it, and a request uses several keys more than once (the AC
# session key for the ARQC and the ARPC, a MAC key's left half for the chain and the
# output step, a card's ICC master key and PVK on every use). ECB objects hold no chaining
# state, so one object serves every caller. Bounded and small (least recently used out):
# a session key's schedule is gone after a few hundred more requests.
@functools.lru_cache(maxsize=limits.des_key_schedule_cache_entries_max)
def _des(key: bytes) -> Any:
    return DES.new(key, DES.MODE_ECB)


@functools.lru_cache(maxsize=limits.des_key_schedule_cache_entries_max)
def _tdes(key: bytes) -> Any:
    left, right = key[:8], key[8:]
    if left.translate(_ODD_PARITY) == right.translate(_ODD_PARITY):
        return _des(left)  # EDE with equal halves is single DES (pycryptodome's DES3 refuses it)
    return DES3.new(key, DES3.MODE_ECB)


def des_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    return _des(bytes(key)).encrypt(data)


def tdes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """Two-key TDES (EDE) in ECB mode over whole 8-byte blocks.

    With equal halves (parity bits aside) EDE is single DES under the left half, which
    pycryptodome's DES3 refuses to build; compute that value directly.
    """
    return _tdes(bytes(key)).encrypt(data)


def mac_algorithm_3(key: bytes, padded: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 over already padded data: single-DES CBC under K
    (zero IV), then decrypt the last block under K' and encrypt it under K."""
    left = _des(bytes(key[:8]))
    if len(padded) > _CHAIN_IN_PYTHON_MAX:
        chained = DES.new(key[:8], DES.MODE_CBC, iv=_ZERO_IV).encrypt(padded)[-BLOCK:]
    else:  # short inputs (cryptograms): chain by hand under the memoised schedule
        state = 0
        for start in range(0, len(padded), BLOCK):
            state = int.from_bytes(left.encrypt(
                (state ^ int.from_bytes(padded[start:start + BLOCK], "big")).to_bytes(BLOCK, "big")), "big")
        chained = state.to_bytes(BLOCK, "big")
    return left.encrypt(_des(bytes(key[8:])).decrypt(chained))


# Above this many bytes one CBC object (built per call) beats a Python loop of ECB calls.
_CHAIN_IN_PYTHON_MAX = 8 * BLOCK


def pad_method_1(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 1: zeros up to a positive multiple of the block size."""
    return data + bytes(-len(data) % BLOCK if data else BLOCK)


def pad_method_2(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 0x80, then zeros up to a multiple of the block size."""
    data += b"\x80"
    return data + bytes(-len(data) % BLOCK)
