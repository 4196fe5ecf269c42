"""Payments over REST through Envoy: a shop paying with Stripe.js (the card goes to Stripe, the
outcome comes back by Stripe's signed webhook), and admins refunding orders."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import stripe
from ecom_stack.stack import STRIPE_API_KEY, STRIPE_WEBHOOK_PATH

from conftest import rest_fields as fields
from conftest import rest_reasons as reasons

from .test_rest_orders import add, checkout, eventually, ordered, pay, statuses


@pytest.fixture(scope="module")
async def stripe_js(stack) -> AsyncIterator[stripe.StripeClient]:
    """Stripe as the shopper's browser reaches it (localstripe; the SDK stands in for
    Stripe.js confirming the PaymentIntent with the client secret's intent)."""
    http = stripe.HTTPXClient(timeout=5)
    yield stripe.StripeClient(
        STRIPE_API_KEY, base_addresses={"api": stack.stripe_url}, http_client=http
    )
    await http.close_async()


def signed(secret: str, kind: str, intent_id: str, **extra: object) -> tuple[bytes, str]:
    """A Stripe event about an intent, and its `Stripe-Signature`."""
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": kind,
        "data": {"object": {"id": intent_id, "object": "payment_intent", **extra}},
    }
    body = json.dumps(event).encode()
    t = int(time.time())
    digest = hmac.new(secret.encode(), b"%d.%s" % (t, body), hashlib.sha256).hexdigest()
    return body, f"t={t},v1={digest}"


async def placed(api, user, product: dict, quantity: int = 1) -> tuple[dict, str]:
    """A fresh order awaiting payment, and its PaymentIntent's id."""
    await add(api, user, product, quantity)
    response = await checkout(api, user)
    assert response.status_code == 200, response.text
    return response.json()["order"], response.json()["payment"]["payment_intent_id"]


async def order_now(api, user, order_id: str) -> dict:
    return (await api.get(f"/api/orders/{order_id}", headers=user)).json()


async def test_paid_with_stripe_js_the_webhook_makes_the_order_paid(
    api, new_user, product, stripe_js
) -> None:
    mug = await product(stock=5)
    user = await new_user()
    await add(api, user, mug, 2)
    placed = await checkout(api, user)
    assert placed.status_code == 200, placed.text
    order, payment = placed.json()["order"], placed.json()["payment"]
    intent_id = payment["client_secret"].split("_secret_")[0]
    assert intent_id == payment["payment_intent_id"]

    # No /pay: the browser confirms at Stripe, Stripe tells payments (localstripe's webhook,
    # signed, through the edge), payments tells orders.
    intents = stripe_js.v1.payment_intents
    await intents.update_async(intent_id, {"payment_method": "pm_card_visa"})
    confirmed = await intents.confirm_async(intent_id)
    assert confirmed.status == "succeeded"

    async def paid():
        now = await order_now(api, user, order["id"])
        return now["status"] == "ORDER_STATUS_PAID" and now

    final = await eventually(paid)
    assert statuses(final) == ["PENDING_PAYMENT", "PAID"]
    assert (await api.get(f"/api/products/{mug['id']}")).json()["stock"] == 3


async def test_a_success_after_a_failure_pays_once_however_often_it_is_delivered(
    api, stack, new_user, product
) -> None:
    user = await new_user()
    order, intent_id = await placed(api, user, await product())
    secret = stack.stripe_webhook_secret
    failed = signed(
        secret,
        "payment_intent.payment_failed",
        intent_id,
        status="requires_payment_method",
        last_payment_error={"charge": f"ch_{uuid.uuid4().hex}", "code": "card_declined"},
    )
    succeeded = signed(secret, "payment_intent.succeeded", intent_id, status="succeeded")

    async def deliver(event: tuple[bytes, str]) -> int:
        body, signature = event
        response = await api.post(
            STRIPE_WEBHOOK_PATH,
            content=body,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        )
        return response.status_code

    assert await deliver(failed) == 200

    async def payment_failed():
        return (await order_now(api, user, order["id"]))["status"] == "ORDER_STATUS_PAYMENT_FAILED"

    await eventually(payment_failed)
    assert await asyncio.gather(*(deliver(succeeded) for _ in range(5))) == [200] * 5
    assert await deliver(failed) == 200  # late and repeated: changes nothing

    async def paid():
        now = await order_now(api, user, order["id"])
        return now["status"] == "ORDER_STATUS_PAID" and now

    final = await eventually(paid)
    assert statuses(final) == ["PENDING_PAYMENT", "PAYMENT_FAILED", "PAID"]
    body, _ = succeeded
    tampered = await api.post(
        STRIPE_WEBHOOK_PATH, content=body, headers={"Stripe-Signature": "t=1,v1=00"}
    )
    assert tampered.status_code == 400 and fields(tampered) == {"Stripe-Signature"}
    unsigned = await api.post(STRIPE_WEBHOOK_PATH, content=body)
    assert unsigned.status_code == 400 and fields(unsigned) == {"Stripe-Signature"}


