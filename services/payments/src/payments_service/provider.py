"""The port to the payment provider: the few things payments asks Stripe, in our terms.

`stripe_provider.StripeProvider` is the real one. Every method raises
`ecom_runtime.errors.Unavailable` when the provider cannot be reached or answers too slowly,
and another DomainError when it refuses the request; a declined card is not an error but an
`Outcome` (ConfirmPayment answers it as PAYMENT_STATUS_FAILED).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from ecom_runtime.errors import Unavailable


@dataclass(frozen=True)
class CreatedIntent:
    id: str  # "pi_..."
    client_secret: str
    status: str  # a payment status (store.STATUSES)


@dataclass(frozen=True)
class Outcome:
    """Where an intent stands after a confirmation (or as retrieved)."""

    status: str  # a payment status (store.STATUSES)
    # When FAILED: Stripe's error code ("card_declined", "expired_card"...) and its message,
    # which Stripe writes to be shown to the customer.
    failure_code: str = ""
    failure_message: str = ""
    # The issuer's finer reason ("insufficient_funds"...), kept for support only: Stripe
    # advises against telling customers some of them (e.g. "stolen_card").
    decline_code: str = ""
    # The charge the attempt made, when known (names the failure once, see payments.py).
    charge_id: str = ""


@dataclass(frozen=True)
class ProviderRefund:
    id: str  # "re_..."
    status: str  # a refund status (store.REFUND_STATUSES)


@dataclass(frozen=True)
class IntentChanged:
    """The provider says where an intent stands (a webhook event, or asked by reconciliation)."""

    intent_id: str
    outcome: Outcome


@dataclass(frozen=True)
class RefundsChanged:
    """Refunds of a charge moved on: (refund id, refund status) each. `intent_id` is the
    intent they refund when the event names it, else ""."""

    intent_id: str
    refunds: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ProviderEvent:
    """A verified event from the provider: applied once per `id`. `change` is None for the
    event types payments does not act on."""

    id: str
    type: str
    change: IntentChanged | RefundsChanged | None


class IntentNotReusable(Exception):
    """The provider will not confirm this intent again after a decline.

    Stripe resets a declined intent so it can be confirmed with another method; localstripe
    keeps the declined charge on it and refuses. The caller moves the payment to a fresh
    intent instead.
    """


class PaymentProvider(Protocol):
    async def create_intent(
        self,
        order_id: uuid.UUID,
        amount_cents: int,
        currency: str,
        idempotency_key: str,
        user_id: uuid.UUID | None = None,
    ) -> CreatedIntent:
        """A new PaymentIntent with metadata order_id (and user_id); the provider dedupes
        on `idempotency_key` where it can, payments does anyway."""
        ...

    async def confirm(self, intent_id: str, payment_method_id: str) -> Outcome:
        """Attaches the payment method and confirms; a decline is an Outcome with FAILED.
        Raises IntentNotReusable (see there)."""
        ...

    async def cancel(self, intent_id: str) -> Outcome:
        """Cancels the intent; when it can no longer be cancelled, where it stands."""
        ...

    async def retrieve(self, intent_id: str) -> Outcome: ...

    async def refund(
        self, intent_id: str, amount_cents: int, idempotency_key: str, order_id: uuid.UUID
    ) -> ProviderRefund: ...

    async def close(self) -> None: ...


class NotConfigured:
    """The provider when no Stripe API key is set: every payment RPC answers UNAVAILABLE
    (config.PaymentsSettings says why the service starts anyway)."""

    def _refuse(self) -> Unavailable:
        return Unavailable("payments are not configured")

    async def create_intent(
        self,
        order_id: uuid.UUID,
        amount_cents: int,
        currency: str,
        idempotency_key: str,
        user_id: uuid.UUID | None = None,
    ) -> CreatedIntent:
        raise self._refuse()

    async def confirm(self, intent_id: str, payment_method_id: str) -> Outcome:
        raise self._refuse()

    async def cancel(self, intent_id: str) -> Outcome:
        raise self._refuse()

    async def retrieve(self, intent_id: str) -> Outcome:
        raise self._refuse()

    async def refund(
        self, intent_id: str, amount_cents: int, idempotency_key: str, order_id: uuid.UUID
    ) -> ProviderRefund:
        raise self._refuse()

    async def close(self) -> None:
        return None
