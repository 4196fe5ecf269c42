"""Payments: one per order, a Stripe PaymentIntent behind it, and its refunds.

Idempotency is ours, not Stripe's (localstripe ignores idempotency keys, and a timed-out call
to Stripe may or may not have happened): a payment row exists before its intent, and every
change takes the row's lock and calls Stripe while holding it (locks.py). Outcomes are
published through the outbox in the same transaction that records them: PaymentSucceeded
once per payment, PaymentFailed once per declined charge, RefundSucceeded once per refund.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ecom_runtime.db import Database, UnitOfWork
from ecom_runtime.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    NotFound,
    Unavailable,
)
from ecom_runtime.validation import Violations
from ecommerce.events.v1 import events_pb2
from sqlalchemy import Row, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from payments_service import errors
from payments_service.locks import lock_payment, lock_refund_key
from payments_service.provider import (
    IntentChanged,
    IntentNotReusable,
    Outcome,
    PaymentProvider,
    ProviderEvent,
    RefundsChanged,
)
from payments_service.store import (
    CANCELED,
    FAILED,
    PENDING,
    REQUIRES_ACTION,
    SUCCEEDED,
    payment_attempts,
    payments,
    refunds,
)

log = logging.getLogger("payments")

CURRENCY = re.compile(r"[A-Z]{3}")
MAX_KEY = 255  # idempotency keys, as the proto says
MAX_ID = 255  # Stripe ids we are handed
MAX_REASON = 500


@dataclass(frozen=True)
class CreatedIntent:
    payment_intent_id: str
    client_secret: str


@dataclass(frozen=True)
class RefundView:
    id: str
    order_id: uuid.UUID
    payment_intent_id: str
    amount_cents: int
    currency: str
    status: str
    total_refunded_cents: int
    created_at: datetime


@dataclass(frozen=True)
class RefundRequest:
    """How a refund request names its fields (orders' internal RPC, or the admin's REST route),
    and the prefix that keeps one caller's idempotency keys from ever matching another's."""

    order_id: str = "order_id"
    idempotency_key: str = "idempotency_key"
    key_prefix: str = ""


ADMIN_REFUND = RefundRequest(order_id="id", idempotency_key="Idempotency-Key", key_prefix="admin:")
# Payments the webhook or reconciliation may still move (a declined one may be paid later).
UNSETTLED = (PENDING, REQUIRES_ACTION, FAILED)


class Payments:
    def __init__(self, db: Database, provider: PaymentProvider) -> None:
        self.db = db
        self._provider = provider

    # -- intents ---------------------------------------------------------------------------

    async def create_intent(
        self, order_id: str, amount_cents: int, currency: str, idempotency_key: str, user_id: str
    ) -> CreatedIntent:
        """The order's intent, made once per idempotency key however many calls race."""
        violations = Violations()
        oid = _uuid_field(violations, "order_id", order_id, required=True)
        uid = _uuid_field(violations, "user_id", user_id, required=False)
        if amount_cents < 1:
            violations.add("amount_cents", "must be at least 1")
        if not CURRENCY.fullmatch(currency):
            violations.add("currency", "must be an ISO 4217 code in upper case, e.g. USD")
        violations.check_length("idempotency_key", idempotency_key, 1, MAX_KEY)
        violations.raise_if_any()
        assert oid is not None
        async with self.db.begin() as tx:
            # Insert-or-get, then lock: a concurrent call with the key waits here until this
            # one has its intent, then finds it.
            await tx.conn.execute(
                pg_insert(payments)
                .values(
                    id=uuid.uuid4(),
                    order_id=oid,
                    user_id=uid,
                    amount_cents=amount_cents,
                    currency=currency,
                    idempotency_key=idempotency_key,
                )
                .on_conflict_do_nothing()
            )
            row = await lock_payment(tx.conn, payments.c.idempotency_key == idempotency_key)
            if row is None:  # the order's payment was made with another key
                raise AlreadyExists(
                    {"order_id": "already has a payment intent, made with another idempotency_key"}
                )
            _same_request(row, oid, amount_cents, currency)
            if row.payment_intent_id is not None:
                return CreatedIntent(row.payment_intent_id, row.client_secret or "")
            intent = await self._provider.create_intent(
                oid, amount_cents, currency, idempotency_key, uid
            )
            await _set(
                tx,
                row.id,
                payment_intent_id=intent.id,
                stripe_intent_id=intent.id,
                client_secret=intent.client_secret,
                status=intent.status,
            )
        return CreatedIntent(intent.id, intent.client_secret)

    async def confirm(self, payment_intent_id: str, payment_method_id: str) -> Outcome:
        """Charges the payment method unless the payment already succeeded; a decline is an
        outcome (FAILED), and the payment may be confirmed again with another method."""
        violations = Violations()
        violations.check_length("payment_intent_id", payment_intent_id, 1, MAX_ID)
        violations.check_length("payment_method_id", payment_method_id, 1, MAX_ID)
        violations.raise_if_any()
        async with self.db.begin() as tx:
            row = await self._locked_by_intent(tx, payment_intent_id)
            if row.status == SUCCEEDED:
                return Outcome(status=SUCCEEDED)
            if row.status == CANCELED:
                raise FailedPrecondition(
                    "this payment intent was cancelled", reason=errors.PAYMENT_CANCELED
                )
            intent_id = row.stripe_intent_id
            try:
                outcome = await self._provider.confirm(intent_id, payment_method_id)
            except IntentNotReusable:
                intent_id = await self._fresh_intent(tx, row)
                outcome = await self._provider.confirm(intent_id, payment_method_id)
            await self._record(tx, row, intent_id, payment_method_id, outcome)
        return outcome

    async def cancel(self, payment_intent_id: str) -> str:
        """Cancels an unpaid payment's intent; the status it ends in (CANCELED)."""
        violations = Violations()
        violations.check_length("payment_intent_id", payment_intent_id, 1, MAX_ID)
        violations.raise_if_any()
        async with self.db.begin() as tx:
            row = await self._locked_by_intent(tx, payment_intent_id)
            if row.status == CANCELED:
                return CANCELED
            if row.status == SUCCEEDED:
                raise _already_paid()
            outcome = await self._provider.cancel(row.stripe_intent_id)
            if outcome.status == CANCELED:
                await _set(tx, row.id, status=CANCELED)
                return CANCELED
            if outcome.status == SUCCEEDED:  # paid meanwhile, through Stripe.js: record it
                await _set(tx, row.id, status=SUCCEEDED, failure_code=None, failure_message=None)
                await _announce_success(tx, row)
        if outcome.status == SUCCEEDED:
            raise _already_paid()
        if outcome.status == PENDING:
            raise FailedPrecondition(
                "Stripe is still processing this payment; try again shortly",
                reason=errors.PAYMENT_PROCESSING,
            )
        raise FailedPrecondition(
            "Stripe refused to cancel this payment intent", reason=errors.PROVIDER_REFUSED
        )

    async def _locked_by_intent(self, tx: UnitOfWork, intent_id: str) -> Row[Any]:
        row = await lock_payment(tx.conn, _named_by(intent_id))
        if row is None:
            raise NotFound("no such payment intent")
        return row

    async def _fresh_intent(self, tx: UnitOfWork, row: Row[Any]) -> str:
        """Moves a payment whose declined intent cannot be confirmed again onto a new intent
        (same order, amount and metadata), and cancels the old one after the commit so its
        client secret can no longer pay. The payment keeps the id orders knows it by."""
        stale = row.stripe_intent_id
        fresh = await self._provider.create_intent(
            row.order_id,
            row.amount_cents,
            row.currency,
            f"{row.idempotency_key}:after:{stale}",
            row.user_id,
        )
        await _set(tx, row.id, stripe_intent_id=fresh.id, client_secret=fresh.client_secret)
        self._cancel_after_commit(tx, stale)
        return fresh.id

    def _cancel_after_commit(self, tx: UnitOfWork, intent_id: str) -> None:
        """Cancels an intent the payment has left, once that is committed, so its client
        secret can no longer pay."""

        async def cancel_replaced() -> None:
            outcome = await self._provider.cancel(intent_id)
            if outcome.status != CANCELED:
                log.warning("a replaced payment intent is still open", extra={"intent": intent_id})

        tx.on_commit(cancel_replaced)

    async def _record(
        self, tx: UnitOfWork, row: Row[Any], intent_id: str, method: str, outcome: Outcome
    ) -> None:
        """Stores a confirmation's outcome and publishes what orders acts on."""
        attempt_id = uuid.uuid4()
        await tx.conn.execute(
            insert(payment_attempts).values(
                id=attempt_id,
                payment_id=row.id,
                stripe_intent_id=intent_id,
                payment_method_id=method,
                outcome=outcome.status,
                failure_code=outcome.failure_code or None,
                decline_code=outcome.decline_code or None,
            )
        )
        if outcome.status == FAILED:
            await _set(
                tx,
                row.id,
                status=FAILED,
                failure_code=outcome.failure_code,
                failure_message=outcome.failure_message,
            )
            # Once per declined charge, however it is learned (here, later the webhook).
            await _announce_failure(tx, row, outcome, outcome.charge_id or str(attempt_id))
            return
        await _set(tx, row.id, status=outcome.status, failure_code=None, failure_message=None)
        if outcome.status == SUCCEEDED:
            await _announce_success(tx, row)

    # -- what Stripe tells us --------------------------------------------------------------

    async def apply_event(self, event: ProviderEvent) -> None:
        """Applies a webhook event in the transaction that claims its id, so each event takes
        effect once however often and in whatever order it is delivered. Events about intents
        or refunds that are not ours, and types we do not act on, change nothing."""
        change = event.change
        if change is None:
            return
        async with self.db.begin() as tx:
            if isinstance(change, IntentChanged):
                row = await lock_payment(tx.conn, _named_by(change.intent_id))
            else:
                row = await _locked_by_refunds(tx, change)
            if row is None or not await tx.claim_once("stripe-event", event.id):
                return
            if isinstance(change, IntentChanged):
                await self._apply_outcome(tx, row, change.intent_id, change.outcome)
            else:
                for refund_id, status in change.refunds:
                    await _settle_refund(tx, row, refund_id, status)

    async def reconcile(self, older_than_seconds: float, limit: int = 100) -> int:
        """Asks Stripe about payments left without an outcome (or declined: the customer may
        have paid since, through Stripe.js) for `older_than_seconds`, and records what it says
        as the webhook would have: a lost webhook leaves no paid order unpaid. One payment per
        transaction, at most `limit` a round, skipping rows another process holds; a payment
        is asked about again `older_than_seconds` after the last time. Returns how many moved."""
        moved = 0
        seen: list[uuid.UUID] = []
        last_touched = func.greatest(payments.c.updated_at, payments.c.checked_at)
        for _ in range(limit):
            async with self.db.begin() as tx:
                row = (
                    await tx.conn.execute(
                        select(payments)
                        .where(
                            payments.c.status.in_(UNSETTLED),
                            payments.c.stripe_intent_id.is_not(None),
                            last_touched <= func.now() - timedelta(seconds=older_than_seconds),
                            payments.c.id.not_in(seen),
                        )
                        .order_by(last_touched)
                        .limit(1)
                        .with_for_update(skip_locked=True)
                    )
                ).first()
                if row is None:
                    break
                seen.append(row.id)
                await tx.conn.execute(
                    update(payments).where(payments.c.id == row.id).values(checked_at=func.now())
                )
                try:
                    outcome = await self._provider.retrieve(row.stripe_intent_id)
                except Unavailable:
                    raise  # Stripe is down: the next round tries again
                except DomainError:  # e.g. an intent Stripe no longer knows: asked again later
                    log.warning("cannot reconcile a payment", extra={"payment": str(row.id)})
                    continue
                if await self._apply_outcome(tx, row, row.stripe_intent_id, outcome):
                    moved += 1
        if moved:
            log.info("payments reconciled with Stripe", extra={"count": moved})
        return moved

    async def _apply_outcome(
        self, tx: UnitOfWork, row: Row[Any], intent_id: str, outcome: Outcome
    ) -> bool:
        """Records what Stripe says of one of the payment's intents, as a confirmation would
        have; True if the payment moved. A success always counts (money was taken, even on an
        intent the payment had left: it moves back onto it, so refunds reach the money, and
        the open one is cancelled) and is announced once. Anything else counts only for the
        intent the payment is on, and never after a success or a cancellation: a late
        `payment_failed` cannot undo a payment, a replaced intent's cancel cannot cancel it."""
        if outcome.status == SUCCEEDED:
            if row.status == SUCCEEDED:
                if intent_id != row.stripe_intent_id:
                    log.error("a payment was charged twice", extra={"intent": intent_id})
                return False
            await _set(tx, row.id, status=SUCCEEDED, failure_code=None, failure_message=None)
            if intent_id != row.stripe_intent_id:
                await _set(tx, row.id, stripe_intent_id=intent_id)
                self._cancel_after_commit(tx, row.stripe_intent_id)
            await _announce_success(tx, row)
            return True
        if intent_id != row.stripe_intent_id or row.status in (SUCCEEDED, CANCELED):
            return False
        if outcome.status == FAILED:
            failure = (FAILED, outcome.failure_code, outcome.failure_message)
            if (row.status, row.failure_code, row.failure_message) != failure:
                await _set(
                    tx,
                    row.id,
                    status=FAILED,
                    failure_code=outcome.failure_code,
                    failure_message=outcome.failure_message,
                )
            # Once per declined charge; without a charge id, once per move into FAILED.
            if outcome.charge_id or row.status != FAILED:
                await _announce_failure(tx, row, outcome, outcome.charge_id or str(uuid.uuid4()))
            return row.status != FAILED
        if outcome.status == CANCELED or (row.status != FAILED and outcome.status != row.status):
            await _set(tx, row.id, status=outcome.status)  # cancelled; PENDING <-> REQUIRES_ACTION
            return True
        return False

    # -- refunds ---------------------------------------------------------------------------

    async def refund(
        self,
        order_id: str,
        amount_cents: int | None,
        idempotency_key: str,
        reason: str,
        names: RefundRequest = RefundRequest(),
    ) -> RefundView:
        """Refunds part or all of what is left of an order's payment, once per key: the one
        refund path, for orders (RefundPayment) and admins (RefundOrder) alike."""
        violations = Violations()
        oid = _uuid_field(violations, names.order_id, order_id, required=True)
        if amount_cents is not None and amount_cents < 1:
            violations.add("amount_cents", "must be at least 1 (or absent to refund all)")
        violations.check_length(names.idempotency_key, idempotency_key, 1, MAX_KEY)
        if len(reason) > MAX_REASON:
            violations.add("reason", f"must be at most {MAX_REASON} characters")
        violations.raise_if_any()
        assert oid is not None
        idempotency_key = names.key_prefix + idempotency_key
        async with self.db.begin() as tx:
            await lock_refund_key(tx.conn, idempotency_key)
            row = await lock_payment(tx.conn, payments.c.order_id == oid)
            done = (
                await tx.conn.execute(
                    select(refunds).where(refunds.c.idempotency_key == idempotency_key)
                )
            ).first()
            if done is not None:  # a retry: the same answer, nothing refunded again
                _same_refund(done, oid, amount_cents, names)
                assert row is not None
                return _refund_view(done, row.refunded_cents)
            if row is None or row.status != SUCCEEDED:
                raise FailedPrecondition(
                    "the order has no successful payment",
                    [(errors.NOT_PAID, str(oid), "nothing was paid, so nothing can be refunded")],
                )
            left = row.amount_cents - row.refunded_cents
            amount = left if amount_cents is None else amount_cents
            if amount > left or left == 0:
                raise FailedPrecondition(
                    f"{left} cents are left to refund",
                    [(errors.REFUND_EXCEEDS_PAYMENT, str(oid), f"{left} cents left to refund")],
                )
            made = await self._provider.refund(row.stripe_intent_id, amount, idempotency_key, oid)
            total = row.refunded_cents + (0 if made.status == FAILED else amount)
            stored = (
                await tx.conn.execute(
                    insert(refunds)
                    .values(
                        id=made.id,
                        payment_id=row.id,
                        order_id=oid,
                        payment_intent_id=row.payment_intent_id,
                        amount_cents=amount,
                        currency=row.currency,
                        status=made.status,
                        idempotency_key=idempotency_key,
                        reason=reason,
                    )
                    .returning(refunds)
                )
            ).one()
            await _set(tx, row.id, refunded_cents=total)
            if made.status == SUCCEEDED:  # a pending one is announced when it settles
                await _announce_refund(tx, row, stored)
        return _refund_view(stored, total)


