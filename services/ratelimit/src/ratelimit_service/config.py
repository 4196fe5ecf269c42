"""Rate-limit settings (environment variables; see the README's configuration table).

The defaults are production's budgets; the local stack passes generous ones so that `make dev`
and the test suite are not limited by their own traffic.
"""

from __future__ import annotations

from ecom_runtime.config import ServiceSettings
from pydantic import Field


class RateLimitSettings(ServiceSettings):
    grpc_port: int = 50057
    # Requests per client IP and window on /api/auth/* (and AuthService over gRPC).
    ratelimit_auth_per_window: int = Field(default=100, ge=1)
    ratelimit_auth_window_seconds: int = Field(default=900, ge=1)
    # Requests per client IP and window on every other rate-limited route.
    ratelimit_default_per_window: int = Field(default=1000, ge=1)
    ratelimit_default_window_seconds: int = Field(default=60, ge=1)
    # Each Redis call is bounded so an outage answers OK (fail open) well within the edge's
    # own timeout for this service.
    ratelimit_redis_timeout_seconds: float = Field(default=0.05, gt=0)
