"""gRPC servicer of orders: proto messages in and out; the rules live in workflows/checkout.py
(checkout) and lifecycle.py (everything after it)."""

from __future__ import annotations

import uuid
from typing import Any, TypeAlias

import grpc
from ecom_runtime.auth import require_admin, require_user
from ecom_runtime.db import Database
from ecom_runtime.errors import InvalidArgument, NotFound, PermissionDenied
from ecom_runtime.paging import page_size
from ecom_runtime.validation import parse_uuid
from ecommerce.common.v1 import common_pb2
from ecommerce.orders.v1 import orders_pb2, orders_pb2_grpc

from orders_service import idempotency, records
from orders_service.lifecycle import Lifecycle, may_see
from orders_service.store import STATUSES
from orders_service.workflows.checkout import CheckoutSaga, shipping_address

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
_PREFIX = "ORDER_STATUS_"


def status_name(status: orders_pb2.OrderStatus.ValueType) -> str:
    return orders_pb2.OrderStatus.Name(status).removeprefix(_PREFIX)


def order_message(record: records.OrderRecord) -> orders_pb2.Order:
    row = record.row
    message = orders_pb2.Order(
        id=str(row.id),
        number=row.number,
        user_id=str(row.user_id),
        status=orders_pb2.OrderStatus.Value(_PREFIX + row.status),
        items=[
            orders_pb2.OrderItem(
                product_id=str(i.product_id),
                name=i.name,
                unit_price_cents=i.unit_price_cents,
                quantity=i.quantity,
                line_total_cents=i.line_total_cents,
            )
            for i in record.items
        ],
        subtotal_cents=row.subtotal_cents,
        tax_cents=row.tax_cents,
        shipping_cents=row.shipping_cents,
        total_cents=row.total_cents,
        refunded_cents=row.refunded_cents,
        currency=row.currency,
        shipping_address=common_pb2.Address(**row.shipping_address),
    )
    message.created_at.FromDatetime(row.created_at)
    message.updated_at.FromDatetime(row.updated_at)
    for change in record.history:
        entry = message.history.add(
            status=orders_pb2.OrderStatus.Value(_PREFIX + change.status), note=change.note
        )
        entry.at.FromDatetime(change.at)
    return message


async def customer() -> uuid.UUID:
    """The signed-in user (orders are a user's; an API key has none)."""
    principal = await require_user()
    if principal.user_id is None:
        raise PermissionDenied("an API key has no orders; sign in as a user")
    return uuid.UUID(principal.user_id)


def _status_filter(value: int) -> str | None:
    if value == orders_pb2.ORDER_STATUS_UNSPECIFIED:
        return None
    if value not in orders_pb2.OrderStatus.values():
        raise InvalidArgument({"status": f"must be one of {', '.join(STATUSES)}"})
    return status_name(value)  # type: ignore[arg-type]


class OrderServicer(orders_pb2_grpc.OrderServiceServicer):
    def __init__(self, db: Database, checkout: CheckoutSaga, lifecycle: Lifecycle) -> None:
        self._db = db
        self._checkout = checkout
        self._lifecycle = lifecycle

    async def Checkout(self, request: orders_pb2.CheckoutRequest, context: Context) -> Any:
        user_id = await customer()
        key = idempotency.request_key()
        if not request.HasField("shipping_address"):
            raise InvalidArgument({"shipping_address": "is required"})
        address = shipping_address(request.shipping_address)
        result = await self._checkout.checkout(user_id, address, key)
        return orders_pb2.CheckoutResponse(
            order=order_message(result.order),
            payment=orders_pb2.PaymentIntent(
                payment_intent_id=result.payment_intent_id, client_secret=result.client_secret
            ),
        )

    async def PayOrder(self, request: orders_pb2.PayOrderRequest, context: Context) -> Any:
        user_id = await customer()
        key = idempotency.request_key()
        order_id = parse_uuid("id", request.id)
        record = await self._lifecycle.pay(user_id, order_id, request.payment_method_id, key)
        return orders_pb2.PayOrderResponse(order=order_message(record))

    async def ListOrders(self, request: orders_pb2.ListOrdersRequest, context: Context) -> Any:
        user_id = await customer()
        async with self._db.connect() as conn:
            found, page = await records.page(
                conn, page_size(request.page_size), request.page_token, user_id=user_id
            )
        return orders_pb2.ListOrdersResponse(
            orders=[order_message(r) for r in found], next_page_token=page.next_page_token
        )

    async def GetOrder(self, request: orders_pb2.GetOrderRequest, context: Context) -> Any:
        principal = await require_user()
        order_id = parse_uuid("id", request.id)
        async with self._db.connect() as conn:
            record = await records.get(conn, order_id)
        if record is None or not may_see(principal, record.row):
            raise NotFound("no such order")  # another user's order is not theirs to know of
        return order_message(record)

    async def CancelOrder(self, request: orders_pb2.CancelOrderRequest, context: Context) -> Any:
        principal = await require_user()
        order_id = parse_uuid("id", request.id)
        return order_message(await self._lifecycle.cancel(principal, order_id, request.reason))

    async def ListAllOrders(
        self, request: orders_pb2.ListAllOrdersRequest, context: Context
    ) -> Any:
        await require_admin()
        status = _status_filter(request.status)
        user_id = parse_uuid("user_id", request.user_id) if request.user_id else None
        async with self._db.connect() as conn:
            found, page = await records.page(
                conn,
                page_size(request.page_size),
                request.page_token,
                user_id=user_id,
                status=status,
                count=True,
            )
        return orders_pb2.ListAllOrdersResponse(
            orders=[order_message(r) for r in found],
            next_page_token=page.next_page_token,
            total_size=page.total_size,
        )

    async def UpdateOrderStatus(
        self, request: orders_pb2.UpdateOrderStatusRequest, context: Context
    ) -> Any:
        await require_admin()
        order_id = parse_uuid("id", request.id)
        if request.status == orders_pb2.ORDER_STATUS_UNSPECIFIED:
            raise InvalidArgument({"status": "is required"})
        status = _status_filter(request.status)
        assert status is not None
        return order_message(await self._lifecycle.set_status(order_id, status))
