"""Orders as stored: reading them whole (lines and history) and moving their status.

Every status change goes through `move`, which checks the transition, stamps `updated_at` and
appends to the history, under the order's row lock (`lock_order`, see locks.py).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from ecom_runtime.errors import FailedPrecondition
from ecom_runtime.paging import Page, created_keyset_page, decode_created_keyset, foreign_token
from ecommerce.events.v1 import events_pb2
from sqlalchemy import Row, and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from orders_service import errors
from orders_service.store import (
    CANCELLED,
    DELIVERED,
    FULFILLED,
    PAID,
    PAYMENT_FAILED,
    PENDING_PAYMENT,
    REFUNDED,
    order_history,
    order_items,
    orders,
)

# Which status may follow which. Same-status moves are no-ops handled by the callers.
TRANSITIONS = {
    PENDING_PAYMENT: {PAID, PAYMENT_FAILED, CANCELLED},
    PAYMENT_FAILED: {PAID, PAYMENT_FAILED, CANCELLED},
    PAID: {FULFILLED, CANCELLED, REFUNDED},
    FULFILLED: {DELIVERED, REFUNDED},
    DELIVERED: {REFUNDED},
    CANCELLED: set(),
    REFUNDED: set(),
}

# Receipt numbers: Crockford's base32 (no I, L, O, U), 40 random bits: "ORD-7K3Q-92XF".
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_number() -> str:
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"ORD-{chars[:4]}-{chars[4:]}"


@dataclass
class OrderRecord:
    row: Row[Any]
    items: list[Row[Any]]
    history: list[Row[Any]]

    @property
    def id(self) -> uuid.UUID:
        return self.row.id

    @property
    def status(self) -> str:
        return self.row.status


async def lock_order(conn: AsyncConnection, order_id: uuid.UUID) -> Row[Any] | None:
    """The order's row, locked until the transaction ends: every change of one order queues
    here (payment outcomes, cancel, expiry, admin moves)."""
    query = select(orders).where(orders.c.id == order_id).with_for_update()
    return (await conn.execute(query)).first()


async def move(
    conn: AsyncConnection, order: Row[Any], status: str, note: str = "", **changes: Any
) -> None:
    """Moves a locked order to `status` (ILLEGAL_TRANSITION if its rules forbid it)."""
    if status not in TRANSITIONS[order.status]:
        raise FailedPrecondition(
            f"an order in {order.status} cannot become {status}",
            reason=errors.ILLEGAL_TRANSITION,
        )
    await conn.execute(
        update(orders)
        .where(orders.c.id == order.id)
        .values(status=status, updated_at=func.now(), **changes)
    )
    await conn.execute(insert(order_history).values(order_id=order.id, status=status, note=note))


async def annotate(conn: AsyncConnection, order: Row[Any], note: str) -> None:
    """Records something that happened to the order without a status change."""
    await conn.execute(
        insert(order_history).values(order_id=order.id, status=order.status, note=note)
    )


async def load(conn: AsyncConnection, rows: list[Row[Any]]) -> list[OrderRecord]:
    """The orders of `rows` with their lines and history, two queries for all of them."""
    ids = [row.id for row in rows]
    if not ids:
        return []
    items: dict[uuid.UUID, list[Row[Any]]] = {i: [] for i in ids}
    history: dict[uuid.UUID, list[Row[Any]]] = {i: [] for i in ids}
    for item in await conn.execute(
        select(order_items)
        .where(order_items.c.order_id.in_(ids))
        .order_by(order_items.c.order_id, order_items.c.position)
    ):
        items[item.order_id].append(item)
    for change in await conn.execute(
        select(order_history)
        .where(order_history.c.order_id.in_(ids))
        .order_by(order_history.c.order_id, order_history.c.id)
    ):
        history[change.order_id].append(change)
    return [OrderRecord(row, items[row.id], history[row.id]) for row in rows]


async def get(conn: AsyncConnection, order_id: uuid.UUID) -> OrderRecord | None:
    row = (await conn.execute(select(orders).where(orders.c.id == order_id))).first()
    return (await load(conn, [row]))[0] if row is not None else None


async def page(
    conn: AsyncConnection,
    limit: int,
    token: str,
    *,
    user_id: uuid.UUID | None = None,
    status: str | None = None,
    count: bool = False,
) -> tuple[list[OrderRecord], Page]:
    """Newest first, ties by id; optionally one user's and/or one status."""
    filters = []
    if user_id is not None:
        filters.append(orders.c.user_id == user_id)
    if status is not None:
        filters.append(orders.c.status == status)
    query = select(orders).where(*filters)
    if token:
        position = decode_created_keyset(token)
        if position is None:
            raise foreign_token()
        created_at, last_id = position
        query = query.where(
            or_(
                orders.c.created_at < created_at,
                and_(orders.c.created_at == created_at, orders.c.id < last_id),
            )
        )
    rows = list(
        await conn.execute(
            query.order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(limit + 1)
        )
    )
    total = 0
    if count:
        total = (
            await conn.execute(select(func.count()).select_from(orders).where(*filters))
        ).scalar_one()
    result = created_keyset_page(rows, limit, total)
    return await load(conn, result.rows), result


def event_lines(items: list[Row[Any]]) -> list[events_pb2.OrderLine]:
    return [
        events_pb2.OrderLine(
            product_id=str(i.product_id),
            name=i.name,
            unit_price_cents=i.unit_price_cents,
            quantity=i.quantity,
            line_total_cents=i.line_total_cents,
        )
        for i in items
    ]


async def items_of(conn: AsyncConnection, order_id: uuid.UUID) -> list[Row[Any]]:
    return list(
        await conn.execute(
            select(order_items)
            .where(order_items.c.order_id == order_id)
            .order_by(order_items.c.position)
        )
    )
