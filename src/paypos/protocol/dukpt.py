"""TDES DUKPT (Derived Unique Key Per Transaction), host side: pure functions over ``bytes``.

Standard: ANSI X9.24-1:2009, Annex A. Clause numbers below follow the citations in
openemv/dukpt and moov-io/dukpt (the standard itself is not freely available):

- The KSN (key serial number) is 80 bits; its rightmost 21 bits are the transaction
  counter. A device only uses counters with at most ten 1 bits (A.2), so it can perform
  2**20 - 1 transactions; the last valid counter is 0x1FF800.
- A.6: the initial key (IPEK) is the leftmost 64 bits of the KSN, counter cleared,
  TDES-encrypted under the BDK (left half) and under BDK XOR
  ``C0C0C0C000000000C0C0C0C000000000`` (right half).
- A.2 / A.3: the current transaction key is the IPEK run through the *non-reversible
  key generation process* once for each 1 bit of the counter, from the high bit down,
  with that bit added to the KSN register each time.
- A.4.1, Table A-1: the working keys are variants of the current key (the XOR masks
  below). The 2009 edition names separate request and response variants for the MAC
  and data keys; the data keys then pass through a one-way step (Figure A-2): each half
  of the variant key is TDES-encrypted under the variant key itself.

In ISO 8583 messages of our profile the KSN travels in field 62, so KSN problems carry
``field="62"``; key problems carry the key's name ("bdk", "ipek", "key"). No error message
includes key material.

We implement DUKPT ourselves instead of depending on a young library (pydukpt 0.1 is
used only as an independent oracle in the tests) so that the host's derivation can later
be cached and optimised, e.g. keeping the IPEK per device or intermediate keys per
counter prefix.
"""

from __future__ import annotations

import string
import threading
from collections import OrderedDict
from dataclasses import dataclass

from paypos.protocol._des import des_ecb_encrypt, tdes_ecb_encrypt, xor
from paypos.protocol.errors import KeepsFields

__all__ = [
    "COUNTER_MASK",
    "COUNTER_MAX",
    "COUNTER_ONE_BITS_MAX",
    "DATA_REQUEST_VARIANT",
    "DATA_RESPONSE_VARIANT",
    "KEY_BYTES",
    "KEY_REGISTER_MASK",
    "KSN_BYTES",
    "KSN_FIELD",
    "MAC_REQUEST_VARIANT",
    "MAC_RESPONSE_VARIANT",
    "PIN_VARIANT",
    "DukptError",
    "KsnExhausted",
    "WorkingKeys",
    "data_request_key",
    "data_response_key",
    "derive_ipek",
    "derive_transaction_key",
    "derive_working_keys",
    "initial_ksn",
    "is_valid_counter",
    "ksn_counter",
    "ksn_with_counter",
    "mac_request_key",
    "mac_response_key",
    "next_ksn",
    "parse_ksn",
    "pin_key",
]

KSN_BYTES = 10
KEY_BYTES = 16
KSN_FIELD = "62"
COUNTER_MASK = 0x1FFFFF  # the rightmost 21 bits of the KSN
COUNTER_ONE_BITS_MAX = 10
COUNTER_MAX = 0x1FF800  # the largest 21-bit value with at most ten 1 bits
_KSN_HEX_CHARS = 2 * KSN_BYTES
_REGISTER_OFFSET = KSN_BYTES - 8  # the KSN register is the rightmost 64 bits of the KSN
_HEX_DIGITS = frozenset(string.hexdigits)

# A.6 and A.2 step 4: the mask for the right half of the IPEK and the left half of each
# non-reversible step.
KEY_REGISTER_MASK = bytes.fromhex("C0C0C0C000000000C0C0C0C000000000")
# A.4.1, Table A-1: variants of the current transaction key.
PIN_VARIANT = bytes.fromhex("00000000000000FF00000000000000FF")
MAC_REQUEST_VARIANT = bytes.fromhex("000000000000FF00000000000000FF00")
MAC_RESPONSE_VARIANT = bytes.fromhex("00000000FF00000000000000FF000000")
DATA_REQUEST_VARIANT = bytes.fromhex("0000000000FF00000000000000FF0000")
DATA_RESPONSE_VARIANT = bytes.fromhex("000000FF00000000000000FF00000000")

_COUNTER_RULE = (
    f"field {KSN_FIELD}: KSN counter must be 1-0x1FFFFF with at most "
    f"{COUNTER_ONE_BITS_MAX} one-bits (ANSI X9.24-1:2009 A.2)"
)


