"""Double-entry ledger: accounts, transfers and their invariants — pure, no I/O.

The model is TigerBeetle's (docs.tigerbeetle.com, "Data modeling", "Two-phase
transfers", "Linked events"), expressed over plain Python values so that the
same rules run against the SQL store (``adapters.db.ledger``) and the in-memory
reference model used by the property tests:

- An account has an owner, a code (what it is for), a currency, four balances
  (``debits_pending``, ``debits_posted``, ``credits_pending``,
  ``credits_posted``) and flags limiting them.
- A transfer moves ``amount`` minor units from a debit account to a credit
  account of the same currency. It is append-only and has a client-chosen id.
- A *pending* transfer reserves the amount (an authorization hold); a later
  ``post_pending`` transfer posts all or part of it, ``void_pending`` or the
  hold's expiry releases it. Each of those is a new transfer linked to the
  pending one by ``pending_id``.
- Events flagged ``linked`` form a chain with the next event: all of the chain
  commits, or none of it.
- Idempotency: an id seen before returns the first outcome (``EXISTS`` for a
  committed transfer, the same error for a failed one), never a second posting;
  the same id with different fields is ``ID_EXISTS_WITH_DIFFERENT_FIELDS``.

``plan_transfers`` is the whole decision procedure: given the requests and the
current state it returns every outcome plus the writes to make. The adapter only
loads state, locks rows, and applies the plan.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntFlag, StrEnum

from paypos import limits


class LedgerInvariantError(RuntimeError):
    """A broken ledger invariant: a programmer error, never a user's."""


class AccountFlags(IntFlag):
    NONE = 0
    # The account may never owe: debits (pending + posted) <= credits posted.
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1
    # The mirror image, for accounts that hold a debit balance (e.g. a credit line).
    CREDITS_MUST_NOT_EXCEED_DEBITS = 2


class TransferKind(StrEnum):
    SINGLE = "single"  # single-phase, posted at once
    PENDING = "pending"  # first phase: a hold
    POST_PENDING = "post_pending"  # second phase: post (all or part of) a hold
    VOID_PENDING = "void_pending"  # second phase: release a hold
    EXPIRE_PENDING = "expire_pending"  # the ledger released a hold that timed out


