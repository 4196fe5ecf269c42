"""Stripe's webhook through the edge: only signed deliveries count, each event takes effect
once however often and in whatever order it arrives, and what it says is recorded and
announced as a confirmation's outcome would be."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
from ecommerce.payments.v1 import payments_pb2 as pb
from ecommerce.payments.v1 import payments_pb2_grpc
from payments_service.events import PAYMENT_FAILED, PAYMENT_SUCCEEDED, REFUND_SUCCEEDED

from conftest import rest_fields, rest_reasons, rpc_error, violations


def claims(sql, event_id: str) -> int:
    [(count,)] = sql(
        "SELECT count(*) FROM payments.inbox WHERE scope = 'stripe-event' AND key = %s", event_id
    )
    return int(count)


async def test_a_delivery_repeated_five_times_at_once_is_applied_once(
    checkout, webhook, events, payment_row, sql
) -> None:
    order_id, created = await checkout.create(amount_cents=4200)
    intent_id = created.payment_intent_id
    event_id = f"evt_{uuid.uuid4().hex}"
    body = webhook.event(
        "payment_intent.succeeded", webhook.intent(intent_id, "succeeded"), event_id
    )
    sig = webhook.sign(body)

    answers = await asyncio.gather(*(webhook.deliver(body, sig) for _ in range(5)))

    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    assert {a.json() == {} for a in answers} == {True}
    assert payment_row(intent_id).status == "SUCCEEDED"
    assert claims(sql, event_id) == 1
    changed_at = payment_row(intent_id).updated_at
    assert (await webhook.deliver(body)).status_code == 200  # later, newly signed: nothing more
    assert payment_row(intent_id).updated_at == changed_at
    # A later payment's event closes the window: the outbox is relayed in commit order.
    later, _ = await checkout.paid()
    seen = await events.until(later, PAYMENT_SUCCEEDED)
    announced = [e.message for e in seen if e.message.order_id == order_id]
    assert [(a.payment_intent_id, a.amount_cents) for a in announced] == [(intent_id, 4200)]


async def test_a_success_after_a_failure_pays_and_a_failure_after_a_success_is_ignored(
    checkout, webhook, events, payment_row
) -> None:
    order_id, created = await checkout.create()
    intent_id = created.payment_intent_id
    charge = f"ch_{uuid.uuid4().hex}"
    failed = webhook.event(
        "payment_intent.payment_failed",
        webhook.intent(intent_id, "requires_payment_method", charge),
    )
    succeeded = webhook.event("payment_intent.succeeded", webhook.intent(intent_id, "succeeded"))

    assert (await webhook.deliver(failed)).status_code == 200
    assert payment_row(intent_id).status == "FAILED"
    declined = await events.next(order_id, PAYMENT_FAILED)
    assert (declined.payment_intent_id, declined.failure_code) == (intent_id, "card_declined")

    assert (await webhook.deliver(succeeded)).status_code == 200
    assert payment_row(intent_id).status == "SUCCEEDED"
    assert (await events.next(order_id, PAYMENT_SUCCEEDED)).payment_intent_id == intent_id

    # The same failure again (a new event id, as a late retry of Stripe's would carry) and a
    # cancellation change nothing once the payment succeeded.
    again = webhook.event(
        "payment_intent.payment_failed",
        webhook.intent(intent_id, "requires_payment_method", charge),
    )
    assert (await webhook.deliver(again)).status_code == 200
    canceled = webhook.event("payment_intent.canceled", webhook.intent(intent_id, "canceled"))
    assert (await webhook.deliver(canceled)).status_code == 200
    assert payment_row(intent_id).status == "SUCCEEDED"


async def test_a_cancellation_cancels_an_unpaid_payment(checkout, webhook, payment_row) -> None:
    _, created = await checkout.create()
    intent_id = created.payment_intent_id
    body = webhook.event("payment_intent.canceled", webhook.intent(intent_id, "canceled"))

    assert (await webhook.deliver(body)).status_code == 200

    assert payment_row(intent_id).status == "CANCELED"


async def test_events_not_ours_or_not_handled_are_acknowledged(webhook, sql) -> None:
    for body in (
        webhook.event("payment_intent.succeeded", webhook.intent("pi_not_ours", "succeeded")),
        webhook.event("customer.created", {"id": "cus_1", "object": "customer"}),
        webhook.event("charge.refunded", {"id": "ch_1", "object": "charge"}),
        webhook.event("payment_intent.created", {"object": "payment_intent"}),
    ):
        response = await webhook.deliver(body)
        assert response.status_code == 200, response.text


async def test_unsigned_tampered_or_stale_deliveries_are_refused_and_change_nothing(
    checkout, webhook, payment_row, sql
) -> None:
    _, created = await checkout.create()
    intent_id = created.payment_intent_id
    event_id = f"evt_{uuid.uuid4().hex}"
    body = webhook.event(
        "payment_intent.succeeded", webhook.intent(intent_id, "succeeded"), event_id
    )
    now = int(time.time())
    good = webhook.sign(body, now)
    t = good.split(",")[0]
    tampered_body = body.replace(b'"succeeded"', b'"succeeded" ', 1)

    refusals = {
        "missing header": (body, ""),
        "tampered body": (tampered_body, good),
        "tampered signature": (body, f"{t},v1={'0' * 64}"),
        "other secret": (body, webhook.sign(body, now, "whsec_someone_else")),
        "no v1": (body, t),
        "garbage": (body, "not a signature"),
        "older than 300 s": (body, webhook.sign(body, now - 301)),
        "over 300 s ahead": (body, webhook.sign(body, now + 400)),
    }
    for case, (sent, sig) in refusals.items():
        response = await webhook.deliver(sent, sig)
        assert response.status_code == 400, (case, response.text)
        assert rest_fields(response) == {"Stripe-Signature"}, case

    for case, sent in {
        "not JSON": b"{not json",
        "not an event": b"[1, 2, 3]",
        "no id": b'{"type": "payment_intent.succeeded"}',
        "not UTF-8": b'{"id": "\xff"}',
    }.items():
        response = await webhook.deliver(sent)
        assert response.status_code == 400, (case, response.text)
        assert rest_fields(response) == {"body"}, case
        assert rest_reasons(response) == [], case

    assert payment_row(intent_id).status == "PENDING"
    assert claims(sql, event_id) == 0
    # The genuine delivery still works afterwards, even nearly 300 s late.
    late = webhook.sign(body, int(time.time()) - 290)
    assert (await webhook.deliver(body, late)).status_code == 200
    assert payment_row(intent_id).status == "SUCCEEDED"


async def test_the_webhook_needs_no_user_token_but_a_signature(stack) -> None:
    async with grpc.aio.insecure_channel(stack.grpc_addrs["payments"]) as channel:
        public = payments_pb2_grpc.PaymentServiceStub(channel)
        unsigned = await rpc_error(public.HandleStripeWebhook(pb.HandleStripeWebhookRequest()))
        assert unsigned.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(violations(unsigned)) == {"Stripe-Signature"}
        anonymous = await rpc_error(public.RefundOrder(pb.RefundOrderRequest(id=str(uuid.uuid4()))))
        assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_pending_refund_is_announced_when_it_settles(
    checkout, payments, webhook, events, sql, payment_row
) -> None:
    """Stripe answers some refunds `pending` and settles them later (localstripe settles every
    refund at once, so the pending ones are written as real Stripe would leave them)."""
    order_id, intent_id = await checkout.paid(amount_cents=1000)
    payment_id = sql("SELECT id FROM payments.payments WHERE order_id = %s", uuid.UUID(order_id))
    settles, fails = f"re_{uuid.uuid4().hex}", f"re_{uuid.uuid4().hex}"
    for refund_id, amount in ((settles, 600), (fails, 400)):
        sql(
            "INSERT INTO payments.refunds (id, payment_id, order_id, payment_intent_id,"
            " amount_cents, currency, status, idempotency_key) VALUES"
            " (%s, %s, %s, %s, %s, 'USD', 'PENDING', %s)",
            refund_id,
            payment_id[0][0],
            uuid.UUID(order_id),
            intent_id,
            amount,
            f"test:{refund_id}",
        )
    sql(
        "UPDATE payments.payments SET refunded_cents = 1000 WHERE order_id = %s",
        uuid.UUID(order_id),
    )

    def refund(refund_id: str, status: str) -> dict:
        return {"id": refund_id, "object": "refund", "payment_intent": intent_id, "status": status}

    updated = webhook.event("refund.updated", refund(settles, "succeeded"))
    listed = webhook.event(
        "charge.refunded",
        {
            "id": "ch_x",
            "object": "charge",
            "payment_intent": intent_id,
            "refunds": {"data": [refund(settles, "succeeded"), refund(fails, "failed")]},
        },
    )
    for body in (updated, updated, listed):
        assert (await webhook.deliver(body)).status_code == 200

    settled = await events.next(order_id, REFUND_SUCCEEDED)
    assert (settled.refund_id, settled.amount_cents, settled.total_refunded_cents) == (
        settles,
        600,
        600,
    )
    assert not settled.fully_refunded
    statuses = dict(
        sql("SELECT id, status FROM payments.refunds WHERE order_id = %s", uuid.UUID(order_id))
    )
    assert statuses == {settles: "SUCCEEDED", fails: "FAILED"}
    assert payment_row(intent_id).refunded_cents == 600  # the failed one is refundable again
    rest = await payments.RefundPayment(
        pb.RefundPaymentRequest(order_id=order_id, idempotency_key=f"rest:{order_id}")
    )
    assert (rest.amount_cents, rest.total_refunded_cents) == (400, 1000)
    last = await events.next(order_id, REFUND_SUCCEEDED)
    assert (last.refund_id, last.total_refunded_cents, last.fully_refunded) == (rest.id, 1000, True)
