"""Seed the sandbox (idempotently) and list it in the exact shapes testers read.

The listings print keys, PANs, PINs and CVV2s on purpose: they are the
sandbox's published TEST credentials (docs/sandbox.md). Nothing else in paypos
prints card data unmasked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import Vault, hash_api_secret
from paypos.domain.ledger import AccountFlags, TransferRequest, TransferResult
from paypos.domain.money import currency as currency_of
from paypos.domain.registry import CardInterface, Funding, IssuerCard, Terminal
from paypos.networks.sandbox import catalog
from paypos.protocol.card import Track2, build_track2, luhn_check_digit, mask_pan
from paypos.protocol.cardsec import cvv, cvv2, ibm3624_offset, ibm3624_pin_from_offset


class SandboxError(RuntimeError):
    """The sandbox store disagrees with the catalog (e.g. a failed opening balance)."""


@dataclass
class SeedReport:
    created: list[str] = field(default_factory=list)

    @property
    def nothing_new(self) -> bool:
        return not self.created


PLATFORM = "platform"


def merchant_owner(merchant_id: str) -> str:
    return f"merchant:{merchant_id}"


def issuer_owner(issuer_id: str) -> str:
    return f"issuer:{issuer_id}"


def card_owner_ref(card_id: str) -> str:
    return f"card:{card_id}"


def seed_sandbox(uow: UnitOfWork, vault: Vault, now: datetime) -> SeedReport:
    """Create whatever of the sandbox catalog is missing; a second run creates nothing."""
    report = SeedReport()
    _seed_acquirer_and_merchants(uow, now, report)
    _seed_terminals(uow, vault, now, report)
    _seed_issuer_and_cards(uow, vault, now, report)
    _seed_platform_accounts(uow)
    _seed_pricing(uow, now, report)
    from paypos.services.wallet import seed_wallet  # the wallet links sandbox cards: seeded after them

    report.created.extend(seed_wallet(uow, vault, now))
    _seed_console_users(uow, now, report)
    return report


def _seed_console_users(uow: UnitOfWork, now: datetime, report: SeedReport) -> None:
    """The TEST console users (networks/sandbox/console_catalog.py), with precomputed hashes."""
    from paypos.adapters.db.console import ConsoleUser, SqlConsoleStore
    from paypos.networks.sandbox.console_catalog import CONSOLE_USERS

    store = SqlConsoleStore(uow.connection)
    for spec in CONSOLE_USERS:
        if store.get_user(spec.id) is not None or store.user_by_email(spec.email) is not None:
            continue
        store.add_user(ConsoleUser(
            id=spec.id, email=spec.email, display_name=spec.display_name, password_hash=spec.password_hash,
            role=spec.role, merchant_id=spec.merchant_id, refund_limit_minor=spec.refund_limit_minor,
            totp_secret_enc=None, totp_enabled=False, totp_last_step=None, failed_attempts=0, locked_until=None,
            status="active", created_at=now, updated_at=now))
        report.created.append(f"console user {spec.email}")


def list_console_users() -> list[dict[str, object]]:
    """The TEST console logins (email, password, role, merchant) for `paypos sandbox console-users`."""
    from paypos.networks.sandbox.console_catalog import CONSOLE_USERS

    return [{"email": u.email, "password": u.password, "role": u.role, "merchant_id": u.merchant_id,
             "refund_limit_minor": u.refund_limit_minor if u.role == "cashier" else None} for u in CONSOLE_USERS]


def _seed_acquirer_and_merchants(uow: UnitOfWork, now: datetime, report: SeedReport) -> None:
    if uow.registry.get_acquirer(catalog.ACQUIRER.acquirer_id) is None:
        uow.registry.add_acquirer(catalog.ACQUIRER, now)
        report.created.append(f"acquirer {catalog.ACQUIRER.acquirer_id}")
    for merchant in catalog.MERCHANTS:
        if uow.registry.get_merchant(merchant.merchant_id) is None:
            uow.registry.add_merchant(merchant, now)
            report.created.append(f"merchant {merchant.merchant_id}")
        key_id, secret = catalog.merchant_api_key(merchant.merchant_id)
        if not uow.registry.api_key_exists(key_id):
            uow.registry.add_api_key(key_id, merchant.merchant_id, "sk_test_", hash_api_secret(secret), "sandbox", now)
        open_merchant_accounts(uow, merchant.merchant_id, merchant.currency)


def open_merchant_accounts(uow: UnitOfWork, merchant_id: str, currency_alpha: str) -> None:
    """A merchant's ledger accounts (idempotent): the sandbox seed and an approved application."""
    owner = merchant_owner(merchant_id)
    uow.ledger.open_account(owner, owner, "merchant_pending", currency_alpha)
    # Online payments of escrow requests, held until the goods arrive (issue 6).
    uow.ledger.open_account(owner, owner, "merchant_escrow", currency_alpha)
    # Settled funds the merchant can be paid (or refund from): never below zero.
    uow.ledger.open_account(owner, owner, "merchant_available", currency_alpha,
                            AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)


