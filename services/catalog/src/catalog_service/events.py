"""The subjects the catalog publishes and consumes, and the snapshot its product events carry."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ecom_runtime.db import UnitOfWork
from ecommerce.events.v1 import events_pb2
from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from catalog_service.categories import ancestor_ids
from catalog_service.store import PRODUCT_COLUMNS, products

PRODUCT_CHANGED = "ecom.catalog.product_changed"
STOCK_LOW = "ecom.catalog.stock_low"

PUBLISHED = {events_pb2.ProductChanged: PRODUCT_CHANGED, events_pb2.StockLow: STOCK_LOW}
# Consumed here: PRODUCT_CHANGED, by the Elasticsearch indexer when that backend is chosen.

Kind = events_pb2.ProductChangeKind


async def announce_changed(
    tx: UnitOfWork,
    product_ids: Sequence[uuid.UUID],
    kind: events_pb2.ProductChangeKind.ValueType = Kind.PRODUCT_CHANGE_KIND_UPDATED,
) -> None:
    """One ProductChanged per product, with its snapshot as this transaction leaves it."""
    rows = await tx.conn.execute(select(*PRODUCT_COLUMNS).where(products.c.id.in_(product_ids)))
    for row in rows:
        tx.add(await product_changed(tx.conn, row, kind))


async def product_changed(
    conn: AsyncConnection, row: Row[Any], kind: events_pb2.ProductChangeKind.ValueType
) -> events_pb2.ProductChanged:
    """The event (a full snapshot unless deleted) for a product row; also used to reindex."""
    event = events_pb2.ProductChanged(
        product_id=str(row.id), kind=kind, version=row.version, sku=row.sku
    )
    if kind == Kind.PRODUCT_CHANGE_KIND_DELETED:
        return event
    ancestors = await ancestor_ids(conn, row.category_id)
    event.name = row.name
    event.description = row.description
    event.price_cents = row.price_cents
    event.currency = row.currency
    event.category_id = str(row.category_id or "")
    event.category_ancestor_ids.extend(str(a) for a in reversed(ancestors))
    event.stock = row.on_hand - row.reserved
    event.image_urls.extend(row.image_urls)
    event.active = row.active
    event.created_at.FromDatetime(row.created_at)
    event.updated_at.FromDatetime(row.updated_at)
    return event


async def live_snapshots(engine: AsyncEngine) -> AsyncIterator[events_pb2.ProductChanged]:
    """Every live product as a ProductChanged, streamed (for a full search reindex)."""
    async with engine.connect() as conn:
        rows = await conn.stream(
            select(*PRODUCT_COLUMNS).where(products.c.deleted_at.is_(None)).order_by(products.c.id)
        )
        async with engine.connect() as lookup:
            async for row in rows:
                yield await product_changed(lookup, row, Kind.PRODUCT_CHANGE_KIND_UPDATED)
