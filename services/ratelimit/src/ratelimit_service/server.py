"""The gRPC server: the rate-limit servicer and the standard health service, nothing else.

Not `ecom_runtime.server.App`: this service has no database, events or callers to
authenticate (only the edge calls it), and must start and answer fast.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import grpc
import redis.asyncio as aioredis
from ecom_runtime.telemetry import span_interceptors
from envoy_rls.service.ratelimit.v3 import rls_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ratelimit_service.config import RateLimitSettings
from ratelimit_service.limiter import Budget, FixedWindows
from ratelimit_service.servicer import RateLimitServicer

log = logging.getLogger("ecom.ratelimit")


def budgets(settings: RateLimitSettings) -> dict[str, Budget]:
    return {
        "auth": Budget(
            "auth", settings.ratelimit_auth_per_window, settings.ratelimit_auth_window_seconds
        ),
        "default": Budget(
            "default",
            settings.ratelimit_default_per_window,
            settings.ratelimit_default_window_seconds,
        ),
    }


def redis_client(settings: RateLimitSettings) -> aioredis.Redis:
    timeout = settings.ratelimit_redis_timeout_seconds
    return aioredis.Redis.from_url(
        settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
    )


async def start(settings: RateLimitSettings) -> tuple[grpc.aio.Server, FixedWindows, int]:
    """Start serving on `grpc_host:grpc_port` (0: a free port); returns the bound port too."""
    windows = FixedWindows(redis_client(settings), settings.ratelimit_redis_timeout_seconds)
    server = grpc.aio.server(interceptors=span_interceptors(), options=[("grpc.so_reuseport", 1)])
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(
        RateLimitServicer(windows, budgets(settings)), server
    )
    health_servicer = health.aio.HealthServicer()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    port = server.add_insecure_port(address)
    if port == 0:
        raise SystemExit(f"ratelimit: cannot listen on {address}")
    await server.start()
    log.info("serving", extra={"address": address, "budgets": str(budgets(settings))})
    return server, windows, port


async def serve(settings: RateLimitSettings) -> None:
    server, windows, _ = await start(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)
    log.info("stopped", extra={"fail_open_total": windows.fail_open_total})