def _seed_pricing(uow: UnitOfWork, now: datetime, report: SeedReport) -> None:
    """A standard plan per currency (today's flat rates) assigned to every sandbox merchant
    that has no plan yet (docs/pricing.md)."""
    from paypos.domain.pricing import standard_plan, standard_plan_id
    from paypos.services import pricing

    for merchant in catalog.MERCHANTS:
        plan_id = standard_plan_id(merchant.currency)
        if pricing.create_plan(uow, standard_plan(merchant.currency, plan_id), now, "system")[1]:
            report.created.append(f"pricing plan {plan_id}")
        if not uow.pricing.assignments(merchant.merchant_id):
            pricing.assign(uow, merchant.merchant_id, plan_id, now, now, "system")
            report.created.append(f"pricing plan {plan_id} for merchant {merchant.merchant_id}")


def _seed_terminals(uow: UnitOfWork, vault: Vault, now: datetime, report: SeedReport) -> None:
    for terminal in catalog.TERMINALS:
        if uow.registry.get_terminal(terminal.terminal_id) is None:
            uow.registry.add_terminal(terminal, vault.seal(catalog.TEST_BDK, "bdk"), now)
            report.created.append(f"terminal {terminal.terminal_id}")


def _seed_platform_accounts(uow: UnitOfWork) -> None:
    for alpha in sorted({m.currency for m in catalog.MERCHANTS}):
        for code in ("fees_revenue", "scheme_clearing", "disputes_clearing"):
            uow.ledger.open_account(PLATFORM, PLATFORM, code, alpha)


def _seed_issuer_and_cards(uow: UnitOfWork, vault: Vault, now: datetime, report: SeedReport) -> None:
    if not uow.registry.issuer_exists(catalog.ISSUER_ID):
        uow.registry.add_issuer(catalog.ISSUER_ID, catalog.ISSUER_NAME, now)
        report.created.append(f"issuer {catalog.ISSUER_ID}")
    for spec in catalog.CARDS:
        if uow.registry.get_card(spec.card_id) is None:
            _add_card(uow, vault, spec, now)
            report.created.append(f"card {spec.card_id}")
        if spec.token_for is None:
            _open_card_account(uow, spec, now)


def _add_card(uow: UnitOfWork, vault: Vault, spec: catalog.SandboxCard, now: datetime) -> None:
    card = IssuerCard(
        card_id=spec.card_id,
        issuer_id=catalog.ISSUER_ID,
        pan_first6=spec.pan[:6],
        pan_last4=spec.pan[-4:],
        expiry=spec.expiry,
        psn=spec.psn,
        service_code=spec.service_code,
        scheme=spec.scheme,
        funding=spec.funding,
        currency=spec.currency,
        interfaces=spec.interfaces,
        cvn=spec.cvn,
        behavior=spec.behavior,
        status="blocked" if spec.blocked else "active",
        pin_offset=ibm3624_offset(catalog.TEST_PVK, spec.pan, spec.pin),
        token_for_card_id=spec.token_for,
    )
    sealed = {
        "pan_enc": vault.seal(spec.pan, "pan"),
        "imk_ac_enc": vault.seal(catalog.card_imk_ac(spec.card_id), "imk_ac") if spec.cvn else None,
        "cvk_enc": vault.seal(catalog.TEST_CVK, "cvk"),
        "pvk_enc": vault.seal(catalog.TEST_PVK, "pvk"),
    }
    uow.registry.add_card(card, sealed, vault.lookup_hash(spec.pan), now)


