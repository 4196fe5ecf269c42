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
