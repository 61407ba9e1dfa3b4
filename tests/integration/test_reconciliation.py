"""Reconciliation of a terminal batch against the host journal on SQLite and PostgreSQL
(services/reconciliation.py): a 0500 with wrong totals gets 95, the per-transaction
differences become exceptions once, and an operator resolves them (audit-logged)."""

from __future__ import annotations

from typing import Any

import pytest

from paypos.bootstrap import App, init_database
from paypos.protocol import iso8583
from paypos.services import audit, sandbox
from paypos.services import reconciliation as recon
from paypos.services.host import IsoHost
from paypos.services.reconciliation import TerminalLine
from tests.integration.test_reports import card_message, reverse, send, terminal

APPROVE = "visa-cvn18-approve"


@pytest.fixture
def host(app: App) -> IsoHost:
    init_database(app, sandbox=True)
    return IsoHost(app)


@pytest.fixture
def batch(app: App, host: IsoHost) -> dict[str, Any]:
    """Four approved sales at the host, the fourth reversed; the terminal's journal says
    otherwise for three of them and has one the host never saw."""
    with app.uow(write=False) as uow:
        card = next(c for c in sandbox.list_cards(uow, app.vault) if c["id"] == APPROVE)
    t = terminal(app)
    raws = [card_message(t, card, amount) for amount in (1_000, 2_000, 3_000, 4_000)]
    for raw in raws:
        assert send(host, raw)["39"] == "00"
    assert reverse(host, t, raws[3], 4_000)["39"] == "00"
    sent = [iso8583.decode_message(raw) for raw in raws]
    lines = [TerminalLine(sent[0]["11"], sent[0]["7"], "purchase", 1_000, "approved"),
             TerminalLine(sent[1]["11"], sent[1]["7"], "purchase", 2_500, "approved"),  # amount differs
             # the third is missing at the terminal
             TerminalLine(sent[3]["11"], sent[3]["7"], "purchase", 4_000, "approved"),  # host reversed it
             TerminalLine("999999", "1122090000", "purchase", 700, "approved")]  # missing at the host
    return {"terminal": t, "sent": sent, "lines": lines}


def test_wrong_totals_get_95_and_each_difference_becomes_one_exception(app: App, host: IsoHost,
                                                                          batch: dict[str, Any]) -> None:
    t, lines = batch["terminal"], batch["lines"]
    debits = [x for x in lines if x.counted]
    settle = t.message("0500", {"74": "0000000000", "76": f"{len(debits):010d}", "86": "0000000000000000",
                                "88": f"{sum(x.amount_minor for x in debits):016d}"})
    answer = send(host, settle)
    assert answer["39"] == "95" and int(answer["88"]) == 6_000  # the host's: 1 000 + 2 000 + 3 000
    for _ in range(2):  # a rerun stores nothing twice
        with app.uow() as uow:
            found = recon.reconcile_batch(uow, "CAFE0001", 1, lines, app.clock())
            uow.commit()
        assert sorted(e.kind for e in found) == ["amount_differs", "missing_at_host", "missing_at_terminal",
                                                 "reversed"]
    by_kind = {e.kind: e for e in found}
    assert (by_kind["amount_differs"].terminal_amount_minor, by_kind["amount_differs"].host_amount_minor) == \
        (2_500, 2_000)
    assert by_kind["missing_at_terminal"].transaction_ref == f"CAFE0001:{batch['sent'][2]['7']}:{batch['sent'][2]['11']}"
    assert all(e.status == "open" and e.merchant_id == "PPCAFE000000001" and e.reason for e in found)


def test_an_operator_resolves_an_exception_once_with_a_note_and_an_audit_entry(app: App, host: IsoHost,
                                                                             batch: dict[str, Any]) -> None:
    with app.uow() as uow:
        found = recon.reconcile_batch(uow, "CAFE0001", 1, batch["lines"], app.clock())
        uow.commit()
    target = found[0]
    with app.uow() as uow:
        done = recon.resolve(uow, target.id, "refunded the buyer by hand", "cli:ops", app.clock())
        again = recon.resolve(uow, target.id, "refunded the buyer by hand", "cli:ops", app.clock())  # a retry
        uow.commit()
    assert done.status == again.status == "resolved" and done.resolved_by == "cli:ops"
    with app.uow(write=False) as uow:
        assert [e.id for e in recon.list_exceptions(uow, status="resolved")] == [target.id]
        assert len(recon.list_exceptions(uow)) == len(found) - 1
        entries = audit.entries(uow, subject_type="recon_exception")
    assert [(e.action, e.subject_id, e.details["resolution"]) for e in entries] == [
        ("recon_exception.resolve", str(target.id), "refunded the buyer by hand")]


def test_resolving_refuses_an_unknown_id_an_empty_note_and_a_second_different_resolution(
        app: App, host: IsoHost, batch: dict[str, Any]) -> None:
    with app.uow() as uow:
        target = recon.reconcile_batch(uow, "CAFE0001", 1, batch["lines"], app.clock())[0]
        recon.resolve(uow, target.id, "fixed", "cli:ops", app.clock())
        with pytest.raises(recon.AlreadyResolved):
            recon.resolve(uow, target.id, "something else", "cli:ops", app.clock())
        with pytest.raises(recon.ExceptionNotFound):
            recon.resolve(uow, 999_999, "fixed", "cli:ops", app.clock())
        with pytest.raises(recon.ReconciliationError):
            recon.resolve(uow, target.id, "   ", "cli:ops", app.clock())
        with pytest.raises(recon.ReconciliationError):
            recon.reconcile_batch(uow, "NOSUCH01", 1, [], app.clock())
        with pytest.raises(recon.ReconciliationError):
            recon.list_exceptions(uow, status="closed")
        with pytest.raises(recon.ReconciliationError):
            recon.record_exception(uow, "made_up", "PPCAFE000000001", "x", "y", app.clock())


def test_a_matching_batch_has_no_exceptions(app: App, host: IsoHost, batch: dict[str, Any]) -> None:
    sent = batch["sent"]
    lines = [TerminalLine(s["11"], s["7"], "purchase", int(s["4"]), "approved") for s in sent[:3]] + \
        [TerminalLine(sent[3]["11"], sent[3]["7"], "purchase", 4_000, "reversed")]
    with app.uow() as uow:
        assert recon.reconcile_batch(uow, "CAFE0001", 1, lines, app.clock()) == []
