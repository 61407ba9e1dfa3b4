"""Group commit: many requests answered in one database transaction (`IsoHost.handle_batch`)
must give exactly what answering them one by one gives — same codes, same balances, nothing
lost or doubled — on SQLite and PostgreSQL, including the requests the in-memory batch state
cannot answer (reversals, refunds: run after the flush), a bug in one request, and a batch the
database refuses as a whole (re-run one request per transaction)."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc

from paypos.authorization import participants
from paypos.bootstrap import App
from paypos.domain.pricing import fee_minor
from paypos.protocol import emv, iso8583
from paypos.services import ledger as ledger_service
from paypos.services.host import IsoHost

from test_host import balance, card_available, cards, chip_sale, host, terminal  # noqa: F401 — fixtures


def two_terminals(app: App):  # type: ignore[no-untyped-def]
    """CAFE0001 and CAFE0002, sharing one card's ATC counter (one chip, two readers)."""
    t1, t2 = terminal(app, "CAFE0001"), terminal(app, "CAFE0002")
    t2.atcs = t1.atcs
    return t1, t2


def decoded(answers: list[bytes | None]) -> list[dict[str, str]]:
    assert all(answer is not None for answer in answers)
    return [iso8583.decode_message(answer) for answer in answers]  # type: ignore[arg-type]


def tap_sale(t, card: dict, amount: int) -> bytes:  # type: ignore[no-untyped-def]
    return t.message("0200", {"3": "000000", "4": f"{amount:012d}", "22": "072", "23": card["psn"].zfill(3),
                              "35": card["track2"], "55": emv.encode_field_55(t.icc(card, amount))})


def reversal_of(t, raw: bytes) -> bytes:  # type: ignore[no-untyped-def]
    sale = iso8583.decode_message(raw)
    original = iso8583.OriginalData("0200", sale["11"], sale["7"], "0", "0")
    return t.message("0400", {"3": "000000", "4": sale["4"], "90": iso8583.format_original_data_elements(original)})


def test_a_batch_of_sales_from_two_terminals_posts_each_once(app: App, host: IsoHost, cards) -> None:
    t1, t2 = two_terminals(app)
    card = cards["visa-cvn18-approve"]
    amounts = [1_000, 2_000, 3_000, 4_000]
    raws = [chip_sale(t1, card, amounts[0]), tap_sale(t2, card, amounts[1]), chip_sale(t1, card, amounts[2]),
            tap_sale(t2, card, amounts[3])]
    answers = decoded(host.handle_batch(raws))
    assert [a["39"] for a in answers] == ["00"] * 4
    assert len({a["37"] for a in answers}) == 4  # every sale its own RRN
    assert card_available(app, card["id"]) == card["available_minor"] - sum(amounts)
    assert balance(app, "platform", "fees_revenue") == sum(fee_minor(a) for a in amounts)
    assert ledger_service.check(app.engine, app.clock) == []
    # Each answer was recorded: a retransmission replays it, alone or in a batch.
    assert decoded(host.handle_batch([raws[2], raws[0]])) == [answers[2], answers[0]]
    assert card_available(app, card["id"]) == card["available_minor"] - sum(amounts)


def test_a_retransmission_inside_one_batch_is_answered_once(app: App, host: IsoHost, cards) -> None:
    t, card = terminal(app, "CAFE0001"), cards["visa-cvn18-approve"]
    raw = chip_sale(t, card, 1_500)
    first, again = decoded(host.handle_batch([raw, raw]))
    assert first == again and first["39"] == "00"
    assert card_available(app, card["id"]) == card["available_minor"] - 1_500


