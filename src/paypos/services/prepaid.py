"""Prepaid stored-value cards on the platform's own BIN (docs/prepaid.md).

A prepaid card is an ``issuer_cards`` row of the on-us issuer ``PAYPOS-PREPAID`` with
funding ``prepaid``, plus a ``prepaid_cards`` row naming its program merchant and kind
(``reloadable`` or ``gift``). The acquiring host needs nothing more: it routes the PAN by
its lookup hash, the sandbox issuer checks the card's state, expiry, cryptogram and PIN,
and sales debit the card's ledger account ``card:<card id>`` / ``prepaid_balance`` — so
the card pays at any paypos terminal (on-us) and answers 310000 balance inquiries.

Money (every write is one ledger chain in the caller's unit of work):

- the card's unspent balance is a liability: ``card:<card id>`` ``prepaid_balance``
  (no overdraft), credited by every load;
- a load paid in cash (at issue, or a top-up at the counter) debits the program
  merchant's float ``merchant:<M>`` ``prepaid_float``: the merchant took the cash and owes
  the cardholder its value; a top-up from a wallet debits ``wallet_user:<U>``
  ``wallet_balance`` instead;
- an online payment moves card → ``merchant:<M>`` ``merchant_pending`` and the fee
  merchant pending → ``platform`` ``fees_revenue`` (as a card sale at the host does); a
  refund moves merchant pending → card.

Every write takes a client-chosen id and is idempotent: a replay answers the first
result and posts nothing; the same id with other parameters is ``idempotency_mismatch``.
Errors are one ``PrepaidError`` with a stable ``code``, raised before anything is written
(a refused ledger chain writes nothing the caller would commit: it rolls back).

The card records are read with SQL here, not through the registry's cache, so a use case
always sees the current status; the host's cached copy is refreshed by `transact` (this
process) or within ``limits.registry_cache_ttl_s`` (other processes).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from paypos import limits
from paypos.adapters.db.schema import issuer_cards, issuers, ledger_transfers, prepaid_cards
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import Vault
from paypos.bootstrap import App
from paypos.domain.ledger import Account, AccountFlags, TransferRequest, TransferResult
from paypos.domain.money import Currency, currency as currency_of
from paypos.domain.pricing import PaymentMethod, fee_for
from paypos.domain.registry import CardInterface, Funding, IssuerCard
from paypos.networks.sandbox import catalog
from paypos.protocol.card import is_expired, luhn_check_digit, mask_pan, validate_expiry
from paypos.protocol.cardsec import cvv2 as cvv2_of
from paypos.protocol.cardsec import ibm3624_offset

# --- the program's constants (limits of this feature live here, units last) ------------

# The platform's own BIN: IIN 629999 (major industry identifier 6, merchandising and
# banking) plus program digit 0. It is not a registered IIN: sandbox use only.
PREPAID_BIN = "6299990"
PREPAID_SEQUENCE_DIGITS = 8  # BIN (7) + sequence (8) + Luhn check digit (1) = 16 digits
PREPAID_ISSUER_ID = "PAYPOS-PREPAID"
PREPAID_ISSUER_NAME = "paypos prepaid (on-us)"
# The chip application the cards carry. IIN 62 is UnionPay's range, and terminals (the paypos
# terminal included, terminal/card.py AID_BY_SCHEME) select the UnionPay AID; routing does not
# depend on it: the host finds the card by its PAN and answers it on-us.
PREPAID_SCHEME = "unionpay"
# Largest balance one card may hold, and so the largest single load (minor units).
PREPAID_BALANCE_MAX_MINOR = 500_000_00
# A card issued without an expiry is valid for this many years (through that month).
PREPAID_VALIDITY_YEARS = 3
# The cardholder's PIN: 4 to 6 digits (ISO 9564 allows 4-12; card terminals use 4-6).
PREPAID_PIN_DIGITS_MIN = 4
PREPAID_PIN_DIGITS_MAX = 6
# Client-chosen ids (issue, top-up, payment, refund): they become ledger transfer ids,
# whose prefix ("prepaid:pay:" ... ":sale") must leave them within 64 bytes.
PREPAID_CLIENT_ID_CHARS_MAX = 40

KINDS = ("reloadable", "gift")
TOPUP_SOURCES = ("cash", "wallet")
ALL_INTERFACES = (CardInterface.CHIP, CardInterface.CONTACTLESS, CardInterface.MAGSTRIPE)

CARD_ACCOUNT_CODE = catalog.ACCOUNT_CODE_FOR_FUNDING[Funding.PREPAID]  # "prepaid_balance"
FLOAT_ACCOUNT_CODE = "prepaid_float"
WALLET_ACCOUNT_CODE = "wallet_balance"
LOAD_CODE = "prepaid_load"  # a load paid in cash, from the program merchant's float
WALLET_LOAD_CODE = "prepaid_load_wallet"  # a top-up paid from a wallet balance

_CLIENT_ID = re.compile(rf"[A-Za-z0-9._-]{{1,{PREPAID_CLIENT_ID_CHARS_MAX}}}")
_FUNDS_REFUSED = {TransferResult.EXCEEDS_CREDITS, TransferResult.EXCEEDS_DEBITS}

T = TypeVar("T")


class PrepaidError(ValueError):
    """A refused prepaid operation: ``code`` is a stable slug, the message says why.

    Codes: card_not_found, merchant_not_found, wallet_not_found, card_frozen, card_blocked,
    card_expired, gift_card_not_reloadable, insufficient_funds, merchant_insufficient_funds,
    balance_limit, idempotency_mismatch, currency_mismatch, invalid_amount, invalid_kind,
    invalid_source, invalid_pin, invalid_expiry, invalid_interfaces, invalid_id, invalid_cvv2,
    bin_exhausted.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class PrepaidCard:
    """A prepaid card as its use cases see it (never the PAN)."""

    card: IssuerCard
    program_merchant_id: str
    kind: str
    currency: Currency

    @property
    def card_id(self) -> str:
        return self.card.card_id

    @property
    def owner_ref(self) -> str:
        return card_owner_ref(self.card_id)


