"""A real Redis, the rate-limit service (small budgets) and an Envoy in front of a stub backend.

Budgets: auth 100 per 15 minutes (production's), default 20 per minute (small, so the default
budget trips quickly). Envoy listens on 127.0.0.1 only; a client bound to 127.0.0.2 is another
IP as Envoy sees it (the peer address; no client header is trusted).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import pytest
from ecom_gateway.envoy import render_config
from ecom_stack.stack import _tool
from ecommerce.auth.v1 import auth_pb2_grpc
from ecommerce.payments.v1 import payments_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from conftest import free_port, wait_for

ENVOY = Path(sys.executable).with_name("envoy")
AUTH_BUDGET = 100
DEFAULT_BUDGET = 20
T = TypeVar("T")
# What a server that is still starting answers: refused connections, failed calls.
TRANSIENT = (OSError, httpx.TransportError, grpc.RpcError)


class Backend:
    """Health SERVING; AuthService and PaymentsService answer UNIMPLEMENTED (501 over REST)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self._run(self._start())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _start(self) -> grpc.aio.Server:
        server = grpc.aio.server()
        health_servicer = health.aio.HealthServicer()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        auth = auth_pb2_grpc.AuthServiceServicer()
        auth_pb2_grpc.add_AuthServiceServicer_to_server(auth, server)  # type: ignore[abstract]
        payments = payments_pb2_grpc.PaymentServiceServicer()
        payments_pb2_grpc.add_PaymentServiceServicer_to_server(payments, server)  # type: ignore[abstract]
        server.add_insecure_port(f"127.0.0.1:{self.port}")
        await server.start()
        return server

    def close(self) -> None:
        self._run(self._server.stop(grace=None))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def spawn(argv: list[Any], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Edge:
    """Redis + rate-limit service + Envoy + backend, each stoppable by a test."""

    def __init__(self, tmp: Path, *, redis: bool = True) -> None:
        """`redis=False`: the service's Redis address is a closed port (the store is down)."""
        self.tmp = tmp
        self.redis_port, self.rls_port = free_port(), free_port()
        self.http_port, self.admin_port = free_port(), free_port()
        self.backend = Backend()
        self.redis: subprocess.Popen[bytes] | None = None
        if redis:
            self.redis = spawn(
                [_tool("redis-server"), "--bind", "127.0.0.1", "--port", str(self.redis_port),
                 "--save", "", "--appendonly", "no"],
                tmp / "redis.log",
            )  # fmt: skip
            wait_for(lambda: self._redis_answers(), "Redis", ignoring=TRANSIENT)
        self.rls_log = tmp / "ratelimit.log"
        env = {
            **os.environ,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "GRPC_PORT": str(self.rls_port),
            "RATELIMIT_AUTH_PER_WINDOW": str(AUTH_BUDGET),
            "RATELIMIT_AUTH_WINDOW_SECONDS": "900",
            "RATELIMIT_DEFAULT_PER_WINDOW": str(DEFAULT_BUDGET),
            "RATELIMIT_DEFAULT_WINDOW_SECONDS": "60",
            "PYTHONUNBUFFERED": "1",
        }
        self.rls = spawn([sys.executable, "-m", "ratelimit_service", "serve"], self.rls_log, env)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # public services of clusters we do not start
            config = render_config(
                self.http_port,
                self.admin_port,
                {svc: ("127.0.0.1", self.backend.port) for svc in ("auth", "payments")},
                ratelimit=("127.0.0.1", self.rls_port),
            )
        (tmp / "envoy.yaml").write_text(config)
        self.envoy = spawn(
            [ENVOY, "-c", tmp / "envoy.yaml", "--base-id", str(random.randint(1, 2**30)),
             "--log-level", "warn"],
            tmp / "envoy.log",
        )  # fmt: skip
        wait_for(
            lambda: "serving" in self.rls_log.read_text(),
            "the rate-limit service",
            ignoring=TRANSIENT,
        )
        wait_for(
            lambda: self.client().get("/healthz").status_code == 200,
            "Envoy to be healthy",
            ignoring=TRANSIENT,
        )

    def _redis_answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")

    def client(self, source: str = "127.0.0.1") -> httpx.Client:
        """A client whose connections come from `source` (another IP, as Envoy sees it)."""
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.http_port}", transport=transport, timeout=10
        )

    auth_budget = AUTH_BUDGET
    default_budget = DEFAULT_BUDGET
    wait_for = staticmethod(wait_for)

    def stop_rls(self) -> None:
        stop(self.rls)

    def stat(self, name: str) -> int:
        stats = httpx.get(f"http://127.0.0.1:{self.admin_port}/stats?filter={name}").text
        return sum(int(line.rsplit(":", 1)[1]) for line in stats.splitlines() if line.strip())

    def close(self) -> None:
        for process in (self.envoy, self.rls, self.redis):
            if process is not None:
                stop(process)
        self.backend.close()


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    running = Edge(tmp_path_factory.mktemp("ratelimit-edge"))
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def edge_without_redis(tmp_path: Path) -> Iterator[Edge]:
    """Its own stack: the rate-limit service's Redis is down from the start."""
    running = Edge(tmp_path, redis=False)
    try:
        yield running
    finally:
        running.close()
