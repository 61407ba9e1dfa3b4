"""Shared by the online POS API tests (payment requests, payments, checkout): a TestClient on
an app with the sandbox seeded, and the sandbox merchants' API keys as Bearer headers."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from paypos.bootstrap import App, init_database
from paypos.entrypoints.api import create_app
from paypos.networks.sandbox import catalog

__all__ = ["CAFE", "CAFE_AUTH", "SHOP_AUTH", "TestClient", "sandbox_client"]

CAFE = catalog.CAFE.merchant_id
CAFE_AUTH = {"Authorization": f"Bearer {catalog.merchant_api_key(CAFE)[1]}"}
SHOP_AUTH = {"Authorization": f"Bearer {catalog.merchant_api_key(catalog.SHOP.merchant_id)[1]}"}


@contextlib.contextmanager
def sandbox_client(app: App, *, follow_redirects: bool = True) -> Iterator[TestClient]:
    """The whole API (no background sweeps) over ``app``, its database seeded with the sandbox."""
    init_database(app, sandbox=True)
    api = create_app(app, expiry_sweep_interval_s=None, notify_interval_s=None, escrow_release_interval_s=None)
    with TestClient(api, follow_redirects=follow_redirects) as test_client:
        yield test_client
