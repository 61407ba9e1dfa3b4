"""The REST API against its own OpenAPI document (`/openapi.json`), with schemathesis driving
the in-process ASGI app on SQLite with the sandbox seeded: once with a sandbox merchant's
Bearer key and once without any. Every generated request must get no 5xx, a status code the
spec documents, a documented content type, and a body that matches the documented schema.

Bounded and deterministic: a few examples per operation, derandomized, no example database,
so the file runs in well under a minute and fails the same way twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from paypos.adapters.db.engine import make_engine
from paypos.adapters.vault import Vault
from paypos.bootstrap import App, init_database
from paypos.config import Settings
from paypos.entrypoints.api import create_app
from paypos.networks.sandbox import catalog
from tests.conftest import TEST_DATA_KEY, FakeClock

EXAMPLES_PER_OPERATION = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MERCHANT_KEY = catalog.merchant_api_key(catalog.CAFE.merchant_id)[1]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    data_dir = Path(tmp_path_factory.mktemp("contract")) / "data"
    url = f"sqlite:///{data_dir / 'paypos.db'}"
    data_dir.mkdir()
    paypos = App(settings=Settings(data_dir=data_dir, database_url=url, data_key=TEST_DATA_KEY),
                 engine=make_engine(url), vault=Vault(bytes.fromhex(TEST_DATA_KEY)), clock=FakeClock())
    init_database(paypos, sandbox=True)
    api = create_app(paypos, expiry_sweep_interval_s=None, notify_interval_s=None, webhook_interval_s=None)
    yield schemathesis.openapi.from_asgi("/openapi.json", api)
    paypos.close()


def failures(schema: schemathesis.BaseSchema, headers: dict[str, str]) -> list[str]:
    """Each operation's first failing case (as a readable line), all operations run."""
    found: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except (Exception, BaseExceptionGroup) as error:  # collected, all reported together below
            found.append(f"{operation.label}: {_summary(error)}")
    return found


def test_every_response_with_a_merchant_key_matches_the_spec(api_schema: schemathesis.BaseSchema) -> None:
    found = failures(api_schema, {"Authorization": f"Bearer {MERCHANT_KEY}"})
    assert not found, "\n".join(found)


def test_every_response_without_a_key_matches_the_spec(api_schema: schemathesis.BaseSchema) -> None:
    found = failures(api_schema, {})
    assert not found, "\n".join(found)


def _summary(error: BaseException) -> str:
    """The failure's kind, what was received, and the curl line that reproduces it."""
    lines = [line.strip() for line in str(getattr(error, "message", "") or error).splitlines()]
    for sub in getattr(error, "exceptions", ()):
        lines += [line.strip() for line in str(sub).splitlines()]
    keep = [line for line in lines if line.startswith(("- ", "Received", "Documented", "curl", "`{"))]
    return " | ".join(dict.fromkeys(keep)) or repr(error)
