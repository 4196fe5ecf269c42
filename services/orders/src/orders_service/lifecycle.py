"""An order's life after checkout: payment outcomes, paying, cancelling, fulfilment, expiry.

Every change locks the order's row first (records.lock_order) and makes the partner calls it
needs while holding it, so two changes of one order never interleave: a payment racing the
expiry sweeper, a payment event racing a cancel. Payment outcomes arrive as events
(`payments.*`, applied once each through the inbox) and, for PayOrder, straight from
ConfirmPayment; both go through `_paid`, so the second report of one payment changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from ecom_runtime.auth import Principal
from ecom_runtime.db import Database, UnitOfWork
from ecom_runtime.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from ecommerce.events.v1 import events_pb2
from ecommerce.payments.v1 import payments_pb2
from sqlalchemy import Row, exists, func, select, update

from orders_service import errors, idempotency, records
from orders_service.partners import Catalog, Payments
from orders_service.store import (
    AWAITING_PAYMENT,
    CANCELLED,
    DELIVERED,
    FULFILLED,
    PAID,
    PAYMENT_FAILED,
    PENDING_PAYMENT,
    REFUNDED,
    REVENUE_STATUSES,
    checkouts,
    orders,
)

log = logging.getLogger("orders.lifecycle")

# Fulfilment, the only moves an admin makes by hand: target -> the status it must come from.
FULFILMENT = {FULFILLED: PAID, DELIVERED: FULFILLED}
MAX_REASON = 500
LATE_PAYMENT_NOTE = "payment arrived after the order was cancelled; refunded automatically"


def refund_key(order_id: uuid.UUID) -> str:
    """One key for "refund all of a cancelled order": a cancel and a late payment racing it
    cannot refund twice."""
    return f"cancel:{order_id}"


class Lifecycle:
    def __init__(self, db: Database, catalog: Catalog, payments: Payments) -> None:
        self.db = db
        self.catalog = catalog
        self.payments = payments

    # -- payment outcomes ------------------------------------------------------------------

    async def on_payment_succeeded(self, tx: UnitOfWork, event: Any) -> None:
        order = await _locked_for_event(tx, event.order_id)
        if order is not None:
            await self._paid(tx, order)

    async def on_payment_failed(self, tx: UnitOfWork, event: Any) -> None:
        order = await _locked_for_event(tx, event.order_id)
        if order is not None and order.status == PENDING_PAYMENT:
            await records.move(tx.conn, order, PAYMENT_FAILED)

    async def on_refund_succeeded(self, tx: UnitOfWork, event: Any) -> None:
        order = await _locked_for_event(tx, event.order_id)
        if order is None:
            return
        refunded = min(max(order.refunded_cents, event.total_refunded_cents), order.total_cents)
        if event.fully_refunded and order.status in REVENUE_STATUSES:
            await records.move(tx.conn, order, REFUNDED, refunded_cents=refunded)
        else:  # partial, or a cancelled order's refund: the status stays
            await tx.conn.execute(
                update(orders)
                .where(orders.c.id == order.id)
                .values(refunded_cents=refunded, updated_at=func.now())
            )

    async def _paid(self, tx: UnitOfWork, order: Row[Any]) -> None:
        if order.status in AWAITING_PAYMENT:
            try:
                await self.catalog.commit(order.id)
            except FailedPrecondition:
                # The stock hold ended before the money came (this service was down past the
                # catalog's own expiry): the order cannot be kept, the money goes back below.
                await self._expire(tx, order)
                order = (await records.lock_order(tx.conn, order.id)) or order
            else:
                await records.move(tx.conn, order, PAID)
                items = await records.items_of(tx.conn, order.id)
                tx.add(
                    events_pb2.OrderPaid(
                        order_id=str(order.id),
                        user_id=str(order.user_id),
                        items=records.event_lines(items),
                        total_cents=order.total_cents,
                        currency=order.currency,
                        payment_intent_id=order.payment_intent_id or "",
                    )
                )
                return
        if order.status == CANCELLED:
            # The money came after the order was given up (its reservation expired while the
            # payment could not be cancelled, or it raced a cancel): give it back, and say so.
            try:
                await self.payments.refund_all(order.id, refund_key(order.id), LATE_PAYMENT_NOTE)
            except FailedPrecondition:
                return  # nothing left to refund: the cancel found the payment and refunded it
            await records.annotate(tx.conn, order, LATE_PAYMENT_NOTE)
            log.warning("order %s: payment after cancellation, refunded", order.id)
        # Otherwise it is paid already: the second report of the same payment.

    # -- the customer's acts ---------------------------------------------------------------

    async def pay(
        self, user_id: uuid.UUID, order_id: uuid.UUID, payment_method_id: str, key: str
    ) -> records.OrderRecord:
        """Confirms the order's payment (API.md: POST /api/orders/{id}/pay)."""
        _check_payment_method(payment_method_id)
        replay = False
        if key:
            async with self.db.begin() as tx:
                print_ = idempotency.fingerprint("pay", [str(order_id), payment_method_id])
                replay = (
                    await idempotency.claim(tx.conn, user_id, key, print_, order_id) is not None
                )
        declined = None
        async with self.db.begin() as tx:
            order = await records.lock_order(tx.conn, order_id)
            if order is None or order.user_id != user_id:
                raise NotFound("no such order")
            if not (replay and order.status not in AWAITING_PAYMENT):
                _check_payable(order)
                outcome = await self.payments.confirm(order.payment_intent_id, payment_method_id)
                if outcome.succeeded:
                    await self._paid(tx, order)
                elif outcome.status == payments_pb2.PAYMENT_STATUS_REQUIRES_ACTION:
                    raise FailedPrecondition(
                        "the payment needs the customer's action (e.g. 3-D Secure): complete it"
                        " with Stripe.js and the order's client secret",
                        reason=errors.PAYMENT_REQUIRES_ACTION,
                    )
                else:
                    declined = outcome
                    if order.status == PENDING_PAYMENT:
                        await records.move(tx.conn, order, PAYMENT_FAILED)
            record = await records.get(tx.conn, order_id)
        if declined is not None:  # after the commit: the order stays PAYMENT_FAILED
            raise FailedPrecondition(
                f"the card was declined: {declined.failure_message or 'no reason given'};"
                " pay again with another method",
                reason=errors.CARD_DECLINED,
                metadata={"decline_code": declined.failure_code or "card_declined"},
            )
        assert record is not None
        return record

    async def cancel(
        self, principal: Principal, order_id: uuid.UUID, reason: str
    ) -> records.OrderRecord:
        if len(reason) > MAX_REASON:
            raise InvalidArgument({"reason": f"must be at most {MAX_REASON} characters"})
        by = "admin" if principal.is_admin else "customer"
        async with self.db.begin() as tx:
            order = await records.lock_order(tx.conn, order_id)
            if order is None or not may_see(principal, order):
                raise NotFound("no such order")
            if order.status != CANCELLED:
                if order.status not in (*AWAITING_PAYMENT, PAID):
                    raise FailedPrecondition(
                        f"an order in {order.status} cannot be cancelled",
                        reason=errors.ILLEGAL_TRANSITION,
                    )
                await self._cancel(tx, order, by=by, reason=reason.strip())
            record = await records.get(tx.conn, order_id)
        assert record is not None
        return record

    async def _cancel(self, tx: UnitOfWork, order: Row[Any], *, by: str, reason: str) -> None:
        """Cancels a locked order awaiting payment or paid: the payment can no longer be made
        (or is refunded in full), the stock goes back."""
        paid = order.status == PAID
        if not paid and order.payment_intent_id:
            paid = await self.payments.cancel(order.payment_intent_id)  # True: paid just now
        if paid:  # refund first: a refund that fails leaves the order paid and whole
            await self.payments.refund_all(order.id, refund_key(order.id), f"cancelled by {by}")
        await self.catalog.release(order.id)
        await records.move(tx.conn, order, CANCELLED, note=_note(by, reason))
        await _announce_cancelled(tx, order, by, reason, refund_requested=paid)

    # -- admin -----------------------------------------------------------------------------

    async def set_status(self, order_id: uuid.UUID, status: str) -> records.OrderRecord:
        if status not in FULFILMENT:
            raise FailedPrecondition(
                f"admins move orders along fulfilment only (to {' or '.join(FULFILMENT)});"
                " payments, cancellation and refunds set the other statuses",
                reason=errors.ILLEGAL_TRANSITION,
            )
        async with self.db.begin() as tx:
            order = await records.lock_order(tx.conn, order_id)
            if order is None:
                raise NotFound("no such order")
            if order.status != status:
                if FULFILMENT[status] != order.status:
                    raise FailedPrecondition(
                        f"an order in {order.status} cannot become {status}",
                        reason=errors.ILLEGAL_TRANSITION,
                    )
                await records.move(tx.conn, order, status)
            record = await records.get(tx.conn, order_id)
        assert record is not None
        return record

    # -- expiry ----------------------------------------------------------------------------

    async def expire_unpaid(self, limit: int = 100) -> int:
        """Cancels orders whose reservation ran out unpaid; their stock goes back. One order
        per transaction, skipping any another process is working on."""
        expired = 0
        skipped: list[uuid.UUID] = []
        for _ in range(limit):
            async with self.db.begin() as tx:
                order = (
                    await tx.conn.execute(
                        select(orders)
                        .where(
                            orders.c.status.in_(AWAITING_PAYMENT),
                            orders.c.expires_at <= func.now(),
                            orders.c.id.not_in(skipped),
                            # A checkout still under way is its saga's to finish or undo.
                            ~exists().where(checkouts.c.id == orders.c.id),
                        )
                        .order_by(orders.c.expires_at)
                        .limit(1)
                        .with_for_update(skip_locked=True)
                    )
                ).first()
                if order is None:
                    break
                if order.payment_intent_id and not await self._payment_stopped(order):
                    skipped.append(order.id)
                    continue
                await self._expire(tx, order)
                expired += 1
        return expired

    async def _payment_stopped(self, order: Row[Any]) -> bool:
        """Stops an expiring order's payment. False when it went through at the last moment
        or is still processing: then its outcome decides (a PaymentSucceeded makes the order
        PAID; the catalog holds the stock a minute longer than we wait)."""
        try:
            return not await self.payments.cancel(order.payment_intent_id)
        except FailedPrecondition:
            return False
        except Unavailable:
            # The stock must come back on time all the same; should the payment still go
            # through, it is refunded when its success arrives (_paid).
            log.warning("order %s expired while payments was unreachable", order.id)
            return True

    async def _expire(self, tx: UnitOfWork, order: Row[Any]) -> None:
        await self.catalog.release(order.id)
        await records.move(tx.conn, order, CANCELLED, note="reservation expired unpaid")
        await _announce_cancelled(tx, order, "expired", "reservation expired unpaid")


