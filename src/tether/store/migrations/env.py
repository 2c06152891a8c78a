"""Alembic environment: runs on the connection tether hands it (see ``tether.store.migrate``)."""

from __future__ import annotations

from alembic import context

from tether.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through tether.store.migrate.upgrade()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
