"""What the cart asks the catalog: current names, prices and stock, for many products at once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ecom_runtime.clients import ServiceClient
from ecommerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc

MAX_PER_CALL = 100  # CatalogInternalService.GetProducts takes at most this many ids


@dataclass(frozen=True)
class Offer:
    """A product as the cart sells it right now."""

    product_id: uuid.UUID
    name: str
    price_cents: int
    currency: str
    available: int
    active: bool


class Catalog:
    def __init__(self, client: ServiceClient) -> None:
        self._products = client.stub(catalog_pb2_grpc.CatalogInternalServiceStub)

    async def offers(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, Offer]:
        """Current offers of the live products among `ids` (deleted or unknown ones are absent;
        inactive ones present with `active` false). One call per 100 ids."""
        found: dict[uuid.UUID, Offer] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), MAX_PER_CALL):
            batch = [str(i) for i in unique[start : start + MAX_PER_CALL]]
            reply = await self._products.GetProducts(catalog_pb2.GetProductsRequest(ids=batch))
            for product in reply.products:
                offer = Offer(
                    product_id=uuid.UUID(product.id),
                    name=product.name,
                    price_cents=product.price_cents,
                    currency=product.currency or "USD",
                    available=product.stock,
                    active=product.active,
                )
                found[offer.product_id] = offer
        return found
