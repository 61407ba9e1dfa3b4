"""paypos.entrypoints.api on SQLite and PostgreSQL: /healthz, merchant-scoped /v1/accounts
behind a Bearer API key, and RFC 9457 problem+json errors."""

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from httpx import Response
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` under its TestClient; paypos ships httpx, which still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from paypos import __version__
from paypos.adapters.db import migrate
from paypos.adapters.db.engine import make_engine
from paypos.adapters.db.schema import merchant_api_keys
from paypos.adapters.vault import Vault
from paypos.bootstrap import App, init_database
from paypos.config import Settings
from paypos.entrypoints.api import PROBLEM_BASE, create_app
from paypos.networks.sandbox import catalog
from tests.conftest import TEST_DATA_KEY, FakeClock, truncate_all

CAFE = catalog.CAFE.merchant_id
SHOP = catalog.SHOP.merchant_id
CAFE_KEY = catalog.merchant_api_key(CAFE)[1]
SHOP_KEY = catalog.merchant_api_key(SHOP)[1]
BALANCE_KEYS = {
    "account_id", "owner", "code", "currency", "debits_posted", "credits_posted",
    "debits_pending", "credits_pending", "net_minor",
}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def sandbox_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """One seeded sandbox per backend for the whole module: the API only reads it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'paypos.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    migrate.upgrade(engine)
    if request.param == "postgresql":
        truncate_all(engine)
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=url, data_key=TEST_DATA_KEY)
    paypos = App(settings=settings, engine=engine, vault=Vault(bytes.fromhex(TEST_DATA_KEY)), clock=FakeClock())
    init_database(paypos, sandbox=True)
    yield paypos
    paypos.close()


@pytest.fixture(scope="module")
def client(sandbox_app: App) -> Iterator[TestClient]:
    with TestClient(create_app(sandbox_app, expiry_sweep_interval_s=None)) as test_client:
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_problem(response: Response, status: int, slug: str) -> dict[str, object]:
    """An RFC 9457 problem document: media type, and type/title/status/detail members."""
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


# --- /healthz ---------------------------------------------------------------------------------


def test_healthz_answers_200_with_the_database_dialect_and_version(client: TestClient, sandbox_app: App) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": sandbox_app.engine.dialect.name, "version": __version__}


def test_healthz_answers_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, data_key=TEST_DATA_KEY)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'paypos.db'}")
    broken = App(settings=settings, engine=engine, vault=Vault(bytes.fromhex(TEST_DATA_KEY)))
    with TestClient(create_app(broken, expiry_sweep_interval_s=None)) as test_client:
        response = test_client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


# --- /v1/accounts -----------------------------------------------------------------------------


def test_accounts_with_the_cafe_key_lists_only_the_cafe_accounts(client: TestClient) -> None:
    response = client.get("/v1/accounts", headers=bearer(CAFE_KEY))

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list" and body["has_more"] is False
    owners = {row["owner"] for row in body["data"]}
    assert owners == {f"merchant:{CAFE}"}
    assert {row["code"] for row in body["data"]} == {"merchant_pending", "merchant_escrow", "merchant_available"}
    for row in body["data"]:
        assert BALANCE_KEYS <= row.keys()
        assert row["object"] == "account"
        assert row["currency"] == "CNY"
        assert all(type(row[k]) is int for k in BALANCE_KEYS - {"owner", "code", "currency"})


def test_accounts_with_the_shop_key_lists_the_shop_accounts_and_never_the_cafe(client: TestClient) -> None:
    cafe_ids = {row["account_id"] for row in client.get("/v1/accounts", headers=bearer(CAFE_KEY)).json()["data"]}

    response = client.get("/v1/accounts", headers=bearer(SHOP_KEY))

    assert response.status_code == 200
    rows = response.json()["data"]
    assert {row["owner"] for row in rows} == {f"merchant:{SHOP}"}
    assert {row["currency"] for row in rows} == {"USD"}
    assert not cafe_ids & {row["account_id"] for row in rows}


def test_the_bearer_scheme_is_case_insensitive(client: TestClient) -> None:
    response = client.get("/v1/accounts", headers={"Authorization": f"bearer {CAFE_KEY}"})

    assert response.status_code == 200


def test_accounts_without_a_key_is_a_401_problem_with_a_bearer_challenge(client: TestClient) -> None:
    response = client.get("/v1/accounts")

    body = assert_problem(response, 401, "unauthorized")
    assert "Bearer" in str(body["detail"])
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer sk_test_0000000000000000000000000000000000000000",
        f"Bearer {CAFE_KEY}x",
        f"Bearer {CAFE_KEY[:-1]}",
        f"Basic {CAFE_KEY}",
        CAFE_KEY,
        "Bearer ",
        "Bearer",
    ],
    ids=[
        "unknown-key", "key-plus-a-char", "key-minus-a-char", "basic-scheme", "no-scheme", "empty-token", "bare-scheme",
    ],
)
def test_accounts_with_a_wrong_key_or_scheme_is_a_401_problem(client: TestClient, authorization: str) -> None:
    response = client.get("/v1/accounts", headers={"Authorization": authorization})

    body = assert_problem(response, 401, "unauthorized")
    assert CAFE_KEY not in response.text
    assert "data" not in body


def test_a_revoked_key_is_refused(client: TestClient, sandbox_app: App) -> None:
    cafe_keys = merchant_api_keys.c.merchant_id == CAFE
    with sandbox_app.engine.begin() as conn:
        conn.execute(sa.update(merchant_api_keys).where(cafe_keys).values(revoked_at=sandbox_app.clock()))
    try:
        assert_problem(client.get("/v1/accounts", headers=bearer(CAFE_KEY)), 401, "unauthorized")
        assert client.get("/v1/accounts", headers=bearer(SHOP_KEY)).status_code == 200
    finally:
        with sandbox_app.engine.begin() as conn:
            conn.execute(sa.update(merchant_api_keys).where(cafe_keys).values(revoked_at=None))


# --- errors -------------------------------------------------------------------------------------


def test_an_unknown_route_is_a_404_problem(client: TestClient) -> None:
    body = assert_problem(client.get("/v1/nothing-here", headers=bearer(CAFE_KEY)), 404, "not-found")

    assert body["title"] == "Not Found"


def test_a_wrong_method_is_a_405_problem(client: TestClient) -> None:
    assert_problem(client.post("/v1/accounts", headers=bearer(CAFE_KEY)), 405, "method-not-allowed")


def test_the_sandbox_endpoints_publish_the_test_cards_and_terminal_keys_for_remote_terminals(client: TestClient) -> None:
    cards = client.get("/v1/sandbox/cards").json()
    terminals = client.get("/v1/sandbox/terminals").json()
    assert {c["id"] for c in cards} >= {"visa-cvn18-approve", "unionpay-prepaid-approve"}
    assert {t["terminal_id"] for t in terminals} >= {"CAFE0001", "SHOP0002"}
    merchant = client.get("/v1/sandbox/merchants/PPCAFE000000001").json()
    assert merchant["name"] == "Harbour Café" and "api_key" not in merchant


def test_an_unknown_sandbox_merchant_is_a_404_problem(client: TestClient) -> None:
    response = client.get("/v1/sandbox/merchants/NOPE")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
