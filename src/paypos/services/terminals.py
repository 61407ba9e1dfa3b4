"""Terminal provisioning (issue 7, docs/merchant-lifecycle.md): apply, provision, activate
with a one-time code, bind to a location, suspend, resume, replace.

``provision`` gives the new terminal a unique DUKPT device id under the acquirer's key set,
its initial KSN, and its IPEK derived from the acquirer's BDK (ANSI X9.24-1:2009 A.6,
``protocol.dukpt.derive_ipek``). The *provisioning package* (terminal id, merchant id,
initial KSN, IPEK, activation code) is answered once and never stored in clear: the host
keeps what it has always kept (the BDK sealed by the vault, the initial KSN) and derives the
terminal's keys itself; the activation code is stored as a keyed hash. The BDK never leaves.

A provisioned terminal is declined by the host (58) until it is activated with its code;
:data:`limits.terminal_activation_attempts_max` wrong codes or
:data:`limits.terminal_activation_code_ttl_s` end the code (``new_activation_code`` issues
another). The first terminal activated makes an approved merchant active.

Every function takes the ``actor``, writes an audit entry in the caller's transaction and
leaves the commit to the caller — except that a :class:`WrongActivationCode` must be
committed too (the attempt counts).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.schema import terminal_provisioning as prov
from paypos.adapters.db.schema import terminals
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import Vault
from paypos.domain import merchant_application as rules
from paypos.domain.money import currency as currency_of
from paypos.domain.registry import Terminal
from paypos.networks.sandbox import catalog
from paypos.protocol.dukpt import derive_ipek
from paypos.services import audit, events, onboarding

# The acquirer's base derivation key. The sandbox acquirer's is the published X9.24 TEST BDK
# (networks/sandbox/catalog.py); a live acquirer's would stay in its HSM, which would answer
# the IPEK instead.
ACQUIRER_BDK = catalog.TEST_BDK
KEY_SET_ID = 0xFFFF987654  # the sandbox key set (KSN bits 79-40)
# Device ids (KSN bits 39-21) of provisioned terminals: clear of the catalog's (0x19084-7) and
# of `paypos sandbox add-terminals` (0x20000 + n, n in the tens of thousands at most).
DEVICE_ID_MIN, DEVICE_ID_MAX = 0x40000, 0x7FFFF
TERMINAL_ID_PREFIX = "P"  # + 7 random digits = the 8 characters of ISO 8583 field 41
# Activation codes avoid look-alike characters (0/O, 1/I/L) so they read back over a phone.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
HASH_PURPOSE = "terminal_activation"
# Risk limits of a new terminal in minor units (CNY fen): contactless without CVM up to
# 1 000.00, contactless at most 5 000.00, offline floor 100.00 — the sandbox café's.
CONTACTLESS_CVM_LIMIT_MINOR = 100_000
CONTACTLESS_TXN_LIMIT_MINOR = 500_000
FLOOR_LIMIT_MINOR = 10_000
_TRIES_MAX = 64  # random ids tried before giving up (a nearly full id space)


class TerminalNotFound(LookupError):
    def __init__(self, what: str) -> None:
        super().__init__(f"no terminal {what!r}")


class ActivationRefused(Exception):
    """The activation code is wrong, expired or used up (a 409/403 at the API, exit 1)."""


class WrongActivationCode(ActivationRefused):
    def __init__(self, left: int) -> None:
        super().__init__(f"wrong activation code ({left} attempts left)")
        self.left = left


class ActivationLocked(ActivationRefused):
    def __init__(self) -> None:
        super().__init__("too many wrong activation codes: ask the operator for a new code")


class ActivationExpired(ActivationRefused):
    def __init__(self) -> None:
        super().__init__("the activation code expired: ask the operator for a new code")


class MerchantNotTrading(Exception):
    def __init__(self, merchant_id: str, status: str) -> None:
        super().__init__(f"merchant {merchant_id} is {status}: no terminals for it")


# --- apply and provision -------------------------------------------------------------------


def apply(uow: UnitOfWork, actor: str, now: datetime, merchant_id: str, location: str, *,
          reference: str | None = None) -> dict[str, Any]:
    """A terminal request for an approved or active merchant at ``location`` (a label such as
    "Counter 1, 88 Zhongshan Rd"); ``reference`` makes a retry answer the first request."""
    location = _location(location)
    if reference is not None:
        if not 1 <= len(reference) <= 64:
            raise rules.OnboardingError("reference", "must be 1..64 characters")
        existing = uow.connection.execute(sa.select(prov).where(prov.c.reference == reference)).one_or_none()
        if existing is not None:
            return _json(existing)
    _trading_merchant(uow, merchant_id)
    request_id = onboarding.new_id("trq_")
    uow.connection.execute(prov.insert().values(
        id=request_id, reference=reference, merchant_id=merchant_id, location=location, status="requested",
        created_by=actor, created_at=now, updated_at=now))
    audit.record(uow, now, actor, "terminal.apply", "terminal_request", request_id, merchant_id=merchant_id,
                 details={"location": location})
    return _json(_row(uow, prov.c.id == request_id))


def provision(uow: UnitOfWork, vault: Vault, actor: str, now: datetime, request_id: str, *,
              mac_required: bool = True, random: Callable[[int], bytes] = secrets.token_bytes) -> dict[str, Any]:
    """Provision a requested terminal: its ``terminals`` row (status ``provisioned``) and the
    one-time package. Provisioning twice is refused (the package is never shown again;
    ``replace`` makes a new terminal)."""
    row = _row(uow, prov.c.id == request_id, lock=True, missing=request_id)
    rules.terminal_transition(row.status, "provisioned")
    merchant = _trading_merchant(uow, row.merchant_id)
    terminal_id, device_id = _new_terminal_id(uow, random), _new_device_id(uow, random)
    ksn = ((KEY_SET_ID << 40) | (device_id << 21)).to_bytes(10, "big")
    uow.registry.add_terminal(Terminal(
        terminal_id, merchant.merchant_id, currency_of(merchant.currency).numeric, ksn.hex().upper(), mac_required,
        CONTACTLESS_CVM_LIMIT_MINOR, CONTACTLESS_TXN_LIMIT_MINOR, FLOOR_LIMIT_MINOR, status="provisioned",
    ), vault.seal(ACQUIRER_BDK, "bdk"), now)
    code = _new_code(random)
    expires = now + timedelta(seconds=limits.terminal_activation_code_ttl_s)
    uow.connection.execute(prov.update().where(prov.c.id == request_id).values(
        status="provisioned", terminal_id=terminal_id, device_id=device_id,
        activation_code_hash=_code_hash(vault, terminal_id, code), activation_expires_at=expires,
        activation_attempts=0, updated_at=now))
    audit.record(uow, now, actor, "terminal.provision", "terminal", terminal_id, merchant_id=merchant.merchant_id,
                 details={"request_id": request_id, "initial_ksn": ksn.hex().upper()})  # a KSN is not secret
    package = {"terminal_id": terminal_id, "merchant_id": merchant.merchant_id, "initial_ksn": ksn.hex().upper(),
               "ipek": derive_ipek(bytes.fromhex(ACQUIRER_BDK), ksn).hex().upper(),
               "activation_code": code, "activation_expires_at": _iso(expires)}
    return {**_json(_row(uow, prov.c.id == request_id)), "package": package}


def new_activation_code(uow: UnitOfWork, vault: Vault, actor: str, now: datetime, terminal_id: str, *,
                        random: Callable[[int], bytes] = secrets.token_bytes) -> dict[str, Any]:
    """A fresh code (shown once) for a provisioned terminal whose code expired or locked."""
    row = _row(uow, prov.c.terminal_id == terminal_id, lock=True, missing=terminal_id)
    if row.status != "provisioned":
        raise rules.IllegalTransition("the terminal", row.status, "given an activation code (only provisioned)")
    code = _new_code(random)
    expires = now + timedelta(seconds=limits.terminal_activation_code_ttl_s)
    uow.connection.execute(prov.update().where(prov.c.id == row.id).values(
        activation_code_hash=_code_hash(vault, terminal_id, code), activation_expires_at=expires,
        activation_attempts=0, updated_at=now))
    audit.record(uow, now, actor, "terminal.new_activation_code", "terminal", terminal_id, merchant_id=row.merchant_id)
    return {**_json(_row(uow, prov.c.id == row.id)), "activation_code": code,
            "activation_expires_at": _iso(expires)}


# --- activate ------------------------------------------------------------------------------


def activate(uow: UnitOfWork, vault: Vault, actor: str, now: datetime, terminal_id: str, code: str) -> dict[str, Any]:
    """Activate a provisioned terminal with its one-time code: the host accepts it from now on,
    and an approved merchant becomes active. The same code again after success answers the
    active terminal (a retry); a wrong code counts (commit even when it raises)."""
    row = _row(uow, prov.c.terminal_id == terminal_id, lock=True, missing=terminal_id)
    given = code.strip().upper().replace("-", "").replace(" ", "")
    matches = row.activation_code_hash is not None and hmac.compare_digest(
        _code_hash(vault, terminal_id, given), row.activation_code_hash)
    if row.status == "active" and row.activated_at is not None and matches:
        return _json(row)
    if row.status != "provisioned":
        raise rules.IllegalTransition("the terminal", row.status, "active")
    if row.activation_attempts >= limits.terminal_activation_attempts_max:
        raise ActivationLocked()
    if row.activation_expires_at is None or now >= row.activation_expires_at:
        raise ActivationExpired()
    if not matches:
        attempts = row.activation_attempts + 1
        uow.connection.execute(prov.update().where(prov.c.id == row.id).values(
            activation_attempts=attempts, updated_at=now))
        audit.record(uow, now, actor, "terminal.activation_failed", "terminal", terminal_id,
                     merchant_id=row.merchant_id, details={"attempts": attempts})
        raise WrongActivationCode(limits.terminal_activation_attempts_max - attempts)
    merchant = _trading_merchant(uow, row.merchant_id)
    uow.connection.execute(prov.update().where(prov.c.id == row.id).values(
        status="active", activated_at=now, updated_at=now))
    uow.registry.set_terminal_status(terminal_id, "active")
    audit.record(uow, now, actor, "terminal.activate", "terminal", terminal_id, merchant_id=row.merchant_id)
    shown = _json(_row(uow, prov.c.id == row.id))
    if merchant.status == "approved":
        onboarding.activate_merchant(uow, actor, now, row.merchant_id)
    events.emit(uow, row.merchant_id, "terminal.activated", shown, now)
    return shown


# --- bind, suspend, resume, replace --------------------------------------------------------


def bind(uow: UnitOfWork, actor: str, now: datetime, terminal_id: str, location: str) -> dict[str, Any]:
    """Move a terminal (not replaced) to another location of its merchant."""
    location = _location(location)
    row = _row(uow, prov.c.terminal_id == terminal_id, lock=True, missing=terminal_id)
    if row.status == "replaced":
        raise rules.IllegalTransition("the terminal", row.status, "bound to a location")
    if row.location != location:
        uow.connection.execute(prov.update().where(prov.c.id == row.id).values(location=location, updated_at=now))
        audit.record(uow, now, actor, "terminal.bind", "terminal", terminal_id, merchant_id=row.merchant_id,
                     details={"from": row.location, "to": location})
    return _json(_row(uow, prov.c.id == row.id))


def suspend(uow: UnitOfWork, actor: str, now: datetime, terminal_id: str, reason: str = "") -> dict[str, Any]:
    """The host declines the terminal (58) from now on; any terminal, sandbox ones included."""
    return _set_status(uow, actor, now, terminal_id, "suspended", reason)


def resume(uow: UnitOfWork, actor: str, now: datetime, terminal_id: str) -> dict[str, Any]:
    """A suspended terminal back in service."""
    return _set_status(uow, actor, now, terminal_id, "active", "")


def _set_status(uow: UnitOfWork, actor: str, now: datetime, terminal_id: str, wanted: str,
                reason: str) -> dict[str, Any]:
    if len(reason) > limits.application_reject_text_chars_max:
        raise rules.OnboardingError("reason", f"must be at most {limits.application_reject_text_chars_max} characters")
    locked = sa.select(terminals.c.status, terminals.c.merchant_id).where(terminals.c.terminal_id == terminal_id)
    current = uow.connection.execute(locked.with_for_update()).one_or_none()
    if current is None:
        raise TerminalNotFound(terminal_id)
    if current.status != wanted:
        if current.status not in ("active", "suspended"):
            raise rules.IllegalTransition("the terminal", current.status, wanted)
        rules.terminal_transition(current.status, wanted)
        uow.registry.set_terminal_status(terminal_id, wanted)
        uow.connection.execute(prov.update().where(prov.c.terminal_id == terminal_id).values(
            status=wanted, updated_at=now))
        audit.record(uow, now, actor, "terminal.suspend" if wanted == "suspended" else "terminal.resume", "terminal",
                     terminal_id, merchant_id=current.merchant_id,
                     details={"from": current.status, **({"reason": reason} if reason else {})})
    return get(uow, terminal_id)


def replace(uow: UnitOfWork, vault: Vault, actor: str, now: datetime, terminal_id: str, *,
            random: Callable[[int], bytes] = secrets.token_bytes) -> dict[str, Any]:
    """Take a terminal out of service for good (status ``replaced``, declined by the host) and
    provision a new one for the same merchant and location; the new one's package, once."""
    row = _row(uow, prov.c.terminal_id == terminal_id, lock=True, missing=terminal_id)
    rules.terminal_transition(row.status, "replaced")
    new_request = onboarding.new_id("trq_", random)
    uow.connection.execute(prov.insert().values(
        id=new_request, merchant_id=row.merchant_id, location=row.location, status="requested",
        replaces_terminal_id=terminal_id, created_by=actor, created_at=now, updated_at=now))
    provisioned = provision(uow, vault, actor, now, new_request, mac_required=_mac_required(uow, terminal_id),
                            random=random)
    uow.connection.execute(prov.update().where(prov.c.id == row.id).values(
        status="replaced", replaced_by_terminal_id=provisioned["terminal_id"], updated_at=now))
    uow.registry.set_terminal_status(terminal_id, "replaced")
    audit.record(uow, now, actor, "terminal.replace", "terminal", terminal_id, merchant_id=row.merchant_id,
                 details={"replaced_by": provisioned["terminal_id"]})
    return provisioned


