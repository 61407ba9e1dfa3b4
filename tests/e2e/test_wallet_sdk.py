"""Acceptance of issue 5's merchant gateway: the public python-alipay-sdk (PyPI
`python-alipay-sdk`, `import alipay`), unchanged but for its gateway URL, against the real
`paypos serve` over HTTP.

The buyer's side (scanning the QR, showing a payment code) runs in this process through
services.wallet on the server's own SQLite database, as the wallet app would. The merchant's
notify_url is a small HTTP server here that verifies each notice with the SDK's `verify`,
applies it once by notify_id, and answers HTTP 500, then "fail", then "success": every
notice arrives three times and takes effect once.
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from alipay import AliPay

from paypos.bootstrap import App, bootstrap
from paypos.config import Settings
from paypos.networks.sandbox.wallet_keys import APP_KEYS, WALLET_PUBLIC_KEY
from paypos.protocol import alipay as wire
from paypos.protocol import qr
from paypos.services import wallet
from tests.e2e import hostproc
from tests.e2e.hostproc import running_host

if TYPE_CHECKING:
    from conftest import PayposCli

CAFE_APP, SHOP_APP = "2021000000000001", "2021000000000002"
LIN = "2088100000000001"
NOTICES_TIMEOUT_S = 30


def sandbox_app_keys(cli: PayposCli, data_dir: Path) -> dict[str, Any]:
    """The cafe app's row of `paypos sandbox wallet-apps --json`: its TEST key pair and the
    wallet's public key, as a merchant configures its integration."""
    listed = cli.run("sandbox", "wallet-apps", "--json", "--data-dir", str(data_dir))
    assert listed.returncode == 0, listed.stderr
    row = next(row for row in json.loads(listed.stdout) if row["app_id"] == CAFE_APP)
    assert row["wallet_public_key"] == WALLET_PUBLIC_KEY
    return row


def sdk_client(keys: dict[str, Any], gateway_url: str, notify_url: str | None,
               private_key: str | None = None) -> AliPay:
    client = AliPay(appid=keys["app_id"], app_notify_url=notify_url,
                    app_private_key_string=private_key or keys["app_private_key"],
                    alipay_public_key_string=keys["wallet_public_key"], sign_type="RSA2")
    client._gateway = gateway_url  # the only change: the SDK has no public setting for it
    return client


class MerchantSite:
    """The merchant's notify_url: verifies with the SDK, applies each notice once."""

    def __init__(self, verifier: AliPay) -> None:
        self.verifier = verifier
        self.deliveries: dict[str, int] = {}  # notify_id -> times received
        self.applied: list[dict[str, str]] = []  # what changed the merchant's orders, once each
        self.forged = 0
        self.lock = threading.Lock()

    def receive(self, form: dict[str, str]) -> tuple[int, str]:
        data = dict(form)
        signature = data.pop("sign", "")
        if not self.verifier.verify(data, signature):
            with self.lock:
                self.forged += 1
            return 400, "bad signature"
        with self.lock:
            seen = self.deliveries.get(form["notify_id"], 0)
            self.deliveries[form["notify_id"]] = seen + 1
            if seen == 0:  # idempotent by notify_id: a repeat never changes an order twice
                self.applied.append(form)
        # A flaky endpoint: the change is stored, but the acknowledgement fails twice.
        return [(500, "busy"), (200, "fail")][seen] if seen < 2 else (200, "success")


