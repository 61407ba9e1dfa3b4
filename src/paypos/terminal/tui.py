"""`paypos terminal` — the cashier's screen: a Textual app on the same engine as the
scriptable `paypos terminal pay …` (:mod:`paypos.terminal.session`). It holds no
payment logic of its own: every key press ends in a ``TerminalSession`` call, run in a
worker thread so the screen stays responsive while the engine talks to the host.

Screens — each stage dismisses itself before the next is pushed, so the stack is always
the home screen plus one stage:

  HomeScreen        sign-on status, the terminal and its limits, the menu
  AmountScreen      keypad (digits, 00, clear, backspace); minor units, shown in the currency
  MethodScreen      insert chip, tap card or phone, swipe, key in, prepaid balance inquiry,
                    show the merchant's collection QR (sales only); scanning the buyer's
                    payment code is shown, disabled, as "coming soon" (use
                    `paypos terminal pay --qr-code`)
  QrScreen          the collection code as a text QR code and its payload, while the engine
                    asks the host whether the buyer paid; escape cancels it
  ReaderScreen      the simulated card reader: the sandbox cards and phones for that interface
  PinScreen         the masked PIN pad — only when the engine's risk decision needs a PIN
  ProcessingScreen  while a request is with the engine
  ResultScreen      APPROVED with approval code and RRN, or the reason in words; the receipt
  JournalScreen     the terminal's journal: refund, void, complete, reprint the selected entry
  TotalsScreen      the open batch's totals
  SettleScreen      end of day: both sides' totals; on a mismatch, the open batch's entries

Keys (stable; the tests and the footer use them):

  home      s sale · p pre-authorization · b prepaid balance · j journal · t batch totals
            e end of day · o sign on · q quit
  amount    0-9 · backspace · delete (clear) · enter (OK) · escape (cancel)
  method    i insert chip · t tap · s swipe · k key in · b prepaid balance · r show QR · escape
  QR        escape (cancel the payment)
  reader    tab / arrows and enter, or click a card · escape
  PIN       0-9 · backspace · delete (clear) · enter (OK) · escape (cancel)
  result    enter / escape (done)
  journal   arrows select · r refund · v void · c complete · p reprint · escape
  totals, end of day   enter / escape

Widget ids: ``#signon-status``, ``#terminal-info``, ``#menu-<item>``; ``#amount``,
``#key-<0-9|00|back|clear|ok|cancel>``; ``#method-<chip|contactless|swipe|manual|balance|
qr-scan|qr-show>``; ``#qr-code``, ``#qr-payload``, ``#qr-status``, ``#qr-cancel``; ``#card-<sandbox card id>``; ``#pin-display``, ``#pin-<0-9|back|clear|ok|
cancel>``; ``#result-status``, ``#result-detail``, ``#result-balance``, ``#receipt``,
``#result-done``; ``#journal-table`` (row key = journal id), ``#journal-<refund|void|complete|
reprint|back>``; ``#totals``; ``#settle-status``, ``#settle-terminal``, ``#settle-host``,
``#settle-entries``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Header, Static

from paypos import limits
from paypos.domain.money import currency as iso_currency
from paypos.domain.money import money
from paypos.terminal.engine import RESPONSE_TEXT, WALLET_ENTRIES, WALLET_QR_TIMEOUT_S_DEFAULT, Outcome, TerminalError
from paypos.terminal.session import PinRequiredError, TerminalSession, TerminalSessionError, open_session
from paypos.terminal.store import JournalEntry

SessionFactory = Callable[[], AbstractContextManager[TerminalSession]]

# The session's words when the risk decision asks for online PIN and none was given.
PIN_DIGITS_MIN, PIN_DIGITS_MAX = 4, 12  # ISO 9564-1: a PIN is 4 to 12 digits
RECEIPTS_KEPT_MAX = 1000  # last receipt per journal id, for reprint without re-rendering
SHUTDOWN_WAIT_S = limits.terminal_response_timeout_s + limits.terminal_connect_timeout_s

KIND_TITLES = {"purchase": "Sale", "preauth": "Pre-authorization", "refund": "Refund",
               "balance": "Prepaid balance inquiry", "completion": "Completion", "void": "Void",
               "reprint": "Reprint"}
READER_INTERFACE = {"chip": "chip", "contactless": "contactless", "swipe": "magstripe", "manual": None}
READER_TITLES = {"chip": "Insert the chip card", "contactless": "Tap a card or a phone",
                 "swipe": "Swipe the card", "manual": "Key in the card number"}
MENU = (("sale", "Sale", "s"), ("preauth", "Pre-authorization", "p"), ("balance", "Prepaid balance", "b"),
        ("journal", "Journal · refund · void", "j"), ("totals", "Batch totals", "t"),
        ("settle", "End of day", "e"), ("signon", "Sign on", "o"), ("quit", "Quit", "q"))
METHODS = (("chip", "Insert chip", "i"), ("contactless", "Tap card or phone", "t"), ("swipe", "Swipe", "s"),
           ("manual", "Key in", "k"), ("balance", "Prepaid balance inquiry", "b"))
QR_SHOW = ("qr-show", "Show collection QR", "r")
QR_SCAN = ("qr-scan", "Scan buyer's code — coming soon")


@dataclass(frozen=True)
class Ticket:
    """One cashier request in progress: what to send once the card (and the PIN) are in."""

    kind: str  # purchase | preauth | refund | balance | completion | void | reprint
    amount_minor: int = 0
    entry: str | None = None
    card_id: str | None = None
    rrn: str | None = None
    journal_id: int | None = None


# --- pure helpers ---------------------------------------------------------------------------


def format_amount(amount_minor: int, currency_code: str) -> str:
    """``CNY 25.00`` from minor units and an ISO 4217 code — integer arithmetic only."""
    return str(money(amount_minor, currency_code))


def readable_cards(cards: Mapping[str, Mapping[str, Any]], entry: str, currency_code: str,
                   *, prepaid_only: bool = False) -> list[Mapping[str, Any]]:
    """The sandbox cards (and phones) a cashier can present on this interface, in this currency."""
    needed = READER_INTERFACE[entry]
    shown = []
    for card in cards.values():
        is_phone = card.get("token_for") is not None
        if card.get("currency") != currency_code or (prepaid_only and card.get("funding") != "prepaid"):
            continue
        if (needed is not None and needed not in card.get("interfaces", ())) or (entry == "manual" and is_phone):
            continue
        shown.append(card)
    return shown


def card_label(card: Mapping[str, Any]) -> Text:
    kind = "phone wallet" if card.get("token_for") else f"{card.get('scheme', '')} {card.get('funding', '')}"
    return Text(f"{card['id']}  ({kind}, **** {str(card.get('pan', ''))[-4:]})")


def journal_actions(entry: JournalEntry, open_batch: int) -> frozenset[str]:
    """What the cashier may do with a journal entry."""
    actions = {"reprint"} if entry.pan_masked else set()
    if entry.status == "pending" and entry.entry in WALLET_ENTRIES and entry.batch_no == open_batch:
        actions.add("void")  # cancel a wallet payment the buyer has not paid (yet)
    if entry.status != "approved":
        return frozenset(actions)
    if entry.kind in ("purchase", "completion") and entry.rrn and entry.card_id and entry.entry:
        actions.add("refund")
    if entry.kind in ("purchase", "preauth", "refund") and entry.batch_no == open_batch:
        actions.add("void")
    if entry.kind == "preauth":
        actions.add("complete")
    return frozenset(actions)


def outcome_of(entry: JournalEntry) -> Outcome:
    """The outcome a journal entry records (for reprinting a receipt not kept in memory)."""
    code = entry.response_code or ""
    approved = entry.status in ("approved", "offline_pending")
    message = RESPONSE_TEXT.get(code, entry.status.upper()) if entry.status != "reversed" else "REVERSED"
    return Outcome(approved, code, message, entry.amount_minor, entry.currency, entry.approval_code, entry.rrn,
                   entry.offline, entry.id)


def verdict(result: Mapping[str, Any]) -> tuple[str, str]:
    """The headline and the line under it: approval code and RRN, or the reason in words."""
    code, message = str(result.get("response_code") or ""), str(result.get("message") or "")
    if result.get("approved"):
        headline = "APPROVED OFFLINE" if result.get("offline") else "VOIDED" if message == "VOIDED" else "APPROVED"
        parts = [f"Approval code {result['approval_code']}" if result.get("approval_code") else "",
                 f"RRN {result['rrn']}" if result.get("rrn") else ""]
        return headline, "  ·  ".join(part for part in parts if part)
    if code and code != "00":
        return "DECLINED", f"{message or RESPONSE_TEXT.get(code, code)} (response code {code})"
    return "NOT COMPLETED", message


def totals_text(totals: Mapping[str, int], currency_code: str, other: Mapping[str, int] | None = None) -> str:
    """A totals block; with ``other``, each line that differs from it is marked ≠."""
    def line(label: str, count: str, amount: str) -> str:
        mark = " ≠" if other is not None and (totals.get(count) != other.get(count)
                                               or totals.get(amount) != other.get(amount)) else ""
        return f"{label:<9}{totals.get(count, 0):>4}  {format_amount(totals.get(amount, 0), currency_code)}{mark}"

    net = totals.get("debits_minor", 0) - totals.get("credits_minor", 0)
    return "\n".join((line("Sales", "debits_count", "debits_minor"), line("Refunds", "credits_count", "credits_minor"),
                      f"{'Net':<9}{'':>4}  {format_amount(net, currency_code)}"))


class Key(Button, can_focus=False):
    """A keypad key: clicked, never focused, so the keyboard always reaches the screen's bindings."""


