"""Alembic's entry point: run the migrations on the connection `migrate.prepare` passes in.

The connection is already in a transaction (with the schema lock taken), so Alembic runs inside it
and the whole upgrade commits or rolls back as one.
"""

from __future__ import annotations

from alembic import context

from openeo_upscale.campaign.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the store's migrations run through openeo_upscale.campaign.store.migrate, "
        "which passes them a connection"
    )
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
