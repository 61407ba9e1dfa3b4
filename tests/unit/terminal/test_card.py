"""paypos.terminal.card: the software card — profiles, ATC stores, GENERATE AC, issuer authentication.

Sources:
  [sandbox]  docs/sandbox.md and ``paypos sandbox cards --json``: the TEST cards below, their
             track 2 and ``imk_ac = HMAC-SHA256(seed, "imk-ac:" + id)[:16]``
             (``networks/sandbox/catalog.card_imk_ac``).
  [host]     ``terminal/simulator.py`` ``SoftTerminal.icc``, the field 55 the host verifies:
             9F10 = 06 01 0A 03 A0 00 00 (CVN 10), 06 01 12 03 A0 00 00 + 25 zero bytes (CVN 18).
  [book3]    EMV 4.4 Book 3 table 15 (9F27: 80 ARQC, 40 TC, 00 AAC); Annex C3 tables 43-44
             (CVM codes 02 online PIN, 1E signature, 1F no CVM; condition 03 "if terminal
             supports the CVM"); Book 4 Annex A4 (CVM Results byte 3: 00 unknown, 02 successful).
  [c2]       EMV Contactless Book C-2 CVM.4: CDCVM reported as 9F34 '01 00 02'.
  [vis]      Visa VIS 1.5 Appendix A, CVR byte 2: b8-7 '10' second GENERATE AC not requested,
             b6-5 '10' ARQC / '01' TC / '00' AAC in the first (e.g. CVR 03 A0 ..: ARQC).
  [pyemv]    pyemv ``cvn.VisaCVN10`` / ``VisaCVN18``: an independent computation of the ARQC.
"""

from __future__ import annotations

import inspect
import json
import os
import sqlite3
import subprocess
import sys
import warnings
from datetime import date
from pathlib import Path

import pytest
from pyemv import cvn as pyemv_cvn