# --- reads ---------------------------------------------------------------------------------


def get(uow: UnitOfWork, terminal_id: str) -> dict[str, Any]:
    rows = list_terminals(uow, terminal_id=terminal_id)
    if not rows:
        raise TerminalNotFound(terminal_id)
    return rows[0]


def get_request(uow: UnitOfWork, request_id: str) -> dict[str, Any]:
    return _json(_row(uow, prov.c.id == request_id, missing=request_id))


def list_terminals(uow: UnitOfWork, *, merchant_id: str | None = None, status: str | None = None,
                   terminal_id: str | None = None, limit: int = limits.terminals_listed_max) -> list[dict[str, Any]]:
    """Terminals and open requests (sandbox terminals too, with no location), by terminal id;
    requests not yet provisioned last."""
    if not 1 <= limit <= limits.terminals_listed_max:
        raise rules.OnboardingError("limit", f"must be 1..{limits.terminals_listed_max}")
    t = terminals.c
    joined = sa.select(t.terminal_id, t.merchant_id, t.status, t.initial_ksn, t.mac_required, prov.c.id,
                       prov.c.location, prov.c.activated_at, prov.c.replaces_terminal_id,
                       prov.c.replaced_by_terminal_id).select_from(
        terminals.outerjoin(prov, prov.c.terminal_id == t.terminal_id)).order_by(t.terminal_id).limit(limit)
    requested = sa.select(prov).where(prov.c.status == "requested").order_by(prov.c.created_at, prov.c.id).limit(limit)
    if merchant_id is not None:
        joined = joined.where(t.merchant_id == merchant_id)
        requested = requested.where(prov.c.merchant_id == merchant_id)
    if status is not None:
        joined = joined.where(t.status == status)
    if terminal_id is not None:
        return [_terminal_json(r) for r in uow.connection.execute(joined.where(t.terminal_id == terminal_id))]
    shown = [_terminal_json(r) for r in uow.connection.execute(joined)]
    if status in (None, "requested"):
        shown += [_json(r) for r in uow.connection.execute(requested)]
    return shown[:limit]


