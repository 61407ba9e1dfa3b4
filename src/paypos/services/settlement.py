"""Settlement and payouts (issue 7, docs/settlement.md): per-merchant cycles, the daily
clearing run, rolling reserves, payouts to a verified bank account, the clearing file and the
bank's statement.

Money path (every transfer id deterministic, so a rerun or a resumed run posts nothing twice):

- ``settle:<merchant>:<date>``          merchant_pending   → merchant_available  (window net)
- ``reserve_release:<batch id>``        merchant_reserve   → merchant_available  (after hold days)
- ``reserve:<merchant>:<date>``         merchant_available → merchant_reserve    (bps of gross)
- ``instant_fee:<merchant>:<date>``     merchant_available → platform fees_revenue (T+0)
- ``charge:<charge id>``                merchant_available → platform fees_revenue (pricing hook)
- ``payout:<merchant>:<date>``          merchant_available → platform payouts_in_transit
- ``payout_paid:<payout id>``           payouts_in_transit → platform bank_settlement
- ``payout_return:<payout id>``         payouts_in_transit → merchant_available

Each merchant of a run is settled in its own transaction, together with its batch row, its
payout row and the run's progress counters: a crash (even kill -9) leaves whole merchants done
or not started, and the next ``run_clearing`` of the date carries on with the rest.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.settlement import CHARGEBACK_CODES, FEE_CODES, REFUND_CODES, SqlSettlementStore
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import Vault
from paypos.bootstrap import App
from paypos.domain import settlement as rules
from paypos.domain.ledger import AccountFlags, LedgerInvariantError, TransferRequest, TransferResult
from paypos.domain.registry import Merchant
from paypos.domain.settlement import Cycle, SettlementError, SettlementSettings
from paypos.services import audit, events
from paypos.services.sandbox import PLATFORM, merchant_owner

CRASH_AFTER_ENV = "PAYPOS_SETTLEMENT_CRASH_AFTER"  # tests only: os._exit after N merchants committed
_SEALED_PURPOSE = "bank_account"


class NotFound(LookupError):
    """No such merchant, bank account or payout."""


class Refused(RuntimeError):
    """The request is well formed but the state forbids it (a holiday, a failed binding, ...)."""


@dataclass(frozen=True, slots=True)
class Charge:
    """An outstanding charge the pricing slice asks settlement to collect from available."""

    id: str  # idempotency key: the ledger transfer is ``charge:<id>``
    amount_minor: int
    reason: str


# The pricing seam: each hook returns the charges outstanding for (merchant, currency, date),
# collected from merchant_available before the payout (never more than is available; the
# rest stays outstanding with the hook). Empty today; the pricing slice appends its function.
ChargesHook = Callable[[UnitOfWork, str, str, date], list[Charge]]
CHARGES_HOOKS: list[ChargesHook] = []


# --- settings and holidays -------------------------------------------------------------------------

def get_settings(uow: UnitOfWork, merchant_id: str) -> SettlementSettings:
    """The merchant's settings, or the defaults (T+1, 23:00 Asia/Shanghai, no reserve)."""
    return SqlSettlementStore(uow.connection).settings(merchant_id) or SettlementSettings(merchant_id)


def set_settings(uow: UnitOfWork, merchant_id: str, changes: dict[str, Any], actor: str,
                 now: datetime) -> dict[str, Any]:
    """Change some fields of the merchant's settings (``cycle``, ``weekday``, ``cutoff_local``,
    ``time_zone``, ``reserve_bps``, ``reserve_hold_days``, ``instant_rate_bps``, ``payout_minor_min``)."""
    _merchant(uow, merchant_id)
    unknown = sorted(set(changes) - _SETTING_FIELDS)
    if unknown:
        raise SettlementError(unknown[0], f"unknown settlement setting {unknown[0]!r}")
    if "cycle" in changes:
        try:
            changes = {**changes, "cycle": Cycle(changes["cycle"])}
        except ValueError:
            raise SettlementError("cycle", "cycle must be T0, T1 or WEEKLY") from None
    for name, value in changes.items():
        if name not in ("cycle", "cutoff_local", "time_zone") and (type(value) is not int):
            raise SettlementError(name, f"{name} must be a whole number")
        if name in ("cutoff_local", "time_zone") and not isinstance(value, str):
            raise SettlementError(name, f"{name} must be text")
    settings = rules.check_settings(replace(get_settings(uow, merchant_id), **changes))
    SqlSettlementStore(uow.connection).save_settings(settings, now)
    body = settings_json(settings)
    audit.record(uow, now, actor, "settlement.settings", "merchant", merchant_id, merchant_id=merchant_id,
                 details=body)
    return body


