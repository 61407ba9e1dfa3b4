"""Acceptance (issue 3): the real `paypos serve` over TCP, driven by an independent terminal.

One host per module: a fresh SQLite sandbox (`paypos init --sandbox`), `paypos serve` on free
ports. The terminal (`iso_client`) is written on pyiso8583, pydukpt, psec and pyemv and
imports nothing from paypos; all it knows of the host is the wire profile and the sandbox
JSON. After each scenario `paypos ledger check` must pass and `paypos ledger balances --json`
must show exactly the expected movements: cardholder → merchant pending for a sale, 0.60 %
of it (rounded half up) merchant pending → the platform's fees revenue.

Sandbox terminals: CAFE0001 (CNY, no MAC), CAFE0002 (CNY, MAC required), SHOP0002 (USD, MAC
required; only the reconciliation test uses it, so its batch is that test's alone).
"""

from __future__ import annotations
from tests.e2e.hostproc import running_host

import json
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from iso_client import (
    CVM_CDCVM,
    CVM_NONE,
    CVM_ONLINE_PIN,
    TX_BALANCE,
    TX_REFUND,
    Card,
    Chip,
    Connection,
    Message,
    Response,
    Terminal,
    TerminalConfig,
    field_55,
    original_data_elements,
    transmission_datetime,
)

if TYPE_CHECKING:
    from conftest import PayposCli

MDR = Decimal("0.0060")  # the platform's merchant fee: 0.60 %, rounded half up
CURRENCY_ALPHA = {"156": "CNY", "840": "USD"}
ACCOUNT_CODE = {"debit": "cardholder_funds", "credit": "credit_line", "prepaid": "prepaid_balance"}
UNISSUED_PAN = "4761739001099997"  # Luhn-valid, in the sandbox BIN, never issued


# --- the host process -------------------------------------------------------------------


