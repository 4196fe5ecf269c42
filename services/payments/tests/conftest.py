"""Payments test fixtures: the internal service as orders' checkout calls it, Stripe
(localstripe) as anyone holding the account's key sees it, and the payment events as orders
receives them."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
import pytest
import stripe
from ecom_stack.stack import STRIPE_API_KEY
from ecommerce.events.v1 import events_pb2
from ecommerce.payments.v1 import payments_pb2 as pb
from ecommerce.payments.v1 import payments_pb2_grpc
from google.protobuf.message import Message
from nats.js.api import DeliverPolicy

from conftest import internal_channel

PAYMENT_SUCCEEDED = "ecom.payments.payment_succeeded"
PAYMENT_FAILED = "ecom.payments.payment_failed"
REFUND_SUCCEEDED = "ecom.payments.refund_succeeded"
EVENT_TYPES: dict[str, type[Message]] = {
    PAYMENT_SUCCEEDED: events_pb2.PaymentSucceeded,
    PAYMENT_FAILED: events_pb2.PaymentFailed,
    REFUND_SUCCEEDED: events_pb2.RefundSucceeded,
}


@pytest.fixture(scope="session")
async def payments(stack) -> AsyncIterator[payments_pb2_grpc.PaymentInternalServiceStub]:
    """PaymentInternalService with the service credential, as orders calls it."""
    async with internal_channel(stack, "payments") as channel:
        yield payments_pb2_grpc.PaymentInternalServiceStub(channel)


class Checkout:
    """What orders' checkout asks payments, in the fewest words a test needs."""

    def __init__(self, payments: payments_pb2_grpc.PaymentInternalServiceStub) -> None:
        self.payments = payments

    async def create(
        self, amount_cents: int = 2500, order_id: str = "", currency: str = "USD"
    ) -> tuple[str, pb.CreatePaymentIntentResponse]:
        """An order's intent, with the key checkout derives from the order: (order id, answer)."""
        order_id = order_id or str(uuid.uuid4())
        created = await self.payments.CreatePaymentIntent(
            pb.CreatePaymentIntentRequest(
                order_id=order_id,
                amount_cents=amount_cents,
                currency=currency,
                idempotency_key=f"checkout:{order_id}",
                user_id=str(uuid.uuid4()),
            )
        )
        return order_id, created

    async def confirm(self, intent_id: str, method: str) -> pb.ConfirmPaymentResponse:
        return await self.payments.ConfirmPayment(
            pb.ConfirmPaymentRequest(payment_intent_id=intent_id, payment_method_id=method)
        )

    async def paid(self, amount_cents: int = 2500) -> tuple[str, str]:
        """An order paid with a card that works: (order id, payment intent id)."""
        order_id, created = await self.create(amount_cents)
        confirmed = await self.confirm(created.payment_intent_id, "pm_card_visa")
        assert confirmed.status == pb.PAYMENT_STATUS_SUCCEEDED
        return order_id, created.payment_intent_id


@pytest.fixture
def checkout(payments) -> Checkout:
    return Checkout(payments)


@pytest.fixture(scope="session")
async def stripe_api(stack) -> AsyncIterator[stripe.StripeClient]:
    http = stripe.HTTPXClient(timeout=5)
    yield stripe.StripeClient(
        STRIPE_API_KEY, base_addresses={"api": stack.stripe_url}, http_client=http
    )
    await http.close_async()


@pytest.fixture(scope="session")
def stripe_intents(stripe_api) -> Callable[[str], Awaitable[list[stripe.PaymentIntent]]]:
    """Every PaymentIntent Stripe holds for an order (by its metadata order_id)."""

    async def of_order(order_id: str) -> list[stripe.PaymentIntent]:
        page = await stripe_api.v1.payment_intents.list_async({"limit": 100})
        return [
            intent
            async for intent in page.auto_paging_iter()
            if intent.metadata.to_dict().get("order_id") == order_id
        ]

    return of_order


@dataclass
class Event:
    subject: str
    message: Any


class PaymentEvents:
    """Payment events published since the fixture started, in stream order."""

    def __init__(self, subscription: Any) -> None:
        self._subscription = subscription

    async def until(self, order_id: str, subject: str, within: float = 15.0) -> list[Event]:
        """Events received up to and including the first `subject` event of `order_id`."""
        seen = []
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await self._subscription.next_msg(timeout=left)
            except TimeoutError:
                break
            event = Event(message.subject, EVENT_TYPES[message.subject].FromString(message.data))
            seen.append(event)
            if event.subject == subject and event.message.order_id == order_id:
                return seen
        raise AssertionError(f"no {subject} of order {order_id} within {within} s; saw {seen}")

    async def next(self, order_id: str, subject: str) -> Any:
        """The first `subject` event of `order_id` from here on."""
        return (await self.until(order_id, subject))[-1].message


@pytest.fixture
async def events(stack) -> AsyncIterator[PaymentEvents]:
    nc = await nats.connect(stack.nats_url)
    try:
        subscription = await nc.jetstream().subscribe(
            "ecom.payments.>", deliver_policy=DeliverPolicy.NEW, ordered_consumer=True
        )
        yield PaymentEvents(subscription)
    finally:
        await nc.close()