class DukptError(KeepsFields, ValueError):
    """A DUKPT input broke a rule; ``field`` is "62" for the KSN, else the key's name."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class KsnExhausted(DukptError):
    """The KSN has no next valid counter (it is at 0x1FF800): the device must stop."""

    def __init__(self, message: str, *, field: str = KSN_FIELD) -> None:
        super().__init__(message, field=field)


@dataclass(frozen=True, repr=False)
class WorkingKeys:
    """The A.4.1 working keys for one transaction; ``repr`` hides them."""

    pin: bytes
    mac_request: bytes
    mac_response: bytes
    data_request: bytes
    data_response: bytes

    def __repr__(self) -> str:
        return "WorkingKeys(<5 keys hidden>)"


def _exact_bytes(value: object, length: int, what: str, field: str) -> bytes:
    data = bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else None
    if data is None or len(data) != length:
        raise DukptError(f"{what} must be {length} bytes", field=field)
    return data


def _ksn(ksn: object) -> bytes:
    return _exact_bytes(ksn, KSN_BYTES, f"field {KSN_FIELD}: KSN", KSN_FIELD)


def _key(key: object, name: str) -> bytes:
    return _exact_bytes(key, KEY_BYTES, f"{name.upper()} (a double-length TDES key)", name)


_xor = xor
_des_encrypt = des_ecb_encrypt
_tdes_encrypt = tdes_ecb_encrypt


def parse_ksn(text: str) -> bytes:
    """The 10-byte KSN from its 20 hex characters (as field 62 carries it in our profile)."""
    if not isinstance(text, str) or len(text) != _KSN_HEX_CHARS or not _HEX_DIGITS.issuperset(text):
        raise DukptError(
            f"field {KSN_FIELD}: KSN must be {_KSN_HEX_CHARS} hex characters", field=KSN_FIELD
        )
    return bytes.fromhex(text)


def ksn_counter(ksn: bytes) -> int:
    """The transaction counter: the rightmost 21 bits of the KSN (X9.24-1:2009 A.2)."""
    return int.from_bytes(_ksn(ksn), "big") & COUNTER_MASK


def ksn_with_counter(ksn: bytes, counter: int) -> bytes:
    """``ksn`` with its 21-bit transaction counter replaced by ``counter`` (0-0x1FFFFF)."""
    data = _ksn(ksn)
    if type(counter) is not int or not 0 <= counter <= COUNTER_MASK:
        raise DukptError(
            f"field {KSN_FIELD}: KSN counter must be an int in 0-0x1FFFFF (21 bits)",
            field=KSN_FIELD,
        )
    value = (int.from_bytes(data, "big") & ~COUNTER_MASK) | counter
    return value.to_bytes(KSN_BYTES, "big")


def initial_ksn(ksn: bytes) -> bytes:
    """The device's initial KSN: ``ksn`` with the counter bits zeroed (X9.24-1:2009 A.6)."""
    return ksn_with_counter(ksn, 0)


def is_valid_counter(counter: object) -> bool:
    """True for a counter a device may use: 1-0x1FFFFF with at most ten 1 bits (A.2).

    Anything else (0, more one-bits, out of range, not an ``int``) is simply not valid.
    """
    return (
        type(counter) is int
        and 0 < counter <= COUNTER_MASK
        and counter.bit_count() <= COUNTER_ONE_BITS_MAX
    )


def next_ksn(ksn: bytes) -> bytes:
    """The KSN of the device's next transaction: the next counter with at most ten 1 bits.

    X9.24-1:2009 A.2 skips counters with more than ten 1 bits by adding the counter's
    lowest 1 bit instead of 1: every value in between keeps all of its 1 bits and adds
    more. Raises :class:`KsnExhausted` past 0x1FF800, the last valid counter.
    """
    current = ksn_counter(ksn)
    counter = current + 1
    while counter.bit_count() > COUNTER_ONE_BITS_MAX:
        counter += counter & -counter
    if counter > COUNTER_MAX:
        raise KsnExhausted(
            f"field {KSN_FIELD}: KSN counter 0x{current:06X} has no valid successor "
            "(ANSI X9.24-1:2009 A.2: the device must cease operation)"
        )
    return ksn_with_counter(ksn, counter)


def derive_ipek(bdk: bytes, ksn: bytes) -> bytes:
    """The initial PIN encryption key (IPEK, "initial key") of the device (X9.24-1:2009 A.6).

    Its left half is the leftmost 64 bits of the KSN, counter zeroed, TDES-encrypted
    under the BDK; its right half the same under BDK XOR :data:`KEY_REGISTER_MASK`. The
    counter in ``ksn`` is ignored: every KSN of a device gives the same IPEK.
    """
    key = _key(bdk, "bdk")
    serial = initial_ksn(ksn)[:8]
    return _tdes_encrypt(key, serial) + _tdes_encrypt(_xor(key, KEY_REGISTER_MASK), serial)


def _one_way_half(key: bytes, register: bytes) -> bytes:
    """A.2 non-reversible key generation, steps 1-3 (or 5-7 on the masked key)."""
    left, right = key[:8], key[8:]
    return _xor(_des_encrypt(left, _xor(register, right)), right)


def _non_reversible_key(key: bytes, register: bytes) -> bytes:
    """A.2 non-reversible key generation process: the next key from ``key`` and the register."""
    return _one_way_half(_xor(key, KEY_REGISTER_MASK), register) + _one_way_half(key, register)


