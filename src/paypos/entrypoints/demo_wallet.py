"""`paypos demo`'s wallet part: a QR payment and a credit-pay payment through the real
gateway, as a merchant and a buyer would make them.

The merchant (sandbox app of the café) calls `/wallet/gateway.do` over HTTP, signed with its
TEST key; the buyer (sandbox user Lin Wei) pays with the wallet app's use cases, as
`paypos wallet scan` does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from paypos.adapters.qrimage import render_qr_text
from paypos.adapters.walletclient import WalletGatewayClient
from paypos.bootstrap import App
from paypos.networks.sandbox import wallet_catalog
from paypos.services import creditpay
from paypos.services import wallet as wallet_service

DEMO_BUYER = wallet_catalog.USERS[0].user_id


@dataclass
class WalletDemoPayment:
    what: str
    out_trade_no: str
    amount: str
    funding: str
    status: str
    qr_text: str


def run_wallet_demo(paypos: App, gateway_url: str) -> tuple[list[WalletDemoPayment], dict[str, Any]]:
    """Two payments: a dynamic QR paid from the wallet balance, and one by credit pay in 6
    installments that the merchant subsidises; returns them and the buyer's credit account."""
    app = wallet_catalog.APPS[0]
    with paypos.uow(write=False) as uow:
        keys = {row["app_id"]: row for row in wallet_service.list_apps(uow, paypos.vault, gateway_url)}
    client = WalletGatewayClient(gateway_url, app.app_id, keys[app.app_id]["app_private_key"],
                                 keys[app.app_id]["wallet_public_key"])
    run = uuid.uuid4().hex[:8]
    payments = [
        _pay(paypos, client, "QR, wallet balance", f"demo-{run}-qr", "36.00", {}, "balance", 0),
        _pay(paypos, client, "QR, credit pay 6 x (merchant subsidy)", f"demo-{run}-hb", "1200.00",
             {"extend_params": {"hb_fq_num": "6", "hb_fq_seller_percent": "100"}}, "creditpay", 6),
    ]
    with paypos.uow() as uow:
        account = creditpay.bills(uow, paypos.clock(), DEMO_BUYER)
        uow.commit()
    return payments, account


def _pay(paypos: App, client: WalletGatewayClient, what: str, out_trade_no: str, amount: str,
         extra: dict[str, Any], funding: str, installments: int) -> WalletDemoPayment:
    created = client.call("alipay.trade.precreate", {"out_trade_no": out_trade_no, "total_amount": amount,
                                                     "subject": "paypos demo", **extra})
    if created.get("code") != "10000":
        raise RuntimeError(f"precreate failed: {created}")
    payload = str(created["qr_code"])
    with paypos.uow() as uow:  # the buyer scans the code in the wallet app
        wallet_service.scan(uow, paypos.vault, paypos.clock(), payload, DEMO_BUYER, funding=funding,
                            installments=installments)
        uow.commit()
    queried = client.call("alipay.trade.query", {"out_trade_no": out_trade_no})
    return WalletDemoPayment(what, out_trade_no, amount, funding if not installments else f"{funding} x{installments}",
                             str(queried.get("trade_status")), render_qr_text(payload))