# --- screens --------------------------------------------------------------------------------


class HomeScreen(Screen[None]):
    BINDINGS = [Binding(key, f"menu('{name}')", label) for name, label, key in MENU]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="pane"):
            yield Static("Opening the terminal…", id="signon-status", classes="heading")
            yield Static("", id="terminal-info")
            with Grid(classes="menu"):
                for name, label, key in MENU:
                    yield Key(f"{label} ({key})", id=f"menu-{name}", disabled=name not in ("signon", "quit"))
        yield Footer()

    def set_status(self, status: str, info: str | None = None, *, ready: bool) -> None:
        self.query_one("#signon-status", Static).update(Text(status))
        if info is not None:
            self.query_one("#terminal-info", Static).update(Text(info))
        for name, _label, _key in MENU:
            self.query_one(f"#menu-{name}", Button).disabled = not ready and name not in ("signon", "quit")
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        app = self.app
        if action == "menu" and parameters and parameters[0] not in ("signon", "quit"):
            return True if isinstance(app, CashierApp) and app.session is not None else None
        return True

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id and event.button.id.startswith("menu-"):
            self.action_menu(event.button.id.removeprefix("menu-"))

    def action_menu(self, name: str) -> None:
        app = self.app
        if isinstance(app, CashierApp) and (app.session is not None or name in ("signon", "quit")):
            app.menu(name)


