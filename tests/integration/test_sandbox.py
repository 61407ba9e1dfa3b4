"""paypos.services.sandbox + networks.sandbox.catalog on SQLite and PostgreSQL: idempotent
seeding, the exact listing shapes of issue 2 item 9, and card data at rest."""

import dataclasses
import datetime
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from paypos.domain.pricing import standard_plan_id
from paypos.adapters.db import migrate
from paypos.adapters.db.engine import make_engine
from paypos.adapters.db.schema import issuer_cards, metadata
from paypos.adapters.vault import Vault, VaultError
from paypos.bootstrap import App, init_database
from paypos.config import Settings
from paypos.domain.money import currency as currency_of
from paypos.networks.sandbox import catalog, console_catalog, wallet_catalog
from paypos.protocol.card import is_expired, luhn_valid, parse_track2
from paypos.protocol.cardsec import cvv2, ibm3624_pin_from_offset
from paypos.services import ledger as ledger_service
from paypos.services import sandbox as sandbox_service
from paypos.services.sandbox import SandboxError
from tests.conftest import TEST_DATA_KEY, FakeClock, truncate_all

# Issue 2, item 9: the keys a third-party terminal reads. Extra keys are allowed.
CARD_KEYS = {
    "id", "pan", "expiry", "psn", "track2", "service_code", "pin", "cvv2", "cvn", "imk_ac",
    "interfaces", "scheme", "currency", "behavior", "available_minor",
}
TERMINAL_KEYS = {
    "terminal_id", "merchant_id", "currency", "bdk", "initial_ksn", "mac_required", "contactless_cvm_limit_minor",
}
MERCHANT_KEYS = {"merchant_id", "name", "currency", "api_key"}
INTERFACES = {"chip", "contactless", "magstripe"}
HEX32 = re.compile(r"[0-9A-Fa-f]{32}")
HEX20 = re.compile(r"[0-9A-Fa-f]{20}")
KSN_COUNTER_MASK = (1 << 21) - 1  # ANSI X9.24-1: the low 21 bits of the KSN count transactions
OTHER_DATA_KEY = bytes(range(32))


@pytest.fixture
def seeded(app: App) -> App:
    report = init_database(app, sandbox=True)
    assert report is not None and not report.nothing_new
    return app


@dataclasses.dataclass
class Dump:
    texts: list[str]
    blobs: list[bytes]
    cells: dict[tuple[str, str], list[object]]


@dataclasses.dataclass
class Snapshot:
    """What a freshly seeded sandbox lists and stores; read-only tests share one per backend."""

    cards: list[dict[str, Any]]
    terminals: list[dict[str, Any]]
    merchants: list[dict[str, Any]]
    balances: list[dict[str, object]]
    dump: Dump
    today: datetime.date

    def pin_offsets(self) -> dict[str, str]:
        cells = self.dump.cells
        return dict(zip(cells[("issuer_cards", "card_id")], cells[("issuer_cards", "pin_offset")], strict=True))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def sandbox(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sandbox') / 'paypos.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    migrate.upgrade(engine)
    if request.param == "postgresql":
        truncate_all(engine)
    clock = FakeClock()
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=url, data_key=TEST_DATA_KEY)
    app = App(settings=settings, engine=engine, vault=Vault(bytes.fromhex(TEST_DATA_KEY)), clock=clock)
    try:
        init_database(app, sandbox=True)
        return Snapshot(
            listing(app, "cards"), listing(app, "terminals"), listing(app, "merchants"), balances(app),
            dump_database(app), clock().date(),
        )
    finally:
        app.close()


def listing(app: App, name: str) -> list[dict[str, Any]]:
    with app.uow(write=False) as uow:
        if name == "cards":
            return sandbox_service.list_cards(uow, app.vault)
        if name == "terminals":
            return sandbox_service.list_terminals(uow, app.vault)
        return sandbox_service.list_merchants(uow)


def balances(app: App) -> list[dict[str, object]]:
    return [ledger_service.balance_row(a) for a in ledger_service.accounts(app.engine)]


def spec_of(card_id: str) -> catalog.SandboxCard:
    return next(spec for spec in catalog.CARDS if spec.card_id == card_id)


# --- seeding ------------------------------------------------------------------------------


def test_seeding_twice_creates_nothing_the_second_time_and_leaves_balances_identical(seeded: App) -> None:
    before = balances(seeded)
    cards_before = listing(seeded, "cards")

    second = init_database(seeded, sandbox=True)

    assert second is not None and second.nothing_new
    assert second.created == []
    assert balances(seeded) == before
    assert listing(seeded, "cards") == cards_before
    assert ledger_service.check(seeded.engine, seeded.clock) == []


