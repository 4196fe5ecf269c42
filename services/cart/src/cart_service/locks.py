"""What the cart service locks, and in which order.

1. A cart's row (`lock_cart`), before reading or changing its lines: concurrent changes to one
   cart queue there, and lines are only touched under it.
2. When merging, the guest cart first, then the user's.

Adding to an existing line is one upsert, whose row lock serializes concurrent adds of one
product without an explicit lock.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection


async def lock_cart(conn: AsyncConnection, query: Any) -> Row[Any] | None:
    """Runs a SELECT of one cart row with its row lock; None if there is none."""
    return (await conn.execute(query.with_for_update())).first()