async def refund(api, headers: dict, order_id: str, amount: int | None = None, key: str = ""):
    sent = {**headers, "Idempotency-Key": key} if key else headers
    body = {} if amount is None else {"amount_cents": amount}
    return await api.post(f"/api/admin/orders/{order_id}/refund", headers=sent, json=body)


async def test_an_admin_refunds_in_part_then_the_rest_and_the_order_is_refunded(
    api, admin, new_user, product
) -> None:
    user = await new_user()
    order, intent_id = await placed(api, user, await product(price_cents=6000))
    assert (await pay(api, user, order["id"])).status_code == 200
    total = int(order["total_cents"])

    part = await refund(api, admin, order["id"], 1000)

    assert part.status_code == 200, part.text
    first = part.json()
    assert first["id"].startswith("re_") and first["order_id"] == order["id"]
    assert (first["amount_cents"], first["total_refunded_cents"]) == ("1000", "1000")
    assert first["status"] == "REFUND_STATUS_SUCCEEDED"
    assert first["payment_intent_id"] == intent_id
    too_much = await refund(api, admin, order["id"], total)
    assert too_much.status_code == 400 and reasons(too_much) == ["REFUND_EXCEEDS_PAYMENT"]

    async def partly_refunded():
        now = await order_now(api, user, order["id"])
        return now["refunded_cents"] == "1000" and now

    assert (await eventually(partly_refunded))["status"] == "ORDER_STATUS_PAID"

    rest = await refund(api, admin, order["id"], key=f"rest-{order['id']}")

    assert rest.status_code == 200, rest.text
    assert (rest.json()["amount_cents"], rest.json()["total_refunded_cents"]) == (
        str(total - 1000),
        str(total),
    )
    again = await refund(api, admin, order["id"], key=f"rest-{order['id']}")
    assert again.status_code == 200 and again.json()["id"] == rest.json()["id"]
    other = await refund(api, admin, order["id"], 5, key=f"rest-{order['id']}")
    assert other.status_code == 409 and fields(other) == {"amount_cents"}

    async def refunded():
        now = await order_now(api, user, order["id"])
        return now["status"] == "ORDER_STATUS_REFUNDED" and now

    final = await eventually(refunded)
    assert final["refunded_cents"] == order["total_cents"]
    assert statuses(final) == ["PENDING_PAYMENT", "PAID", "REFUNDED"]
    nothing_left = await refund(api, admin, order["id"])
    assert nothing_left.status_code == 400 and reasons(nothing_left) == ["REFUND_EXCEEDS_PAYMENT"]


async def test_refunds_are_for_admins_and_paid_orders_only(api, admin, new_user, product) -> None:
    user = await new_user()
    order = await ordered(api, user, await product())

    unpaid = await refund(api, admin, order["id"])
    assert unpaid.status_code == 400 and reasons(unpaid) == ["NOT_PAID"]
    unknown = await refund(api, admin, str(uuid.uuid4()))
    assert unknown.status_code == 400 and reasons(unknown) == ["NOT_PAID"]
    assert (await pay(api, user, order["id"])).status_code == 200
    as_customer = await refund(api, user, order["id"])
    assert as_customer.status_code == 403 and reasons(as_customer) == ["ADMIN_REQUIRED"]
    anonymous = await refund(api, {}, order["id"])
    assert anonymous.status_code == 401
    bad = await refund(api, admin, "not-an-id", 0)
    assert bad.status_code == 400 and fields(bad) == {"id", "amount_cents"}
    long_key = await refund(api, admin, order["id"], key="k" * 256)
    assert long_key.status_code == 400 and fields(long_key) == {"Idempotency-Key"}
    now = await order_now(api, user, order["id"])
    assert (now["status"], now["refunded_cents"]) == ("ORDER_STATUS_PAID", "0")
