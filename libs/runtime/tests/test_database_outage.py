"""PostgreSQL going away, hanging or saturated: a real service answers UNAVAILABLE within a
bounded time, never INTERNAL and never a hang, and recovers by itself when PostgreSQL is back.

The auth service runs as its own process with its database behind a TCP proxy this test
controls (forward, refuse, or swallow connections); a lock held by the test saturates it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import grpc
import psycopg
import pytest
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc

from conftest import TcpProxy, service_process, unique_email

# Connect timeout 1 s, pool wait 1 s, statement 2 s: bounds the test can wait out quickly.
TIMEOUTS = {
    "DATABASE_CONNECT_TIMEOUT_SECONDS": "1",
    "DATABASE_POOL_TIMEOUT_SECONDS": "1",
    "DATABASE_STATEMENT_TIMEOUT_SECONDS": "2",
    "DATABASE_POOL_SIZE": "1",  # one connection plus one overflow: easy to exhaust
}
# What "bounded" means here: well under the edge's 15 s route timeout.
BOUND_SECONDS = 8


@pytest.fixture(scope="module")
async def proxied_auth(stack) -> AsyncIterator[tuple[TcpProxy, auth_pb2_grpc.AuthServiceStub]]:
    proxy = TcpProxy(urlparse(stack.database_url.replace("+psycopg", "")).port or 5432)
    await proxy.start()
    database_url = stack.database_url.replace(f":{proxy.upstream_port}/", f":{proxy.port}/")
    try:
        async with service_process(
            stack, "auth", DATABASE_URL=database_url, SHUTDOWN_DRAIN_SECONDS="0", **TIMEOUTS
        ) as (_, address):
            async with grpc.aio.insecure_channel(address) as channel:
                yield proxy, auth_pb2_grpc.AuthServiceStub(channel)
    finally:
        await proxy.close()


async def login_code(auth: auth_pb2_grpc.AuthServiceStub) -> grpc.StatusCode:
    """A login for an unknown email: one PostgreSQL lookup, then UNAUTHENTICATED."""
    request = auth_pb2.LoginRequest(email=unique_email("outage"), password="whatever pw")
    async with asyncio.timeout(BOUND_SECONDS):  # no hang: the service must answer in time
        try:
            await auth.Login(request, timeout=30)
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


async def until_recovered(auth: auth_pb2_grpc.AuthServiceStub) -> None:
    async with asyncio.timeout(20):
        while True:  # polling the service: the recovery has no event to wait on
            if await login_code(auth) == grpc.StatusCode.UNAUTHENTICATED:
                return
            await asyncio.sleep(0.2)


async def test_postgres_refusing_connections_is_unavailable_then_recovers(proxied_auth) -> None:
    proxy, auth = proxied_auth
    assert await login_code(auth) == grpc.StatusCode.UNAUTHENTICATED  # healthy
    proxy.mode = "refuse"
    proxy.cut()
    assert await login_code(auth) == grpc.StatusCode.UNAVAILABLE
    assert await login_code(auth) == grpc.StatusCode.UNAVAILABLE
    proxy.mode = "forward"
    await until_recovered(auth)  # nobody restarted the service


async def test_postgres_not_answering_is_unavailable_within_the_connect_timeout(
    proxied_auth,
) -> None:
    proxy, auth = proxied_auth
    proxy.mode = "blackhole"
    proxy.cut()
    assert await login_code(auth) == grpc.StatusCode.UNAVAILABLE
    proxy.mode = "forward"
    proxy.cut()
    await until_recovered(auth)


async def test_an_exhausted_pool_and_stuck_statements_are_unavailable(stack, proxied_auth) -> None:
    _, auth = proxied_auth
    # Every lookup of a user now waits on this lock: the two pooled connections get stuck
    # until the statement timeout, and the other requests wait for a connection until the pool
    # timeout. Each must end as UNAVAILABLE in bounded time.
    with psycopg.connect(stack.postgres_dsn) as conn:
        conn.execute("LOCK TABLE auth.users IN ACCESS EXCLUSIVE MODE")
        codes = await asyncio.gather(*(login_code(auth) for _ in range(5)))
        conn.rollback()
    assert codes == [grpc.StatusCode.UNAVAILABLE] * 5
    await until_recovered(auth)