def card_owner_ref(card_id: str) -> str:
    return f"card:{card_id}"


def merchant_owner(merchant_id: str) -> str:
    return f"merchant:{merchant_id}"


def wallet_owner(user_id: str) -> str:
    return f"wallet_user:{user_id}"


def card_id_for(program_merchant_id: str, issue_id: str) -> str:
    """The card an issue request makes: derived from (merchant, issue id), so a retry finds it."""
    digest = hashlib.sha256(f"{program_merchant_id}\x00{issue_id}".encode()).hexdigest()
    return f"prepaid-{digest[:20]}"


# --- issue -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssueRequest:
    program_merchant_id: str
    kind: str
    initial_load_minor: int
    pin: str
    issue_id: str
    expiry: str | None = None  # YYMM; None: now + PREPAID_VALIDITY_YEARS
    interfaces: tuple[CardInterface, ...] = ALL_INTERFACES


def issue_card(
    uow: UnitOfWork, vault: Vault, *, program_merchant_id: str, kind: str, initial_load_minor: int, pin: str,
    issue_id: str, now: datetime, expiry: str | None = None,
    interfaces: Sequence[CardInterface] = ALL_INTERFACES,
) -> dict[str, Any]:
    """Issue a card with an initial load (cash, from the merchant's float); idempotent by ``issue_id``.

    Returns the card with its PAN and CVV2 — the only answer that carries them (a replay of
    the same ``issue_id`` returns it again, so that a lost answer can be recovered).
    """
    request = IssueRequest(program_merchant_id, kind, initial_load_minor, pin, issue_id, expiry, tuple(interfaces))
    _check_issue_request(request, now)
    merchant = uow.registry.get_merchant(program_merchant_id)
    if merchant is None or merchant.status != "active":
        raise PrepaidError("merchant_not_found", f"no active merchant {program_merchant_id!r}")
    alpha = currency_of(merchant.currency)
    card_id = card_id_for(program_merchant_id, issue_id)
    existing = _load(uow, card_id)
    if existing is not None:
        _check_replay(uow, vault, existing, request)
        return _issued(uow, vault, existing)
    _lock_issuer(uow, now)
    pan = _next_pan(uow)
    _add_card(uow, vault, card_id, pan, request, alpha, now)
    uow.connection.execute(prepaid_cards.insert().values(
        card_id=card_id, program_merchant_id=program_merchant_id, kind=kind, currency=alpha.alpha, created_at=now))
    prepaid = _load(uow, card_id)
    if prepaid is None:
        raise RuntimeError(f"prepaid card {card_id} vanished inside its own transaction")
    card_account = _open_card_account(uow, prepaid, pan)
    float_account = _float_account(uow, program_merchant_id, alpha.alpha)
    if initial_load_minor > 0:
        _post(uow, [TransferRequest(f"prepaid:load:{card_id}", float_account.id, card_account.id,
                                    initial_load_minor, alpha.alpha, code=LOAD_CODE)], now)
    return _issued(uow, vault, prepaid)