def test_reversals_in_a_batch_run_after_the_sales_and_see_them(app: App, host: IsoHost, cards) -> None:
    t, card = terminal(app, "CAFE0001"), cards["visa-cvn18-approve"]
    sale = chip_sale(t, card, 5_000)
    kept = chip_sale(t, card, 700)
    answers = decoded(host.handle_batch([sale, reversal_of(t, sale), kept]))
    assert [a["39"] for a in answers] == ["00", "00", "00"]
    assert card_available(app, card["id"]) == card["available_minor"] - 700
    assert balance(app, "platform", "fees_revenue") == fee_minor(700)
    assert ledger_service.check(app.engine, app.clock) == []


def test_funds_run_out_inside_a_batch_exactly_where_they_would_one_by_one(app: App, host: IsoHost,
                                                                          cards) -> None:
    t, card = terminal(app, "CAFE0001"), cards["visa-cvn18-approve"]
    available = card["available_minor"]
    big = min(available // 2 + 1, 10**9)
    answers = decoded(host.handle_batch([chip_sale(t, card, big), chip_sale(t, card, big), chip_sale(t, card, 1)]))
    assert [a["39"] for a in answers] == ["00", "51", "00"]
    assert card_available(app, card["id"]) == available - big - 1
    assert ledger_service.check(app.engine, app.clock) == []


def test_malformed_and_bad_mac_requests_do_not_disturb_their_batch(app: App, host: IsoHost, cards) -> None:
    t1, t2 = two_terminals(app)
    card = cards["visa-cvn18-approve"]
    good = chip_sale(t1, card, 900)
    signed = tap_sale(t2, card, 800)
    tampered = signed[:-1] + (b"0" if signed[-1:] != b"0" else b"1")
    answers = host.handle_batch([b"\x00garbage", tampered, good])
    assert answers[0] is None  # unreadable: the link is closed, as alone
    codes = [a["39"] for a in decoded(answers[1:])]
    assert codes == ["63", "00"]
    assert card_available(app, card["id"]) == card["available_minor"] - 900
    # The bad MAC did not claim 41/11/7: the genuine message is answered normally.
    assert decoded(host.handle_batch([signed]))[0]["39"] == "00"


def test_a_bug_in_one_request_costs_it_a_96_and_writes_none_of_it(app: App, host: IsoHost, cards,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    t1, t2 = two_terminals(app)
    card = cards["visa-cvn18-approve"]
    first, second = chip_sale(t1, card, 600), chip_sale(t1, card, 400)
    broken = tap_sale(t2, card, 4_000)  # built last: its ATC is the card's highest
    real_prepare = participants.Risk.prepare

    def prepare(self, ctx):  # type: ignore[no-untyped-def]
        if ctx.terminal_id == "CAFE0002":
            raise RuntimeError("a bug")
        return real_prepare(self, ctx)

    monkeypatch.setattr(participants.Risk, "prepare", prepare)
    answers = decoded(host.handle_batch([first, broken, second]))
    assert [a["39"] for a in answers] == ["00", "96", "00"]
    assert card_available(app, card["id"]) == card["available_minor"] - 1_000
    assert ledger_service.check(app.engine, app.clock) == []
    monkeypatch.setattr(participants.Risk, "prepare", real_prepare)
    # Nothing of the broken request was kept: neither its answer nor its KSN or ATC.
    assert decoded(host.handle_batch([broken]))[0]["39"] == "00"
    assert card_available(app, card["id"]) == card["available_minor"] - 5_000


def test_a_batch_the_database_refuses_is_rerun_one_request_per_transaction(app: App, host: IsoHost, cards,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    t, card = terminal(app, "CAFE0001"), cards["visa-cvn18-approve"]
    from paypos.adapters.db import batch as batch_module

    def refused_flush(self):  # type: ignore[no-untyped-def]
        raise sa_exc.IntegrityError("INSERT", {}, Exception("a twin on another host process won"))

    monkeypatch.setattr(batch_module.HostBatch, "flush", refused_flush)
    answers = decoded(host.handle_batch([chip_sale(t, card, 300), chip_sale(t, card, 200)]))
    assert [a["39"] for a in answers] == ["00", "00"]
    assert card_available(app, card["id"]) == card["available_minor"] - 500
    assert ledger_service.check(app.engine, app.clock) == []


# --- reversals and refunds of earlier sales run inside the batch ------------------------------
# Their originals (field 90, field 37) are locked and loaded up front with the rest of the
# batch's rows, so they no longer cost a savepoint and a dozen statements each.


def refund_of(t, card: dict, sale_answer: dict[str, str], amount: int) -> bytes:  # type: ignore[no-untyped-def]
    return t.message("0200", {"3": "200000", "4": f"{amount:012d}", "22": "072", "23": card["psn"].zfill(3),
                              "35": card["track2"], "37": sale_answer["37"]})


@pytest.fixture
def savepoints(app: App):  # type: ignore[no-untyped-def]
    """How many savepoints the host opened: one per request that ran after the flush."""
    import sqlalchemy as sa

    seen: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if statement.upper().startswith("SAVEPOINT"):
            seen.append(statement)

    sa.event.listen(app.engine, "before_cursor_execute", count)
    yield seen
    sa.event.remove(app.engine, "before_cursor_execute", count)


def test_reversals_and_refunds_of_earlier_sales_run_inside_the_batch(app: App, host: IsoHost, cards,
                                                                     savepoints: list[str]) -> None:
    t1, t2 = two_terminals(app)
    card = cards["visa-cvn18-approve"]
    reversed_sale, refunded_sale = tap_sale(t1, card, 5_000), tap_sale(t2, card, 4_000)
    first = decoded(host.handle_batch([reversed_sale, refunded_sale]))
    assert [a["39"] for a in first] == ["00", "00"]
    savepoints.clear()
    answers = decoded(host.handle_batch([reversal_of(t1, reversed_sale), refund_of(t2, card, first[1], 1_500),
                                         tap_sale(t1, card, 700)]))
    assert [a["39"] for a in answers] == ["00", "00", "00"]
    assert savepoints == []  # nothing ran after the flush
    assert card_available(app, card["id"]) == card["available_minor"] - 4_000 + 1_500 - 700
    assert balance(app, "platform", "fees_revenue") == fee_minor(4_000) + fee_minor(700)
    assert ledger_service.check(app.engine, app.clock) == []
    # The journal rows were updated by the flush: the reversed sale cannot be reversed twice,
    # the refunded one has 2 500 left.
    again = decoded(host.handle_batch([reversal_of(t1, reversed_sale), refund_of(t2, card, first[1], 2_501)]))
    assert [a["39"] for a in again] == ["00", "13"]
    assert card_available(app, card["id"]) == card["available_minor"] - 4_000 + 1_500 - 700


def test_two_refunds_of_one_sale_in_a_batch_see_each_other(app: App, host: IsoHost, cards) -> None:
    t1, t2 = two_terminals(app)
    card = cards["visa-cvn18-approve"]
    sale = decoded(host.handle_batch([tap_sale(t1, card, 3_000)]))[0]
    answers = decoded(host.handle_batch([refund_of(t1, card, sale, 2_000), refund_of(t2, card, sale, 2_000),
                                         refund_of(t1, card, sale, 1_000)]))
    assert [a["39"] for a in answers] == ["00", "13", "00"]
    assert card_available(app, card["id"]) == card["available_minor"]
    assert ledger_service.check(app.engine, app.clock) == []


def test_a_reversal_before_its_original_in_one_batch_refuses_the_late_original(app: App, host: IsoHost,
                                                                                 cards) -> None:
    t, card = terminal(app, "CAFE0001"), cards["visa-cvn18-approve"]
    raw = tap_sale(t, card, 3_000)
    early = reversal_of(t, raw)
    answers = decoded(host.handle_batch([early, reversal_of(t, raw), raw]))
    assert [a["39"] for a in answers] == ["21", "21", "12"]
    assert card_available(app, card["id"]) == card["available_minor"]
    # The tombstone was written once and outlives the batch.
    assert decoded(host.handle_batch([raw]))[0]["39"] == "12"
    assert ledger_service.check(app.engine, app.clock) == []


def test_two_reversals_of_one_sale_in_a_batch_undo_it_once(app: App, host: IsoHost, cards) -> None:
    t1, t2 = two_terminals(app)
    card = cards["visa-cvn18-approve"]
    raw = tap_sale(t1, card, 2_500)
    assert decoded(host.handle_batch([raw]))[0]["39"] == "00"
    answers = decoded(host.handle_batch([reversal_of(t1, raw), reversal_of(t1, raw)]))
    assert [a["39"] for a in answers] == ["00", "00"]
    assert card_available(app, card["id"]) == card["available_minor"]
    assert balance(app, "platform", "fees_revenue") == 0
    assert ledger_service.check(app.engine, app.clock) == []


def test_two_host_processes_batching_at_once_lose_no_posting_on_the_shared_accounts(
        app: App, host: IsoHost, cards) -> None:
    """The merchant's pending and the platform's fees carry no limit flag, so a batch does not
    lock them up front: its flush adds the batch's sums to the stored balances under a lock
    taken last. Two hosts over one database (two engines, as two processes) answering
    batches of one merchant's sales at the same time must end with exactly every posting."""
    import threading

    from paypos.adapters.db.engine import make_engine

    other_app = App(settings=app.settings, engine=make_engine(str(app.engine.url.render_as_string(False))),
                    vault=app.vault, clock=app.clock)
    hosts = [host, IsoHost(other_app)]
    t1, t2 = terminal(app, "CAFE0001"), terminal(app, "CAFE0002")
    tap, chip = cards["visa-cvn18-approve"], cards["visa-cvn10-approve"]
    amounts = [[100 + 7 * i + j for j in range(3)] for i in range(8)]
    scripts = [[[tap_sale(t1, tap, a) for a in batch] for batch in amounts],
               [[chip_sale(t2, chip, a) for a in batch] for batch in amounts]]
    codes: list[list[str]] = [[], []]
    rrns: list[str] = []

    def run(index: int) -> None:
        for batch in scripts[index]:
            answers = decoded(hosts[index].handle_batch(batch))
            codes[index].extend(a["39"] for a in answers)
            rrns.extend(a["37"] for a in answers)

    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        other_app.close()
    assert codes == [["00"] * 24, ["00"] * 24]
    assert len(set(rrns)) == 48  # each host's block of journal ids is its own
    every = [a for batch in amounts for a in batch] * 2
    assert balance(app, "platform", "fees_revenue") == sum(fee_minor(a) for a in every)
    assert balance(app, f"merchant:{t1.merchant_id}", "merchant_pending") == sum(every) - sum(fee_minor(a) for a in every)
    assert card_available(app, tap["id"]) == tap["available_minor"] - sum(every) // 2
    assert ledger_service.check(app.engine, app.clock) == []


@pytest.mark.postgres
def test_journal_ids_come_from_the_sequence_a_block_at_a_time(app: App) -> None:
    import sqlalchemy as sa

    from paypos.adapters.db.batch import JournalIds

    if app.engine.dialect.name != "postgresql":
        pytest.skip("the SQLite batch holds the database lock and counts ids itself")
    ids, statements = JournalIds(block=8), []
    sa.event.listen(app.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with app.engine.connect() as db:
        first, second, third = ids.take(db, 3), ids.take(db, 5), ids.take(db, 4)
    taken = first + second + third
    assert len(set(taken)) == 12 and taken == sorted(taken)
    assert len(statements) == 2  # 8 ids, then 8 more once the first block ran out
    with app.engine.connect() as db:
        assert JournalIds(block=8).take(db, 1)[0] > taken[-1]  # another process: ids after them
