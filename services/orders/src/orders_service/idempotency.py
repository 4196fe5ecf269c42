"""Idempotency-Key (API.md): per user, the first request's fingerprint (operation and body) and
the order it made or acted on, kept a day. The same key with another body is refused."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

from ecom_runtime.auth import call_header
from ecom_runtime.db import Database
from ecom_runtime.errors import AlreadyExists, InvalidArgument
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from orders_service import errors
from orders_service.store import idempotency_keys

HEADER = "idempotency-key"
MAX_LENGTH = 255
KEEP = timedelta(days=1)


def request_key() -> str:
    """The call's Idempotency-Key ("" when none); a bad one is a 400 naming the header."""
    key = call_header(HEADER)
    if len(key) > MAX_LENGTH or (key and not key.strip()):
        raise InvalidArgument({"Idempotency-Key": f"must be 1 to {MAX_LENGTH} characters"})
    return key


def fingerprint(operation: str, body: Any) -> bytes:
    return hashlib.sha256(json.dumps([operation, body], sort_keys=True).encode()).digest()


async def claim(
    conn: AsyncConnection, user_id: uuid.UUID, key: str, print_: bytes, order_id: uuid.UUID
) -> uuid.UUID | None:
    """None when this request is the key's first (the key now names `order_id`); else the
    order of the first request with this key and body. Call inside a transaction."""
    claimed = await conn.execute(
        pg_insert(idempotency_keys)
        .values(user_id=user_id, key=key, fingerprint=print_, order_id=order_id)
        .on_conflict_do_nothing()
        .returning(idempotency_keys.c.order_id)
    )
    if claimed.first() is not None:
        return None
    first = (
        await conn.execute(
            select(idempotency_keys).where(
                idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key
            )
        )
    ).one()
    if first.fingerprint != print_:
        raise AlreadyExists(
            {"Idempotency-Key": "was used for another request; use a new key"},
            reason=errors.IDEMPOTENCY_KEY_REUSED,
        )
    return first.order_id


async def prune(db: Database) -> None:
    async with db.begin() as tx:
        await tx.conn.execute(
            delete(idempotency_keys).where(idempotency_keys.c.created_at < func.now() - KEEP)
        )
