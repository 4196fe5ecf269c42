"""Checkout: an orchestrated saga turning the user's cart into an order awaiting payment.

    step                                    compensation
    1. read the cart, price it (catalog)    -
    2. reserve the stock (catalog)          release the reservation
    3. create the order, PENDING_PAYMENT    delete it (no event has announced it yet)
    4. create the PaymentIntent (payments)  - (a failed call leaves nothing payable)
    5. announce OrderCreated, answer order + client secret

The saga's record (a `checkouts` row whose id is the order's) is written before step 1 and
deleted when the saga ends, either way. Its driver holds a PostgreSQL session lock on the id
and runs every step's transaction on that lock's connection, so:
- a retry with the same Idempotency-Key waits for the lock, then answers from what the first
  request left (one order, one reservation, however many retries);
- a driver that dies lets go of the lock with its connection. The client's retry drives the
  same record on (every step is idempotent per order id: ReserveStock, the order insert,
  CreatePaymentIntent); if no retry comes, the recovery pass undoes the checkout, since nobody
  is waiting for that order. A checkout that failed half-way is marked `failing` first, so its
  compensation is finished by whoever finds it next if it cannot finish now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ecom_runtime.db import Database
from ecom_runtime.errors import Aborted, FailedPrecondition
from ecom_runtime.validation import Violations
from ecommerce.common.v1 import common_pb2
from ecommerce.events.v1 import events_pb2
from sqlalchemy import Row, delete, func, insert, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from orders_service import errors, idempotency, records
from orders_service.config import OrdersSettings
from orders_service.partners import Carts, Catalog, Payments
from orders_service.pricing import Quote, quote
from orders_service.store import (
    AWAITING_PAYMENT,
    PENDING_PAYMENT,
    checkouts,
    idempotency_keys,
    order_history,
    order_items,
    orders,
)

log = logging.getLogger("orders.checkout")

STARTED, PRICED, ORDERED, FAILING = "started", "priced", "ordered", "failing"
# The catalog holds the stock a little longer than the order waits for its payment: our own
# expiry releases it on time, the catalog's is the backstop if this service is down.
CATALOG_HOLD_MARGIN_SECONDS = 60
_COUNTRY = re.compile(r"[A-Z]{2}")
_ADDRESS_LIMITS = {"line1": 200, "line2": 200, "city": 100, "postal_code": 20}


@dataclass(frozen=True)
class CheckoutResult:
    order: records.OrderRecord
    payment_intent_id: str
    client_secret: str


def shipping_address(address: common_pb2.Address) -> dict[str, str]:
    """The address as stored, trimmed, country upper-cased; every bad field named at once."""
    values = {
        "line1": address.line1.strip(),
        "line2": address.line2.strip(),
        "city": address.city.strip(),
        "postal_code": address.postal_code.strip(),
        "country": address.country.strip().upper(),
    }
    violations = Violations()
    for name, limit in _ADDRESS_LIMITS.items():
        if name != "line2" and not values[name]:
            violations.add(f"shipping_address.{name}", "is required")
        elif len(values[name]) > limit:
            violations.add(f"shipping_address.{name}", f"must be at most {limit} characters")
    if not _COUNTRY.fullmatch(values["country"]):
        violations.add("shipping_address.country", 'must be an ISO 3166-1 alpha-2 code ("US")')
    violations.raise_if_any()
    return values


def _lock_key(order_id: uuid.UUID) -> int:
    """The order id as PostgreSQL's 64-bit advisory lock key (a collision only serializes)."""
    return int.from_bytes(order_id.bytes[:8], "big", signed=True)


@contextlib.asynccontextmanager
async def driving(conn: AsyncConnection, order_id: uuid.UUID, *, wait: bool) -> AsyncIterator[bool]:
    """Holds the session lock on a checkout (yields False if `wait` is off and it is taken).
    Waiting is bounded by the statement timeout; then the first request is still running."""
    key = _lock_key(order_id)
    try:
        async with conn.begin():
            if wait:
                await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                got = True
            else:
                try_lock = text("SELECT pg_try_advisory_lock(:k)")
                got = bool((await conn.execute(try_lock, {"k": key})).scalar_one())
    except OperationalError as error:
        if "statement timeout" not in str(error.orig):
            raise
        raise Aborted(
            "a request with this Idempotency-Key is still running; retry in a moment",
            reason=errors.IDEMPOTENCY_KEY_IN_USE,
        ) from None
    try:
        yield got
    finally:
        if got:
            try:
                async with conn.begin():
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            except Exception:
                await conn.invalidate()  # a pooled connection must not keep the lock
                raise


