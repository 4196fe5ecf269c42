"""gRPC server bootstrap: health, reflection, interceptors, background tasks, graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from ecom_runtime.auth import Authenticator
from ecom_runtime.config import ServiceSettings
from ecom_runtime.interceptors import RequestInterceptor
from ecom_runtime.telemetry import tracing_exported

log = logging.getLogger("ecom.server")


@dataclass
class Registration:
    """One servicer: the generated `add_XServicer_to_server` and the proto service's full name."""

    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    full_name: str


@dataclass
class App:
    name: str
    settings: ServiceSettings
    authenticator: Authenticator
    services: Sequence[Registration]
    # Run once before the server reports SERVING (e.g. bootstrap data).
    startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Run after the port is bound, cancelled on shutdown (outbox relay, consumers, sweepers).
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


async def serve(app: App) -> None:
    interceptors: list[grpc.aio.ServerInterceptor] = [RequestInterceptor(app.authenticator)]
    if tracing_exported():
        interceptors.insert(0, aio_server_interceptor())
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            # Several processes of one service may share the port (see README, scaling).
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", 4 * 1024 * 1024),
        ],
    )
    for registration in app.services:
        registration.add_to_server(registration.servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [r.full_name for r in app.services]
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    address = f"{app.settings.grpc_host}:{app.settings.grpc_port}"
    if server.add_insecure_port(address) == 0:
        raise SystemExit(f"{app.name}: cannot listen on {address}")
    await server.start()

    for hook in app.startup:
        await hook()
    tasks = [asyncio.create_task(_supervised(job)) for job in app.background]
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving", extra={"address": address, "services": names})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("shutting down")
    # Fail health first so the edge stops routing here, then let in-flight RPCs finish.
    await health_servicer.enter_graceful_shutdown()
    await server.stop(app.settings.shutdown_grace_seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for hook in app.on_shutdown:
        await hook()


async def _supervised(job: Callable[[], Awaitable[None]]) -> None:
    """Keep a background loop alive: log a crash and restart it after a pause."""
    while True:
        try:
            await job()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %s crashed; restarting", getattr(job, "__name__", job))
            await asyncio.sleep(1.0)


def unimplemented_registrations(grpc_module: Any, pb2_module: Any) -> list[Registration]:
    """Every service of a generated module with its base servicer, which answers UNIMPLEMENTED:
    what a service not built yet serves, so the edge and health checks already work."""
    registrations = []
    for service in pb2_module.DESCRIPTOR.services_by_name.values():
        base = getattr(grpc_module, f"{service.name}Servicer")
        add = getattr(grpc_module, f"add_{service.name}Servicer_to_server")
        registrations.append(Registration(add, base(), service.full_name))
    return registrations


def placeholder_app(name: str, settings: ServiceSettings, pb2_module: Any, grpc_module: Any) -> App:
    """A service whose RPCs are not written yet: real health, auth wiring and UNIMPLEMENTED."""
    from ecom_runtime.auth import remote_authenticator

    return App(
        name=name,
        settings=settings,
        authenticator=remote_authenticator(
            settings.auth_grpc_addr, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        ),
        services=unimplemented_registrations(grpc_module, pb2_module),
    )