async def _locked_by_refunds(tx: UnitOfWork, change: RefundsChanged) -> Row[Any] | None:
    """The payment the refunds are of, locked: by the intent the event names (its lock waits
    for a refund being recorded right now), else by the refunds we hold."""
    if change.intent_id:
        row = await lock_payment(tx.conn, _named_by(change.intent_id))
        if row is not None:
            return row
    ids = [refund_id for refund_id, _ in change.refunds]
    if not ids:
        return None
    owner = select(refunds.c.payment_id).where(refunds.c.id.in_(ids)).limit(1)
    return await lock_payment(tx.conn, payments.c.id == owner.scalar_subquery())


async def _settle_refund(tx: UnitOfWork, row: Row[Any], refund_id: str, status: str) -> None:
    """A pending refund Stripe settled: a success is announced (once), a failure gives its
    amount back to what is left to refund. Refunds not ours, or settled already, are left."""
    if status not in (SUCCEEDED, FAILED):
        return
    settled = (
        await tx.conn.execute(
            update(refunds)
            .where(refunds.c.id == refund_id, refunds.c.payment_id == row.id)
            .where(refunds.c.status == PENDING)
            .values(status=status)
            .returning(refunds)
        )
    ).first()
    if settled is None:
        return
    if status == FAILED:
        await _set(tx, row.id, refunded_cents=payments.c.refunded_cents - settled.amount_cents)
    else:
        await _announce_refund(tx, row, settled)


