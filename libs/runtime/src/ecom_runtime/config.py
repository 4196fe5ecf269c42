"""Settings shared by every service, read from environment variables only.

Each default is safe for the local stack; production overrides them (see README's table).
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/ecommerce"
    database_pool_size: int = 10
    redis_url: str = "redis://127.0.0.1:6379/0"
    nats_url: str = "nats://127.0.0.1:4222"
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 0  # each service sets its own default
    # Seconds in-flight RPCs get to finish after SIGTERM.
    shutdown_grace_seconds: float = 10.0
    log_level: str = "INFO"
    log_format: str = "json"  # or "text"
    # The auth service's gRPC address; other services fetch its JWKS and resolve API keys there.
    auth_grpc_addr: str = "127.0.0.1:50051"
    # How often the outbox relay looks for unpublished events when it has not been woken.
    outbox_poll_seconds: float = 0.2
    jwt_issuer: str = "ecommerce-auth"
    jwt_audience: str = "ecommerce"
