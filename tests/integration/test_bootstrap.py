"""paypos.bootstrap: wiring settings to engine and vault, `init` and the schema guard."""

from pathlib import Path

import pytest
import sqlalchemy as sa

from paypos.adapters.db import migrate
from paypos.adapters.vault import Vault
from paypos.bootstrap import App, NotInitialisedError, bootstrap, init_database, require_schema
from paypos.config import Settings
from tests.conftest import TEST_DATA_KEY


def test_bootstrap_wires_the_configured_database_and_data_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, data_key=TEST_DATA_KEY)

    app = bootstrap(settings)
    try:
        assert app.engine.url.database == str(tmp_path / "paypos.db")
        assert app.vault.lookup_hash("4761739001010010") == Vault(bytes.fromhex(TEST_DATA_KEY)).lookup_hash(
            "4761739001010010"
        )
    finally:
        app.close()


def test_the_schema_guard_passes_once_init_has_run_and_init_is_safe_to_repeat(app: App) -> None:
    assert init_database(app, sandbox=False) is None
    assert init_database(app, sandbox=False) is None

    require_schema(app)
    assert migrate.current_revision(app.engine) == migrate.head_revision()


def test_the_schema_guard_refuses_an_uninitialised_database_asking_for_paypos_init(tmp_path: Path) -> None:
    app = bootstrap(Settings(data_dir=tmp_path, data_key=TEST_DATA_KEY))
    try:
        with pytest.raises(NotInitialisedError, match=r"is at schema none, need \w+: run `paypos init`") as error:
            require_schema(app)
        assert f"sqlite:///{tmp_path / 'paypos.db'}" in str(error.value)
    finally:
        app.close()


def test_the_schema_guard_never_echoes_the_database_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://paypos:hunter2@db.example:5432/paypos"
    app = App(
        settings=Settings(data_dir=tmp_path, database_url=url, data_key=TEST_DATA_KEY),
        engine=sa.create_engine(url),
        vault=Vault(bytes.fromhex(TEST_DATA_KEY)),
    )
    monkeypatch.setattr(migrate, "current_revision", lambda _engine: None)  # no server needed

    with pytest.raises(NotInitialisedError) as error:
        require_schema(app)

    assert "hunter2" not in str(error.value)
    assert "paypos:***@db.example:5432/paypos" in str(error.value)
