"""The terminal engine's wallet payments against a scripted host (docs/iso8583.md §5.8):
the 0200 it sends, waiting (0600) and cancelling (0400), and an unsigned collection code
that is never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from paypos.protocol import iso8583
from paypos.protocol.card import luhn_check_digit
from paypos.protocol.dukpt import derive_ipek, parse_ksn
from paypos.terminal.engine import TerminalError
from paypos.terminal.store import TerminalConfig, TerminalStore
from tests.unit.terminal.test_engine import BDK, KSN, ScriptedLink, engine_with, store  # noqa: F401 — fixture

CODE = "25100001123456789" + str(luhn_check_digit("25100001123456789"))
PAYLOAD = "00020101021226330010dev.paypos0115PPCAFE000000001520458145303156540412.345802CN5912Harbour Cafe6008Shanghai63041234"


def echo(request: dict[str, str]) -> dict[str, str]:
    if request["t"] == "0600":  # profile v1's response_mti knows the card messages only
        return {"t": "0610", "11": request["11"], "41": request["41"]}
    return iso8583.response_echo(request)


def answer(code39: str, **fields: str):  # type: ignore[no-untyped-def]
    return lambda request: {**echo(request), "37": "000000000042", "39": code39, **fields}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_payment_code_is_sent_in_field_2_with_entry_mode_032_and_journalled_masked(store: TerminalStore) -> None:
    link = ScriptedLink(answer("00", **{"38": "654321"}))
    outcome = engine_with(store, link).pay_code(CODE, 1_250)
    sent = link.sent[0]
    assert (sent["t"], sent["3"], sent["22"], sent["2"], sent["4"]) == ("0200", "000000", "032", CODE, "000000001250")
    assert "35" not in sent and "55" not in sent
    entry = store.entry(outcome.journal_id)
    assert outcome.approved and entry.status == "approved" and entry.pan_masked == CODE[:6] + "********" + CODE[-4:]
    assert entry.entry == "paycode" and entry.card_id is None


def test_a_mistyped_code_is_refused_before_anything_is_sent(store: TerminalStore) -> None:
    link = ScriptedLink(answer("00"))
    engine = engine_with(store, link)
    for bad in (CODE[:-1] + str((int(CODE[-1]) + 1) % 10), CODE[:-1], "A" * 18):
        with pytest.raises(TerminalError, match="check digit"):
            engine.pay_code(bad, 100)
    assert link.sent == [] and store.journal() == []


def test_a_refused_code_says_why_from_field_44(store: TerminalStore) -> None:
    outcome = engine_with(store, ScriptedLink(answer("54", **{"44": "PAYCODEEXPIRED"}))).pay_code(CODE, 100)
    assert not outcome.approved and outcome.message.startswith("PAYMENT CODE EXPIRED")
    assert outcome.extra["wallet_detail"] == "PAYCODEEXPIRED" and store.entry(outcome.journal_id).status == "declined"


def test_a_buyer_who_never_confirms_is_cancelled_at_the_timeout(store: TerminalStore) -> None:
    clock = Clock()
    link = ScriptedLink(lambda r: answer("09")(r) if r["t"] in ("0200", "0600") else answer("00")(r))
    engine = engine_with(store, link)
    waiting = engine.pay_code(CODE, 30_000)
    assert waiting.extra["status"] == "pending" and waiting.response_code == "09"

    class Ticking:  # each wait moves the clock on by what was asked
        def wait(self, seconds: float) -> bool:
            clock.now += seconds
            return False

    outcome = engine.await_wallet(waiting.journal_id, 5, stop=Ticking(), monotonic=clock)  # type: ignore[arg-type]
    kinds = [m["t"] for m in link.sent]
    assert kinds[0] == "0200" and kinds[-1] == "0400" and set(kinds[1:-1]) == {"0600"} and len(kinds) >= 4
    assert all(m["90"][:10] == "0200" + link.sent[0]["11"] for m in link.sent[1:])  # each names the 0200
    assert outcome.message == "CANCELLED — buyer did not pay" and not outcome.approved
    assert store.entry(waiting.journal_id).status == "reversed"


def test_a_collection_code_whose_answer_mac_fails_is_never_shown_and_is_cancelled(tmp_path: Path) -> None:
    store = TerminalStore(tmp_path / "mac.db")
    ipek = derive_ipek(bytes.fromhex(BDK), parse_ksn(KSN)).hex().upper()
    store.load_keys(TerminalConfig("CAFE0002", "PPCAFE000000001", "156", KSN, ipek, True, 10_000, 500_000,
                                   100_000, "Harbour Café", "Shanghai"))
    link = ScriptedLink(lambda r: answer("09", **{"63": PAYLOAD, "64": "0" * 16})(r) if r["t"] == "0200"
                        else answer("00", **{"64": "0" * 16})(r))
    outcome = engine_with(store, link).collect_qr(1_234)
    assert "qr_payload" not in outcome.extra and "MAC" in outcome.message and not outcome.approved
    assert [m["t"] for m in link.sent] == ["0200", "0400"]
    assert "64" in link.sent[0] and "22" in link.sent[0] and "2" not in link.sent[0]

