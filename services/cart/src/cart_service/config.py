"""Cart service settings (environment variables; see the README's configuration table)."""

from __future__ import annotations

from ecom_runtime.config import ServiceSettings


class CartSettings(ServiceSettings):
    grpc_port: int = 50053
    # The catalog's gRPC address: carts are priced by it (CatalogInternalService.GetProducts).
    catalog_grpc_addr: str = "127.0.0.1:50052"
    # Guest carts not touched for this long are deleted (30 days).
    cart_guest_ttl_seconds: int = 30 * 24 * 3600
    # How often abandoned guest carts are looked for.
    cart_purge_seconds: float = 3600.0
