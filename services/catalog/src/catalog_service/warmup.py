"""Cache warming: asks the catalog's own read paths for what shoppers open first, so the
entries are exactly those the servicers would build (same keys, same bytes)."""

from __future__ import annotations

import logging
import time

from ecommerce.catalog.v1 import catalog_pb2 as pb
from sqlalchemy import select

from catalog_service.config import CatalogSettings
from catalog_service.server import Parts, build_parts
from catalog_service.servicers import LIST_SORTS, CategoryServicer, ProductServicer
from catalog_service.store import categories, products

log = logging.getLogger("catalog.warmup")


async def warm(settings: CatalogSettings, *, product_count: int = 1000) -> int:
    """Warms the cache from a process of its own (the `warm-cache` command)."""
    parts = build_parts(settings)
    try:
        return await warm_with(parts, product_count=product_count)
    finally:
        await parts.cache.close()
        await parts.db.dispose()


async def warm_with(parts: Parts, *, product_count: int = 1000) -> int:
    """Caches the category tree, the first page of every sort and of every top category, and
    the newest `product_count` products; how many responses."""
    product_service = ProductServicer(parts.reads, parts.images)
    category_service = CategoryServicer(parts.reads)
    started = time.monotonic()
    await category_service.ListCategories(pb.ListCategoriesRequest(), None)
    count = 1
    for sort in LIST_SORTS:
        request = (
            pb.ListProductsRequest(sort=sort) if sort != "newest" else pb.ListProductsRequest()
        )
        await product_service.ListProducts(request, None)
        count += 1
    async with parts.db.connect() as conn:
        roots = (
            (await conn.execute(select(categories.c.id).where(categories.c.parent_id.is_(None))))
            .scalars()
            .all()
        )
        newest = (
            (
                await conn.execute(
                    select(products.c.id)
                    .where(products.c.deleted_at.is_(None), products.c.active)
                    .order_by(products.c.created_at.desc())
                    .limit(product_count)
                )
            )
            .scalars()
            .all()
        )
    for root in roots:
        await product_service.ListProducts(pb.ListProductsRequest(category_id=str(root)), None)
        count += 1
    for product_id in newest:
        await product_service.GetProduct(pb.GetProductRequest(id=str(product_id)), None)
        count += 1
    log.info("cache warmed", extra={"responses": count, "seconds": time.monotonic() - started})
    return count
