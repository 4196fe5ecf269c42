"""gRPC servicers of the catalog: proto messages in and out, caching of public reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from ecom_runtime.auth import require_admin, sent_credentials
from ecom_runtime.errors import InvalidArgument, NotFound
from ecom_runtime.paging import page_size
from ecom_runtime.validation import Violations, parse_uuid
from ecommerce.catalog.v1 import catalog_pb2 as pb
from ecommerce.catalog.v1 import catalog_pb2_grpc
from google.protobuf.message import Message
from sqlalchemy import Row

from catalog_service.cache import CatalogCache, cache_key
from catalog_service.categories import Categories, CategoryNode, descendant_ids
from catalog_service.images import Images
from catalog_service.inventory import Inventory
from catalog_service.products import ProductFields, Products
from catalog_service.search import PRICE_BAND_EDGES, SORTS, ProductQuery, SearchBackend, SearchHits
from catalog_service.search_postgres import PostgresSearch

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
LIST_SORTS = tuple(s for s in SORTS if s != "relevance")


def product_message(row: Row[Any]) -> pb.Product:
    product = pb.Product(
        id=str(row.id),
        sku=row.sku,
        name=row.name,
        description=row.description,
        price_cents=row.price_cents,
        currency=row.currency,
        category_id=str(row.category_id) if row.category_id else "",
        stock=row.on_hand - row.reserved,
        image_urls=row.image_urls,
        active=row.active,
    )
    product.created_at.FromDatetime(row.created_at)
    product.updated_at.FromDatetime(row.updated_at)
    return product


def category_message(node: CategoryNode | Row[Any]) -> pb.Category:
    category = pb.Category(
        id=str(node.id),
        name=node.name,
        slug=node.slug,
        parent_id=str(node.parent_id) if node.parent_id else "",
    )
    for child in getattr(node, "children", []):
        category.children.append(category_message(child))
    return category


def _optional(message: Message, name: str) -> Any:
    """A proto3 `optional` field's value, or None when absent (or not in this message)."""
    if name not in message.DESCRIPTOR.fields_by_name or not message.HasField(name):
        return None
    return getattr(message, name)


class Catalog:
    """What the servicers share: the domain objects, the search backend and the cache."""

    def __init__(
        self,
        engine: Any,
        products: Products,
        categories: Categories,
        images: Images,
        search: SearchBackend,
        cache: CatalogCache,
    ) -> None:
        self.engine = engine
        self.products = products
        self.categories = categories
        self.images = images
        self.listing = PostgresSearch(engine)  # lists always come from the source of truth
        self.search = search
        self.cache = cache

    async def cached(
        self,
        kind: str,
        request: Message,
        response_type: Any,
        build: Callable[[], Awaitable[Message]],
    ) -> Any:
        async def serialized() -> bytes:
            return (await build()).SerializeToString()

        key = cache_key(kind, request.SerializeToString(deterministic=True))
        return response_type.FromString(await self.cache.get_or_build(key, serialized))

    def query(
        self, request: Any, *, sort_choices: tuple[str, ...], default_sort: str
    ) -> ProductQuery:
        violations = Violations()
        sort = request.sort or default_sort
        if sort not in sort_choices:
            violations.add("sort", f"must be one of {', '.join(sort_choices)}")
        low = _optional(request, "min_price_cents")
        high = _optional(request, "max_price_cents")
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
        async with self.engine.connect() as conn:
            ids = await descendant_ids(conn, root)
        return ProductQuery(**{**query.__dict__, "category_ids": ids})

    async def page(self, hits: SearchHits) -> list[pb.Product]:
        rows = (
            hits.rows if hits.rows is not None else await self.products.get_many(hits.product_ids)
        )
        return [product_message(row) for row in rows]

    async def after_write(self) -> None:
        await self.cache.invalidate()