def _terminal_json(row: sa.Row[Any]) -> dict[str, Any]:
    return {"terminal_id": row.terminal_id, "object": "terminal", "request_id": row.id,
            "merchant_id": row.merchant_id, "location": row.location, "status": row.status,
            "initial_ksn": row.initial_ksn, "mac_required": bool(row.mac_required),
            "activated_at": _iso(row.activated_at), "replaces": row.replaces_terminal_id,
            "replaced_by": row.replaced_by_terminal_id}


def _json(row: sa.Row[Any]) -> dict[str, Any]:
    return {"terminal_id": row.terminal_id, "object": "terminal", "request_id": row.id,
            "merchant_id": row.merchant_id, "location": row.location, "status": row.status,
            "activated_at": _iso(row.activated_at), "replaces": row.replaces_terminal_id,
            "replaced_by": row.replaced_by_terminal_id, "id": row.terminal_id or row.id}


def _row(uow: UnitOfWork, condition: sa.ColumnElement[bool], *, lock: bool = False,
         missing: str | None = None) -> sa.Row[Any]:
    query = sa.select(prov).where(condition)
    row = uow.connection.execute(query.with_for_update() if lock else query).one_or_none()
    if row is None:
        raise TerminalNotFound(missing or "?")
    return row


def _trading_merchant(uow: UnitOfWork, merchant_id: str) -> Any:
    merchant = uow.registry.get_merchant(merchant_id)
    if merchant is None:
        raise onboarding.MerchantNotFound(merchant_id)
    if merchant.status not in ("approved", "active"):
        raise MerchantNotTrading(merchant_id, merchant.status)
    return merchant


