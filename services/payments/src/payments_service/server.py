"""What the payments service is made of; ecom_runtime.server runs it."""

from __future__ import annotations

import logging

from ecom_runtime.db import Database
from ecom_runtime.jobs import ScheduledJob
from ecom_runtime.server import App

from payments_service.config import PaymentsSettings
from payments_service.events import PUBLISHED
from payments_service.payments import Payments
from payments_service.provider import NotConfigured, PaymentProvider
from payments_service.servicer import PaymentInternalServicer, PaymentServicer
from payments_service.store import inbox, outbox
from payments_service.stripe_provider import StripeProvider
from payments_service.stripe_webhook import StripeWebhook

log = logging.getLogger("payments")

Settings = PaymentsSettings
RECONCILE_JOB = "reconcile"  # a JetStream job: once per interval across replicas


def payment_provider(settings: PaymentsSettings) -> PaymentProvider:
    api_key = settings.stripe_api_key.get_secret_value()
    if not api_key:
        log.warning("STRIPE_API_KEY is not set: payment RPCs answer UNAVAILABLE")
        return NotConfigured()
    return StripeProvider(
        api_key, api_base=settings.stripe_api_base, timeout=settings.stripe_timeout_seconds
    )


def build_app(settings: PaymentsSettings | None = None) -> App:
    settings = settings or PaymentsSettings()
    db = Database.for_service(settings, outbox=outbox, inbox=inbox, subjects=PUBLISHED)
    provider = payment_provider(settings)
    payments = Payments(db, provider)
    webhook = StripeWebhook(settings.stripe_webhook_secret.get_secret_value())

    async def reconcile(after_seconds: float | None = None) -> None:
        """Outcomes whose webhook was lost (or refused), asked of Stripe. `after_seconds`
        (a trigger's parameter) overrides how long a payment is left to its webhook."""
        if after_seconds is None:
            after_seconds = settings.payments_reconcile_after_seconds
        if not isinstance(after_seconds, int | float) or after_seconds < 0:
            raise ValueError("after_seconds must be a number >= 0")
        await payments.reconcile(after_seconds, settings.payments_reconcile_batch_size)

    # Without an API key there is no Stripe to ask.
    configured = not isinstance(provider, NotConfigured)
    return App(
        name="payments",
        settings=settings,
        db=db,
        servicers=[PaymentInternalServicer(payments), PaymentServicer(payments, webhook)],
        jobs=[ScheduledJob(RECONCILE_JOB, settings.payments_reconcile_seconds, reconcile)]
        if configured
        else [],
        closing=[provider.close],
    )
