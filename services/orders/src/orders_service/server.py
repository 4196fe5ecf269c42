"""The orders service, not built yet: every RPC answers UNIMPLEMENTED, health is SERVING."""

from __future__ import annotations

from ecom_runtime.config import ServiceSettings
from ecom_runtime.server import App, placeholder_app
from ecommerce.orders.v1 import orders_pb2, orders_pb2_grpc


class Settings(ServiceSettings):
    grpc_port: int = 50054


def build_app() -> App:
    return placeholder_app("orders", Settings(), orders_pb2, orders_pb2_grpc)