class PendingState(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


class TransferResult(StrEnum):
    OK = "ok"
    EXISTS = "exists"
    # Shape of the request.
    ID_MUST_NOT_BE_EMPTY = "id_must_not_be_empty"
    ID_TOO_LONG = "id_too_long"
    AMOUNT_MUST_BE_POSITIVE = "amount_must_be_positive"
    AMOUNT_MUST_BE_INTEGER = "amount_must_be_integer"
    AMOUNT_EXCEEDS_LIMIT = "amount_exceeds_limit"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    DEBIT_ACCOUNT_REQUIRED = "debit_account_required"
    CREDIT_ACCOUNT_REQUIRED = "credit_account_required"
    CURRENCY_REQUIRED = "currency_required"
    PENDING_ID_REQUIRED = "pending_id_required"
    PENDING_ID_MUST_BE_EMPTY = "pending_id_must_be_empty"
    PENDING_ID_MUST_BE_DIFFERENT = "pending_id_must_be_different"
    TIMEOUT_RESERVED_FOR_PENDING = "timeout_reserved_for_pending_transfer"
    TIMEOUT_OUT_OF_RANGE = "timeout_out_of_range"
    KIND_NOT_ALLOWED = "kind_not_allowed"
    # State.
    ID_EXISTS_WITH_DIFFERENT_FIELDS = "id_exists_with_different_fields"
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    CURRENCY_MISMATCH = "currency_must_match_accounts"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"
    OVERFLOWS_BALANCE = "overflows_balance"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    PENDING_TRANSFER_FIELDS_MISMATCH = "pending_transfer_fields_mismatch"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    PENDING_TRANSFER_AMOUNT_MISMATCH = "void_amount_must_equal_pending_amount"
    # Chains.
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    LINKED_CHAIN_MISMATCH = "linked_chain_mismatch"
    BATCH_TOO_LARGE = "batch_too_large"

    @property
    def ok(self) -> bool:
        return self in (TransferResult.OK, TransferResult.EXISTS)


# Failures that depend only on the request's own fields: replaying the request
# reproduces them, so they are not remembered. Every other failure depends on
# ledger state and is remembered under the id, so a replay gets the same answer
# even after the state has changed (TigerBeetle's "transient errors").
_SHAPE_ERRORS = frozenset(
    {
        TransferResult.ID_MUST_NOT_BE_EMPTY,
        TransferResult.ID_TOO_LONG,
        TransferResult.AMOUNT_MUST_BE_POSITIVE,
        TransferResult.AMOUNT_MUST_BE_INTEGER,
        TransferResult.AMOUNT_EXCEEDS_LIMIT,
        TransferResult.ACCOUNTS_MUST_BE_DIFFERENT,
        TransferResult.DEBIT_ACCOUNT_REQUIRED,
        TransferResult.CREDIT_ACCOUNT_REQUIRED,
        TransferResult.CURRENCY_REQUIRED,
        TransferResult.PENDING_ID_REQUIRED,
        TransferResult.PENDING_ID_MUST_BE_EMPTY,
        TransferResult.PENDING_ID_MUST_BE_DIFFERENT,
        TransferResult.TIMEOUT_RESERVED_FOR_PENDING,
        TransferResult.TIMEOUT_OUT_OF_RANGE,
        TransferResult.KIND_NOT_ALLOWED,
        TransferResult.ID_EXISTS_WITH_DIFFERENT_FIELDS,
        TransferResult.LINKED_CHAIN_MISMATCH,
        TransferResult.LINKED_EVENT_CHAIN_OPEN,
        TransferResult.BATCH_TOO_LARGE,
    }
)


@dataclass(frozen=True, slots=True)
class Balances:
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    @property
    def net_posted(self) -> int:
        """credits - debits, posted only."""
        return self.credits_posted - self.debits_posted

    @property
    def available_credit_balance(self) -> int:
        """What a credit-normal account can still spend: credits posted - all debits."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    def values(self) -> tuple[int, int, int, int]:
        return (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    owner_ref: str  # stable key of the owner: "platform", "merchant:M1", "card:<card id>"
    owner: str  # how the owner is shown: "merchant:M1", "card:476173******0010"
    code: str  # what the account is for: merchant_pending, fees_revenue, ...
    currency: str  # ISO 4217 alpha
    flags: AccountFlags = AccountFlags.NONE
    balances: Balances = field(default_factory=Balances)

    def with_balances(self, balances: Balances) -> Account:
        """This account with other balances (built directly: dataclasses.replace costs ~3x,
        and a batch of sales does this a few times per sale)."""
        return Account(self.id, self.owner_ref, self.owner, self.code, self.currency, self.flags, balances)


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """What a client asks the ledger to do. Fields unused by a kind stay None/0."""

    id: str
    debit_account_id: int | None = None
    credit_account_id: int | None = None
    amount: int | None = None  # post_pending: None posts the full pending amount
    currency: str | None = None
    kind: TransferKind = TransferKind.SINGLE
    pending_id: str | None = None
    timeout_s: int = 0  # pending only; 0 = never expires
    code: str = ""  # what the movement is for: sale, fee, refund, opening_balance, ...
    linked: bool = False  # chain with the next request in the batch

    def fingerprint(self) -> str:
        """Stable hash of every field: a replay must match it exactly."""
        data = [
            self.id,
            self.debit_account_id,
            self.credit_account_id,
            self.amount,
            self.currency,
            str(self.kind),
            self.pending_id,
            self.timeout_s,
            self.code,
            self.linked,
        ]
        return hashlib.sha256(json.dumps(data, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Transfer:
    """A committed transfer as stored (append-only)."""

    id: str
    kind: TransferKind
    debit_account_id: int
    credit_account_id: int
    amount: int
    currency: str
    pending_id: str | None
    timeout_s: int
    expires_at: datetime | None
    code: str
    created_at: datetime
    fingerprint: str


@dataclass(frozen=True, slots=True)
class PendingHold:
    """A pending transfer together with its current state."""

    transfer: Transfer
    state: PendingState


@dataclass(frozen=True, slots=True)
class PriorOutcome:
    """What an id already stands for: a committed transfer, or a remembered failure."""

    fingerprint: str
    result: TransferResult  # OK for a committed transfer
    transfer: Transfer | None = None


@dataclass(frozen=True, slots=True)
class TransferOutcome:
    id: str
    result: TransferResult
    transfer: Transfer | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    id: str
    fingerprint: str
    result: TransferResult


@dataclass(slots=True)
class LedgerPlan:
    """Everything `plan_transfers` decided; the store applies it in one transaction."""

    outcomes: list[TransferOutcome]
    new_transfers: list[Transfer]
    account_balances: dict[int, Balances]  # only accounts whose balances changed
    pending_states: dict[str, PendingState]  # only holds whose state changed
    failures: list[Failure]


class _Rejected(Exception):
    def __init__(self, result: TransferResult) -> None:
        super().__init__(result.value)
        self.result = result


@dataclass(slots=True)
class _WorkingState:
    """A copy-on-write view of the state a batch sees while it is being planned."""

    accounts: Mapping[int, Account]
    pendings: Mapping[str, PendingHold]
    balances: dict[int, Balances] = field(default_factory=dict)
    states: dict[str, PendingState] = field(default_factory=dict)
    created: dict[str, Transfer] = field(default_factory=dict)
    failed: dict[str, Failure] = field(default_factory=dict)

    def balance(self, account_id: int) -> Balances:
        if account_id in self.balances:
            return self.balances[account_id]
        return self.accounts[account_id].balances

    def hold(self, transfer_id: str) -> PendingHold | None:
        if transfer_id in self.created:
            created = self.created[transfer_id]
            if created.kind is not TransferKind.PENDING:
                return None
            return PendingHold(created, self.states.get(transfer_id, PendingState.PENDING))
        hold = self.pendings.get(transfer_id)
        if hold is None:
            return None
        return PendingHold(hold.transfer, self.states.get(transfer_id, hold.state))

    def snapshot(self) -> tuple[dict[int, Balances], dict[str, PendingState], dict[str, Transfer]]:
        return dict(self.balances), dict(self.states), dict(self.created)

    def restore(self, snap: tuple[dict[int, Balances], dict[str, PendingState], dict[str, Transfer]]) -> None:
        self.balances, self.states, self.created = (dict(part) for part in snap)  # type: ignore[assignment]


def check_request_shape(request: TransferRequest) -> TransferResult:
    """Validate what can be validated without ledger state."""
    if not request.id:
        return TransferResult.ID_MUST_NOT_BE_EMPTY
    if len(request.id.encode()) > limits.transfer_id_bytes_max:
        return TransferResult.ID_TOO_LONG
    if request.amount is not None and (type(request.amount) is not int):
        return TransferResult.AMOUNT_MUST_BE_INTEGER
    if request.kind is TransferKind.EXPIRE_PENDING:
        return TransferResult.KIND_NOT_ALLOWED  # only the ledger expires holds
    if request.kind in (TransferKind.SINGLE, TransferKind.PENDING):
        return _check_first_phase_shape(request)
    return _check_second_phase_shape(request)


def _check_first_phase_shape(request: TransferRequest) -> TransferResult:
    if request.pending_id is not None:
        return TransferResult.PENDING_ID_MUST_BE_EMPTY
    if request.debit_account_id is None:
        return TransferResult.DEBIT_ACCOUNT_REQUIRED
    if request.credit_account_id is None:
        return TransferResult.CREDIT_ACCOUNT_REQUIRED
    if request.debit_account_id == request.credit_account_id:
        return TransferResult.ACCOUNTS_MUST_BE_DIFFERENT
    if not request.currency:
        return TransferResult.CURRENCY_REQUIRED
    if request.amount is None or request.amount <= 0:
        return TransferResult.AMOUNT_MUST_BE_POSITIVE
    if request.amount > limits.transfer_amount_minor_max:
        return TransferResult.AMOUNT_EXCEEDS_LIMIT
    if request.kind is TransferKind.SINGLE and request.timeout_s != 0:
        return TransferResult.TIMEOUT_RESERVED_FOR_PENDING
    if not 0 <= request.timeout_s <= limits.pending_timeout_s_max:
        return TransferResult.TIMEOUT_OUT_OF_RANGE
    return TransferResult.OK


def _check_second_phase_shape(request: TransferRequest) -> TransferResult:
    if not request.pending_id:
        return TransferResult.PENDING_ID_REQUIRED
    if request.pending_id == request.id:
        return TransferResult.PENDING_ID_MUST_BE_DIFFERENT
    if request.timeout_s != 0:
        return TransferResult.TIMEOUT_RESERVED_FOR_PENDING
    if request.amount is not None and request.amount <= 0:
        return TransferResult.AMOUNT_MUST_BE_POSITIVE
    if request.amount is not None and request.amount > limits.transfer_amount_minor_max:
        return TransferResult.AMOUNT_EXCEEDS_LIMIT
    if (
        request.debit_account_id is not None
        and request.debit_account_id == request.credit_account_id
    ):
        return TransferResult.ACCOUNTS_MUST_BE_DIFFERENT
    return TransferResult.OK


def split_chains(requests: Sequence[TransferRequest]) -> list[list[int]]:
    """Indexes of the requests grouped into chains (an unlinked event is a chain of one)."""
    chains: list[list[int]] = []
    current: list[int] = []
    for index, request in enumerate(requests):
        current.append(index)
        if not request.linked:
            chains.append(current)
            current = []
    if current:
        chains.append(current)
    return chains


def plan_transfers(
    requests: Sequence[TransferRequest],
    accounts: Mapping[int, Account],
    pendings: Mapping[str, PendingHold],
    priors: Mapping[str, PriorOutcome],
    now: datetime,
) -> LedgerPlan:
    """Decide the outcome of every request in order; chains are all-or-nothing.

    ``accounts`` must hold every account the requests (and the holds they
    post or void) name that exists; ``pendings`` every hold they name that
    exists; ``priors`` every id among the requests already seen.
    """
    outcomes: list[TransferOutcome | None] = [None] * len(requests)
    if len(requests) > limits.transfers_per_batch_max:
        return _whole_batch_fails(requests, TransferResult.BATCH_TOO_LARGE)
    work = _WorkingState(accounts=accounts, pendings=pendings)
    failures: list[Failure] = []
    for chain in split_chains(requests):
        chain_requests = [requests[i] for i in chain]
        for index, outcome in zip(chain, _plan_chain(chain_requests, work, priors, now, failures)):
            outcomes[index] = outcome
    final = [o for o in outcomes if o is not None]
    if len(final) != len(requests):
        raise LedgerInvariantError("every request must get exactly one outcome")
    return LedgerPlan(
        outcomes=final,
        new_transfers=list(work.created.values()),
        account_balances=work.balances,
        pending_states=work.states,
        failures=failures,
    )


def _whole_batch_fails(requests: Sequence[TransferRequest], result: TransferResult) -> LedgerPlan:
    return LedgerPlan([TransferOutcome(r.id, result) for r in requests], [], {}, {}, [])


def _plan_chain(
    chain: list[TransferRequest],
    work: _WorkingState,
    priors: Mapping[str, PriorOutcome],
    now: datetime,
    failures: list[Failure],
) -> list[TransferOutcome]:
    if chain[-1].linked:
        return [TransferOutcome(r.id, TransferResult.LINKED_EVENT_CHAIN_OPEN) for r in chain]
    seen = [r for r in chain if r.id in priors or r.id in work.created or r.id in work.failed]
    if seen:
        return _replay_chain(chain, work, priors)
    snap = work.snapshot()
    results: list[TransferOutcome] = []
    for request in chain:
        try:
            transfer = _apply(request, work, now)
        except _Rejected as rejected:
            work.restore(snap)
            outcomes = _fail_chain(chain, request, rejected.result)
            for outcome, req in zip(outcomes, chain):
                if outcome.result not in _SHAPE_ERRORS:
                    failure = Failure(outcome.id, req.fingerprint(), outcome.result)
                    failures.append(failure)
                    work.failed[failure.id] = failure
            return outcomes
        results.append(TransferOutcome(request.id, TransferResult.OK, transfer))
    return results


def _fail_chain(
    chain: list[TransferRequest], failed: TransferRequest, result: TransferResult
) -> list[TransferOutcome]:
    return [
        TransferOutcome(r.id, result if r is failed else TransferResult.LINKED_EVENT_FAILED)
        for r in chain
    ]


def _replay_chain(
    chain: list[TransferRequest], work: _WorkingState, priors: Mapping[str, PriorOutcome]
) -> list[TransferOutcome]:
    """A chain naming ids seen before: the whole chain must be a faithful replay."""
    outcomes: list[TransferOutcome] = []
    for request in chain:
        prior = priors.get(request.id)
        if prior is None and request.id in work.created:
            created = work.created[request.id]
            prior = PriorOutcome(created.fingerprint, TransferResult.OK, created)
        if prior is None and request.id in work.failed:
            failed = work.failed[request.id]
            prior = PriorOutcome(failed.fingerprint, failed.result)
        if prior is None:
            return [TransferOutcome(r.id, TransferResult.LINKED_CHAIN_MISMATCH) for r in chain]
        if prior.fingerprint != request.fingerprint():
            return _fail_chain(chain, request, TransferResult.ID_EXISTS_WITH_DIFFERENT_FIELDS)
        if prior.result is TransferResult.OK:
            outcomes.append(TransferOutcome(request.id, TransferResult.EXISTS, prior.transfer))
        else:
            outcomes.append(TransferOutcome(request.id, prior.result))
    committed = {o.result is TransferResult.EXISTS for o in outcomes}
    if len(committed) > 1:  # part committed, part failed: not one chain replayed
        return [TransferOutcome(r.id, TransferResult.LINKED_CHAIN_MISMATCH) for r in chain]
    return outcomes


def _apply(request: TransferRequest, work: _WorkingState, now: datetime) -> Transfer:
    shape = check_request_shape(request)
    if shape is not TransferResult.OK:
        raise _Rejected(shape)
    if request.kind in (TransferKind.SINGLE, TransferKind.PENDING):
        return _apply_first_phase(request, work, now)
    return _apply_second_phase(request, work, now)


def _apply_first_phase(request: TransferRequest, work: _WorkingState, now: datetime) -> Transfer:
    debit_id, credit_id, amount = request.debit_account_id, request.credit_account_id, request.amount
    if debit_id is None or credit_id is None or amount is None or request.currency is None:
        raise LedgerInvariantError("shape check lets no first-phase field through empty")
    debit, credit = _accounts_for(debit_id, credit_id, work)
    if debit.currency != request.currency or credit.currency != request.currency:
        raise _Rejected(TransferResult.CURRENCY_MISMATCH)
    pending = request.kind is TransferKind.PENDING
    new_debit = _add(work.balance(debit_id), debits_pending=amount if pending else 0, debits_posted=0 if pending else amount)
    new_credit = _add(work.balance(credit_id), credits_pending=amount if pending else 0, credits_posted=0 if pending else amount)
    _check_limits(debit, new_debit, credit, new_credit)
    expires_at = now + timedelta(seconds=request.timeout_s) if pending and request.timeout_s else None
    transfer = _record(request, debit_id, credit_id, amount, request.currency, expires_at, now)
    work.balances[debit_id] = new_debit
    work.balances[credit_id] = new_credit
    work.created[transfer.id] = transfer
    return transfer


def _apply_second_phase(request: TransferRequest, work: _WorkingState, now: datetime) -> Transfer:
    hold = work.hold(request.pending_id or "")
    if hold is None:
        raise _Rejected(TransferResult.PENDING_TRANSFER_NOT_FOUND)
    pending = hold.transfer
    _check_hold_usable(hold, now)
    _check_matches_hold(request, pending)
    if request.kind is TransferKind.POST_PENDING:
        amount = pending.amount if request.amount is None else request.amount
        if amount > pending.amount:
            raise _Rejected(TransferResult.EXCEEDS_PENDING_TRANSFER_AMOUNT)
        state = PendingState.POSTED
    else:
        if request.amount is not None and request.amount != pending.amount:
            raise _Rejected(TransferResult.PENDING_TRANSFER_AMOUNT_MISMATCH)
        amount, state = pending.amount, PendingState.VOIDED
    transfer = _record(request, pending.debit_account_id, pending.credit_account_id, amount, pending.currency, None, now)
    _release_hold(work, pending, posted_amount=amount if state is PendingState.POSTED else 0)
    work.states[pending.id] = state
    work.created[transfer.id] = transfer
    return transfer


def _check_hold_usable(hold: PendingHold, now: datetime) -> None:
    if hold.state is PendingState.POSTED:
        raise _Rejected(TransferResult.PENDING_TRANSFER_ALREADY_POSTED)
    if hold.state is PendingState.VOIDED:
        raise _Rejected(TransferResult.PENDING_TRANSFER_ALREADY_VOIDED)
    if hold.state is PendingState.EXPIRED or is_hold_expired(hold.transfer, now):
        raise _Rejected(TransferResult.PENDING_TRANSFER_EXPIRED)


def _check_matches_hold(request: TransferRequest, pending: Transfer) -> None:
    mismatched = (
        (request.debit_account_id is not None and request.debit_account_id != pending.debit_account_id)
        or (request.credit_account_id is not None and request.credit_account_id != pending.credit_account_id)
        or (request.currency is not None and request.currency != pending.currency)
    )
    if mismatched:
        raise _Rejected(TransferResult.PENDING_TRANSFER_FIELDS_MISMATCH)


def is_hold_expired(pending: Transfer, now: datetime) -> bool:
    return pending.expires_at is not None and pending.expires_at <= now


def _release_hold(work: _WorkingState, pending: Transfer, posted_amount: int) -> None:
    debit_before = work.balance(pending.debit_account_id)
    credit_before = work.balance(pending.credit_account_id)
    work.balances[pending.debit_account_id] = _add(
        debit_before, debits_pending=-pending.amount, debits_posted=posted_amount
    )
    work.balances[pending.credit_account_id] = _add(
        credit_before, credits_pending=-pending.amount, credits_posted=posted_amount
    )


def _accounts_for(debit_id: int, credit_id: int, work: _WorkingState) -> tuple[Account, Account]:
    debit = work.accounts.get(debit_id)
    if debit is None:
        raise _Rejected(TransferResult.DEBIT_ACCOUNT_NOT_FOUND)
    credit = work.accounts.get(credit_id)
    if credit is None:
        raise _Rejected(TransferResult.CREDIT_ACCOUNT_NOT_FOUND)
    return debit, credit


_BALANCE_FIELDS = frozenset({"debits_pending", "debits_posted", "credits_pending", "credits_posted"})


def _add(balances: Balances, **deltas: int) -> Balances:
    # Built directly rather than by dataclasses.replace (the ledger's hottest line: ~4 per sale).
    updated = Balances(balances.debits_pending + deltas.get("debits_pending", 0),
                       balances.debits_posted + deltas.get("debits_posted", 0),
                       balances.credits_pending + deltas.get("credits_pending", 0),
                       balances.credits_posted + deltas.get("credits_posted", 0))
    if not deltas.keys() <= _BALANCE_FIELDS:
        raise TypeError(f"unknown balance fields in {sorted(deltas)}")
    if any(value < 0 for value in updated.values()):
        raise LedgerInvariantError(f"balance went negative: {updated}")
    if any(value > limits.balance_minor_max for value in updated.values()):
        raise _Rejected(TransferResult.OVERFLOWS_BALANCE)
    return updated


def _check_limits(debit: Account, new_debit: Balances, credit: Account, new_credit: Balances) -> None:
    if limit_violated(debit.flags, new_debit) is TransferResult.EXCEEDS_CREDITS:
        raise _Rejected(TransferResult.EXCEEDS_CREDITS)
    if limit_violated(credit.flags, new_credit) is TransferResult.EXCEEDS_DEBITS:
        raise _Rejected(TransferResult.EXCEEDS_DEBITS)


def limit_violated(flags: AccountFlags, balances: Balances) -> TransferResult | None:
    """Which limit flag these balances break, if any (TigerBeetle account flags)."""
    if flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS:
        if balances.debits_pending + balances.debits_posted > balances.credits_posted:
            return TransferResult.EXCEEDS_CREDITS
    if flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS:
        if balances.credits_pending + balances.credits_posted > balances.debits_posted:
            return TransferResult.EXCEEDS_DEBITS
    return None


def _record(
    request: TransferRequest,
    debit_id: int,
    credit_id: int,
    amount: int,
    currency: str,
    expires_at: datetime | None,
    now: datetime,
) -> Transfer:
    return Transfer(
        id=request.id,
        kind=request.kind,
        debit_account_id=debit_id,
        credit_account_id=credit_id,
        amount=amount,
        currency=currency,
        pending_id=request.pending_id,
        timeout_s=request.timeout_s,
        expires_at=expires_at,
        code=request.code,
        created_at=now,
        fingerprint=request.fingerprint(),
    )


def plan_expiry(
    holds: Iterable[PendingHold], accounts: Mapping[int, Account], now: datetime
) -> LedgerPlan:
    """Release every hold past its timeout, each with an ``expire_pending`` transfer."""
    work = _WorkingState(accounts=accounts, pendings={})
    for hold in holds:
        pending = hold.transfer
        if hold.state is not PendingState.PENDING or not is_hold_expired(pending, now):
            continue
        _release_hold(work, pending, posted_amount=0)
        work.states[pending.id] = PendingState.EXPIRED
        expiry = Transfer(
            id=expiry_transfer_id(pending.id),
            kind=TransferKind.EXPIRE_PENDING,
            debit_account_id=pending.debit_account_id,
            credit_account_id=pending.credit_account_id,
            amount=pending.amount,
            currency=pending.currency,
            pending_id=pending.id,
            timeout_s=0,
            expires_at=None,
            code=pending.code,
            created_at=now,
            fingerprint="",
        )
        work.created[expiry.id] = expiry
    return LedgerPlan([], list(work.created.values()), work.balances, work.states, [])


def expiry_transfer_id(pending_id: str) -> str:
    """The id of the transfer recording a hold's expiry.

    Client ids are at most ``limits.transfer_id_bytes_max`` bytes; the stored
    column is wider, so this id can never collide with a client's.
    """
    return f"~expire:{pending_id}"
