"""The shared body of every service's Alembic env.py: version table inside the service's schema."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from ecom_runtime.db import create_engine


def _migrate(connection: Connection, metadata: MetaData, schema: str) -> None:
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=schema,
        # Autogenerate compares this service's schema and nothing else.
        include_schemas=True,
        include_name=lambda name, kind, _parents: kind != "schema" or name == schema,
    )
    with context.begin_transaction():
        # Several processes may start at once; only one migrates at a time.
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
        context.run_migrations()


async def _run(metadata: MetaData, schema: str) -> None:
    url = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/ecommerce")
    engine = create_engine(url, pool_size=1)
    async with engine.connect() as connection:
        await connection.run_sync(_migrate, metadata, schema)
        await connection.commit()
    await engine.dispose()


def run_migrations(metadata: MetaData, schema: str) -> None:
    """Call from a service's migrations/env.py."""
    if context.is_offline_mode():
        context.configure(
            url=os.environ.get("DATABASE_URL", ""),
            target_metadata=metadata,
            version_table_schema=schema,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run(metadata, schema))


def upgrade_to_head(script_location: str) -> None:
    """Programmatic `alembic upgrade head` for a service's `migrate` command."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", script_location)
    command.upgrade(config, "head")


def inbox_to_claims(schema: str) -> None:
    """The inbox became the store of `claim_once(scope, key)`: (consumer, event_id,
    processed_at) are renamed (scope, key, claimed_at). For a service's migration."""
    from alembic import op

    for old, new in (("consumer", "scope"), ("event_id", "key"), ("processed_at", "claimed_at")):
        op.alter_column("inbox", old, new_column_name=new, schema=schema)


def claims_to_inbox(schema: str) -> None:
    from alembic import op

    for old, new in (("scope", "consumer"), ("key", "event_id"), ("claimed_at", "processed_at")):
        op.alter_column("inbox", old, new_column_name=new, schema=schema)
