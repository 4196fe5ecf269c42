"""Reconciliation: outcomes whose webhook was lost are asked of Stripe and recorded, and
announced, as the webhook would have done."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import nats
import pytest
import stripe
from ecom_runtime.jobs import trigger
from payments_service.events import PAYMENT_FAILED, PAYMENT_SUCCEEDED
from payments_service.server import RECONCILE_JOB

from conftest import eventually


class LosingEndpoint:
    """A webhook endpoint that takes Stripe's deliveries and answers 503 to each: the events
    are lost (localstripe does not retry). Records (event type, object id) of each."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                seen.add((event["type"], event["data"]["object"]["id"]))
                self.send_response(503)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/webhook"

    @contextmanager
    def serving(self, stack) -> Iterator[LosingEndpoint]:
        """localstripe's webhook points here meanwhile, then back at the edge."""
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        stack.register_stripe_webhook(self.url)
        try:
            yield self
        finally:
            stack.register_stripe_webhook()
            self._server.shutdown()
            self._server.server_close()

    async def lost(self, *expected: tuple[str, str], within: float = 15.0) -> None:
        """Waits until each (event type, object id) was delivered here (and so not to us)."""
        await eventually(
            lambda: set(expected) <= self.seen, within=within, what=f"delivery of {expected}"
        )


async def reconcile_now(stack) -> None:
    """Runs the payments' reconcile job once now (by one of its processes), leaving no
    payment to its webhook any longer."""
    nc = await nats.connect(stack.nats_url)
    try:
        await trigger(nc.jetstream(), "payments", RECONCILE_JOB, after_seconds=0)
    finally:
        await nc.close()


async def asked_again(stack, sql, intent_id: str, times: int, within: float = 15.0) -> None:
    """Runs reconciliation `times` more times, waiting each time until it asked Stripe about
    the payment."""
    query = "SELECT checked_at FROM payments.payments WHERE payment_intent_id = %s"
    for _ in range(times):
        [(before,)] = sql(query, intent_id)
        await reconcile_now(stack)
        await eventually(
            lambda before=before: sql(query, intent_id) != [(before,)],
            within=within,
            what="Stripe asked about the payment again",
        )


async def test_outcomes_whose_webhook_was_lost_are_reconciled(
    stack, checkout, stripe_api, payment_row, events, sql
) -> None:
    paid_order, paid = await checkout.create(amount_cents=1800)
    declined_order, declined = await checkout.create()
    _, cancelled = await checkout.create()
    intents = stripe_api.v1.payment_intents
    with LosingEndpoint().serving(stack) as endpoint:
        # Paid, declined and cancelled at Stripe, as Stripe.js (or the dashboard) would: the
        # card goes from the browser to Stripe, payments hears of it only by webhook.
        await intents.update_async(paid.payment_intent_id, {"payment_method": "pm_card_visa"})
        await intents.confirm_async(paid.payment_intent_id)
        method = {"payment_method": "pm_card_chargeCustomerFail"}
        await intents.update_async(declined.payment_intent_id, method)
        with pytest.raises(stripe.CardError):
            await intents.confirm_async(declined.payment_intent_id)
        await intents.cancel_async(cancelled.payment_intent_id)
        await endpoint.lost(
            ("payment_intent.succeeded", paid.payment_intent_id),
            ("payment_intent.payment_failed", declined.payment_intent_id),
        )
    ids = (paid.payment_intent_id, declined.payment_intent_id, cancelled.payment_intent_id)
    assert [payment_row(i).status for i in ids] == ["PENDING"] * 3

    await reconcile_now(stack)
    await eventually(
        lambda: [payment_row(i).status for i in ids] == ["SUCCEEDED", "FAILED", "CANCELED"],
        what="the three payments reconciled",
    )
    seen = await events.all_of({(paid_order, PAYMENT_SUCCEEDED), (declined_order, PAYMENT_FAILED)})
    # Asked about again (the declined one may still be paid), it announces nothing more:
    # a later payment's event closes the window (the outbox is relayed in commit order).
    await asked_again(stack, sql, declined.payment_intent_id, times=2)
    later, _ = await checkout.paid()
    seen += await events.until(later, PAYMENT_SUCCEEDED)

    ours = sorted((e.message.order_id, e.subject) for e in seen if e.message.order_id != later)
    assert ours == sorted([(paid_order, PAYMENT_SUCCEEDED), (declined_order, PAYMENT_FAILED)])
    failed = next(e.message for e in seen if e.subject == PAYMENT_FAILED)
    assert failed.failure_code == "card_declined"
