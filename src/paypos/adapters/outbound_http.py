"""Outbound POSTs to merchants' URLs (wallet notifications, webhooks): bounded in time and in
the answer bytes read, never following redirects, never using proxies from the environment."""

from __future__ import annotations

import time
from collections.abc import Mapping

import httpx


def post_bounded(url: str, content: bytes, headers: Mapping[str, str], *, timeout_s: float,
                 answer_bytes_max: int) -> tuple[int, str]:
    """POST ``content``; (HTTP status, the answer's first ``answer_bytes_max`` bytes as text).

    ``timeout_s`` bounds each of connect, send and read; the whole answer is read for at most
    three times that. A redirect is an answer (its status), not followed."""
    deadline = time.monotonic() + 3 * timeout_s
    with httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
        with client.stream("POST", url, content=content, headers=dict(headers)) as response:
            received = bytearray()
            for chunk in response.iter_bytes():
                received += chunk
                if len(received) >= answer_bytes_max or time.monotonic() > deadline:
                    break
            return response.status_code, bytes(received[:answer_bytes_max]).decode("utf-8", "replace")
