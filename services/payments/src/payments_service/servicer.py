"""gRPC servicers of payments: proto messages in and out; the rules live in payments.py."""

from __future__ import annotations

import uuid
from typing import Any, TypeAlias

import grpc
from ecom_runtime.auth import call_header, require_admin
from ecommerce.payments.v1 import payments_pb2, payments_pb2_grpc

from payments_service.payments import ADMIN_REFUND, Payments, RefundView
from payments_service.stripe_webhook import StripeWebhook

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def payment_status(status: str) -> payments_pb2.PaymentStatus.ValueType:
    """A stored status ("SUCCEEDED") as the proto enum (PAYMENT_STATUS_SUCCEEDED)."""
    return payments_pb2.PaymentStatus.Value(f"PAYMENT_STATUS_{status}")


def refund_message(refund: RefundView) -> payments_pb2.Refund:
    message = payments_pb2.Refund(
        id=refund.id,
        order_id=str(refund.order_id),
        payment_intent_id=refund.payment_intent_id,
        amount_cents=refund.amount_cents,
        currency=refund.currency,
        status=payments_pb2.RefundStatus.Value(f"REFUND_STATUS_{refund.status}"),
        total_refunded_cents=refund.total_refunded_cents,
    )
    message.created_at.FromDatetime(refund.created_at)
    return message


class PaymentServicer(payments_pb2_grpc.PaymentServiceServicer):
    """The public service: Stripe's webhook (no user token, the signature authenticates it:
    the interceptor asks for credentials only when an RPC does) and the admins' refunds."""

    def __init__(self, payments: Payments, webhook: StripeWebhook) -> None:
        self._payments = payments
        self._webhook = webhook

    async def HandleStripeWebhook(
        self, request: payments_pb2.HandleStripeWebhookRequest, context: Context
    ) -> Any:
        event = self._webhook.verify(request.body.data, call_header("stripe-signature"))
        await self._payments.apply_event(event)
        return payments_pb2.HandleStripeWebhookResponse()

    async def RefundOrder(self, request: payments_pb2.RefundOrderRequest, context: Context) -> Any:
        admin = await require_admin()
        amount = request.amount_cents if request.HasField("amount_cents") else None
        # Without an Idempotency-Key every call is a refund of its own.
        key = call_header("idempotency-key") or str(uuid.uuid4())
        refund = await self._payments.refund(
            request.id, amount, key, f"refunded by admin {admin.subject}", ADMIN_REFUND
        )
        return refund_message(refund)


class PaymentInternalServicer(payments_pb2_grpc.PaymentInternalServiceServicer):
    """Called by orders' checkout saga, with the service credential (the interceptor checks)."""

    def __init__(self, payments: Payments) -> None:
        self._payments = payments

    async def CreatePaymentIntent(
        self, request: payments_pb2.CreatePaymentIntentRequest, context: Context
    ) -> Any:
        created = await self._payments.create_intent(
            request.order_id,
            request.amount_cents,
            request.currency,
            request.idempotency_key,
            request.user_id,
        )
        return payments_pb2.CreatePaymentIntentResponse(
            payment_intent_id=created.payment_intent_id, client_secret=created.client_secret
        )

    async def ConfirmPayment(
        self, request: payments_pb2.ConfirmPaymentRequest, context: Context
    ) -> Any:
        outcome = await self._payments.confirm(request.payment_intent_id, request.payment_method_id)
        return payments_pb2.ConfirmPaymentResponse(
            status=payment_status(outcome.status),
            failure_code=outcome.failure_code,
            failure_message=outcome.failure_message,
        )

    async def CancelPaymentIntent(
        self, request: payments_pb2.CancelPaymentIntentRequest, context: Context
    ) -> Any:
        status = await self._payments.cancel(request.payment_intent_id)
        return payments_pb2.CancelPaymentIntentResponse(status=payment_status(status))

    async def RefundPayment(
        self, request: payments_pb2.RefundPaymentRequest, context: Context
    ) -> Any:
        amount = request.amount_cents if request.HasField("amount_cents") else None
        refund = await self._payments.refund(
            request.order_id, amount, request.idempotency_key, request.reason
        )
        return refund_message(refund)
