"""A merchant's secret API keys (issue 6, docs/api.md): create, list, revoke — rotation is a
new key, then the old one revoked.

A key's secret (``sk_test_`` + 40 hex digits, 160 random bits) is shown once, when created;
the store keeps its SHA-256 (``adapters.vault.hash_api_secret``), so a lost secret is replaced,
never recovered. A revoked key is refused from the next request on (authentication reads the
database, never a cache). A merchant always keeps one active key: revoking the last is a
:class:`LastActiveKey`. Every call is scoped to one merchant: another merchant's key is
:class:`KeyNotFound`, exactly like one that does not exist.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from paypos import limits
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import hash_api_secret

TEST_PREFIX = "sk_test_"  # the sandbox is the only mode; live keys would be sk_live_
SECRET_RANDOM_BYTES = 20
KEY_ID_RANDOM_BYTES = 8


class KeyNotFound(LookupError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"no API key {key_id!r}")


class KeyRefused(Exception):
    """A rule of the merchant's key set refuses the change (a 409 at the API)."""


class LastActiveKey(KeyRefused):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"{key_id} is the merchant's last active API key; create a new key before "
                         "revoking this one")


class TooManyKeys(KeyRefused):
    def __init__(self) -> None:
        super().__init__(f"a merchant may hold at most {limits.api_keys_active_per_merchant_max} active API "
                         "keys; revoke one first")


class MerchantNotFound(LookupError):
    def __init__(self, merchant_id: str) -> None:
        super().__init__(f"no merchant {merchant_id!r}")


def create(uow: UnitOfWork, merchant_id: str, label: str, now: datetime,
           random: Callable[[int], bytes] = secrets.token_bytes) -> dict[str, Any]:
    """A new active key; its JSON holds the ``secret``, which is never shown again."""
    if uow.registry.get_merchant(merchant_id) is None:
        raise MerchantNotFound(merchant_id)
    if len(label) > limits.api_key_label_chars_max:
        raise ValueError(f"label must be at most {limits.api_key_label_chars_max} characters")
    active = uow.registry.api_keys_of_merchant(
        merchant_id, limit=limits.api_keys_active_per_merchant_max, active_only=True, lock=True)
    if len(active) >= limits.api_keys_active_per_merchant_max:
        raise TooManyKeys()
    key_id = "key_test_" + random(KEY_ID_RANDOM_BYTES).hex()
    secret = TEST_PREFIX + random(SECRET_RANDOM_BYTES).hex()
    uow.registry.add_api_key(key_id, merchant_id, TEST_PREFIX, hash_api_secret(secret), label, now)
    return {**_json(key_id, TEST_PREFIX, label, now, None), "secret": secret}


def list_keys(uow: UnitOfWork, merchant_id: str) -> tuple[list[dict[str, Any]], bool]:
    """The merchant's keys, newest first, without secrets; and whether older ones were left out."""
    if uow.registry.get_merchant(merchant_id) is None:
        raise MerchantNotFound(merchant_id)
    rows = uow.registry.api_keys_of_merchant(merchant_id, limit=limits.api_keys_listed_max + 1)
    shown = rows[:limits.api_keys_listed_max]
    return [_json(r.key_id, r.prefix, r.label, r.created_at, r.revoked_at) for r in shown], len(rows) > len(shown)


def revoke(uow: UnitOfWork, merchant_id: str, key_id: str, now: datetime) -> dict[str, Any]:
    """Revoke ``key_id`` at once; revoking a revoked key answers it unchanged."""
    active = uow.registry.api_keys_of_merchant(
        merchant_id, limit=limits.api_keys_active_per_merchant_max + 1, active_only=True, lock=True)
    if not any(r.key_id == key_id for r in active):
        return _revoked(uow, merchant_id, key_id)
    if len(active) == 1:
        raise LastActiveKey(key_id)
    uow.registry.revoke_api_key(key_id, now)
    found = next(r for r in active if r.key_id == key_id)
    return _json(found.key_id, found.prefix, found.label, found.created_at, now)


def _revoked(uow: UnitOfWork, merchant_id: str, key_id: str) -> dict[str, Any]:
    rows = uow.registry.api_keys_of_merchant(merchant_id, limit=1, key_id=key_id)
    if not rows:
        raise KeyNotFound(key_id)
    found = rows[0]
    return _json(found.key_id, found.prefix, found.label, found.created_at, found.revoked_at)


def _json(key_id: str, prefix: str, label: str, created_at: datetime, revoked_at: datetime | None) -> dict[str, Any]:
    return {"id": key_id, "object": "api_key", "prefix": prefix, "label": label,
            "status": "revoked" if revoked_at else "active", "created_at": _iso(created_at),
            "revoked_at": _iso(revoked_at) if revoked_at else None}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