async def _announce_cancelled(
    tx: UnitOfWork, order: Row[Any], by: str, reason: str, *, refund_requested: bool = False
) -> None:
    items = await records.items_of(tx.conn, order.id)
    tx.add(
        events_pb2.OrderCancelled(
            order_id=str(order.id),
            user_id=str(order.user_id),
            items=records.event_lines(items),
            total_cents=order.total_cents,
            currency=order.currency,
            refund_requested=refund_requested,
            cancelled_by=by,
            reason=reason,
        )
    )


def may_see(principal: Principal, order: Row[Any]) -> bool:
    """Customers see their own orders; admins every order."""
    return principal.is_admin or principal.user_id == str(order.user_id)


def _note(by: str, reason: str) -> str:
    return f"cancelled by {by}" + (f": {reason}" if reason else "")


def _check_payment_method(payment_method_id: str) -> None:
    if not payment_method_id.strip():
        raise InvalidArgument({"payment_method_id": "is required"})
    if not payment_method_id.startswith("pm_") or len(payment_method_id) > 255:
        raise InvalidArgument(
            {"payment_method_id": 'must be a Stripe payment method id ("pm_...")'}
        )


def _check_payable(order: Row[Any]) -> None:
    if order.status not in AWAITING_PAYMENT:
        raise FailedPrecondition(
            f"an order in {order.status} cannot be paid", reason=errors.ORDER_NOT_PAYABLE
        )
    if order.expires_at <= datetime.now(UTC):
        raise FailedPrecondition(
            "the order's reservation has expired; it is being cancelled",
            reason=errors.RESERVATION_EXPIRED,
        )
    if not order.payment_intent_id:
        raise FailedPrecondition("the order has no payment yet", reason=errors.ORDER_NOT_PAYABLE)


async def _locked_for_event(tx: UnitOfWork, order_id: str) -> Row[Any] | None:
    try:
        found = await records.lock_order(tx.conn, uuid.UUID(order_id))
    except ValueError:
        found = None
    if found is None:
        log.warning("payment event for unknown order %r ignored", order_id)
    return found
