"""The sample-data seed against the stack's PostgreSQL: shape, determinism, idempotency.

Other tests share this database: everything is checked through the ids the seed reports, and
the products seeded here (their own `seed`, so their own ids and SKUs) are removed at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as redis
from catalog_service.cache import VERSION_KEY
from catalog_service.seed import (
    NAMESPACE,
    SeedSummary,
    category_tree,
    generate_products,
    seed_catalog,
)
from ecom_runtime.db import create_engine
from ecom_stack.stack import LocalStack
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

PRODUCTS = 300
SEED = 90210  # no other test seeds with it: SKUs and product ids are ours alone


def category_id(slug: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"category/{slug}")


@pytest.fixture(scope="module")
async def engine(stack: LocalStack) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(stack.database_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def seeded(engine: AsyncEngine, stack: LocalStack) -> AsyncIterator[SeedSummary]:
    summary = await seed_catalog(engine, PRODUCTS, SEED, redis_url=stack.redis_url)
    yield summary
    # Leave the shared catalog as other tests found it: our products go, and so do the sample
    # categories if we created them (leaves first; one that is in use stays).
    ours = [id_ for slug, id_ in summary.category_ids.items() if id_ == category_id(slug)]
    async with engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM catalog.products WHERE id = ANY(:ids)"),
            {"ids": summary.product_ids},
        )
        for _ in range(3 if summary.new_categories else 0):
            await conn.execute(
                text(
                    "DELETE FROM catalog.categories c WHERE id = ANY(:ids)"
                    " AND NOT EXISTS (SELECT 1 FROM catalog.categories d WHERE d.parent_id = c.id)"
                    " AND NOT EXISTS (SELECT 1 FROM catalog.products p WHERE p.category_id = c.id)"
                ),
                {"ids": ours},
            )
    async with redis.Redis.from_url(stack.redis_url) as client:
        await client.incr(VERSION_KEY)  # hard deletes bypass the service's cache invalidation


async def rows(engine: AsyncEngine, query: str, **params: object) -> list[tuple]:
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(query), params)).all()]


async def products_of(engine: AsyncEngine, summary: SeedSummary) -> list[tuple]:
    return await rows(
        engine,
        "SELECT id, sku, name, description, price_cents, category_id, on_hand, reserved,"
        " low_stock_threshold, low_stock, active, currency FROM catalog.products"
        " WHERE id = ANY(:ids) ORDER BY id",
        ids=summary.product_ids,
    )


async def test_three_levels_of_categories(engine: AsyncEngine, seeded: SeedSummary) -> None:
    ids = list(seeded.category_ids.values())
    assert len(ids) == seeded.categories > 100
    found = await rows(
        engine,
        """
        WITH RECURSIVE tree AS (
            SELECT id, 1 AS depth FROM catalog.categories WHERE id = ANY(:departments)
            UNION ALL
            SELECT c.id, tree.depth + 1 FROM catalog.categories c JOIN tree ON c.parent_id = tree.id
        )
        SELECT depth, count(*) FROM tree WHERE id = ANY(:ids) GROUP BY depth ORDER BY depth
        """,
        departments=[seeded.category_ids[slug] for slug in seeded.departments],
        ids=ids,
    )
    depths = dict(found)
    assert sorted(depths) == [1, 2, 3]
    assert depths[1] == len(seeded.departments) == 8
    assert 8 * 3 <= depths[2] <= 8 * 5 and depths[2] * 2 <= depths[3] <= depths[2] * 4
    assert sum(depths.values()) == len(ids)  # every seeded category hangs from a department


async def test_products_are_varied_and_consistent(engine: AsyncEngine, seeded: SeedSummary) -> None:
    products = await products_of(engine, seeded)
    assert len(products) == seeded.products == PRODUCTS
    assert len({p[1] for p in products}) == PRODUCTS  # SKUs
    assert len({p[2] for p in products}) > PRODUCTS * 0.9  # names mostly distinct
    prices = sorted(p[4] for p in products)
    assert 100 <= prices[0] < 1_000 and 50_000 < prices[-1] <= 200_000
    assert len(set(prices)) > PRODUCTS / 3
    for _, _, name, description, _, _, on_hand, reserved, threshold, low, _, currency in products:
        assert name and description and currency == "USD"
        assert 0 <= reserved <= on_hand <= 500
        assert low == (on_hand - reserved <= threshold)
    assert any(p[6] == 0 for p in products) and any(not p[10] for p in products)
    leaves = await rows(
        engine,
        "SELECT count(*) FROM catalog.products p WHERE id = ANY(:ids) AND NOT EXISTS"
        " (SELECT 1 FROM catalog.categories c WHERE c.parent_id = p.category_id)"
        " AND p.category_id IS NOT NULL",
        ids=seeded.product_ids,
    )
    assert leaves[0][0] > PRODUCTS * 0.8


async def test_accents_are_searchable_without_them(
    engine: AsyncEngine, seeded: SeedSummary
) -> None:
    found = await rows(
        engine,
        "SELECT name FROM catalog.products WHERE id = ANY(:ids)"
        " AND search_document @@ plainto_tsquery('simple', 'creme')",
        ids=seeded.product_ids,
    )
    assert found and all("Crème" in name for (name,) in found)


async def test_seeding_again_changes_nothing(engine: AsyncEngine, seeded: SeedSummary) -> None:
    before = await products_of(engine, seeded)
    again = await seed_catalog(engine, PRODUCTS, SEED)
    assert (again.new_categories, again.new_products) == (0, 0)
    assert again.product_ids == seeded.product_ids
    assert again.category_ids == seeded.category_ids
    assert await products_of(engine, seeded) == before


async def test_same_seed_same_products_whatever_the_count(
    engine: AsyncEngine, seeded: SeedSummary
) -> None:
    # The first 100 of a 300-product seed are a 100-product seed: growing a seed only adds.
    fewer = await seed_catalog(engine, 100, SEED)
    assert fewer.new_products == 0 and fewer.product_ids == seeded.product_ids[:100]
    other = await seed_catalog(engine, 0, SEED + 1)
    assert other.new_products == 0 and other.category_ids == seeded.category_ids
    assert seeded.category_ids["electronics"] == category_id("electronics")


def test_ids_and_rows_are_the_same_on_every_machine() -> None:
    # Pinned: the dev stack, docs and benchmarks may quote these ids.
    assert str(category_id("electronics")) == "2e51cf9b-f8c7-5400-b595-f7676b0890fe"
    assert str(uuid.uuid5(NAMESPACE, "product/42/0")) == "174adbb5-0709-5f21-ac30-def7aea24c4f"
    levels = category_tree()
    ids = {c.slug: category_id(c.slug) for level in levels for c in level}
    now = datetime.now(UTC)
    first, second = (generate_products(50, 7, levels, ids, now) for _ in range(2))
    assert first == second
