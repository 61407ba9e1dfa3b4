"""The ISO 8583 host in-process on SQLite and PostgreSQL: durability, idempotency
under concurrency, reversals, MAC handling, and fuzzing (bad input never crashes
the host and never reaches the ledger). The over-TCP acceptance suite with an
independent client is tests/e2e/test_iso_host.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paypos.bootstrap import App, init_database
from paypos.domain.pricing import fee_minor
from paypos.protocol import emv, iso8583
from paypos.services import ledger as ledger_service
from paypos.services import sandbox as sandbox_service
from paypos.services.host import IsoHost
from paypos.terminal.simulator import SoftTerminal


@pytest.fixture
def host(app: App) -> IsoHost:
    init_database(app, sandbox=True)
    return IsoHost(app)


@pytest.fixture
def cards(app: App, host: IsoHost) -> dict[str, dict]:
    with app.uow(write=False) as uow:
        return {c["id"]: c for c in sandbox_service.list_cards(uow, app.vault)}


def terminal(app: App, terminal_id: str) -> SoftTerminal:
    with app.uow(write=False) as uow:
        row = next(t for t in sandbox_service.list_terminals(uow, app.vault) if t["terminal_id"] == terminal_id)
    return SoftTerminal(**{k: row[k] for k in ("terminal_id", "merchant_id", "currency", "bdk", "initial_ksn",
                                               "mac_required")})


def send(host: IsoHost, raw: bytes) -> dict[str, str] | None:
    response = host.handle(raw)
    return None if response is None else iso8583.decode_message(response)


def chip_sale(t: SoftTerminal, card: dict, amount: int, *, pin: str | None = "1234", **icc_kw) -> bytes:
    icc = t.icc(card, amount, **icc_kw)
    entry = "051" if pin else "052"
    return t.message("0200", {"3": "000000", "4": f"{amount:012d}", "22": entry, "23": card["psn"].zfill(3),
                              "35": card["track2"], "55": emv.encode_field_55(icc)},
                     pin=pin, pan=card["pan"])


def balance(app: App, owner: str, code: str) -> int:
    return next(a.balances.net_posted for a in ledger_service.accounts(app.engine) if a.owner == owner and a.code == code)


def card_available(app: App, card_id: str) -> int:
    with app.uow(write=False) as uow:
        return next(c["available_minor"] for c in sandbox_service.list_cards(uow, app.vault) if c["id"] == card_id)


def test_the_soft_terminal_skips_eleven_bit_ksn_counters_and_the_host_approves_past_them(
        app: App, host: IsoHost, cards) -> None:
    # X9.24-1:2009 A.2: after 0x7FE comes 0x800 (0x7FF has eleven 1 bits, no device uses it).
    # The load generator sends thousands of PIN requests per terminal through SoftTerminal.
    t, card = terminal(app, "CAFE0001"), cards["visa-cvn18-approve"]
    t.counter = 0x7FE
    first = send(host, chip_sale(t, card, 1_000))
    assert (t.counter, first["39"]) == (0x800, "00"), first
    second = send(host, chip_sale(t, card, 1_000))
    assert (t.counter, second["39"]) == (0x801, "00"), second


def test_a_chip_sale_posts_amount_and_fee_in_one_chain(app: App, host: IsoHost, cards) -> None:
    t, card = terminal(app, "CAFE0001"), cards["visa-cvn18-approve"]
    response = send(host, chip_sale(t, card, 12_345))
    assert response["39"] == "00" and len(response["38"]) == 6 and len(response["37"]) == 12
    assert card_available(app, card["id"]) == card["available_minor"] - 12_345
    fee = fee_minor(12_345)
    assert balance(app, "merchant:PPCAFE000000001", "merchant_pending") == 12_345 - fee
    assert balance(app, "platform", "fees_revenue") == fee
    assert ledger_service.check(app.engine, app.clock) == []


def test_a_retransmission_gets_the_first_answer_and_posts_once(app: App, host: IsoHost, cards) -> None:
    t, card = terminal(app, "CAFE0001"), cards["visa-cvn18-approve"]
    raw = chip_sale(t, card, 1_000)
    first, again = send(host, raw), send(host, raw)
    assert first == again and first["39"] == "00"
    assert card_available(app, card["id"]) == card["available_minor"] - 1_000


def test_concurrent_twins_of_one_request_post_once(app: App, host: IsoHost, cards) -> None:
    t, card = terminal(app, "CAFE0001"), cards["visa-cvn18-approve"]
    raw = chip_sale(t, card, 2_000)
    answers: list[dict | None] = []
    barrier = threading.Barrier(6)

    def twin() -> None:
        barrier.wait()
        answers.append(send(host, raw))

    threads = [threading.Thread(target=twin) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 6 and all(a == answers[0] for a in answers) and answers[0]["39"] == "00"
    assert card_available(app, card["id"]) == card["available_minor"] - 2_000
    assert ledger_service.check(app.engine, app.clock) == []


def test_a_reversal_restores_the_card_and_removes_the_fee(app: App, host: IsoHost, cards) -> None:
    t, card = terminal(app, "CAFE0001"), cards["visa-cvn18-approve"]
    sale = iso8583.decode_message(raw := chip_sale(t, card, 5_000))
    assert send(host, raw)["39"] == "00"
    original = iso8583.OriginalData("0200", sale["11"], sale["7"], "0", "0")
    reversal = t.message("0400", {"3": "000000", "4": "000000005000",
                                  "90": iso8583.format_original_data_elements(original)})
    assert send(host, reversal)["39"] == "00"
    assert send(host, reversal)["39"] == "00"  # replayed: same answer, nothing more
    assert card_available(app, card["id"]) == card["available_minor"]
    assert balance(app, "platform", "fees_revenue") == 0
    assert ledger_service.check(app.engine, app.clock) == []


def test_a_reversal_before_its_original_gets_21_and_the_late_original_is_not_posted(app: App, host: IsoHost, cards) -> None:
    t, card = terminal(app, "CAFE0001"), cards["visa-cvn18-approve"]
    raw = chip_sale(t, card, 3_000)
    sale = iso8583.decode_message(raw)
    original = iso8583.OriginalData("0200", sale["11"], sale["7"], "0", "0")
    reversal = t.message("0400", {"3": "000000", "4": "000000003000",
                                  "90": iso8583.format_original_data_elements(original)})
    assert send(host, reversal)["39"] == "21"
    assert send(host, raw)["39"] == "12"
    assert card_available(app, card["id"]) == card["available_minor"]


def test_a_bad_mac_is_63_posts_nothing_and_does_not_block_the_genuine_request(app: App, host: IsoHost, cards) -> None:
    t, card = terminal(app, "CAFE0002"), cards["visa-cvn10-approve"]
    raw = chip_sale(t, card, 700, pin=None)
    tampered = raw[:-1] + (b"0" if raw[-1:] != b"0" else b"1")
    assert send(host, tampered)["39"] == "63"
    assert card_available(app, card["id"]) == card["available_minor"]
    assert send(host, raw)["39"] == "00"


def test_a_missing_mac_on_a_mac_terminal_is_63(app: App, host: IsoHost, cards) -> None:
    t, card = terminal(app, "CAFE0002"), cards["visa-cvn10-approve"]
    icc = t.icc(card, 700)
    raw = t.message("0200", {"3": "000000", "4": "000000000700", "22": "052", "23": "001", "35": card["track2"],
                             "55": emv.encode_field_55(icc)}, mac=False)
    assert send(host, raw)["39"] == "63"


def test_unreadable_garbage_gets_no_answer_and_a_garbled_field_gets_30(app: App, host: IsoHost) -> None:
    assert host.handle(b"\x00\xffnot iso 8583 at all") is None
    t = terminal(app, "CAFE0001")
    good = t.message("0800", {"70": "301"})
    garbled = good[:-3] + b"XYZ"  # field 70 must be numeric
    response = send(host, garbled)
    assert response is not None and response["39"] == "30" and response["41"] == "CAFE0001"


def test_preauth_then_a_lower_completion_posts_only_the_completed_amount(app: App, host: IsoHost, cards) -> None:
    t, card = terminal(app, "CAFE0001"), cards["visa-cvn18-approve"]
    icc = t.icc(card, 9_000)
    raw = t.message("0100", {"3": "000000", "4": "000000009000", "22": "051", "23": "001", "35": card["track2"],
                             "55": emv.encode_field_55(icc)}, pin="1234", pan=card["pan"])
    auth = iso8583.decode_message(raw)
    assert send(host, raw)["39"] == "00"
    assert card_available(app, card["id"]) == card["available_minor"] - 9_000
    original = iso8583.OriginalData("0100", auth["11"], auth["7"], "0", "0")
    completion = t.message("0220", {"3": "000000", "4": "000000006000",
                                    "90": iso8583.format_original_data_elements(original)})
    assert send(host, completion)["39"] == "00"
    assert card_available(app, card["id"]) == card["available_minor"] - 6_000
    assert balance(app, "platform", "fees_revenue") == fee_minor(6_000)
    assert ledger_service.check(app.engine, app.clock) == []


def test_add_terminals_and_cards_provision_working_test_credentials(app: App, host: IsoHost) -> None:
    with app.uow() as uow:
        terminals = sandbox_service.add_terminals(uow, app.vault, 2, "PPCAFE000000001", True, app.clock())
        card_ids = sandbox_service.add_cards(uow, app.vault, 1, cvn=18, interfaces=(sandbox_service.CardInterface.CHIP,),
                                             available_minor=50_000, currency_numeric="156", now=app.clock())
        uow.commit()
    assert terminals == ["T0000001", "T0000002"]
    with app.uow(write=False) as uow:
        card = sandbox_service.list_cards(uow, app.vault, set(card_ids))[0]
    assert card["available_minor"] == 50_000
    response = send(host, chip_sale(terminal(app, "T0000002"), card, 4_000))
    assert response["39"] == "00" and "64" in response


def test_add_cards_refuses_a_bad_cvn(app: App, host: IsoHost) -> None:
    with app.uow() as uow, pytest.raises(sandbox_service.SandboxInputError, match="--cvn"):
        sandbox_service.add_cards(uow, app.vault, 1, cvn=11, interfaces=(sandbox_service.CardInterface.CHIP,),
                                  available_minor=1, currency_numeric="156", now=app.clock())


@pytest.fixture
def sqlite_host(tmp_path, vault, clock) -> Iterator[tuple[App, IsoHost, bytes]]:
    from paypos.adapters.db.engine import make_engine
    from paypos.config import Settings
    from tests.conftest import TEST_DATA_KEY

    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    app = App(Settings(data_dir=tmp_path, database_url=url, data_key=TEST_DATA_KEY), make_engine(url), vault, clock)
    init_database(app, sandbox=True)
    with app.uow(write=False) as uow:
        card = next(c for c in sandbox_service.list_cards(uow, app.vault) if c["id"] == "visa-cvn18-approve")
    yield app, IsoHost(app), chip_sale(terminal(app, "CAFE0001"), card, 1_500)
    app.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_messages_never_crash_the_host_nor_reach_the_ledger(sqlite_host, data: st.DataObject) -> None:
    app, host, valid = sqlite_host
    position = data.draw(st.integers(min_value=0, max_value=len(valid) - 1))
    replacement = data.draw(st.binary(min_size=0, max_size=4))
    cut = data.draw(st.booleans())
    mutated = valid[:position] + replacement + (b"" if cut else valid[position + len(replacement):])
    response = host.handle(mutated)  # must not raise
    if response is not None:
        decoded = iso8583.decode_message(response)
        if decoded["39"] == "00":  # only a mutation that kept the message valid may post
            assert mutated == valid or iso8583.decode_message(mutated)["4"] == "000000001500"
    assert ledger_service.check(app.engine, app.clock) == []
    with app.uow(write=False) as uow:
        assert sandbox_service.list_cards(uow, app.vault, {"visa-cvn18-approve"})[0]["available_minor"] in (
            500_000, 498_500)


def test_an_approved_sale_sends_one_cardholder_notice_and_a_decline_none(app: App, host: IsoHost, cards) -> None:
    t = terminal(app, "CAFE0001")
    raw = chip_sale(t, cards["visa-cvn18-approve"], 2_500)
    assert send(host, raw)["39"] == "00"
    assert send(host, raw)["39"] == "00"  # a retransmission: no second notice
    assert send(host, chip_sale(t, cards["visa-cvn18-insufficient-funds"], 5_000))["39"] == "51"
    with app.uow(write=False) as uow:
        notices = uow.host.notifications()
    assert [n["card_id"] for n in notices] == ["visa-cvn18-approve"]
    assert "476173******0010" in notices[0]["text"] and "CNY 25.00" in notices[0]["text"]
    assert cards["visa-cvn18-approve"]["pan"] not in notices[0]["text"]


def test_the_e_receipt_page_needs_the_receipts_approval_code(app: App, host: IsoHost, cards) -> None:
    from fastapi.testclient import TestClient

    from paypos.entrypoints.api import create_app

    sale = send(host, chip_sale(terminal(app, "CAFE0001"), cards["visa-cvn18-approve"], 1_234))
    with TestClient(create_app(app, expiry_sweep_interval_s=None)) as client:
        page = client.get(f"/r/{sale['37']}", params={"code": sale["38"]})
        assert page.status_code == 200 and "CNY 12.34" in page.text and "476173******0010" in page.text
        assert cards["visa-cvn18-approve"]["pan"] not in page.text
        wrong = "000000" if sale["38"] != "000000" else "111111"
        assert client.get(f"/r/{sale['37']}", params={"code": wrong}).status_code == 404
        assert client.get(f"/r/{sale['37']}").status_code == 404
        assert client.get("/r/not-an-rrn", params={"code": sale["38"]}).status_code == 404


def test_a_warm_host_reads_no_registry_rows_per_request(app: App, host: IsoHost, cards) -> None:
    import sqlalchemy as sa

    t, card = terminal(app, "CAFE0002"), cards["visa-cvn18-approve"]
    send(host, chip_sale(t, card, 1_000))  # warms the cache
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731  (conn, cursor, statement, ...)
    sa.event.listen(app.engine, "before_cursor_execute", listener)
    try:
        assert send(host, chip_sale(t, card, 1_000))["39"] == "00"
    finally:
        sa.event.remove(app.engine, "before_cursor_execute", listener)
    registry_reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")
                      and any(f"FROM {table}" in s for table in ("terminals", "merchants", "issuer_cards"))]
    assert registry_reads == []
