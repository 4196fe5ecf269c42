"""The subjects orders publishes and consumes."""

from __future__ import annotations

from ecommerce.events.v1 import events_pb2

ORDER_CREATED = "ecom.orders.order_created"
ORDER_PAID = "ecom.orders.order_paid"
ORDER_CANCELLED = "ecom.orders.order_cancelled"
DAILY_SALES_REPORT = "ecom.orders.daily_sales_report"

PUBLISHED = {
    events_pb2.OrderCreated: ORDER_CREATED,
    events_pb2.OrderPaid: ORDER_PAID,
    events_pb2.OrderCancelled: ORDER_CANCELLED,
    events_pb2.DailySalesReport: DAILY_SALES_REPORT,
}

# Consumed: payment outcomes move orders; registrations feed the analytics.
PAYMENT_SUCCEEDED = "ecom.payments.payment_succeeded"
PAYMENT_FAILED = "ecom.payments.payment_failed"
REFUND_SUCCEEDED = "ecom.payments.refund_succeeded"
USER_REGISTERED = "ecom.auth.user_registered"
