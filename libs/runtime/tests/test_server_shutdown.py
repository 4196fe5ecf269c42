"""Graceful shutdown of a real service process: SIGTERM lets in-flight RPCs finish."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import grpc
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import unique_email


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_sigterm_drains_in_flight_rpcs_then_exits_cleanly(stack) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {
        **os.environ,
        **stack.service_env(),
        "GRPC_PORT": str(port),
        "AUTH_BCRYPT_COST": "14",  # a register hashes for over a second: SIGTERM lands mid-RPC
    }
    process = subprocess.Popen(  # noqa: ASYNC220 (a server beside the test)
        [sys.executable, "-m", "auth_service", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 30
            while True:
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.aio.AioRpcError:
                    pass
                assert time.monotonic() < deadline, "auth never became healthy"
                await asyncio.sleep(0.1)

            auth = auth_pb2_grpc.AuthServiceStub(channel)
            in_flight = asyncio.ensure_future(
                auth.Register(
                    auth_pb2.RegisterRequest(
                        email=unique_email("drain"), password="long enough pw", name="D"
                    ),
                    timeout=30,
                )
            )
            await asyncio.sleep(0.5)  # the RPC reached the server long ago; it is still hashing
            process.send_signal(signal.SIGTERM)
            session = await in_flight
            assert session.access_token
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
