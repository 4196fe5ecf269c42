"""The read cache under checkout traffic: a reservation retires only the products it touches,
pages stay cached and still show current stock, and an admin change retires everything."""

from __future__ import annotations

import uuid

import pytest
import redis
from catalog_service.cache import VERSION_KEY
from ecommerce.catalog.v1 import catalog_pb2 as pb

from conftest import tag


@pytest.fixture
def cache(stack):
    client = redis.Redis.from_url(stack.redis_url)
    yield client
    client.close()


def page_keys(cache, kind: str) -> set[bytes]:
    return set(cache.scan_iter(match=f"catalog:cache:*:{kind}:*", count=1000))


async def reserve(internal, product_id: str, quantity: int) -> None:
    await internal.ReserveStock(
        pb.ReserveStockRequest(
            reservation_id=str(uuid.uuid4()),
            items=[pb.ReservationItem(product_id=product_id, quantity=quantity)],
        )
    )


@pytest.fixture
async def shelf(categories, make_product, admin):
    """A category of its own with two products, A (stock 10) and B (stock 5)."""
    category = await categories.CreateCategory(
        pb.CreateCategoryRequest(name="Shelf", slug=f"shelf-{tag()}"), metadata=admin
    )
    a = await make_product(name="Shelf A", price_cents=100, stock=10, category_id=category.id)
    b = await make_product(name="Shelf B", price_cents=200, stock=5, category_id=category.id)
    return category, a, b


def stocks(page) -> dict[str, int]:
    return {p.id: p.stock for p in page.products}


async def test_a_reservation_keeps_pages_cached_and_shows_current_stock(
    cache, categories, internal, shelf
) -> None:
    category, a, b = shelf
    request = pb.ListCategoryProductsRequest(id=category.id)
    first = await categories.ListCategoryProducts(request)
    assert stocks(first) == {a.id: 10, b.id: 5}
    await categories.ListCategoryProducts(request)  # now every entry is cached
    version, pages = cache.get(VERSION_KEY), page_keys(cache, "category-products")

    await reserve(internal, a.id, 3)

    after = await categories.ListCategoryProducts(request)
    assert stocks(after) == {a.id: 7, b.id: 5}  # current stock, from a cached page
    assert cache.get(VERSION_KEY) == version  # nothing else was retired
    assert page_keys(cache, "category-products") == pages  # the page was not rebuilt


async def test_an_admin_price_change_is_never_served_stale(
    categories, products, admin, internal, shelf
) -> None:
    category, a, _ = shelf
    request = pb.ListCategoryProductsRequest(id=category.id)
    await categories.ListCategoryProducts(request)
    await reserve(internal, a.id, 1)  # a stock change first: only A's entry retired
    await products.UpdateProduct(pb.UpdateProductRequest(id=a.id, price_cents=150), metadata=admin)
    prices = {
        p.id: p.price_cents for p in (await categories.ListCategoryProducts(request)).products
    }
    assert prices[a.id] == 150
    assert (await products.GetProduct(pb.GetProductRequest(id=a.id))).price_cents == 150


async def test_in_stock_pages_follow_products_that_sell_out(
    categories, products, internal, shelf
) -> None:
    category, _, b = shelf
    in_stock = pb.ListProductsRequest(category_id=category.id, in_stock=True)
    everything = pb.ListProductsRequest(category_id=category.id)
    assert b.id in {p.id for p in (await products.ListProducts(in_stock)).products}
    await products.ListProducts(everything)
    await reserve(internal, b.id, 5)  # B sells out
    assert b.id not in {p.id for p in (await products.ListProducts(in_stock)).products}
    listed = {p.id: p.stock for p in (await products.ListProducts(everything)).products}
    assert listed[b.id] == 0
    assert (await products.GetProduct(pb.GetProductRequest(id=b.id))).stock == 0
