"""The cart schema's tables (SQLAlchemy Core). PostgreSQL is the record of every cart."""

from __future__ import annotations

from ecom_runtime.db import service_metadata
from ecom_runtime.events import add_event_tables
from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)

SCHEMA = "cart"
metadata = service_metadata(SCHEMA)
MAX_QUANTITY = 99

# A user's cart (user_id) or a guest's (token_hash: the SHA-256 of its cart token). A merged
# guest cart stays, empty, with merged_into, so a retried merge answers the same.
carts = Table(
    "carts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=True, unique=True),
    Column("token_hash", LargeBinary, nullable=True, unique=True),
    Column("merged_into", Uuid, nullable=True),  # the user whose cart took its lines
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Touched by every change: abandoned guest carts are those not touched for a while.
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("(user_id IS NULL) <> (token_hash IS NULL)", name="owner"),
    Index("ix_carts_guest_updated_at", "updated_at", postgresql_where=text("user_id IS NULL")),
)

cart_items = Table(
    "cart_items",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("cart_id", Uuid, ForeignKey("cart.carts.id", ondelete="CASCADE"), nullable=False),
    Column("product_id", Uuid, nullable=False),
    Column("quantity", Integer, nullable=False),
    # The name when last seen, for the notice if the product leaves the catalog.
    Column("name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("cart_id", "product_id"),
    CheckConstraint(f"quantity BETWEEN 1 AND {MAX_QUANTITY}", name="quantity"),
)

outbox, inbox = add_event_tables(metadata)
