"""The pure ledger planner: TigerBeetle's rules (docs.tigerbeetle.com: "Transfers",
"Two-phase transfers", "Linked events", "Account flags"), without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from paypos.domain.ledger import (
    Account,
    AccountFlags,
    Balances,
    PendingState,
    TransferKind,
    TransferRequest,
    TransferResult,
    check_request_shape,
    plan_expiry,
    split_chains,
)
from tests.ledger_machine import MemoryBackend

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
NO_OVERDRAFT = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
R = TransferResult


class Book(MemoryBackend):
    """The in-memory ledger with five accounts, driven one batch at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.accounts = {
            1: Account(1, "card:a", "card:a", "cardholder_funds", "CNY", NO_OVERDRAFT, Balances(credits_posted=1000)),
            2: Account(2, "merchant:m", "merchant:m", "merchant_pending", "CNY"),
            3: Account(3, "issuer:i", "issuer:i", "issuer_funding", "CNY"),
            4: Account(4, "merchant:u", "merchant:u", "merchant_pending", "USD"),
            5: Account(5, "card:c", "card:c", "credit_line", "CNY", AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
                       Balances(debits_posted=500)),
        }

    def run(self, *requests: TransferRequest, now: datetime = NOW) -> list[TransferResult]:
        return self.create(list(requests), lambda: now)

    def balances(self, account_id: int) -> Balances:  # type: ignore[override]
        return self.accounts[account_id].balances


def sale(tid: str, amount: int, debit: int = 1, credit: int = 2, **kw: object) -> TransferRequest:
    return TransferRequest(id=tid, debit_account_id=debit, credit_account_id=credit, amount=amount,
                           currency=kw.pop("currency", "CNY"), **kw)  # type: ignore[arg-type]


def test_single_phase_transfer_posts_both_sides() -> None:
    book = Book()
    assert book.run(sale("t1", 300)) == [R.OK]
    assert book.balances(1) == Balances(debits_posted=300, credits_posted=1000)
    assert book.balances(2) == Balances(credits_posted=300)


def test_debit_beyond_credits_is_refused_on_a_no_overdraft_account() -> None:
    book = Book()
    assert book.run(sale("t1", 1001)) == [R.EXCEEDS_CREDITS]
    assert book.balances(1) == Balances(credits_posted=1000)


def test_credit_beyond_debits_is_refused_on_a_credits_limited_account() -> None:
    book = Book()
    assert book.run(sale("t1", 501, debit=3, credit=5)) == [R.EXCEEDS_DEBITS]
    assert book.run(sale("t2", 500, debit=3, credit=5)) == [R.OK]


def test_replay_of_the_same_transfer_returns_exists_and_posts_nothing() -> None:
    book = Book()
    book.run(sale("t1", 300))
    assert book.run(sale("t1", 300)) == [R.EXISTS]
    assert book.balances(1).debits_posted == 300


def test_same_id_with_different_fields_is_refused() -> None:
    book = Book()
    book.run(sale("t1", 300))
    assert book.run(sale("t1", 301)) == [R.ID_EXISTS_WITH_DIFFERENT_FIELDS]
    assert book.balances(1).debits_posted == 300


def test_a_refused_transfer_replayed_after_funds_arrive_is_still_refused() -> None:
    book = Book()
    assert book.run(sale("t1", 1500)) == [R.EXCEEDS_CREDITS]
    book.run(sale("top-up", 5000, debit=3, credit=1))
    assert book.run(sale("t1", 1500)) == [R.EXCEEDS_CREDITS]  # the first outcome, remembered
    assert book.balances(1).debits_posted == 0


def test_pending_reserves_and_full_post_moves_it_to_posted() -> None:
    book = Book()
    assert book.run(sale("auth", 400, kind=TransferKind.PENDING, timeout_s=60)) == [R.OK]
    assert book.balances(1) == Balances(debits_pending=400, credits_posted=1000)
    assert book.run(sale("spend", 700)) == [R.EXCEEDS_CREDITS]  # the hold counts
    assert book.run(TransferRequest(id="cap", kind=TransferKind.POST_PENDING, pending_id="auth")) == [R.OK]
    assert book.balances(1) == Balances(debits_posted=400, credits_posted=1000)
    assert book.balances(2) == Balances(credits_posted=400)


def test_partial_post_releases_the_rest_of_the_hold() -> None:
    book = Book()
    book.run(sale("auth", 400, kind=TransferKind.PENDING))
    assert book.run(TransferRequest(id="cap", kind=TransferKind.POST_PENDING, pending_id="auth", amount=250)) == [R.OK]
    assert book.balances(1) == Balances(debits_posted=250, credits_posted=1000)


