"""The service runtime: a service declares what it is made of (`App`), this runs it.

    return App(
        name="auth",
        settings=settings,
        db=db,                                   # outbox relay and inbox pruning come with it
        servicers=[AuthServicer(...), UserServicer(...)],
        consumers=[Consumer("auth-reset-email", RESET_REQUESTED, PasswordResetRequested, fn)],
        jobs=[ScheduledJob("purge-expired", 3600, purge_expired)],   # run by JetStream
        tasks=[every(5, sweep)],                 # in this process: timing guarantees
        startup=[bootstrap_admin],
    )

`serve` binds the port reporting NOT_SERVING, runs `startup`, starts the supervised background
work (outbox relay, consumers, jobs, revocation listener, `tasks`), then reports SERVING. On SIGTERM
it reports NOT_SERVING, keeps serving for `shutdown_drain_seconds` so the edge's health checks
stop routing here first, then lets in-flight RPCs finish and closes everything.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from ecommerce.events.v1 import events_pb2
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ecom_runtime.auth import Authenticator, ServiceCredentials, remote_authenticator
from ecom_runtime.clients import ServiceClient
from ecom_runtime.config import ServiceSettings
from ecom_runtime.db import Database, UnitOfWork
from ecom_runtime.events import (
    STREAM,
    DeadLetterKeeper,
    EventConsumer,
    OutboxRelay,
    connect_jetstream,
    prune_inbox,
)
from ecom_runtime.interceptors import RequestInterceptor
from ecom_runtime.jobs import ScheduledJob, ensure_stream, run_consumer, schedule
from ecom_runtime.telemetry import span_interceptors

log = logging.getLogger("ecom.server")

Job = Callable[[], Awaitable[Any]]
# Auth's revocation events; every service applies them to its authenticator.
USER_ACCESS_CHANGED = "ecom.auth.user_access_changed"
API_KEY_REVOKED = "ecom.auth.api_key_revoked"


@dataclass(frozen=True)
class Consumer:
    """A durable JetStream consumer applying each event of `subject` once, in one unit of work
    with its inbox claim (`handler(tx, event)`); failures are redelivered with backoff.

    After `max_deliver` failed deliveries JetStream drops the event, unless `dead_letter` is
    given: then the event is handed to it (to keep and replay later) and acknowledged.
    """

    durable: str
    subject: str
    message_type: type[Message]
    handler: Callable[[UnitOfWork, Any], Awaitable[None]]
    max_deliver: int = 10
    dead_letter: DeadLetterKeeper | None = None


def every(seconds: float, job: Job) -> Job:
    """A background task running `job` now and then every `seconds` (a failure is logged and
    the next round retries)."""

    async def repeat() -> None:
        while True:
            try:
                await job()
            except Exception:
                log.exception("periodic task %s failed", getattr(job, "__name__", job))
            await asyncio.sleep(seconds)

    repeat.__name__ = f"every_{seconds:g}s_{getattr(job, '__name__', 'job')}"
    return repeat


@dataclass
class App:
    name: str
    settings: ServiceSettings
    # Instances of generated `...Servicer` subclasses; each is registered by its base class.
    servicers: Sequence[Any]
    db: Database | None = None
    # Default: tokens and API keys verified through the auth service.
    authenticator: Authenticator | None = None
    consumers: Sequence[Consumer] = ()
    # Maintenance run by JetStream, once per interval across all replicas (ecom_runtime.jobs).
    jobs: Sequence[ScheduledJob] = ()
    # Loops in each process, restarted after a crash (see `every`): for sweeps whose timing is
    # a promise (reservations expiring) and for work tied to the process.
    tasks: Sequence[Job] = ()
    # Before SERVING, in order.
    startup: Sequence[Job] = ()
    # After the server stopped: close clients (the db and auth client are closed anyway).
    closing: Sequence[Job] = ()
    credentials: ServiceCredentials = field(init=False)

    def __post_init__(self) -> None:
        self.credentials = ServiceCredentials(self.settings.service_credentials)
        self._auth_client: ServiceClient | None = None
        if self.authenticator is None:
            self._auth_client = ServiceClient.to(
                "auth", self.settings.auth_grpc_addr, self.settings
            )
            self.authenticator = remote_authenticator(
                self._auth_client,
                issuer=self.settings.jwt_issuer,
                audience=self.settings.jwt_audience,
            )


def _register(servicer: Any, server: grpc.aio.Server) -> str:
    """Adds a servicer by its generated base class; returns the proto service's full name."""
    for base in type(servicer).__mro__:
        module_name = base.__module__
        if module_name.endswith("_pb2_grpc") and base.__name__.endswith("Servicer"):
            module = importlib.import_module(module_name)
            service = base.__name__.removesuffix("Servicer")
            getattr(module, f"add_{base.__name__}_to_server")(servicer, server)
            pb2 = importlib.import_module(module_name.removesuffix("_grpc"))
            return str(pb2.DESCRIPTOR.services_by_name[service].full_name)
    raise TypeError(f"{type(servicer).__name__} does not extend a generated Servicer")


