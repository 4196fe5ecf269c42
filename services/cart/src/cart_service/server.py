"""What the cart service is made of; ecom_runtime.server runs it."""

from __future__ import annotations

from ecom_runtime.clients import ServiceClient
from ecom_runtime.db import Database
from ecom_runtime.jobs import ScheduledJob
from ecom_runtime.server import App, Consumer
from ecommerce.events.v1 import events_pb2

from cart_service.carts import Carts
from cart_service.catalog import Catalog
from cart_service.config import CartSettings
from cart_service.servicer import CartInternalServicer, CartServicer
from cart_service.store import inbox, outbox

Settings = CartSettings
ORDER_PAID = "ecom.orders.order_paid"  # empties the buyer's cart


def build_app(settings: CartSettings | None = None) -> App:
    settings = settings or CartSettings()
    db = Database.for_service(settings, outbox=outbox, inbox=inbox)
    catalog = ServiceClient.to("catalog", settings.catalog_grpc_addr, settings)
    carts = Carts(db, Catalog(catalog))

    async def purge_abandoned() -> None:
        await carts.purge_abandoned(settings.cart_guest_ttl_seconds)

    return App(
        name="cart",
        settings=settings,
        db=db,
        servicers=[CartServicer(carts), CartInternalServicer(carts)],
        consumers=[
            Consumer("cart-order-paid", ORDER_PAID, events_pb2.OrderPaid, carts.on_order_paid)
        ],
        jobs=[ScheduledJob("purge-guest-carts", settings.cart_purge_seconds, purge_abandoned)],
        closing=[catalog.close],
    )