_SETTING_FIELDS = frozenset({"cycle", "weekday", "cutoff_local", "time_zone", "reserve_bps", "reserve_hold_days",
                             "instant_rate_bps", "payout_minor_min"})


def settings_json(settings: SettlementSettings) -> dict[str, Any]:
    return {"merchant_id": settings.merchant_id, "cycle": settings.cycle.value,
            "weekday": rules.WEEKDAYS[settings.weekday], "cutoff_local": settings.cutoff_local,
            "time_zone": settings.time_zone, "reserve_bps": settings.reserve_bps,
            "reserve_hold_days": settings.reserve_hold_days, "instant_rate_bps": settings.instant_rate_bps,
            "payout_minor_min": settings.payout_minor_min}


def add_holiday(uow: UnitOfWork, day: date, name: str, actor: str, now: datetime) -> dict[str, Any]:
    """A date on which nothing settles (idempotent: adding it again changes nothing)."""
    name = (name or "").strip()[:64]
    if SqlSettlementStore(uow.connection).add_holiday(day, name, now):
        audit.record(uow, now, actor, "settlement.holiday_add", "holiday", day.isoformat(), details={"name": name})
    return {"date": day.isoformat(), "name": name}


def list_holidays(uow: UnitOfWork) -> list[dict[str, Any]]:
    return [{"date": row.holiday_date.isoformat(), "name": row.name}
            for row in SqlSettlementStore(uow.connection).holidays()]


def _holidays(uow: UnitOfWork) -> frozenset[date]:
    return frozenset(row.holiday_date for row in SqlSettlementStore(uow.connection).holidays())


# --- bank accounts (the sandbox bank's binding by micro-deposits) ------------------------------------

def bind_bank_account(uow: UnitOfWork, vault: Vault, merchant_id: str, account_number: str, holder_name: str,
                      actor: str, now: datetime) -> dict[str, Any]:
    """Validate the number and the holder name, then "send" two micro-deposits (1..99 minor
    units each) the merchant confirms with ``confirm_micro_deposits``; the new account is
    ``pending_verification``. A holder name other than the merchant's registered name is refused."""
    merchant = _merchant(uow, merchant_id)
    number, kind = rules.account_number(account_number)
    if len(holder_name or "") > limits.bank_holder_name_chars_max:
        raise SettlementError("holder_name", f"holder name is at most {limits.bank_holder_name_chars_max} characters")
    if not rules.holder_matches(holder_name, merchant.name):
        raise SettlementError("holder_name", "holder name must match the merchant's registered name")
    store = SqlSettlementStore(uow.connection)
    account_id = "ba_" + secrets.token_hex(8)
    store.add_bank_account({
        "id": account_id, "merchant_id": merchant_id, "number_sealed": vault.seal(number, _SEALED_PURPOSE),
        "number_hash": vault.lookup_hash(number, _SEALED_PURPOSE), "number_masked": rules.mask_account(number),
        "kind": kind.value, "holder_name": holder_name.strip(), "status": "pending_verification",
        "micro_deposit_1": 1 + secrets.randbelow(limits.micro_deposit_minor_max),
        "micro_deposit_2": 1 + secrets.randbelow(limits.micro_deposit_minor_max),
        "attempts": 0, "created_at": now, "updated_at": now})
    audit.record(uow, now, actor, "bank_account.bind", "bank_account", account_id, merchant_id=merchant_id,
                 details={"number": rules.mask_account(number), "kind": kind.value})
    return bank_account_json(_bank_account(store, account_id))


