"""The catalog service, not built yet: every RPC answers UNIMPLEMENTED, health is SERVING."""

from __future__ import annotations

from ecom_runtime.config import ServiceSettings
from ecom_runtime.server import App, placeholder_app
from ecommerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc


class Settings(ServiceSettings):
    grpc_port: int = 50052


def build_app() -> App:
    return placeholder_app("catalog", Settings(), catalog_pb2, catalog_pb2_grpc)
