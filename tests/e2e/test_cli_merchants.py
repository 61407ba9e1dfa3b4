"""`paypos merchants api-keys create|list|revoke` (the Typer app, in-process) on a sandbox data
dir: the secret once, the listing without it, revocation, and the one-line refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from paypos.entrypoints.cli_merchants import merchants_app
from paypos.networks.sandbox import catalog

CAFE = catalog.CAFE.merchant_id
CAFE_KEY_ID = catalog.merchant_api_key(CAFE)[0]
CLEAN_ENV: dict[str, str | None] = {k: None for k in os.environ if k.startswith("PAYPOS_")}


def api_keys(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(merchants_app, ["api-keys", *args, "--data-dir", str(data_dir)],
                              env={**CLEAN_ENV, "COLUMNS": "200"})


def api_keys_json(data_dir: Path, *args: str) -> Any:
    result = api_keys(data_dir, *args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_create_prints_the_secret_once_and_list_never(sandbox_copy: Path) -> None:
    created = api_keys_json(sandbox_copy, "create", "--merchant", CAFE, "--label", "till-2")
    assert created["secret"].startswith("sk_test_") and created["status"] == "active"
    listing = api_keys(sandbox_copy, "list", "--merchant", CAFE)
    assert listing.exit_code == 0 and created["id"] in listing.stdout and created["secret"] not in listing.stdout
    assert {k["id"] for k in api_keys_json(sandbox_copy, "list", "--merchant", CAFE)} == {created["id"], CAFE_KEY_ID}


def test_revoke_refuses_the_last_active_key_then_revokes_after_a_rotation(sandbox_copy: Path) -> None:
    refused = api_keys(sandbox_copy, "revoke", "--merchant", CAFE, CAFE_KEY_ID)
    assert refused.exit_code == 1 and refused.stderr.startswith("error: ") and "last active" in refused.stderr
    api_keys_json(sandbox_copy, "create", "--merchant", CAFE)
    assert api_keys_json(sandbox_copy, "revoke", "--merchant", CAFE, CAFE_KEY_ID)["status"] == "revoked"


def test_an_unknown_merchant_or_key_exits_1_in_one_line(sandbox_copy: Path) -> None:
    for result in (api_keys(sandbox_copy, "list", "--merchant", "NOPE"),
                   api_keys(sandbox_copy, "revoke", "--merchant", CAFE, "key_test_0000000000000000")):
        assert result.exit_code == 1, (result.stdout, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