def confirm_micro_deposits(uow: UnitOfWork, merchant_id: str, bank_account_id: str, amounts: tuple[int, int],
                           actor: str, now: datetime) -> dict[str, Any]:
    """Both amounts right: ``verified``. Wrong: another try, and after the third wrong one the
    binding is ``failed`` for good (bind again). The account comes back as JSON either way;
    ``confirmed`` says whether these amounts were right."""
    store = SqlSettlementStore(uow.connection)
    row = _bank_account(store, bank_account_id, lock=True)
    if row.merchant_id != merchant_id:
        raise NotFound(f"no bank account {bank_account_id} of merchant {merchant_id}")
    if row.status != "pending_verification":
        raise Refused(f"bank account {bank_account_id} is {row.status}, not pending_verification")
    right = rules.micro_deposits_match((row.micro_deposit_1, row.micro_deposit_2), amounts)
    attempts = row.attempts + 1
    status = "verified" if right else ("failed" if attempts >= limits.micro_deposit_attempts_max else row.status)
    store.update_bank_account(bank_account_id, attempts=attempts, status=status, updated_at=now,
                              verified_at=now if right else None)
    audit.record(uow, now, actor, "bank_account.confirm", "bank_account", bank_account_id, merchant_id=merchant_id,
                 details={"confirmed": right, "attempts": attempts, "status": status})
    return {**bank_account_json(_bank_account(store, bank_account_id)), "confirmed": right}


def micro_deposits(uow: UnitOfWork, bank_account_id: str) -> dict[str, Any]:
    """What the sandbox bank "sent" (what a real merchant reads on its bank statement)."""
    row = _bank_account(SqlSettlementStore(uow.connection), bank_account_id)
    return {"bank_account_id": row.id, "number": row.number_masked,
            "amounts_minor": [row.micro_deposit_1, row.micro_deposit_2]}


BANK_FLAGS = ("account_closed", "name_mismatch")


def flag_bank_account(uow: UnitOfWork, bank_account_id: str, flag: str | None, actor: str,
                      now: datetime) -> dict[str, Any]:
    """The sandbox bank returns payouts to a flagged account (R02 closed, R03 name mismatch)."""
    if flag is not None and flag not in BANK_FLAGS:
        raise SettlementError("flag", f"flag must be one of {', '.join(BANK_FLAGS)}")
    store = SqlSettlementStore(uow.connection)
    row = _bank_account(store, bank_account_id, lock=True)
    store.update_bank_account(bank_account_id, bank_flag=flag, updated_at=now)
    audit.record(uow, now, actor, "bank_account.flag", "bank_account", bank_account_id,
                 merchant_id=row.merchant_id, details={"flag": flag})
    return bank_account_json(_bank_account(store, bank_account_id))


def list_bank_accounts(uow: UnitOfWork, merchant_id: str | None = None,
                       limit: int = limits.settlement_page_size_max) -> list[dict[str, Any]]:
    return [bank_account_json(row) for row in SqlSettlementStore(uow.connection).bank_accounts(merchant_id, limit)]


def bank_account_json(row: sa.Row) -> dict[str, Any]:
    """Never the full number nor the micro-deposit amounts."""
    return {"id": row.id, "object": "bank_account", "merchant_id": row.merchant_id, "number": row.number_masked,
            "kind": row.kind, "holder_name": row.holder_name, "status": row.status,
            "attempts_left": max(limits.micro_deposit_attempts_max - row.attempts, 0),
            "bank_flag": row.bank_flag, "created_at": rules.iso(row.created_at),
            "verified_at": rules.iso(row.verified_at) if row.verified_at else None}


def _bank_account(store: SqlSettlementStore, account_id: str, *, lock: bool = False) -> sa.Row:
    row = store.bank_account(account_id, lock=lock)
    if row is None:
        raise NotFound(f"no bank account {account_id}")
    return row


def _merchant(uow: UnitOfWork, merchant_id: str) -> Merchant:
    merchant = uow.registry.get_merchant(merchant_id)
    if merchant is None:
        raise NotFound(f"no merchant {merchant_id}")
    return merchant


# --- the clearing run ---------------------------------------------------------------------------------

Progress = Callable[[int, int], None]  # (merchants done, merchants due)