from paypos import limits
from paypos.networks.sandbox.catalog import card_imk_ac
from paypos.protocol import emv
from paypos.protocol.card import CardDataError
from paypos.terminal.card import (
    AID_BY_SCHEME,
    ATC_MAX,
    CardProfile,
    InMemoryAtcStore,
    SoftCard,
    SoftCardError,
    SqliteAtcStore,
    TerminalData,
    swipe,
    tag_9f10_visa_iad,
    tag_9f34_cvm_results,
    track2_equivalent,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def sandbox_card(card_id: str, pan: str, track2: str, cvn: int | None, interfaces: list[str], *,
                 scheme: str = "visa", psn: str = "01", service_code: str = "201", pin: str = "1234",
                 cvv2: str = "726", funding: str = "debit", token_for: str | None = None) -> dict[str, object]:
    """One object of ``paypos sandbox cards --json`` [sandbox]."""
    return {
        "id": card_id, "pan": pan, "expiry": "3012", "psn": psn, "track2": track2, "service_code": service_code,
        "pin": pin, "cvv2": cvv2, "cvn": cvn, "imk_ac": card_imk_ac(card_id) if cvn else None,
        "interfaces": interfaces, "scheme": scheme, "funding": funding, "currency": "156", "behavior": "approve",
        "status": "active", "token_for": token_for, "available_minor": 500_000,
    }


VISA_CVN18 = sandbox_card("visa-cvn18-approve", "4761739001010010", "4761739001010010=301220116880995000", 18,
                          ["chip", "contactless", "magstripe"])
VISA_CVN10 = sandbox_card("visa-cvn10-approve", "4761739001010028", "4761739001010028=301220118878333000", 10,
                          ["chip", "magstripe"], cvv2="643", funding="credit")
UNIONPAY = sandbox_card("unionpay-prepaid-approve", "6210948000000011", "6210948000000011=301220116567944000", 18,
                        ["chip", "contactless", "magstripe"], scheme="unionpay", pin="8888", cvv2="596",
                        funding="prepaid")
PHONE = sandbox_card("phone-wallet-token-approve", "4895370012340011", "4895370012340011=301220118733823000", 18,
                     ["contactless"], cvv2="564", token_for="visa-cvn18-approve")
MAGSTRIPE = sandbox_card("mastercard-magstripe-approve", "5413330089010012", "5413330089010012=301210118829421000",
                         None, ["magstripe"], scheme="mastercard", psn="00", service_code="101", pin="4321",
                         cvv2="416")

CHIP_CARDS = pytest.mark.parametrize("card", [VISA_CVN10, VISA_CVN18, UNIONPAY, PHONE], ids=lambda c: c["id"])
TODAY = date(2026, 11, 22)
UN = h("DEADBEEF")


def terminal_data(**overrides: object) -> TerminalData:
    values: dict[str, object] = {"amount_minor": 2_500, "currency": "156", "country": "156",
                                 "transaction_date": TODAY, "tvr": h("8000048000"), "unpredictable_number": UN}
    return TerminalData(**(values | overrides))  # type: ignore[arg-type]


def never_called(size: int) -> bytes:
    raise AssertionError(f"random source called for {size} bytes")


def soft_card(card: dict[str, object], store: object | None = None) -> SoftCard:
    return SoftCard(CardProfile.from_sandbox(card), store or InMemoryAtcStore(), never_called)  # type: ignore[arg-type]


# --- profiles ------------------------------------------------------------------------------------


def test_profile_from_sandbox_reads_the_card_listing():
    profile = CardProfile.from_sandbox(VISA_CVN18)
    assert (profile.card_id, profile.pan, profile.psn) == ("visa-cvn18-approve", "4761739001010010", "01")
    assert (profile.cvn, profile.service_code, profile.currency) == (18, "201", "156")
    assert profile.imk_ac == h(card_imk_ac("visa-cvn18-approve"))
    assert profile.interfaces == ("chip", "contactless", "magstripe")
    assert (profile.aid, profile.application_label, profile.is_phone) == ("A0000000031010", "VISA DEBIT", False)


def test_phone_wallet_token_is_a_phone():
    assert CardProfile.from_sandbox(PHONE).is_phone


@pytest.mark.parametrize(
    ("card", "aid"),
    [(VISA_CVN18, "A0000000031010"), (UNIONPAY, "A000000333010101"), (MAGSTRIPE, None)],
    ids=["visa", "unionpay", "magstripe-only"],
)
def test_aid_follows_the_scheme(card, aid):
    assert CardProfile.from_sandbox(card).aid == aid


def test_mastercard_aid_is_the_mastercard_credit_debit_application():
    assert AID_BY_SCHEME["mastercard"] == "A0000000041010"


def test_profile_repr_masks_the_pan_and_hides_secrets():
    profile = CardProfile.from_sandbox(VISA_CVN18)
    for text in (repr(profile), str(profile), f"{profile}"):
        assert "476173******0010" in text
        for secret in ("4761739001010010", "301220116880995000", "726", card_imk_ac("visa-cvn18-approve")):
            assert secret not in text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pan": "4761739001010011"}, "pan"),  # Luhn
        ({"pan": None}, "pan"),
        ({"expiry": "3013"}, "expiry"),
        ({"psn": "1"}, "psn"),
        ({"service_code": "20"}, "service_code"),
        ({"track2": "4761739001010028=301220116880995000"}, "track2"),  # another card's PAN
        ({"track2": "4761739001010010=301210116880995000"}, "track2"),  # service code 101, not 201
        ({"pin": "12"}, "pin"),
        ({"cvn": 12}, "cvn"),
        ({"cvn": True}, "cvn"),
        ({"imk_ac": None}, "imk_ac"),
        ({"imk_ac": "ZZ" * 16}, "imk_ac"),
        ({"interfaces": ["chip", "nfc"]}, "interfaces"),
        ({"interfaces": []}, "interfaces"),
        ({"interfaces": ["chip", "chip"]}, "interfaces"),
        ({"scheme": "discover"}, "scheme"),
        ({"currency": "CNY"}, "currency"),
        ({"available_minor": "500000"}, "available_minor"),
        ({"id": ""}, "id"),
    ],
)
def test_profile_from_sandbox_rejects_bad_card_data(change, field):
    with pytest.raises(CardDataError) as caught:
        CardProfile.from_sandbox(VISA_CVN18 | change)
    assert caught.value.field == field
    assert "4761739001010010" not in str(caught.value)