async def _announce_failure(tx: UnitOfWork, row: Row[Any], outcome: Outcome, key: str) -> None:
    """PaymentFailed, once per `key` (the declined charge)."""
    if await tx.claim_once("payment-failed", key):
        tx.add(
            events_pb2.PaymentFailed(
                payment_intent_id=row.payment_intent_id,
                order_id=str(row.order_id),
                amount_cents=row.amount_cents,
                currency=row.currency,
                failure_code=outcome.failure_code,
                failure_message=outcome.failure_message,
            )
        )


async def _announce_refund(tx: UnitOfWork, payment: Row[Any], refund: Row[Any]) -> None:
    """RefundSucceeded, once per refund. Its totals count settled refunds only: what orders
    shows as refunded, and REFUNDED once they reach the amount paid."""
    if not await tx.claim_once("refund-succeeded", refund.id):
        return
    settled = await tx.conn.scalar(
        select(func.coalesce(func.sum(refunds.c.amount_cents), 0)).where(
            refunds.c.payment_id == payment.id, refunds.c.status == SUCCEEDED
        )
    )
    tx.add(
        events_pb2.RefundSucceeded(
            refund_id=refund.id,
            payment_intent_id=payment.payment_intent_id,
            order_id=str(payment.order_id),
            amount_cents=refund.amount_cents,
            currency=payment.currency,
            total_refunded_cents=int(settled or 0),
            fully_refunded=int(settled or 0) == payment.amount_cents,
        )
    )


