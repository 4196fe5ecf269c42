"""The read path lists, search and category pages share: validated queries, category
subtrees, product pages, and the response cache in front of them."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ecom_runtime.db import Database
from ecom_runtime.paging import page_size
from ecom_runtime.validation import Violations, parse_uuid
from ecommerce.catalog.v1 import catalog_pb2 as pb
from google.protobuf.message import Message

from catalog_service.cache import PRODUCTS_FIELD, CatalogCache, normalized_key
from catalog_service.categories import Categories, descendant_ids
from catalog_service.products import Products
from catalog_service.search import SORTS, ProductQuery, SearchBackend, SearchHits
from catalog_service.search_postgres import PostgresSearch
from catalog_service.servicers.messages import optional, product_message

LIST_SORTS = tuple(s for s in SORTS if s != "relevance")


class Reads:
    """What the read RPCs share: the domain objects, the search backend and the cache."""

    def __init__(
        self,
        db: Database,
        products: Products,
        categories: Categories,
        search: SearchBackend,
        cache: CatalogCache,
    ) -> None:
        self.db = db
        self.products = products
        self.categories = categories
        self.listing = PostgresSearch(db.engine)  # lists always come from the source of truth
        self.search = search
        self.cache = cache

    async def cached(
        self,
        kind: str,
        request: Message,
        response_type: Any,
        build: Callable[[], Awaitable[Message]],
    ) -> Any:
        """A response without stock in it (the category tree), from the cache or built."""

        async def serialized() -> bytes:
            return (await build()).SerializeToString()

        key = normalized_key(kind, request)  # variants of one question share one entry
        return response_type.FromString(await self.cache.get_or_build(key, serialized))

    async def cached_product(self, product_id: uuid.UUID) -> pb.Product:
        """One live, active product, from the cache or PostgreSQL (NotFound otherwise)."""

        async def build() -> bytes:
            return product_message(await self.products.get(product_id)).SerializeToString()

        return pb.Product.FromString(await self.cache.product(str(product_id), build))

    async def cached_page(
        self,
        kind: str,
        request: Any,
        response_type: Any,
        build: Callable[[], Awaitable[Any]],
    ) -> Any:
        """A page of products: its skeleton and its products cached apart, so stock changes
        retire only the products they touch (cache.py)."""

        async def skeleton() -> tuple[bytes, list[str], list[bytes]]:
            response = await build()
            products = list(response.products)
            del response.products[:]
            serialized = [p.SerializeToString() for p in products]
            return response.SerializeToString(), [p.id for p in products], serialized

        async def load(ids: list[str]) -> dict[str, bytes]:
            rows = await self.products.get_many([uuid.UUID(i) for i in ids])
            return {str(row.id): product_message(row).SerializeToString() for row in rows}

        assert response_type.DESCRIPTOR.fields_by_name["products"].number == PRODUCTS_FIELD
        encoded = await self.cache.page(
            normalized_key(kind, request),
            in_stock_only=bool(getattr(request, "in_stock", False)),
            build=skeleton,
            load=load,
        )
        return response_type.FromString(encoded)

    def query(
        self, request: Any, *, sort_choices: tuple[str, ...], default_sort: str
    ) -> ProductQuery:
        violations = Violations()
        sort = request.sort or default_sort
        if sort not in sort_choices:
            violations.add("sort", f"must be one of {', '.join(sort_choices)}")
        low = optional(request, "min_price_cents")
        high = optional(request, "max_price_cents")
        if low is not None and low < 0:
            violations.add("min_price_cents", "must not be negative")
        if high is not None and high < 0:
            violations.add("max_price_cents", "must not be negative")
        if low is not None and high is not None and high < low:
            violations.add("max_price_cents", "must not be below min_price_cents")
        if request.page_size < 0:
            violations.add("page_size", "must not be negative")
        violations.raise_if_any()
        return ProductQuery(
            text=getattr(request, "q", "").strip(),
            min_price_cents=low,
            max_price_cents=high,
            in_stock=getattr(request, "in_stock", False),
            include_inactive=getattr(request, "include_inactive", False),
            sort=sort,
            page_size=page_size(request.page_size),
            page_token=request.page_token,
        )

    async def with_category(self, query: ProductQuery, category_id: str) -> ProductQuery:
        if not category_id:
            return query
        root = parse_uuid("category_id", category_id)
        async with self.db.connect() as conn:
            ids = await descendant_ids(conn, root)
        return ProductQuery(**{**query.__dict__, "category_ids": ids})

    async def page(self, hits: SearchHits) -> list[pb.Product]:
        rows = (
            hits.rows if hits.rows is not None else await self.products.get_many(hits.product_ids)
        )
        return [product_message(row) for row in rows]
