"""The sandbox wallet's deterministic test data: merchant apps and wallet users.
Documented in docs/wallet-gateway.md. EVERY SECRET HERE IS A **TEST** SECRET.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from paypos.networks.sandbox.catalog import CAFE, SANDBOX_SEED, SHOP
from paypos.networks.sandbox.wallet_keys import APP_KEYS

WALLET_KEY_ID = "wallet-rsa2-1"
# The globally unique identifier of paypos collection codes in EMVCo template 26 (ID 00).
QR_GUI = "dev.paypos"


@dataclass(frozen=True, slots=True)
class SandboxApp:
    app_id: str
    merchant_id: str
    name: str


APPS = (
    SandboxApp("2021000000000001", CAFE.merchant_id, "Harbour Café online shop"),
    SandboxApp("2021000000000002", SHOP.merchant_id, "Corner Goods Shop online"),
)
assert {a.app_id for a in APPS} == set(APP_KEYS)


@dataclass(frozen=True, slots=True)
class SandboxWalletUser:
    user_id: str
    phone: str
    name: str
    currency: str  # ISO 4217 alpha
    device_no: int
    credit_score: int
    balance_minor: int
    cards: tuple[str, ...]  # linked sandbox cards (catalog card ids)
    no_confirm_limit_minor: int = 20_000


USERS = (
    SandboxWalletUser("2088100000000001", "13800000001", "Lin Wei", "CNY", 1_000_001, 720, 500_000,
                      ("visa-cvn18-approve",)),
    SandboxWalletUser("2088100000000002", "13800000002", "Zhang Min", "CNY", 1_000_002, 420, 1_000,
                      ("visa-cvn18-insufficient-funds",)),
    SandboxWalletUser("2088100000000003", "14155550003", "Sam Lee", "USD", 1_000_003, 650, 20_000,
                      ("visa-usd-cvn18-approve",), 5_000),
)


def device_secret(user_id: str) -> str:
    """A wallet user's payment-code secret (hex, 20 bytes) — TEST ONLY.

    HMAC-SHA256(SANDBOX_SEED, "paycode:" + user id), first 20 bytes.
    """
    return hmac.new(SANDBOX_SEED, b"paycode:" + user_id.encode(), hashlib.sha256).hexdigest()[:40]
