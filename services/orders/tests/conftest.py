"""Orders test fixtures: stubs on the stack's orders service, signed-in callers, the REST edge,
orders written straight into the orders schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta

import grpc
import httpx
import psycopg
import pytest
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
from ecommerce.orders.v1 import orders_pb2_grpc

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, unique_email

Metadata = tuple[tuple[str, str], ...]
Line = tuple[uuid.UUID, str, int, int]  # product id, name, quantity, unit price in cents
AddOrder = Callable[..., uuid.UUID]


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


@pytest.fixture
def add_order(stack) -> AddOrder:
    """Inserts an order created `at` (total: its lines' sum, or `total_cents` without lines)."""

    def add(
        at: datetime, status: str = "PAID", total_cents: int = 1000, lines: Sequence[Line] = ()
    ) -> uuid.UUID:
        order_id = uuid.uuid4()
        total = sum(quantity * price for _, _, quantity, price in lines) if lines else total_cents
        with psycopg.connect(stack.postgres_dsn) as conn:
            conn.execute(
                "insert into orders.orders (id, number, user_id, status, currency,"
                " subtotal_cents, tax_cents, shipping_cents, total_cents, shipping_address,"
                " expires_at, created_at, updated_at)"
                " values (%s, %s, %s, %s, 'USD', %s, 0, 0, %s, '{}', %s, %s, %s)",
                (
                    *(order_id, f"T-{order_id.hex[:12]}", uuid.uuid4(), status, total, total),
                    *(at + timedelta(minutes=15), at, at),
                ),
            )
            for position, (product_id, name, quantity, price) in enumerate(lines, 1):
                conn.execute(
                    "insert into orders.order_items (order_id, position, product_id, name,"
                    " unit_price_cents, quantity, line_total_cents)"
                    " values (%s, %s, %s, %s, %s, %s, %s)",
                    (order_id, position, product_id, name, price, quantity, quantity * price),
                )
        return order_id

    return add
