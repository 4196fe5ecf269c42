"""Forgotten passwords: a request is recorded and announced; its token is derived, not kept.

`request` records the reset (its id is the PasswordResetRequested event's id; the hash of its
token; its expiry) and publishes the event. The notifications service then asks `issue` for
the token and mails it. The token is an HMAC of the request id under a key derived from the
signing key, so `issue` gives the same token however often a retried email asks, while only
its hash is ever stored. `reset` spends it, sets the password and ends every session of the
user.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ecom_runtime.db import Database
from ecom_runtime.errors import InvalidArgument, NotFound
from ecom_runtime.validation import Violations
from ecommerce.events.v1 import events_pb2
from sqlalchemy import Row, delete, func, insert, select, update

from auth_service import errors
from auth_service.config import AuthSettings
from auth_service.passwords import PasswordHasher, password_problem
from auth_service.rules import check_email, digest
from auth_service.sessions import announce_access_change, end_all_sessions
from auth_service.store import password_reset_tokens, users


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime
    user: Row[Any]


class PasswordResets:
    def __init__(
        self, db: Database, settings: AuthSettings, hasher: PasswordHasher, token_key: bytes
    ) -> None:
        self._db = db
        self._settings = settings
        self._hasher = hasher
        self._token_key = token_key

    def _token(self, request_id: uuid.UUID) -> str:
        mac = hmac.new(self._token_key, request_id.bytes, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    async def request(self, email: str) -> None:
        """The caller gets the same answer whether or not the address has an account."""
        violations = Violations()
        email = check_email("email", email, violations)
        violations.raise_if_any()
        ttl = timedelta(seconds=self._settings.auth_reset_token_ttl_seconds)
        async with self._db.begin() as tx:
            user = (await tx.conn.execute(select(users).where(users.c.email == email))).first()
            if user is None:
                return
            event = events_pb2.PasswordResetRequested(
                user_id=str(user.id), email=user.email, name=user.name
            )
            request_id = uuid.UUID(tx.add(event))
            await tx.conn.execute(
                insert(password_reset_tokens).values(
                    id=request_id,
                    user_id=user.id,
                    token_hash=digest(self._token(request_id)),
                    expires_at=datetime.now(UTC) + ttl,
                )
            )

    async def issue(self, request_id: uuid.UUID) -> IssuedToken:
        """The token of a live request (for its email), the same every time."""
        token = self._token(request_id)
        prt = password_reset_tokens
        async with self._db.connect() as conn:
            found = (
                await conn.execute(
                    select(prt.c.expires_at, users.c.id, users.c.email, users.c.name)
                    .join(users, users.c.id == prt.c.user_id)
                    .where(
                        prt.c.id == request_id,
                        prt.c.token_hash == digest(token),
                        prt.c.used_at.is_(None),
                        prt.c.expires_at > func.now(),
                    )
                )
            ).first()
        if found is None:
            raise NotFound("no live password reset request has this id")
        return IssuedToken(token, found.expires_at, found)

    async def reset(self, token: str, new_password: str) -> None:
        violations = Violations()
        violations.require("token", token)
        if problem := password_problem(new_password):
            violations.add("new_password", problem)
        violations.raise_if_any()
        password_hash = await self._hasher.hash(new_password)
        prt = password_reset_tokens
        async with self._db.begin() as tx:
            used = (
                await tx.conn.execute(
                    update(prt)
                    .where(
                        prt.c.token_hash == digest(token),
                        prt.c.used_at.is_(None),
                        prt.c.expires_at > func.now(),
                    )
                    .values(used_at=func.now())
                    .returning(prt.c.user_id)
                )
            ).first()
            if used is None:
                raise InvalidArgument(
                    {"token": "is invalid, expired or already used"},
                    reason=errors.RESET_TOKEN_INVALID,
                )
            role = (
                await tx.conn.execute(
                    update(users)
                    .where(users.c.id == used.user_id)
                    .values(password_hash=password_hash, updated_at=func.now())
                    .returning(users.c.role)
                )
            ).scalar_one()
            # Every other outstanding reset token and every session of the user ends here.
            await tx.conn.execute(
                update(prt)
                .where(prt.c.user_id == used.user_id, prt.c.used_at.is_(None))
                .values(used_at=func.now())
            )
            await end_all_sessions(tx, used.user_id)
            announce_access_change(tx, used.user_id, role)

    async def purge_expired(self) -> int:
        """Deletes reset tokens that expired over a day ago."""
        async with self._db.begin() as tx:
            result = await tx.conn.execute(
                delete(password_reset_tokens).where(
                    password_reset_tokens.c.expires_at < func.now() - timedelta(days=1)
                )
            )
        return int(result.rowcount)
