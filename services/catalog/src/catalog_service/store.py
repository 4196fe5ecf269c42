"""The catalog schema's tables (SQLAlchemy Core)."""

from __future__ import annotations

from ecom_runtime.db import service_metadata
from ecom_runtime.events import add_event_tables
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR

SCHEMA = "catalog"
metadata = service_metadata(SCHEMA)


def _created() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated() -> Column:
    return Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now())


categories = Table(
    "categories",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("slug", Text, nullable=False, unique=True),
    Column("parent_id", Uuid, ForeignKey("catalog.categories.id"), nullable=True),
    _created(),
    _updated(),
    CheckConstraint("parent_id <> id", name="not_own_parent"),
)

# The search document: name weighs more than description, accents and case folded. It is a
# generated column, so it changes in the same statement as the product and Postgres computed
# it for every row that existed when the column was added (no product is missing from search).
SEARCH_DOCUMENT = (
    "setweight(to_tsvector('simple', catalog.unaccent_immutable(coalesce(name, ''))), 'A') || "
    "setweight(to_tsvector('simple', catalog.unaccent_immutable(coalesce(sku, ''))), 'A') || "
    "setweight(to_tsvector('simple', catalog.unaccent_immutable(coalesce(description, ''))), 'B')"
)

products = Table(
    "products",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("sku", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("price_cents", BigInteger, nullable=False),
    Column("currency", Text, nullable=False, server_default="USD"),
    Column("category_id", Uuid, ForeignKey("catalog.categories.id"), nullable=True),
    Column("image_urls", ARRAY(Text), nullable=False, server_default="{}"),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    # Inventory: `reserved` units are held by pending checkouts; sellable = on_hand - reserved.
    Column("on_hand", Integer, nullable=False, server_default="0"),
    Column("reserved", Integer, nullable=False, server_default="0"),
    Column("low_stock_threshold", Integer, nullable=False, server_default="5"),
    # True while sellable stock is at or below the threshold: StockLow is published once when
    # this flips to true, not on every sale below the line.
    Column("low_stock", Boolean, nullable=False, server_default=text("false")),
    # Bumped on every change; events carry it so consumers can drop out-of-order updates.
    Column("version", BigInteger, nullable=False, server_default="1"),
    Column("search_document", TSVECTOR, Computed(SEARCH_DOCUMENT, persisted=True)),
    _created(),
    _updated(),
    # Soft delete: past reservations and orders still point at the row.
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("price_cents >= 0", name="price_not_negative"),
    CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="stock_never_negative"),
    CheckConstraint("low_stock_threshold >= 0", name="threshold_not_negative"),
    Index("uq_products_sku_live", "sku", unique=True, postgresql_where=text("deleted_at IS NULL")),
    Index("ix_products_newest", text("created_at DESC"), text("id DESC")),
    Index("ix_products_price", "price_cents", "id"),
    Index("ix_products_name", text("lower(name)"), "id"),
    Index("ix_products_category_id", "category_id"),
    # Counts for lists' total_size as index-only scans (see migration 0003).
    Index(
        "ix_products_live_category_price",
        "category_id",
        "price_cents",
        postgresql_where=text("deleted_at IS NULL AND active"),
    ),
    Index("ix_products_search_document", "search_document", postgresql_using="gin"),
    Index(
        "ix_products_name_trgm",
        func.catalog.unaccent_immutable(func.lower(text("name"))).label("folded_name"),
        postgresql_using="gin",
        postgresql_ops={"folded_name": "gin_trgm_ops"},
    ),
)

# Every product column but the search vector, which is large and only ever used in WHERE.
PRODUCT_COLUMNS = [column for column in products.c if column.name != "search_document"]

reservations = Table(
    "reservations",
    metadata,
    Column("id", Uuid, primary_key=True),
    # active | committed | released | expired
    Column("state", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    _created(),
    _updated(),
    Index("ix_reservations_active_expiry", "expires_at", postgresql_where=text("state = 'active'")),
)

reservation_items = Table(
    "reservation_items",
    metadata,
    Column(
        "reservation_id",
        Uuid,
        ForeignKey("catalog.reservations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("product_id", Uuid, ForeignKey("catalog.products.id"), primary_key=True),
    Column("quantity", Integer, nullable=False),
    CheckConstraint("quantity > 0", name="quantity_positive"),
)

# Presigned uploads waiting for their object to appear in S3.
pending_images = Table(
    "pending_images",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("product_id", Uuid, ForeignKey("catalog.products.id"), nullable=False),
    Column("object_key", Text, nullable=False, unique=True),
    Column("image_url", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    _created(),
)

outbox, inbox = add_event_tables(metadata)