async def _announce_success(tx: UnitOfWork, row: Row[Any]) -> None:
    """PaymentSucceeded, once per payment whoever learns of the success first."""
    if await tx.claim_once("payment-succeeded", row.payment_intent_id):
        tx.add(
            events_pb2.PaymentSucceeded(
                payment_intent_id=row.payment_intent_id,
                order_id=str(row.order_id),
                amount_cents=row.amount_cents,
                currency=row.currency,
            )
        )


def _named_by(intent_id: str) -> Any:
    """By the id orders knows, or by the intent now behind it (`_fresh_intent`)."""
    return or_(payments.c.payment_intent_id == intent_id, payments.c.stripe_intent_id == intent_id)


async def _set(tx: UnitOfWork, payment_id: uuid.UUID, **values: Any) -> None:
    await tx.conn.execute(
        update(payments).where(payments.c.id == payment_id).values(**values, updated_at=func.now())
    )


def _already_paid() -> FailedPrecondition:
    return FailedPrecondition(
        "this payment already succeeded; refund it instead", reason=errors.PAYMENT_SUCCEEDED
    )


def _same_request(row: Row[Any], order_id: uuid.UUID, amount_cents: int, currency: str) -> None:
    """A reused idempotency key must come with the request it was first used with."""
    differing = [
        (name, "differs from the first request with this idempotency_key")
        for name, first, now in (
            ("order_id", row.order_id, order_id),
            ("amount_cents", row.amount_cents, amount_cents),
            ("currency", row.currency, currency),
        )
        if first != now
    ]
    if differing:
        raise AlreadyExists(differing)


def _same_refund(
    done: Row[Any], order_id: uuid.UUID, amount_cents: int | None, names: RefundRequest
) -> None:
    if done.order_id != order_id:
        raise AlreadyExists({names.idempotency_key: "was used to refund another order"})
    if amount_cents is not None and amount_cents != done.amount_cents:
        raise AlreadyExists(
            {"amount_cents": f"differs from the refund made with this key ({done.amount_cents})"}
        )


def _refund_view(row: Row[Any], total_refunded_cents: int) -> RefundView:
    return RefundView(
        id=row.id,
        order_id=row.order_id,
        payment_intent_id=row.payment_intent_id,
        amount_cents=row.amount_cents,
        currency=row.currency,
        status=row.status,
        total_refunded_cents=total_refunded_cents,
        created_at=row.created_at,
    )


def _uuid_field(
    violations: Violations, name: str, value: str, *, required: bool
) -> uuid.UUID | None:
    if not value.strip():
        if required:
            violations.add(name, "is required")
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        violations.add(name, "must be a UUID")
        return None
