"""Fixtures shared by every test folder. The `stack` fixture (ecom_stack.pytest_plugin) starts
PostgreSQL, Redis, NATS, the Stripe/S3/SMTP stand-ins, every service and Envoy, once per run,
on free ports; tests that do not ask for it need no server."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from ecom_stack.stack import LocalStack

pytest_plugins = ["ecom_stack.pytest_plugin"]

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-1"


@pytest.fixture(scope="session")
def stack_options() -> dict[str, Any]:
    # The first admin comes from these variables, as documented for production.
    return {
        "extra_env": {
            "AUTH_ADMIN_EMAIL": ADMIN_EMAIL,
            "AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            # Orders' expiry is tested with orders processes of its own whose sweeps the tests
            # time; the stack's own sweeps only once, at start-up, so it never races them.
            "ORDERS_EXPIRY_SWEEP_SECONDS": "86400",
        }
    }


@pytest.fixture(scope="session")
async def auth_channel(stack: LocalStack) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(stack.grpc_addrs["auth"]) as channel:
        yield channel


@pytest.fixture
def sql(stack: LocalStack):
    """Run one SQL query against the stack's database and return all rows."""

    def run(query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(stack.postgres_dsn, autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    return run


class _SendServiceCredential(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, credential: str) -> None:
        self._metadata = (("x-service-credential", credential),)

    async def intercept_unary_unary(self, continuation, call_details, request):
        metadata = tuple(call_details.metadata or ()) + self._metadata
        return await continuation(call_details._replace(metadata=metadata), request)


def internal_channel(stack: LocalStack, service: str) -> grpc.aio.Channel:
    """A channel to a service whose calls carry the stack's service credential, as another
    service's calls do (internal RPCs refuse callers without it)."""
    return grpc.aio.insecure_channel(
        stack.grpc_addrs[service],
        interceptors=[_SendServiceCredential(stack.service_credential)],
    )


@contextlib.asynccontextmanager
async def service_process(
    stack: LocalStack, service: str, **env: str
) -> AsyncIterator[tuple[subprocess.Popen, str]]:
    """One more process of `service` beside the stack's (its environment plus `env`), on a port
    of its own: yields the process and its address once it reports SERVING; stops it after."""
    port = free_port()
    process = subprocess.Popen(  # noqa: ASYNC220, S603 (a server of ours beside the test)
        [sys.executable, "-m", f"{service}_service", "serve"],
        env={**os.environ, **stack.service_env(), "GRPC_PORT": str(port), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    try:
        await wait_serving(address)
        yield process, address
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            await asyncio.to_thread(process.wait, 15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def stack_process_frozen(stack: LocalStack, service: str) -> AsyncIterator[None]:
    """The stack's own process of `service` frozen (SIGSTOP) for the block, so that a
    `service_process` of the test's, on the same durable consumers, gets every event.

    Waits until JetStream holds no pull request of the frozen process (they expire within a
    second), so none of the test's events goes to it; afterwards thaws it (SIGCONT) and waits
    until the edge sees it healthy again.
    """
    from ecom_runtime.events import STREAM, connect_jetstream

    pid = stack.pids()[service]
    os.kill(pid, signal.SIGSTOP)
    try:
        nc, js = await connect_jetstream(stack.nats_url)
        try:
            deadline = time.monotonic() + 10
            while any(
                info.num_waiting
                for info in await js.consumers_info(STREAM)
                if info.name.startswith(f"{service}-")
            ):
                assert time.monotonic() < deadline, f"{service}'s pull requests did not expire"
                await asyncio.sleep(0.1)
        finally:
            await nc.close()
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
        await wait_edge_healthy(stack)


async def wait_edge_healthy(stack: LocalStack, within: float = 15.0) -> None:
    import httpx

    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=stack.http_url, trust_env=False) as client:
        while (await client.get("/healthz")).status_code != 200:
            assert time.monotonic() < deadline, "the edge did not become healthy"
            await asyncio.sleep(0.1)


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


def wait_for(
    check: Callable[[], object],
    what: str,
    timeout: float = 15.0,
    ignoring: tuple[type[BaseException], ...] = (),
) -> Any:
    """Polls `check()` until it is truthy (errors of the `ignoring` types count as not yet) and
    returns what it returned; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if found := check():
                return found
        except ignoring:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


async def eventually(
    check: Callable[[], Any], within: float = 15.0, what: str = "condition"
) -> Any:
    """Polls `check()` (a function or a coroutine function) until its result is truthy and
    returns that result; fails the test, naming `what`, after `within` seconds. Events take a
    moment."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not reached within {within} s"
        await asyncio.sleep(0.05)


def free_port() -> int:
    from ecom_stack.ports import free_ports

    return free_ports(1)[0]


async def wait_serving(address: str, within: float = 30.0) -> None:
    """Polls a gRPC server's standard health check until it answers SERVING."""
    import asyncio
    import time

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + within
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{address} did not become healthy within {within} s")
            await asyncio.sleep(0.1)


def tag() -> str:
    """A short unique suffix for names, SKUs and slugs, so tests never collide."""
    return uuid.uuid4().hex[:8]


async def rpc_error(call) -> grpc.aio.AioRpcError:
    """Awaits a gRPC call that must fail, and returns its error."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """field -> description of the google.rpc.BadRequest detail of an error."""
    from google.rpc import error_details_pb2

    bad = error_details_pb2.BadRequest()
    for detail in details(error):
        if detail.Unpack(bad):
            return {v.field: v.description for v in bad.field_violations}
    return {}


def reason(error: grpc.aio.AioRpcError) -> str:
    """The google.rpc.ErrorInfo reason of an error ("" when it has none)."""
    from google.rpc import error_details_pb2

    info = error_details_pb2.ErrorInfo()
    return next((info.reason for d in details(error) if d.Unpack(info)), "")


def details(error: grpc.aio.AioRpcError) -> list:
    """The google.rpc details (packed Any messages) of an error."""
    from google.rpc import status_pb2

    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    return list(status_pb2.Status.FromString(raw).details) if raw else []


class TcpProxy:
    """A TCP proxy to a server of the stack (PostgreSQL, a service): `forward`, `refuse`
    (connections fail at once) or `blackhole` (connections are accepted and never answered)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.mode = "forward"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()

    def cut(self) -> None:
        """Drop every open connection, as a server restart or a network failure does."""
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.mode == "refuse":
            writer.close()
            return
        if self.mode == "blackhole":
            return  # never answered; `cut` closes it
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers.add(up_writer)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


def rest_reasons(response) -> list[str]:
    """The ErrorInfo reasons of a REST error body."""
    return [d["reason"] for d in response.json().get("details", []) if "reason" in d]


def rest_fields(response) -> set[str]:
    """The fields named by a REST error body's BadRequest violations."""
    return {
        v["field"]
        for d in response.json().get("details", [])
        for v in d.get("field_violations", [])
    }


# --- the SMTP sink's Maildir ----------------------------------------------------------------

_parsed: dict[Path, EmailMessage] = {}  # a delivered file never changes: parse it once


def mails(maildir: Path, to: str, subject: str = "") -> list[EmailMessage]:
    """Messages in the SMTP sink's Maildir to `to` whose subject contains `subject`."""
    found = []
    for folder in ("new", "cur"):
        for path in sorted((maildir / folder).iterdir()):
            if path not in _parsed:
                with path.open("rb") as file:
                    _parsed[path] = BytesParser(policy=policy.default).parse(file)
            message = _parsed[path]
            if message["To"] == to and subject in str(message["Subject"]):
                found.append(message)
    return found


async def wait_for_mail(
    maildir: Path, to: str, subject: str = "", within: float = 15.0
) -> EmailMessage:
    """Polls the Maildir until a message to `to` with `subject` in its subject arrives."""
    deadline = time.monotonic() + within
    while not (found := mails(maildir, to, subject)):
        if time.monotonic() > deadline:
            raise AssertionError(f"no email to {to} about {subject!r} within {within} s")
        await asyncio.sleep(0.05)
    return found[0]


def mail_text(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def mail_html(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()
