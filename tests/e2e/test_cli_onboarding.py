"""`paypos merchants applications ...`, `paypos merchants suspend|reactivate` and `paypos
terminals ...` (the Typer app, in-process) on a sandbox data dir: an application through
maker-checker to an active merchant with a terminal, and the one-line refusals (exit 1) and
bad input (exit 2)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from paypos.entrypoints.cli import app

CLEAN_ENV: dict[str, str | None] = {k: None for k in os.environ if k.startswith("PAYPOS_")}
BUSINESS = ["--kind", "business", "--legal-name", "Lotus Tea House", "--id-number", "360426199101010071",
            "--licence-number", "91110000600037341L", "--phone", "13912345678", "--mcc", "5814",
            "--city", "Hangzhou", "--address", "1 West Lake Road"]


def paypos(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--data-dir", str(data_dir)], env={**CLEAN_ENV, "COLUMNS": "200"})


def paypos_json(data_dir: Path, *args: str) -> Any:
    result = paypos(data_dir, *args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def one_line_error(result: Result, code: int, text: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert text in result.stderr


def test_an_application_becomes_an_active_merchant_with_a_terminal(sandbox_copy: Path, tmp_path: Path) -> None:
    created = paypos_json(sandbox_copy, "merchants", "applications", "create", *BUSINESS, "--operator", "alice")
    scan = tmp_path / "licence.pdf"
    scan.write_bytes(b"%PDF-1.4 licence")
    document = paypos_json(sandbox_copy, "merchants", "applications", "documents", "add", created["id"], str(scan),
                           "--operator", "alice")
    assert document["media_type"] == "application/pdf"
    paypos_json(sandbox_copy, "merchants", "applications", "submit", created["id"], "--operator", "alice")
    one_line_error(paypos(sandbox_copy, "merchants", "applications", "approve", created["id"], "--operator", "alice"),
                   1, "maker-checker")
    approved = paypos_json(sandbox_copy, "merchants", "applications", "approve", created["id"], "--operator", "bob")
    merchant = approved["merchant_id"]
    request = paypos_json(sandbox_copy, "terminals", "apply", "--merchant", merchant, "--location", "Counter 1")
    package = paypos_json(sandbox_copy, "terminals", "provision", request["request_id"])["package"]
    one_line_error(paypos(sandbox_copy, "terminals", "activate", package["terminal_id"], "--code", "WRONGWRONG"),
                   1, "wrong activation code")
    activated = paypos_json(sandbox_copy, "terminals", "activate", package["terminal_id"],
                            "--code", package["activation_code"])
    assert activated["status"] == "active"
    assert paypos_json(sandbox_copy, "merchants", "show", merchant)["status"] == "active"
    shown = paypos_json(sandbox_copy, "merchants", "applications", "show", created["id"])
    assert "360426199101010071" not in json.dumps(shown) and shown["id_number_masked"] == "360426********0071"
    revealed = paypos_json(sandbox_copy, "merchants", "applications", "show", created["id"], "--reveal",
                           "--operator", "bob")
    assert revealed["id_number"] == "360426199101010071"
    saved = tmp_path / "copy.pdf"
    paypos_json(sandbox_copy, "merchants", "applications", "documents", "save", document["id"], "--to", str(saved))
    assert saved.read_bytes() == b"%PDF-1.4 licence"


def test_bad_fields_exit_2_naming_the_field(sandbox_copy: Path, tmp_path: Path) -> None:
    bad = [*BUSINESS[:-2], "--address", "1 West Lake Road"]
    bad[bad.index("91110000600037341L")] = "91110000600037341A"
    one_line_error(paypos(sandbox_copy, "merchants", "applications", "create", *bad), 2, "licence_number:")
    created = paypos_json(sandbox_copy, "merchants", "applications", "create", *BUSINESS)
    fake = tmp_path / "photo.png"
    fake.write_bytes(b"MZ\x90\x00 not a png")
    one_line_error(paypos(sandbox_copy, "merchants", "applications", "documents", "add", created["id"], str(fake)),
                   2, "file:")
    one_line_error(paypos(sandbox_copy, "merchants", "applications", "reject", created["id"], "--reason", "nope"),
                   2, "reasons:")


def test_a_suspended_merchant_and_unknown_ids_are_refused_in_one_line(sandbox_copy: Path) -> None:
    assert paypos_json(sandbox_copy, "merchants", "suspend", "PPCAFE000000001", "--reason", "review")["status"] \
        == "suspended"
    one_line_error(paypos(sandbox_copy, "terminals", "apply", "--merchant", "PPCAFE000000001", "--location", "x"),
                   1, "is suspended")
    assert paypos_json(sandbox_copy, "merchants", "reactivate", "PPCAFE000000001")["status"] == "active"
    one_line_error(paypos(sandbox_copy, "terminals", "suspend", "NOPE0000"), 1, "no terminal")
    one_line_error(paypos(sandbox_copy, "merchants", "applications", "show", "app_nope"), 1, "no application")
    listed = paypos_json(sandbox_copy, "terminals", "list", "--merchant", "PPCAFE000000001")
    assert {t["terminal_id"] for t in listed} == {"CAFE0001", "CAFE0002"}
