"""Issue 6's hosted checkout through the real processes: a merchant creates a payment request
over REST with its API key against `paypos serve`, the buyer posts the card form over HTTP,
the one-time code is read from the sandbox outbox with `paypos sandbox notifications`, the
request is paid, refunded in part, the balances add up and `paypos ledger check` passes."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx

from paypos.domain.pricing import fee_minor
from paypos.networks.sandbox import catalog
from tests.e2e.conftest import PayposCli
from tests.e2e.hostproc import running_host

CAFE_KEY = catalog.merchant_api_key(catalog.CAFE.merchant_id)[1]


def run_json(cli: PayposCli, data_dir: Path, *args: str) -> Any:
    result = cli.run(*args, "--json", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_buyer_pays_through_the_hosted_checkout_with_a_challenge_and_the_merchant_refunds(
        cli: PayposCli, sandbox_copy: Path, tmp_path: Path) -> None:
    card = next(c for c in run_json(cli, sandbox_copy, "sandbox", "cards") if c["id"] == "visa-cvn18-approve")
    amount = 60_000  # above the challenge threshold
    with running_host(cli.command, sandbox_copy, tmp_path / "serve.log") as (_iso, http_port):
        base = f"http://127.0.0.1:{http_port}"
        merchant = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {CAFE_KEY}"}, timeout=10)
        buyer = httpx.Client(timeout=10, follow_redirects=False)
        created = merchant.post("/v1/payment_requests", headers={"Idempotency-Key": str(uuid.uuid4())},
                                json={"amount": amount, "currency": "CNY", "order_id": "e2e-1",
                                      "description": "A teapot"})
        assert created.status_code == 201, created.text
        request_id, checkout_url = created.json()["id"], created.json()["checkout_url"]
        page = buyer.get(checkout_url)
        assert page.status_code == 200 and "A teapot" in page.text and "CNY 600.00" in page.text
        posted = buyer.post(f"{checkout_url}/card", data={
            "pan": card["pan"], "expiry": f"{card['expiry'][2:]}/{card['expiry'][:2]}", "cvv2": card["cvv2"],
            "name": "E2E Buyer"})
        assert posted.status_code == 303 and posted.headers["location"].endswith("/challenge"), posted.text
        notices = run_json(cli, sandbox_copy, "sandbox", "notifications", "--card", card["id"])
        (otp_text,) = [n["text"] for n in notices if str(n["reference"]).endswith(":otp")]
        otp = re.search(r"\] (\d{6}) is your code", otp_text).group(1)  # type: ignore[union-attr]
        answered = buyer.post(f"{checkout_url}/challenge", data={"otp": otp})
        assert answered.status_code == 303 and answered.headers["location"].endswith("/result")
        assert ">Paid<" in buyer.get(f"{base}{answered.headers['location']}").text
        assert merchant.get(f"/v1/payment_requests/{request_id}").json()["status"] == "paid"
        refund = merchant.post("/v1/refunds", headers={"Idempotency-Key": str(uuid.uuid4())},
                               json={"payment_request": request_id, "amount": 10_000, "reason": "chipped lid"})
        assert refund.status_code == 201, refund.text
        (balance,) = merchant.get("/v1/balances").json()["data"]
        assert balance == {"currency": "CNY", "pending": amount - fee_minor(amount) - 10_000, "available": 0,
                           "escrow": 0, "authorized": 0}
        assert merchant.get(f"/v1/payment_requests/{request_id}").json()["status"] == "partially_refunded"
    checked = cli.run("ledger", "check", "--data-dir", str(sandbox_copy))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert card["pan"] not in (tmp_path / "serve.log").read_text()
