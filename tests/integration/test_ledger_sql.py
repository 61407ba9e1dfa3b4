"""The ledger on a real SQLite and a real PostgreSQL: durability, idempotency,
expiry, the integrity check, and serialisation of concurrent writers."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from paypos.adapters.db.ledger import AccountError
from paypos.adapters.db.ledger_check import check_ledger
from paypos.adapters.db.schema import ledger_accounts, ledger_pending, ledger_transfers
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.db.engine import make_engine
from paypos.domain.ledger import (
    Account,
    AccountFlags,
    Balances,
    TransferKind,
    TransferRequest,
    TransferResult,
)
from paypos.services import ledger as ledger_service

R = TransferResult
NO_OVERDRAFT = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS


def open_accounts(engine: Engine, currency: str = "CNY") -> tuple[Account, Account, Account]:
    with UnitOfWork(engine) as uow:
        card = uow.ledger.open_account("card:x", "card:476173******0010", "cardholder_funds", currency, NO_OVERDRAFT)
        merchant = uow.ledger.open_account("merchant:M", "merchant:M", "merchant_pending", currency)
        issuer = uow.ledger.open_account("issuer:I", "issuer:I", "issuer_funding", currency)
        uow.commit()
    return card, merchant, issuer


def fund(engine: Engine, issuer: Account, card: Account, amount: int, clock) -> None:
    request = TransferRequest("fund", issuer.id, card.id, amount, issuer.currency, code="opening_balance")
    assert ledger_service.create_transfers(engine, [request], clock)[0].result is R.OK


def balances(engine: Engine, account: Account) -> Balances:
    with UnitOfWork(engine, write=False) as uow:
        found = uow.ledger.get_account(account.id)
    assert found is not None
    return found.balances


def test_open_account_is_idempotent_and_refuses_different_flags(engine: Engine) -> None:
    card, _, _ = open_accounts(engine)
    again, _, _ = open_accounts(engine)
    assert again.id == card.id
    with UnitOfWork(engine) as uow, pytest.raises(AccountError, match="exists with flags"):
        uow.ledger.open_account("card:x", "card:476173******0010", "cardholder_funds", "CNY")


@pytest.mark.parametrize("currency", ["cny", "CN", "C1Y", ""])
def test_open_account_refuses_a_malformed_currency(engine: Engine, currency: str) -> None:
    with UnitOfWork(engine) as uow, pytest.raises(AccountError, match="ISO 4217"):
        uow.ledger.open_account("o", "o", "c", currency)


def test_sale_chain_commits_atomically_and_check_passes(engine: Engine, clock) -> None:
    card, merchant, issuer = open_accounts(engine)
    fund(engine, issuer, card, 10_000, clock)
    with UnitOfWork(engine) as uow:
        fees = uow.ledger.open_account("platform", "platform", "fees_revenue", "CNY")
        uow.commit()
    chain = [
        TransferRequest("sale-1", card.id, merchant.id, 2_500, "CNY", code="sale", linked=True),
        TransferRequest("fee-1", merchant.id, fees.id, 15, "CNY", code="fee"),
    ]
    assert [o.result for o in ledger_service.create_transfers(engine, chain, clock)] == [R.OK, R.OK]
    assert balances(engine, card) == Balances(debits_posted=2_500, credits_posted=10_000)
    assert balances(engine, merchant) == Balances(debits_posted=15, credits_posted=2_500)
    assert ledger_service.check(engine, clock) == []


def test_failed_chain_writes_nothing_but_the_remembered_failure(engine: Engine, clock) -> None:
    card, merchant, issuer = open_accounts(engine)
    fund(engine, issuer, card, 1_000, clock)
    chain = [
        TransferRequest("s1", card.id, merchant.id, 600, "CNY", linked=True),
        TransferRequest("s2", card.id, merchant.id, 600, "CNY"),
    ]
    outcomes = ledger_service.create_transfers(engine, chain, clock)
    assert [o.result for o in outcomes] == [R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS]
    assert balances(engine, card) == Balances(credits_posted=1_000)
    with UnitOfWork(engine, write=False) as uow:
        assert uow.ledger.get_transfer("s1") is None
    # The replay answers the same, even now that funds would suffice for s1 alone.
    again = ledger_service.create_transfers(engine, chain, clock)
    assert [o.result for o in again] == [R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS]


def test_replay_returns_the_original_transfer_and_posts_once(engine: Engine, clock) -> None:
    card, merchant, issuer = open_accounts(engine)
    fund(engine, issuer, card, 1_000, clock)
    request = TransferRequest("s1", card.id, merchant.id, 100, "CNY")
    first = ledger_service.create_transfers(engine, [request], clock)[0]
    clock.advance(30)
    second = ledger_service.create_transfers(engine, [request], clock)[0]
    assert (first.result, second.result) == (R.OK, R.EXISTS)
    assert second.transfer == first.transfer  # same record, same original timestamp
    assert balances(engine, card).debits_posted == 100
    different = TransferRequest("s1", card.id, merchant.id, 101, "CNY")
    assert ledger_service.create_transfers(engine, [different], clock)[0].result is R.ID_EXISTS_WITH_DIFFERENT_FIELDS


def test_two_phase_hold_post_partial_and_void(engine: Engine, clock) -> None:
    card, merchant, issuer = open_accounts(engine)
    fund(engine, issuer, card, 1_000, clock)
    hold = TransferRequest("auth", card.id, merchant.id, 800, "CNY", kind=TransferKind.PENDING, timeout_s=600)
    assert ledger_service.create_transfers(engine, [hold], clock)[0].result is R.OK
    assert balances(engine, card) == Balances(debits_pending=800, credits_posted=1_000)
    post = TransferRequest("cap", kind=TransferKind.POST_PENDING, pending_id="auth", amount=500)
    assert ledger_service.create_transfers(engine, [post], clock)[0].result is R.OK
    assert balances(engine, card) == Balances(debits_posted=500, credits_posted=1_000)
    assert balances(engine, merchant) == Balances(credits_posted=500)
    void = TransferRequest("void", kind=TransferKind.VOID_PENDING, pending_id="auth")
    assert ledger_service.create_transfers(engine, [void], clock)[0].result is R.PENDING_TRANSFER_ALREADY_POSTED
    assert ledger_service.check(engine, clock) == []


def test_expired_holds_are_released_by_the_sweep(engine: Engine, clock) -> None:
    card, merchant, issuer = open_accounts(engine)
    fund(engine, issuer, card, 1_000, clock)
    for i in range(3):
        hold = TransferRequest(f"auth-{i}", card.id, merchant.id, 100, "CNY", kind=TransferKind.PENDING,
                               timeout_s=60 * (i + 1))
        ledger_service.create_transfers(engine, [hold], clock)
    clock.advance(120)
    violations = ledger_service.check(engine, clock)
    assert {v.rule for v in violations} == {"expired-hold"} and len(violations) == 2
    assert ledger_service.expire_pending(engine, clock) == 2
    assert ledger_service.expire_pending(engine, clock) == 0
    assert balances(engine, card) == Balances(debits_pending=100, credits_posted=1_000)
    assert ledger_service.check(engine, clock) == []
    with UnitOfWork(engine, write=False) as uow:
        assert uow.ledger.get_transfer("~expire:auth-0").kind is TransferKind.EXPIRE_PENDING


def test_unit_of_work_rolls_back_unless_committed(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        uow.ledger.open_account("o", "o", "c", "CNY")
    with UnitOfWork(engine, write=False) as uow:
        assert uow.ledger.find_account("o", "c", "CNY") is None
    with pytest.raises(RuntimeError, match="boom"), UnitOfWork(engine) as uow:
        uow.ledger.open_account("o", "o", "c", "CNY")
        raise RuntimeError("boom")
    with UnitOfWork(engine, write=False) as uow:
        assert uow.ledger.find_account("o", "c", "CNY") is None


def test_check_names_the_account_whose_stored_balance_was_corrupted(engine: Engine, clock) -> None:
    card, _merchant, issuer = open_accounts(engine)
    fund(engine, issuer, card, 1_000, clock)
    with engine.begin() as conn:
        conn.execute(ledger_accounts.update().where(ledger_accounts.c.id == card.id)
                     .values(credits_posted=ledger_accounts.c.credits_posted + 1))
    violations = ledger_service.check(engine, clock)
    rules = Counter(v.rule for v in violations)
    assert rules == {"stored-balance": 1, "balanced": 1}
    stored = next(v for v in violations if v.rule == "stored-balance")
    assert f"account {card.id}" in stored.subject and "card:476173******0010" in stored.subject


def test_check_finds_a_hold_state_that_disagrees_with_the_journal(engine: Engine, clock) -> None:
    card, merchant, issuer = open_accounts(engine)
    fund(engine, issuer, card, 1_000, clock)
    hold = TransferRequest("auth", card.id, merchant.id, 100, "CNY", kind=TransferKind.PENDING)
    ledger_service.create_transfers(engine, [hold], clock)
    with engine.begin() as conn:
        conn.execute(ledger_pending.update().values(state="posted"))
    assert "hold-state" in {v.rule for v in ledger_service.check(engine, clock)}


def test_check_finds_a_transfer_between_currencies(engine: Engine, clock) -> None:
    card, merchant, issuer = open_accounts(engine)
    fund(engine, issuer, card, 1_000, clock)
    with engine.begin() as conn:
        conn.execute(ledger_transfers.update().where(ledger_transfers.c.id == "fund").values(currency="USD"))
    assert "currency" in {v.rule for v in ledger_service.check(engine, clock)}


def test_limit_flags_are_checked_by_the_integrity_check(engine: Engine, clock) -> None:
    card, _merchant, _issuer = open_accounts(engine)
    with engine.begin() as conn:  # an overdraft written behind the ledger's back
        conn.execute(ledger_accounts.update().where(ledger_accounts.c.id == card.id).values(debits_posted=5))
    with UnitOfWork(engine, write=False) as uow:
        rules = {v.rule for v in check_ledger(uow.connection, clock())}
    assert "limit-flag" in rules


def test_the_database_refuses_a_negative_balance_column(engine: Engine) -> None:
    card, _, _ = open_accounts(engine)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(ledger_accounts.update().where(ledger_accounts.c.id == card.id).values(debits_posted=-1))


@pytest.mark.postgres
def test_concurrent_debits_on_one_account_never_overdraw_nor_lose_an_update(postgres_url: str, clock) -> None:
    """8+ real PostgreSQL connections race to debit one no-overdraft account."""
    from tests.conftest import truncate_all

    engine = make_engine(postgres_url)
    truncate_all(engine)
    card, merchant, issuer = open_accounts(engine)
    fund(engine, issuer, card, 1_000, clock)
    workers, attempts, amount = 10, 25, 7  # 1750 asked for, 1000 available
    results: list[TransferResult] = []
    lock = threading.Lock()
    barrier = threading.Barrier(workers)

    def debit(worker: int) -> None:
        barrier.wait()
        for attempt in range(attempts):
            request = TransferRequest(f"w{worker}-{attempt}", card.id, merchant.id, amount, "CNY")
            (outcome,) = ledger_service.create_transfers(engine, [request], clock)
            with lock:
                results.append(outcome.result)

    threads = [threading.Thread(target=debit, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        counts = Counter(results)
        assert set(counts) <= {R.OK, R.EXCEEDS_CREDITS} and sum(counts.values()) == workers * attempts
        assert counts[R.OK] == 1_000 // amount  # every debit that fits went through, no more
        final = balances(engine, card)
        assert final.debits_posted == counts[R.OK] * amount <= final.credits_posted
        assert balances(engine, merchant).credits_posted == counts[R.OK] * amount  # no lost update
        assert ledger_service.check(engine, clock) == []
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(ledger_transfers)).scalar_one() == 1 + counts[R.OK]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_concurrent_replays_of_one_id_post_exactly_once(postgres_url: str, clock) -> None:
    from tests.conftest import truncate_all

    engine = make_engine(postgres_url)
    truncate_all(engine)
    card, merchant, issuer = open_accounts(engine)
    fund(engine, issuer, card, 1_000, clock)
    request = TransferRequest("same-id", card.id, merchant.id, 10, "CNY")
    results: list[TransferResult] = []
    barrier = threading.Barrier(8)

    def send() -> None:
        barrier.wait()
        results.append(ledger_service.create_transfers(engine, [request], clock)[0].result)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert Counter(results) == {R.OK: 1, R.EXISTS: 7}
        assert balances(engine, card).debits_posted == 10
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_flagged_accounts_are_locked_before_unflagged_ones_so_a_batch_and_a_request_never_deadlock(
        engine: Engine) -> None:
    """A host batch locks the card accounts (limit-flagged) when it loads and a merchant's
    pending (no flag) at its flush; a one-request transaction in another process locks both at
    once. Locking flagged accounts first there too means it waits for the card holding
    nothing, and the batch's flush goes through (ascending ids alone would take the merchant's
    account, created first, then wait for the card: a deadlock)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite writers hold the database lock)")
    with UnitOfWork(engine) as uow:
        merchant = uow.ledger.open_account("merchant:L", "merchant:L", "merchant_pending", "CNY")
        card = uow.ledger.open_account("card:L", "card:476173******0011", "cardholder_funds", "CNY", NO_OVERDRAFT)
        uow.commit()
    assert merchant.id < card.id
    locked: dict[int, Account] = {}
    with UnitOfWork(engine) as batch:
        batch.connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
        batch.ledger.lock_accounts({card.id})  # the batch's load

        def one_request() -> None:
            with UnitOfWork(engine) as uow:
                locked.update(uow.ledger.lock_accounts({card.id, merchant.id}))
                uow.commit()

        other = threading.Thread(target=one_request)
        other.start()
        with engine.connect() as watcher:  # until the other transaction waits for a row lock
            for _ in range(500):
                waiting = watcher.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()").scalar_one()
                watcher.rollback()  # pg_stat_activity is a snapshot taken once per transaction
                if waiting:
                    break
                threading.Event().wait(0.01)
        assert waiting
        assert set(batch.ledger.lock_accounts({merchant.id})) == {merchant.id}  # the flush: no cycle
        batch.commit()
    other.join(timeout=30)
    assert set(locked) == {card.id, merchant.id}