class ProductServicer(catalog_pb2_grpc.ProductServiceServicer):
    def __init__(self, catalog: Catalog) -> None:
        self._c = catalog

    async def ListProducts(self, request: pb.ListProductsRequest, context: Context) -> Any:
        if request.include_inactive:
            await require_admin()

        async def build() -> pb.ListProductsResponse:
            query = self._c.query(request, sort_choices=LIST_SORTS, default_sort="newest")
            query = await self._c.with_category(query, request.category_id)
            hits = await self._c.listing.search(query, facets=False)
            return pb.ListProductsResponse(
                products=await self._c.page(hits),
                next_page_token=hits.next_page_token,
                total_size=hits.total,
            )

        if request.include_inactive:
            return await build()
        return await self._c.cached("list", request, pb.ListProductsResponse, build)

    async def SearchProducts(self, request: pb.SearchProductsRequest, context: Context) -> Any:
        violations = Violations()
        violations.check_length("q", request.q, 1, 200)
        violations.raise_if_any()

        async def build() -> pb.SearchProductsResponse:
            query = self._c.query(request, sort_choices=SORTS, default_sort="relevance")
            query = await self._c.with_category(query, request.category_id)
            hits = await self._c.search.search(query)
            return pb.SearchProductsResponse(
                products=await self._c.page(hits),
                next_page_token=hits.next_page_token,
                total_size=hits.total,
                facets=await self._facets(hits),
            )

        return await self._c.cached("search", request, pb.SearchProductsResponse, build)

    async def _facets(self, hits: SearchHits) -> pb.SearchFacets:
        facets = pb.SearchFacets()
        names = await self._c.categories.names(list(hits.category_counts))
        ordered = sorted(
            hits.category_counts.items(), key=lambda kv: (-kv[1], names.get(kv[0], ""))
        )
        for category_id, count in ordered:
            facets.categories.append(
                pb.CategoryFacet(
                    category_id=str(category_id), name=names.get(category_id, ""), count=count
                )
            )
        for i, low in enumerate(PRICE_BAND_EDGES):
            band = pb.PriceBandFacet(
                min_price_cents=low,
                currency="USD",
                count=hits.price_band_counts[i] if hits.price_band_counts else 0,
            )
            if i + 1 < len(PRICE_BAND_EDGES):
                band.max_price_cents = PRICE_BAND_EDGES[i + 1]
            facets.price_bands.append(band)
        return facets

    async def GetProduct(self, request: pb.GetProductRequest, context: Context) -> Any:
        product_id = parse_uuid("id", request.id)

        async def build() -> pb.Product:
            return product_message(await self._c.products.get(product_id))

        try:
            return await self._c.cached("product", request, pb.Product, build)
        except NotFound:
            # Hidden from customers; an admin still sees an inactive product.
            if not sent_credentials():
                raise
            await require_admin()
            return product_message(await self._c.products.get(product_id, include_inactive=True))

    async def CreateProduct(self, request: pb.CreateProductRequest, context: Context) -> Any:
        await require_admin()
        fields = ProductFields(
            sku=request.sku,
            name=request.name,
            description=request.description,
            price_cents=request.price_cents,
            currency=request.currency,
            category_id=request.category_id,
            image_urls=list(request.image_urls),
            active=_optional(request, "active"),
            low_stock_threshold=_optional(request, "low_stock_threshold"),
        )
        row = await self._c.products.create(fields, stock=request.stock)
        await self._c.after_write()
        return product_message(row)

    async def UpdateProduct(self, request: pb.UpdateProductRequest, context: Context) -> Any:
        await require_admin()
        if request.clear_image_urls and request.image_urls:
            raise InvalidArgument({"image_urls": "must be empty when clear_image_urls is true"})
        images = [] if request.clear_image_urls else (list(request.image_urls) or None)
        fields = ProductFields(
            sku=_optional(request, "sku"),
            name=_optional(request, "name"),
            description=_optional(request, "description"),
            price_cents=_optional(request, "price_cents"),
            currency=_optional(request, "currency"),
            category_id=_optional(request, "category_id"),
            image_urls=images,
            active=_optional(request, "active"),
            low_stock_threshold=_optional(request, "low_stock_threshold"),
        )
        row = await self._c.products.update(parse_uuid("id", request.id), fields)
        await self._c.after_write()
        return product_message(row)

    async def DeleteProduct(self, request: pb.DeleteProductRequest, context: Context) -> Any:
        await require_admin()
        await self._c.products.delete(parse_uuid("id", request.id))
        await self._c.after_write()
        return pb.DeleteProductResponse()

    async def CreateProductImageUpload(
        self, request: pb.CreateProductImageUploadRequest, context: Context
    ) -> Any:
        await require_admin()
        upload_url, image_url = await self._c.images.create_upload(
            parse_uuid("id", request.id), request.content_type
        )
        return pb.CreateProductImageUploadResponse(upload_url=upload_url, image_url=image_url)


