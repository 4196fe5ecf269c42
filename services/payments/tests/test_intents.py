"""Creating, confirming and cancelling PaymentIntents as orders' checkout does, against
localstripe, with the events orders moves orders on."""

from __future__ import annotations

import asyncio
import uuid

import grpc
from ecommerce.payments.v1 import payments_pb2 as pb
from payments_service.events import PAYMENT_FAILED, PAYMENT_SUCCEEDED

from conftest import reason, rpc_error, violations


async def test_create_names_every_bad_field(payments) -> None:
    error = await rpc_error(payments.CreatePaymentIntent(pb.CreatePaymentIntentRequest()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(error)) == {"order_id", "amount_cents", "currency", "idempotency_key"}

    error = await rpc_error(
        payments.CreatePaymentIntent(
            pb.CreatePaymentIntentRequest(
                order_id="not-a-uuid",
                amount_cents=-5,
                currency="usd",
                idempotency_key="k" * 256,
                user_id="nobody",
            )
        )
    )
    assert set(violations(error)) == {
        "order_id",
        "amount_cents",
        "currency",
        "idempotency_key",
        "user_id",
    }


async def test_concurrent_creates_with_one_key_make_one_intent(payments, stripe_intents) -> None:
    order_id = str(uuid.uuid4())
    request = pb.CreatePaymentIntentRequest(
        order_id=order_id, amount_cents=4200, currency="EUR", idempotency_key=f"co:{order_id}"
    )

    answers = await asyncio.gather(*(payments.CreatePaymentIntent(request) for _ in range(10)))

    assert len({(a.payment_intent_id, a.client_secret) for a in answers}) == 1
    assert answers[0].payment_intent_id.startswith("pi_") and answers[0].client_secret
    [intent] = await stripe_intents(order_id)
    assert intent.id == answers[0].payment_intent_id
    assert (intent.amount, intent.currency) == (4200, "eur")


async def test_a_reused_key_must_come_with_the_same_request(payments, checkout) -> None:
    order_id, created = await checkout.create(amount_cents=1000)
    key = f"checkout:{order_id}"

    def request(**changes: object) -> pb.CreatePaymentIntentRequest:
        fields = {"order_id": order_id, "amount_cents": 1000, "currency": "USD"}
        return pb.CreatePaymentIntentRequest(**{"idempotency_key": key, **fields, **changes})

    assert await payments.CreatePaymentIntent(request()) == created
    other_amount = await rpc_error(payments.CreatePaymentIntent(request(amount_cents=999)))
    assert other_amount.code() == grpc.StatusCode.ALREADY_EXISTS
    assert set(violations(other_amount)) == {"amount_cents"}
    other_order = await rpc_error(
        payments.CreatePaymentIntent(request(order_id=str(uuid.uuid4()), currency="GBP"))
    )
    assert other_order.code() == grpc.StatusCode.ALREADY_EXISTS
    assert set(violations(other_order)) == {"order_id", "currency"}
    # One payment per order: another key for the same order makes no second intent.
    other_key = await rpc_error(payments.CreatePaymentIntent(request(idempotency_key="another")))
    assert other_key.code() == grpc.StatusCode.ALREADY_EXISTS
    assert set(violations(other_key)) == {"order_id"}


async def test_a_card_that_works_pays_once_and_is_announced_once(
    checkout, stripe_intents, events
) -> None:
    order_id, created = await checkout.create(amount_cents=3100)
    intent_id = created.payment_intent_id

    first = await checkout.confirm(intent_id, "pm_card_visa")
    second = await checkout.confirm(intent_id, "pm_card_visa")

    assert first.status == second.status == pb.PAYMENT_STATUS_SUCCEEDED
    assert (first.failure_code, first.failure_message) == ("", "")
    [intent] = await stripe_intents(order_id)
    assert (intent.id, intent.status, intent.amount) == (intent_id, "succeeded", 3100)
    # A later payment's event closes the window: the outbox is relayed in commit order, so a
    # second PaymentSucceeded of the first order would have come before it.
    later, _ = await checkout.paid()
    seen = await events.until(later, PAYMENT_SUCCEEDED)
    [announced] = [e.message for e in seen if e.message.order_id == order_id]
    assert announced.payment_intent_id == intent_id
    assert (announced.amount_cents, announced.currency) == (3100, "USD")
    assert announced.event_id and announced.occurred_at.seconds


async def test_a_declined_card_fails_and_another_card_then_pays(
    checkout, stripe_intents, events
) -> None:
    order_id, created = await checkout.create(amount_cents=5000)
    intent_id = created.payment_intent_id

    declined = await checkout.confirm(intent_id, "pm_card_chargeCustomerFail")

    assert declined.status == pb.PAYMENT_STATUS_FAILED
    assert declined.failure_code == "card_declined"
    assert declined.failure_message == "Your card was declined."
    failed = await events.next(order_id, PAYMENT_FAILED)
    assert failed.payment_intent_id == intent_id
    assert (failed.failure_code, failed.failure_message) == (
        "card_declined",
        "Your card was declined.",
    )
    assert (failed.amount_cents, failed.currency) == (5000, "USD")

    # The customer tries another card on the same order, with the same intent id.
    second_try = await checkout.confirm(intent_id, "pm_card_visa")

    assert second_try.status == pb.PAYMENT_STATUS_SUCCEEDED
    assert (second_try.failure_code, second_try.failure_message) == ("", "")
    succeeded = await events.next(order_id, PAYMENT_SUCCEEDED)
    assert (succeeded.payment_intent_id, succeeded.amount_cents) == (intent_id, 5000)
    # Stripe charged the order once, and left no intent of it open to be paid again.
    statuses = sorted(i.status for i in await stripe_intents(order_id))
    assert statuses.count("succeeded") == 1
    assert set(statuses) <= {"succeeded", "canceled"}
    # A retried checkout still gets the intent id it was first given, and paying is done.
    _, again = await checkout.create(amount_cents=5000, order_id=order_id)
    assert again.payment_intent_id == intent_id
    done = await checkout.confirm(intent_id, "pm_card_chargeCustomerFail")
    assert done.status == pb.PAYMENT_STATUS_SUCCEEDED


async def test_unknown_intents_are_not_found(payments, checkout) -> None:
    missing = await rpc_error(checkout.confirm("pi_unknown", "pm_card_visa"))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    missing = await rpc_error(
        payments.CancelPaymentIntent(pb.CancelPaymentIntentRequest(payment_intent_id="pi_unknown"))
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    empty = await rpc_error(payments.ConfirmPayment(pb.ConfirmPaymentRequest()))
    assert set(violations(empty)) == {"payment_intent_id", "payment_method_id"}


async def test_an_unknown_payment_method_is_invalid(checkout) -> None:
    _, created = await checkout.create()
    error = await rpc_error(checkout.confirm(created.payment_intent_id, "pm_no_such_method"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(error)) == {"payment_method_id"}


async def test_cancel_stops_an_unpaid_intent_and_refuses_a_paid_one(
    payments, checkout, stripe_intents
) -> None:
    order_id, created = await checkout.create()
    cancel = pb.CancelPaymentIntentRequest(payment_intent_id=created.payment_intent_id)

    for _ in range(2):  # idempotent
        cancelled = await payments.CancelPaymentIntent(cancel)
        assert cancelled.status == pb.PAYMENT_STATUS_CANCELED

    [intent] = await stripe_intents(order_id)
    assert intent.status == "canceled"
    too_late = await rpc_error(checkout.confirm(created.payment_intent_id, "pm_card_visa"))
    assert too_late.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(too_late) == "PAYMENT_CANCELED"

    _, paid_intent = await checkout.paid()
    refused = await rpc_error(
        payments.CancelPaymentIntent(pb.CancelPaymentIntentRequest(payment_intent_id=paid_intent))
    )
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(refused) == "PAYMENT_SUCCEEDED"
