"""What the notifications service is made of; ecom_runtime.server runs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ecom_runtime.clients import ServiceClient
from ecom_runtime.db import Database, UnitOfWork
from ecom_runtime.server import App, Consumer
from ecommerce.events.v1 import events_pb2
from google.protobuf.message import Message

from notifications_service import events
from notifications_service.accounts import Accounts
from notifications_service.config import NotificationsSettings
from notifications_service.dead_letters import DeadLetters
from notifications_service.jobs import Jobs
from notifications_service.mailers import mailer_from
from notifications_service.notifier import Notifier
from notifications_service.servicer import NotificationAdminServicer
from notifications_service.store import inbox, outbox
from notifications_service.templates import Templates


def build_app(settings: NotificationsSettings | None = None) -> App:
    settings = settings or NotificationsSettings()
    db = Database.for_service(settings, outbox=outbox, inbox=inbox, subjects=events.PUBLISHED)
    auth = ServiceClient.to("auth", settings.auth_grpc_addr, settings)
    notifier = Notifier(
        db,
        Accounts(auth),
        mailer_from(settings),
        Templates(),
        settings.notifications_password_reset_url,
    )
    dead_letters = DeadLetters(db)
    jobs = Jobs(settings.nats_url, dead_letters)

    def job(
        name: str,
        subject: str,
        message_type: type[Message],
        handler: Callable[[UnitOfWork, Any], Awaitable[None]],
    ) -> Consumer:
        """A consumer whose last failed attempt becomes a dead letter."""
        return Consumer(
            f"notifications-{name}",
            subject,
            message_type,
            handler,
            max_deliver=settings.notifications_max_attempts,
            dead_letter=dead_letters.keep,
        )

    consumers = [
        job("welcome", events.USER_REGISTERED, events_pb2.UserRegistered, notifier.welcome),
        job(
            "password-reset",
            events.PASSWORD_RESET_REQUESTED,
            events_pb2.PasswordResetRequested,
            notifier.password_reset,
        ),
        job("order-created", events.ORDER_CREATED, events_pb2.OrderCreated, notifier.order_created),
        job("order-paid", events.ORDER_PAID, events_pb2.OrderPaid, notifier.order_paid),
        job(
            "order-cancelled",
            events.ORDER_CANCELLED,
            events_pb2.OrderCancelled,
            notifier.order_cancelled,
        ),
        job(
            "payment-failed",
            events.PAYMENT_FAILED,
            events_pb2.PaymentFailed,
            notifier.payment_failed,
        ),
        job(
            "refund-succeeded",
            events.REFUND_SUCCEEDED,
            events_pb2.RefundSucceeded,
            notifier.refund_succeeded,
        ),
        job("stock-low", events.STOCK_LOW, events_pb2.StockLow, notifier.stock_low),
        job(
            "daily-sales-report",
            events.DAILY_SALES_REPORT,
            events_pb2.DailySalesReport,
            notifier.daily_sales_report,
        ),
    ]
    return App(
        name="notifications",
        settings=settings,
        db=db,
        servicers=[
            NotificationAdminServicer(jobs, dead_letters, {c.durable: c for c in consumers})
        ],
        consumers=consumers,
        closing=[jobs.close, auth.close],
    )
