"""The auth schema's tables (SQLAlchemy Core)."""

from __future__ import annotations

from ecom_runtime.db import service_metadata
from ecom_runtime.events import add_event_tables
from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    Table,
    Text,
    Uuid,
    func,
    text,
)

SCHEMA = "auth"
metadata = service_metadata(SCHEMA)


def _timestamp(name: str, *, nullable: bool = False, now: bool = False) -> Column:
    """A timezone-aware timestamp; `now` makes the database fill it in."""
    return Column(
        name, DateTime(timezone=True), nullable=nullable, server_default=func.now() if now else None
    )


users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", Text, nullable=False),  # stored lower-cased
    Column("name", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("role", Text, nullable=False),
    _timestamp("created_at", now=True),
    _timestamp("updated_at", now=True),
    Index("uq_users_email", "email", unique=True),
    Index("ix_users_created_at_id", "created_at", "id"),
)

# Refresh tokens are opaque; only their SHA-256 is stored. One family per sign-in: each
# refresh spends a token and adds its successor to the family.
refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("auth.users.id", ondelete="CASCADE"), nullable=False),
    Column("family_id", Uuid, nullable=False),
    Column("token_hash", LargeBinary, nullable=False, unique=True),
    _timestamp("created_at", now=True),
    _timestamp("expires_at"),
    _timestamp("spent_at", nullable=True),
    _timestamp("revoked_at", nullable=True),
    Index("ix_refresh_tokens_family_id", "family_id"),
    Index("ix_refresh_tokens_user_id", "user_id"),
)

password_reset_tokens = Table(
    "password_reset_tokens",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("auth.users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", LargeBinary, nullable=False, unique=True),
    _timestamp("created_at", now=True),
    _timestamp("expires_at"),
    _timestamp("used_at", nullable=True),
    Index("ix_password_reset_tokens_user_id", "user_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("key_hash", LargeBinary, nullable=False, unique=True),
    Column("created_by", Text, nullable=False),
    _timestamp("created_at", now=True),
    _timestamp("revoked_at", nullable=True),
    Index("ix_api_keys_active", "created_at", "id", postgresql_where=text("revoked_at IS NULL")),
)

outbox, inbox = add_event_tables(metadata)