def _mac_required(uow: UnitOfWork, terminal_id: str) -> bool:
    terminal = uow.registry.get_terminal(terminal_id)
    return True if terminal is None else terminal.mac_required


def _location(location: str) -> str:
    location = location.strip()
    if not location:
        raise rules.OnboardingError("location", "is required")
    if len(location) > limits.terminal_location_chars_max or any(ord(c) < 32 for c in location):
        raise rules.OnboardingError("location", f"must be at most {limits.terminal_location_chars_max} "
                                                "printable characters")
    return location


def _new_terminal_id(uow: UnitOfWork, random: Callable[[int], bytes]) -> str:
    for _ in range(_TRIES_MAX):
        terminal_id = TERMINAL_ID_PREFIX + f"{int.from_bytes(random(4), 'big') % 10_000_000:07d}"
        if uow.registry.get_terminal(terminal_id) is None:
            return terminal_id
    raise RuntimeError("no free terminal id found")  # 10 million ids: a programmer error


def _new_device_id(uow: UnitOfWork, random: Callable[[int], bytes]) -> int:
    span = DEVICE_ID_MAX - DEVICE_ID_MIN + 1
    for _ in range(_TRIES_MAX):
        device_id = DEVICE_ID_MIN + int.from_bytes(random(4), "big") % span
        ksn = ((KEY_SET_ID << 40) | (device_id << 21)).to_bytes(10, "big").hex().upper()
        taken = uow.connection.execute(sa.select(prov.c.id).where(prov.c.device_id == device_id)).first() or \
            uow.connection.execute(sa.select(terminals.c.terminal_id).where(terminals.c.initial_ksn == ksn)).first()
        if taken is None:
            return device_id
    raise RuntimeError("no free DUKPT device id found")


def _new_code(random: Callable[[int], bytes]) -> str:
    """Uniform over the alphabet: bytes at or above the largest multiple of its size are skipped."""
    usable = 256 - 256 % len(CODE_ALPHABET)
    code = ""
    while len(code) < limits.terminal_activation_code_chars:
        code += "".join(CODE_ALPHABET[b % len(CODE_ALPHABET)] for b in random(8) if b < usable)
    return code[: limits.terminal_activation_code_chars]


def _code_hash(vault: Vault, terminal_id: str, code: str) -> str:
    """A keyed hash (HMAC-SHA256 under the data key): a stolen database does not give the codes."""
    return vault.lookup_hash(f"{terminal_id}:{code}", HASH_PURPOSE)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
