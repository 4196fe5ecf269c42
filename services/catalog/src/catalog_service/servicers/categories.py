"""CategoryService: the public category tree and (admin) its maintenance."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from ecom_runtime.auth import require_admin
from ecom_runtime.validation import parse_uuid
from ecommerce.catalog.v1 import catalog_pb2 as pb
from ecommerce.catalog.v1 import catalog_pb2_grpc

from catalog_service.servicers.messages import category_message, optional
from catalog_service.servicers.reads import LIST_SORTS, Reads

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class CategoryServicer(catalog_pb2_grpc.CategoryServiceServicer):
    def __init__(self, reads: Reads) -> None:
        self._c = reads

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

        return await self._c.cached_page(
            "category-products", request, pb.ListCategoryProductsResponse, build
        )

    async def CreateCategory(self, request: pb.CreateCategoryRequest, context: Context) -> Any:
        await require_admin()
        row = await self._c.categories.create(request.name, request.slug, request.parent_id)
        return category_message(row)

    async def UpdateCategory(self, request: pb.UpdateCategoryRequest, context: Context) -> Any:
        await require_admin()
        row = await self._c.categories.update(
            parse_uuid("id", request.id),
            name=optional(request, "name"),
            slug=optional(request, "slug"),
            parent_id=optional(request, "parent_id"),
        )
        return category_message(row)
