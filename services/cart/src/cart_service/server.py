"""The cart service, not built yet: every RPC answers UNIMPLEMENTED, health is SERVING."""

from __future__ import annotations

from ecom_runtime.auth import remote_authenticator
from ecom_runtime.config import ServiceSettings
from ecom_runtime.server import App, unimplemented_registrations
from ecommerce.cart.v1 import cart_pb2, cart_pb2_grpc


class Settings(ServiceSettings):
    grpc_port: int = 50053


def build_app(settings: Settings | None = None) -> App:
    settings = settings or Settings()
    return App(
        name="cart",
        settings=settings,
        authenticator=remote_authenticator(
            settings.auth_grpc_addr, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        ),
        services=unimplemented_registrations(cart_pb2_grpc, cart_pb2),
    )