@dataclass
class Books:
    """The ledger as the CLI shows it; `settle` checks it and reports what moved since last time."""

    cli: PayposCli
    data_dir: Path
    last: dict[str, int] | None = None

    def _run(self, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
        return self.cli.run_many([[*command, "--data-dir", str(self.data_dir)] for command in commands])

    @staticmethod
    def _positions(balances_json: str) -> dict[str, int]:
        positions = {}
        for row in json.loads(balances_json):
            name = f"{row['owner']} {row['code']} {row['currency']}"
            positions[name] = row["credits_posted"] - row["debits_posted"]
            positions[f"{name} pending"] = row["credits_pending"] - row["debits_pending"]
        return positions

    def snapshot(self) -> None:
        (balances,) = self._run(("ledger", "balances", "--json"))
        assert balances.returncode == 0, balances.stderr
        self.last = self._positions(balances.stdout)

    def settle(self) -> dict[str, int]:
        """`paypos ledger check` (must exit 0) and the non-zero movements since the last call."""
        check, balances = self._run(("ledger", "check"), ("ledger", "balances", "--json"))
        assert check.returncode == 0, check.stdout + check.stderr
        assert balances.returncode == 0, balances.stderr
        before, self.last = self.last or {}, self._positions(balances.stdout)
        moved = {name: value - before.get(name, 0) for name, value in self.last.items()}
        return {name: delta for name, delta in moved.items() if delta}

    def cards(self) -> dict[str, dict[str, object]]:
        (cards,) = self._run(("sandbox", "cards", "--json"))
        assert cards.returncode == 0, cards.stderr
        return {card["id"]: card for card in json.loads(cards.stdout)}


@dataclass
class Host:
    iso_port: int
    books: Books
    cards: dict[str, Card]
    terminals: dict[str, Terminal]
    chips: dict[str, Chip] = field(default_factory=dict)
    books_current: bool = False  # the books' last snapshot is still the ledger's state

    def connect(self) -> Connection:
        return Connection("127.0.0.1", self.iso_port)

    def chip(self, card_id: str) -> Chip:
        return self.chips.setdefault(card_id, Chip(self.cards[card_id]))


@pytest.fixture(scope="module")
def host(cli: PayposCli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    work = tmp_path_factory.mktemp("iso-host")
    data_dir = work / "data"
    init = cli.run("init", "--sandbox", "--data-dir", str(data_dir))
    assert init.returncode == 0, init.stderr
    # A card of its own for the PIN-blocking test, so no other scenario depends on its PIN.
    fresh, cards, terminals = cli.run_many([
        ["sandbox", "add-cards", "1", "--cvn", "18", "--json", "--data-dir", str(data_dir)],
        ["sandbox", "cards", "--json", "--data-dir", str(data_dir)],
        ["sandbox", "terminals", "--json", "--data-dir", str(data_dir)],
    ])
    for result in (fresh, cards, terminals):
        assert result.returncode == 0, result.stderr
    card_rows = json.loads(cards.stdout)
    (pin_card,) = json.loads(fresh.stdout)
    card_rows.append({**pin_card, "id": "pin-test-card"})  # known here by its purpose
    with running_host(cli.command, data_dir, work / "serve.log", env=cli.env()) as (iso_port, _http_port):
        yield Host(
            iso_port=iso_port,
            books=Books(cli, data_dir),
            cards={row["id"]: Card.from_json(row) for row in card_rows},
            terminals={row["terminal_id"]: Terminal(TerminalConfig.from_json(row))
                       for row in json.loads(terminals.stdout)},
        )


@pytest.fixture(scope="module")
def link(host: Host) -> Iterator[Connection]:
    """The module's shared connection to the host."""
    with host.connect() as connection:
        yield connection


@pytest.fixture
def books(host: Host, request: pytest.FixtureRequest) -> Iterator[Books]:
    """The ledger, snapshotted before the test: the previous test's last settle, if it passed."""
    failed_before = request.session.testsfailed
    if not host.books_current:
        host.books.snapshot()
    host.books_current = False
    yield host.books
    # A failed test may have stopped between a posting and its settle: snapshot again next time.
    host.books_current = request.session.testsfailed == failed_before


# --- expected movements -------------------------------------------------------------------


def fee(amount_minor: int) -> int:
    return int((Decimal(amount_minor) * MDR).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def card_account(host: Host, card_id: str) -> str:
    card = host.cards[card_id]
    funding = host.cards[card.token_for] if card.token_for else card
    pan = funding.pan
    return f"card:{pan[:6]}{'*' * (len(pan) - 10)}{pan[-4:]} {ACCOUNT_CODE[funding.funding]} " \
           f"{CURRENCY_ALPHA[funding.currency]}"


def merchant_pending(terminal: Terminal) -> str:
    return f"merchant:{terminal.config.merchant_id} merchant_pending {CURRENCY_ALPHA[terminal.config.currency]}"


def fees_revenue(terminal: Terminal) -> str:
    return f"platform fees_revenue {CURRENCY_ALPHA[terminal.config.currency]}"


def total(*movements: Mapping[str, int]) -> dict[str, int]:
    summed: dict[str, int] = {}
    for movement in movements:
        for name, delta in movement.items():
            summed[name] = summed.get(name, 0) + delta
    return {name: delta for name, delta in summed.items() if delta}


def negated(movement: Mapping[str, int]) -> dict[str, int]:
    return {name: -delta for name, delta in movement.items()}


def sale(host: Host, terminal: Terminal, card_id: str, amount: int) -> dict[str, int]:
    """A posted sale: the card pays the amount, the merchant keeps it less the fee."""
    return total({card_account(host, card_id): -amount, merchant_pending(terminal): amount - fee(amount),
                  fees_revenue(terminal): fee(amount)})


def hold(host: Host, terminal: Terminal, card_id: str, amount: int) -> dict[str, int]:
    """A pending pre-authorization: card → merchant pending, nothing posted."""
    return {f"{card_account(host, card_id)} pending": -amount, f"{merchant_pending(terminal)} pending": amount}


def refund(host: Host, terminal: Terminal, card_id: str, amount: int) -> dict[str, int]:
    return {card_account(host, card_id): amount, merchant_pending(terminal): -amount}


# --- requests ----------------------------------------------------------------------------


def card_request(host: Host, terminal: Terminal, card_id: str, amount: int, entry: str, *,
                 mti: str = "0200", processing_code: str = "000000", field_4: int | None = None,
                 chip: Mapping[str, bytes] | None = None, pin: bool | None = None,
                 extra: Mapping[str, str] | None = None, mac: bool | None = None) -> Message:
    """A card-present request: track 2 in 35, chip data in 55 (with PSN in 23), PIN per field 22."""
    card = host.cards[card_id]
    fields = {"3": processing_code, "4": f"{amount if field_4 is None else field_4:012d}", "22": entry,
              "35": card.track2, **(extra or {})}
    if chip is not None:
        fields.update({"23": card.field_23, "55": field_55(chip)})
    with_pin = entry.endswith("1") if pin is None else pin
    return terminal.message(mti, fields, pin=(card.pin, card.pan) if with_pin else None, mac=mac)


def arqc(host: Host, terminal: Terminal, card_id: str, amount: int, **options: object) -> dict[str, bytes]:
    return host.chip(card_id).generate_arqc(amount, terminal.config.currency, **options)  # type: ignore[arg-type]


def purchase(host: Host, link: Connection, terminal: Terminal, card_id: str, amount: int, *,
             entry: str = "052", mti: str = "0200") -> tuple[Message, Response]:
    """A chip purchase (or pre-authorization) that must be approved with a verified ARPC."""
    tags = arqc(host, terminal, card_id, amount, cvm_results=CVM_ONLINE_PIN if entry.endswith("1") else CVM_NONE)
    message = card_request(host, terminal, card_id, amount, entry, mti=mti, chip=tags)
    response = link.request(message)
    assert response.code == "00", response.fields
    assert response.tag_91 is not None, response.fields
    assert host.chip(card_id).issuer_approves(tags, response.tag_91)
    return message, response


def original_of(message: Message) -> str:
    return original_data_elements(message.mti, message.fields["11"], message.fields["7"])


def reversal(terminal: Terminal, original: Message, mti: str = "0400") -> Message:
    return terminal.message(mti, {"3": original.fields["3"], "4": original.fields["4"], "90": original_of(original)})


# --- network management ---------------------------------------------------------------------


def test_sign_on_echo_and_sign_off_are_answered_0810_with_00_with_or_without_a_mac(
    host: Host, link: Connection
) -> None:
    answers = {}
    for terminal_id in ("CAFE0001", "CAFE0002"):
        terminal = host.terminals[terminal_id]
        for code, name in (("001", "sign-on"), ("301", "echo"), ("002", "sign-off"), ("001", "sign-on again")):
            response = link.request(terminal.message("0800", {"70": code}))
            answers[f"{terminal_id} {name}"] = (response.fields["t"], response.code, response.fields.get("70"))
    unsigned = link.request(host.terminals["CAFE0002"].message("0800", {"70": "301"}, mac=False))

    assert answers == {f"{t} {n}": ("0810", "00", c) for t in ("CAFE0001", "CAFE0002")
                       for c, n in (("001", "sign-on"), ("301", "echo"), ("002", "sign-off"), ("001", "sign-on again"))}
    assert (unsigned.fields["t"], unsigned.code) == ("0810", "00")


# --- approvals ---------------------------------------------------------------------------------

# (terminal, card, amount, field 22, CVM results in 9F34, or None for a magnetic stripe swipe).
# Amounts ending in 250/750 make the 0.60 % fee end in exactly half a minor unit (rounded up).
APPROVALS = [
    pytest.param("CAFE0001", "visa-cvn18-approve", 2750, "051", CVM_ONLINE_PIN, id="chip CVN 18 with online PIN"),
    pytest.param("CAFE0002", "visa-cvn10-approve", 1250, "052", CVM_NONE, id="chip CVN 10 on the MAC terminal"),
    pytest.param("CAFE0002", "unionpay-prepaid-approve", 5250, "051", CVM_ONLINE_PIN,
                 id="prepaid chip CVN 18 with online PIN on the MAC terminal"),
    pytest.param("CAFE0001", "visa-cvn18-approve", 4750, "072", CVM_NONE,
                 id="contactless under the CVM limit without PIN"),
    pytest.param("CAFE0002", "visa-cvn18-approve", 100250, "071", CVM_ONLINE_PIN,
                 id="contactless over the CVM limit with online PIN"),
    pytest.param("CAFE0001", "phone-wallet-token-approve", 100750, "072", CVM_CDCVM,
                 id="phone wallet token over the CVM limit with CDCVM"),
    pytest.param("CAFE0001", "mastercard-magstripe-approve", 3250, "021", None, id="swipe with online PIN"),
    pytest.param("CAFE0002", "mastercard-magstripe-approve", 250, "022", None,
                 id="swipe without PIN on the MAC terminal"),
]


@pytest.mark.parametrize(("terminal_id", "card_id", "amount", "entry", "cvm"), APPROVALS)
def test_each_card_type_and_interface_is_approved_and_moves_the_amount_less_the_fee_to_the_merchant(
    host: Host, link: Connection, books: Books, terminal_id: str, card_id: str, amount: int, entry: str,
    cvm: bytes | None,
) -> None:
    terminal = host.terminals[terminal_id]
    tags = arqc(host, terminal, card_id, amount, cvm_results=cvm) if cvm is not None else None
    message = card_request(host, terminal, card_id, amount, entry, chip=tags)

    response = link.request(message)

    assert response.code == "00", response.fields
    assert response.fields["t"] == "0210"
    assert {k: response.fields[k] for k in ("3", "4", "7", "11", "41", "42", "49")} == \
        {k: message.fields[k] for k in ("3", "4", "7", "11", "41", "42", "49")}
    assert len(response.rrn or "") == 12 and len(response.approval_code or "") == 6, response.fields
    assert response.mac_verified is terminal.config.mac_required
    if tags is not None:
        assert response.tag_91 is not None, "chip approvals carry issuer authentication data (tag 91)"
        assert host.chip(card_id).issuer_approves(tags, response.tag_91)
    assert books.settle() == sale(host, terminal, card_id, amount)


# --- declines ---------------------------------------------------------------------------------


def test_cryptogram_checks_decline_a_tampered_arqc_an_amount_other_than_field_4_and_a_replayed_atc_with_05(
    host: Host, link: Connection, books: Books
) -> None:
    terminal, card_id = host.terminals["CAFE0001"], "visa-cvn18-approve"
    tampered = arqc(host, terminal, card_id, 1000, cvm_results=CVM_NONE, tamper=True)
    other_amount = arqc(host, terminal, card_id, 1000, cvm_results=CVM_NONE)
    approved, _ = purchase(host, link, terminal, card_id, 750)
    atc = host.chip(card_id).atc
    replayed = arqc(host, terminal, card_id, 750, cvm_results=CVM_NONE, atc=atc)  # same ATC, fresh UN

    codes = {
        "tampered ARQC": link.request(card_request(host, terminal, card_id, 1000, "052", chip=tampered)).code,
        "9F02 is not field 4": link.request(card_request(host, terminal, card_id, 1000, "052",
                                                         field_4=1250, chip=other_amount)).code,
        "replayed ATC": link.request(card_request(host, terminal, card_id, 750, "052", chip=replayed)).code,
    }

    assert codes == {"tampered ARQC": "05", "9F02 is not field 4": "05", "replayed ATC": "05"}
    assert books.settle() == sale(host, terminal, card_id, 750)


def test_card_checks_decline_14_51_54_57_and_62_and_post_nothing(host: Host, link: Connection, books: Books) -> None:
    cafe = host.terminals["CAFE0001"]

    issuer_said: dict[str, bool] = {}  # card id: what a tag 91 in the decline told the card

    def chip_sale(card_id: str, amount: int, entry: str = "052") -> str:
        tags = arqc(host, cafe, card_id, amount, cvm_results=CVM_NONE)
        response = link.request(card_request(host, cafe, card_id, amount, entry, chip=tags))
        if response.tag_91 is not None:
            issuer_said[card_id] = host.chip(card_id).issuer_approves(tags, response.tag_91)
        return response.code

    unissued = cafe.message("0200", {"3": "000000", "4": f"{1000:012d}", "22": "022",
                                     "35": f"{UNISSUED_PAN}=30122010000000000"})
    codes = {
        "unknown PAN": link.request(unissued).code,
        "insufficient funds": chip_sale("visa-cvn18-insufficient-funds", 2000),
        "expired card": chip_sale("visa-cvn18-expired", 1000),
        "card in another currency": chip_sale("visa-usd-cvn18-approve", 1000),
        "interface not on the card": chip_sale("visa-cvn10-approve", 1000, entry="072"),
        "blocked card": chip_sale("visa-cvn18-blocked", 1000),
    }

    assert codes == {"unknown PAN": "14", "insufficient funds": "51", "expired card": "54",
                     "card in another currency": "57", "interface not on the card": "57", "blocked card": "62"}
    # The ARQC of the 51 verified, so the card gets issuer authentication data; it must decline.
    assert issuer_said == {"visa-cvn18-insufficient-funds": False}
    assert books.settle() == {}


def test_a_wrong_pin_is_55_the_third_wrong_pin_is_75_and_then_even_the_right_pin_gets_75(
    host: Host, link: Connection, books: Books
) -> None:
    terminal, card_id = host.terminals["CAFE0002"], "pin-test-card"
    card = host.cards[card_id]
    wrong = "0000" if card.pin != "0000" else "1111"

    def with_pin(pin: str) -> str:
        tags = arqc(host, terminal, card_id, 1000, cvm_results=CVM_ONLINE_PIN)
        fields = {"3": "000000", "4": f"{1000:012d}", "22": "051", "23": card.field_23, "35": card.track2,
                  "55": field_55(tags)}
        return link.request(terminal.message("0200", fields, pin=(pin, card.pan))).code

    codes = [with_pin(wrong), with_pin(wrong), with_pin(wrong), with_pin(card.pin)]

    assert codes == ["55", "55", "75", "75"]
    assert books.settle() == {}


def test_an_unknown_terminal_is_58_and_a_bad_missing_or_replayed_mac_key_is_63_posting_nothing(
    host: Host, link: Connection, books: Books
) -> None:
    mac_terminal = host.terminals["CAFE0002"]
    stranger = Terminal(replace(host.terminals["CAFE0001"].config, terminal_id="NOSUCH01"))

    def swipe(terminal: Terminal, mac: bool | None = None) -> Message:
        return card_request(host, terminal, "mastercard-magstripe-approve", 1000, "022", mac=mac)

    signed = swipe(mac_terminal)
    forged_mac = signed.raw[:-16] + (b"0" if signed.raw[-16:-15] != b"0" else b"1") + signed.raw[-15:]
    bad_mac = Message(signed.fields, forged_mac, signed.ksn, signed.mac_response_key, None)
    echo = mac_terminal.message("0800", {"70": "301"})  # signed: the host records its KSN counter
    reused_ksn = swipe(mac_terminal, mac=False)  # then a sale signed under that same KSN again
    reused_ksn = mac_terminal.sign(reused_ksn.fields, mac=True, ksn=echo.ksn)

    codes = {
        "unknown terminal": link.request(swipe(stranger)).code,
        "bad MAC": link.request(bad_mac).code,
        "missing MAC": link.request(swipe(mac_terminal, mac=False)).code,
        "signed echo": link.request(echo).code,
        "KSN counter not above the last": link.request(reused_ksn).code,
    }

    assert codes == {"unknown terminal": "58", "bad MAC": "63", "missing MAC": "63", "signed echo": "00",
                     "KSN counter not above the last": "63"}
    assert books.settle() == {}


def test_a_zero_amount_is_13_contactless_over_the_cvm_limit_without_cvm_is_65_and_processing_code_400000_is_12(
    host: Host, link: Connection, books: Books
) -> None:
    cafe, mac_terminal, card_id = host.terminals["CAFE0001"], host.terminals["CAFE0002"], "visa-cvn18-approve"
    over_limit = cafe.config.contactless_cvm_limit_minor + 500
    zero = card_request(host, cafe, card_id, 0, "052", chip=arqc(host, cafe, card_id, 0, cvm_results=CVM_NONE))
    no_cvm = card_request(host, cafe, card_id, over_limit, "072",
                          chip=arqc(host, cafe, card_id, over_limit, cvm_results=CVM_NONE))
    transfer = card_request(host, mac_terminal, "mastercard-magstripe-approve", 1000, "022", processing_code="400000")

    codes = {"zero amount": link.request(zero).code, "no CVM over the limit": link.request(no_cvm).code,
             "unsupported processing code": link.request(transfer).code}

    assert codes == {"zero amount": "13", "no CVM over the limit": "65", "unsupported processing code": "12"}
    assert books.settle() == {}


def test_a_garbled_field_gets_30_and_unreadable_garbage_closes_the_connection_posting_nothing(
    host: Host, link: Connection, books: Books
) -> None:
    cafe = host.terminals["CAFE0001"]
    # Field 4 is n12: a letter in it is a format error; MTI, 11 and 41 still read.
    garbled = card_request(host, cafe, "mastercard-magstripe-approve", 1000, "022",
                           extra={"4": "00000000Z000"})

    answer = link.request(garbled)
    with host.connect() as doomed:
        doomed.send_raw(b"\xff\xfe not ISO 8583 at all \x00\x01")
        closed = doomed.read_frame() is None

    assert (answer.fields["t"], answer.code, answer.fields["11"], answer.fields["41"]) == \
        ("0210", "30", garbled.fields["11"], "CAFE0001")
    assert closed, "garbage without a readable MTI/11/41 must close the connection"
    assert books.settle() == {}


def test_the_same_terminal_stan_and_transmission_time_with_different_content_is_94(
    host: Host, link: Connection, books: Books
) -> None:
    terminal, card_id = host.terminals["CAFE0001"], "visa-cvn18-approve"
    original, _ = purchase(host, link, terminal, card_id, 1750)
    tags = arqc(host, terminal, card_id, 2250, cvm_results=CVM_NONE)
    changed = card_request(host, terminal, card_id, 2250, "052", chip=tags,
                           extra={"11": original.fields["11"], "7": original.fields["7"]})

    assert link.request(changed).code == "94"
    assert books.settle() == sale(host, terminal, card_id, 1750)


# --- duplicates -----------------------------------------------------------------------------


def test_an_exact_retransmission_even_under_a_fresh_ksn_and_mac_gets_the_identical_answer_and_posts_once(
    host: Host, link: Connection, books: Books
) -> None:
    terminal, card_id = host.terminals["CAFE0002"], "visa-cvn18-approve"
    first_message, first = purchase(host, link, terminal, card_id, 1250, entry="051")

    again = link.request(first_message)  # byte for byte
    fresh_envelope = terminal.resend(first_message)  # new KSN, PIN block and MAC
    resent = link.request(fresh_envelope)

    def business(response: Response) -> dict[str, str]:
        return {k: v for k, v in response.fields.items() if k not in ("64", "128")}

    assert fresh_envelope.raw != first_message.raw
    assert again.raw == first.raw
    assert business(resent) == business(first)
    assert resent.mac_verified, "the repeated answer is signed under the retransmission's own KSN"
    assert books.settle() == sale(host, terminal, card_id, 1250)


# --- reversals ------------------------------------------------------------------------------


def test_a_reversal_after_an_approved_purchase_restores_the_card_balance_and_removes_the_fee(
    host: Host, link: Connection, books: Books
) -> None:
    terminal, card_id = host.terminals["CAFE0001"], "visa-cvn18-approve"
    original, _ = purchase(host, link, terminal, card_id, 2750, entry="051")
    assert books.settle() == sale(host, terminal, card_id, 2750)
    undo = reversal(terminal, original)

    answer = link.request(undo)
    repeated = link.request(undo)

    assert (answer.fields["t"], answer.code) == ("0410", "00")
    assert repeated.code == "00" and repeated.rrn == answer.rrn
    assert books.settle() == negated(sale(host, terminal, card_id, 2750))


def test_a_reversal_sent_before_its_original_gets_21_and_the_late_original_is_refused_and_not_posted(
    host: Host, link: Connection, books: Books
) -> None:
    terminal, card_id = host.terminals["CAFE0001"], "visa-cvn18-approve"
    stan, sent_at = terminal.next_stan(), transmission_datetime()
    tags = arqc(host, terminal, card_id, 1500, cvm_results=CVM_NONE)
    late = card_request(host, terminal, card_id, 1500, "052", chip=tags, extra={"11": stan, "7": sent_at})

    early_reversal = link.request(reversal(terminal, late))
    late_original = link.request(late)

    assert (early_reversal.fields["t"], early_reversal.code) == ("0410", "21")
    assert late_original.code != "00", late_original.fields
    assert books.settle() == {}


def test_a_reversal_advice_0420_undoes_an_approved_purchase_on_the_mac_terminal(
    host: Host, link: Connection, books: Books
) -> None:
    terminal, card_id = host.terminals["CAFE0002"], "visa-cvn10-approve"
    original, _ = purchase(host, link, terminal, card_id, 3750)
    assert books.settle() == sale(host, terminal, card_id, 3750)

    advice = link.request(reversal(terminal, original, mti="0420"))

    assert (advice.fields["t"], advice.code, advice.mac_verified) == ("0430", "00", True)
    assert books.settle() == negated(sale(host, terminal, card_id, 3750))


def test_reversing_a_pre_authorization_voids_its_hold(host: Host, link: Connection, books: Books) -> None:
    terminal, card_id = host.terminals["CAFE0001"], "visa-cvn10-approve"
    preauth, answer = purchase(host, link, terminal, card_id, 6000, mti="0100")
    assert answer.fields["t"] == "0110"
    assert books.settle() == hold(host, terminal, card_id, 6000)

    voided = link.request(reversal(terminal, preauth))

    assert voided.code == "00"
    assert books.settle() == negated(hold(host, terminal, card_id, 6000))


# --- pre-authorization and completion -------------------------------------------------------------


def test_a_pre_authorization_completed_for_less_releases_the_hold_and_posts_only_the_completed_amount_and_fee(
    host: Host, link: Connection, books: Books
) -> None:
    terminal, card_id = host.terminals["CAFE0002"], "visa-cvn18-approve"
    preauth, _ = purchase(host, link, terminal, card_id, 7250, mti="0100", entry="051")
    assert books.settle() == hold(host, terminal, card_id, 7250)

    completion = link.request(terminal.message("0220", {"3": "000000", "4": f"{5250:012d}",
                                                        "90": original_of(preauth)}))

    assert (completion.fields["t"], completion.code, completion.mac_verified) == ("0230", "00", True)
    assert books.settle() == total(negated(hold(host, terminal, card_id, 7250)),
                                   sale(host, terminal, card_id, 5250))


# --- refunds ----------------------------------------------------------------------------------


def test_a_refund_with_the_original_rrn_returns_at_most_the_unrefunded_amount(
    host: Host, link: Connection, books: Books
) -> None:
    terminal, card_id = host.terminals["CAFE0001"], "visa-cvn18-approve"
    _, sold = purchase(host, link, terminal, card_id, 4250)
    assert books.settle() == sale(host, terminal, card_id, 4250)

    def refund_of(amount: int) -> str:
        tags = arqc(host, terminal, card_id, amount, cvm_results=CVM_NONE, tx_type=TX_REFUND)
        message = card_request(host, terminal, card_id, amount, "052", processing_code="200000", chip=tags,
                               extra={"37": sold.rrn or ""})
        return link.request(message).code

    codes = [refund_of(3000), refund_of(1500), refund_of(1250), refund_of(1)]

    assert codes == ["00", "13", "00", "13"]  # 4250 sold: 3000 back, 1500 > 1250 left, 1250 back, nothing left
    assert books.settle() == refund(host, terminal, card_id, 4250)


def test_a_standalone_refund_without_an_rrn_is_limited_by_merchant_available_so_a_fresh_sandbox_gets_51(
    host: Host, link: Connection, books: Books
) -> None:
    terminal, card_id = host.terminals["CAFE0001"], "visa-cvn18-approve"
    tags = arqc(host, terminal, card_id, 1000, cvm_results=CVM_NONE, tx_type=TX_REFUND)

    answer = link.request(card_request(host, terminal, card_id, 1000, "052", processing_code="200000", chip=tags))

    assert answer.code == "51"
    assert books.settle() == {}


# --- balance inquiry ----------------------------------------------------------------------------


def test_a_balance_inquiry_on_the_prepaid_card_returns_its_available_balance_in_field_54_and_a_debit_card_gets_57(
    host: Host, link: Connection, books: Books
) -> None:
    terminal = host.terminals["CAFE0001"]
    available = books.cards()["unionpay-prepaid-approve"]["available_minor"]

    def inquiry(card_id: str) -> tuple[Response, dict[str, bytes]]:
        tags = arqc(host, terminal, card_id, 0, cvm_results=CVM_ONLINE_PIN, tx_type=TX_BALANCE)
        message = card_request(host, terminal, card_id, 0, "051", processing_code="310000", chip=tags)
        return link.request(message), tags

    prepaid, tags = inquiry("unionpay-prepaid-approve")
    debit, debit_tags = inquiry("visa-cvn18-approve")

    assert prepaid.code == "00", prepaid.fields
    # Field 54: account type 00, amount type 02 (available), currency, C (credit), 12 digits.
    assert prepaid.fields["54"] == f"0002156C{available:012d}"
    assert prepaid.tag_91 is not None
    assert host.chip("unionpay-prepaid-approve").issuer_approves(tags, prepaid.tag_91)
    assert debit.code == "57"
    assert debit.tag_91 is None or not host.chip("visa-cvn18-approve").issuer_approves(debit_tags, debit.tag_91)
    assert books.settle() == {}


# --- reconciliation ---------------------------------------------------------------------------


def test_reconciliation_with_the_hosts_batch_totals_closes_the_batch_and_a_mismatch_gets_95_with_the_hosts_totals(
    host: Host, link: Connection, books: Books
) -> None:
    terminal, card_id = host.terminals["SHOP0002"], "visa-usd-cvn18-approve"
    _, first = purchase(host, link, terminal, card_id, 2750)
    purchase(host, link, terminal, card_id, 1250)
    reversed_sale, _ = purchase(host, link, terminal, card_id, 750)
    assert link.request(reversal(terminal, reversed_sale)).code == "00"
    tags = arqc(host, terminal, card_id, 1000, cvm_results=CVM_NONE, tx_type=TX_REFUND)
    refunded = link.request(card_request(host, terminal, card_id, 1000, "052", processing_code="200000", chip=tags,
                                         extra={"37": first.rrn or ""}))
    assert refunded.code == "00"
    # The terminal's own batch: 1 credit (refund) of 1000; 2 debits of 4000 (the reversed sale is out).
    batch = {"74": f"{1:010d}", "76": f"{2:010d}", "86": f"{1000:016d}", "88": f"{4000:016d}"}

    mismatch = link.request(terminal.message("0500", {**batch, "88": f"{4001:016d}"}))
    matched = link.request(terminal.message("0500", batch))
    empty = link.request(terminal.message("0500", {"74": f"{0:010d}", "76": f"{0:010d}", "86": f"{0:016d}",
                                                   "88": f"{0:016d}"}))

    assert (mismatch.fields["t"], mismatch.code, mismatch.mac_verified) == ("0510", "95", True)
    assert {k: mismatch.fields.get(k) for k in batch} == batch
    assert (matched.code, empty.code) == ("00", "00")
    assert books.settle() == total(sale(host, terminal, card_id, 2750), sale(host, terminal, card_id, 1250),
                                   refund(host, terminal, card_id, 1000))


# --- many requests in flight ----------------------------------------------------------------------


def test_many_requests_in_flight_on_one_connection_are_each_answered_and_matched_by_stan_and_terminal(
    host: Host, books: Books
) -> None:
    cafe, mac_terminal = host.terminals["CAFE0001"], host.terminals["CAFE0002"]
    stranger = Terminal(replace(cafe.config, terminal_id="NOSUCH02"))

    def chip_sale(terminal: Terminal, card_id: str, amount: int) -> Message:
        return card_request(host, terminal, card_id, amount, "052",
                            chip=arqc(host, terminal, card_id, amount, cvm_results=CVM_NONE))

    # Different cards (an ATC only rises) and one signed request per DUKPT terminal (so does a KSN).
    flight = {
        "echo": (cafe.message("0800", {"70": "301"}), "00"),
        "CVN 18 sale": (chip_sale(cafe, "visa-cvn18-approve", 250), "00"),
        "CVN 10 sale": (chip_sale(cafe, "visa-cvn10-approve", 750), "00"),
        "swipe": (card_request(host, cafe, "mastercard-magstripe-approve", 1250, "022"), "00"),
        "zero amount": (card_request(host, cafe, "mastercard-magstripe-approve", 0, "022"), "13"),
        "prepaid on the MAC terminal": (chip_sale(mac_terminal, "unionpay-prepaid-approve", 1750), "00"),
        "unknown terminal": (stranger.message("0800", {"70": "301"}), "58"),
    }
    with host.connect() as connection:
        for message, _ in flight.values():
            connection.send(message)
        answers = {name: connection.wait(message) for name, (message, _) in reversed(flight.items())}

    assert {name: answer.code for name, answer in answers.items()} == {name: code for name, (_, code) in flight.items()}
    for name, (message, _) in flight.items():
        assert answers[name].fields.get("4") == message.fields.get("4"), name
    assert answers["prepaid on the MAC terminal"].mac_verified
    assert books.settle() == total(sale(host, cafe, "visa-cvn18-approve", 250),
                                   sale(host, cafe, "visa-cvn10-approve", 750),
                                   sale(host, cafe, "mastercard-magstripe-approve", 1250),
                                   sale(host, mac_terminal, "unionpay-prepaid-approve", 1750))
