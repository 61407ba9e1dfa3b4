"""Alembic migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from paypos.adapters.db import migrate
from paypos.adapters.db.schema import metadata


def test_migrations_at_head_match_the_declared_schema(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    assert migrate.current_revision(engine) == migrate.head_revision()


def test_migrations_downgrade_to_nothing_and_upgrade_again(engine: Engine) -> None:
    config = migrate.alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    migrate.upgrade(engine)  # safe to run twice
    assert migrate.current_revision(engine) == migrate.head_revision()


def test_the_quick_head_is_alembics_head_and_each_script_is_named_after_its_revision() -> None:
    assert migrate.head_revision() == migrate.alembic_head_revision()
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    for script in scripts.walk_revisions():
        assert Path(script.path).name.startswith(f"{script.revision}_"), script.path
