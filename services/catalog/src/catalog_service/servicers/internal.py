"""CatalogInternalService: what other services ask of the catalog (products by id, stock
reservations). Every call carries a service credential (checked by the runtime)."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from ecom_runtime.errors import InvalidArgument
from ecom_runtime.validation import Violations, parse_uuid
from ecommerce.catalog.v1 import catalog_pb2 as pb
from ecommerce.catalog.v1 import catalog_pb2_grpc

from catalog_service.inventory import Inventory
from catalog_service.products import Products
from catalog_service.servicers.messages import product_message, reservation_message

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class CatalogInternalServicer(catalog_pb2_grpc.CatalogInternalServiceServicer):
    def __init__(self, products: Products, inventory: Inventory) -> None:
        self._products = products
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
        rows = await self._products.get_many(unique)
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