def test_profile_of_a_chip_card_needs_a_cvn():
    with pytest.raises(CardDataError) as caught:
        CardProfile.from_sandbox(VISA_CVN18 | {"cvn": None})
    assert caught.value.field == "cvn"


def test_profile_from_sandbox_rejects_a_non_object():
    with pytest.raises(CardDataError) as caught:
        CardProfile.from_sandbox(["visa-cvn18-approve"])  # type: ignore[arg-type]
    assert caught.value.field == "card"


# --- track 2 -----------------------------------------------------------------------------------


def test_track2_equivalent_is_the_sandbox_track_for_field_35():
    assert track2_equivalent(CardProfile.from_sandbox(VISA_CVN18)) == "4761739001010010=301220116880995000"


def test_track2_equivalent_needs_a_chip_or_contactless_interface():
    with pytest.raises(SoftCardError) as caught:
        track2_equivalent(CardProfile.from_sandbox(MAGSTRIPE))
    assert caught.value.field == "interfaces"


def test_swipe_reads_the_magnetic_stripe():
    assert swipe(CardProfile.from_sandbox(MAGSTRIPE)) == "5413330089010012=301210118829421000"


def test_a_phone_cannot_be_swiped():
    with pytest.raises(SoftCardError) as caught:
        swipe(CardProfile.from_sandbox(PHONE))
    assert caught.value.field == "interfaces"


# --- GENERATE AC -------------------------------------------------------------------------------


@CHIP_CARDS
def test_arqc_verifies_at_the_host(card):
    profile = CardProfile.from_sandbox(card)
    tags = soft_card(card).generate_ac(terminal_data(), "ARQC", cvm="online_pin")
    received = emv.decode_field_55(emv.encode_field_55(tags))  # as the host reads field 55
    assert emv.verify_arqc(profile.cvn, profile.imk_ac, profile.pan, profile.psn, received)
    assert emv.tag_9f02_amount(received["9F02"]) == 2_500