def run_clearing(app: App, business_date: date, progress: Progress | None = None, *, actor: str = "system",
                 merchants_per_transaction: int = limits.settlement_merchants_per_transaction) -> dict[str, Any]:
    """Settle every merchant due on ``business_date``; resumes a run that stopped; a finished
    run is answered again without posting anything. Returns the run's summary.

    Merchants are settled ``merchants_per_transaction`` at a time, each group in one
    transaction with its batch rows, payouts and the run's counters (one commit per group, not
    per merchant: SQLite's synchronous commits cost a disk flush each)."""
    if not 1 <= merchants_per_transaction <= limits.settlement_merchants_per_transaction_max:
        raise SettlementError("merchants_per_transaction",
                              f"merchants per transaction must be 1..{limits.settlement_merchants_per_transaction_max}")
    with app.uow() as uow:
        store = SqlSettlementStore(uow.connection)
        holidays = _holidays(uow)
        if business_date in holidays:
            raise Refused(f"{business_date.isoformat()} is a holiday: nothing settles or pays out on it")
        merchants = sorted(uow.registry.list_merchants(), key=lambda m: m.merchant_id)
        configured = store.all_settings()
        due = [(m, configured.get(m.merchant_id) or SettlementSettings(m.merchant_id)) for m in merchants]
        due = [(m, s) for m, s in due if rules.is_due(s, business_date, holidays)]
        run = store.run(business_date)
        if run is None:
            store.start_run(business_date, len(due), app.clock())
            audit.record(uow, app.clock(), actor, "settlement.run", "settlement_run", business_date.isoformat())
        elif run.status != "done":  # resuming: merchants registered since the crash are due too
            store.update_run(business_date, merchants_total=len(due))
        finished = store.merchants_with_batches(business_date)
        uow.commit()
    if run is not None and run.status == "done":
        return run_summary(app, business_date)
    crash_after = int(os.environ.get(CRASH_AFTER_ENV, "0") or 0)
    todo = [(m, s) for m, s in due if m.merchant_id not in finished]
    done, done_here = len(due) - len(todo), 0
    shared = _share_windows(app, todo, business_date)
    for first in range(0, len(todo), merchants_per_transaction):
        group = todo[first:first + merchants_per_transaction]
        _settle_group(app, group, business_date, shared)
        done_here += len(group)
        if crash_after and done_here >= crash_after:
            os._exit(70)  # the crash test's kill: nothing after the commit above runs
        done += len(group)
        if progress is not None:
            progress(done, len(due))
    with app.uow() as uow:
        SqlSettlementStore(uow.connection).update_run(business_date, status="done", finished_at=app.clock())
        uow.commit()
    return run_summary(app, business_date)


def run_summary(app: App, business_date: date) -> dict[str, Any]:
    with app.uow(write=False) as uow:
        row = SqlSettlementStore(uow.connection).run(business_date)
    if row is None:
        raise NotFound(f"no clearing run for {business_date.isoformat()}")
    return _run_json(dict(row._mapping))


def list_runs(uow: UnitOfWork, limit: int = limits.settlement_page_size_max) -> list[dict[str, Any]]:
    return [_run_json(row) for row in SqlSettlementStore(uow.connection).runs(limit)]


def _run_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"business_date": row["business_date"].isoformat(), "status": row["status"],
            "merchants_total": row["merchants_total"], "merchants_done": row["merchants_done"],
            "batches": row["batches"], "payouts": row["payouts"], "started_at": rules.iso(row["started_at"]),
            "finished_at": rules.iso(row["finished_at"]) if row["finished_at"] else None}


def _settle_group(app: App, group: list[tuple[Merchant, SettlementSettings]], business_date: date,
                  shared: SharedSums) -> None:
    """Settle merchants in one transaction; when a concurrent runner got to one of them first
    (a unique batch key), one merchant per transaction, skipping those already settled."""
    try:
        _settle_merchants(app, group, business_date, shared)
    except sa.exc.IntegrityError:
        for one in group:
            try:
                _settle_merchants(app, [one], business_date, shared)
            except sa.exc.IntegrityError:
                continue


def _settle_merchants(app: App, group: list[tuple[Merchant, SettlementSettings]], business_date: date,
                      shared: SharedSums) -> None:
    with app.uow() as uow:
        store = SqlSettlementStore(uow.connection)
        for merchant, settings in group:
            if store.batch_exists(merchant.merchant_id, business_date):
                continue
            batch = _settle(uow, store, merchant, settings, business_date, app.clock(), shared,
                            app.settings.settlement_in_flight_margin_s)
            store.add_batch(batch)
            store.count_merchant(business_date, paid_out=batch["payout_id"] is not None)
        uow.commit()


