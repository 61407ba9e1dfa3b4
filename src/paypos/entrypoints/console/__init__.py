"""The web console at /console/ (issue 7, docs/console.md): server-rendered pages for merchants
(owner, cashier) and operators (reviewer, risk, finance, admin).

Adding a page: a function decorated with ``core.page(...)`` in a ``pages_*`` module (imported
below) and a template in templates/console/. The registry, navigation, authorization, CSRF and
the route × role test matrix pick it up.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response

from paypos.entrypoints.console import core

_STATIC = Path(__file__).resolve().parent.parent / "static" / "console"
_ASSETS = {"console.css": "text/css", "htmx.min.js": "text/javascript", "console.js": "text/javascript"}


def install_console_routes(api: FastAPI) -> None:
    # Imported for their @page registrations (once: the registry is module state).
    from paypos.entrypoints.console import (pages_auth, pages_lifecycle, pages_merchant,  # noqa: F401
                                            pages_operator)
    from paypos.entrypoints.console import pages_settlement  # noqa: F401
    from paypos.entrypoints.console import pages_pricing, pages_reports  # noqa: F401

    @api.get(core.PREFIX, include_in_schema=False)
    def console_root() -> Response:
        return RedirectResponse(core.PREFIX + "/", status_code=307)

    @api.get(core.PREFIX + "/assets/{name}", include_in_schema=False)
    def console_asset(name: str) -> Response:
        kind = _ASSETS.get(name)
        if kind is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response((_STATIC / name).read_bytes(), media_type=kind,
                        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})

    core.install_pages(api)
