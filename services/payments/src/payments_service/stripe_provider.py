"""The payment provider on Stripe's API (the `stripe` SDK, async over httpx).

Bounded: each method gets `timeout` seconds in all, every request it makes included, and the
SDK does not retry on its own; an unreachable, slow, rate-limiting or failing Stripe is
`Unavailable` (HTTP 503) and the caller retries, which the idempotency keys make safe.

Never logged: the API key, client secrets, or a Stripe error's body (a card error's body
carries the PaymentIntent, client secret included). Errors are logged by type, code and
Stripe's request id, and re-raised without their cause.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import stripe
from ecom_runtime.errors import DomainError, FailedPrecondition, InvalidArgument, Unavailable

from payments_service import errors
from payments_service.provider import (
    CreatedIntent,
    IntentNotReusable,
    Outcome,
    ProviderRefund,
)
from payments_service.store import CANCELED, FAILED, PENDING, REQUIRES_ACTION, SUCCEEDED

log = logging.getLogger("payments.stripe")
# At DEBUG the SDK logs request and response bodies, which hold client secrets; httpx logs a
# line per request at INFO.
logging.getLogger("stripe").setLevel(logging.WARNING)
logging.getLogger("httpx").setLevel(logging.WARNING)

# Stripe's intent status -> ours. "requires_payment_method" is PENDING before an attempt and
# FAILED after a declined one (`outcome_of`).
INTENT_STATUS = {
    "requires_payment_method": PENDING,
    "requires_confirmation": PENDING,
    "processing": PENDING,
    "requires_capture": PENDING,  # not used: intents are captured automatically
    "requires_action": REQUIRES_ACTION,
    "succeeded": SUCCEEDED,
    "canceled": CANCELED,
}
REFUND_STATUS = {
    "succeeded": SUCCEEDED,
    "pending": PENDING,
    "requires_action": PENDING,
    "failed": FAILED,
    "canceled": FAILED,
}
# Refusals that mean "more than is left to refund" (Stripe checks it too).
_OVER_REFUND_CODES = {"charge_already_refunded", "amount_too_large"}
# Stripe's parameter -> our request's field, for refusals of a value the caller gave (an
# amount below the currency's minimum, a currency Stripe does not take, an unusable method).
_FIELDS = {"amount": "amount_cents", "currency": "currency", "payment_method": "payment_method_id"}


def stripe_key(purpose: str, our_key: str) -> str:
    """Stripe's idempotency key for one of ours: fixed per (purpose, key), so a retry of ours
    is a retry to Stripe, and within Stripe's 255 characters whatever the length of ours."""
    return f"payments-{purpose}-{hashlib.sha256(our_key.encode()).hexdigest()}"


def _error_body(error: stripe.StripeError) -> dict[str, Any]:
    body = error.json_body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]
    return {}


def outcome_of(intent: Mapping[str, Any]) -> Outcome:
    """Where an intent stands, from an API answer (`to_dict()`) or a webhook event's snapshot
    alike; every field may be missing (localstripe leaves out many)."""
    status = intent.get("status")
    last_error = intent.get("last_payment_error")
    if status == "requires_payment_method" and isinstance(last_error, Mapping):
        return Outcome(
            status=FAILED,
            failure_code=_text(last_error.get("code")) or "payment_failed",
            failure_message=_text(last_error.get("message")) or "The payment failed.",
            decline_code=_text(last_error.get("decline_code")),
            charge_id=_text(last_error.get("charge")),
        )
    return Outcome(status=INTENT_STATUS.get(_text(status), PENDING))


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _declined(error: stripe.CardError) -> Outcome:
    body = _error_body(error)
    return Outcome(
        status=FAILED,
        failure_code=error.code or "card_declined",
        failure_message=body.get("message") or "Your card was declined.",
        decline_code=body.get("decline_code") or "",
        charge_id=body.get("charge") or "",
    )


def _translate(error: stripe.StripeError, doing: str) -> DomainError:
    """What a Stripe error means to our caller."""
    log.warning(
        "Stripe call failed: %s",
        doing,
        extra={
            "error": type(error).__name__,
            "http_status": error.http_status,
            "code": error.code,
            "request_id": error.request_id,
        },
    )
    status = error.http_status or 0
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        log.error("Stripe does not accept the configured API key (STRIPE_API_KEY)")
        return Unavailable("payments are unavailable")
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError | stripe.APIError) or (
        status >= 500
    ):
        return Unavailable("Stripe is unavailable; try again")
    if error.code in _OVER_REFUND_CODES:
        return FailedPrecondition(
            "Stripe refuses to refund more than is left", reason=errors.REFUND_EXCEEDS_PAYMENT
        )
    param = getattr(error, "param", None)
    if isinstance(error, stripe.InvalidRequestError) and param in _FIELDS:
        return InvalidArgument({_FIELDS[param]: error.user_message or "refused by Stripe"})
    return FailedPrecondition(
        f"Stripe refused to {doing}: {error.user_message or 'invalid request'}",
        reason=errors.PROVIDER_REFUSED,
    )


