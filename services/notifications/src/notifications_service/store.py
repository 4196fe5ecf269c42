"""The notifications schema's tables (SQLAlchemy Core)."""

from __future__ import annotations

from ecom_runtime.db import service_metadata
from ecom_runtime.events import add_event_tables
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA = "notifications"
metadata = service_metadata(SCHEMA)

# Who placed each order, copied from OrderCreated: payment and refund events name only the
# order, and their emails go to its customer. Kept as long as a refund may follow.
order_owners = Table(
    "order_owners",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Events whose notification failed on every attempt, as they came (subject, payload, headers),
# until an admin replays them. One per job and event.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("job", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("job", "event_id"),
    Index("ix_dead_letters_created_at_id", "created_at", "id"),
)

outbox, inbox = add_event_tables(metadata)