def _check_issue_request(request: IssueRequest, now: datetime) -> None:
    if request.kind not in KINDS:
        raise PrepaidError("invalid_kind", f"kind must be one of {', '.join(KINDS)}, not {request.kind!r}")
    _check_client_id(request.issue_id, "issue id")
    if request.kind == "gift" and request.initial_load_minor == 0:
        raise PrepaidError("invalid_amount", "a gift card is issued with an initial load above zero")
    _check_amount(request.initial_load_minor, allow_zero=True)
    pin = request.pin
    if not (isinstance(pin, str) and pin.isascii() and pin.isdigit()
            and PREPAID_PIN_DIGITS_MIN <= len(pin) <= PREPAID_PIN_DIGITS_MAX):
        raise PrepaidError("invalid_pin", f"PIN must be {PREPAID_PIN_DIGITS_MIN}-{PREPAID_PIN_DIGITS_MAX} digits")
    if request.expiry is not None:
        try:
            validate_expiry(request.expiry)
        except ValueError as error:
            raise PrepaidError("invalid_expiry", f"expiry: {error}") from None
        if is_expired(request.expiry, now.date()):
            raise PrepaidError("invalid_expiry", f"expiry {request.expiry} is in the past")
    if not request.interfaces or len(set(request.interfaces)) != len(request.interfaces):
        raise PrepaidError("invalid_interfaces", "interfaces: name each of chip, contactless, magstripe at most once")


def default_expiry(now: datetime) -> str:
    """YYMM, ``PREPAID_VALIDITY_YEARS`` from now (valid through that month)."""
    return f"{(now.year + PREPAID_VALIDITY_YEARS) % 100:02d}{now.month:02d}"


def _lock_issuer(uow: UnitOfWork, now: datetime) -> None:
    """Create the on-us issuer if missing; lock its row so that PAN sequence numbers are taken
    one issuance at a time (PostgreSQL; SQLite's write transaction already serialises)."""
    if not uow.registry.issuer_exists(PREPAID_ISSUER_ID):
        uow.registry.add_issuer(PREPAID_ISSUER_ID, PREPAID_ISSUER_NAME, now)
    uow.connection.execute(sa.select(issuers.c.issuer_id).where(issuers.c.issuer_id == PREPAID_ISSUER_ID)
                           .with_for_update())


def _next_pan(uow: UnitOfWork) -> str:
    issued = uow.connection.execute(
        sa.select(sa.func.count()).select_from(issuer_cards).where(issuer_cards.c.issuer_id == PREPAID_ISSUER_ID)
    ).scalar_one()
    sequence = int(issued) + 1
    if sequence >= 10**PREPAID_SEQUENCE_DIGITS:
        raise PrepaidError("bin_exhausted", f"BIN {PREPAID_BIN} has no card numbers left")
    partial = f"{PREPAID_BIN}{sequence:0{PREPAID_SEQUENCE_DIGITS}d}"
    return partial + luhn_check_digit(partial)


def _add_card(uow: UnitOfWork, vault: Vault, card_id: str, pan: str, request: IssueRequest, alpha: Currency,
              now: datetime) -> None:
    chip = CardInterface.CHIP in request.interfaces or CardInterface.CONTACTLESS in request.interfaces
    card = IssuerCard(
        card_id=card_id, issuer_id=PREPAID_ISSUER_ID, pan_first6=pan[:6], pan_last4=pan[-4:],
        expiry=request.expiry or default_expiry(now), psn="01" if chip else "00",
        service_code="201" if chip else "101",  # ISO/IEC 7813: 2xx chip card, 1xx magstripe only
        scheme=PREPAID_SCHEME, funding=Funding.PREPAID, currency=alpha.numeric, interfaces=request.interfaces,
        cvn=18 if chip else None, behavior=f"prepaid-{request.kind}", status="active",
        pin_offset=ibm3624_offset(catalog.TEST_PVK, pan, request.pin), token_for_card_id=None,
    )
    # Sandbox: the platform's cards are issued under the published TEST keys (docs/sandbox.md).
    sealed = {
        "pan_enc": vault.seal(pan, "pan"),
        "imk_ac_enc": vault.seal(catalog.card_imk_ac(card_id), "imk_ac") if chip else None,
        "cvk_enc": vault.seal(catalog.TEST_CVK, "cvk"),
        "pvk_enc": vault.seal(catalog.TEST_PVK, "pvk"),
    }
    uow.registry.add_card(card, sealed, vault.lookup_hash(pan), now)


