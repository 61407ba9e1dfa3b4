"""Sandbox wallet users' API tokens for the buyer's REST API (`/v1/wallet/...`) — TEST ONLY.

A token is derived from the sandbox seed, like a sandbox merchant's API key
(:func:`paypos.networks.sandbox.catalog.merchant_api_key`), so `paypos sandbox
wallet-users --json` can print it while nothing stores it:

    wu_test_<user id>_<first 32 hex digits of HMAC-SHA256(SANDBOX_SEED, "wallet-token:" + user id)>

The user id is in the clear so that checking a token costs one HMAC, not one per user;
the MAC is compared in constant time. Anyone holding the (public) sandbox seed can make
any sandbox user's token: these tokens guard test data from mix-ups, not from attackers.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from paypos.networks.sandbox.catalog import SANDBOX_SEED

TOKEN_PREFIX = "wu_test_"
TOKEN_MAC_HEX_DIGITS = 32
# A wallet user id is 16 digits on the platform; accept up to 32 so a token never
# carries an unbounded id into a lookup.
_TOKEN = re.compile(rf"{TOKEN_PREFIX}([0-9]{{1,32}})_([0-9a-f]{{{TOKEN_MAC_HEX_DIGITS}}})")


def _mac(user_id: str) -> str:
    return hmac.new(SANDBOX_SEED, b"wallet-token:" + user_id.encode(), hashlib.sha256).hexdigest()[
        :TOKEN_MAC_HEX_DIGITS
    ]


def wallet_user_token(user_id: str) -> str:
    """The Bearer token of a sandbox wallet user (``wu_test_...``)."""
    return f"{TOKEN_PREFIX}{user_id}_{_mac(user_id)}"


def user_of_token(token: str) -> str | None:
    """The user id a token was made for, or None when it is not a valid token."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    user_id, mac = match.groups()
    return user_id if hmac.compare_digest(mac, _mac(user_id)) else None
