"""ProductService: browsing, search and (admin) product maintenance."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from ecom_runtime.auth import current_principal, require_admin
from ecom_runtime.errors import InvalidArgument, NotFound
from ecom_runtime.validation import Violations, parse_uuid
from ecommerce.catalog.v1 import catalog_pb2 as pb
from ecommerce.catalog.v1 import catalog_pb2_grpc

from catalog_service.images import Images
from catalog_service.products import ProductFields
from catalog_service.search import PRICE_BAND_EDGES, SORTS, SearchHits
from catalog_service.servicers.messages import optional, product_message
from catalog_service.servicers.reads import LIST_SORTS, Reads

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class ProductServicer(catalog_pb2_grpc.ProductServiceServicer):
    def __init__(self, reads: Reads, images: Images) -> None:
        self._c = reads
        self._images = images

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
        return await self._c.cached_page("list", request, pb.ListProductsResponse, build)

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

        return await self._c.cached_page("search", request, pb.SearchProductsResponse, build)

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

        try:
            return await self._c.cached_product(product_id)
        except NotFound:
            # Hidden from everyone but admins, who still see an inactive product; to anyone
            # else a hidden product does not exist (404, never a 403 that would confirm it).
            caller = await current_principal()
            if caller is None or not caller.is_admin:
                raise
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
            active=optional(request, "active"),
            low_stock_threshold=optional(request, "low_stock_threshold"),
        )
        row = await self._c.products.create(fields, stock=request.stock)
        return product_message(row)

    async def UpdateProduct(self, request: pb.UpdateProductRequest, context: Context) -> Any:
        await require_admin()
        if request.clear_image_urls and request.image_urls:
            raise InvalidArgument({"image_urls": "must be empty when clear_image_urls is true"})
        images = [] if request.clear_image_urls else (list(request.image_urls) or None)
        fields = ProductFields(
            sku=optional(request, "sku"),
            name=optional(request, "name"),
            description=optional(request, "description"),
            price_cents=optional(request, "price_cents"),
            currency=optional(request, "currency"),
            category_id=optional(request, "category_id"),
            image_urls=images,
            active=optional(request, "active"),
            low_stock_threshold=optional(request, "low_stock_threshold"),
        )
        row = await self._c.products.update(parse_uuid("id", request.id), fields)
        return product_message(row)

    async def DeleteProduct(self, request: pb.DeleteProductRequest, context: Context) -> Any:
        await require_admin()
        await self._c.products.delete(parse_uuid("id", request.id))
        return pb.DeleteProductResponse()

    async def CreateProductImageUpload(
        self, request: pb.CreateProductImageUploadRequest, context: Context
    ) -> Any:
        await require_admin()
        upload_url, image_url = await self._images.create_upload(
            parse_uuid("id", request.id), request.content_type
        )
        return pb.CreateProductImageUploadResponse(upload_url=upload_url, image_url=image_url)