def _open_card_account(uow: UnitOfWork, spec: catalog.SandboxCard, now: datetime) -> None:
    alpha = currency_of(spec.currency).alpha
    owner_ref = card_owner_ref(spec.card_id)
    account = uow.ledger.open_account(
        owner_ref, f"card:{mask_pan(spec.pan)}", catalog.ACCOUNT_CODE_FOR_FUNDING[spec.funding], alpha,
        AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    )
    issuer = uow.ledger.open_account(
        issuer_owner(catalog.ISSUER_ID), issuer_owner(catalog.ISSUER_ID), "issuer_funding", alpha
    )
    if spec.opening_minor <= 0:
        return
    opening = TransferRequest(
        id=f"sandbox:opening:{spec.card_id}",
        debit_account_id=issuer.id,
        credit_account_id=account.id,
        amount=spec.opening_minor,
        currency=alpha,
        code="opening_balance",
    )
    (outcome,) = uow.ledger.create_transfers([opening], now)
    if outcome.result not in (TransferResult.OK, TransferResult.EXISTS):
        raise SandboxError(f"opening balance of {spec.card_id}: {outcome.result.value}")


# --- listings ----------------------------------------------------------------


def card_account_owner_ref(card: IssuerCard) -> str:
    """The ledger owner whose account a card spends from (a wallet token spends its funding card's)."""
    return card_owner_ref(card.token_for_card_id or card.card_id)


def list_cards(uow: UnitOfWork, vault: Vault, only: set[str] | None = None) -> list[dict[str, object]]:
    rows = []
    order = {spec.card_id: index for index, spec in enumerate(catalog.CARDS)}
    cards = sorted(uow.registry.list_cards(), key=lambda c: (order.get(c.card_id, len(order)), c.card_id))
    for card in cards:
        if only is not None and card.card_id not in only:
            continue
        sealed = uow.registry.card_sealed(card.card_id)
        pan = vault.open(sealed["pan_enc"] or b"", "pan")
        cvk = vault.open(sealed["cvk_enc"] or b"", "cvk")
        pvk = vault.open(sealed["pvk_enc"] or b"", "pvk")
        imk = vault.open(sealed["imk_ac_enc"], "imk_ac") if sealed["imk_ac_enc"] else None
        rows.append(_card_row(uow, card, pan, cvk, pvk, imk))
    return rows


def sandbox_track2(pan: str, card: IssuerCard, cvk: str) -> str:
    """Track 2 with discretionary data PVKI(1) + IBM 3624 offset + CVV(3) + 000."""
    discretionary = "1" + card.pin_offset + cvv(cvk, pan, card.expiry, card.service_code) + "000"
    return build_track2(Track2(pan, card.expiry, card.service_code, discretionary))


def _card_row(uow: UnitOfWork, card: IssuerCard, pan: str, cvk: str, pvk: str, imk: str | None) -> dict[str, object]:
    funding_card = uow.registry.get_card(card.token_for_card_id) if card.token_for_card_id else card
    if funding_card is None:
        raise SandboxError(f"card {card.card_id} is a token for a missing card")
    alpha = currency_of(card.currency).alpha
    account = uow.ledger.find_account(
        card_account_owner_ref(card), catalog.ACCOUNT_CODE_FOR_FUNDING[funding_card.funding], alpha
    )
    return {
        "id": card.card_id,
        "pan": pan,
        "expiry": card.expiry,
        "psn": card.psn,
        "track2": sandbox_track2(pan, card, cvk),
        "service_code": card.service_code,
        "pin": ibm3624_pin_from_offset(pvk, pan, card.pin_offset),
        "cvv2": cvv2(cvk, pan, card.expiry),
        "cvn": card.cvn,
        "imk_ac": imk,
        "interfaces": [i.value for i in card.interfaces],
        "scheme": card.scheme,
        "funding": card.funding.value,
        "currency": card.currency,
        "behavior": card.behavior,
        "status": card.status,
        "token_for": card.token_for_card_id,
        "available_minor": account.balances.available_credit_balance if account else 0,
    }


def list_terminals(uow: UnitOfWork, vault: Vault, only: set[str] | None = None) -> list[dict[str, object]]:
    rows = []
    for terminal in uow.registry.list_terminals():
        if only is not None and terminal.terminal_id not in only:
            continue
        sealed = uow.registry.terminal_bdk_sealed(terminal.terminal_id) or b""
        rows.append(
            {
                "terminal_id": terminal.terminal_id,
                "merchant_id": terminal.merchant_id,
                "currency": terminal.currency,
                "bdk": vault.open(sealed, "bdk"),
                "initial_ksn": terminal.initial_ksn,
                "mac_required": terminal.mac_required,
                "contactless_cvm_limit_minor": terminal.contactless_cvm_limit_minor,
                "contactless_txn_limit_minor": terminal.contactless_txn_limit_minor,
                "floor_limit_minor": terminal.floor_limit_minor,
                "status": terminal.status,
            }
        )
    return rows


