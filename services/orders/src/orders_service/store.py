"""The orders schema's tables (SQLAlchemy Core)."""

from __future__ import annotations

from ecom_runtime.db import service_metadata
from ecom_runtime.events import add_event_tables
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA = "orders"
metadata = service_metadata(SCHEMA)

# Status names as stored: the proto enum's names without the ORDER_STATUS_ prefix.
PENDING_PAYMENT, PAID, FULFILLED, DELIVERED = "PENDING_PAYMENT", "PAID", "FULFILLED", "DELIVERED"
PAYMENT_FAILED, CANCELLED, REFUNDED = "PAYMENT_FAILED", "CANCELLED", "REFUNDED"
STATUSES = (PENDING_PAYMENT, PAID, FULFILLED, DELIVERED, PAYMENT_FAILED, CANCELLED, REFUNDED)
AWAITING_PAYMENT = (PENDING_PAYMENT, PAYMENT_FAILED)  # stock reserved, not paid yet
# Paid and not cancelled or refunded: what revenue counts.
REVENUE_STATUSES = (PAID, FULFILLED, DELIVERED)

orders = Table(
    "orders",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("number", Text, nullable=False, unique=True),
    Column("user_id", Uuid, nullable=False),
    Column("status", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("subtotal_cents", BigInteger, nullable=False),
    Column("tax_cents", BigInteger, nullable=False),
    Column("shipping_cents", BigInteger, nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("refunded_cents", BigInteger, nullable=False, server_default=text("0")),
    Column("shipping_address", JSONB, nullable=False),
    Column("payment_intent_id", Text, nullable=True),
    # While awaiting payment: when the stock reservation ends and the order is cancelled.
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"status IN {STATUSES}", name="status"),
    CheckConstraint("total_cents = subtotal_cents + tax_cents + shipping_cents", name="total"),
    CheckConstraint("refunded_cents BETWEEN 0 AND total_cents", name="refunded"),
    # Own orders newest first; every order newest first (optionally by status); the sweeper's
    # orders awaiting payment by expiry; analytics by creation time.
    Index("ix_orders_user_id_created_at", "user_id", "created_at", "id"),
    Index("ix_orders_created_at", "created_at", "id"),
    Index("ix_orders_status_created_at", "status", "created_at", "id"),
    Index(
        "ix_orders_awaiting_expires_at",
        "expires_at",
        postgresql_where=text("status IN ('PENDING_PAYMENT', 'PAYMENT_FAILED')"),
    ),
)

order_items = Table(
    "order_items",
    metadata,
    Column("order_id", Uuid, ForeignKey("orders.orders.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("product_id", Uuid, nullable=False),
    Column("name", Text, nullable=False),
    Column("unit_price_cents", BigInteger, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("line_total_cents", BigInteger, nullable=False),
    Index("ix_order_items_product_id", "product_id"),
)

# Every status an order took, with when, and why when it was not the customer's plain act.
order_history = Table(
    "order_history",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("order_id", Uuid, ForeignKey("orders.orders.id", ondelete="CASCADE"), nullable=False),
    Column("status", Text, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_order_history_order_id", "order_id", "id"),
)

# The checkout saga's own record (workflows/checkout.py), one per checkout, id = the order's
# id. It exists from the first step, so a checkout interrupted by a crash is found and driven
# to an outcome by whoever picks it up next (a retry or the recovery pass).
checkouts = Table(
    "checkouts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    Column("shipping_address", JSONB, nullable=False),
    # started -> priced (quote saved) -> ordered (order row written); `failing` while its
    # compensation runs. The row is deleted when the saga ends.
    Column("step", Text, nullable=False),
    # The priced lines and totals, fixed once so a re-run reserves exactly the same items.
    Column("quote", JSONB, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_checkouts_updated_at", "updated_at"),
)

# Idempotency-Key per user: the first request's fingerprint (operation + body) and the order
# it made or acted on. Kept a day, as Stripe keeps its keys.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", Uuid, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("fingerprint", LargeBinary, nullable=False),
    Column("order_id", Uuid, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

# Copies of auth's UserRegistered events, for the analytics' new-user count.
registrations = Table(
    "registrations",
    metadata,
    Column("user_id", Uuid, primary_key=True),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Index("ix_registrations_registered_at", "registered_at"),
)

outbox, inbox = add_event_tables(metadata)
