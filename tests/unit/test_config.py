"""paypos.config: PAYPOS_* environment variables, CLI flags over them, the data key file."""

import os
import stat
from pathlib import Path

import pytest

from paypos.config import ConfigError, Settings, load_settings, normalize_database_url
from tests.conftest import TEST_DATA_KEY


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PAYPOS_* setting leaks in from the shell that runs the tests."""
    for name in list(os.environ):
        if name.startswith("PAYPOS_"):
            monkeypatch.delenv(name)


# --- data dir and database URL ---------------------------------------------------------------


def test_without_env_or_flags_the_data_dir_is_dot_paypos_and_the_database_is_sqlite_in_it() -> None:
    settings = load_settings()

    assert settings.data_dir == Path(".paypos")
    assert settings.resolved_database_url() == "sqlite:///.paypos/paypos.db"


def test_the_default_database_is_a_sqlite_file_in_the_given_data_dir(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)

    assert settings.resolved_database_url() == f"sqlite:///{tmp_path}/paypos.db"


def test_env_vars_set_the_data_dir_database_url_and_data_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAYPOS_DATA_DIR", str(tmp_path / "env-dir"))
    monkeypatch.setenv("PAYPOS_DATABASE_URL", "postgresql://paypos@db.example:5432/paypos")
    monkeypatch.setenv("PAYPOS_DATA_KEY", TEST_DATA_KEY.upper())

    settings = load_settings()

    assert settings.data_dir == tmp_path / "env-dir"
    assert settings.resolved_database_url() == "postgresql+psycopg://paypos@db.example:5432/paypos"
    assert settings.resolved_data_key() == bytes.fromhex(TEST_DATA_KEY)
    assert not (tmp_path / "env-dir").exists()  # a configured key needs no key file


def test_flags_override_the_env_vars(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAYPOS_DATA_DIR", str(tmp_path / "env-dir"))
    monkeypatch.setenv("PAYPOS_DATABASE_URL", "postgresql://paypos@db.example/paypos")

    settings = load_settings(data_dir=str(tmp_path / "flag-dir"), database_url=f"sqlite:///{tmp_path}/flag.db")

    assert settings.data_dir == tmp_path / "flag-dir"
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path}/flag.db"


def test_a_data_dir_flag_alone_keeps_the_database_url_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAYPOS_DATABASE_URL", "postgresql://paypos@db.example/paypos")

    settings = load_settings(data_dir=tmp_path)

    assert settings.resolved_database_url() == "postgresql+psycopg://paypos@db.example/paypos"


def test_an_empty_database_url_env_var_means_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAYPOS_DATABASE_URL", "")

    assert load_settings(data_dir=tmp_path).resolved_database_url() == f"sqlite:///{tmp_path}/paypos.db"


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("postgresql://u@h:5432/d", "postgresql+psycopg://u@h:5432/d"),
        ("postgres://u:p@h/d?sslmode=require", "postgresql+psycopg://u:p@h/d?sslmode=require"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////var/lib/paypos/paypos.db", "sqlite:////var/lib/paypos/paypos.db"),
        ("sqlite:///relative.db", "sqlite:///relative.db"),
        ("sqlite+pysqlite:///x.db", "sqlite+pysqlite:///x.db"),
    ],
)
def test_database_urls_are_normalised_to_the_shipped_drivers(url: str, normalised: str) -> None:
    assert normalize_database_url(url) == normalised


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("mysql://u@h/d", "mysql"),
        ("postgresql+psycopg2://u@h/d", "postgresql+psycopg2"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg"),
        ("paypos.db", "paypos.db"),
    ],
)
def test_a_database_url_with_an_unsupported_scheme_is_a_config_error_naming_it(url: str, scheme: str) -> None:
    settings = load_settings(database_url=url)

    with pytest.raises(ConfigError, match=r"database URL must be sqlite:///<file> or postgresql://") as error:
        settings.resolved_database_url()
    assert repr(scheme) in str(error.value)


def test_a_database_url_error_does_not_echo_the_password() -> None:
    with pytest.raises(ConfigError) as error:
        normalize_database_url("mysql://paypos:hunter2@db.example/paypos")
    assert "hunter2" not in str(error.value)


# --- the data key ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("zz" * 32, "PAYPOS_DATA_KEY: data key must be hex"),
        ("abc", "PAYPOS_DATA_KEY: data key must be hex"),
        ("00" * 16, r"PAYPOS_DATA_KEY: data key must be 32 bytes \(64 hex chars\); got 16 bytes"),
        ("00" * 33, "got 33 bytes"),
    ],
)
def test_a_bad_data_key_in_env_is_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("PAYPOS_DATA_KEY", value)

    with pytest.raises(ConfigError, match=message) as error:
        load_settings()
    assert value not in str(error.value)  # the message never echoes key material


def test_a_bad_data_key_given_directly_to_settings_is_refused() -> None:
    with pytest.raises(ValueError, match="data key must be hex"):
        Settings(data_key="not hex")


def test_without_a_configured_key_a_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)

    key = settings.resolved_data_key()

    key_file = tmp_path / "keys" / "data.key"
    assert len(key) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() == key.hex()


def test_the_key_file_is_reused_on_later_runs(tmp_path: Path) -> None:
    first = load_settings(data_dir=tmp_path).resolved_data_key()
    modified = (tmp_path / "keys" / "data.key").stat().st_mtime_ns

    second = load_settings(data_dir=tmp_path).resolved_data_key()

    assert second == first
    assert (tmp_path / "keys" / "data.key").stat().st_mtime_ns == modified


def test_two_data_dirs_get_different_random_keys(tmp_path: Path) -> None:
    one = load_settings(data_dir=tmp_path / "one").resolved_data_key()
    two = load_settings(data_dir=tmp_path / "two").resolved_data_key()

    assert one != two


def test_a_configured_data_key_wins_over_an_existing_key_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    load_settings(data_dir=tmp_path).resolved_data_key()
    monkeypatch.setenv("PAYPOS_DATA_KEY", TEST_DATA_KEY)

    assert load_settings(data_dir=tmp_path).resolved_data_key() == bytes.fromhex(TEST_DATA_KEY)


@pytest.mark.parametrize(
    ("content", "message"),
    [("not a key\n", "data key must be hex"), ("00" * 8 + "\n", "must be 32 bytes"), ("", "must be 32 bytes")],
)
def test_a_corrupt_key_file_is_a_config_error_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    key_file = tmp_path / "keys" / "data.key"
    key_file.parent.mkdir()
    key_file.write_text(content)

    with pytest.raises(ConfigError, match=message) as error:
        load_settings(data_dir=tmp_path).resolved_data_key()
    assert str(key_file) in str(error.value)


def test_processes_racing_to_create_the_key_file_all_get_the_same_complete_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from paypos.config import Settings;"
        "print(Settings(data_dir=Path(sys.argv[1])).resolved_data_key().hex())"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(6)]
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(keys) == 1 and len(keys.pop()) == 64
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["data.key"]  # no temporary left behind


def test_without_create_a_missing_key_file_is_a_config_error_asking_for_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run `paypos init`"):
        Settings(data_dir=tmp_path).resolved_data_key(create=False)
    assert not (tmp_path / "keys").exists()


def test_the_settlement_in_flight_margin_defaults_to_a_minute_and_may_only_be_lowered(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert load_settings(data_dir=tmp_path).settlement_in_flight_margin_s == 60
    monkeypatch.setenv("PAYPOS_SETTLEMENT_IN_FLIGHT_MARGIN_S", "2")
    assert load_settings(data_dir=tmp_path).settlement_in_flight_margin_s == 2
    for bad in ("0", "61", "soon"):
        monkeypatch.setenv("PAYPOS_SETTLEMENT_IN_FLIGHT_MARGIN_S", bad)
        with pytest.raises(ConfigError, match="PAYPOS_SETTLEMENT_IN_FLIGHT_MARGIN_S"):
            load_settings(data_dir=tmp_path)
