"""`paypos reports ...` and `paypos recon ...` (the Typer apps, in-process) on a sandbox data dir
with chip sales made through the host in-process: statement CSV/PDF with the ledger check,
search, operator report, refresh, reconciliation of a batch and resolution; one-line refusals."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import Result
from pypdf import PdfReader
from typer.testing import CliRunner

from paypos.bootstrap import bootstrap
from paypos.config import load_settings
from paypos.entrypoints.cli_reports import recon_app, reports_app
from paypos.protocol import iso8583
from paypos.services import sandbox
from paypos.services.host import IsoHost
from paypos.services.reconciliation import TerminalLine, journal_csv
from paypos.services.reports import CSV_COLUMNS
from paypos.terminal.store import TerminalStore, terminal_dir
from tests.integration.test_reports import card_message, send, terminal

CAFE = "PPCAFE000000001"
CLEAN_ENV: dict[str, str | None] = {k: None for k in os.environ if k.startswith("PAYPOS_")}


def invoke(app: Any, data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--data-dir", str(data_dir)], env={**CLEAN_ENV, "COLUMNS": "200"})


def as_json(app: Any, data_dir: Path, *args: str) -> Any:
    result = invoke(app, data_dir, *args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture
def sold(sandbox_copy: Path) -> dict[str, Any]:
    """Two approved chip sales at CAFE0001, made now through the host in-process."""
    paypos = bootstrap(load_settings(sandbox_copy, None), initialising=False)
    try:
        with paypos.uow(write=False) as uow:
            card = next(c for c in sandbox.list_cards(uow, paypos.vault) if c["id"] == "visa-cvn18-approve")
        host, t = IsoHost(paypos), terminal(paypos)
        raws = [card_message(t, card, amount) for amount in (1_250, 3_000)]
        answers = [send(host, raw) for raw in raws]
        assert [a["39"] for a in answers] == ["00", "00"]
    finally:
        paypos.close()
    day = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    return {"dir": sandbox_copy, "day": day, "rrns": [a["37"] for a in answers],
            "sent": [iso8583.decode_message(raw) for raw in raws]}


def test_a_statement_writes_csv_and_pdf_and_its_totals_equal_the_ledger(sold: dict[str, Any], tmp_path: Path) -> None:
    data_dir, day = sold["dir"], sold["day"]
    out_csv, out_pdf = tmp_path / "s.csv", tmp_path / "s.pdf"
    data = as_json(reports_app, data_dir, "statement", "--merchant", CAFE, "--day", day, "--format", "csv",
                   "--out", str(out_csv), "--check-ledger")
    assert data["ledger_check"]["equal"] and data["rows"][0]["sales_minor"] == 4_250
    rows = list(csv.reader(io.StringIO(out_csv.read_text())))
    assert tuple(rows[0]) == CSV_COLUMNS and rows[1][:5] == ["total", day, "2", "4250", "42.50"]
    shown = invoke(reports_app, data_dir, "statement", "--merchant", CAFE, "--month", day[:7], "--format", "pdf",
                   "--out", str(out_pdf))
    assert shown.exit_code == 0 and "42.50" in shown.stdout
    assert "42.50" in PdfReader(out_pdf).pages[0].extract_text()


def test_statement_search_and_operator_refuse_bad_input_in_one_line(sold: dict[str, Any]) -> None:
    data_dir = sold["dir"]
    for args in (["statement", "--merchant", CAFE],
                 ["statement", "--merchant", CAFE, "--day", "2026-02-30"],
                 ["statement", "--merchant", CAFE, "--day", sold["day"], "--format", "csv"],
                 ["search", "--limit", "0"], ["search", "--since", "yesterday"], ["search", "--cursor", "x"],
                 ["operator", "--from", "2026-12-01", "--to", "2026-11-01"]):
        result = invoke(reports_app, data_dir, *args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    unknown = invoke(reports_app, data_dir, "statement", "--merchant", "NOSUCHMERCHANT1", "--day", sold["day"])
    assert unknown.exit_code == 1 and unknown.stderr.startswith("error: no merchant")


def test_search_operator_and_refresh(sold: dict[str, Any]) -> None:
    data_dir, day = sold["dir"], sold["day"]
    found = as_json(reports_app, data_dir, "search", "--merchant", CAFE, "--rrn", sold["rrns"][1])
    assert [(r["amount_minor"], r["rrn"]) for r in found["rows"]] == [(3_000, sold["rrns"][1])]
    assert found["next_cursor"] is None
    first = as_json(reports_app, data_dir, "search", "--merchant", CAFE, "--limit", "1")
    second = as_json(reports_app, data_dir, "search", "--merchant", CAFE, "--limit", "1", "--cursor",
                     first["next_cursor"])
    assert [r["amount_minor"] for r in first["rows"] + second["rows"]] == [3_000, 1_250]
    after = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    report = as_json(reports_app, data_dir, "operator", "--from", day, "--to", after)
    assert report["approved_count"] == 2 and report["top_merchants"][0]["merchant_id"] == CAFE
    # rows younger than the fold lag stay in the tail: 0 or 2 folded, never more
    assert as_json(reports_app, data_dir, "refresh")["rows_folded"] in (0, 2)
    assert as_json(reports_app, data_dir, "refresh", "--rebuild")["rows_folded"] in (0, 2)


def test_recon_batch_lists_differences_and_an_operator_resolves_one(sold: dict[str, Any], tmp_path: Path) -> None:
    data_dir, sent = sold["dir"], sold["sent"]
    journal = tmp_path / "journal.csv"
    journal.write_text(journal_csv([TerminalLine(sent[0]["11"], sent[0]["7"], "purchase", 1_250, "approved")]))
    found = as_json(recon_app, data_dir, "batch", "--terminal", "CAFE0001", "--batch", "1", "--journal", str(journal))
    assert [(e["kind"], e["host_amount_minor"]) for e in found] == [("missing_at_terminal", 3_000)]
    listed = as_json(recon_app, data_dir, "list")
    assert [e["id"] for e in listed] == [found[0]["id"]]
    done = as_json(recon_app, data_dir, "resolve", str(found[0]["id"]), "--note", "terminal journal restored")
    assert done["status"] == "resolved" and done["resolved_by"].startswith("cli:")
    assert as_json(recon_app, data_dir, "list") == []
    again = invoke(recon_app, data_dir, "resolve", str(found[0]["id"]), "--note", "another story")
    assert again.exit_code == 1 and again.stderr.startswith("error: ")
    missing = invoke(recon_app, data_dir, "resolve", "424242", "--note", "x")
    assert missing.exit_code == 1 and "no reconciliation exception" in missing.stderr
    journal.write_text("stan,amount\n1,2\n")
    bad = invoke(recon_app, data_dir, "batch", "--terminal", "CAFE0001", "--batch", "1", "--journal", str(journal))
    assert bad.exit_code == 2 and bad.stderr.startswith("error: journal")


def test_recon_batch_reads_the_terminals_own_store_in_the_data_dir(sold: dict[str, Any]) -> None:
    data_dir, sent = sold["dir"], sold["sent"]
    missing = invoke(recon_app, data_dir, "batch", "--terminal", "CAFE0001", "--batch", "1")
    assert missing.exit_code == 2 and "no terminal store" in missing.stderr
    store = TerminalStore(terminal_dir(data_dir, "CAFE0001") / "terminal.db")
    try:
        with store.transaction() as db:
            for message, status in zip(sent, ("approved", "declined"), strict=True):
                store.add_entry(db, "2026-11-22T09:00:00Z", kind="purchase", mti="0200", stan=message["11"],
                                transmission_dt=message["7"], processing_code="000000",
                                amount_minor=int(message["4"]), currency="156", batch_no=1, status=status)
    finally:
        store.close()
    found = as_json(recon_app, data_dir, "batch", "--terminal", "CAFE0001", "--batch", "1")
    assert [(e["kind"], e["transaction_ref"]) for e in found] == [
        ("missing_at_terminal", f"CAFE0001:{sent[1]['7']}:{sent[1]['11']}")]
    assert as_json(recon_app, data_dir, "list", "--terminal", "CAFE0001", "--limit", "1")[0]["id"] == found[0]["id"]
    assert as_json(recon_app, data_dir, "list", "--after", str(found[0]["id"])) == []


def test_recon_payouts_lists_payout_exceptions_and_refuses_a_bad_date(sandbox_copy: Path) -> None:
    assert as_json(recon_app, sandbox_copy, "payouts") == []  # no payout yet: nothing to reconcile
    assert as_json(recon_app, sandbox_copy, "payouts", "--date", "2026-11-23", "--merchant", CAFE) == []
    bad = invoke(recon_app, sandbox_copy, "payouts", "--date", "23/11/2026")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ") and "YYYY-MM-DD" in bad.stderr
