"""Graceful shutdown of a real service process: SIGTERM lets in-flight RPCs finish."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc

from conftest import free_port, unique_email, wait_serving


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of a process, in clock ticks (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


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
        await wait_serving(address)
        async with grpc.aio.insecure_channel(address) as channel:
            auth = auth_pb2_grpc.AuthServiceStub(channel)
            in_flight = asyncio.ensure_future(
                auth.Register(
                    auth_pb2.RegisterRequest(
                        email=unique_email("drain"), password="long enough pw", name="D"
                    ),
                    timeout=30,
                )
            )
            # SIGTERM only once the server is visibly working on the RPC: an idle server burns
            # almost no CPU, a bcrypt hash of cost 14 over a second of it.
            idle = cpu_ticks(process.pid)
            deadline = time.monotonic() + 10
            while cpu_ticks(process.pid) < idle + 30:
                assert time.monotonic() < deadline, "the RPC never started hashing"
                await asyncio.sleep(0.02)
            assert not in_flight.done()
            process.send_signal(signal.SIGTERM)
            session = await in_flight
            assert session.access_token
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