class _Accounts:
    """The ledger accounts settlement touches, opened on first use (ids cached for good)."""

    def __init__(self, uow: UnitOfWork, merchant_id: str, currency: str) -> None:
        owner, never_negative = merchant_owner(merchant_id), AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
        self.pending = _account_id(uow, owner, "merchant_pending", currency)
        self.available = _account_id(uow, owner, "merchant_available", currency, never_negative)
        self.reserve = _account_id(uow, owner, "merchant_reserve", currency, never_negative)
        self.fees = _account_id(uow, PLATFORM, "fees_revenue", currency)
        self.in_transit = _account_id(uow, PLATFORM, "payouts_in_transit", currency)
        self.bank = _account_id(uow, PLATFORM, "bank_settlement", currency)


def _account_id(uow: UnitOfWork, owner: str, code: str, currency: str,
                flags: AccountFlags = AccountFlags.NONE) -> int:
    found = uow.ledger.find_account_id(owner, code, currency)
    return found if found is not None else uow.ledger.open_account(owner, owner, code, currency, flags).id


def _post(uow: UnitOfWork, transfers: list[TransferRequest], now: datetime) -> None:
    """Post settlement transfers (those of a positive amount) in one ledger batch."""
    wanted = [t for t in transfers if t.amount is not None and t.amount > 0]
    if not wanted:
        return
    for outcome in uow.ledger.create_transfers(wanted, now):
        if outcome.result not in (TransferResult.OK, TransferResult.EXISTS):
            raise LedgerInvariantError(f"settlement transfer {outcome.id} refused: {outcome.result.value}")


def _available(uow: UnitOfWork, account_id: int) -> int:
    """The account's available balance, locked until commit (PostgreSQL: FOR UPDATE)."""
    account = uow.ledger.lock_accounts({account_id}).get(account_id)
    if account is None:
        raise LedgerInvariantError(f"account {account_id} vanished")
    return account.balances.available_credit_balance


def _window(store: SqlSettlementStore, merchant_id: str, settings: SettlementSettings, business_date: date,
            now: datetime, margin_s: int = limits.settlement_in_flight_margin_s,
            ) -> tuple[sa.Row | None, datetime, datetime]:
    """The merchant's last batch and the window ``(start, end]`` of this one.

    A window never closes in the future: a run before the cut-off (T0 during the day) closes
    it a margin before now, and the next window opens there, so no transfer falls between
    windows (the margin covers transfers stamped before now and committed just after)."""
    last = store.last_batch(merchant_id, business_date)
    start = last.window_end if last is not None else rules.EPOCH
    closes = min(rules.window_end(settings, business_date),
                 now - timedelta(seconds=margin_s))
    return last, start, max(closes, start)


class SharedSums:
    """Window sums of many merchants at once: one grouped scan per distinct window (merchants
    with the same cycle, cut-off and history share one) instead of an indexed aggregate per
    merchant, whose rows lie scattered over the journal's pages."""

    def __init__(self) -> None:
        self._sums: dict[tuple[datetime, datetime], dict[int, dict[str, tuple[int, int]]]] = {}

    def load(self, store: SqlSettlementStore, start: datetime, end: datetime) -> None:
        if (start, end) not in self._sums:
            self._sums[(start, end)] = store.window_sums_by_account(start, end)

    def sums(self, account_id: int, start: datetime, end: datetime) -> dict[str, tuple[int, int]] | None:
        """The account's sums, or None when this window was not loaded (query it alone)."""
        loaded = self._sums.get((start, end))
        return None if loaded is None else loaded.get(account_id, {})


def _share_windows(app: App, todo: list[tuple[Merchant, SettlementSettings]], business_date: date) -> SharedSums:
    """Load the windows that at least ``limits.settlement_shared_window_merchants_min``
    merchants share (a read-only transaction before the groups)."""
    shared, now = SharedSums(), app.clock()
    with app.uow(write=False) as uow:
        store = SqlSettlementStore(uow.connection)
        counts: dict[tuple[datetime, datetime], int] = {}
        for merchant, settings in todo:
            _, start, end = _window(store, merchant.merchant_id, settings, business_date, now,
                                   app.settings.settlement_in_flight_margin_s)
            counts[(start, end)] = counts.get((start, end), 0) + 1
        for (start, end), count in counts.items():
            if count >= limits.settlement_shared_window_merchants_min:
                shared.load(store, start, end)
    return shared


