"""What the auth service locks, and in which order.

1. The user's row (`lock_user`), for any change to a user's role or existence.
2. Then every admin row (`lock_admins`), when an admin is demoted or deleted: two concurrent
   demotions of the last two admins queue here, so one of them sees it would leave no admin.

Refresh tokens and reset tokens take no explicit lock: each is spent by one conditional
UPDATE, of which only one of two racing requests can succeed.
"""

from __future__ import annotations

import uuid
from typing import Any

from ecom_runtime.auth import ROLE_ADMIN
from ecom_runtime.errors import NotFound
from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection

from auth_service.store import users


async def lock_user(conn: AsyncConnection, user_id: uuid.UUID) -> Row[Any]:
    user = (
        await conn.execute(select(users).where(users.c.id == user_id).with_for_update())
    ).first()
    if user is None:
        raise NotFound("user not found")
    return user


async def lock_admins(conn: AsyncConnection) -> list[uuid.UUID]:
    rows = await conn.execute(
        select(users.c.id).where(users.c.role == ROLE_ADMIN).order_by(users.c.id).with_for_update()
    )
    return [row.id for row in rows]
