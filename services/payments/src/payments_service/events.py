"""The subjects the payments service publishes (orders moves orders on them)."""

from __future__ import annotations

from ecommerce.events.v1 import events_pb2

PAYMENT_SUCCEEDED = "ecom.payments.payment_succeeded"
PAYMENT_FAILED = "ecom.payments.payment_failed"
REFUND_SUCCEEDED = "ecom.payments.refund_succeeded"

PUBLISHED = {
    events_pb2.PaymentSucceeded: PAYMENT_SUCCEEDED,
    events_pb2.PaymentFailed: PAYMENT_FAILED,
    events_pb2.RefundSucceeded: REFUND_SUCCEEDED,
}