def _check_replay(uow: UnitOfWork, vault: Vault, prepaid: PrepaidCard, request: IssueRequest) -> None:
    """The same issue id must carry the same parameters (expiry only when it was given)."""
    card = prepaid.card
    pan = _pan(uow, vault, card.card_id)
    load = uow.ledger.get_transfer(f"prepaid:load:{card.card_id}")
    differs = [
        name for name, same in (
            ("kind", prepaid.kind == request.kind),
            ("initial load", (load.amount if load else 0) == request.initial_load_minor),
            ("PIN", card.pin_offset == ibm3624_offset(catalog.TEST_PVK, pan, request.pin)),
            ("expiry", request.expiry is None or request.expiry == card.expiry),
            ("interfaces", set(card.interfaces) == set(request.interfaces)),
        ) if not same
    ]
    if differs:
        raise PrepaidError("idempotency_mismatch",
                           f"issue id {request.issue_id!r} was used with another {', '.join(differs)}")


def _issued(uow: UnitOfWork, vault: Vault, prepaid: PrepaidCard) -> dict[str, Any]:
    pan = _pan(uow, vault, prepaid.card_id)
    return {**card_view(uow, prepaid), "pan": pan, "cvv2": cvv2_of(catalog.TEST_CVK, pan, prepaid.card.expiry)}


def _pan(uow: UnitOfWork, vault: Vault, card_id: str) -> str:
    sealed = uow.connection.execute(
        sa.select(issuer_cards.c.pan_enc).where(issuer_cards.c.card_id == card_id)).scalar_one()
    return vault.open(sealed, "pan")


# --- top up, pay, refund -------------------------------------------------------------------


def top_up(
    uow: UnitOfWork, *, card_id: str, amount_minor: int, source: str, topup_id: str, now: datetime,
    wallet_user_id: str | None = None,
) -> dict[str, Any]:
    """Load a reloadable card: cash at the counter (the program merchant's float) or a wallet.

    Idempotent by ``topup_id`` (ledger transfer ``prepaid:topup:<topup_id>``).
    """
    if source not in TOPUP_SOURCES:
        raise PrepaidError("invalid_source", f"source must be cash or wallet, not {source!r}")
    if (source == "wallet") != (wallet_user_id is not None):
        raise PrepaidError("invalid_source", "a wallet top-up names the wallet user, and only it does")
    _check_client_id(topup_id, "top-up id")
    _check_amount(amount_minor)
    prepaid = _require(uow, card_id)
    alpha = prepaid.currency.alpha
    if wallet_user_id is None:
        payer, code = _float_account(uow, prepaid.program_merchant_id, alpha), LOAD_CODE
    else:
        payer, code = _wallet_account(uow, wallet_user_id, alpha), WALLET_LOAD_CODE
    card_account = _card_account(uow, prepaid)
    request = TransferRequest(f"prepaid:topup:{topup_id}", payer.id, card_account.id, amount_minor, alpha, code=code)
    result = {"object": "prepaid_top_up", "topup_id": topup_id, "card_id": card_id, "amount_minor": amount_minor,
              "currency": alpha, "source": source, "wallet_user_id": wallet_user_id}
    if not _replayed(uow, [request]):
        if prepaid.kind == "gift":
            raise PrepaidError("gift_card_not_reloadable", f"card {card_id} is a gift card: it cannot be topped up")
        _require_usable(prepaid, now)
        _check_balance_room(card_account, amount_minor)
        _post(uow, [request], now)
    return {**result, "balance_minor": _balance_of(uow, prepaid)}


