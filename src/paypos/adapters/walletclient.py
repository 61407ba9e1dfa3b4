"""A merchant's client for the wallet gateway (`/wallet/gateway.do`), written from the
platform's published rules in `protocol.alipay`: sign the common parameters RSA2 with the
app's private key, POST them as a form, verify the response's signature with the wallet's
public key. `paypos demo` uses it; integrators can use any Alipay SDK instead.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from paypos import limits
from paypos.protocol import alipay

_GMT8 = timezone(timedelta(hours=8))


class WalletGatewayError(RuntimeError):
    """The gateway answered an error (``body`` holds code, msg, sub_code, sub_msg) or a
    response whose signature does not verify."""

    def __init__(self, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.body = body or {}


class WalletGatewayClient:
    def __init__(self, gateway_url: str, app_id: str, app_private_key: str, wallet_public_key: str,
                 *, timeout_s: float = limits.terminal_response_timeout_s) -> None:
        self.gateway_url, self.app_id = gateway_url, app_id
        self._private, self._wallet_public = app_private_key, wallet_public_key
        self._timeout_s = timeout_s

    def signed_params(self, method: str, biz: dict[str, Any], notify_url: str | None = None,
                      now: datetime | None = None) -> dict[str, str]:
        params = {"app_id": self.app_id, "method": method, "format": alipay.FORMAT, "charset": alipay.CHARSET,
                  "sign_type": alipay.SIGN_TYPE, "version": alipay.VERSION,
                  "timestamp": alipay.format_timestamp((now or datetime.now(_GMT8)).astimezone(_GMT8)
                                                       .replace(tzinfo=None)),
                  "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":"))}
        if notify_url:
            params["notify_url"] = notify_url
        params["sign"] = alipay.sign_rsa2(alipay.signing_string(params), self._private)
        return params

    def call(self, method: str, biz: dict[str, Any], notify_url: str | None = None) -> dict[str, Any]:
        """The method's response body once its signature verifies; business errors included
        (code 40004 with sub_code): callers look at ``code``."""
        response = httpx.post(self.gateway_url, data=self.signed_params(method, biz, notify_url),
                              timeout=self._timeout_s)
        text = response.text
        document = json.loads(text)
        key = alipay.response_key(method)
        if key not in document:
            raise WalletGatewayError(f"gateway error: {document}", document.get(alipay.ERROR_RESPONSE_KEY))
        signature = document.get("sign")
        signed_text = _signed_text(text, key)
        if not signature or not alipay.verify_rsa2(signed_text, signature, self._wallet_public):
            raise WalletGatewayError("the gateway's response signature does not verify", document[key])
        return dict(document[key])


def _signed_text(text: str, key: str) -> str:
    """The exact text of the ``<key>`` value (the platform's rule: from its first ``{`` to the
    matching ``}``; the gateway escapes braces inside strings, so counting is exact)."""
    start = text.index("{", text.index(json.dumps(key)) + len(key) + 2)
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[start:index + 1]
    raise WalletGatewayError("malformed gateway response")
