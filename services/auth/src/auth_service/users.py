"""User accounts as admins manage them, and the first admin."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from ecom_runtime.auth import ROLE_ADMIN, ROLE_CUSTOMER
from ecom_runtime.db import Database
from ecom_runtime.errors import AlreadyExists, FailedPrecondition, NotFound
from ecom_runtime.paging import Page, created_keyset_page, decode_created_keyset, page_size
from ecom_runtime.validation import Violations
from sqlalchemy import Row, delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError

from auth_service import errors
from auth_service.locks import lock_admins, lock_user
from auth_service.passwords import PasswordHasher, password_problem
from auth_service.rules import check_email, check_name
from auth_service.sessions import announce_access_change
from auth_service.store import users

log = logging.getLogger("auth.users")
ROLES = (ROLE_CUSTOMER, ROLE_ADMIN)


class Users:
    def __init__(self, db: Database, hasher: PasswordHasher) -> None:
        self._db = db
        self._hasher = hasher

    async def get(self, user_id: uuid.UUID) -> Row[Any]:
        async with self._db.connect() as conn:
            user = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        if user is None:
            raise NotFound("user not found")
        return user

    async def admins(self) -> list[Row[Any]]:
        async with self._db.connect() as conn:
            query = select(users).where(users.c.role == ROLE_ADMIN).order_by(users.c.email)
            return list((await conn.execute(query)).all())

    async def list(self, size: int, token: str) -> Page:
        limit = page_size(size)
        after = decode_created_keyset(token)
        query = select(users).order_by(users.c.created_at.desc(), users.c.id.desc())
        if after is not None:
            query = query.where(tuple_(users.c.created_at, users.c.id) < tuple_(*after))
        async with self._db.connect() as conn:
            rows = list((await conn.execute(query.limit(limit + 1))).all())
            total = (await conn.execute(select(func.count()).select_from(users))).scalar_one()
        return created_keyset_page(rows, limit, total)

    async def update(
        self, user_id: uuid.UUID, name: str | None, email: str | None, role: str | None
    ) -> Row[Any]:
        violations = Violations()
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = check_name("name", name, violations)
        if email is not None:
            changes["email"] = check_email("email", email, violations)
        if role is not None:
            changes["role"] = role
        violations.raise_if_any()
        try:
            async with self._db.begin() as tx:
                current = await lock_user(tx.conn, user_id)
                if role is not None and role != ROLE_ADMIN and current.role == ROLE_ADMIN:
                    await self._keep_an_admin(tx.conn, user_id)
                if not changes:
                    return current
                if role is not None and role != current.role:
                    announce_access_change(tx, user_id, role)
                return (
                    await tx.conn.execute(
                        update(users)
                        .where(users.c.id == user_id)
                        .values(**changes, updated_at=func.now())
                        .returning(*users.c)
                    )
                ).one()
        except IntegrityError:
            raise AlreadyExists(
                {"email": "is already registered"}, reason=errors.EMAIL_TAKEN
            ) from None

    async def delete(self, user_id: uuid.UUID) -> None:
        async with self._db.begin() as tx:
            current = await lock_user(tx.conn, user_id)
            if current.role == ROLE_ADMIN:
                await self._keep_an_admin(tx.conn, user_id)
            # Sessions, reset tokens go with it (ON DELETE CASCADE). Orders keep snapshots.
            await tx.conn.execute(delete(users).where(users.c.id == user_id))
            announce_access_change(tx, user_id, "")

    async def _keep_an_admin(self, conn: Any, leaving: uuid.UUID) -> None:
        if all(admin == leaving for admin in await lock_admins(conn)):
            raise FailedPrecondition(
                "the last admin cannot be removed or demoted", reason=errors.LAST_ADMIN
            )

    async def ensure_admin(self, email: str, password: str, name: str = "Admin") -> Row[Any]:
        """Creates the admin account, or promotes an existing one (its password unchanged):
        what the `create-admin` command, an operator's deliberate act, does."""
        violations = Violations()
        email = check_email("email", email, violations)
        if problem := password_problem(password):
            violations.add("password", problem)
        violations.raise_if_any()
        password_hash = await self._hasher.hash(password)
        async with self._db.begin() as tx:
            stmt = (
                pg_insert(users)
                .values(
                    id=uuid.uuid4(),
                    email=email,
                    name=name,
                    password_hash=password_hash,
                    role=ROLE_ADMIN,
                )
                .on_conflict_do_update(index_elements=[users.c.email], set_={"role": ROLE_ADMIN})
                .returning(*users.c)
            )
            return (await tx.conn.execute(stmt)).one()

    async def bootstrap_admin(self, email: str, password: str) -> Row[Any] | None:
        """The first admin from configuration, only while no admin exists: once one does, the
        variables change nothing (so a leaked old value cannot re-promote anyone)."""
        async with self._db.connect() as conn:
            admin = (
                await conn.execute(select(users.c.id).where(users.c.role == ROLE_ADMIN))
            ).first()
        if admin is not None:
            log.info("an admin exists; AUTH_ADMIN_EMAIL/AUTH_ADMIN_PASSWORD are ignored")
            return None
        return await self.ensure_admin(email, password)
