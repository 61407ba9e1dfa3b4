"""paypos.adapters.vault: card data at rest (AES-256-GCM, NIST SP 800-38D) and keyed lookup hashes (HMAC-SHA256)."""

import hashlib

import pytest

from paypos.adapters.vault import Vault, VaultError, hash_api_secret
from tests.conftest import TEST_DATA_KEY

KEY = bytes.fromhex(TEST_DATA_KEY)
OTHER_KEY = bytes(range(32))
PAN = "4761739001010010"
# Layout: version (1 byte) || nonce (12 bytes) || ciphertext || tag (16 bytes).
HEADER_BYTES = 1 + 12
TAG_BYTES = 16


@pytest.fixture
def vault() -> Vault:
    return Vault(KEY)


# --- seal / open -------------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", [PAN, "0123456789ABCDEFFEDCBA9876543210", "", "Café ☕"])
def test_a_sealed_value_opens_to_the_same_text_under_the_same_purpose(vault: Vault, plaintext: str) -> None:
    assert vault.open(vault.seal(plaintext, "pan"), "pan") == plaintext


def test_a_sealed_value_does_not_contain_the_plaintext(vault: Vault) -> None:
    blob = vault.seal(PAN, "pan")

    assert PAN.encode() not in blob
    assert bytes.fromhex(PAN) not in blob
    assert len(blob) == HEADER_BYTES + len(PAN) + TAG_BYTES


def test_a_sealed_value_opens_under_a_second_vault_with_the_same_key(vault: Vault) -> None:
    assert Vault(KEY).open(vault.seal(PAN, "pan"), "pan") == PAN


def test_a_value_sealed_for_one_purpose_cannot_be_opened_as_another(vault: Vault) -> None:
    blob = vault.seal("0123456789ABCDEFFEDCBA9876543210", "bdk")

    with pytest.raises(VaultError, match="^pan: cannot be opened"):
        vault.open(blob, "pan")


def test_a_value_sealed_under_another_data_key_cannot_be_opened(vault: Vault) -> None:
    blob = Vault(OTHER_KEY).seal(PAN, "pan")

    with pytest.raises(VaultError, match="cannot be opened with this data key"):
        vault.open(blob, "pan")


@pytest.mark.parametrize("position", [1, HEADER_BYTES, HEADER_BYTES + 5, -1])
def test_a_sealed_value_with_any_byte_flipped_in_nonce_ciphertext_or_tag_fails(vault: Vault, position: int) -> None:
    blob = bytearray(vault.seal(PAN, "pan"))
    blob[position] ^= 0x01

    with pytest.raises(VaultError):
        vault.open(bytes(blob), "pan")


def test_a_sealed_value_with_an_unknown_version_byte_fails_naming_the_version(vault: Vault) -> None:
    blob = bytearray(vault.seal(PAN, "pan"))
    blob[0] = 2

    with pytest.raises(VaultError, match="not a sealed value of version 1"):
        vault.open(bytes(blob), "pan")


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x01" + bytes(HEADER_BYTES + TAG_BYTES - 2)])
def test_a_blob_too_short_to_hold_nonce_and_tag_fails(vault: Vault, blob: bytes) -> None:
    with pytest.raises(VaultError, match="not a sealed value"):
        vault.open(blob, "pan")


def test_a_truncated_sealed_value_fails(vault: Vault) -> None:
    blob = vault.seal(PAN, "pan")

    with pytest.raises(VaultError):
        vault.open(blob[:-1], "pan")


def test_each_seal_of_the_same_value_uses_a_fresh_nonce(vault: Vault) -> None:
    blobs = [vault.seal(PAN, "pan") for _ in range(50)]
    nonces = {blob[1:HEADER_BYTES] for blob in blobs}

    assert len(nonces) == len(blobs)
    assert len(set(blobs)) == len(blobs)


# --- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_a_data_key_that_is_not_32_bytes_is_refused(length: int) -> None:
    with pytest.raises(VaultError, match="data key must be 32 bytes"):
        Vault(bytes(length))


# --- lookup hashes -------------------------------------------------------------------------


def test_the_lookup_hash_of_a_pan_is_stable_across_vaults_with_the_same_key(vault: Vault) -> None:
    first = vault.lookup_hash(PAN)

    assert first == Vault(KEY).lookup_hash(PAN)
    assert len(first) == 64
    assert int(first, 16) >= 0


def test_the_lookup_hash_depends_on_the_data_key(vault: Vault) -> None:
    assert vault.lookup_hash(PAN) != Vault(OTHER_KEY).lookup_hash(PAN)


def test_the_lookup_hash_depends_on_the_value_and_the_purpose(vault: Vault) -> None:
    assert vault.lookup_hash(PAN) != vault.lookup_hash("4761739001010028")
    assert vault.lookup_hash(PAN, "pan") != vault.lookup_hash(PAN, "token")


def test_the_lookup_hash_is_not_a_plain_hash_of_the_pan(vault: Vault) -> None:
    assert PAN not in vault.lookup_hash(PAN)
    assert vault.lookup_hash(PAN) != hashlib.sha256(PAN.encode()).hexdigest()


# --- API key verifiers -----------------------------------------------------------------------


def test_an_api_secret_hash_is_stable_and_differs_per_secret() -> None:
    assert hash_api_secret("sk_test_a") == hash_api_secret("sk_test_a")
    assert hash_api_secret("sk_test_a") != hash_api_secret("sk_test_b")
    assert "sk_test_a" not in hash_api_secret("sk_test_a")
