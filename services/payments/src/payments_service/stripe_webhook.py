"""Stripe's webhook deliveries: verified, then read into the provider events payments applies.

The signature (`Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`) is
checked by the stripe SDK over the body's exact bytes, against each configured endpoint secret
(STRIPE_WEBHOOK_SECRET, comma-separated: during a rotation both the old and the new secret
verify). A delivery more than 300 s old, or as far ahead, is refused, so a captured one cannot
be replayed later. Nothing is read from the body before its signature checks out.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import stripe
from ecom_runtime.errors import InvalidArgument

from payments_service.provider import IntentChanged, Outcome, ProviderEvent, RefundsChanged
from payments_service.store import CANCELED, FAILED, PENDING, SUCCEEDED
from payments_service.stripe_provider import REFUND_STATUS, outcome_of

log = logging.getLogger("payments.webhook")

TOLERANCE_SECONDS = 300
SIGNATURE = "Stripe-Signature"  # the field a refusal names: the header, as clients know it
BODY = "body"
_REFUND_EVENTS = {"charge.refunded", "refund.created", "refund.updated", "charge.refund.updated"}


class StripeWebhook:
    def __init__(self, secrets: str) -> None:
        self._secrets = [s.strip() for s in secrets.split(",") if s.strip()]
        if not self._secrets:
            log.warning("STRIPE_WEBHOOK_SECRET is not set: Stripe's webhook deliveries are refused")

    def verify(self, payload: bytes, signature: str) -> ProviderEvent:
        """The delivery's event, or INVALID_ARGUMENT naming `Stripe-Signature` or `body`."""
        if not self._secrets:
            raise InvalidArgument({SIGNATURE: "cannot be verified: no webhook secret is set"})
        if not signature:
            raise InvalidArgument({SIGNATURE: "is required"})
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument({BODY: "must be UTF-8 JSON"}) from None
        if not any(_signed(text, signature, secret) for secret in self._secrets):
            why = f"is not a signature of this body from the last {TOLERANCE_SECONDS} s"
            raise InvalidArgument({SIGNATURE: why})
        try:
            values = json.loads(text)
        except ValueError:
            raise InvalidArgument({BODY: "is not JSON"}) from None
        return _event(values)


def _signed(text: str, signature: str, secret: str) -> bool:
    try:
        stripe.WebhookSignature.verify_header(text, signature, secret, TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError:
        return False
    # The SDK refuses old timestamps only; one far ahead would stay replayable for as long.
    return _timestamp(signature) <= time.time() + TOLERANCE_SECONDS


def _timestamp(signature: str) -> int:
    for item in signature.split(","):
        name, _, value = item.partition("=")
        if name.strip() == "t" and value.strip().isdigit():
            return int(value)
    return 0


def _event(values: Any) -> ProviderEvent:
    """The fields payments acts on; an event of a type it ignores has no `change`."""
    if not isinstance(values, dict):
        raise InvalidArgument({BODY: "is not a Stripe event"})
    event_id, kind, data = values.get("id"), values.get("type"), values.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not (isinstance(event_id, str) and event_id and isinstance(kind, str)):
        raise InvalidArgument({BODY: "is not a Stripe event (id and type are required)"})
    if not isinstance(obj, dict):
        return ProviderEvent(event_id, kind, None)
    return ProviderEvent(event_id, kind, _change(kind, obj))


def _change(kind: str, obj: Mapping[str, Any]) -> IntentChanged | RefundsChanged | None:
    if kind.startswith("payment_intent.") and _id(obj):
        outcome = _intent_outcome(kind, obj)
        return None if outcome is None else IntentChanged(_id(obj), outcome)
    if kind in _REFUND_EVENTS:
        intent_id = obj.get("payment_intent")
        found = obj.get("refunds") if kind == "charge.refunded" else {"data": [obj]}
        # Recent API versions leave a charge's refund list out; refund.updated covers them.
        listed = found.get("data") if isinstance(found, dict) else None
        refunds = tuple(
            (refund["id"], REFUND_STATUS.get(str(refund.get("status")), PENDING))
            for refund in (listed if isinstance(listed, list) else [])
            if isinstance(refund, dict) and _id(refund)
        )
        return RefundsChanged(intent_id if isinstance(intent_id, str) else "", refunds)
    return None


def _intent_outcome(kind: str, intent: Mapping[str, Any]) -> Outcome | None:
    if kind == "payment_intent.succeeded":
        return Outcome(status=SUCCEEDED)
    if kind == "payment_intent.canceled":
        return Outcome(status=CANCELED)
    if kind == "payment_intent.payment_failed":
        outcome = outcome_of(intent)
        if outcome.status == FAILED:
            return outcome
        return Outcome(FAILED, failure_code="payment_failed", failure_message="The payment failed.")
    return None  # created, processing, requires_action...: nothing to record


def _id(obj: Mapping[str, Any]) -> str:
    value = obj.get("id")
    return value if isinstance(value, str) else ""
