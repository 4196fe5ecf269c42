"""The payments schema's tables (SQLAlchemy Core). PostgreSQL is the record of every payment;
Stripe holds the money."""

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
    Table,
    Text,
    Uuid,
    func,
    text,
)

SCHEMA = "payments"
metadata = service_metadata(SCHEMA)

# Payment statuses as stored: the proto enum's names without the PAYMENT_STATUS_ prefix.
PENDING, REQUIRES_ACTION, SUCCEEDED = "PENDING", "REQUIRES_ACTION", "SUCCEEDED"
FAILED, CANCELED = "FAILED", "CANCELED"
STATUSES = (PENDING, REQUIRES_ACTION, SUCCEEDED, FAILED, CANCELED)
# Refund statuses likewise (REFUND_STATUS_...).
REFUND_STATUSES = (PENDING, SUCCEEDED, FAILED)

# One payment per order, made by CreatePaymentIntent and named by its PaymentIntent.
payments = Table(
    "payments",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("order_id", Uuid, nullable=False, unique=True),
    Column("user_id", Uuid, nullable=True),  # for support
    # The intent orders was given: what the RPCs and events name the payment by. NULL until
    # Stripe made it (the row exists first, so its lock dedupes concurrent creates).
    Column("payment_intent_id", Text, nullable=True, unique=True),
    # The intent Stripe charges: the same one, unless a declined intent that Stripe would not
    # confirm again was replaced by a fresh one (payments.py, `_fresh_intent`).
    Column("stripe_intent_id", Text, nullable=True, unique=True),
    # For Stripe.js; handed out again on a retried create. Never logged.
    Column("client_secret", Text, nullable=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=PENDING),
    Column("idempotency_key", Text, nullable=False, unique=True),
    # The last decline's code and customer-safe message (FAILED); cleared by a success.
    Column("failure_code", Text, nullable=True),
    Column("failure_message", Text, nullable=True),
    # Refunds accepted by Stripe so far (pending ones included: they count against the charge).
    Column("refunded_cents", BigInteger, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # When reconciliation last asked Stripe about it (payments.py, `reconcile`).
    Column("checked_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(f"status IN {STATUSES}", name="status"),
    CheckConstraint("amount_cents >= 1", name="amount"),
    CheckConstraint("refunded_cents BETWEEN 0 AND amount_cents", name="refunded"),
    # Reconciliation's queue: the few payments still without an outcome, least recently seen
    # first (PostgreSQL's greatest() skips a NULL checked_at).
    Index(
        "ix_payments_unsettled",
        text("greatest(updated_at, checked_at)"),
        postgresql_where=text("status IN ('PENDING', 'REQUIRES_ACTION', 'FAILED')"),
    ),
)

# Every confirmation and what came of it, for support ("why was my card declined twice?").
payment_attempts = Table(
    "payment_attempts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("payment_id", Uuid, ForeignKey("payments.payments.id"), nullable=False),
    Column("stripe_intent_id", Text, nullable=False),
    Column("payment_method_id", Text, nullable=False),
    Column("outcome", Text, nullable=False),  # a payment status
    Column("failure_code", Text, nullable=True),
    # The issuer's reason (e.g. "insufficient_funds"): kept for support, not shown customers.
    Column("decline_code", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"outcome IN {STATUSES}", name="outcome"),
    Index("ix_payment_attempts_payment_id", "payment_id", "created_at"),
)

# Refunds by Stripe's id (re_...), each made once per idempotency key.
refunds = Table(
    "refunds",
    metadata,
    Column("id", Text, primary_key=True),
    Column("payment_id", Uuid, ForeignKey("payments.payments.id"), nullable=False),
    Column("order_id", Uuid, nullable=False),
    Column("payment_intent_id", Text, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("idempotency_key", Text, nullable=False, unique=True),
    Column("reason", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"status IN {REFUND_STATUSES}", name="status"),
    CheckConstraint("amount_cents >= 1", name="amount"),
    Index("ix_refunds_payment_id", "payment_id", "created_at"),
)

outbox, inbox = add_event_tables(metadata)
