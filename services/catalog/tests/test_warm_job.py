"""The catalog's warm-cache job, as the seed command triggers it after a bulk import: the running
catalog caches the newest products (and the first pages) without any shopper asking."""

from __future__ import annotations

import nats
import redis.asyncio as redis
from ecom_runtime.jobs import trigger

from conftest import eventually, tag


async def test_triggering_the_warm_cache_job_caches_new_products(stack, make_product) -> None:
    created = await make_product(sku=f"WARM-{tag()}", name="Warm Lamp")
    cache = redis.from_url(stack.redis_url)
    pattern = f"catalog:cache:*:product:{created.id}:*"
    try:
        assert [key async for key in cache.scan_iter(pattern)] == []
        nc = await nats.connect(stack.nats_url)
        try:
            await trigger(nc.jetstream(), "catalog", "warm-cache", products=50)
        finally:
            await nc.close()

        async def cached() -> list[bytes]:
            return [key async for key in cache.scan_iter(pattern)]

        await eventually(cached, what="the new product in the cache")
    finally:
        await cache.aclose()