def test_post_above_the_held_amount_is_refused() -> None:
    book = Book()
    book.run(sale("auth", 400, kind=TransferKind.PENDING))
    result = book.run(TransferRequest(id="cap", kind=TransferKind.POST_PENDING, pending_id="auth", amount=401))
    assert result == [R.EXCEEDS_PENDING_TRANSFER_AMOUNT]


def test_void_releases_the_hold_and_a_second_resolution_is_refused() -> None:
    book = Book()
    book.run(sale("auth", 400, kind=TransferKind.PENDING))
    assert book.run(TransferRequest(id="void", kind=TransferKind.VOID_PENDING, pending_id="auth")) == [R.OK]
    assert book.balances(1) == Balances(credits_posted=1000)
    post = TransferRequest(id="cap", kind=TransferKind.POST_PENDING, pending_id="auth")
    assert book.run(post) == [R.PENDING_TRANSFER_ALREADY_VOIDED]


def test_posting_twice_is_refused_but_replaying_the_post_is_exists() -> None:
    book = Book()
    book.run(sale("auth", 400, kind=TransferKind.PENDING))
    post = TransferRequest(id="cap", kind=TransferKind.POST_PENDING, pending_id="auth")
    assert book.run(post) == [R.OK]
    assert book.run(post) == [R.EXISTS]
    assert book.run(replace(post, id="cap2")) == [R.PENDING_TRANSFER_ALREADY_POSTED]


def test_posting_an_unknown_hold_is_refused() -> None:
    assert Book().run(TransferRequest(id="cap", kind=TransferKind.POST_PENDING, pending_id="nope")) == [
        R.PENDING_TRANSFER_NOT_FOUND
    ]


def test_a_hold_past_its_timeout_cannot_be_posted_and_expiry_releases_it() -> None:
    book = Book()
    book.run(sale("auth", 400, kind=TransferKind.PENDING, timeout_s=60))
    later = NOW + timedelta(seconds=60)
    post = TransferRequest(id="cap", kind=TransferKind.POST_PENDING, pending_id="auth")
    assert book.run(post, now=later) == [R.PENDING_TRANSFER_EXPIRED]
    plan = plan_expiry(book.holds.values(), book.accounts, later)
    assert [t.kind for t in plan.new_transfers] == [TransferKind.EXPIRE_PENDING]
    assert plan.pending_states == {"auth": PendingState.EXPIRED}
    assert plan.account_balances[1] == Balances(credits_posted=1000)


def test_expiry_leaves_holds_that_are_not_yet_due() -> None:
    book = Book()
    book.run(sale("auth", 400, kind=TransferKind.PENDING, timeout_s=60))
    plan = plan_expiry(book.holds.values(), book.accounts, NOW + timedelta(seconds=59))
    assert plan.new_transfers == [] and plan.account_balances == {}


def test_linked_chain_commits_all_together() -> None:
    book = Book()
    chain = [sale("a", 100, linked=True), sale("b", 10, debit=2, credit=3)]
    assert book.run(*chain) == [R.OK, R.OK]
    assert book.balances(2) == Balances(debits_posted=10, credits_posted=100)


def test_linked_chain_fails_whole_when_one_event_fails() -> None:
    book = Book()
    chain = [sale("a", 100, linked=True), sale("b", 2000, linked=True), sale("c", 1, debit=2, credit=3)]
    assert book.run(*chain) == [R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS, R.LINKED_EVENT_FAILED]
    assert book.balances(1) == Balances(credits_posted=1000)
    assert book.balances(2) == Balances()


def test_a_chain_left_open_at_the_end_of_the_batch_fails() -> None:
    assert Book().run(sale("a", 1, linked=True)) == [R.LINKED_EVENT_CHAIN_OPEN]


def test_events_outside_a_failed_chain_still_commit() -> None:
    book = Book()
    results = book.run(sale("a", 2000, linked=True), sale("b", 1), sale("c", 5))
    assert results == [R.EXCEEDS_CREDITS, R.LINKED_EVENT_FAILED, R.OK]


def test_replaying_a_whole_chain_returns_exists_for_each_event() -> None:
    book = Book()
    chain = [sale("a", 100, linked=True), sale("b", 10, debit=2, credit=3)]
    book.run(*chain)
    assert book.run(*chain) == [R.EXISTS, R.EXISTS]


def test_a_chain_mixing_old_and_new_ids_is_refused() -> None:
    book = Book()
    book.run(sale("a", 100))
    assert book.run(sale("a", 100, linked=True), sale("new", 1)) == [
        R.ID_EXISTS_WITH_DIFFERENT_FIELDS, R.LINKED_EVENT_FAILED,  # "a" was not linked the first time
    ]
    book.run(sale("x", 1, linked=True), sale("y", 1))
    assert book.run(sale("x", 1, linked=True), sale("z", 1)) == [R.LINKED_CHAIN_MISMATCH] * 2


