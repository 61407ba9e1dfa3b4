"""Alembic environment: run by ``paypos init`` (``adapters.db.migrate``) with a live connection."""

from __future__ import annotations

from alembic import context

from paypos.adapters.db.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `paypos init` (paypos.adapters.db.migrate.upgrade)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite can only ALTER through table copies
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
