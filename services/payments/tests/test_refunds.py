"""Refunding a paid order's payment, in part or in full, once per idempotency key."""

from __future__ import annotations

import asyncio
import uuid

import grpc
from ecommerce.payments.v1 import payments_pb2 as pb
from payments_service.events import REFUND_SUCCEEDED

from conftest import reason, rpc_error, violations


def refund(order_id: str, key: str, amount_cents: int | None = None) -> pb.RefundPaymentRequest:
    request = pb.RefundPaymentRequest(order_id=order_id, idempotency_key=key, reason="test")
    if amount_cents is not None:
        request.amount_cents = amount_cents
    return request


async def test_a_partial_refund_then_the_rest(payments, checkout, stripe_api, events) -> None:
    order_id, intent_id = await checkout.paid(amount_cents=1000)

    part = await payments.RefundPayment(refund(order_id, f"part:{order_id}", 300))

    assert part.id.startswith("re_")
    assert (part.order_id, part.payment_intent_id) == (order_id, intent_id)
    assert (part.amount_cents, part.currency, part.total_refunded_cents) == (300, "USD", 300)
    assert part.status == pb.REFUND_STATUS_SUCCEEDED and part.created_at.seconds
    first = await events.next(order_id, REFUND_SUCCEEDED)
    assert (first.refund_id, first.amount_cents, first.total_refunded_cents) == (part.id, 300, 300)
    assert not first.fully_refunded

    too_much = await rpc_error(payments.RefundPayment(refund(order_id, f"big:{order_id}", 701)))
    assert too_much.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(too_much) == "REFUND_EXCEEDS_PAYMENT"

    rest = await payments.RefundPayment(refund(order_id, f"rest:{order_id}"))  # no amount: all

    assert (rest.amount_cents, rest.total_refunded_cents) == (700, 1000)
    last = await events.next(order_id, REFUND_SUCCEEDED)
    assert (last.refund_id, last.amount_cents, last.total_refunded_cents) == (rest.id, 700, 1000)
    assert last.fully_refunded and last.payment_intent_id == intent_id
    nothing_left = await rpc_error(payments.RefundPayment(refund(order_id, f"more:{order_id}")))
    assert reason(nothing_left) == "REFUND_EXCEEDS_PAYMENT"
    at_stripe = await stripe_api.v1.refunds.list_async({"payment_intent": intent_id})
    assert sorted(r.amount for r in at_stripe.data) == [300, 700]


async def test_concurrent_refunds_with_one_key_refund_once(payments, checkout, stripe_api) -> None:
    order_id, intent_id = await checkout.paid(amount_cents=2000)
    request = refund(order_id, f"cancel:{order_id}", 400)

    answers = await asyncio.gather(*(payments.RefundPayment(request) for _ in range(5)))

    assert len({a.id for a in answers}) == 1
    assert {(a.amount_cents, a.total_refunded_cents) for a in answers} == {(400, 400)}
    at_stripe = await stripe_api.v1.refunds.list_async({"payment_intent": intent_id})
    assert [r.amount for r in at_stripe.data] == [400]
    # A retry much later refunds nothing more, and a different amount under the key is refused.
    assert (await payments.RefundPayment(request)).id == answers[0].id
    reused = await rpc_error(payments.RefundPayment(refund(order_id, f"cancel:{order_id}", 10)))
    assert reused.code() == grpc.StatusCode.ALREADY_EXISTS
    assert set(violations(reused)) == {"amount_cents"}


async def test_an_order_without_a_successful_payment_is_not_refunded(payments, checkout) -> None:
    unpaid, created = await checkout.create()
    declined = await checkout.confirm(created.payment_intent_id, "pm_card_chargeCustomerFail")
    assert declined.status == pb.PAYMENT_STATUS_FAILED

    for order_id in (unpaid, str(uuid.uuid4())):
        error = await rpc_error(payments.RefundPayment(refund(order_id, f"r:{order_id}")))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason(error) == "NOT_PAID"


async def test_refund_requests_are_validated(payments) -> None:
    error = await rpc_error(payments.RefundPayment(refund("nope", "", 0)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(error)) == {"order_id", "amount_cents", "idempotency_key"}
