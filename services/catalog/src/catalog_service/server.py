"""The catalog service, not built yet: every RPC answers UNIMPLEMENTED, health is SERVING."""

from __future__ import annotations

from ecom_runtime.auth import remote_authenticator
from ecom_runtime.config import ServiceSettings
from ecom_runtime.server import App, unimplemented_registrations
from ecommerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc


class Settings(ServiceSettings):
    grpc_port: int = 50052


def build_app(settings: Settings | None = None) -> App:
    settings = settings or Settings()
    return App(
        name="catalog",
        settings=settings,
        authenticator=remote_authenticator(
            settings.auth_grpc_addr, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        ),
        services=unimplemented_registrations(catalog_pb2_grpc, catalog_pb2),
    )
