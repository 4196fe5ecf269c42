"""Orders when time runs out or processes die: unpaid orders expire and give their stock back,
a payment that comes too late is refunded, and a checkout interrupted by a crash is finished
by the client's retry or undone on restart, never left half made.

Each test runs orders processes of its own beside the stack (short reservations, quick sweeps),
some talking to payments through a TCP proxy the test can cut or stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from ecommerce.common.v1 import common_pb2
from ecommerce.orders.v1 import orders_pb2, orders_pb2_grpc
from ecommerce.payments.v1 import payments_pb2, payments_pb2_grpc

from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    TcpProxy,
    eventually,
    internal_channel,
    service_process,
    tag,
    unique_email,
)

ADDRESS = common_pb2.Address(line1="1 Main St", city="Paris", postal_code="75001", country="FR")
QUICK = {
    "ORDERS_RESERVATION_SECONDS": "2",
    "ORDERS_EXPIRY_SWEEP_SECONDS": "0.2",
    "SHUTDOWN_DRAIN_SECONDS": "0",
}


@pytest.fixture(scope="module")
async def admin(api) -> dict[str, str]:
    """An admin's REST headers (the conftest's `admin` is gRPC metadata)."""
    response = await api.post(
        "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def new_product(api, admin, stock: int) -> str:
    response = await api.post(
        "/api/products",
        headers=admin,
        json={"sku": f"REC-{tag()}", "name": "Kettle", "price_cents": 2000, "stock": stock},
    )
    return response.json()["id"]


async def shopper_with_cart(api, product_id: str, quantity: int = 1) -> tuple[tuple, dict]:
    """A new customer with `quantity` of the product in the cart: gRPC metadata, headers."""
    response = await api.post(
        "/api/auth/register",
        json={"email": unique_email("recovery"), "password": "long enough pw", "name": "R"},
    )
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    added = await api.post(
        "/api/cart/items", headers=headers, json={"product_id": product_id, "quantity": quantity}
    )
    assert added.status_code == 200, added.text
    return (("authorization", headers["Authorization"]),), headers


async def stock(api, product_id: str) -> int:
    return (await api.get(f"/api/products/{product_id}")).json()["stock"]


@contextlib.asynccontextmanager
async def orders_process(
    stack, **env: str
) -> AsyncIterator[tuple[object, orders_pb2_grpc.OrderServiceStub]]:
    async with service_process(stack, "orders", **{**QUICK, **env}) as (process, address):
        async with grpc.aio.insecure_channel(address) as channel:
            yield process, orders_pb2_grpc.OrderServiceStub(channel)


@contextlib.asynccontextmanager
async def payments_proxy(stack) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(int(stack.grpc_addrs["payments"].rsplit(":", 1)[1]))
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


async def test_an_unpaid_order_expires_and_its_stock_returns(stack, api, admin) -> None:
    product_id = await new_product(api, admin, stock=3)
    metadata, headers = await shopper_with_cart(api, product_id, 2)
    async with orders_process(stack) as (_, orders):
        placed = await orders.Checkout(
            orders_pb2.CheckoutRequest(shipping_address=ADDRESS), metadata=metadata
        )
        assert await stock(api, product_id) == 1

        async def cancelled():
            order = await orders.GetOrder(
                orders_pb2.GetOrderRequest(id=placed.order.id), metadata=metadata
            )
            return order.status == orders_pb2.ORDER_STATUS_CANCELLED and order

        order = await eventually(cancelled)
    assert order.history[-1].note == "reservation expired unpaid"
    assert await stock(api, product_id) == 3
    too_late = await api.post(
        f"/api/orders/{placed.order.id}/pay",
        headers=headers,
        json={"payment_method_id": "pm_card_visa"},
    )
    assert too_late.status_code == 400


async def test_a_payment_after_expiry_is_refunded_and_shown_to_admins(stack, api, admin) -> None:
    """The order expires while payments cannot be reached to stop its PaymentIntent; the
    customer's payment then goes through anyway (as through Stripe.js): the money goes back."""
    product_id = await new_product(api, admin, stock=2)
    metadata, _ = await shopper_with_cart(api, product_id)
    async with payments_proxy(stack) as proxy:
        via_proxy = {"PAYMENTS_GRPC_ADDR": f"127.0.0.1:{proxy.port}"}
        async with orders_process(stack, **via_proxy) as (_, orders):
            placed = await orders.Checkout(
                orders_pb2.CheckoutRequest(shipping_address=ADDRESS), metadata=metadata
            )
            proxy.mode = "refuse"
            proxy.cut()  # the open HTTP/2 connection too

            async def expired():
                reply = await orders.GetOrder(
                    orders_pb2.GetOrderRequest(id=placed.order.id), metadata=metadata
                )
                return reply.status == orders_pb2.ORDER_STATUS_CANCELLED

            await eventually(expired)
            proxy.mode = "forward"
    assert await stock(api, product_id) == 2

    async with internal_channel(stack, "payments") as channel:
        confirmed = await payments_pb2_grpc.PaymentInternalServiceStub(channel).ConfirmPayment(
            payments_pb2.ConfirmPaymentRequest(
                payment_intent_id=placed.payment.payment_intent_id,
                payment_method_id="pm_card_visa",
            )
        )
    assert confirmed.status == payments_pb2.PAYMENT_STATUS_SUCCEEDED

    async def refunded():
        order = (await api.get(f"/api/orders/{placed.order.id}", headers=admin)).json()
        return order["refunded_cents"] == order["total_cents"] and order

    order = await eventually(refunded)
    assert order["status"] == "ORDER_STATUS_CANCELLED"
    assert order["history"][-1]["note"].startswith("payment arrived after the order was cancelled")


