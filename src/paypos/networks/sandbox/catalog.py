"""The sandbox's deterministic test data: one acquirer, two merchants, four
terminals, one issuer and its cards. Documented in docs/sandbox.md.

EVERY KEY HERE IS A WELL-KNOWN **TEST** KEY. They are published on purpose so
that third-party terminals can be built against the sandbox; none may ever be
used with real cards.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from paypos.domain.registry import Acquirer, CardInterface, Funding, Merchant, Terminal

# ANSI X9.24-1 (2009) Annex A test Base Derivation Key — TEST KEY.
TEST_BDK = "0123456789ABCDEFFEDCBA9876543210"
# Issuer card verification key (CVV/CVV2/iCVV) — TEST KEY (the classic Visa CVV
# example keys CVK-A 0123456789ABCDEF, CVK-B FEDCBA9876543210).
TEST_CVK = "0123456789ABCDEFFEDCBA9876543210"
# Issuer PIN verification key for IBM 3624 PIN offsets — TEST KEY.
TEST_PVK = "FEDCBA98765432100123456789ABCDEF"
# Seed that sandbox merchants' API keys and per-card IMKs derive from — TEST ONLY.
SANDBOX_SEED = b"paypos sandbox TEST seed - never use for live payments"

ACQUIRER = Acquirer(acquirer_id="10000000001", name="paypos Sandbox Acquirer")
ISSUER_ID = "SANDBOX-ISSUER"
ISSUER_NAME = "paypos Sandbox Issuer Bank"

CAFE = Merchant(
    merchant_id="PPCAFE000000001", acquirer_id=ACQUIRER.acquirer_id, name="Harbour Café",
    mcc="5814", currency="CNY", country="156", city="Shanghai", address="88 Zhongshan East 1st Road",
)
SHOP = Merchant(
    merchant_id="PPSHOP000000001", acquirer_id=ACQUIRER.acquirer_id, name="Corner Goods Shop",
    mcc="5999", currency="USD", country="840", city="San Francisco", address="500 Market Street",
)
MERCHANTS = (CAFE, SHOP)

# Initial KSNs: key set id FFFF987654, device ids differ, transaction counter 0
# (the low 21 bits are zero). FFFF9876543210E00000 is the X9.24-1 Annex A test KSN.
TERMINALS = (
    Terminal("CAFE0001", CAFE.merchant_id, "156", "FFFF9876543210E00000", False, 100_000, 500_000, 10_000),
    Terminal("CAFE0002", CAFE.merchant_id, "156", "FFFF9876543210C00000", True, 100_000, 500_000, 10_000),
    Terminal("SHOP0001", SHOP.merchant_id, "840", "FFFF9876543210A00000", False, 10_000, 50_000, 2_000),
    Terminal("SHOP0002", SHOP.merchant_id, "840", "FFFF9876543210800000", True, 10_000, 50_000, 2_000),
)

ALL_INTERFACES = (CardInterface.CHIP, CardInterface.CONTACTLESS, CardInterface.MAGSTRIPE)


@dataclass(frozen=True, slots=True)
class SandboxCard:
    card_id: str
    pan: str
    expiry: str  # YYMM
    psn: str
    service_code: str  # ISO/IEC 7813: 201 = chip card, 101 = magstripe only
    scheme: str
    funding: Funding
    currency: str  # ISO 4217 numeric
    interfaces: tuple[CardInterface, ...]
    cvn: int | None
    behavior: str
    pin: str
    opening_minor: int  # balance (debit/prepaid) or credit limit (credit)
    blocked: bool = False
    token_for: str | None = None  # phone-wallet token: the funding card's id


# PANs are Luhn-valid numbers in test ranges; each card's purpose is its id.
CARDS = (
    SandboxCard("visa-cvn18-approve", "4761739001010010", "3012", "01", "201", "visa", Funding.DEBIT, "156",
                ALL_INTERFACES, 18, "approve", "1234", 500_000),
    SandboxCard("visa-cvn10-approve", "4761739001010028", "3012", "01", "201", "visa", Funding.CREDIT, "156",
                (CardInterface.CHIP, CardInterface.MAGSTRIPE), 10, "approve", "1234", 1_000_000),
    SandboxCard("visa-cvn18-insufficient-funds", "4761739001010036", "3012", "01", "201", "visa", Funding.DEBIT,
                "156", ALL_INTERFACES, 18, "insufficient_funds", "1234", 1_000),
    SandboxCard("visa-cvn18-blocked", "4761739001010044", "3012", "01", "201", "visa", Funding.DEBIT, "156",
                ALL_INTERFACES, 18, "blocked", "1234", 500_000, blocked=True),
    SandboxCard("visa-cvn18-expired", "4761739001010051", "2201", "01", "201", "visa", Funding.DEBIT, "156",
                ALL_INTERFACES, 18, "expired", "1234", 500_000),
    SandboxCard("mastercard-magstripe-approve", "5413330089010012", "3012", "00", "101", "mastercard",
                Funding.DEBIT, "156", (CardInterface.MAGSTRIPE,), None, "approve", "4321", 300_000),
    SandboxCard("unionpay-prepaid-approve", "6210948000000011", "3012", "01", "201", "unionpay", Funding.PREPAID,
                "156", ALL_INTERFACES, 18, "approve", "8888", 20_000),
    SandboxCard("phone-wallet-token-approve", "4895370012340011", "3012", "01", "201", "visa", Funding.DEBIT, "156",
                (CardInterface.CONTACTLESS,), 18, "approve", "1234", 0, token_for="visa-cvn18-approve"),
    SandboxCard("visa-usd-cvn18-approve", "4761739001020019", "3012", "01", "201", "visa", Funding.DEBIT, "840",
                ALL_INTERFACES, 18, "approve", "1234", 250_000),
    # Card not present: the issuer's risk always asks for the cardholder's one-time code.
    SandboxCard("visa-cvn18-challenge", "4761739001010077", "3012", "01", "201", "visa", Funding.DEBIT, "156",
                ALL_INTERFACES, 18, "challenge", "1234", 500_000),
    SandboxCard("visa-usd-cvn10-insufficient-funds", "4761739001020027", "3012", "01", "201", "visa",
                Funding.CREDIT, "840", (CardInterface.CHIP, CardInterface.MAGSTRIPE), 10, "insufficient_funds",
                "1234", 500),
)

ACCOUNT_CODE_FOR_FUNDING = {
    Funding.DEBIT: "cardholder_funds",
    Funding.CREDIT: "credit_line",
    Funding.PREPAID: "prepaid_balance",
}


def card_imk_ac(card_id: str) -> str:
    """Per-card issuer master key for application cryptograms — TEST KEY.

    HMAC-SHA256(SANDBOX_SEED, "imk-ac:" + card id), first 16 bytes, upper hex.
    """
    return hmac.new(SANDBOX_SEED, b"imk-ac:" + card_id.encode(), hashlib.sha256).hexdigest()[:32].upper()


def merchant_api_key(merchant_id: str) -> tuple[str, str]:
    """(key id, secret) of a sandbox merchant's test API key — derived, so the
    sandbox can print it while the store keeps only its hash."""
    digest = hmac.new(SANDBOX_SEED, b"api-key:" + merchant_id.encode(), hashlib.sha256).hexdigest()
    return f"key_test_{digest[:12]}", f"sk_test_{digest[12:52]}"
