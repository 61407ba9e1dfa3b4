"""`paypos demo`'s payments: a few real ISO 8583 requests through the running host."""

from __future__ import annotations

from dataclasses import dataclass

from paypos.bootstrap import App
from paypos.protocol import emv, iso8583
from paypos.services import sandbox as sandbox_service
from paypos.terminal.simulator import IsoClient, SoftTerminal


@dataclass(frozen=True)
class DemoPayment:
    what: str
    terminal_id: str
    card_id: str
    amount_minor: int
    response: dict[str, str]


def _terminals_and_cards(app: App) -> tuple[dict[str, SoftTerminal], dict[str, dict]]:
    """Sandbox credentials; counters continue from what the host has seen (the terminal's
    own persistent store arrives with the cashier app)."""
    with app.uow(write=False) as uow:
        cards = {c["id"]: c for c in sandbox_service.list_cards(uow, app.vault)}
        terminals = {}
        atcs: dict[str, int] = {}  # a card's ATC is the card's, whichever terminal reads it
        for row in sandbox_service.list_terminals(uow, app.vault):
            state = uow.host.terminal_state(row["terminal_id"], app.clock())
            terminals[row["terminal_id"]] = SoftTerminal(
                row["terminal_id"], row["merchant_id"], row["currency"], row["bdk"], row["initial_ksn"],
                row["mac_required"], counter=max(state.ksn_counter_last, 0),
                stan=max(state.ksn_counter_last, 0) % 900_000, atcs=atcs,
            )
        for card_id in cards:
            atcs[card_id] = max(uow.host.card_state(card_id, app.clock(), 3).atc_last, 0)
    return terminals, cards


def _sale(t: SoftTerminal, card: dict, amount: int, entry: str, pin: str | None, cvm: bytes | None = None) -> bytes:
    fields = {"3": "000000", "4": f"{amount:012d}", "22": entry, "23": card["psn"].zfill(3), "35": card["track2"]}
    if card["cvn"]:
        fields["55"] = emv.encode_field_55(t.icc(card, amount, cvm=cvm))
    return t.message("0200", fields, pin=pin, pan=card["pan"])


def run_demo_payments(app: App, host: str, port: int) -> list[DemoPayment]:
    terminals, cards = _terminals_and_cards(app)
    cafe, cafe_mac = terminals["CAFE0001"], terminals["CAFE0002"]
    plan = [
        ("chip + online PIN", cafe, "visa-cvn18-approve", 2_500, "051", "1234", None),
        ("contactless tap, no PIN", cafe, "visa-cvn18-approve", 1_250, "072", None, None),
        ("phone wallet, CDCVM", cafe, "phone-wallet-token-approve", 150_000, "072", None, bytes.fromhex("010002")),
        ("chip, MAC terminal", cafe_mac, "visa-cvn10-approve", 8_800, "052", None, None),
        ("magstripe swipe + PIN", cafe, "mastercard-magstripe-approve", 4_200, "021", "4321", None),
        ("insufficient funds", cafe, "visa-cvn18-insufficient-funds", 5_000, "051", "1234", None),
        ("wrong PIN", cafe, "visa-cvn10-approve", 3_000, "051", "9999", None),
        ("right PIN again", cafe, "visa-cvn10-approve", 3_000, "051", "1234", None),
    ]
    client = IsoClient(host, port)
    done: list[DemoPayment] = []
    try:
        sign_on = cafe.message("0800", {"70": "001"})
        done.append(DemoPayment("sign-on", cafe.terminal_id, "", 0, client.exchange(sign_on)))
        for what, terminal, card_id, amount, entry, pin, cvm in plan:
            raw = _sale(terminal, cards[card_id], amount, entry, pin, cvm)
            done.append(DemoPayment(what, terminal.terminal_id, card_id, amount, client.exchange(raw)))
        done.append(_reverse(client, cafe_mac, done[4]))
    finally:
        client.close()
    return done


def _reverse(client: IsoClient, terminal: SoftTerminal, sale: DemoPayment) -> DemoPayment:
    original = iso8583.OriginalData("0200", sale.response["11"], sale.response["7"], "0", "0")
    raw = terminal.message("0400", {"3": "000000", "4": f"{sale.amount_minor:012d}",
                                    "90": iso8583.format_original_data_elements(original)})
    return DemoPayment(f"reversal of '{sale.what}'", terminal.terminal_id, sale.card_id, sale.amount_minor,
                       client.exchange(raw))
