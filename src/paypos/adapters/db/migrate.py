"""Apply Alembic migrations; safe to run any number of times.

Alembic is imported only when migrating: every CLI command checks the schema revision
(``bootstrap.require_schema``), and importing Alembic and parsing every migration script
for that cost ~0.6 s per command; the check below reads the version table and the
scripts' file names instead (revisions are the 4-digit file prefixes, one linear chain —
``tests/integration/test_migrations.py`` holds the two views equal).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION_FILE = re.compile(r"(\d{4})_\w+\.py")


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` inside one transaction per run."""
    from alembic import command

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision in ``alembic_version``; ``None`` for a database never migrated."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def head_revision() -> str | None:
    """The newest revision: the highest 4-digit prefix among the migration scripts."""
    found = [m.group(1) for p in (MIGRATIONS / "versions").iterdir() if (m := _REVISION_FILE.fullmatch(p.name))]
    return max(found, default=None)


def alembic_head_revision() -> str | None:
    """The head as Alembic computes it from the scripts' revision graph (slow; for tests)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