class CheckoutSaga:
    def __init__(
        self,
        db: Database,
        catalog: Catalog,
        carts: Carts,
        payments: Payments,
        settings: OrdersSettings,
    ) -> None:
        self.db = db
        self.catalog = catalog
        self.carts = carts
        self.payments = payments
        self.settings = settings
        # Each running checkout holds a pooled connection (its lock's): cap them below the pool.
        self._slots = asyncio.Semaphore(settings.orders_checkout_concurrency)

    async def checkout(
        self, user_id: uuid.UUID, address: dict[str, str], idempotency_key: str
    ) -> CheckoutResult:
        async with self._slots, self.db.connect() as conn:
            # A second round only when a first request with the same key failed and let go
            # of the key while this one waited for it.
            for _ in range(3):
                order_id = await self._start(conn, user_id, address, idempotency_key)
                async with driving(conn, order_id, wait=True):
                    result = await self._drive(conn, order_id)
                if result is not None:
                    return result
        raise Aborted("the checkout was interrupted; retry", reason=errors.IDEMPOTENCY_KEY_IN_USE)

    async def _start(
        self, conn: AsyncConnection, user_id: uuid.UUID, address: dict[str, str], key: str
    ) -> uuid.UUID:
        """The order id this request drives: a new checkout's, or the first request's with
        this Idempotency-Key (the same key with another body is refused)."""
        order_id = uuid.uuid4()
        async with self.db.begin(conn) as tx:
            if key:
                print_ = idempotency.fingerprint("checkout", address)
                first = await idempotency.claim(tx.conn, user_id, key, print_, order_id)
                if first is not None:
                    return first
            await tx.conn.execute(
                insert(checkouts).values(
                    id=order_id, user_id=user_id, shipping_address=address, step=STARTED
                )
            )
        return order_id

    async def _drive(self, conn: AsyncConnection, order_id: uuid.UUID) -> CheckoutResult | None:
        """Runs the saga from where its record stands (None: it failed and is gone)."""
        saga = await _read(conn, select(checkouts).where(checkouts.c.id == order_id))
        if saga is None:  # finished before: answer again, or failed and let go of its key
            done = await _read(conn, select(orders.c.id).where(orders.c.id == order_id))
            return await self._answer(conn, order_id) if done else None
        if saga.step == FAILING:
            await self.compensate(conn, order_id)
            return None
        try:
            priced = Quote.from_json(saga.quote) if saga.quote else await self._price(conn, saga)
            items = [(line.product_id, line.quantity) for line in priced.lines]
            ttl = self.settings.orders_reservation_seconds + CATALOG_HOLD_MARGIN_SECONDS
            if not await self.catalog.reserve(order_id, items, ttl):
                raise FailedPrecondition(
                    "this checkout's stock was given back meanwhile; check out again",
                    reason=errors.RESERVATION_EXPIRED,
                )
            if saga.step != ORDERED:
                await self._create_order(conn, saga, priced)
            intent = await self.payments.create_intent(
                order_id, priced.total_cents, priced.currency, saga.user_id
            )
        except BaseException:
            await self._fail(conn, order_id)
            raise
        async with self.db.begin(conn) as tx:
            await tx.conn.execute(
                update(orders)
                .where(orders.c.id == order_id)
                .values(payment_intent_id=intent.payment_intent_id)
            )
            record = await records.get(tx.conn, order_id)
            assert record is not None
            tx.add(_created_event(record, intent.payment_intent_id))
            await tx.conn.execute(delete(checkouts).where(checkouts.c.id == order_id))
        return CheckoutResult(record, intent.payment_intent_id, intent.client_secret)

    async def _price(self, conn: AsyncConnection, saga: Row[Any]) -> Quote:
        cart = await self.carts.lines(saga.user_id)
        if not cart:
            raise FailedPrecondition("the cart is empty", reason=errors.CART_EMPTY)
        offers = await self.catalog.offers([product_id for product_id, _ in cart])
        priced = quote(cart, offers, saga.shipping_address["country"], self.settings)
        async with conn.begin():
            await conn.execute(
                update(checkouts)
                .where(checkouts.c.id == saga.id)
                .values(step=PRICED, quote=priced.to_json(), updated_at=func.now())
            )
        return priced

    async def _create_order(self, conn: AsyncConnection, saga: Row[Any], priced: Quote) -> None:
        waits = timedelta(seconds=self.settings.orders_reservation_seconds)
        async with conn.begin():
            await conn.execute(
                insert(orders).values(
                    id=saga.id,
                    number=records.new_number(),
                    user_id=saga.user_id,
                    status=PENDING_PAYMENT,
                    currency=priced.currency,
                    subtotal_cents=priced.subtotal_cents,
                    tax_cents=priced.tax_cents,
                    shipping_cents=priced.shipping_cents,
                    total_cents=priced.total_cents,
                    shipping_address=saga.shipping_address,
                    expires_at=func.now() + waits,
                )
            )
            await conn.execute(
                insert(order_items),
                [
                    {
                        "order_id": saga.id,
                        "position": position,
                        "product_id": uuid.UUID(line.product_id),
                        "name": line.name,
                        "unit_price_cents": line.unit_price_cents,
                        "quantity": line.quantity,
                        "line_total_cents": line.total_cents,
                    }
                    for position, line in enumerate(priced.lines)
                ],
            )
            await conn.execute(
                insert(order_history).values(order_id=saga.id, status=PENDING_PAYMENT)
            )
            await conn.execute(
                update(checkouts)
                .where(checkouts.c.id == saga.id)
                .values(step=ORDERED, updated_at=func.now())
            )

    async def _answer(self, conn: AsyncConnection, order_id: uuid.UUID) -> CheckoutResult:
        """A finished checkout's answer again (its PaymentIntent is the same one)."""
        async with conn.begin():
            record = await records.get(conn, order_id)
        assert record is not None
        intent = await self.payments.create_intent(
            order_id, record.row.total_cents, record.row.currency, record.row.user_id
        )
        return CheckoutResult(record, intent.payment_intent_id, intent.client_secret)

    async def _fail(self, conn: AsyncConnection, order_id: uuid.UUID) -> None:
        """Marks the checkout failing and compensates; if compensating fails too (a partner
        is down), the record stays `failing` for the recovery pass."""
        try:
            async with conn.begin():
                await conn.execute(
                    update(checkouts)
                    .where(checkouts.c.id == order_id)
                    .values(step=FAILING, updated_at=func.now())
                )
            await self.compensate(conn, order_id)
        except Exception:
            log.warning("checkout %s left for the recovery pass", order_id, exc_info=True)

    async def compensate(self, conn: AsyncConnection, order_id: uuid.UUID) -> None:
        """Undoes a checkout: the stock goes back, the unannounced order and the record go,
        and its Idempotency-Key is free again. Safe to repeat."""
        await self.catalog.release(order_id)  # also bars a late ReserveStock with this id
        async with conn.begin():
            await conn.execute(
                delete(orders).where(
                    orders.c.id == order_id,
                    orders.c.status.in_(AWAITING_PAYMENT),
                    orders.c.payment_intent_id.is_(None),
                )
            )
            await conn.execute(delete(checkouts).where(checkouts.c.id == order_id))
            await conn.execute(
                delete(idempotency_keys).where(idempotency_keys.c.order_id == order_id)
            )

    async def recover(self) -> int:
        """Undoes checkouts whose driver is gone (no client waits for them any more)."""
        age = timedelta(seconds=self.settings.orders_checkout_recovery_seconds)
        async with self.db.connect() as conn:
            stale = list(
                (
                    await conn.execute(
                        select(checkouts.c.id)
                        .where(checkouts.c.updated_at < func.now() - age)
                        .order_by(checkouts.c.updated_at)
                        .limit(100)
                    )
                ).scalars()
            )
            await conn.commit()
            undone = 0
            for order_id in stale:
                async with driving(conn, order_id, wait=False) as got:
                    if got:
                        log.warning("undoing checkout %s left unfinished", order_id)
                        await self.compensate(conn, order_id)
                        undone += 1
        return undone


async def _read(conn: AsyncConnection, query: Any) -> Row[Any] | None:
    async with conn.begin():
        return (await conn.execute(query)).first()


def _created_event(record: records.OrderRecord, payment_intent_id: str) -> events_pb2.OrderCreated:
    row = record.row
    return events_pb2.OrderCreated(
        order_id=str(row.id),
        user_id=str(row.user_id),
        items=records.event_lines(record.items),
        subtotal_cents=row.subtotal_cents,
        tax_cents=row.tax_cents,
        shipping_cents=row.shipping_cents,
        total_cents=row.total_cents,
        currency=row.currency,
        shipping_address=common_pb2.Address(**row.shipping_address),
        payment_intent_id=payment_intent_id,
    )