@pytest.fixture(scope="module")
def served(cli: PayposCli, sandbox_dir: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """`paypos serve` on a private copy of the sandbox, for the module: (data dir, gateway
    URL, the cafe app's keys)."""
    work = tmp_path_factory.mktemp("wallet-sdk")
    data_dir = Path(shutil.copytree(sandbox_dir, work / "data"))
    keys = sandbox_app_keys(cli, data_dir)
    with running_host(cli.command, data_dir, work / "serve.log", env=cli.env()) as (_, http_port):
        yield data_dir, f"http://127.0.0.1:{http_port}/wallet/gateway.do", keys


@pytest.fixture
def keys(served: tuple[Path, str, dict[str, Any]]) -> dict[str, Any]:
    return served[2]


@pytest.fixture
def merchant_site(keys: dict[str, Any]) -> Iterator[tuple[MerchantSite, str]]:
    site = MerchantSite(sdk_client(keys, "http://127.0.0.1:9/unused", None))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode("utf-8")
            status, answer = site.receive(wire.decode_form(body))
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield site, f"http://127.0.0.1:{server.server_address[1]}/alipay/notify"
    server.shutdown()
    server.server_close()


@pytest.fixture
def buyer(served: tuple[Path, str, dict[str, Any]]) -> Iterator[App]:
    """The wallet app's side, on the server's database."""
    app = bootstrap(Settings(data_dir=served[0], database_url=None, data_key=None), initialising=False)
    yield app
    app.close()


def scan_and_pay(buyer: App, payload: str) -> dict[str, Any]:
    with buyer.uow() as uow:
        paid = wallet.scan(uow, buyer.vault, buyer.clock(), payload, LIN)
        uow.commit()
    return paid


def payment_code(buyer: App) -> str:
    with buyer.uow(write=False) as uow:
        return str(wallet.payment_code(uow, buyer.vault, buyer.clock(), LIN)["code"])


def wait_for(condition: Any, what: str) -> None:
    hostproc.wait_for(condition, what, NOTICES_TIMEOUT_S, poll_s=0.1)


def test_python_alipay_sdk_runs_the_whole_trade_cycle_against_the_real_server(
    served: tuple[Path, str, dict[str, Any]], keys: dict[str, Any], merchant_site: tuple[MerchantSite, str],
    buyer: App,
) -> None:
    site, notify_url = merchant_site
    client = sdk_client(keys, served[1], notify_url)

    created = client.api_alipay_trade_precreate(subject="两杯拿铁", out_trade_no="sdk-order-1",
                                                total_amount="88.88")
    assert (created["code"], created["out_trade_no"]) == ("10000", "sdk-order-1")
    assert qr.decode_mpm(created["qr_code"])["54"] == "88.88"
    assert client.api_alipay_trade_query(out_trade_no="sdk-order-1")["trade_status"] == "WAIT_BUYER_PAY"

    scan_and_pay(buyer, created["qr_code"])  # the buyer scans the QR and pays from balance

    queried = client.api_alipay_trade_query(out_trade_no="sdk-order-1")
    assert (queried["code"], queried["trade_status"], queried["buyer_user_id"]) == ("10000", "TRADE_SUCCESS", LIN)
    refunded = client.api_alipay_trade_refund(refund_amount="10.00", out_trade_no="sdk-order-1",
                                              out_request_no="sdk-refund-1")
    assert (refunded["code"], refunded["fund_change"], refunded["refund_fee"]) == ("10000", "Y", "10.00")
    again = client.api_alipay_trade_refund(refund_amount="10.00", out_trade_no="sdk-order-1",
                                           out_request_no="sdk-refund-1")
    assert (again["fund_change"], again["refund_fee"]) == ("N", "10.00")
    too_much = client.api_alipay_trade_refund(refund_amount="80.00", out_trade_no="sdk-order-1",
                                              out_request_no="sdk-refund-2")
    assert (too_much["code"], too_much["sub_code"]) == ("40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
    found = client.api_alipay_trade_fastpay_refund_query("sdk-refund-1", out_trade_no="sdk-order-1")
    assert (found["code"], found["refund_amount"], found["refund_status"]) == ("10000", "10.00", "REFUND_SUCCESS")

    paid = client.api_alipay_trade_pay("sdk-bar-1", "bar_code", payment_code(buyer), "Bun", total_amount="12.00")
    assert (paid["code"], paid["buyer_user_id"], paid["total_amount"]) == ("10000", LIN, "12.00")
    cancelled = client.api_alipay_trade_cancel(out_trade_no="sdk-bar-1")
    assert (cancelled["code"], cancelled["action"]) == ("10000", "refund")
    assert client.api_alipay_trade_query(out_trade_no="sdk-bar-1")["trade_status"] == "TRADE_CLOSED"
    missing = client.api_alipay_trade_query(out_trade_no="never")
    assert (missing["code"], missing["sub_code"]) == ("40004", "ACQ.TRADE_NOT_EXIST")

    # paid, partly refunded; paid by code, cancelled: four notices, three deliveries each
    wait_for(lambda: len(site.deliveries) == 4 and all(n == 3 for n in site.deliveries.values()),
             "four notices acknowledged on their third delivery")
    time.sleep(1.0)  # a notice acknowledged is never sent again
    assert sorted(site.deliveries.values()) == [3, 3, 3, 3]

    assert site.forged == 0
    assert len(site.applied) == 4
    changes = sorted((n["out_trade_no"], n["trade_status"], n.get("refund_fee", "")) for n in site.applied)
    assert changes == [("sdk-bar-1", "TRADE_CLOSED", "12.00"), ("sdk-bar-1", "TRADE_SUCCESS", ""),
                       ("sdk-order-1", "TRADE_SUCCESS", ""), ("sdk-order-1", "TRADE_SUCCESS", "10.00")]
    with buyer.uow(write=False) as uow:
        trade_nos = {n["trade_no"] for n in site.applied}
        rows = [n for trade_no in trade_nos for n in uow.wallet.notifications_of(trade_no)]
    assert [(n.state, n.attempts) for n in rows] == [("delivered", 3)] * 4
    tampered = dict(site.applied[0], total_amount="0.01")
    signature = tampered.pop("sign")
    assert not site.verifier.verify(tampered, signature)  # the merchant refuses a forged notice


def test_a_forged_signature_is_refused_through_the_real_server(
    served: tuple[Path, str, dict[str, Any]], keys: dict[str, Any]
) -> None:
    gateway = served[1]
    forger = sdk_client(keys, gateway, None, private_key=APP_KEYS[SHOP_APP][0])
    honest = sdk_client(keys, gateway, None)

    refused = forger.api_alipay_trade_precreate(subject="x", out_trade_no="forged-1", total_amount="1.00")

    params = dict(wire.decode_form(honest.client_api("alipay.trade.query", {"out_trade_no": "forged-1"})))
    params["biz_content"] = params["biz_content"].replace("forged-1", "forged-2")
    tampered = httpx.get(gateway, params=params, timeout=10)
    not_there = honest.api_alipay_trade_query(out_trade_no="forged-1")

    assert (refused["code"], refused["msg"], refused["sub_code"]) == ("40002", "Invalid Arguments", "isv.invalid-signature")
    assert refused["sub_msg"].startswith("验签出错") and "&amp;" in refused["sub_msg"]
    body = json.loads(tampered.text)["alipay_trade_query_response"]
    assert (tampered.status_code, body["sub_code"]) == (200, "isv.invalid-signature")
    assert (not_there["code"], not_there["sub_code"]) == ("40004", "ACQ.TRADE_NOT_EXIST")  # nothing was created