@pytest.mark.parametrize("card", [VISA_CVN10, VISA_CVN18], ids=["cvn10", "cvn18"])
def test_arqc_matches_pyemv_independently(card):
    profile = CardProfile.from_sandbox(card)
    tags = soft_card(card).generate_ac(terminal_data(), "ARQC")
    imk = profile.imk_ac
    values = {f"tag_{t.lower()}": tags[t] for t, _ in emv.CRYPTOGRAM_INPUT_TAGS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if profile.cvn == 10:
            expected = pyemv_cvn.VisaCVN10(imk, imk, imk, profile.pan, profile.psn).generate_ac(
                **values, cvr=tags["9F10"][3:7])
        else:
            expected = pyemv_cvn.VisaCVN18(imk, imk, imk, profile.pan, profile.psn).generate_ac(
                **values, tag_9f10=tags["9F10"])
    assert tags["9F26"] == expected


@pytest.mark.parametrize(
    ("kind", "cid", "cvr_byte_2"),
    [("ARQC", "80", "A0"), ("TC", "40", "90"), ("AAC", "00", "80")],  # [book3] table 15, [vis]
)
@pytest.mark.parametrize("card", [VISA_CVN10, VISA_CVN18], ids=["cvn10", "cvn18"])
def test_cryptogram_type_shows_in_9f27_and_the_cvr(card, kind, cid, cvr_byte_2):
    profile = CardProfile.from_sandbox(card)
    tags = soft_card(card).generate_ac(terminal_data(), kind)
    assert tags["9F27"] == h(cid)
    assert tags["9F10"][3:7] == h(f"03{cvr_byte_2}0000")
    assert emv.verify_arqc(profile.cvn, profile.imk_ac, profile.pan, profile.psn, tags)


@pytest.mark.parametrize(
    ("cvn", "iad"),
    [(10, "06010A03A00000"), (18, "06011203A00000" + "00" * 25)],  # [host]
)
def test_arqc_iad_keeps_the_layout_the_host_verifies(cvn, iad):
    assert tag_9f10_visa_iad(cvn, "ARQC") == h(iad)


def test_generate_ac_returns_the_field_55_tags():
    tags = soft_card(UNIONPAY).generate_ac(
        terminal_data(amount_minor=1_234, other_amount_minor=5, transaction_type="20"), "ARQC", cvm="no_cvm")
    assert list(tags) == ["9F26", "9F27", "9F10", "9F37", "9F36", "95", "9A", "9C", "9F02", "5F2A", "82",
                          "9F1A", "9F03", "84", "9F34", "5F34"]
    assert {tag: tags[tag].hex().upper() for tag in tags if tag not in ("9F26", "9F10")} == {
        "9F27": "80", "9F37": "DEADBEEF", "9F36": "0001", "95": "8000048000", "9A": "261122", "9C": "20",
        "9F02": "000000001234", "5F2A": "0156", "82": "1800", "9F1A": "0156", "9F03": "000000000005",
        "84": "A000000333010101", "9F34": "1F0002", "5F34": "01",
    }
    assert len(emv.encode_tlv(tags)) <= limits.emv_field_55_bytes_max


@pytest.mark.parametrize(("card", "aip"), [(VISA_CVN10, "1C00"), (VISA_CVN18, "1800")], ids=["cvn10", "cvn18"])
def test_aip_offers_external_authenticate_only_for_cvn_10(card, aip):
    assert soft_card(card).generate_ac(terminal_data(), "ARQC")["82"] == h(aip)


@pytest.mark.parametrize(
    ("cvm", "tag_9f34", "host_reads", "contactless"),
    [
        ("online_pin", "420300", "online_pin", False),  # [book3] code 02 | b7, condition 03, unknown
        ("signature", "1E0300", "signature", False),  # [book3]
        ("no_cvm", "1F0002", "no_cvm", True),  # [book3] code 1F, always, successful
        ("cdcvm", "010002", "cdcvm", True),  # [c2]
        (None, "3F0000", "no_cvm", False),  # [book3] Book 4 A4: no CVM performed
    ],
)
def test_cvm_results_say_what_the_host_counts(cvm, tag_9f34, host_reads, contactless):
    assert tag_9f34_cvm_results(cvm) == h(tag_9f34)
    assert emv.cvm_performed(h(tag_9f34), contactless=contactless) == host_reads


def test_unpredictable_number_comes_from_the_injected_random_source():
    calls: list[int] = []

    def random_bytes(size: int) -> bytes:
        calls.append(size)
        return h("01020304")[:size]

    card = SoftCard(CardProfile.from_sandbox(VISA_CVN18), InMemoryAtcStore(), random_bytes)
    tags = card.generate_ac(terminal_data(unpredictable_number=None), "ARQC")
    assert (tags["9F37"], calls) == (h("01020304"), [4])


def test_unpredictable_number_from_the_terminal_is_used_as_given():
    assert soft_card(VISA_CVN18).generate_ac(terminal_data(), "ARQC")["9F37"] == UN


def test_the_default_random_source_is_the_operating_systems():
    assert inspect.signature(SoftCard).parameters["random_bytes"].default is os.urandom


def test_a_random_source_giving_the_wrong_length_is_refused():
    card = SoftCard(CardProfile.from_sandbox(VISA_CVN18), InMemoryAtcStore(), lambda size: b"\x00" * 3)
    with pytest.raises(emv.EmvError) as caught:
        card.generate_ac(terminal_data(unpredictable_number=None), "ARQC")
    assert caught.value.field == "9F37"


def test_each_generate_ac_spends_one_atc():
    card = soft_card(VISA_CVN18)
    assert [card.generate_ac(terminal_data(), "ARQC")["9F36"] for _ in range(3)] == [h("0001"), h("0002"), h("0003")]


def test_a_card_without_a_chip_has_no_cryptogram():
    card = soft_card(MAGSTRIPE)
    with pytest.raises(SoftCardError) as caught:
        card.generate_ac(terminal_data(), "ARQC")
    assert caught.value.field == "cvn"


@pytest.mark.parametrize("kind", ["ARPC", "arqc", "", None])
def test_unknown_cryptogram_type_is_refused_without_spending_an_atc(kind):
    store = InMemoryAtcStore()
    with pytest.raises(SoftCardError) as caught:
        soft_card(VISA_CVN18, store).generate_ac(terminal_data(), kind)  # type: ignore[arg-type]
    assert caught.value.field == "9F27"
    assert store.current_atc("visa-cvn18-approve") == 0


def test_unknown_cvm_is_refused():
    with pytest.raises(emv.EmvError) as caught:
        soft_card(VISA_CVN18).generate_ac(terminal_data(), "ARQC", cvm="offline_pin")  # type: ignore[arg-type]
    assert caught.value.field == "9F34"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount_minor": -1}, "9F02"),
        ({"amount_minor": 10**12}, "9F02"),
        ({"amount_minor": 12.5}, "9F02"),
        ({"amount_minor": True}, "9F02"),
        ({"other_amount_minor": -5}, "9F03"),
        ({"currency": "15"}, "5F2A"),
        ({"currency": "CNY"}, "5F2A"),
        ({"country": "1560"}, "9F1A"),
        ({"transaction_date": "2026-11-22"}, "9A"),
        ({"transaction_type": "01"}, "9C"),
        ({"tvr": bytes(4)}, "95"),
        ({"tvr": "0000000000"}, "95"),
        ({"unpredictable_number": bytes(3)}, "9F37"),
    ],
)
def test_terminal_data_rejects_bad_values_naming_the_tag(change, field):
    with pytest.raises(emv.EmvError) as caught:
        terminal_data(**change)
    assert caught.value.field == field