def test_the_first_seed_creates_and_reports_every_catalog_record(app: App) -> None:
    report = init_database(app, sandbox=True)

    assert report is not None
    expected = (
        [f"acquirer {catalog.ACQUIRER.acquirer_id}", f"issuer {catalog.ISSUER_ID}"]
        + [f"merchant {m.merchant_id}" for m in catalog.MERCHANTS]
        + [f"terminal {t.terminal_id}" for t in catalog.TERMINALS]
        + [f"card {c.card_id}" for c in catalog.CARDS]
        + ["wallet key"]
        + [f"wallet app {a.app_id}" for a in wallet_catalog.APPS]
        + [f"wallet user {u.user_id}" for u in wallet_catalog.USERS]
        + [f"console user {u.email}" for u in console_catalog.CONSOLE_USERS]
        + ["pricing plan standard", "pricing plan standard-usd"]
        + [f"pricing plan {standard_plan_id(m.currency)} for merchant {m.merchant_id}" for m in catalog.MERCHANTS]
    )
    assert sorted(report.created) == sorted(expected)
    with app.uow(write=False) as uow:
        assert {card.card_id for card in uow.registry.list_cards()} == {c.card_id for c in catalog.CARDS}
        assert {t.terminal_id for t in uow.registry.list_terminals()} == {t.terminal_id for t in catalog.TERMINALS}


def test_without_the_sandbox_flag_init_creates_no_sandbox_data(app: App) -> None:
    assert init_database(app, sandbox=False) is None

    assert listing(app, "merchants") == listing(app, "cards") == listing(app, "terminals") == []
    assert balances(app) == []


def test_seeding_restores_a_card_that_was_removed_and_only_that_card(seeded: App) -> None:
    with seeded.engine.begin() as conn:
        conn.execute(sa.delete(issuer_cards).where(issuer_cards.c.card_id == "visa-cvn18-expired"))
    before = balances(seeded)

    report = init_database(seeded, sandbox=True)

    assert report is not None and report.created == ["card visa-cvn18-expired"]
    assert balances(seeded) == before  # its account and opening balance were still there