def pay_online(
    uow: UnitOfWork, *, card_id: str, merchant_id: str, amount_minor: int, payment_id: str, now: datetime,
    cvv2: str | None = None, vault: Vault | None = None,
) -> dict[str, Any]:
    """A card-not-present payment: card → merchant pending, the fee → platform fees (one chain).

    When ``cvv2`` is given it is checked (``vault`` is then needed to open the PAN).
    Idempotent by ``payment_id`` (ledger transfers ``prepaid:pay:<payment_id>:sale`` / ``:fee``).
    """
    _check_client_id(payment_id, "payment id")
    _check_amount(amount_minor)
    prepaid = _require(uow, card_id)
    alpha = _same_currency(uow, prepaid, merchant_id)
    card_account, pending = _card_account(uow, prepaid), _merchant_pending(uow, merchant_id, alpha)
    # A replay is priced at the first attempt's time: the same plan then, so the same fee
    # (assignments never start in the past), and the ledger answers ``exists``.
    prior = uow.ledger.get_transfer(f"prepaid:pay:{payment_id}:sale")
    at = prior.created_at if prior is not None else now
    fee = fee_for(uow.pricing.plan_at(merchant_id, alpha, at), PaymentMethod.PREPAID, amount_minor, at)
    chain = [TransferRequest(f"prepaid:pay:{payment_id}:sale", card_account.id, pending.id, amount_minor, alpha,
                             code="sale", linked=fee > 0)]
    if fee > 0:
        fees = uow.ledger.open_account("platform", "platform", "fees_revenue", alpha)
        chain.append(TransferRequest(f"prepaid:pay:{payment_id}:fee", pending.id, fees.id, fee, alpha, code="fee"))
    if not _replayed(uow, chain):
        _require_usable(prepaid, now)
        if cvv2 is not None:
            _check_cvv2(uow, vault, prepaid, cvv2)
        _post(uow, chain, now)
    return {"object": "prepaid_payment", "payment_id": payment_id, "card_id": card_id, "merchant_id": merchant_id,
            "amount_minor": amount_minor, "fee_minor": fee, "currency": alpha,
            "balance_minor": _balance_of(uow, prepaid)}


def refund(
    uow: UnitOfWork, *, card_id: str, merchant_id: str, amount_minor: int, refund_id: str, now: datetime,
) -> dict[str, Any]:
    """Merchant pending → card. Allowed to a frozen, blocked or expired card too: the money is
    the cardholder's either way (it can be spent once the card is usable again). The merchant's
    pending balance must cover it, and the card's balance stays within its limit.

    Idempotent by ``refund_id`` (ledger transfer ``prepaid:refund:<refund_id>``).
    """
    _check_client_id(refund_id, "refund id")
    _check_amount(amount_minor)
    prepaid = _require(uow, card_id)
    alpha = _same_currency(uow, prepaid, merchant_id)
    card_account, pending = _card_account(uow, prepaid), _merchant_pending(uow, merchant_id, alpha)
    request = TransferRequest(f"prepaid:refund:{refund_id}", pending.id, card_account.id, amount_minor, alpha,
                              code="refund")
    if not _replayed(uow, [request]):
        if pending.balances.net_posted < amount_minor:
            raise PrepaidError("merchant_insufficient_funds",
                               f"merchant {merchant_id} has {pending.balances.net_posted} minor units pending, "
                               f"less than the refund")
        _check_balance_room(card_account, amount_minor)
        _post(uow, [request], now)
    return {"object": "prepaid_refund", "refund_id": refund_id, "card_id": card_id, "merchant_id": merchant_id,
            "amount_minor": amount_minor, "currency": alpha, "balance_minor": _balance_of(uow, prepaid)}


def _same_currency(uow: UnitOfWork, prepaid: PrepaidCard, merchant_id: str) -> str:
    merchant = uow.registry.get_merchant(merchant_id)
    if merchant is None or merchant.status != "active":
        raise PrepaidError("merchant_not_found", f"no active merchant {merchant_id!r}")
    if merchant.currency != prepaid.currency.alpha:
        raise PrepaidError("currency_mismatch", f"card {prepaid.card_id} holds {prepaid.currency.alpha}, "
                                                f"merchant {merchant_id} takes {merchant.currency}")
    return prepaid.currency.alpha


def _check_cvv2(uow: UnitOfWork, vault: Vault | None, prepaid: PrepaidCard, cvv2: str) -> None:
    if vault is None:
        raise TypeError("pay_online needs the vault to check a CVV2")
    expected = cvv2_of(catalog.TEST_CVK, _pan(uow, vault, prepaid.card_id), prepaid.card.expiry)
    if cvv2 != expected:
        raise PrepaidError("invalid_cvv2", "CVV2 does not match the card")


# --- card state --------------------------------------------------------------------------------


def freeze(uow: UnitOfWork, card_id: str) -> dict[str, Any]:
    """Freeze a card (lost or stolen): every payment and top-up is refused (ISO 8583: 62)
    until it is unfrozen. Freezing a frozen card changes nothing."""
    prepaid = _require(uow, card_id)
    if prepaid.card.status == "blocked":
        raise PrepaidError("card_blocked", f"card {card_id} is blocked")
    if prepaid.card.status != "frozen":
        _set_status(uow, card_id, "frozen")
    return card_view(uow, _require(uow, card_id))


