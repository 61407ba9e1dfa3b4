"""Wiring for one terminal: its keys and limits from the sandbox, its own store,
the simulated cards (with their persisted ATCs), the link to the host, receipts."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paypos import limits
from paypos.bootstrap import NotInitialisedError, bootstrap, require_schema
from paypos.config import ConfigError, load_settings
from paypos.domain.money import MoneyError, currency, parse_major
from paypos.protocol.dukpt import derive_ipek, parse_ksn
from paypos.services import sandbox as sandbox_service
from paypos.terminal.card import CardProfile, SoftCard, SqliteAtcStore
from paypos.terminal.engine import Outcome, PinRequired, TerminalEngine, TerminalError
from paypos.terminal.link import HostLink
from paypos.terminal.store import TerminalConfig, TerminalStore, terminal_dir


class TerminalSessionError(RuntimeError):
    """Bad input or set-up for a terminal command; the message says what to do."""


class PinRequiredError(TerminalSessionError):
    """Ask the cardholder for the PIN and try again (nothing was sent)."""


@dataclass
class TerminalSession:
    engine: TerminalEngine
    cards: dict[str, dict[str, Any]]
    directory: Path
    merchant_name: str
    merchant_city: str
    merchant_address: str = ""
    printer: str | None = None  # an ESC/POS printer: a file path or tcp://host:port
    api_base: str = f"http://{limits.http_host_default}:{limits.http_port_default}"  # for e-receipt links

    def card(self, card_id: str) -> CardProfile:
        if card_id not in self.cards:
            raise TerminalSessionError(f"--card: no sandbox card {card_id!r} (see `paypos sandbox cards`)")
        return CardProfile.from_sandbox(self.cards[card_id])

    def amount(self, text: str) -> int:
        try:
            return parse_major(text, currency(self.engine.config.currency)).amount_minor
        except MoneyError as error:
            raise TerminalSessionError(f"--amount: {error}") from None

    def _run(self, action: Any) -> dict[str, Any]:
        try:
            outcome: Outcome = action()
        except PinRequired as error:
            raise PinRequiredError(str(error)) from None
        except TerminalError as error:
            raise TerminalSessionError(str(error)) from None
        return self._with_receipt(outcome)

    def pay(self, amount: str, card_id: str, entry: str, pin: str | None, kind: str = "purchase",
            chip_failures: int = 0) -> dict[str, Any]:
        card, minor = self.card(card_id), self.amount(amount)
        return self._run(lambda: self.engine.pay(card, minor, entry, pin=pin, kind=kind, chip_failures=chip_failures))

    def refund(self, amount: str, card_id: str, entry: str, rrn: str | None, pin: str | None) -> dict[str, Any]:
        card, minor = self.card(card_id), self.amount(amount)
        return self._run(lambda: self.engine.refund(card, minor, entry, rrn=rrn, pin=pin))

    def balance(self, card_id: str, entry: str, pin: str | None) -> dict[str, Any]:
        card = self.card(card_id)
        result = self._run(lambda: self.engine.balance(card, entry, pin=pin))
        return result

    def complete(self, journal_id: int, amount: str) -> dict[str, Any]:
        minor = self.amount(amount)
        return self._run(lambda: self.engine.complete(journal_id, minor))

    # --- wallet payments: the buyer's code, or the merchant's collection code --------------

    def pay_code(self, amount: str, code: str, timeout_s: float) -> dict[str, Any]:
        """Charge a scanned payment code; above the buyer's limit, wait for their confirmation
        and cancel at ``timeout_s`` ("buyer did not confirm")."""
        minor = self.amount(amount)

        def action() -> Outcome:
            outcome = self.engine.pay_code(code.strip(), minor)
            if outcome.extra.get("status") == "pending" and outcome.journal_id is not None:
                outcome = self.engine.await_wallet(outcome.journal_id, timeout_s, reason="buyer did not confirm")
            return outcome

        return self._run(action)

    def collect_qr(self, amount: str) -> dict[str, Any]:
        """A collection code for the buyer to scan: ``qr_payload`` and ``journal_id`` when pending."""
        minor = self.amount(amount)
        return self._run(lambda: self.engine.collect_qr(minor))

    def await_wallet(self, journal_id: int, timeout_s: float, reason: str = "buyer did not pay",
                     stop: threading.Event | None = None) -> dict[str, Any]:
        """Wait for the buyer (0600 polls); cancel at ``timeout_s`` or when ``stop`` is set."""
        return self._run(lambda: self.engine.await_wallet(journal_id, timeout_s, reason=reason, stop=stop))

    def wallet_status(self, journal_id: int) -> dict[str, Any]:
        return self._run(lambda: self.engine.wallet_status(journal_id))

    def cancel_wallet(self, journal_id: int, reason: str) -> dict[str, Any]:
        return self._run(lambda: self.engine.cancel_wallet(journal_id, reason))

    def _with_receipt(self, outcome: Outcome) -> dict[str, Any]:
        from paypos.terminal.receipts import receipt_files

        data = outcome.as_json()
        if outcome.balance_minor is not None:
            data["balance_minor"] = outcome.balance_minor
        data.update(receipt_files(self, outcome))
        return data


def _terminal_record(rows: list[dict[str, Any]], terminal_id: str | None) -> dict[str, Any]:
    if not rows:
        raise TerminalSessionError("the sandbox has no terminals: run `paypos init --sandbox`")
    if terminal_id is None:
        return rows[0]
    for row in rows:
        if row["terminal_id"] == terminal_id:
            return row
    raise TerminalSessionError(f"--terminal: no sandbox terminal {terminal_id!r}")


def _sandbox_from_api(api: str, terminal_id: str | None) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Terminal record, cards and merchant from a remote host's sandbox endpoints."""
    import httpx

    base = api.rstrip("/")
    try:
        terminals = httpx.get(f"{base}/v1/sandbox/terminals", timeout=10).raise_for_status().json()
        cards = httpx.get(f"{base}/v1/sandbox/cards", timeout=10).raise_for_status().json()
        record = _terminal_record(terminals, terminal_id)
        merchant = httpx.get(f"{base}/v1/sandbox/merchants/{record['merchant_id']}", timeout=10).raise_for_status().json()
    except (httpx.HTTPError, ValueError) as error:
        raise TerminalSessionError(f"--api {api}: {error}") from None
    from types import SimpleNamespace

    return record, {c["id"]: c for c in cards}, SimpleNamespace(**merchant)