class AmountScreen(Screen[int | None]):
    """The amount keypad. Dismisses with the amount in minor units, or None (cancelled)."""

    BINDINGS = [*(Binding(d, f"digit('{d}')", d, show=False) for d in "0123456789"),
                Binding("backspace", "back", "Backspace"), Binding("delete", "clear", "Clear"),
                Binding("enter", "ok", "OK"), Binding("escape", "cancel", "Cancel")]

    def __init__(self, heading: str, currency_code: str, *, initial_minor: int = 0,
                 maximum_minor: int = limits.iso_amount_minor_max) -> None:
        super().__init__()
        self.heading, self.currency_code = heading, currency_code
        self.amount_minor, self.maximum_minor = initial_minor, maximum_minor

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="pane"):
            yield Static(Text(self.heading), classes="heading")
            yield Static(self._shown(), id="amount")
            with Grid(classes="keypad"):
                for label in ("1", "2", "3", "4", "5", "6", "7", "8", "9", "00", "0"):
                    yield Key(label, id=f"key-{label}")
                yield Key("⌫", id="key-back")
                yield Key("Clear", id="key-clear", variant="warning")
                yield Key("Cancel", id="key-cancel", variant="error")
                yield Key("OK", id="key-ok", variant="success")
        yield Footer()

    def _shown(self) -> str:
        return format_amount(self.amount_minor, self.currency_code)

    def _set(self, amount_minor: int) -> None:
        self.amount_minor = amount_minor
        self.query_one("#amount", Static).update(self._shown())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        key = (event.button.id or "").removeprefix("key-")
        if key.isdigit():
            self.action_digit(key)
        elif key in ("back", "clear", "ok", "cancel"):
            getattr(self, f"action_{key}")()

    def action_digit(self, digits: str) -> None:
        amount = self.amount_minor * 10 ** len(digits) + int(digits)
        if amount > self.maximum_minor:
            self.app.bell()
            self.notify(f"at most {format_amount(self.maximum_minor, self.currency_code)}", severity="warning")
            return
        self._set(amount)

    def action_back(self) -> None:
        self._set(self.amount_minor // 10)

    def action_clear(self) -> None:
        self._set(0)

    def action_ok(self) -> None:
        if self.amount_minor <= 0:
            self.notify("Enter the amount first", severity="warning")
            return
        self.dismiss(self.amount_minor)

    def action_cancel(self) -> None:
        self.dismiss(None)


class MethodScreen(Screen[str | None]):
    """How the buyer pays. Dismisses with an entry mode, "balance", or None."""

    BINDINGS = [*(Binding(key, f"choose('{name}')", label) for name, label, key in (*METHODS, QR_SHOW)),
                Binding("escape", "choose('')", "Cancel")]

    def __init__(self, heading: str, *, wallet: bool = True) -> None:
        super().__init__()
        self.heading, self.wallet = heading, wallet  # wallet: the collection QR is offered (sales)

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="pane"):
            yield Static(Text(self.heading), classes="heading")
            with Grid(classes="menu"):
                for name, label, key in METHODS:
                    yield Key(f"{label} ({key})", id=f"method-{name}")
                yield Key(QR_SCAN[1], id=f"method-{QR_SCAN[0]}", disabled=True)
                yield Key(f"{QR_SHOW[1]} ({QR_SHOW[2]})", id=f"method-{QR_SHOW[0]}", disabled=not self.wallet)
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.wallet or parameters != (QR_SHOW[0],)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose((event.button.id or "").removeprefix("method-"))

    def action_choose(self, name: str) -> None:
        if name == QR_SHOW[0] and not self.wallet:
            return
        self.dismiss(name or None)