def test_currency_must_match_both_accounts() -> None:
    assert Book().run(sale("t", 10, credit=4)) == [R.CURRENCY_MISMATCH]
    assert Book().run(sale("t", 10, currency="USD")) == [R.CURRENCY_MISMATCH]


def test_unknown_accounts_are_refused() -> None:
    assert Book().run(sale("t", 10, debit=99)) == [R.DEBIT_ACCOUNT_NOT_FOUND]
    assert Book().run(sale("t", 10, credit=99)) == [R.CREDIT_ACCOUNT_NOT_FOUND]


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (sale("", 1), R.ID_MUST_NOT_BE_EMPTY),
        (sale("x" * 65, 1), R.ID_TOO_LONG),
        (sale("t", 0), R.AMOUNT_MUST_BE_POSITIVE),
        (sale("t", -5), R.AMOUNT_MUST_BE_POSITIVE),
        (sale("t", 10**15 + 1), R.AMOUNT_EXCEEDS_LIMIT),
        (TransferRequest(id="t", debit_account_id=1, credit_account_id=2, amount=1.5, currency="CNY"),  # type: ignore[arg-type]
         R.AMOUNT_MUST_BE_INTEGER),
        (sale("t", 1, credit=1), R.ACCOUNTS_MUST_BE_DIFFERENT),
        (TransferRequest(id="t", credit_account_id=2, amount=1, currency="CNY"), R.DEBIT_ACCOUNT_REQUIRED),
        (TransferRequest(id="t", debit_account_id=1, amount=1, currency="CNY"), R.CREDIT_ACCOUNT_REQUIRED),
        (TransferRequest(id="t", debit_account_id=1, credit_account_id=2, amount=1), R.CURRENCY_REQUIRED),
        (sale("t", 1, timeout_s=5), R.TIMEOUT_RESERVED_FOR_PENDING),
        (sale("t", 1, kind=TransferKind.PENDING, timeout_s=-1), R.TIMEOUT_OUT_OF_RANGE),
        (sale("t", 1, pending_id="p"), R.PENDING_ID_MUST_BE_EMPTY),
        (TransferRequest(id="t", kind=TransferKind.POST_PENDING), R.PENDING_ID_REQUIRED),
        (TransferRequest(id="t", kind=TransferKind.VOID_PENDING, pending_id="t"), R.PENDING_ID_MUST_BE_DIFFERENT),
        (TransferRequest(id="t", kind=TransferKind.EXPIRE_PENDING, pending_id="p"), R.KIND_NOT_ALLOWED),
    ],
)
def test_malformed_requests_are_refused_by_rule(request_: TransferRequest, expected: TransferResult) -> None:
    assert check_request_shape(request_) is expected
    assert Book().run(request_) == [expected]


def test_shape_errors_are_not_remembered_so_a_corrected_retry_can_succeed() -> None:
    book = Book()
    assert book.run(sale("t", 1, timeout_s=5)) == [R.TIMEOUT_RESERVED_FOR_PENDING]
    assert book.run(sale("t", 1)) == [R.OK]


def test_a_batch_above_the_limit_is_refused_whole() -> None:
    requests = [sale(f"t{i}", 1) for i in range(65)]
    assert set(Book().run(*requests)) == {R.BATCH_TOO_LARGE}


def test_chains_are_split_after_each_unlinked_event() -> None:
    requests = [sale("a", 1, linked=True), sale("b", 1), sale("c", 1), sale("d", 1, linked=True)]
    assert split_chains(requests) == [[0, 1], [2], [3]]


def test_fingerprint_changes_with_every_field() -> None:
    base = sale("t", 1)
    variants = [replace(base, amount=2), replace(base, credit_account_id=3), replace(base, code="fee"),
                replace(base, linked=True), replace(base, currency="USD"), replace(base, kind=TransferKind.PENDING)]
    assert len({v.fingerprint() for v in variants} | {base.fingerprint()}) == len(variants) + 1


def test_with_balances_keeps_everything_but_the_balances():
    from paypos.domain.ledger import Account, AccountFlags, Balances

    account = Account(7, "card:x", "card:476173******0010", "cardholder_funds", "CNY",
                      AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS, Balances(1, 2, 3, 4))
    moved = account.with_balances(Balances(5, 6, 7, 8))
    assert moved == Account(7, "card:x", "card:476173******0010", "cardholder_funds", "CNY",
                            AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS, Balances(5, 6, 7, 8))
    assert account.balances == Balances(1, 2, 3, 4)  # the original is untouched (frozen)
    # Every field but balances is carried: a field added to Account must be added there too.
    from dataclasses import fields
    assert [f.name for f in fields(Account)] == ["id", "owner_ref", "owner", "code", "currency", "flags", "balances"]
