"""The subjects the notifications service consumes and publishes."""

from __future__ import annotations

from ecommerce.events.v1 import events_pb2
from google.protobuf.message import Message

USER_REGISTERED = "ecom.auth.user_registered"
PASSWORD_RESET_REQUESTED = "ecom.auth.password_reset_requested"  # noqa: S105 (a subject)
STOCK_LOW = "ecom.catalog.stock_low"
ORDER_CREATED = "ecom.orders.order_created"  # only to learn who placed the order
ORDER_PAID = "ecom.orders.order_paid"
ORDER_CANCELLED = "ecom.orders.order_cancelled"
DAILY_SALES_REPORT = "ecom.orders.daily_sales_report"
PAYMENT_FAILED = "ecom.payments.payment_failed"
REFUND_SUCCEEDED = "ecom.payments.refund_succeeded"

DEAD_LETTERED = "ecom.notifications.dead_lettered"

PUBLISHED: dict[type[Message], str] = {events_pb2.NotificationDeadLettered: DEAD_LETTERED}