class StripeProvider:
    def __init__(self, api_key: str, *, api_base: str = "", timeout: float = 8.0) -> None:
        self._timeout = timeout
        self._http = stripe.HTTPXClient(timeout=timeout)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=self._http,
            max_network_retries=0,  # the caller retries, within its own deadline
        )
        self._intents = self._client.v1.payment_intents
        self._refunds = self._client.v1.refunds

    @asynccontextmanager
    async def _bounded(self, doing: str) -> AsyncIterator[None]:
        """One method's Stripe calls, within the time budget, errors translated."""
        try:
            async with asyncio.timeout(self._timeout):
                yield
        except TimeoutError:
            log.warning("Stripe did not answer in time", extra={"doing": doing})
            raise Unavailable("Stripe did not answer in time; try again") from None
        except stripe.StripeError as error:
            raise _translate(error, doing) from None

    async def create_intent(
        self,
        order_id: uuid.UUID,
        amount_cents: int,
        currency: str,
        idempotency_key: str,
        user_id: uuid.UUID | None = None,
    ) -> CreatedIntent:
        metadata = {"order_id": str(order_id)}
        if user_id is not None:
            metadata["user_id"] = str(user_id)
        async with self._bounded("create a payment intent"):
            intent = await self._intents.create_async(
                {"amount": amount_cents, "currency": currency.lower(), "metadata": metadata},
                {"idempotency_key": stripe_key("intent", idempotency_key)},
            )
        return CreatedIntent(
            id=intent.id,
            client_secret=intent.client_secret or "",
            status=INTENT_STATUS.get(intent.status, PENDING),
        )

    async def confirm(self, intent_id: str, payment_method_id: str) -> Outcome:
        """Attach, then confirm: confirming with `payment_method` in one call is what Stripe
        documents, but localstripe answers it with a 500; two calls work on both."""
        async with self._bounded("confirm a payment"):
            try:
                intent = await self._intents.update_async(
                    intent_id, {"payment_method": payment_method_id}
                )
                if intent.status == "requires_payment_method":
                    # With a method attached only an intent that keeps its declined charge
                    # stays here (localstripe; Stripe moves on to requires_confirmation).
                    raise IntentNotReusable(intent_id)
                if intent.status == "requires_confirmation":
                    intent = await self._intents.confirm_async(intent_id)
            except stripe.CardError as declined:
                return _declined(declined)
            except stripe.InvalidRequestError as refused:
                if refused.code == "payment_intent_unexpected_state":
                    # Paid or cancelled meanwhile (e.g. through Stripe.js): say where it is.
                    return outcome_of((await self._intents.retrieve_async(intent_id)).to_dict())
                if refused.http_status == 404:  # the method (we hold the intent)
                    raise InvalidArgument({"payment_method_id": "no such payment method"}) from None
                raise
        return outcome_of(intent.to_dict())

    async def cancel(self, intent_id: str) -> Outcome:
        async with self._bounded("cancel a payment intent"):
            try:
                intent = await self._intents.cancel_async(intent_id)
            except stripe.InvalidRequestError as refused:
                if refused.http_status == 404:
                    raise
                # No longer cancellable (paid, processing, cancelled already): say where it
                # stands and let the caller decide.
                intent = await self._intents.retrieve_async(intent_id)
        return outcome_of(intent.to_dict())

    async def retrieve(self, intent_id: str) -> Outcome:
        async with self._bounded("read a payment intent"):
            intent = await self._intents.retrieve_async(intent_id)
        return outcome_of(intent.to_dict())

    async def refund(
        self, intent_id: str, amount_cents: int, idempotency_key: str, order_id: uuid.UUID
    ) -> ProviderRefund:
        async with self._bounded("refund a payment"):
            refund = await self._refunds.create_async(
                {
                    "payment_intent": intent_id,
                    "amount": amount_cents,
                    "metadata": {"order_id": str(order_id)},
                },
                {"idempotency_key": stripe_key("refund", idempotency_key)},
            )
        return ProviderRefund(id=refund.id, status=REFUND_STATUS.get(refund.status or "", PENDING))

    async def close(self) -> None:
        await self._http.close_async()
