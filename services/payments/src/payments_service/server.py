"""What the payments service is made of; ecom_runtime.server runs it."""

from __future__ import annotations

import logging

from ecom_runtime.db import Database
from ecom_runtime.server import App

from payments_service.config import PaymentsSettings
from payments_service.events import PUBLISHED
from payments_service.payments import Payments
from payments_service.provider import NotConfigured, PaymentProvider
from payments_service.servicer import PaymentInternalServicer, PaymentServicer
from payments_service.store import inbox, outbox
from payments_service.stripe_provider import StripeProvider

log = logging.getLogger("payments")

Settings = PaymentsSettings


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
    return App(
        name="payments",
        settings=settings,
        db=db,
        servicers=[
            PaymentInternalServicer(Payments(db, provider)),
            PaymentServicer(),
        ],
        closing=[provider.close],
    )
