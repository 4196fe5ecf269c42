"""Orders test fixtures: stubs on the stack's orders service, signed-in callers, the REST edge."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
from ecommerce.orders.v1 import orders_pb2_grpc

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, unique_email

Metadata = tuple[tuple[str, str], ...]


@pytest.fixture(scope="session")
async def orders_channel(stack) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(stack.grpc_addrs["orders"]) as channel:
        yield channel


@pytest.fixture
def analytics(orders_channel) -> orders_pb2_grpc.AnalyticsServiceStub:
    return orders_pb2_grpc.AnalyticsServiceStub(orders_channel)


@pytest.fixture(scope="session")
async def admin(auth_channel) -> Metadata:
    """Metadata of a signed-in admin."""
    auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
    session = await auth.Login(auth_pb2.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))
    return (("authorization", f"Bearer {session.access_token}"),)


@pytest.fixture(scope="session")
async def customer(auth_channel) -> Metadata:
    """Metadata of a signed-in customer."""
    auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
    session = await auth.Register(
        auth_pb2.RegisterRequest(email=unique_email("shopper"), password="long enough pw", name="S")
    )
    return (("authorization", f"Bearer {session.access_token}"),)


@pytest.fixture(scope="session")
async def api(stack) -> AsyncIterator[httpx.AsyncClient]:
    """A REST client on the Envoy edge."""
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=10, trust_env=False) as client:
        yield client