def _sandbox_from_database(data_dir: Path | None, database_url: str | None,
                           terminal_id: str | None) -> tuple[dict[str, Any], dict[str, Any], Any]:
    try:
        settings = load_settings(data_dir, database_url)
        app = bootstrap(settings, initialising=False)
        require_schema(app)
    except (ConfigError, NotInitialisedError) as error:
        raise TerminalSessionError(str(error)) from None
    try:
        with app.uow(write=False) as uow:
            record = _terminal_record(sandbox_service.list_terminals(uow, app.vault), terminal_id)
            cards = {c["id"]: c for c in sandbox_service.list_cards(uow, app.vault)}
            merchant = uow.registry.get_merchant(record["merchant_id"])
    finally:
        app.close()
    return record, cards, merchant


@contextmanager
def open_session(data_dir: Path | None, database_url: str | None, terminal_id: str | None,
                 host: str, port: int, *, timeout_s: float | None = None,
                 api: str | None = None) -> Iterator[TerminalSession]:
    """``timeout_s``: the response timeout (default ``PAYPOS_TERMINAL_TIMEOUT_S`` or
    ``limits.terminal_response_timeout_s``); after it the terminal reverses the request."""
    if timeout_s is None:
        try:
            timeout_s = float(os.environ.get("PAYPOS_TERMINAL_TIMEOUT_S", limits.terminal_response_timeout_s))
        except ValueError:
            raise TerminalSessionError("PAYPOS_TERMINAL_TIMEOUT_S must be a number of seconds") from None
    if not 0 < timeout_s <= 600:
        raise TerminalSessionError("the response timeout must be between 0 and 600 seconds")
    if api:
        record, cards, merchant = _sandbox_from_api(api, terminal_id)
    else:
        record, cards, merchant = _sandbox_from_database(data_dir, database_url, terminal_id)
    local_dir = Path(data_dir) if data_dir is not None else load_settings().data_dir
    directory = terminal_dir(local_dir, record["terminal_id"])
    store = TerminalStore(directory / "terminal.db")
    atc_store = SqliteAtcStore(local_dir / "cards" / "atc.db")
    try:
        # Key loading: the terminal receives its IPEK and initial KSN, never the BDK.
        store.load_keys(TerminalConfig(
            record["terminal_id"], record["merchant_id"], record["currency"], record["initial_ksn"],
            derive_ipek(bytes.fromhex(record["bdk"]), parse_ksn(record["initial_ksn"])).hex().upper(),
            record["mac_required"], record["floor_limit_minor"], record["contactless_txn_limit_minor"],
            record["contactless_cvm_limit_minor"], merchant.name if merchant else "", merchant.city if merchant else "",
        ))
        engine = TerminalEngine(store, HostLink(host, port, timeout_s=timeout_s), lambda profile: SoftCard(profile, atc_store),
                                country=merchant.country if merchant else None)
        engine.recover()
        engine.drain()
        session = TerminalSession(engine, cards, directory, merchant.name if merchant else "",
                                  merchant.city if merchant else "", merchant.address if merchant else "")
        if api:
            session.api_base = api.rstrip("/")
        yield session
    finally:
        store.close()
