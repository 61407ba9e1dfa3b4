"""The terminal engine against a scripted host link: write-ahead journal, ARPC and
MAC checks, reversal on a card/issuer mismatch, offline fallback, recovery."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from paypos.protocol import emv, iso8583
from paypos.protocol.dukpt import derive_ipek, parse_ksn
from paypos.terminal.card import CardProfile, InMemoryAtcStore, SoftCard
from paypos.terminal.engine import PinRequired, TerminalEngine, TerminalError
from paypos.terminal.link import HostUnreachable, NoAnswer
from paypos.terminal.store import TerminalConfig, TerminalStore

BDK = "0123456789ABCDEFFEDCBA9876543210"
KSN = "FFFF9876543210E00000"
IMK = "0123456789ABCDEFFEDCBA9876543210"
CARD = {
    "id": "visa-cvn18-test", "pan": "4761739001010010", "expiry": "3012", "psn": "01",
    "track2": "4761739001010010=301220116880995000", "service_code": "201", "pin": "1234", "cvv2": "726",
    "cvn": 18, "imk_ac": IMK, "interfaces": ["chip", "contactless", "magstripe"], "scheme": "visa",
    "funding": "debit", "currency": "156", "behavior": "approve", "available_minor": 500000, "token_for": None,
}


class ScriptedLink:
    """Answers each request with what the test says: a function of the decoded request."""

    def __init__(self, answer) -> None:  # type: ignore[no-untyped-def]
        self.answer, self.sent = answer, []

    def exchange(self, raw: bytes) -> dict[str, str]:
        request = iso8583.decode_message(raw)
        self.sent.append(request)
        return self.answer(request)


def approve_with_arpc(request: dict[str, str], *, tamper: bool = False) -> dict[str, str]:
    response = {**iso8583.response_echo(request), "37": "000000000042", "38": "123456", "39": "00"}
    if "55" in request:
        tags = emv.decode_field_55(request["55"])
        tag_91 = emv.generate_arpc(18, bytes.fromhex(IMK), CARD["pan"], "01", tags, csu=bytes.fromhex("00800000"))
        if tamper:
            tag_91 = bytes([tag_91[0] ^ 0xFF]) + tag_91[1:]
        response["55"] = emv.encode_field_55({"91": tag_91})
    return response


@pytest.fixture
def store(tmp_path: Path) -> TerminalStore:
    store = TerminalStore(tmp_path / "terminal.db")
    ipek = derive_ipek(bytes.fromhex(BDK), parse_ksn(KSN)).hex().upper()
    store.load_keys(TerminalConfig("CAFE0001", "PPCAFE000000001", "156", KSN, ipek, False, 10_000, 500_000,
                                   100_000, "Harbour Café", "Shanghai"))
    return store


def engine_with(store: TerminalStore, link) -> TerminalEngine:  # type: ignore[no-untyped-def]
    atc = InMemoryAtcStore()
    return TerminalEngine(store, link, lambda profile: SoftCard(profile, atc),
                          clock=lambda: datetime(2026, 11, 22, 9, 0, tzinfo=UTC))


def test_an_approved_chip_sale_is_journalled_with_its_approval(store: TerminalStore) -> None:
    link = ScriptedLink(approve_with_arpc)
    outcome = engine_with(store, link).pay(CardProfile.from_sandbox(CARD), 2_500, "chip", pin="1234")
    assert outcome.approved and outcome.approval_code == "123456"
    sent = link.sent[0]
    assert sent["22"] == "051" and "52" in sent and "62" in sent and sent["4"] == "000000002500"
    assert store.entry(outcome.journal_id).status == "approved"


def test_a_wrong_arpc_is_a_card_issuer_mismatch_and_the_sale_is_reversed(store: TerminalStore) -> None:
    link = ScriptedLink(lambda r: approve_with_arpc(r, tamper=True) if r["t"] == "0200"
                        else {**iso8583.response_echo(r), "39": "00"})
    outcome = engine_with(store, link).pay(CardProfile.from_sandbox(CARD), 2_500, "chip", pin="1234")
    assert not outcome.approved and "card/issuer mismatch" in outcome.message
    assert [m["t"] for m in link.sent] == ["0200", "0400"]
    assert link.sent[1]["90"][4:10] == link.sent[0]["11"]  # the reversal names the sale
    assert store.entry(outcome.journal_id).status == "reversed"


def test_a_chip_sale_without_a_pin_is_refused_before_anything_is_sent(store: TerminalStore) -> None:
    link = ScriptedLink(approve_with_arpc)
    with pytest.raises(PinRequired):
        engine_with(store, link).pay(CardProfile.from_sandbox(CARD), 2_500, "chip")
    assert link.sent == [] and store.journal() == []


def test_a_bad_amount_or_entry_is_refused(store: TerminalStore) -> None:
    engine = engine_with(store, ScriptedLink(approve_with_arpc))
    with pytest.raises(TerminalError, match="amount"):
        engine.pay(CardProfile.from_sandbox(CARD), 0, "chip", pin="1234")
    with pytest.raises(TerminalError, match="entry"):
        engine.pay(CardProfile.from_sandbox(CARD), 100, "nfc", pin="1234")


def test_no_answer_queues_a_reversal_that_survives_until_the_host_answers(store: TerminalStore) -> None:
    def silent(request: dict[str, str]) -> dict[str, str]:
        raise NoAnswer("timeout")

    outcome = engine_with(store, ScriptedLink(silent)).pay(CardProfile.from_sandbox(CARD), 700, "contactless")
    assert not outcome.approved and "NOT COMPLETED" in outcome.message
    assert len(store.reversals()) == 1
    back = ScriptedLink(lambda r: {**iso8583.response_echo(r), "39": "00"})
    assert engine_with(store, back).drain() == {"reversals": 1, "advices": 0}
    assert store.reversals() == [] and store.entry(outcome.journal_id).status == "reversed"


def test_an_unreachable_host_approves_a_chip_sale_under_the_floor_limit_offline(store: TerminalStore) -> None:
    def down(request: dict[str, str]) -> dict[str, str]:
        raise HostUnreachable("down")

    engine = engine_with(store, ScriptedLink(down))
    offline = engine.pay(CardProfile.from_sandbox(CARD), 5_000, "chip", pin="1234")
    declined = engine.pay(CardProfile.from_sandbox(CARD), 50_000, "chip", pin="1234")
    assert offline.approved and offline.offline and not declined.approved and declined.response_code == "91"
    (seq, _journal_id, advice, _attempts), = store.advices()
    tags = emv.decode_field_55(advice["55"])
    assert advice["t"] == "0220" and tags["9F27"] == b"\x40"  # a TC, forwarded later
    assert "52" not in advice and "62" not in advice


def test_a_request_left_sending_by_a_crash_is_reversed_on_restart(store: TerminalStore) -> None:
    now = "2026-11-22T09:00:00+00:00"
    with store.transaction() as db:
        journal_id = store.add_entry(db, now, kind="purchase", mti="0200", stan="000009", transmission_dt="1122090000",
                                     processing_code="000000", amount_minor=900, currency="156", card_id="x",
                                     pan_masked="476173******0010", entry="chip", cvm="online_pin", aid=None,
                                     batch_no=1, status="sending")
    engine = engine_with(store, ScriptedLink(lambda r: {**iso8583.response_echo(r), "39": "21"}))
    assert engine.recover() == 1
    assert engine.drain()["reversals"] == 1
    assert store.entry(journal_id).status == "reversed"