def _settle(uow: UnitOfWork, store: SqlSettlementStore, merchant: Merchant, settings: SettlementSettings,
            business_date: date, now: datetime, shared: SharedSums | None = None,
            margin_s: int = limits.settlement_in_flight_margin_s) -> dict[str, Any]:
    """Post one merchant's settlement of ``business_date``; its batch row (not yet inserted).

    The amounts follow from the available balance read (and locked) once: settle, release due
    reserves, hold the new reserve, T0 fee, pricing charges, payout — each capped by what is
    available at that point — then one ledger batch posts them in that order."""
    mid, currency, day = merchant.merchant_id, merchant.currency, f"{business_date:%Y%m%d}"
    acc = _Accounts(uow, mid, currency)
    last, start, end = _window(store, mid, settings, business_date, now, margin_s)
    sums = shared.sums(acc.pending, start, end) if shared is not None else None
    if sums is None:
        sums = store.window_sums(acc.pending, start, end)
    gross = sum(credits for credits, _ in sums.values())
    debits = {code: d for code, (_, d) in sums.items()}
    fees, refunds, chargebacks = (sum(debits.get(c, 0) for c in codes)
                                  for codes in (FEE_CODES, REFUND_CODES, CHARGEBACK_CODES))
    carried_in = last.carried_out_minor if last is not None else 0
    net = gross - sum(debits.values()) + carried_in
    settled = max(net, 0)
    moves = [TransferRequest(f"settle:{mid}:{day}", acc.pending, acc.available, settled, currency, code="settlement")]
    due = store.reserves_due(mid, business_date - timedelta(days=settings.reserve_hold_days))
    moves += [TransferRequest(f"reserve_release:{old.id}", acc.reserve, acc.available, old.reserve_minor, currency,
                              code="reserve_release") for old in due]
    released = sum(old.reserve_minor for old in due)
    available = _available(uow, acc.available) + settled + released
    reserve = min(rules.reserve_minor(gross, settings.reserve_bps), available)
    instant = 0 if settings.cycle is not Cycle.T0 else min(
        rules.instant_fee_minor(settled, settings.instant_rate_bps), available - reserve)
    available -= reserve + instant
    moves += [TransferRequest(f"reserve:{mid}:{day}", acc.available, acc.reserve, reserve, currency,
                              code="settlement_reserve"),
              TransferRequest(f"instant_fee:{mid}:{day}", acc.available, acc.fees, instant, currency,
                              code="instant_fee")]
    charges = _charges(uow, acc, mid, currency, business_date, available, now)
    charged = sum(t.amount or 0 for t in charges)
    payout_id, payout, note = _payout(store, merchant, settings, business_date, available - charged, now)
    if payout_id is not None:
        charges.append(TransferRequest(f"payout:{mid}:{day}", acc.available, acc.in_transit, payout, currency,
                                       code="payout"))
    _post(uow, moves + charges, now)
    for old in due:
        store.mark_reserve_released(old.id, now)
    return {"id": f"sb_{mid}_{day}", "merchant_id": mid, "business_date": business_date,
            "cycle": settings.cycle.value, "currency": currency, "window_start": start, "window_end": end,
            "gross_minor": gross, "fees_minor": fees, "refunds_minor": refunds, "chargebacks_minor": chargebacks,
            "other_minor": sum(debits.values()) - fees - refunds - chargebacks, "carried_in_minor": carried_in,
            "settled_minor": settled, "carried_out_minor": min(net, 0), "reserve_minor": reserve,
            "reserve_released_minor": released, "instant_fee_minor": instant, "charges_minor": charged,
            "payout_id": payout_id, "payout_minor": payout, "note": note, "created_at": now}


def _charges(uow: UnitOfWork, acc: _Accounts, merchant_id: str, currency: str, business_date: date,
             available: int, now: datetime) -> list[TransferRequest]:
    """What the merchant owes, collected before the payout: pricing's owed charges (monthly and
    device fees billing could not take; each whole, under its own id, so never twice), then the
    hooks' charges, each capped by what is still available."""
    from paypos.services import pricing  # imported here: pricing's module is not needed until now

    owed = pricing.charges_payable_from(uow, merchant_id, currency, available, now)
    moves = list(owed)
    available -= sum(t.amount or 0 for t in owed)
    for hook in CHARGES_HOOKS:
        for charge in hook(uow, merchant_id, currency, business_date):
            amount = max(min(charge.amount_minor, available), 0)
            available -= amount
            moves.append(TransferRequest(f"charge:{charge.id}", acc.available, acc.fees, amount, currency,
                                         code="pricing_charge"))
    return moves


