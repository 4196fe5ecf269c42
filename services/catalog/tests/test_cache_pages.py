"""The page cache against the stack's real Redis (a database of its own): what each kind of
change makes the next read do, and that every answer is the page as it should be."""

from __future__ import annotations

import uuid

import pytest
from catalog_service.cache import CatalogCache
from ecommerce.catalog.v1 import catalog_pb2 as pb


class Shop:
    """Twenty products and one page of them; counts what the cache asks PostgreSQL for."""

    def __init__(self) -> None:
        self.ids = [str(uuid.uuid4()) for _ in range(20)]
        self.products = {i: pb.Product(id=i, name=f"P{n}", stock=5) for n, i in enumerate(self.ids)}
        self.builds = 0
        self.loaded: list[str] = []

    async def build(self) -> tuple[bytes, list[str], list[bytes]]:
        self.builds += 1
        skeleton = pb.ListProductsResponse(total_size=20, next_page_token="t")
        return skeleton.SerializeToString(), self.ids, [self._bytes(i) for i in self.ids]

    async def load(self, ids: list[str]) -> dict[str, bytes]:
        self.loaded += ids
        return {i: self._bytes(i) for i in ids}

    def _bytes(self, product_id: str) -> bytes:
        return self.products[product_id].SerializeToString()

    def expected(self) -> pb.ListProductsResponse:
        return pb.ListProductsResponse(
            total_size=20, next_page_token="t", products=[self.products[i] for i in self.ids]
        )


@pytest.fixture
async def cache(stack):
    own_database = stack.redis_url.rsplit("/", 1)[0] + "/7"
    cache = CatalogCache(own_database, ttl_seconds=300)
    await cache._redis.flushdb()
    yield cache
    await cache.close()


async def read(cache: CatalogCache, shop: Shop) -> pb.ListProductsResponse:
    encoded = await cache.page("list:p", in_stock_only=False, build=shop.build, load=shop.load)
    return pb.ListProductsResponse.FromString(encoded)


async def test_each_change_costs_the_next_read_only_what_it_touched(cache) -> None:
    shop = Shop()
    assert await read(cache, shop) == shop.expected()  # built once
    assert await read(cache, shop) == shop.expected()  # whole page from Redis
    assert (shop.builds, shop.loaded) == (1, [])

    changed = shop.ids[3]
    shop.products[changed].stock = 4  # a reservation of one unit
    await cache.stock_changed([changed], crossed=False)
    assert await read(cache, shop) == shop.expected()
    # Only the touched product was read again... (the others had no entries yet either: they
    # are filled in this one time)
    shop.loaded.clear()
    shop.products[changed].stock = 3
    await cache.stock_changed([changed], crossed=False)
    assert await read(cache, shop) == shop.expected()
    assert shop.loaded == [changed]
    # ...a change elsewhere costs no PostgreSQL read at all...
    await cache.stock_changed([str(uuid.uuid4())], crossed=False)
    assert await read(cache, shop) == shop.expected()
    assert shop.loaded == [changed] and shop.builds == 1
    # ...and an admin change retires the whole page.
    shop.products[changed].name = "Renamed"
    await cache.invalidate()
    assert await read(cache, shop) == shop.expected()
    assert shop.builds == 2


async def test_with_redis_gone_pages_come_from_postgresql(stack) -> None:
    closed = CatalogCache("redis://127.0.0.1:1/0", ttl_seconds=300)
    shop = Shop()
    for _ in range(2):
        assert await read(closed, shop) == shop.expected()
    assert shop.builds == 2
    await closed.close()
