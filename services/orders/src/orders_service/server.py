"""What the orders service is made of (not built yet: every RPC answers UNIMPLEMENTED, while
health, the service credential and auth already work); ecom_runtime.server runs it."""

from __future__ import annotations

from ecom_runtime.config import ServiceSettings
from ecom_runtime.server import App, unimplemented_servicers
from ecommerce.orders.v1 import orders_pb2, orders_pb2_grpc


class Settings(ServiceSettings):
    grpc_port: int = 50054


def build_app() -> App:
    settings = Settings()
    return App(
        name="orders",
        settings=settings,
        servicers=unimplemented_servicers(orders_pb2_grpc, orders_pb2),
    )
