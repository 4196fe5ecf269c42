"""What the cart service is made of (not built yet: every RPC answers UNIMPLEMENTED, while
health, the service credential and auth already work); ecom_runtime.server runs it."""

from __future__ import annotations

from ecom_runtime.config import ServiceSettings
from ecom_runtime.server import App, unimplemented_servicers
from ecommerce.cart.v1 import cart_pb2, cart_pb2_grpc


class Settings(ServiceSettings):
    grpc_port: int = 50053


def build_app() -> App:
    settings = Settings()
    return App(
        name="cart",
        settings=settings,
        servicers=unimplemented_servicers(cart_pb2_grpc, cart_pb2),
    )
