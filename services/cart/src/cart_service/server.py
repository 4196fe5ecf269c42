"""The cart service, not built yet: every RPC answers UNIMPLEMENTED, health is SERVING."""

from __future__ import annotations

from ecom_runtime.config import ServiceSettings
from ecom_runtime.server import App, placeholder_app
from ecommerce.cart.v1 import cart_pb2, cart_pb2_grpc


class Settings(ServiceSettings):
    grpc_port: int = 50053


def build_app() -> App:
    return placeholder_app("cart", Settings(), cart_pb2, cart_pb2_grpc)