def unfreeze(uow: UnitOfWork, card_id: str, now: datetime) -> dict[str, Any]:
    """Make a frozen card usable again. A blocked card stays blocked; an expired card is never
    made payable again (unfreezing it is refused)."""
    prepaid = _require(uow, card_id)
    status = prepaid.card.status
    if status == "blocked":
        raise PrepaidError("card_blocked", f"card {card_id} is blocked: it cannot be unfrozen")
    if status == "frozen":
        if is_expired(prepaid.card.expiry, now.date()):
            raise PrepaidError("card_expired", f"card {card_id} expired {prepaid.card.expiry}: it stays frozen")
        _set_status(uow, card_id, "active")
    return card_view(uow, _require(uow, card_id), now)


def _set_status(uow: UnitOfWork, card_id: str, status: str) -> None:
    uow.connection.execute(issuer_cards.update().where(issuer_cards.c.card_id == card_id).values(status=status))


def _require_usable(prepaid: PrepaidCard, now: datetime) -> None:
    status = prepaid.card.status
    if status == "frozen":
        raise PrepaidError("card_frozen", f"card {prepaid.card_id} is frozen")
    if status != "active":
        raise PrepaidError("card_blocked", f"card {prepaid.card_id} is {status}")
    if is_expired(prepaid.card.expiry, now.date()):
        raise PrepaidError("card_expired", f"card {prepaid.card_id} expired {prepaid.card.expiry}")


# --- reading ---------------------------------------------------------------------------------


def get_card(uow: UnitOfWork, card_id: str) -> PrepaidCard | None:
    """The prepaid card (fresh from the database), or None."""
    return _load(uow, card_id)


def balance(uow: UnitOfWork, card_id: str, now: datetime | None = None) -> dict[str, Any]:
    """The card with its available balance (what it can spend) and its holds."""
    return card_view(uow, _require(uow, card_id), now)


def card_view(uow: UnitOfWork, prepaid: PrepaidCard, now: datetime | None = None) -> dict[str, Any]:
    """A card as listings and the REST API show it: masked PAN only."""
    card = prepaid.card
    account = uow.ledger.find_account(prepaid.owner_ref, CARD_ACCOUNT_CODE, prepaid.currency.alpha)
    balances = account.balances if account else None
    view: dict[str, Any] = {
        "object": "prepaid_card", "card_id": card.card_id, "masked_pan": card.masked_pan, "expiry": card.expiry,
        "kind": prepaid.kind, "status": card.status, "program_merchant_id": prepaid.program_merchant_id,
        "currency": prepaid.currency.alpha, "interfaces": [i.value for i in card.interfaces],
        "balance_minor": balances.available_credit_balance if balances else 0,
        "held_minor": balances.debits_pending if balances else 0,
    }
    if now is not None:
        view["expired"] = is_expired(card.expiry, now.date())
    return view


def list_cards(uow: UnitOfWork, program_merchant_id: str | None = None,
               now: datetime | None = None) -> list[dict[str, Any]]:
    """Prepaid cards (of one program merchant, or all), oldest first, masked PANs only."""
    return [card_view(uow, prepaid, now) for prepaid in _load_all(uow, program_merchant_id)]


def float_report(uow: UnitOfWork, program_merchant_id: str | None = None) -> list[dict[str, Any]]:
    """Per program merchant and currency: the cards' unspent balance (the liability) against the
    float — the cash the merchant took for card loads.

    ``float + wallet_loaded == unspent + redeemed`` always (``agrees``): ``redeemed`` is what the
    cards spent (at any terminal or online) net of refunds, owed to the accepting merchants until
    settlement. Before anything is spent or loaded from a wallet, float equals unspent.
    """
    groups: dict[tuple[str, str], list[PrepaidCard]] = {}
    for prepaid in _load_all(uow, program_merchant_id):
        groups.setdefault((prepaid.program_merchant_id, prepaid.currency.alpha), []).append(prepaid)
    return [_float_row(uow, merchant_id, alpha, cards) for (merchant_id, alpha), cards in sorted(groups.items())]


