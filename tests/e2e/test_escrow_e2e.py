"""Issue 6's escrow and disputes through the real processes: against `paypos serve`, a merchant
creates escrow requests over REST, the buyer pays by card (with the one-time-code challenge,
read with `paypos sandbox notifications`), the merchant ships, the buyer confirms from the
signed link on the cardholder's phone; a second request is auto-released by `paypos escrow
release-due --as-of` eleven days on; a third is refunded on the buyer's request; a fourth,
whose refund request the merchant rejects, is released by `paypos escrow decide`; a dispute is
lost (`paypos sandbox dispute open`) and another won (the sandbox REST routes). After each:
`GET /v1/balances` exact and `paypos ledger check` exits 0."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from paypos import limits
from paypos.domain.pricing import fee_minor
from paypos.networks.sandbox import catalog
from tests.e2e.conftest import PayposCli
from tests.e2e.hostproc import running_host

CAFE_KEY = catalog.merchant_api_key(catalog.CAFE.merchant_id)[1]
CARD_ID = "visa-cvn18-approve"


class Shop:
    """The merchant's REST client, the buyer's browser-like client and the CLI, on one sandbox."""

    def __init__(self, cli: PayposCli, data_dir: Path, base: str) -> None:
        self.cli, self.data_dir, self.base = cli, data_dir, base
        self.merchant = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {CAFE_KEY}"}, timeout=10)
        self.buyer = httpx.Client(base_url=base, timeout=10, follow_redirects=False)
        self.card = next(c for c in self.run_json("sandbox", "cards", "--json") if c["id"] == CARD_ID)
        self.expected = {"pending": 0, "available": 0, "escrow": 0, "authorized": 0}

    def run_json(self, *args: str) -> Any:
        result = self.cli.run(*args, "--data-dir", str(self.data_dir))
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)

    def post(self, path: str, body: dict[str, Any] | None = None, status: int = 200) -> dict[str, Any]:
        response = self.merchant.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        assert response.status_code == status, response.text
        return response.json()  # type: ignore[no-any-return]

    def status(self, request_id: str) -> str:
        return str(self.merchant.get(f"/v1/payment_requests/{request_id}").json()["status"])

    def notices(self, reference_end: str) -> list[str]:
        rows = self.run_json("sandbox", "notifications", "--card", CARD_ID, "--json")
        return [str(n["text"]) for n in rows if str(n["reference"]).endswith(reference_end)]

    def paid_request(self, amount: int, order_id: str, *, escrow: bool) -> str:
        """Create over REST and pay by card on the hosted checkout (answering a challenge if asked)."""
        created = self.post("/v1/payment_requests", {"amount": amount, "currency": "CNY", "order_id": order_id,
                                                     "escrow": escrow}, status=201)
        path = f"/pay/{created['id']}"
        posted = self.buyer.post(f"{path}/card", data={
            "pan": self.card["pan"], "expiry": f"{self.card['expiry'][2:]}/{self.card['expiry'][:2]}",
            "cvv2": self.card["cvv2"], "name": "E2E Buyer"})
        assert posted.status_code == 303, posted.text
        if posted.headers["location"].endswith("/challenge"):
            (text,) = self.notices(":otp")
            otp = re.search(r"\] (\d{6}) is your code", text).group(1)  # type: ignore[union-attr]
            posted = self.buyer.post(f"{path}/challenge", data={"otp": otp})
        assert posted.headers["location"].endswith("/result")
        assert ">Paid<" in self.buyer.get(posted.headers["location"]).text
        return str(created["id"])

    def buyer_link(self, request_id: str) -> str:
        (text,) = self.notices(f"{request_id}:escrow_link")
        return re.search(r"https?://[^/]+(/pay/\S+)", text).group(1)  # type: ignore[union-attr]

    def buyer_post(self, link: str, action: str, **form: str) -> None:
        path, sig = link.split("?sig=")
        answered = self.buyer.post(path.replace("/confirm", f"/{action}"), data={"sig": sig} | form)
        assert answered.status_code == 303, answered.text

    def check(self, **moved: int) -> None:
        """Balances move by exactly ``moved`` and the ledger checks clean."""
        for name, delta in moved.items():
            self.expected[name] += delta
        (balance,) = self.merchant.get("/v1/balances").json()["data"]
        assert balance == {"currency": "CNY", **self.expected}
        checked = self.cli.run("ledger", "check", "--data-dir", str(self.data_dir))
        assert checked.returncode == 0, checked.stdout + checked.stderr


def net(amount: int) -> int:
    return amount - fee_minor(amount)


def test_escrow_released_auto_released_refunded_and_disputes_lost_and_won_through_paypos_serve(
        cli: PayposCli, sandbox_copy: Path, tmp_path: Path) -> None:
    with running_host(cli.command, sandbox_copy, tmp_path / "serve.log") as (_iso, http_port):
        shop = Shop(cli, sandbox_copy, f"http://127.0.0.1:{http_port}")
        ship = {"carrier": "SF Express", "tracking_number": "SF100200300"}

        # 1. pay by card with the challenge → held → shipped → the buyer confirms → released
        first = shop.paid_request(60_000, "escrow-e2e-1", escrow=True)
        assert shop.status(first) == "held"
        shop.check(escrow=net(60_000))
        assert shop.post(f"/v1/payment_requests/{first}/ship", ship)["status"] == "shipped"
        link = shop.buyer_link(first)
        assert "SF100200300" in shop.buyer.get(link).text
        shop.buyer_post(link, "confirm")
        assert shop.status(first) == "released"
        shop.check(escrow=-net(60_000), pending=net(60_000))

        # 2. shipped and never confirmed: released by `paypos escrow release-due` 11 days on
        second = shop.paid_request(2_000, "escrow-e2e-2", escrow=True)
        shop.post(f"/v1/payment_requests/{second}/ship", ship)
        soon = (datetime.now(UTC) + timedelta(days=9)).isoformat()
        assert shop.run_json("escrow", "release-due", "--as-of", soon) == {"released": []}
        later = (datetime.now(UTC) + timedelta(days=11)).isoformat()
        assert shop.run_json("escrow", "release-due", "--as-of", later) == {"released": [second]}
        assert shop.status(second) == "released"
        shop.check(pending=net(2_000))

        # 3. the buyer asks for a refund from the signed page; the merchant accepts
        third = shop.paid_request(3_000, "escrow-e2e-3", escrow=True)
        shop.buyer_post(shop.buyer_link(third), "refund_request", reason="changed my mind")
        accepted = shop.post(f"/v1/payment_requests/{third}/refund_request/accept")
        assert (accepted["status"], accepted["refund"]["amount"]) == ("refunded", 3_000)
        shop.check()

        # 3b. the merchant rejects a refund request; the operator releases with `paypos escrow decide`
        rejected = shop.paid_request(2_500, "escrow-e2e-3b", escrow=True)
        shop.buyer_post(shop.buyer_link(rejected), "refund_request", reason="wrong colour")
        assert shop.post(f"/v1/payment_requests/{rejected}/refund_request/reject")["status"] == "refund_disputed"
        shop.check(escrow=net(2_500))
        assert shop.run_json("escrow", "decide", rejected, "--release")["status"] == "released"
        shop.check(escrow=-net(2_500), pending=net(2_500))

        # 4. a dispute opened by the sandbox issuer (CLI) and lost: the card gets the amount back
        fourth = shop.paid_request(10_000, "dispute-e2e-4", escrow=False)
        payment = shop.merchant.get("/v1/payments", params={"payment_request": fourth}).json()["data"][0]["id"]
        shop.check(pending=net(10_000))
        lost = shop.run_json("sandbox", "dispute", "open", "--payment", payment, "--reason", "10.4")
        shop.check(pending=-10_000 - limits.dispute_fee_minor)
        assert shop.post(f"/v1/sandbox/disputes/{lost['id']}/close", {"outcome": "lost"})["status"] == "lost"
        shop.check()

        # 5. a dispute opened over REST, answered with evidence, won: the amount comes back, the fee does not
        fifth = shop.paid_request(10_000, "dispute-e2e-5", escrow=False)
        payment = shop.merchant.get("/v1/payments", params={"payment_request": fifth}).json()["data"][0]["id"]
        won = shop.post("/v1/sandbox/disputes", {"payment": payment, "reason_code": "13.1"}, status=201)
        shop.check(pending=net(10_000) - 10_000 - limits.dispute_fee_minor)
        assert shop.post(f"/v1/disputes/{won['id']}/evidence", {"text": "signed delivery note"})["status"] == \
            "under_review"
        assert shop.post(f"/v1/sandbox/disputes/{won['id']}/close", {"outcome": "won"})["status"] == "won"
        shop.check(pending=10_000)
        assert [d["status"] for d in shop.merchant.get("/v1/disputes").json()["data"]] == ["won", "lost"]
    assert shop.card["pan"] not in (tmp_path / "serve.log").read_text()