class CategoryServicer(catalog_pb2_grpc.CategoryServiceServicer):
    def __init__(self, catalog: Catalog) -> None:
        self._c = catalog

    async def ListCategories(self, request: pb.ListCategoriesRequest, context: Context) -> Any:
        async def build() -> pb.ListCategoriesResponse:
            roots = await self._c.categories.tree()
            return pb.ListCategoriesResponse(categories=[category_message(n) for n in roots])

        return await self._c.cached("categories", request, pb.ListCategoriesResponse, build)

    async def ListCategoryProducts(
        self, request: pb.ListCategoryProductsRequest, context: Context
    ) -> Any:
        category_id = parse_uuid("id", request.id)

        async def build() -> pb.ListCategoryProductsResponse:
            await self._c.categories.get(category_id)  # unknown category: NOT_FOUND
            query = self._c.query(request, sort_choices=LIST_SORTS, default_sort="newest")
            query = await self._c.with_category(query, request.id)
            hits = await self._c.listing.search(query, facets=False)
            return pb.ListCategoryProductsResponse(
                products=await self._c.page(hits),
                next_page_token=hits.next_page_token,
                total_size=hits.total,
            )

        return await self._c.cached(
            "category-products", request, pb.ListCategoryProductsResponse, build
        )

    async def CreateCategory(self, request: pb.CreateCategoryRequest, context: Context) -> Any:
        await require_admin()
        row = await self._c.categories.create(request.name, request.slug, request.parent_id)
        await self._c.after_write()
        return category_message(row)

    async def UpdateCategory(self, request: pb.UpdateCategoryRequest, context: Context) -> Any:
        await require_admin()
        row = await self._c.categories.update(
            parse_uuid("id", request.id),
            name=_optional(request, "name"),
            slug=_optional(request, "slug"),
            parent_id=_optional(request, "parent_id"),
        )
        await self._c.after_write()
        return category_message(row)


_STATES = {
    "active": pb.RESERVATION_STATE_ACTIVE,
    "committed": pb.RESERVATION_STATE_COMMITTED,
    "released": pb.RESERVATION_STATE_RELEASED,
    "expired": pb.RESERVATION_STATE_EXPIRED,
}


def reservation_message(view: Any) -> pb.Reservation:
    reservation = pb.Reservation(
        reservation_id=str(view.id),
        state=_STATES[view.state],
        items=[pb.ReservationItem(product_id=str(p), quantity=q) for p, q in view.items],
    )
    reservation.expires_at.FromDatetime(view.expires_at)
    return reservation


def stock_level_message(view: Any) -> pb.StockLevel:
    level = pb.StockLevel(
        product_id=str(view.product_id),
        sku=view.sku,
        name=view.name,
        on_hand=view.on_hand,
        reserved=view.reserved,
        available=view.available,
        low_stock_threshold=view.low_stock_threshold,
    )
    level.updated_at.FromDatetime(view.updated_at)
    return level


class InventoryServicer(catalog_pb2_grpc.InventoryServiceServicer):
    def __init__(self, catalog: Catalog, inventory: Inventory) -> None:
        self._c = catalog
        self._inventory = inventory

    async def SetProductStock(self, request: pb.SetProductStockRequest, context: Context) -> Any:
        await require_admin()
        level = await self._inventory.set_stock(
            request.id, _optional(request, "on_hand"), _optional(request, "low_stock_threshold")
        )
        return stock_level_message(level)

    async def ListLowStockProducts(
        self, request: pb.ListLowStockProductsRequest, context: Context
    ) -> Any:
        await require_admin()
        levels, next_token, total = await self._inventory.list_low_stock(
            request.page_size, request.page_token
        )
        return pb.ListLowStockProductsResponse(
            stock_levels=[stock_level_message(v) for v in levels],
            next_page_token=next_token,
            total_size=total,
        )


class CatalogInternalServicer(catalog_pb2_grpc.CatalogInternalServiceServicer):
    def __init__(self, catalog: Catalog, inventory: Inventory) -> None:
        self._c = catalog
        self._inventory = inventory

    async def GetProducts(self, request: pb.GetProductsRequest, context: Context) -> Any:
        violations = Violations()
        if not 1 <= len(request.ids) <= 100:
            violations.add("ids", "must hold 1 to 100 ids")
        ids: list[Any] = []
        for i, raw in enumerate(request.ids):
            try:
                ids.append(parse_uuid(f"ids[{i}]", raw))
            except InvalidArgument as error:
                violations.items.extend(error.violations)
        violations.raise_if_any()
        unique = list(dict.fromkeys(ids))
        rows = await self._c.products.get_many(unique)
        found = {row.id for row in rows}
        return pb.GetProductsResponse(
            products=[product_message(row) for row in rows],
            not_found_ids=[str(i) for i in unique if i not in found],
        )

    async def ReserveStock(self, request: pb.ReserveStockRequest, context: Context) -> Any:
        view = await self._inventory.reserve(
            request.reservation_id,
            [(item.product_id, item.quantity) for item in request.items],
            request.ttl_seconds,
        )
        return reservation_message(view)

    async def CommitReservation(
        self, request: pb.CommitReservationRequest, context: Context
    ) -> Any:
        return reservation_message(await self._inventory.commit(request.reservation_id))

    async def ReleaseReservation(
        self, request: pb.ReleaseReservationRequest, context: Context
    ) -> Any:
        return reservation_message(await self._inventory.release(request.reservation_id))

    async def CountLowStockProducts(
        self, request: pb.CountLowStockProductsRequest, context: Context
    ) -> Any:
        return pb.CountLowStockProductsResponse(count=await self._inventory.count_low_stock())