class QrScreen(Screen[None]):
    """The merchant's collection code for the buyer to scan, drawn in text, while the engine
    asks the host (0600) whether it is paid. Escape sets ``stop``: the engine cancels the
    payment (0400). The app replaces this screen with the result either way."""

    BINDINGS = [Binding("escape", "cancel", "Cancel the payment")]

    def __init__(self, heading: str, payload: str, stop: threading.Event) -> None:
        super().__init__()
        self.heading, self.payload, self.stop = heading, payload, stop

    def compose(self) -> ComposeResult:
        from paypos.adapters.qrimage import RenderError, render_qr_text

        try:
            drawn = render_qr_text(self.payload)
        except (RenderError, ValueError) as error:
            drawn = f"(cannot draw the code: {error})"
        yield Header()
        with VerticalScroll(classes="pane tall"):
            yield Static(Text(self.heading), classes="heading")
            yield Static(Text(drawn, no_wrap=True), id="qr-code")
            yield Static(Text(self.payload), id="qr-payload")
            yield Static("Waiting for the buyer to scan and pay… (Esc cancels)", id="qr-status")
            yield Key("Cancel (Esc)", id="qr-cancel")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        self.stop.set()
        self.query_one("#qr-status", Static).update("Cancelling the payment…")


class ReaderScreen(Screen[str | None]):
    """The simulated card reader. Dismisses with the presented card's id, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, heading: str, cards: list[Mapping[str, Any]]) -> None:
        super().__init__()
        self.heading, self.cards = heading, cards

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="pane"):
            yield Static(Text(self.heading), classes="heading")
            if not self.cards:
                yield Static("No sandbox card for this reader in the terminal's currency.")
            with VerticalScroll(id="reader"):
                for card in self.cards:
                    yield Button(card_label(card), id=f"card-{card['id']}", classes="card")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss((event.button.id or "").removeprefix("card-") or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PinScreen(Screen[str | None]):
    """The PIN pad: shows one • per digit, never a digit. Dismisses with the PIN, or None."""

    BINDINGS = [*(Binding(d, f"digit('{d}')", d, show=False) for d in "0123456789"),
                Binding("backspace", "back", "Backspace"), Binding("delete", "clear", "Clear"),
                Binding("enter", "ok", "OK"), Binding("escape", "cancel", "Cancel")]

    def __init__(self, heading: str) -> None:
        super().__init__()
        self.heading = heading
        self._pin = ""

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="pane"):
            yield Static(Text(self.heading), classes="heading")
            yield Static(self._shown(), id="pin-display")
            with Grid(classes="keypad"):
                for label in ("1", "2", "3", "4", "5", "6", "7", "8", "9"):
                    yield Key(label, id=f"pin-{label}")
                yield Key("Clear", id="pin-clear", variant="warning")
                yield Key("0", id="pin-0")
                yield Key("⌫", id="pin-back")
                yield Key("Cancel", id="pin-cancel", variant="error")
                yield Key("OK", id="pin-ok", variant="success")
        yield Footer()

    def _shown(self) -> str:
        return "•" * len(self._pin) if self._pin else "Cardholder: enter PIN"

    def _set(self, pin: str) -> None:
        self._pin = pin
        self.query_one("#pin-display", Static).update(self._shown())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        key = (event.button.id or "").removeprefix("pin-")
        if key.isdigit():
            self.action_digit(key)
        elif key in ("back", "clear", "ok", "cancel"):
            getattr(self, f"action_{key}")()

    def action_digit(self, digit: str) -> None:
        if len(self._pin) < PIN_DIGITS_MAX:
            self._set(self._pin + digit)

    def action_back(self) -> None:
        self._set(self._pin[:-1])

    def action_clear(self) -> None:
        self._set("")

    def action_ok(self) -> None:
        if len(self._pin) < PIN_DIGITS_MIN:
            self.notify(f"A PIN has {PIN_DIGITS_MIN} to {PIN_DIGITS_MAX} digits", severity="warning")
            return
        self.dismiss(self._pin)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ProcessingScreen(ModalScreen[None]):
    def compose(self) -> ComposeResult:
        yield Static("Processing — please wait, do not remove the card", id="processing")


class ResultScreen(Screen[None]):
    BINDINGS = [Binding("enter", "done", "Done"), Binding("escape", "done", "Done")]

    def __init__(self, kind: str, result: Mapping[str, Any], currency_code: str) -> None:
        super().__init__()
        self.kind, self.result, self.currency_code = kind, result, currency_code

    def compose(self) -> ComposeResult:
        headline, detail = verdict(self.result)
        title = KIND_TITLES.get(self.kind, self.kind)
        if self.kind != "balance":
            title += f"  ·  {format_amount(int(self.result.get('amount_minor') or 0), self.currency_code)}"
        yield Header()
        with Vertical(classes="pane tall"):
            yield Static(Text(title), id="result-kind", classes="heading")
            yield Static(Text(headline), id="result-status",
                         classes="approved" if self.result.get("approved") else "declined")
            yield Static(Text(detail), id="result-detail")
            if self.result.get("balance_minor") is not None:
                balance = format_amount(int(self.result["balance_minor"]), self.currency_code)
                yield Static(Text(f"Available balance {balance}"), id="result-balance")
            with VerticalScroll(id="receipt-box"):
                yield Static(Text(str(self.result.get("receipt_text") or "(no receipt)")), id="receipt")
            yield Key("Done (Enter)", id="result-done", variant="primary")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_done()

    def action_done(self) -> None:
        self.dismiss(None)


class JournalScreen(Screen[tuple[str, JournalEntry] | None]):
    """The journal, newest first. Dismisses with (action, entry), or None."""

    ACTIONS = (("refund", "Refund", "r"), ("void", "Void", "v"), ("complete", "Complete pre-auth", "c"),
               ("reprint", "Reprint", "p"))
    BINDINGS = [*(Binding(key, f"act('{name}')", label) for name, label, key in ACTIONS),
                Binding("escape", "act('')", "Back")]

    def __init__(self, entries: list[JournalEntry], open_batch: int, currency_code: str) -> None:
        super().__init__()
        self.entries = {str(e.id): e for e in entries}
        self.open_batch, self.currency_code = open_batch, currency_code

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="pane wide"):
            yield Static(f"Journal — open batch {self.open_batch}", classes="heading")
            yield DataTable(id="journal-table", cursor_type="row", zebra_stripes=True)
            with Grid(classes="actions"):
                for name, label, key in self.ACTIONS:
                    yield Key(f"{label} ({key})", id=f"journal-{name}")
                yield Key("Back (Esc)", id="journal-back")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("#", "Batch", "Kind", "Status", "Amount", "Card", "Entry", "RC", "Approval", "RRN")
        for e in sorted(self.entries.values(), key=lambda e: e.id, reverse=True):
            table.add_row(str(e.id), str(e.batch_no), e.kind, e.status, format_amount(e.amount_minor, e.currency),
                          e.pan_masked or "", e.entry or "", e.response_code or "", e.approval_code or "",
                          e.rrn or "", key=str(e.id))
        table.focus()
        self._update_buttons()

    def selected(self) -> JournalEntry | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.entries.get(str(key))

    def _update_buttons(self) -> None:
        entry = self.selected()
        allowed = journal_actions(entry, self.open_batch) if entry else frozenset()
        for name, _label, _key in self.ACTIONS:
            self.query_one(f"#journal-{name}", Button).disabled = name not in allowed

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._update_buttons()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        name = (event.button.id or "").removeprefix("journal-")
        self.action_act("" if name == "back" else name)

    def action_act(self, name: str) -> None:
        if not name:
            self.dismiss(None)
            return
        entry = self.selected()
        if entry is None or name not in journal_actions(entry, self.open_batch):
            self.notify(f"{name}: not possible for this entry", severity="warning")
            return
        self.dismiss((name, entry))


class TotalsScreen(Screen[None]):
    BINDINGS = [Binding("enter", "done", "Done"), Binding("escape", "done", "Done")]

    def __init__(self, totals: Mapping[str, int], batch_no: int, currency_code: str) -> None:
        super().__init__()
        self.totals, self.batch_no, self.currency_code = totals, batch_no, currency_code

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="pane"):
            yield Static(f"Batch {self.batch_no} — totals so far", classes="heading")
            yield Static(Text(totals_text(self.totals, self.currency_code)), id="totals")
            yield Key("Done (Enter)", id="totals-done", variant="primary")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_done()

    def action_done(self) -> None:
        self.dismiss(None)


class SettleScreen(Screen[None]):
    """End of day: the terminal's and the host's totals side by side; on a mismatch the
    batch stays open and its approved entries are listed for the cashier to compare."""

    BINDINGS = [Binding("enter", "done", "Done"), Binding("escape", "done", "Done")]

    def __init__(self, result: Mapping[str, Any], open_entries: list[JournalEntry], currency_code: str) -> None:
        super().__init__()
        self.result, self.open_entries, self.currency_code = result, open_entries, currency_code

    def _sides(self) -> tuple[Mapping[str, int], Mapping[str, int] | None]:
        mine = self.result.get("terminal_totals")
        if mine is None:  # the host was not reached: the engine reports its own totals only
            keys = ("credits_count", "debits_count", "credits_minor", "debits_minor")
            return {k: int(self.result.get(k) or 0) for k in keys}, None
        return mine, self.result.get("host_totals")

    def compose(self) -> ComposeResult:
        code, message = str(self.result.get("response_code") or ""), str(self.result.get("message") or "")
        mine, host = self._sides()
        status = (f"BATCH CLOSED — {message} ({code})" if self.result.get("approved")
                  else f"BATCH STILL OPEN — {message} ({code or 'no answer'})")
        yield Header()
        with Vertical(classes="pane wide"):
            yield Static(Text(status), id="settle-status",
                         classes="heading " + ("approved" if self.result.get("approved") else "declined"))
            yield Static(Text("Terminal\n" + totals_text(mine, self.currency_code, host)), id="settle-terminal")
            host_text = totals_text(host, self.currency_code, mine) if host is not None else "(no answer)"
            yield Static(Text("Host\n" + host_text), id="settle-host")
            if not self.result.get("approved"):
                lines = [f"#{e.id:<5} {e.kind:<10} {format_amount(e.amount_minor, e.currency):>14}  "
                         f"{e.pan_masked or '':<16} RRN {e.rrn or '-'}" for e in self.open_entries]
                yield Static(Text("The open batch's approved entries:\n" + ("\n".join(lines) or "(none)")),
                             id="settle-entries")
            yield Key("Done (Enter)", id="settle-done", variant="primary")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_done()

    def action_done(self) -> None:
        self.dismiss(None)


# --- the app --------------------------------------------------------------------------------


class CashierApp(App[None]):
    """The cashier's terminal. ``session_factory()`` gives a context manager yielding a
    :class:`TerminalSession` (e.g. ``lambda: open_session(...)``); it is entered in a worker
    thread when the app starts and left when the app ends."""

    TITLE = "paypos terminal"
    CSS = """
    Screen { align: center top; }
    .pane { width: 76; height: auto; max-height: 100%; padding: 0 1; }
    .pane.wide { width: 100%; height: 1fr; }
    .pane.tall { height: 1fr; }
    .heading { text-style: bold; margin: 1 0; }
    #amount, #pin-display { height: 3; border: round $accent; content-align: center middle; text-style: bold; }
    .keypad { grid-size: 3; grid-gutter: 0 1; grid-rows: 3; height: auto; }
    .keypad Button { width: 100%; }
    .menu { grid-size: 2; grid-gutter: 0 1; grid-rows: 3; height: auto; }
    .menu Button { width: 100%; }
    .actions { grid-size: 5; grid-gutter: 0 1; grid-rows: 3; height: auto; }
    .actions Button { width: 100%; min-width: 8; }
    #reader { height: auto; max-height: 20; }
    .card { width: 100%; height: 1; min-width: 10; border: none; margin-bottom: 1; }
    .approved { color: $success; text-style: bold; }
    .declined { color: $error; text-style: bold; }
    #result-detail, #result-balance { margin-bottom: 1; }
    #receipt-box { height: 1fr; border: round $primary; }
    #journal-table { height: 1fr; }
    #processing { width: 60; height: 5; border: thick $accent; background: $surface;
                  content-align: center middle; }
    ProcessingScreen { align: center middle; }
    """

    def __init__(self, session_factory: SessionFactory) -> None:
        super().__init__()
        self._session_factory = session_factory
        self._stack = ExitStack()
        self._engine_lock = threading.Lock()  # the engine serves one request at a time
        self.session: TerminalSession | None = None
        self.receipts: dict[int, str] = {}
        self._qr_stop = threading.Event()  # set: a collection code being waited for is cancelled

    # --- plumbing: the engine runs in worker threads ---------------------------------------

    @property
    def currency_code(self) -> str:
        return self._require_session().engine.config.currency

    def _require_session(self) -> TerminalSession:
        if self.session is None:
            raise TerminalSessionError("the terminal is not open yet")
        return self.session

    def _background(self, name: str, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run ``work`` (blocking engine calls) in a thread behind the processing screen, then
        ``done(result)`` on the UI thread; an operating error arrives as the result."""
        self.push_screen(ProcessingScreen())

        def run() -> None:
            with self._engine_lock:
                try:
                    result = work()
                except (TerminalSessionError, TerminalError) as error:
                    result = error
            self.call_from_thread(self._finished, result, done)

        self.run_worker(run, name=name, group="engine", thread=True)

    async def _finished(self, result: Any, done: Callable[[Any], None]) -> None:
        if isinstance(self.screen, ProcessingScreen):
            await self.pop_screen()
        done(result)

    def _home(self) -> HomeScreen:
        return next(s for s in self.screen_stack if isinstance(s, HomeScreen))

    # --- start-up and sign-on -----------------------------------------------------------------

    def on_mount(self) -> None:
        self.push_screen(HomeScreen())
        self._sign_on()

    def on_unmount(self) -> None:
        self._qr_stop.set()  # a buyer still being waited for: cancel, then close
        locked = self._engine_lock.acquire(timeout=SHUTDOWN_WAIT_S)
        try:
            self._stack.close()
        finally:
            if locked:
                self._engine_lock.release()

    def _sign_on(self) -> None:
        def work() -> tuple[TerminalSession, Outcome]:
            session = self.session or self._stack.enter_context(self._session_factory())
            return session, session.engine.sign_on()

        self._background("sign-on", work, self._signed_on)

    def _signed_on(self, result: tuple[TerminalSession, Outcome] | Exception) -> None:
        home = self._home()
        if isinstance(result, Exception):
            home.set_status(f"Cannot open the terminal: {result}", ready=False)
            return
        self.session, outcome = result
        config, link = self.session.engine.config, self.session.engine.link
        self.sub_title = f"{config.terminal_id} · {self.session.merchant_name or config.merchant_id}"
        if outcome.approved:
            status = f"SIGNED ON — host {link.host}:{link.port} answered {outcome.response_code}"
        else:
            status = (f"NOT SIGNED ON — {outcome.message} ({outcome.response_code}); "
                      "chip sales under the floor limit can still be approved offline")
        home.set_status(status, self._terminal_info(), ready=True)

    def _terminal_info(self) -> str:
        session = self._require_session()
        config, code = session.engine.config, session.engine.config.currency
        return (f"Terminal {config.terminal_id}  ·  merchant {config.merchant_id} {session.merchant_name}  ·  "
                f"{iso_currency(code).alpha}\n"
                f"Floor limit {format_amount(config.floor_limit_minor, code)}  ·  "
                f"contactless CVM limit {format_amount(config.contactless_cvm_limit_minor, code)}  ·  "
                f"contactless limit {format_amount(config.contactless_txn_limit_minor, code)}")

    # --- the menu -----------------------------------------------------------------------------

    def menu(self, name: str) -> None:
        actions: dict[str, Callable[[], Any]] = {
            "sale": lambda: self.start_sale("purchase"), "preauth": lambda: self.start_sale("preauth"),
            "balance": lambda: self._choose_card(Ticket("balance", entry="chip"), prepaid_only=True),
            "journal": self.show_journal, "totals": self.show_totals, "settle": self.end_of_day,
            "signon": self._sign_on, "quit": self.exit,
        }
        actions[name]()

    def start_sale(self, kind: str) -> None:
        def entered(amount_minor: int | None) -> None:
            if amount_minor is not None:
                self._choose_method(Ticket(kind, amount_minor))

        self.push_screen(AmountScreen(KIND_TITLES[kind], self.currency_code), entered)

    def _choose_method(self, ticket: Ticket) -> None:
        def chosen(method: str | None) -> None:
            if method == "balance":
                self._choose_card(Ticket("balance", entry="chip"), prepaid_only=True)
            elif method == QR_SHOW[0]:
                self._show_qr(ticket)
            elif method is not None:
                self._choose_card(replace(ticket, entry=method))

        heading = f"{KIND_TITLES[ticket.kind]}  ·  {format_amount(ticket.amount_minor, self.currency_code)}"
        self.push_screen(MethodScreen(heading + " — how does the buyer pay?", wallet=ticket.kind == "purchase"),
                         chosen)

    # --- the collection QR: shown while the engine waits for the buyer ---------------------------

    def _show_qr(self, ticket: Ticket) -> None:
        amount = money(ticket.amount_minor, self.currency_code).to_major_str()
        self._background("qr", lambda: self._require_session().collect_qr(amount),
                         lambda result: self._qr_opened(ticket, result))

    def _qr_opened(self, ticket: Ticket, result: dict[str, Any] | Exception) -> None:
        if isinstance(result, Exception) or result.get("status") != "pending" or not result.get("qr_payload"):
            self._sent(ticket, None, result)  # refused: the result screen says why
            return
        self._qr_stop = stop = threading.Event()
        heading = (f"{KIND_TITLES[ticket.kind]}  ·  {format_amount(ticket.amount_minor, self.currency_code)}"
                   " — the buyer scans this code with their wallet")
        screen = QrScreen(heading, str(result["qr_payload"]), stop)
        self.push_screen(screen)
        journal_id = int(result["journal_id"])

        def wait() -> None:
            with self._engine_lock:
                try:
                    outcome: dict[str, Any] | Exception = self._require_session().await_wallet(
                        journal_id, WALLET_QR_TIMEOUT_S_DEFAULT, stop=stop)
                except (TerminalSessionError, TerminalError) as error:
                    outcome = error
            self.call_from_thread(self._qr_closed, ticket, screen, outcome)

        self.run_worker(wait, name="qr-wait", group="engine", thread=True)

    async def _qr_closed(self, ticket: Ticket, screen: QrScreen, result: dict[str, Any] | Exception) -> None:
        if self.screen is screen:
            await self.pop_screen()
        self._sent(ticket, None, result)

    def _choose_card(self, ticket: Ticket, *, prepaid_only: bool = False) -> None:
        entry = ticket.entry or "chip"
        cards = readable_cards(self._require_session().cards, entry, self.currency_code, prepaid_only=prepaid_only)
        heading = READER_TITLES[entry] + (" (prepaid cards)" if prepaid_only else "")

        def presented(card_id: str | None) -> None:
            if card_id is not None:
                self._send(replace(ticket, card_id=card_id))

        self.push_screen(ReaderScreen(heading, cards), presented)

    # --- sending, the PIN pad, the result ------------------------------------------------------

    def _send(self, ticket: Ticket, pin: str | None = None) -> None:
        self._background(ticket.kind, lambda: self._perform(ticket, pin), lambda result: self._sent(ticket, pin, result))

    def _perform(self, ticket: Ticket, pin: str | None) -> dict[str, Any]:
        session = self._require_session()
        amount = money(ticket.amount_minor, self.currency_code).to_major_str()
        card_id, entry = ticket.card_id or "", ticket.entry or "chip"
        requests: dict[str, Callable[[], dict[str, Any]]] = {
            "purchase": lambda: session.pay(amount, card_id, entry, pin, kind="purchase"),
            "preauth": lambda: session.pay(amount, card_id, entry, pin, kind="preauth"),
            "refund": lambda: session.refund(amount, card_id, entry, ticket.rrn, pin),
            "balance": lambda: session.balance(card_id, entry, pin),
            "completion": lambda: session.complete(self._journal_id(ticket), amount),
            "void": lambda: {**session.engine.void(self._journal_id(ticket)).as_json(), "receipt_text": None},
            "reprint": lambda: self._reprint(self._journal_id(ticket)),
        }
        return requests[ticket.kind]()

    @staticmethod
    def _journal_id(ticket: Ticket) -> int:
        if ticket.journal_id is None:
            raise TerminalSessionError(f"{ticket.kind}: no journal entry selected")
        return ticket.journal_id

    def _reprint(self, journal_id: int) -> dict[str, Any]:
        from paypos.terminal.receipts import receipt_files

        session = self._require_session()
        entry = session.engine.store.entry(journal_id)
        if entry is None:
            raise TerminalSessionError(f"no journal entry {journal_id}")
        outcome = outcome_of(entry)
        text = self.receipts.get(journal_id) or receipt_files(session, outcome)["receipt_text"]
        return {**outcome.as_json(), "receipt_text": text}

    def _sent(self, ticket: Ticket, pin: str | None, result: dict[str, Any] | Exception) -> None:
        if isinstance(result, PinRequiredError) and pin is None:
            self._ask_pin(ticket)
            return
        if isinstance(result, Exception):
            result = {"approved": False, "response_code": "", "message": str(result),
                      "amount_minor": ticket.amount_minor, "receipt_text": None}
        self._keep_receipt(result)
        self.push_screen(ResultScreen(ticket.kind, result, self.currency_code))

    def _ask_pin(self, ticket: Ticket) -> None:
        def entered(pin: str | None) -> None:
            if pin is None:
                self.notify("PIN entry cancelled: nothing was sent", severity="warning")
                return
            self._send(ticket, pin)

        heading = f"{KIND_TITLES[ticket.kind]}  ·  {format_amount(ticket.amount_minor, self.currency_code)}"
        self.push_screen(PinScreen(heading + " — PIN required"), entered)

    def _keep_receipt(self, result: Mapping[str, Any]) -> None:
        journal_id, text = result.get("journal_id"), result.get("receipt_text")
        if not isinstance(journal_id, int) or not text:
            return
        self.receipts.pop(journal_id, None)
        self.receipts[journal_id] = str(text)
        while len(self.receipts) > RECEIPTS_KEPT_MAX:
            self.receipts.pop(next(iter(self.receipts)))

    # --- journal, totals, end of day ---------------------------------------------------------

    def show_journal(self) -> None:
        store = self._require_session().engine.store
        self._background("journal", lambda: (store.journal(), store.batch_no()), self._journal_read)

    def _journal_read(self, result: tuple[list[JournalEntry], int] | Exception) -> None:
        if isinstance(result, Exception):
            self.notify(str(result), severity="error")
            return
        entries, batch_no = result
        self.push_screen(JournalScreen(entries, batch_no, self.currency_code), self._journal_action)

    def _journal_action(self, choice: tuple[str, JournalEntry] | None) -> None:
        if choice is None:
            return
        action, entry = choice
        if action in ("refund", "complete"):
            kind = "refund" if action == "refund" else "completion"
            ticket = Ticket(kind, entry.amount_minor, entry.entry, entry.card_id, entry.rrn, entry.id)

            def entered(amount_minor: int | None) -> None:
                if amount_minor is not None:
                    self._send(replace(ticket, amount_minor=amount_minor))

            heading = f"{KIND_TITLES[kind]} of #{entry.id} ({entry.pan_masked}, RRN {entry.rrn or '-'})"
            self.push_screen(AmountScreen(heading, self.currency_code, initial_minor=entry.amount_minor,
                                          maximum_minor=entry.amount_minor), entered)
            return
        self._send(Ticket(action, entry.amount_minor, entry.entry, entry.card_id, entry.rrn, entry.id))

    def show_totals(self) -> None:
        engine = self._require_session().engine

        def shown(result: tuple[dict[str, int], int] | Exception) -> None:
            if isinstance(result, Exception):
                self.notify(str(result), severity="error")
                return
            self.push_screen(TotalsScreen(result[0], result[1], self.currency_code))

        self._background("totals", lambda: (engine.totals(), engine.store.batch_no()), shown)

    def end_of_day(self) -> None:
        engine = self._require_session().engine

        def work() -> tuple[dict[str, Any], list[JournalEntry]]:
            result = engine.settle().as_json()
            still_open = [e for e in engine.store.journal(engine.store.batch_no()) if e.status == "approved"]
            return result, still_open

        def shown(result: tuple[dict[str, Any], list[JournalEntry]] | Exception) -> None:
            if isinstance(result, Exception):
                self.notify(str(result), severity="error")
                return
            self.push_screen(SettleScreen(result[0], result[1], self.currency_code))

        self._background("settle", work, shown)


def run_tui(data_dir: Path | None, database_url: str | None, terminal_id: str | None, host: str, port: int,
            *, api: str | None = None) -> None:
    """`paypos terminal` with no command: the cashier's screen until the cashier quits."""
    CashierApp(lambda: open_session(data_dir, database_url, terminal_id, host, port, api=api)).run()