def test_seeding_a_store_whose_opening_balance_disagrees_with_the_catalog_fails_and_commits_nothing(
    seeded: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    with seeded.engine.begin() as conn:
        conn.execute(sa.delete(issuer_cards).where(issuer_cards.c.card_id == "visa-cvn18-expired"))
    changed = tuple(
        dataclasses.replace(spec, opening_minor=spec.opening_minor + 1) if spec.card_id == "visa-cvn18-approve"
        else spec
        for spec in catalog.CARDS
    )
    monkeypatch.setattr(catalog, "CARDS", changed)
    before = balances(seeded)

    with pytest.raises(SandboxError, match="opening balance of visa-cvn18-approve: id_exists_with_different_fields"):
        init_database(seeded, sandbox=True)

    with seeded.uow(write=False) as uow:
        assert uow.registry.get_card("visa-cvn18-expired") is None  # the failed seed was rolled back
    assert balances(seeded) == before


# --- cards -----------------------------------------------------------------------------------


def test_every_card_has_exactly_the_documented_keys_in_the_documented_formats(sandbox: Snapshot) -> None:
    cards = sandbox.cards

    assert len(cards) == len(catalog.CARDS)
    for card in cards:
        assert CARD_KEYS <= card.keys(), card["id"]
        assert_card_formats(card)


def assert_card_formats(card: dict[str, Any]) -> None:
    where = card["id"]
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", card["id"]), where
    assert re.fullmatch(r"\d{12,19}", card["pan"]), where
    assert re.fullmatch(r"\d\d(0[1-9]|1[0-2])", card["expiry"]), where
    assert re.fullmatch(r"\d{2}", card["psn"]), where
    assert re.fullmatch(r"\d{3}", card["service_code"]), where
    assert re.fullmatch(rf"{card['pan']}={card['expiry']}{card['service_code']}\d+", card["track2"]), where
    assert re.fullmatch(r"\d{4,12}", card["pin"]), where
    assert re.fullmatch(r"\d{3}", card["cvv2"]), where
    assert card["cvn"] in (10, 18, None), where
    if card["cvn"] is None:
        assert card["imk_ac"] is None, where
    else:
        assert isinstance(card["imk_ac"], str) and HEX32.fullmatch(card["imk_ac"]), where
    assert card["interfaces"] and set(card["interfaces"]) <= INTERFACES, where
    assert len(set(card["interfaces"])) == len(card["interfaces"]), where
    assert isinstance(card["scheme"], str) and card["scheme"], where
    assert re.fullmatch(r"\d{3}", card["currency"]), where
    assert isinstance(card["behavior"], str) and card["behavior"], where
    assert type(card["available_minor"]) is int and card["available_minor"] >= 0, where


def test_every_card_listing_matches_its_catalog_entry(sandbox: Snapshot) -> None:
    for card in sandbox.cards:
        spec = spec_of(card["id"])
        assert (card["pan"], card["expiry"], card["psn"], card["service_code"]) == (
            spec.pan, spec.expiry, spec.psn, spec.service_code
        )
        assert (card["cvn"], card["scheme"], card["currency"], card["behavior"]) == (
            spec.cvn, spec.scheme, spec.currency, spec.behavior
        )
        assert card["interfaces"] == [i.value for i in spec.interfaces]
        assert card["imk_ac"] == (catalog.card_imk_ac(spec.card_id) if spec.cvn else None)


def test_every_sandbox_pan_is_luhn_valid_and_unique(sandbox: Snapshot) -> None:
    pans = [card["pan"] for card in sandbox.cards]

    assert all(luhn_valid(pan) for pan in pans), [p for p in pans if not luhn_valid(p)]
    assert len(set(pans)) == len(pans)


def test_a_pan_with_a_wrong_check_digit_is_not_luhn_valid() -> None:
    for spec in catalog.CARDS:
        wrong = spec.pan[:-1] + str((int(spec.pan[-1]) + 1) % 10)
        assert not luhn_valid(wrong), spec.card_id


def test_every_track2_parses_back_to_the_card_it_was_built_from(sandbox: Snapshot) -> None:
    for card in sandbox.cards:
        track = parse_track2(card["track2"])
        assert (track.pan, track.expiry, track.service_code) == (card["pan"], card["expiry"], card["service_code"])


def test_the_printed_pin_is_the_catalog_pin_recovered_from_the_stored_ibm_3624_offset(sandbox: Snapshot) -> None:
    offsets = sandbox.pin_offsets()

    for card in sandbox.cards:
        assert card["pin"] == spec_of(card["id"]).pin
        assert ibm3624_pin_from_offset(catalog.TEST_PVK, card["pan"], offsets[card["id"]]) == card["pin"]


def test_the_printed_cvv2_is_the_visa_cvv_of_pan_and_expiry_under_the_test_cvk(sandbox: Snapshot) -> None:
    for card in sandbox.cards:
        assert card["cvv2"] == cvv2(catalog.TEST_CVK, card["pan"], card["expiry"]), card["id"]


def test_the_cards_cover_every_behaviour_the_issue_names(sandbox: Snapshot) -> None:
    cards = {card["id"]: card for card in sandbox.cards}
    behaviours = {card["behavior"] for card in cards.values()}

    assert {"approve", "insufficient_funds", "blocked", "expired"} <= behaviours
    assert any(c["cvn"] == 10 and "chip" in c["interfaces"] for c in cards.values())
    assert any(c["cvn"] == 18 and "chip" in c["interfaces"] for c in cards.values())
    assert any(c["interfaces"] == ["magstripe"] and c["cvn"] is None and c["imk_ac"] is None for c in cards.values())
    assert any(c.get("funding") == "prepaid" for c in cards.values())
    tokens = [c for c in cards.values() if c.get("token_for")]
    assert tokens, "no phone-wallet token"
    assert all(t["token_for"] in cards and t["pan"] != cards[t["token_for"]]["pan"] for t in tokens)


def test_the_expired_card_is_past_its_expiry_and_the_others_are_not(sandbox: Snapshot) -> None:
    for card in sandbox.cards:
        assert is_expired(card["expiry"], sandbox.today) == (card["behavior"] == "expired"), card["id"]


def test_the_blocked_card_is_stored_blocked_and_the_others_active(sandbox: Snapshot) -> None:
    for card in sandbox.cards:
        assert card["status"] == ("blocked" if card["behavior"] == "blocked" else "active"), card["id"]


def test_available_balances_are_the_catalog_openings_and_a_token_spends_its_funding_card(sandbox: Snapshot) -> None:
    cards = {card["id"]: card for card in sandbox.cards}

    for card_id, card in cards.items():
        spec = spec_of(card_id)
        expected = spec_of(spec.token_for).opening_minor if spec.token_for else spec.opening_minor
        assert card["available_minor"] == expected, card_id


def test_the_insufficient_funds_cards_hold_less_than_the_approving_cards(sandbox: Snapshot) -> None:
    cards = sandbox.cards
    poor = [c["available_minor"] for c in cards if c["behavior"] == "insufficient_funds"]
    rich = [c["available_minor"] for c in cards if c["behavior"] == "approve"]

    assert poor and max(poor) < min(rich)


def test_card_accounts_in_the_ledger_are_owned_by_the_masked_pan(sandbox: Snapshot) -> None:
    owners = {row["owner"] for row in sandbox.balances}

    for spec in catalog.CARDS:
        masked = f"card:{spec.pan[:6]}******{spec.pan[-4:]}"
        assert (masked in owners) == (spec.token_for is None), spec.card_id


def test_listing_cards_or_terminals_under_another_data_key_fails_instead_of_printing_garbage(seeded: App) -> None:
    with seeded.uow(write=False) as uow:
        with pytest.raises(VaultError, match="^pan: cannot be opened with this data key"):
            sandbox_service.list_cards(uow, Vault(OTHER_DATA_KEY))
        with pytest.raises(VaultError, match="^bdk: cannot be opened with this data key"):
            sandbox_service.list_terminals(uow, Vault(OTHER_DATA_KEY))


# --- terminals ---------------------------------------------------------------------------------


def test_every_terminal_has_the_documented_keys_in_the_documented_formats(sandbox: Snapshot) -> None:
    merchants = {m["merchant_id"]: m for m in sandbox.merchants}
    terminals = sandbox.terminals

    assert len(terminals) == len(catalog.TERMINALS)
    for t in terminals:
        where = t.get("terminal_id")
        assert TERMINAL_KEYS <= t.keys(), where
        assert isinstance(t["terminal_id"], str) and len(t["terminal_id"]) == 8, where
        assert isinstance(t["merchant_id"], str) and len(t["merchant_id"]) == 15, where
        assert t["merchant_id"] in merchants, where
        assert re.fullmatch(r"\d{3}", t["currency"]), where
        assert t["currency"] == currency_of(merchants[t["merchant_id"]]["currency"]).numeric, where
        assert HEX32.fullmatch(t["bdk"]) and t["bdk"] == catalog.TEST_BDK, where
        assert HEX20.fullmatch(t["initial_ksn"]), where
        assert int(t["initial_ksn"], 16) & KSN_COUNTER_MASK == 0, where
        assert type(t["mac_required"]) is bool, where
        assert type(t["contactless_cvm_limit_minor"]) is int and t["contactless_cvm_limit_minor"] >= 0, where


def test_a_ksn_with_a_nonzero_counter_fails_the_counter_check() -> None:
    for terminal in catalog.TERMINALS:
        used = f"{int(terminal.initial_ksn, 16) + 1:020X}"
        assert int(used, 16) & KSN_COUNTER_MASK != 0


def test_terminal_and_ksn_ids_are_unique(sandbox: Snapshot) -> None:
    terminals = sandbox.terminals

    assert len({t["terminal_id"] for t in terminals}) == len(terminals)
    assert len({t["initial_ksn"] for t in terminals}) == len(terminals)


def test_every_merchant_has_two_terminals_and_one_that_requires_a_mac(sandbox: Snapshot) -> None:
    terminals = sandbox.terminals

    for merchant in sandbox.merchants:
        own = [t for t in terminals if t["merchant_id"] == merchant["merchant_id"]]
        assert len(own) >= 2, merchant["merchant_id"]
        assert any(t["mac_required"] for t in own), merchant["merchant_id"]
        assert any(not t["mac_required"] for t in own), merchant["merchant_id"]


# --- merchants ---------------------------------------------------------------------------------


def test_there_are_two_merchants_a_cny_cafe_with_mcc_5814_and_a_usd_shop(sandbox: Snapshot) -> None:
    merchants = sandbox.merchants

    assert len(merchants) == 2
    for merchant in merchants:
        assert MERCHANT_KEYS <= merchant.keys()
        assert len(merchant["merchant_id"]) == 15
        assert merchant["api_key"].startswith("sk_test_")
    by_currency = {m["currency"]: m for m in merchants}
    assert set(by_currency) == {"CNY", "USD"}
    assert by_currency["CNY"]["mcc"] == "5814"
    assert by_currency["CNY"]["merchant_id"] == "PPCAFE000000001"
    assert len({m["api_key"] for m in merchants}) == 2


def test_a_merchant_outside_the_catalog_is_listed_without_an_api_key(seeded: App) -> None:
    stranger = dataclasses.replace(catalog.SHOP, merchant_id="PPELSE000000001", name="Elsewhere")
    with seeded.uow() as uow:
        uow.registry.add_merchant(stranger, seeded.clock())
        uow.commit()

    rows = {m["merchant_id"]: m for m in listing(seeded, "merchants")}

    assert rows["PPELSE000000001"]["api_key"] is None
    assert rows["PPCAFE000000001"]["api_key"] is not None


def test_the_store_keeps_only_a_hash_of_each_api_key(sandbox: Snapshot) -> None:
    for merchant in sandbox.merchants:
        assert not any(merchant["api_key"] in text for text in sandbox.dump.texts)
    assert sandbox.dump.cells[("merchant_api_keys", "secret_hash")]


# --- card data at rest ---------------------------------------------------------------------------


def dump_database(app: App) -> Dump:
    """Every value of every column of every paypos table, as stored."""
    dump = Dump([], [], {})
    with app.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                for column, value in row._mapping.items():
                    dump.cells.setdefault((table.name, column), []).append(value)
                    if isinstance(value, str):
                        dump.texts.append(value)
                    elif isinstance(value, bytes | bytearray | memoryview):
                        dump.blobs.append(bytes(value))
    return dump


def test_no_pan_appears_anywhere_in_the_database_in_clear(sandbox: Snapshot) -> None:
    dump = sandbox.dump

    assert dump.blobs, "expected sealed columns"
    for spec in catalog.CARDS:
        assert not any(spec.pan in text for text in dump.texts), spec.card_id
        for form in (spec.pan.encode(), bytes.fromhex(spec.pan)):
            assert not any(form in blob for blob in dump.blobs), spec.card_id


def test_no_issuer_or_terminal_key_appears_anywhere_in_the_database_in_clear(sandbox: Snapshot) -> None:
    dump = sandbox.dump
    keys = [catalog.TEST_BDK, catalog.TEST_CVK, catalog.TEST_PVK] + [
        catalog.card_imk_ac(spec.card_id) for spec in catalog.CARDS if spec.cvn
    ]

    for key in keys:
        for text in dump.texts:
            assert key.upper() not in text.upper()
        for blob in dump.blobs:
            assert bytes.fromhex(key) not in blob
            assert key.upper().encode() not in blob.upper()


def test_pins_and_cvv2s_are_not_stored_only_the_pin_offset_is(sandbox: Snapshot) -> None:
    stored_text = set(sandbox.dump.texts)
    columns = {column for _table, column in sandbox.dump.cells}
    offsets = sandbox.pin_offsets()

    assert not {c for c in columns if "cvv" in c or "cvc" in c or ("pin" in c and c != "pin_offset")}
    for card in sandbox.cards:
        assert card["pin"] not in stored_text, card["id"]
        assert card["cvv2"] not in stored_text, card["id"]
        assert offsets[card["id"]] != card["pin"], card["id"]


def test_each_pan_is_findable_by_its_keyed_lookup_hash_and_only_under_the_same_key(seeded: App) -> None:
    with seeded.uow(write=False) as uow:
        for spec in catalog.CARDS:
            found = uow.registry.find_card_by_pan_hash(seeded.vault.lookup_hash(spec.pan))
            assert found is not None and found.card_id == spec.card_id
            assert found.masked_pan == f"{spec.pan[:6]}******{spec.pan[-4:]}"
        assert uow.registry.find_card_by_pan_hash(Vault(OTHER_DATA_KEY).lookup_hash(catalog.CARDS[0].pan)) is None


def test_a_second_store_seeded_under_another_data_key_lists_the_same_sandbox(sandbox: Snapshot, tmp_path: Path) -> None:
    """Everything printed comes from the catalog, never from a random nonce or the data key."""
    url = f"sqlite:///{tmp_path / 'other.db'}"
    settings = Settings(data_dir=tmp_path, database_url=url)
    other = App(settings=settings, engine=make_engine(url), vault=Vault(OTHER_DATA_KEY), clock=FakeClock())
    try:
        report = init_database(other, sandbox=True)

        assert report is not None and not report.nothing_new
        assert listing(other, "cards") == sandbox.cards
        assert listing(other, "terminals") == sandbox.terminals
        assert listing(other, "merchants") == sandbox.merchants
        assert balances(other) == sandbox.balances
    finally:
        other.close()