def derive_transaction_key(ipek: bytes, ksn: bytes) -> bytes:
    """The current transaction key for the KSN's counter (X9.24-1:2009 A.3, host side).

    For each 1 bit of the counter, from bit 20 down, the bit is set in the KSN register
    (the rightmost 64 bits of the KSN, counter cleared) and the key is replaced by the
    non-reversible transformation of the key under the register. A counter a device never
    uses (0, or more than ten 1 bits) is rejected as bad field 62 data.
    """
    key, base, prefixes = _counter_walk(ipek, ksn)
    for prefix in prefixes:
        key = _non_reversible_key(key, (base | prefix).to_bytes(8, "big"))
    return key


def _counter_walk(ipek: bytes, ksn: bytes) -> tuple[bytes, int, list[int]]:
    """The checked IPEK, the KSN register with its counter cleared, and the counter's 1 bits
    from bit 20 down, accumulated (the registers the walk sets, one per step)."""
    key = _key(ipek, "ipek")
    data = _ksn(ksn)
    counter = ksn_counter(data)
    if not is_valid_counter(counter):
        raise DukptError(_COUNTER_RULE, field=KSN_FIELD)
    base = int.from_bytes(data[_REGISTER_OFFSET:], "big") & ~COUNTER_MASK
    prefixes: list[int] = []
    for bit in (1 << shift for shift in range(20, -1, -1)):
        if counter & bit:
            prefixes.append((prefixes[-1] if prefixes else 0) | bit)
    return key, base, prefixes


class TransactionKeyCache:
    """Host-side memo of the A.3 walk: the key after each prefix of the counter's 1 bits.

    A device's counters rise one by one, so the key for counter ``c`` is one
    non-reversible step from the key of ``c`` without its lowest 1 bit, which an earlier
    transaction already computed: one step per request instead of up to ten. Results are
    exactly :func:`derive_transaction_key`'s (the tests compare them); entries are
    bounded (least recently used first out) and guarded by a lock for threaded hosts.
    """

    def __init__(self, entries_max: int) -> None:
        self._entries_max = entries_max
        self._keys: OrderedDict[tuple[bytes, int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def derive(self, ipek: bytes, ksn: bytes) -> bytes:
        """The same key as ``derive_transaction_key(ipek, ksn)``."""
        initial, base, prefixes = _counter_walk(ipek, ksn)
        key, start = initial, 0
        with self._lock:
            for depth in range(len(prefixes), 0, -1):
                entry = (initial, base, prefixes[depth - 1])
                if entry in self._keys:
                    self._keys.move_to_end(entry)
                    key, start = self._keys[entry], depth
                    break
        computed = []
        for prefix in prefixes[start:]:
            key = _non_reversible_key(key, (base | prefix).to_bytes(8, "big"))
            computed.append(((initial, base, prefix), key))
        with self._lock:
            self._keys.update(computed)
            while len(self._keys) > self._entries_max:
                self._keys.popitem(last=False)
        return key


def pin_key(key: bytes) -> bytes:
    """The PIN encryption key: ``key`` XOR :data:`PIN_VARIANT` (A.4.1, Table A-1)."""
    return _xor(_key(key, "key"), PIN_VARIANT)


def mac_request_key(key: bytes) -> bytes:
    """The request MAC key: ``key`` XOR :data:`MAC_REQUEST_VARIANT` (A.4.1, Table A-1)."""
    return _xor(_key(key, "key"), MAC_REQUEST_VARIANT)


def mac_response_key(key: bytes) -> bytes:
    """The response MAC key: ``key`` XOR :data:`MAC_RESPONSE_VARIANT` (A.4.1, Table A-1)."""
    return _xor(_key(key, "key"), MAC_RESPONSE_VARIANT)


def _data_key(key: bytes, variant: bytes) -> bytes:
    """A.4.1, Figure A-2: each half of the variant key TDES-encrypted under that variant key."""
    variant_key = _xor(_key(key, "key"), variant)
    return _tdes_encrypt(variant_key, variant_key)  # ECB: the two halves independently


def data_request_key(key: bytes) -> bytes:
    """The request data encryption key: variant :data:`DATA_REQUEST_VARIANT`, then one-way."""
    return _data_key(key, DATA_REQUEST_VARIANT)


def data_response_key(key: bytes) -> bytes:
    """The response data encryption key: variant :data:`DATA_RESPONSE_VARIANT`, then one-way."""
    return _data_key(key, DATA_RESPONSE_VARIANT)


def working_keys(transaction_key: bytes, *, with_data: bool = True) -> WorkingKeys:
    """A transaction key's PIN, MAC and (unless ``with_data`` is False, left empty) data keys."""
    return WorkingKeys(
        pin=pin_key(transaction_key),
        mac_request=mac_request_key(transaction_key),
        mac_response=mac_response_key(transaction_key),
        data_request=data_request_key(transaction_key) if with_data else b"",
        data_response=data_response_key(transaction_key) if with_data else b"",
    )


def derive_working_keys(bdk: bytes, ksn: bytes) -> WorkingKeys:
    """BDK and KSN to the transaction's PIN, MAC and data keys (A.6, A.3, A.4.1)."""
    return working_keys(derive_transaction_key(derive_ipek(bdk, ksn), ksn))