def _float_row(uow: UnitOfWork, merchant_id: str, alpha: str, cards: list[PrepaidCard]) -> dict[str, Any]:
    accounts = [a for a in uow.ledger.list_accounts([c.owner_ref for c in cards])
                if a.code == CARD_ACCOUNT_CODE and a.currency == alpha]
    loads = _loads_by_code(uow, [a.id for a in accounts])
    float_account = uow.ledger.find_account(merchant_owner(merchant_id), FLOAT_ACCOUNT_CODE, alpha)
    float_minor = -float_account.balances.net_posted if float_account else 0
    unspent = sum(a.balances.available_credit_balance for a in accounts)
    refunded = sum(a.balances.credits_posted for a in accounts) - loads[LOAD_CODE] - loads[WALLET_LOAD_CODE]
    redeemed = sum(a.balances.debits_posted + a.balances.debits_pending for a in accounts) - refunded
    return {
        "program_merchant_id": merchant_id, "currency": alpha, "cards": len(cards),
        "unspent_minor": unspent, "float_minor": float_minor, "wallet_loaded_minor": loads[WALLET_LOAD_CODE],
        "redeemed_minor": redeemed, "agrees": float_minor + loads[WALLET_LOAD_CODE] == unspent + redeemed,
    }


def _loads_by_code(uow: UnitOfWork, account_ids: list[int]) -> dict[str, int]:
    totals = {LOAD_CODE: 0, WALLET_LOAD_CODE: 0}
    if not account_ids:
        return totals
    rows = uow.connection.execute(
        sa.select(ledger_transfers.c.code, sa.func.sum(ledger_transfers.c.amount))
        .where(ledger_transfers.c.credit_account_id.in_(account_ids),
               ledger_transfers.c.code.in_(list(totals)))
        .group_by(ledger_transfers.c.code)
    )
    for code, amount in rows:
        totals[code] = int(amount or 0)
    return totals


# --- storage (prepaid_cards joined with issuer_cards, read fresh) ----------------------------


def _select() -> sa.Select[Any]:
    return (sa.select(issuer_cards, prepaid_cards.c.program_merchant_id, prepaid_cards.c.kind,
                      prepaid_cards.c.currency.label("prepaid_currency"))
            .join(prepaid_cards, prepaid_cards.c.card_id == issuer_cards.c.card_id))


def _load(uow: UnitOfWork, card_id: str) -> PrepaidCard | None:
    row = uow.connection.execute(_select().where(issuer_cards.c.card_id == card_id)).one_or_none()
    return None if row is None else _prepaid(row)


def _load_all(uow: UnitOfWork, program_merchant_id: str | None) -> list[PrepaidCard]:
    query = _select().order_by(prepaid_cards.c.created_at, prepaid_cards.c.card_id)
    if program_merchant_id is not None:
        query = query.where(prepaid_cards.c.program_merchant_id == program_merchant_id)
    return [_prepaid(row) for row in uow.connection.execute(query)]


def _prepaid(row: sa.Row[Any]) -> PrepaidCard:
    card = IssuerCard(
        card_id=row.card_id, issuer_id=row.issuer_id, pan_first6=row.pan_first6, pan_last4=row.pan_last4,
        expiry=row.expiry, psn=row.psn, service_code=row.service_code, scheme=row.scheme,
        funding=Funding(row.funding), currency=row.currency,
        interfaces=tuple(CardInterface(i) for i in row.interfaces.split(",") if i), cvn=row.cvn,
        behavior=row.behavior, status=row.status, pin_offset=row.pin_offset, token_for_card_id=row.token_for_card_id,
    )
    return PrepaidCard(card, row.program_merchant_id, row.kind, currency_of(row.prepaid_currency))


def _require(uow: UnitOfWork, card_id: str) -> PrepaidCard:
    prepaid = _load(uow, card_id) if isinstance(card_id, str) else None
    if prepaid is None:
        raise PrepaidError("card_not_found", f"no prepaid card {card_id!r}")
    return prepaid


# --- ledger helpers ----------------------------------------------------------------------------


def _open_card_account(uow: UnitOfWork, prepaid: PrepaidCard, pan: str) -> Account:
    return uow.ledger.open_account(prepaid.owner_ref, f"card:{mask_pan(pan)}", CARD_ACCOUNT_CODE,
                                   prepaid.currency.alpha, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)


def _card_account(uow: UnitOfWork, prepaid: PrepaidCard) -> Account:
    account = uow.ledger.find_account(prepaid.owner_ref, CARD_ACCOUNT_CODE, prepaid.currency.alpha)
    if account is None:
        raise RuntimeError(f"prepaid card {prepaid.card_id} has no {CARD_ACCOUNT_CODE} account")
    return account


