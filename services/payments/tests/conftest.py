"""Payments test fixtures: the internal service as orders' checkout calls it, Stripe
(localstripe) as anyone holding the account's key sees it, Stripe's webhook deliveries through
the edge, and the payment events as orders receives them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import nats
import pytest
import stripe
from ecom_stack.stack import STRIPE_API_KEY, STRIPE_WEBHOOK_PATH
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

    async def all_of(self, wanted: set[tuple[str, str]], within: float = 15.0) -> list[Event]:
        """Events received until each (order id, subject) in `wanted` has been seen."""
        seen: list[Event] = []
        deadline = time.monotonic() + within
        while missing := wanted - {(e.message.order_id, e.subject) for e in seen}:
            order_id, subject = min(missing)
            seen += await self.until(order_id, subject, max(0.1, deadline - time.monotonic()))
        return seen

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


def stripe_event(kind: str, obj: dict[str, Any], event_id: str = "") -> bytes:
    """A Stripe event's body as Stripe sends it (JSON, pretty-printed like localstripe)."""
    event = {
        "id": event_id or f"evt_test_{uuid.uuid4().hex}",
        "object": "event",
        "type": kind,
        "created": int(time.time()),
        "data": {"object": obj},
    }
    return json.dumps(event, indent=2).encode()


def intent_object(intent_id: str, status: str, charge: str = "") -> dict[str, Any]:
    """A PaymentIntent as an event carries it; a declined one names its failed charge."""
    obj: dict[str, Any] = {"id": intent_id, "object": "payment_intent", "status": status}
    if charge:
        obj["last_payment_error"] = {
            "charge": charge,
            "code": "card_declined",
            "message": "Your card was declined.",
        }
    return obj


def signature(secret: str, body: bytes, at: int | None = None) -> str:
    """`Stripe-Signature` as Stripe computes it: HMAC-SHA256 of "<t>.<body>"."""
    t = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), b"%d.%s" % (t, body), hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


class Webhook:
    """Delivers events to the webhook route through the edge, as Stripe does."""

    event = staticmethod(stripe_event)
    intent = staticmethod(intent_object)

    def __init__(self, client: httpx.AsyncClient, secret: str) -> None:
        self.client = client
        self.secret = secret

    def sign(self, body: bytes, at: int | None = None, secret: str = "") -> str:
        return signature(secret or self.secret, body, at)

    async def deliver(
        self, body: bytes, sig: str | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """POSTs `body` signed with the stack's secret, or with `sig` ("" sends none)."""
        sent = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        sig = signature(self.secret, body) if sig is None else sig
        if sig:
            sent["Stripe-Signature"] = sig
        return await self.client.post(STRIPE_WEBHOOK_PATH, content=body, headers=sent)


@pytest.fixture(scope="session")
async def webhook(stack) -> AsyncIterator[Webhook]:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=20, trust_env=False) as client:
        yield Webhook(client, stack.stripe_webhook_secret)


@pytest.fixture
def payment_row(sql) -> Callable[[str], SimpleNamespace]:
    """The payment behind an intent id, as stored."""

    def row(intent_id: str) -> SimpleNamespace:
        [(status, stripe_intent_id, refunded_cents, updated_at)] = sql(
            "SELECT status, stripe_intent_id, refunded_cents, updated_at FROM payments.payments"
            " WHERE payment_intent_id = %s OR stripe_intent_id = %s",
            intent_id,
            intent_id,
        )
        return SimpleNamespace(
            status=status,
            stripe_intent_id=stripe_intent_id,
            refunded_cents=refunded_cents,
            updated_at=updated_at,
        )

    return row
