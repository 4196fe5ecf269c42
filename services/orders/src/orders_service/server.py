"""The orders service, not built yet: every RPC answers UNIMPLEMENTED, health is SERVING."""

from __future__ import annotations

from ecom_runtime.auth import remote_authenticator
from ecom_runtime.config import ServiceSettings
from ecom_runtime.server import App, unimplemented_registrations
from ecommerce.orders.v1 import orders_pb2, orders_pb2_grpc


class Settings(ServiceSettings):
    grpc_port: int = 50054


def build_app(settings: Settings | None = None) -> App:
    settings = settings or Settings()
    return App(
        name="orders",
        settings=settings,
        authenticator=remote_authenticator(
            settings.auth_grpc_addr, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        ),
        services=unimplemented_registrations(orders_pb2_grpc, orders_pb2),
    )
