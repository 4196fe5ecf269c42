"""The payments service, not built yet: every RPC answers UNIMPLEMENTED, health is SERVING."""

from __future__ import annotations

from ecom_runtime.config import ServiceSettings
from ecom_runtime.server import App, placeholder_app
from ecommerce.payments.v1 import payments_pb2, payments_pb2_grpc


class Settings(ServiceSettings):
    grpc_port: int = 50055


def build_app() -> App:
    return placeholder_app("payments", Settings(), payments_pb2, payments_pb2_grpc)
