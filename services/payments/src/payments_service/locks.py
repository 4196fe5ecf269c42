"""What the payments service locks, and in which order.

1. A refund's idempotency key (`lock_refund_key`, a transaction-scoped advisory lock), when
   refunding: one key is used once even if two calls name different orders with it.
2. A payment's row (`lock_payment`), before calling Stripe about it and recording the answer.
   Stripe is called while the lock is held, so one payment's calls happen one at a time:
   concurrent creates with one key make one intent, concurrent confirms charge once, and
   concurrent refunds never add up to more than was paid. The cost is a database connection
   held for each Stripe call in flight (bounded by STRIPE_TIMEOUT_SECONDS). A webhook event
   takes it too, before claiming the event's id, so it waits for a confirmation or refund
   in flight and then sees what that recorded.
3. Inbox claims (`tx.claim_once`: Stripe event ids, once-only announcements), last.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from payments_service.store import payments


async def lock_payment(conn: AsyncConnection, where: Any) -> Row[Any] | None:
    """The payment row matching `where`, with its row lock; None if there is none."""
    return (await conn.execute(select(payments).where(where).with_for_update())).first()


async def lock_refund_key(conn: AsyncConnection, idempotency_key: str) -> None:
    await conn.execute(
        select(func.pg_advisory_xact_lock(func.hashtext("payments-refund:" + idempotency_key)))
    )
