"""What the payments service is made of (not built yet: every RPC answers UNIMPLEMENTED, while
health, the service credential and auth already work); ecom_runtime.server runs it."""

from __future__ import annotations

from ecom_runtime.config import ServiceSettings
from ecom_runtime.server import App, unimplemented_servicers
from ecommerce.payments.v1 import payments_pb2, payments_pb2_grpc


class Settings(ServiceSettings):
    grpc_port: int = 50055


def build_app() -> App:
    settings = Settings()
    return App(
        name="payments",
        settings=settings,
        servicers=unimplemented_servicers(payments_pb2_grpc, payments_pb2),
    )
