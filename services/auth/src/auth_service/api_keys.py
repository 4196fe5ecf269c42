"""Admin API keys: random, shown once, stored as SHA-256, revocable at once everywhere."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from ecom_runtime.db import Database
from ecom_runtime.errors import NotFound
from ecom_runtime.paging import Page, created_keyset_page, decode_created_keyset, page_size
from ecom_runtime.validation import Violations
from ecommerce.events.v1 import events_pb2
from sqlalchemy import Row, func, insert, select, tuple_, update

from auth_service.rules import check_name, digest
from auth_service.store import api_keys


class ApiKeys:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, name: str, created_by: str) -> tuple[Row[Any], str]:
        violations = Violations()
        name = check_name("name", name, violations)
        violations.raise_if_any()
        key = "ek_" + secrets.token_urlsafe(32)
        async with self._db.begin() as tx:
            row = (
                await tx.conn.execute(
                    insert(api_keys)
                    .values(
                        id=uuid.uuid4(),
                        name=name,
                        prefix=key[:10],
                        key_hash=digest(key),
                        created_by=created_by,
                    )
                    .returning(*api_keys.c)
                )
            ).one()
        return row, key

    async def list(self, size: int, token: str) -> Page:
        limit = page_size(size)
        after = decode_created_keyset(token)
        query = (
            select(api_keys)
            .where(api_keys.c.revoked_at.is_(None))
            .order_by(api_keys.c.created_at.desc(), api_keys.c.id.desc())
        )
        if after is not None:
            query = query.where(tuple_(api_keys.c.created_at, api_keys.c.id) < tuple_(*after))
        async with self._db.connect() as conn:
            rows = list((await conn.execute(query.limit(limit + 1))).all())
        return created_keyset_page(rows, limit)

    async def revoke(self, key_id: uuid.UUID) -> None:
        async with self._db.begin() as tx:
            revoked = await tx.conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=func.now())
            )
            if revoked.rowcount == 0:
                raise NotFound("API key not found")
            tx.add(events_pb2.ApiKeyRevoked(api_key_id=str(key_id)))

    async def find(self, key: str) -> Row[Any] | None:
        async with self._db.connect() as conn:
            return (
                await conn.execute(
                    select(api_keys.c.id, api_keys.c.name).where(
                        api_keys.c.key_hash == digest(key), api_keys.c.revoked_at.is_(None)
                    )
                )
            ).first()
