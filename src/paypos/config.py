"""Configuration: environment variables `PAYPOS_*`, overridden by CLI flags.

- ``PAYPOS_DATA_DIR`` (default ``./.paypos``): local state — the SQLite file,
  the data key file, terminal stores.
- ``PAYPOS_DATABASE_URL`` (default: SQLite file ``paypos.db`` in the data dir).
  ``postgresql://...`` URLs are driven by psycopg 3.
- ``PAYPOS_DATA_KEY`` (64 hex chars): the key that card data at rest is
  encrypted under. When unset, a random key is generated once and kept in
  ``<data dir>/keys/data.key`` (mode 0600).
- ``PAYPOS_WEBHOOK_RETRY_FIRST_DELAY_S`` (default ``limits.webhook_retry_first_delay_s``):
  the first webhook retry's delay; each next one doubles up to the cap, over 3 days in all.
  Tests and demos lower it to see retries in seconds; production leaves it alone.
- ``PAYPOS_ESCROW_AUTO_RELEASE_S`` (default ``limits.escrow_auto_release_s``, 10 days): a
  shipped escrow request the buyer has not confirmed is released this long after shipping.
- ``PAYPOS_SETTLEMENT_IN_FLIGHT_MARGIN_S`` (default and maximum
  ``limits.settlement_in_flight_margin_s``, 60 s; at least 1): a clearing run before a window's
  cut-off closes the window this long before now (docs/settlement.md). Sandboxes and tests lower
  it to settle a sale seconds after it was made.
- ``PAYPOS_OPERATOR_TOKEN`` (unset by default: the operator routes answer 404): the
  operator's Bearer token for ``/v1/operator/*`` (docs/escrow-disputes.md), at least
  ``limits.operator_token_chars_min`` characters. ``paypos escrow decide`` needs no token.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from paypos import limits


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYPOS_", extra="ignore")

    data_dir: Path = Field(default=Path(".paypos"))
    database_url: str | None = None
    data_key: str | None = None
    webhook_retry_first_delay_s: float = Field(default=limits.webhook_retry_first_delay_s, gt=0,
                                               le=limits.webhook_retry_delay_s_max)
    escrow_auto_release_s: int = Field(default=limits.escrow_auto_release_s, gt=0,
                                       le=limits.escrow_auto_release_s_max)
    operator_token: str | None = Field(default=None, min_length=limits.operator_token_chars_min)
    settlement_in_flight_margin_s: int = Field(default=limits.settlement_in_flight_margin_s, ge=1,
                                               le=limits.settlement_in_flight_margin_s)

    @field_validator("data_key")
    @classmethod
    def _data_key_is_hex(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        _check_data_key(value, "PAYPOS_DATA_KEY")
        return value.lower()

    def resolved_database_url(self) -> str:
        return normalize_database_url(self.database_url or f"sqlite:///{self.data_dir / 'paypos.db'}")

    def resolved_data_key(self, *, create: bool = True) -> bytes:
        """The data key from config, else from the data dir (made there when ``create``)."""
        if self.data_key:
            return bytes.fromhex(self.data_key)
        path = self.data_key_path()
        if not create and not path.exists():
            raise ConfigError(f"no data key: PAYPOS_DATA_KEY is unset and {path} does not exist; run `paypos init`")
        return _load_or_create_key_file(path)

    def data_key_path(self) -> Path:
        return self.data_dir / "keys" / "data.key"

    def sqlite_file(self) -> Path | None:
        """The SQLite database file, when the database is a SQLite file."""
        url = self.resolved_database_url()
        if not url.startswith("sqlite"):
            return None
        database = url.split(":///", 1)[1] if ":///" in url else ""
        return Path(database) if database and database != ":memory:" else None


def load_settings(data_dir: Path | str | None = None, database_url: str | None = None) -> Settings:
    """Settings from the environment, with CLI flags (when given) taking precedence."""
    overrides: dict[str, object] = {}
    if data_dir is not None:
        overrides["data_dir"] = Path(data_dir)
    if database_url is not None:
        overrides["database_url"] = database_url
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(_first_problem(error)) from None


def _first_problem(error: ValidationError) -> str:
    """The first invalid setting, named, without echoing its value (it may be a key)."""
    first = error.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, ConfigError):
        return str(cause)
    name = "PAYPOS_" + "_".join(str(part) for part in first["loc"]).upper()
    return f"{name}: {first['msg']}"


def normalize_database_url(url: str) -> str:
    """Pick the drivers paypos ships with: pysqlite for SQLite, psycopg 3 for PostgreSQL."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite://", "postgresql+psycopg://", "sqlite+pysqlite://")):
        return url
    raise ConfigError(f"database URL must be sqlite:///<file> or postgresql://...; got {url.split('://', 1)[0]!r}")


def _check_data_key(value: str, where: str) -> None:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ConfigError(f"{where}: data key must be hex") from None
    if len(raw) != 32:
        raise ConfigError(f"{where}: data key must be 32 bytes (64 hex chars); got {len(raw)} bytes")


def _load_or_create_key_file(path: Path) -> bytes:
    if path.exists():
        text = path.read_text().strip()
        _check_data_key(text, str(path))
        return bytes.fromhex(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    # Write a private temporary file in full, then link it into place: link() fails if
    # the key exists, so two processes racing here end up sharing one complete key and
    # neither can ever read a half-written file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temporary, path)
    except FileExistsError:
        return _load_or_create_key_file(path)
    finally:
        temporary.unlink()
    return key