def _float_account(uow: UnitOfWork, merchant_id: str, alpha: str) -> Account:
    owner = merchant_owner(merchant_id)
    return uow.ledger.open_account(owner, owner, FLOAT_ACCOUNT_CODE, alpha)


def _merchant_pending(uow: UnitOfWork, merchant_id: str, alpha: str) -> Account:
    owner = merchant_owner(merchant_id)
    return uow.ledger.open_account(owner, owner, "merchant_pending", alpha)


def _wallet_account(uow: UnitOfWork, user_id: str, alpha: str) -> Account:
    account = uow.ledger.find_account(wallet_owner(user_id), WALLET_ACCOUNT_CODE, alpha)
    if account is None:
        raise PrepaidError("wallet_not_found", f"wallet user {user_id!r} has no {alpha} wallet balance")
    return account


def _balance_of(uow: UnitOfWork, prepaid: PrepaidCard) -> int:
    return _card_account(uow, prepaid).balances.available_credit_balance


def _check_balance_room(card_account: Account, amount_minor: int) -> None:
    if card_account.balances.available_credit_balance + amount_minor > PREPAID_BALANCE_MAX_MINOR:
        raise PrepaidError("balance_limit", f"a card holds at most {PREPAID_BALANCE_MAX_MINOR} minor units")


def _replayed(uow: UnitOfWork, chain: list[TransferRequest]) -> bool:
    """True when this chain was posted before (a replay); its id with other fields is a mismatch."""
    first = uow.ledger.get_transfer(chain[0].id)
    if first is None:
        return False
    if first.fingerprint != chain[0].fingerprint():
        raise PrepaidError("idempotency_mismatch", f"id {chain[0].id!r} was used with other parameters")
    return True


def _post(uow: UnitOfWork, chain: list[TransferRequest], now: datetime) -> None:
    outcomes = uow.ledger.create_transfers(chain, now)
    for outcome in outcomes:
        if outcome.result in _FUNDS_REFUSED:
            raise PrepaidError("insufficient_funds", f"insufficient funds ({outcome.result.value})")
        if outcome.result is TransferResult.ID_EXISTS_WITH_DIFFERENT_FIELDS:
            raise PrepaidError("idempotency_mismatch", f"id {outcome.id!r} was used with other parameters")
    failed = [o for o in outcomes if not o.result.ok and o.result is not TransferResult.LINKED_EVENT_FAILED]
    if failed:
        raise RuntimeError(f"ledger refused {failed[0].id}: {failed[0].result.value}")


def _check_amount(amount_minor: int, *, allow_zero: bool = False) -> None:
    """An int of minor units above zero; none above the balance limit (no card could hold,
    spend or receive it)."""
    if type(amount_minor) is not int:
        raise PrepaidError("invalid_amount", "amount must be an int of minor units")
    if amount_minor < 0 or (amount_minor == 0 and not allow_zero):
        raise PrepaidError("invalid_amount", "amount must be above zero")
    if amount_minor > PREPAID_BALANCE_MAX_MINOR:
        raise PrepaidError("balance_limit", f"a card holds at most {PREPAID_BALANCE_MAX_MINOR} minor units")


def _check_client_id(value: str, what: str) -> None:
    if not isinstance(value, str) or not _CLIENT_ID.fullmatch(value):
        raise PrepaidError("invalid_id", f"{what} must be 1-{PREPAID_CLIENT_ID_CHARS_MAX} characters "
                                         "of A-Z, a-z, 0-9, '.', '_', '-'")


# --- running a use case --------------------------------------------------------------------------


def transact(app: App, work: Callable[[UnitOfWork], T]) -> T:
    """Run ``work`` in its own unit of work and commit it; retried when a concurrent writer won a
    unique key (two issues of one id) or PostgreSQL asked for a retry. After the commit the
    process's registry cache is cleared, so this process's host sees a freeze at once."""
    for tries_left in range(limits.ledger_write_retries_max, -1, -1):
        try:
            with app.uow() as uow:
                result = work(uow)
                uow.commit()
            app.cache.clear()
            return result
        except sa_exc.IntegrityError:
            if tries_left == 0:
                raise
        except sa_exc.OperationalError as error:
            if tries_left == 0 or getattr(error.orig, "sqlstate", None) not in ("40001", "40P01"):
                raise
    raise RuntimeError("unreachable")  # pragma: no cover
