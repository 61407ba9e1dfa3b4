"""Card data at rest: AES-256-GCM encryption and keyed lookup hashes.

Two keys are derived from the configured data key with HKDF-SHA256 (RFC 5869),
one to encrypt (AES-GCM, NIST SP 800-38D) and one for HMAC-SHA256 lookup hashes,
so that a PAN can be found by value without ever being stored in clear.

Sealed blob layout: ``version (1 byte) || nonce (12 bytes) || ciphertext+tag``.
The version byte is the seam for key rotation. The ``purpose`` (e.g. "pan",
"bdk") is bound in as associated data, so a BDK blob cannot be opened as a PAN.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = 1
_NONCE_BYTES = 12


class VaultError(ValueError):
    """A sealed value could not be opened (wrong key, wrong purpose, or tampered)."""


def _derive(data_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(data_key)


class Vault:
    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != 32:
            raise VaultError("data key must be 32 bytes")
        self._aead = AESGCM(_derive(data_key, b"paypos/v1/card-data-encryption"))
        self._lookup_key = _derive(data_key, b"paypos/v1/card-data-lookup")

    def seal(self, plaintext: str, purpose: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), _aad(purpose))
        return bytes([_VERSION]) + nonce + sealed

    def open(self, blob: bytes, purpose: str) -> str:
        if len(blob) < 1 + _NONCE_BYTES + 16 or blob[0] != _VERSION:
            raise VaultError(f"{purpose}: not a sealed value of version {_VERSION}")
        nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, sealed, _aad(purpose)).decode()
        except InvalidTag:
            raise VaultError(f"{purpose}: cannot be opened with this data key") from None

    def lookup_hash(self, value: str, purpose: str = "pan") -> str:
        """Keyed hash (HMAC-SHA256) to find a record by PAN without storing the PAN."""
        return hmac.new(self._lookup_key, _aad(purpose) + value.encode(), hashlib.sha256).hexdigest()


def _aad(purpose: str) -> bytes:
    return b"paypos/v1/" + purpose.encode() + b"\x00"


def hash_api_secret(secret: str) -> str:
    """API keys are random 128-bit+ secrets, so a plain SHA-256 is a safe verifier.

    Kept independent of the data key: rotating the data key must not lock every
    merchant out.
    """
    return hashlib.sha256(secret.encode()).hexdigest()
