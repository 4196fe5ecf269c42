"""A service's health follows its life: NOT_SERVING while its start-up work runs, SERVING after,
NOT_SERVING at once on SIGTERM while it still answers RPCs for the drain period (so the edge's
health checks stop routing to it before it stops accepting), then a clean exit."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import grpc
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import free_port, wait_serving

# A service made with the runtime whose start-up work waits until a file appears.
PROBE = textwrap.dedent("""
    import asyncio, pathlib, sys

    from ecom_runtime.config import ServiceSettings
    from ecom_runtime.server import App, serve
    from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc

    gate = pathlib.Path(sys.argv[1])


    class Jwks(auth_pb2_grpc.AuthServiceServicer):
        async def GetJwks(self, request, context):
            return auth_pb2.GetJwksResponse()


    async def warm_up() -> None:
        while not gate.exists():
            await asyncio.sleep(0.05)


    app = App(name="probe", settings=ServiceSettings(), servicers=[Jwks()], startup=[warm_up])
    asyncio.run(serve(app))
""")
Status = health_pb2.HealthCheckResponse


async def health(address: str) -> int | None:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.aio.AioRpcError:
            return None  # not listening (yet, or any more)
        return reply.status


async def until_health(address: str, wanted: int) -> None:
    async with asyncio.timeout(20):
        while True:  # polling the server: its state has no event we can wait on
            if await health(address) == wanted:
                return
            await asyncio.sleep(0.05)


async def test_health_follows_start_up_and_shutdown(stack, tmp_path: Path) -> None:
    script, gate = tmp_path / "probe.py", tmp_path / "warmed-up"
    script.write_text(PROBE)
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {
        **os.environ,
        **stack.service_env(),
        "GRPC_PORT": str(port),
        "SHUTDOWN_DRAIN_SECONDS": "3",
    }
    process = subprocess.Popen(  # noqa: ASYNC220 (a server beside the test)
        [sys.executable, str(script), str(gate)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Bound and answering, but its start-up work is not done: the edge must not route here.
        await until_health(address, Status.NOT_SERVING)
        await asyncio.sleep(0.3)  # ... and it stays so while that work runs
        assert await health(address) == Status.NOT_SERVING
        gate.touch()
        await wait_serving(address)

        process.send_signal(signal.SIGTERM)
        await until_health(address, Status.NOT_SERVING)
        # Still accepting during the drain: requests routed before the edge noticed succeed.
        async with grpc.aio.insecure_channel(address) as channel:
            reply = await auth_pb2_grpc.AuthServiceStub(channel).GetJwks(
                auth_pb2.GetJwksRequest(), timeout=2
            )
        assert list(reply.keys) == []
        assert await asyncio.to_thread(process.wait, 30) == 0
        assert await health(address) is None  # and then it is gone
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
