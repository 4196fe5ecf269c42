"""Cache warming: asks the catalog's own read paths for what shoppers open first, so the
entries are exactly those the servicers would build (same keys, same bytes)."""

from __future__ import annotations

import time

from ecommerce.catalog.v1 import catalog_pb2 as pb
from sqlalchemy import select

from catalog_service.config import CatalogSettings
from catalog_service.server import build_parts
from catalog_service.servicers import LIST_SORTS, CategoryServicer, ProductServicer
from catalog_service.store import categories, products


async def warm(settings: CatalogSettings, *, product_count: int = 1000) -> int:
    parts = build_parts(settings)
    product_service = ProductServicer(parts.reads, parts.images)
    category_service = CategoryServicer(parts.reads)
    started = time.monotonic()
    count = 0
    try:
        await category_service.ListCategories(pb.ListCategoriesRequest(), None)
        count += 1
        for sort in LIST_SORTS:
            request = (
                pb.ListProductsRequest(sort=sort) if sort != "newest" else pb.ListProductsRequest()
            )
            await product_service.ListProducts(request, None)
            count += 1
        async with parts.db.connect() as conn:
            roots = (
                (
                    await conn.execute(
                        select(categories.c.id).where(categories.c.parent_id.is_(None))
                    )
                )
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
    finally:
        await parts.cache.close()
        await parts.db.dispose()
    print(f"cached {count} responses in {time.monotonic() - started:.1f} s")
    return count
