"""`paypos demo`'s payments: real sales through the running host, made by the
terminal engine exactly as a cashier's terminal makes them (its own store,
counters, software cards, receipts)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paypos.terminal.session import open_session


@dataclass(frozen=True)
class DemoPayment:
    what: str
    terminal_id: str
    card_id: str
    amount: str
    outcome: dict[str, Any]


# (what, terminal, card, amount, entry, PIN)
PLAN = [
    ("chip + online PIN", "CAFE0001", "visa-cvn18-approve", "25.00", "chip", "1234"),
    ("contactless tap, no PIN", "CAFE0001", "visa-cvn18-approve", "12.50", "contactless", None),
    ("phone wallet, CDCVM", "CAFE0001", "phone-wallet-token-approve", "1500.00", "contactless", None),
    ("chip + PIN, MAC terminal", "CAFE0002", "visa-cvn10-approve", "88.00", "chip", "1234"),
    ("magstripe swipe + PIN", "CAFE0001", "mastercard-magstripe-approve", "42.00", "swipe", "4321"),
    ("insufficient funds", "CAFE0001", "visa-cvn18-insufficient-funds", "50.00", "chip", "1234"),
    ("wrong PIN", "CAFE0001", "visa-cvn10-approve", "30.00", "chip", "9999"),
    ("right PIN again", "CAFE0001", "visa-cvn10-approve", "30.00", "chip", "1234"),
]


def run_demo_payments(data_dir: Path | None, database_url: str | None, host: str, port: int) -> list[DemoPayment]:
    done: list[DemoPayment] = []
    for what, terminal_id, card_id, amount, entry, pin in PLAN:
        with open_session(data_dir, database_url, terminal_id, host, port) as session:
            if not done:
                sign_on = session.engine.sign_on()
                done.append(DemoPayment("sign-on", terminal_id, "", "", sign_on.as_json()))
            outcome = session.pay(amount, card_id, entry, pin)
            done.append(DemoPayment(what, terminal_id, card_id, amount, outcome))
    mac_sale = next(p for p in done if p.what == "chip + PIN, MAC terminal")
    with open_session(data_dir, database_url, "CAFE0002", host, port) as session:
        voided = session.engine.void(int(mac_sale.outcome["journal_id"])).as_json()
    done.append(DemoPayment("void of the MAC terminal sale", "CAFE0002", mac_sale.card_id, mac_sale.amount, voided))
    return done
