"""Settings shared by every service, read from environment variables only.

Each default is safe for the local stack; production overrides them (see README's table).
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/ecommerce"
    database_pool_size: int = 10
    # Every wait on PostgreSQL is bounded; together they stay below the edge's 15 s route
    # timeout, so an outage is a 503 from us, not a 504 from the edge.
    database_connect_timeout_seconds: float = 3.0
    database_pool_timeout_seconds: float = 3.0
    database_statement_timeout_seconds: float = 5.0
    redis_url: str = "redis://127.0.0.1:6379/0"
    nats_url: str = "nats://127.0.0.1:4222"
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 0  # each service sets its own default
    # After SIGTERM the health check says NOT_SERVING for this long while RPCs are still
    # served, so the edge's health checks (every second, two failures) stop routing here first; then
    # in-flight RPCs get `shutdown_grace_seconds` to finish.
    shutdown_drain_seconds: float = 3.0
    shutdown_grace_seconds: float = 10.0
    log_level: str = "INFO"
    log_format: str = "json"  # or "text"
    # The auth service's gRPC address; other services fetch its JWKS and resolve API keys there.
    auth_grpc_addr: str = "127.0.0.1:50051"
    # Credentials for internal RPCs (`*InternalService`), comma-separated: the first is sent
    # on our calls to other services, any of them is accepted. Rotation, one rollout each:
    # "old,new", then "new,old", then "new". Empty: internal RPCs are refused.
    service_credentials: str = ""
    # How often the outbox relay looks for unpublished events when it has not been woken.
    outbox_poll_seconds: float = 0.2
    jwt_issuer: str = "ecommerce-auth"
    jwt_audience: str = "ecommerce"
