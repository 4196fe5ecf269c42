"""What the orders service is made of; ecom_runtime.server runs it."""

from __future__ import annotations

from ecom_runtime.clients import ServiceClient
from ecom_runtime.db import Database
from ecom_runtime.jobs import ScheduledJob
from ecom_runtime.server import App, Consumer, every
from ecommerce.events.v1 import events_pb2

from orders_service import events, idempotency
from orders_service.analytics import AnalyticsServicer, record_registration
from orders_service.config import OrdersSettings
from orders_service.lifecycle import Lifecycle
from orders_service.partners import Carts, Catalog, Payments
from orders_service.reports import DailySalesReport
from orders_service.servicer import OrderServicer
from orders_service.store import inbox, outbox
from orders_service.workflows.checkout import CheckoutSaga

Settings = OrdersSettings


def build_app(settings: OrdersSettings | None = None) -> App:
    settings = settings or OrdersSettings()
    db = Database.for_service(settings, outbox=outbox, inbox=inbox, subjects=events.PUBLISHED)
    clients = {
        "catalog": ServiceClient.to("catalog", settings.catalog_grpc_addr, settings),
        "cart": ServiceClient.to("cart", settings.cart_grpc_addr, settings),
        "payments": ServiceClient.to(
            "payments",
            settings.payments_grpc_addr,
            settings,
            timeout=settings.orders_payments_timeout_seconds,
        ),
    }
    catalog, payments = Catalog(clients["catalog"]), Payments(clients["payments"])
    checkout = CheckoutSaga(db, catalog, Carts(clients["cart"]), payments, settings)
    lifecycle = Lifecycle(db, catalog, payments)
    report = DailySalesReport(db, settings)

    async def prune_idempotency_keys() -> None:
        await idempotency.prune(db)

    return App(
        name="orders",
        settings=settings,
        db=db,
        servicers=[
            OrderServicer(db, checkout, lifecycle),
            AnalyticsServicer(db, catalog, settings.orders_currency),
        ],
        consumers=[
            Consumer(
                "orders-registrations",
                events.USER_REGISTERED,
                events_pb2.UserRegistered,
                record_registration,
            ),
            Consumer(
                "orders-payment-succeeded",
                events.PAYMENT_SUCCEEDED,
                events_pb2.PaymentSucceeded,
                lifecycle.on_payment_succeeded,
            ),
            Consumer(
                "orders-payment-failed",
                events.PAYMENT_FAILED,
                events_pb2.PaymentFailed,
                lifecycle.on_payment_failed,
            ),
            Consumer(
                "orders-refund-succeeded",
                events.REFUND_SUCCEEDED,
                events_pb2.RefundSucceeded,
                lifecycle.on_refund_succeeded,
            ),
        ],
        tasks=[
            every(settings.orders_expiry_sweep_seconds, lifecycle.expire_unpaid),
            every(settings.orders_checkout_recovery_seconds, checkout.recover),
        ],
        jobs=[
            ScheduledJob("prune-idempotency-keys", 3600, prune_idempotency_keys),
            # Yesterday's (UTC) report every 24 h, counted from when the schedule was last
            # published (each start of an orders process), not at a time of day.
            # 02:00 UTC, for the day before (late payment events have arrived by then).
            ScheduledJob("daily-sales-report", 24 * 3600, report.run, cron="0 0 2 * * *"),
        ],
        # Checkouts a crashed process left are undone before this one serves.
        startup=[checkout.recover],
        closing=[client.close for client in clients.values()],
    )