def _payout(store: SqlSettlementStore, merchant: Merchant, settings: SettlementSettings, business_date: date,
            amount: int, now: datetime) -> tuple[str | None, int, str]:
    """The payout row of the whole available ``amount`` (its ledger transfer is the caller's)."""
    if amount <= 0:
        return None, 0, "nothing available"
    if amount < settings.payout_minor_min:
        return None, 0, f"below the minimum payout of {settings.payout_minor_min}"
    account = store.verified_bank_account(merchant.merchant_id)
    if account is None:
        return None, 0, "no verified bank account"
    payout_id = f"po_{merchant.merchant_id}_{business_date:%Y%m%d}"
    store.add_payout({"id": payout_id, "merchant_id": merchant.merchant_id, "business_date": business_date,
                      "bank_account_id": account.id, "amount_minor": amount, "currency": merchant.currency,
                      "status": "created", "created_at": now, "updated_at": now})
    return payout_id, amount, ""


# --- listings -------------------------------------------------------------------------------------------

def list_batches(uow: UnitOfWork, merchant_id: str | None = None, business_date: date | None = None,
                 limit: int = limits.settlement_page_size_max) -> list[dict[str, Any]]:
    """Settlement batches, newest business date first (minor units; windows as UTC instants)."""
    rows = SqlSettlementStore(uow.connection).batches(merchant_id=merchant_id, business_date=business_date,
                                                      limit=limit)
    return [{**row, "object": "settlement", "business_date": row["business_date"].isoformat(),
             "window_start": rules.iso(row["window_start"]), "window_end": rules.iso(row["window_end"]),
             "reserve_released_at": rules.iso(row["reserve_released_at"]) if row["reserve_released_at"] else None,
             "created_at": rules.iso(row["created_at"])} for row in rows]


def list_payouts(uow: UnitOfWork, merchant_id: str | None = None, business_date: date | None = None,
                 limit: int = limits.settlement_page_size_max) -> list[dict[str, Any]]:
    rows = SqlSettlementStore(uow.connection).payouts(merchant_id=merchant_id, business_date=business_date,
                                                      limit=limit)
    return [payout_json(row) for row in rows]


def payout_json(row: Any) -> dict[str, Any]:
    row = row if isinstance(row, dict) else dict(row._mapping)
    return {"id": row["id"], "object": "payout", "merchant_id": row["merchant_id"],
            "business_date": row["business_date"].isoformat(), "amount_minor": row["amount_minor"],
            "currency": row["currency"], "status": row["status"], "bank_account_id": row["bank_account_id"],
            "file_id": row["file_id"], "return_code": row["return_code"], "return_reason": row["return_reason"],
            "created_at": rules.iso(row["created_at"]), "updated_at": rules.iso(row["updated_at"])}


# --- the clearing file, the sandbox bank, the statement ---------------------------------------------------

ORIGINATOR = "PAYPOS"


def write_clearing_file(uow: UnitOfWork, vault: Vault, business_date: date, actor: str, now: datetime) -> bytes:
    """The clearing file of ``business_date``'s payouts not yet paid or returned (created ones
    become ``sent``). Writing it again lists the same payouts under the same file id."""
    store = SqlSettlementStore(uow.connection)
    file_id = rules.clearing_file_id(business_date)
    details = []
    for payout in store.payouts_for_file(business_date):
        account = _bank_account(store, payout.bank_account_id)
        details.append([payout.id, payout.merchant_id, vault.open(account.number_sealed, _SEALED_PURPOSE),
                        account.holder_name, str(payout.amount_minor), payout.currency])
        if payout.status == "created":
            store.update_payout(payout.id, status="sent", file_id=file_id, updated_at=now)
    header = [file_id, business_date.isoformat(), rules.iso(now), ORIGINATOR]
    audit.record(uow, now, actor, "settlement.file", "clearing_file", file_id, details={"payouts": len(details)})
    return rules.render("H", rules.CsvFile(header, details), rules.CLEARING_AMOUNT)