async def serve(app: App) -> None:
    settings = app.settings
    assert app.authenticator is not None
    interceptors: list[grpc.aio.ServerInterceptor] = [
        *span_interceptors(),
        RequestInterceptor(app.authenticator, app.credentials),
    ]
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            # Several processes of one service may share the port (see README, scaling).
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", 4 * 1024 * 1024),
        ],
    )
    names = [_register(servicer, server) for servicer in app.servicers]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    # Bound but not ready: the health service says so until start-up work is done.
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    if server.add_insecure_port(address) == 0:
        raise SystemExit(f"{app.name}: cannot listen on {address}")
    await server.start()

    for job in app.startup:
        await job()
    tasks = [asyncio.create_task(_supervised(job)) for job in _background(app)]
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving", extra={"address": address, "services": names})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("shutting down")
    # Fail health first and keep serving while the edge notices, then drain and stop.
    await health_servicer.enter_graceful_shutdown()
    await asyncio.sleep(settings.shutdown_drain_seconds)
    await server.stop(settings.shutdown_grace_seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for job in app.closing:
        await job()
    if app._auth_client is not None:
        await app._auth_client.close()
    if app.db is not None:
        await app.db.dispose()


def _background(app: App) -> list[Job]:
    jobs: list[Job] = [*app.tasks]

    async def events() -> None:
        nc, js = await connect_jetstream(app.settings.nats_url)
        loops = [_watch_revocations(nc, js, app)]
        if app.db is not None and app.db.outbox is not None:
            loops.append(OutboxRelay(app.db, app.settings.outbox_poll_seconds).run(js))
        for spec in app.consumers:
            assert app.db is not None, "consumers need a database with an inbox"
            consumer = EventConsumer(
                db=app.db,
                js=js,
                durable=spec.durable,
                subject=spec.subject,
                message_type=spec.message_type,
                handler=spec.handler,
                max_deliver=spec.max_deliver,
                dead_letter=spec.dead_letter,
            )
            loops.append(consumer.run())
        scheduled = list(app.jobs)
        if app.db is not None and app.db.inbox is not None:
            db = app.db

            async def prune_claims() -> None:
                if removed := await prune_inbox(db):
                    log.info("inbox pruned", extra={"count": removed})

            scheduled.append(ScheduledJob("prune-inbox", 3600, prune_claims))
        if scheduled:
            await ensure_stream(nc)
        for job in scheduled:
            await schedule(js, app.name, job)
            loops.append(run_consumer(js, app.name, job))
        try:
            await asyncio.gather(*loops)
        finally:
            await nc.close()

    jobs.append(events)
    return jobs


async def _watch_revocations(nc: Any, js: Any, app: App) -> None:
    """Applies auth's revocation events to this process's authenticator, within a second.

    Live events come by a plain NATS subscription (JetStream delivers each published message
    to core subscribers too, and the client restores it after a reconnect); then one pass over
    the stream's last day catches up on what happened before this process started, while an
    access token issued before it may still live. Applying an event twice changes nothing.
    """
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    authenticator = app.authenticator
    assert authenticator is not None

    def apply(subject: str, data: bytes) -> None:
        if subject == USER_ACCESS_CHANGED:
            changed = events_pb2.UserAccessChanged.FromString(data)
            authenticator.revoke_user(changed.user_id, changed.occurred_at.ToMicroseconds() / 1e6)
        elif subject == API_KEY_REVOKED:
            revoked = events_pb2.ApiKeyRevoked.FromString(data)
            authenticator.revoke_api_key(revoked.api_key_id)

    async def live(message: Any) -> None:
        apply(message.subject, message.data)

    subscriptions = [await nc.subscribe(s, cb=live) for s in (USER_ACCESS_CHANGED, API_KEY_REVOKED)]
    try:
        since = datetime.now(UTC) - timedelta(days=1)
        for subject in (USER_ACCESS_CHANGED, API_KEY_REVOKED):
            history = await js.pull_subscribe(
                subject,
                stream=STREAM,
                config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.BY_START_TIME,
                    opt_start_time=since,
                    ack_policy=AckPolicy.NONE,
                    inactive_threshold=60.0,
                ),
            )
            while True:
                try:
                    batch = await history.fetch(256, timeout=1.0)
                except TimeoutError:
                    break
                for message in batch:
                    apply(message.subject, message.data)
            await history.unsubscribe()
        await asyncio.Event().wait()  # the live subscription does the work until cancelled
    finally:
        for subscription in subscriptions:
            await subscription.unsubscribe()


async def _supervised(job: Job) -> None:
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


def unimplemented_servicers(grpc_module: Any, pb2_module: Any) -> list[Any]:
    """Every service of a generated module as its base servicer, which answers UNIMPLEMENTED:
    what a service not built yet serves, so the edge and health checks already work."""
    return [
        getattr(grpc_module, f"{service.name}Servicer")()
        for service in pb2_module.DESCRIPTOR.services_by_name.values()
    ]
