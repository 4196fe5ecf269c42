"""What the catalog locks, and in which order.

1. A reservation's row (`lock_reservation`), before anything else it touches.
2. Product rows, always all at once in id order (`lock_products`): overlapping baskets queue
   instead of deadlocking, and the `stock_never_negative` check backs the arithmetic up.
3. Category moves take one advisory lock for the whole tree (`lock_category_tree`): two
   concurrent moves could otherwise make a cycle together that neither makes alone.

Sweeps skip rows another transaction holds (SKIP LOCKED) rather than wait for them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Row, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog_service.store import products


async def lock_reservation(conn: AsyncConnection, query: Any) -> Row[Any] | None:
    """Runs a SELECT of one reservation row with its row lock."""
    return (await conn.execute(query.with_for_update())).first()


async def lock_products(conn: AsyncConnection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Row]:
    rows = await conn.execute(
        select(
            products.c.id,
            products.c.on_hand,
            products.c.reserved,
            products.c.active,
            products.c.deleted_at,
        )
        .where(products.c.id.in_(list(ids)))
        .order_by(products.c.id)
        .with_for_update()
    )
    return {row.id: row for row in rows}


async def lock_category_tree(conn: AsyncConnection) -> None:
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('catalog.tree'))"))