def list_merchants(uow: UnitOfWork) -> list[dict[str, object]]:
    rows = []
    sandbox_ids = {m.merchant_id for m in catalog.MERCHANTS}
    for merchant in uow.registry.list_merchants():
        # Only sandbox merchants have a derivable test key; others' keys exist only as hashes.
        secret = catalog.merchant_api_key(merchant.merchant_id)[1] if merchant.merchant_id in sandbox_ids else None
        rows.append(
            {
                "merchant_id": merchant.merchant_id,
                "name": merchant.name,
                "mcc": merchant.mcc,
                "currency": merchant.currency,
                "country": merchant.country,
                "city": merchant.city,
                "address": merchant.address,
                "api_key": secret,
            }
        )
    return rows


def funding_account_code(funding: Funding) -> str:
    return catalog.ACCOUNT_CODE_FOR_FUNDING[funding]


# --- more terminals and cards, for load generators ------------------------------------

# Added terminals' DUKPT device ids start here, clear of the catalog's (0x19084-0x19087).
_ADDED_DEVICE_ID_BASE = 0x20000
_DEVICE_ID_MAX = 0x7FFFF  # 19 bits between the key set id and the 21-bit counter
_ADDED_CARD_BIN = "4761738"  # 7 digits + 8-digit sequence + Luhn digit = 16


class SandboxInputError(ValueError):
    """A bad argument to add-terminals / add-cards; the message names it."""


def add_terminals(
    uow: UnitOfWork, vault: Vault, count: int, merchant_id: str, mac_required: bool, now: datetime
) -> list[str]:
    """Provision ``count`` more TEST terminals for a merchant (ids T0000001, ...)."""
    merchant = uow.registry.get_merchant(merchant_id)
    if merchant is None:
        raise SandboxInputError(f"--merchant: no merchant {merchant_id!r}")
    template = next(t for t in catalog.TERMINALS if t.merchant_id == merchant_id) if any(
        t.merchant_id == merchant_id for t in catalog.TERMINALS) else catalog.TERMINALS[0]
    existing = {t.terminal_id for t in uow.registry.list_terminals()}
    added: list[str] = []
    sequence = sum(1 for t in existing if t.startswith("T")) + 1
    while len(added) < count:
        terminal_id = f"T{sequence:07d}"
        device_id = _ADDED_DEVICE_ID_BASE + sequence
        if device_id > _DEVICE_ID_MAX:
            raise SandboxInputError("no DUKPT device ids left for more terminals")
        sequence += 1
        if terminal_id in existing:
            continue
        ksn = ((0xFFFF987654 << 40) | (device_id << 21)).to_bytes(10, "big").hex().upper()
        terminal = Terminal(
            terminal_id, merchant_id, currency_of(merchant.currency).numeric, ksn, mac_required,
            template.contactless_cvm_limit_minor, template.contactless_txn_limit_minor, template.floor_limit_minor,
        )
        uow.registry.add_terminal(terminal, vault.seal(catalog.TEST_BDK, "bdk"), now)
        added.append(terminal_id)
    return added


def add_cards(
    uow: UnitOfWork, vault: Vault, count: int, *, cvn: int, interfaces: tuple[CardInterface, ...],
    available_minor: int, currency_numeric: str, now: datetime,
) -> list[str]:
    """Issue ``count`` more approving TEST debit cards with ``available_minor`` each."""
    if cvn not in (10, 18):
        raise SandboxInputError("--cvn must be 10 or 18")
    if not interfaces:
        raise SandboxInputError("--interfaces must name at least one of chip, contactless, magstripe")
    if available_minor < 0:
        raise SandboxInputError("--available-minor must not be negative")
    if currency_numeric not in {t.currency for t in catalog.TERMINALS}:
        raise SandboxInputError("--currency must be a sandbox merchant's currency (156 or 840)")
    sequence = sum(1 for c in uow.registry.list_cards() if c.card_id.startswith("load-")) + 1
    added = []
    for number in range(sequence, sequence + count):
        partial = f"{_ADDED_CARD_BIN}{number:08d}"
        spec = catalog.SandboxCard(
            f"load-{number:08d}", partial + luhn_check_digit(partial), "3012", "01", "201", "visa", Funding.DEBIT,
            currency_numeric, interfaces, cvn, "approve", "1234", available_minor,
        )
        _add_card(uow, vault, spec, now)
        _open_card_account(uow, spec, now)
        added.append(spec.card_id)
    return added