async def test_a_checkout_killed_mid_way_is_undone_on_restart(stack, api, admin, sql) -> None:
    product_id = await new_product(api, admin, stock=4)
    shoppers = [await shopper_with_cart(api, product_id) for _ in range(4)]
    async with payments_proxy(stack) as proxy:
        proxy.mode = "blackhole"  # CreatePaymentIntent never answers: the saga stops there
        env = {"PAYMENTS_GRPC_ADDR": f"127.0.0.1:{proxy.port}", "ORDERS_RESERVATION_SECONDS": "900"}
        async with orders_process(stack, **env) as (process, orders):
            calls = [
                asyncio.ensure_future(
                    orders.Checkout(
                        orders_pb2.CheckoutRequest(shipping_address=ADDRESS),
                        metadata=(*metadata, ("idempotency-key", f"crash-{tag()}")),
                    )
                )
                for metadata, _ in shoppers
            ]

            async def all_waiting_for_payments():
                rows = sql(
                    "SELECT count(*) FROM orders.checkouts c JOIN orders.orders o USING (id)"
                    " JOIN orders.order_items i ON i.order_id = o.id WHERE i.product_id = %s"
                    " AND c.step = 'ordered'",
                    uuid.UUID(product_id),
                )
                return rows == [(4,)]

            await eventually(all_waiting_for_payments)
            assert await stock(api, product_id) == 0
            process.send_signal(signal.SIGKILL)  # type: ignore[attr-defined]
            process.wait()  # type: ignore[attr-defined]
            for call in calls:
                with pytest.raises(grpc.aio.AioRpcError):
                    await call

    # A new process undoes what nobody waits for any more, before it serves.
    async with orders_process(stack, ORDERS_CHECKOUT_RECOVERY_SECONDS="0"):
        pass
    assert await stock(api, product_id) == 4
    left = sql(
        "SELECT count(*) FROM orders.orders o JOIN orders.order_items i ON i.order_id = o.id"
        " WHERE i.product_id = %s",
        uuid.UUID(product_id),
    )
    assert left == [(0,)]
    assert sql("SELECT count(*) FROM orders.checkouts") == [(0,)]
    # The carts are untouched: the shoppers can simply check out again.
    _, headers = shoppers[0]
    assert (await api.get("/api/cart", headers=headers)).json()["item_count"] == 1


async def test_a_retry_after_a_crash_finishes_the_same_checkout(stack, api, admin, sql) -> None:
    product_id = await new_product(api, admin, stock=5)
    metadata, headers = await shopper_with_cart(api, product_id, 2)
    keyed = (*metadata, ("idempotency-key", f"retry-{tag()}"))
    async with payments_proxy(stack) as proxy:
        proxy.mode = "blackhole"
        env = {"PAYMENTS_GRPC_ADDR": f"127.0.0.1:{proxy.port}", "ORDERS_RESERVATION_SECONDS": "900"}
        async with orders_process(stack, **env) as (process, orders):
            call = asyncio.ensure_future(
                orders.Checkout(
                    orders_pb2.CheckoutRequest(shipping_address=ADDRESS), metadata=keyed
                )
            )

            async def reserved():
                return await stock(api, product_id) == 3

            await eventually(reserved)
            process.send_signal(signal.SIGKILL)  # type: ignore[attr-defined]
            process.wait()  # type: ignore[attr-defined]
            with pytest.raises(grpc.aio.AioRpcError):
                await call

    # The client retries with its key against a healthy process (recovery not due yet).
    async with orders_process(stack, ORDERS_CHECKOUT_RECOVERY_SECONDS="600") as (_, orders):
        placed = await orders.Checkout(
            orders_pb2.CheckoutRequest(shipping_address=ADDRESS), metadata=keyed
        )
        again = await orders.Checkout(
            orders_pb2.CheckoutRequest(shipping_address=ADDRESS), metadata=keyed
        )
    assert placed.order.id == again.order.id
    assert placed.order.status == orders_pb2.ORDER_STATUS_PENDING_PAYMENT
    assert placed.payment.payment_intent_id.startswith("pi_")
    assert await stock(api, product_id) == 3  # reserved once, not twice
    listed = (await api.get("/api/orders", headers=headers)).json()["orders"]
    assert [o["id"] for o in listed] == [placed.order.id]
