"""The settlement commands as an operator runs them (real `paypos` subprocesses on a copy of
the sandbox): a clearing run killed part way (os._exit after the first merchant) resumes and
pays each merchant once; the clearing file goes to the sandbox bank and its statement comes
back; a tampered file is refused whole; `paypos ledger check` stays clean."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from paypos.bootstrap import bootstrap
from paypos.config import load_settings
from paypos.domain.ledger import TransferRequest
from paypos.networks.sandbox.catalog import MERCHANTS
from paypos.services import settlement
from paypos.services.sandbox import merchant_owner
from tests.e2e.conftest import PayposCli

CARDS = {"CNY": "6222021234567890128", "USD": "DE89370400440532013000"}


def prepare(data_dir: Path) -> None:
    """In process (fast): each sandbox merchant binds a verified account and sells 100.00."""
    # Stamped five minutes ago: a run closes a window no later than a minute before now.
    app = bootstrap(load_settings(data_dir, None), lambda: datetime.now(UTC) - timedelta(minutes=5),
                    initialising=False)
    try:
        with app.uow() as uow:
            for merchant in MERCHANTS:
                bound = settlement.bind_bank_account(uow, app.vault, merchant.merchant_id, CARDS[merchant.currency],
                                                     merchant.name, "cli:test", app.clock())
                amounts = settlement.micro_deposits(uow, bound["id"])["amounts_minor"]
                settlement.confirm_micro_deposits(uow, merchant.merchant_id, bound["id"], tuple(amounts),
                                                  "cli:test", app.clock())
                owner = merchant_owner(merchant.merchant_id)
                card = uow.ledger.open_account("test:cards", "test", "card_funding", merchant.currency).id
                pending = uow.ledger.open_account(owner, owner, "merchant_pending", merchant.currency).id
                uow.ledger.create_transfers([TransferRequest(f"e2e:{merchant.merchant_id}", card, pending, 10_000,
                                                             merchant.currency, code="sale")], app.clock())
            uow.commit()
    finally:
        app.close()


def as_json(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_killed_clearing_run_resumes_pays_once_and_the_bank_statement_settles_it(
        cli: PayposCli, sandbox_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(sandbox_dir, data_dir)
    prepare(data_dir)
    # The window of tomorrow's T+1 run closes at today's 23:00 in Shanghai: after the sales above.
    day = (datetime.now(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=1)).isoformat()
    where = ("--data-dir", str(data_dir))
    killed = cli.run("settlement", "run", "--date", day, "--merchants-per-transaction", "1", "--json", *where,
                     env=cli.env(**{settlement.CRASH_AFTER_ENV: "1"}))
    assert killed.returncode == 70, killed.stderr
    (stopped,) = as_json(cli.run("settlement", "runs", "--json", *where))
    assert (stopped["status"], stopped["merchants_done"], stopped["merchants_total"]) == ("running", 1, 2)
    resumed = as_json(cli.run("settlement", "run", "--date", day, "--json", *where))
    assert (resumed["status"], resumed["merchants_done"], resumed["payouts"]) == ("done", 2, 2)
    again = as_json(cli.run("settlement", "run", "--date", day, "--json", *where))
    assert again == resumed
    payouts = as_json(cli.run("settlement", "payouts", "--json", *where))
    assert sorted((p["merchant_id"], p["amount_minor"]) for p in payouts) == [
        ("PPCAFE000000001", 10_000), ("PPSHOP000000001", 10_000)]

    clearing, statement = tmp_path / "clearing.csv", tmp_path / "statement.csv"
    assert as_json(cli.run("settlement", "file", "--date", day, "--out", str(clearing), "--json", *where))[
        "payouts"] == 2
    tampered = tmp_path / "tampered.csv"
    tampered.write_bytes(clearing.read_bytes().replace(b",10000,CNY", b",10009,CNY"))
    refused = cli.run("bank", "import", str(tampered), "--out", str(statement), *where)
    assert refused.returncode == 1 and "error: file refused: control record hash" in refused.stderr
    assert not statement.exists()
    assert as_json(cli.run("bank", "import", str(clearing), "--out", str(statement), "--json", *where)) == {
        "statement": str(statement), "paid": 2, "returned": 0}
    applied = as_json(cli.run("settlement", "statement", "import", str(statement), "--json", *where))
    assert (applied["paid"], applied["skipped"]) == (2, 0)
    payouts = as_json(cli.run("settlement", "payouts", "--json", *where))
    assert {p["status"] for p in payouts} == {"paid"}
    check = cli.run("ledger", "check", *where)
    assert check.returncode == 0, check.stdout + check.stderr
