"""Payments service settings (environment variables; see the README's configuration table)."""

from __future__ import annotations

from ecom_runtime.config import ServiceSettings
from pydantic import SecretStr


class PaymentsSettings(ServiceSettings):
    """Without a Stripe API key the service still starts (health, migrations and the rest of
    the stack keep working), and every payment RPC answers UNAVAILABLE "payments are not
    configured": a missing secret takes payments down, not the whole deployment."""

    grpc_port: int = 50055
    # A secret key, sk_live_... or sk_test_...; never logged.
    stripe_api_key: SecretStr = SecretStr("")
    # Where the Stripe API is; empty: Stripe's own. The local stack points it at localstripe.
    stripe_api_base: str = ""
    # The most one RPC waits on Stripe in all (every call it makes to Stripe included); then
    # it answers UNAVAILABLE. Below the edge's 15 s route timeout, so an outage is our 503.
    stripe_timeout_seconds: float = 8.0
    # The webhook endpoint's signing secret(s), whsec_...; comma-separated, any verifies, so a
    # rotation is: add the new one, switch the endpoint at Stripe, drop the old one. Empty:
    # every delivery is refused (400) and only reconciliation learns of outcomes.
    stripe_webhook_secret: SecretStr = SecretStr("")
    # How often payments left without an outcome are looked up at Stripe, in case their
    # webhook was lost; and how long one waits (since it last changed or was asked about)
    # before it is, so the webhook normally wins.
    payments_reconcile_seconds: float = 60.0
    payments_reconcile_after_seconds: float = 300.0
    # At most this many payments are asked about per round (one Stripe call each).
    payments_reconcile_batch_size: int = 100