# --- issuer authentication ---------------------------------------------------------------------


def issuer_answer(card: dict[str, object], tags: dict[str, bytes]) -> bytes:
    """Tag 91 as the sandbox issuer builds it (networks/issuer.py)."""
    profile = CardProfile.from_sandbox(card)
    response = {"arc": b"00"} if profile.cvn == 10 else {"csu": bytes(4)}
    return emv.generate_arpc(profile.cvn, profile.imk_ac, profile.pan, profile.psn, tags, **response)


@pytest.mark.parametrize("card", [VISA_CVN10, VISA_CVN18], ids=["cvn10", "cvn18"])
def test_issuer_arpc_verifies(card):
    soft = soft_card(card)
    tags = soft.generate_ac(terminal_data(), "ARQC")
    assert soft.verify_issuer_authentication(tags, issuer_answer(card, tags))


@pytest.mark.parametrize("card", [VISA_CVN10, VISA_CVN18], ids=["cvn10", "cvn18"])
def test_tampered_arpc_is_a_card_issuer_mismatch(card):
    soft = soft_card(card)
    tags = soft.generate_ac(terminal_data(), "ARQC")
    tag_91 = issuer_answer(card, tags)
    assert not soft.verify_issuer_authentication(tags, bytes([tag_91[0] ^ 0x01]) + tag_91[1:])


@pytest.mark.parametrize("card", [VISA_CVN10, VISA_CVN18], ids=["cvn10", "cvn18"])
def test_arpc_for_another_cryptogram_is_a_mismatch(card):
    soft = soft_card(card)
    first, second = soft.generate_ac(terminal_data(), "ARQC"), soft.generate_ac(terminal_data(), "ARQC")
    assert not soft.verify_issuer_authentication(second, issuer_answer(card, first))


@pytest.mark.parametrize("card", [VISA_CVN10, VISA_CVN18], ids=["cvn10", "cvn18"])
def test_tag_91_of_the_wrong_length_is_a_mismatch(card):
    soft = soft_card(card)
    tags = soft.generate_ac(terminal_data(), "ARQC")
    assert not soft.verify_issuer_authentication(tags, issuer_answer(card, tags)[:-3])


def test_issuer_authentication_needs_the_cryptogram_sent():
    soft = soft_card(VISA_CVN18)
    tags = soft.generate_ac(terminal_data(), "ARQC")
    tag_91 = issuer_answer(VISA_CVN18, tags)
    del tags["9F26"]
    with pytest.raises(emv.EmvError) as caught:
        soft.verify_issuer_authentication(tags, tag_91)
    assert caught.value.field == "9F26"