def bank_import(uow: UnitOfWork, vault: Vault, data: bytes, now: datetime) -> bytes:
    """The sandbox bank takes a clearing file (refused whole by a ``FileError`` when its control
    record does not match) and answers its statement: each payout paid, or returned with a
    reason code (R02 account closed, R03 no such account / holder name mismatch). Reads only."""
    parsed = rules.parse(data, rules.CLEARING_HEADER_FIELDS, rules.CLEARING_DETAIL_FIELDS, rules.CLEARING_AMOUNT)
    store = SqlSettlementStore(uow.connection)
    lines = []
    for payout_id, merchant_id, number, holder, amount, currency in parsed.details:
        code = _bank_verdict(store, vault, merchant_id, number, holder)
        status = "returned" if code else "paid"
        lines.append([payout_id, status, code, rules.RETURN_REASONS.get(code, ""), amount, currency])
    file_id = parsed.header[0]
    header = ["ST" + file_id[2:] if file_id.startswith("CF") else "ST" + file_id, file_id, rules.iso(now)]
    return rules.render("H", rules.CsvFile(header, lines), rules.STATEMENT_AMOUNT)


def _bank_verdict(store: SqlSettlementStore, vault: Vault, merchant_id: str, number: str, holder: str) -> str:
    try:
        compact, _ = rules.account_number(number)
    except SettlementError:
        return "R03"
    accounts = [a for a in store.bank_accounts_by_hash(vault.lookup_hash(compact, _SEALED_PURPOSE))
                if a.merchant_id == merchant_id]
    if not accounts:
        return "R03"
    account = accounts[0]
    if account.bank_flag == "account_closed":
        return "R02"
    if account.bank_flag == "name_mismatch" or rules.normalise_name(holder) != rules.normalise_name(
            account.holder_name):
        return "R03"
    return ""


def import_statement(uow: UnitOfWork, data: bytes, actor: str, now: datetime) -> dict[str, Any]:
    """Apply the bank's statement: paid → payouts_in_transit → bank_settlement (``payout.paid``);
    returned → back to merchant_available (``payout.returned``). Every line is checked before
    anything moves (a ``FileError`` refuses the whole file); lines already applied are skipped."""
    parsed = rules.parse(data, rules.STATEMENT_HEADER_FIELDS, rules.STATEMENT_DETAIL_FIELDS, rules.STATEMENT_AMOUNT)
    store = SqlSettlementStore(uow.connection)
    todo = []
    for number, (payout_id, status, code, reason, amount, currency) in enumerate(parsed.details, start=2):
        payout = store.payout(payout_id, lock=True)
        if payout is None or str(payout.amount_minor) != amount or payout.currency != currency:
            raise rules.FileError(f"record {number}: no payout {payout_id} of {amount} {currency}")
        if status not in ("paid", "returned"):
            raise rules.FileError(f"record {number}: status must be paid or returned")
        if payout.status == status:
            continue
        if payout.status != "sent":
            raise rules.FileError(f"record {number}: payout {payout_id} is {payout.status}, not sent")
        todo.append((payout, status, code, reason))
    for payout, status, code, reason in todo:
        _apply_statement_line(uow, store, payout, status, code, reason, now)
    applied = {"paid": sum(1 for t in todo if t[1] == "paid"), "returned": sum(1 for t in todo if t[1] == "returned")}
    audit.record(uow, now, actor, "settlement.statement_import", "bank_statement", parsed.header[0], details=applied)
    from paypos.services import payout_recon  # the payout leg of reconciliation reads what was just applied

    for payout, _status, _code, _reason in todo:
        payout_recon.record_payout_exceptions(uow, now, business_date=payout.business_date,
                                              merchant_id=payout.merchant_id)
    return {"statement_id": parsed.header[0], "file_id": parsed.header[1], **applied,
            "skipped": len(parsed.details) - len(todo)}


def _apply_statement_line(uow: UnitOfWork, store: SqlSettlementStore, payout: sa.Row, status: str, code: str,
                          reason: str, now: datetime) -> None:
    acc = _Accounts(uow, payout.merchant_id, payout.currency)
    if status == "paid":
        _post(uow, [TransferRequest(f"payout_paid:{payout.id}", acc.in_transit, acc.bank, payout.amount_minor,
                                    payout.currency, code="payout_paid")], now)
        store.update_payout(payout.id, status="paid", updated_at=now)
    else:
        _post(uow, [TransferRequest(f"payout_return:{payout.id}", acc.in_transit, acc.available,
                                    payout.amount_minor, payout.currency, code="payout_return")], now)
        store.update_payout(payout.id, status="returned", return_code=(code or "R99")[:8],
                            return_reason=(reason or "returned by the bank")[:128], updated_at=now)
    body = payout_json(store.payout(payout.id))
    events.emit(uow, payout.merchant_id, f"payout.{status}", body, now)
