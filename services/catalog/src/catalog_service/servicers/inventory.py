"""InventoryService: (admin) stock levels and the low-stock list."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from ecom_runtime.auth import require_admin
from ecommerce.catalog.v1 import catalog_pb2 as pb
from ecommerce.catalog.v1 import catalog_pb2_grpc

from catalog_service.inventory import Inventory
from catalog_service.servicers.messages import optional, stock_level_message

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class InventoryServicer(catalog_pb2_grpc.InventoryServiceServicer):
    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory

    async def SetProductStock(self, request: pb.SetProductStockRequest, context: Context) -> Any:
        await require_admin()
        level = await self._inventory.set_stock(
            request.id, optional(request, "on_hand"), optional(request, "low_stock_threshold")
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