# --- ATC stores --------------------------------------------------------------------------------


def test_atc_rises_across_two_soft_cards_sharing_a_sqlite_file(tmp_path):
    path = tmp_path / "cards" / "atc.db"
    first = soft_card(VISA_CVN18, SqliteAtcStore(path))
    second = soft_card(VISA_CVN18, SqliteAtcStore(path))
    atcs = [card.generate_ac(terminal_data(), "ARQC")["9F36"] for card in (first, second, first, second)]
    assert atcs == [h("0001"), h("0002"), h("0003"), h("0004")]


def test_sqlite_atc_store_is_in_wal_mode(tmp_path):
    store = SqliteAtcStore(tmp_path / "atc.db")
    store.next_atc("visa-cvn18-approve")
    with sqlite3.connect(tmp_path / "atc.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_atc_survives_reopening(tmp_path):
    SqliteAtcStore(tmp_path / "atc.db").next_atc("visa-cvn10-approve")
    assert SqliteAtcStore(tmp_path / "atc.db").next_atc("visa-cvn10-approve") == 2


def test_atcs_are_per_card(tmp_path):
    store = SqliteAtcStore(tmp_path / "atc.db")
    assert [store.next_atc("a"), store.next_atc("b"), store.next_atc("a")] == [1, 1, 2]


_INCREMENT_25_TIMES = """
import json, sys
from paypos.terminal.card import SqliteAtcStore
store = SqliteAtcStore(sys.argv[1])
sys.stdin.readline()  # wait until every process is ready, then race
print(json.dumps([store.next_atc("visa-cvn18-approve") for _ in range(25)]))
"""


def test_atc_increments_are_atomic_across_processes(tmp_path):
    path = str(tmp_path / "atc.db")
    children = [
        subprocess.Popen([sys.executable, "-c", _INCREMENT_25_TIMES, path], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [child.communicate("go\n", timeout=60) for child in children]
    assert [child.returncode for child in children] == [0, 0, 0, 0], [err for _, err in outputs]
    atcs = [atc for out, _ in outputs for atc in json.loads(out)]
    assert sorted(atcs) == list(range(1, 101))
    assert all(run == sorted(run) for run in (json.loads(out) for out, _ in outputs))


@pytest.mark.parametrize("make_store", [lambda p: InMemoryAtcStore(), lambda p: SqliteAtcStore(p / "atc.db")],
                         ids=["memory", "sqlite"])
def test_advance_to_raises_the_atc_and_never_lowers_it(tmp_path, make_store):
    store = make_store(tmp_path)
    store.advance_to("visa-cvn18-approve", 41)
    store.advance_to("visa-cvn18-approve", 7)
    assert store.next_atc("visa-cvn18-approve") == 42


@pytest.mark.parametrize("make_store", [lambda p: InMemoryAtcStore(), lambda p: SqliteAtcStore(p / "atc.db")],
                         ids=["memory", "sqlite"])
def test_an_exhausted_atc_blocks_the_card(tmp_path, make_store):
    store = make_store(tmp_path)
    store.advance_to("visa-cvn18-approve", ATC_MAX)
    with pytest.raises(SoftCardError) as caught:
        store.next_atc("visa-cvn18-approve")
    assert caught.value.field == "9F36"
    assert store.current_atc("visa-cvn18-approve") == ATC_MAX


@pytest.mark.parametrize("make_store", [lambda p: InMemoryAtcStore(), lambda p: SqliteAtcStore(p / "atc.db")],
                         ids=["memory", "sqlite"])
@pytest.mark.parametrize(("card_id", "atc"), [("", 1), ("x" * 65, 1), (None, 1), ("card", -1), ("card", ATC_MAX + 1)])
def test_atc_stores_reject_bad_input(tmp_path, make_store, card_id, atc):
    store = make_store(tmp_path)
    with pytest.raises(SoftCardError):
        store.advance_to(card_id, atc)


def test_sqlite_store_creates_its_directory(tmp_path):
    path: Path = tmp_path / "terminals" / "CAFE0001" / "atc.db"
    SqliteAtcStore(path).next_atc("visa-cvn18-approve")
    assert path.exists()
