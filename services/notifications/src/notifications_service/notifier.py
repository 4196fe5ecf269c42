"""What is sent when: one handler per consumed event (each run by its JetStream consumer, once
per event thanks to the inbox), and the one way an email leaves, `_send`.

`_send` claims (event, recipient) in the inbox in a transaction of its own and commits it
after the send: a redelivered or replayed event writes again only to those who did not get it
(an alert to ten admins that failed on the seventh resumes at the seventh).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from ecom_runtime.db import Database, UnitOfWork
from ecommerce.events.v1 import events_pb2
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from notifications_service.accounts import Accounts, Contact
from notifications_service.mailers import Mailer
from notifications_service.store import order_owners
from notifications_service.templates import Templates

log = logging.getLogger("notifications")
SENT = "notifications-sent"  # inbox scope of (event id, recipient) claims


class OrderNotSeenYet(RuntimeError):
    """A payment event arrived before its order's OrderCreated: retried until it has."""


class Notifier:
    def __init__(
        self,
        db: Database,
        accounts: Accounts,
        mailer: Mailer,
        templates: Templates,
        reset_url: str,
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._mailer = mailer
        self._templates = templates
        self._reset_url = reset_url

    async def _send(self, event_id: str, template: str, to: Contact, **context: Any) -> None:
        email = self._templates.render(template, to.email, name=to.name, **context)
        async with self._db.begin() as tx:
            if await tx.claim_once(SENT, f"{event_id}:{to.email}"):
                await self._mailer.send(email)

    async def _customer(self, user_id: str) -> Contact | None:
        contact = await self._accounts.contact(user_id)
        if contact is None:
            log.info("no email: the account is gone", extra={"user_id": user_id})
        return contact

    async def _order_owner(self, tx: UnitOfWork, order_id: str) -> Contact | None:
        owner = (
            await tx.conn.execute(
                select(order_owners.c.user_id).where(order_owners.c.order_id == uuid.UUID(order_id))
            )
        ).scalar_one_or_none()
        if owner is None:
            raise OrderNotSeenYet(f"order {order_id} is not known here yet")
        return await self._customer(str(owner))

    # -- handlers, one per subject ----------------------------------------------------------

    async def welcome(self, tx: UnitOfWork, event: events_pb2.UserRegistered) -> None:
        to = Contact(event.user_id, event.email, event.name)
        await self._send(event.event_id, "welcome", to)

    async def password_reset(
        self, tx: UnitOfWork, event: events_pb2.PasswordResetRequested
    ) -> None:
        reset = await self._accounts.reset_token(event.event_id)
        if reset is None:
            log.info("no reset email: the request is used, expired or its account gone")
            return
        await self._send(
            event.event_id,
            "password_reset",
            reset.user,
            token=reset.token,
            reset_url=self._reset_url + reset.token,
            expires_at=reset.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
        )

    async def order_created(self, tx: UnitOfWork, event: events_pb2.OrderCreated) -> None:
        """No email: remembers whose order it is, for its payment and refund emails."""
        await tx.conn.execute(
            pg_insert(order_owners)
            .values(order_id=uuid.UUID(event.order_id), user_id=uuid.UUID(event.user_id))
            .on_conflict_do_nothing()
        )

    async def order_paid(self, tx: UnitOfWork, event: events_pb2.OrderPaid) -> None:
        if to := await self._customer(event.user_id):
            await self._send(
                event.event_id,
                "order_paid",
                to,
                order_id=event.order_id,
                items=list(event.items),
                total_cents=event.total_cents,
                currency=event.currency,
            )

    async def order_cancelled(self, tx: UnitOfWork, event: events_pb2.OrderCancelled) -> None:
        if to := await self._customer(event.user_id):
            await self._send(
                event.event_id,
                "order_cancelled",
                to,
                order_id=event.order_id,
                total_cents=event.total_cents,
                currency=event.currency,
                refund_requested=event.refund_requested,
                cancelled_by=event.cancelled_by,
                reason=event.reason,
            )

    async def payment_failed(self, tx: UnitOfWork, event: events_pb2.PaymentFailed) -> None:
        if to := await self._order_owner(tx, event.order_id):
            await self._send(
                event.event_id,
                "payment_failed",
                to,
                order_id=event.order_id,
                amount_cents=event.amount_cents,
                currency=event.currency,
                failure_message=event.failure_message,
            )

    async def refund_succeeded(self, tx: UnitOfWork, event: events_pb2.RefundSucceeded) -> None:
        """Only the refund that completes the order's: partial ones are an admin's business."""
        if not event.fully_refunded:
            return
        if to := await self._order_owner(tx, event.order_id):
            await self._send(
                event.event_id,
                "order_refunded",
                to,
                order_id=event.order_id,
                amount_cents=event.total_refunded_cents,
                currency=event.currency,
            )

    async def stock_low(self, tx: UnitOfWork, event: events_pb2.StockLow) -> None:
        for admin in await self._accounts.admins():
            await self._send(
                event.event_id,
                "stock_low",
                admin,
                product_id=event.product_id,
                product_name=event.name,
                sku=event.sku,
                available=event.available,
                on_hand=event.on_hand,
                threshold=event.low_stock_threshold,
            )

    async def daily_sales_report(self, tx: UnitOfWork, event: events_pb2.DailySalesReport) -> None:
        for admin in await self._accounts.admins():
            await self._send(
                event.event_id,
                "daily_sales_report",
                admin,
                day=event.day,
                revenue_cents=event.revenue_cents,
                currency=event.currency,
                order_count=event.order_count,
                average_cents=event.average_order_value_cents,
                orders_by_status=list(event.orders_by_status),
                top_products=list(event.top_products),
                csv_location=f"s3://{event.csv_bucket}/{event.csv_key}",
            )
