"""Sign-up, sign-in and sessions: access tokens plus rotating, single-use refresh tokens."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ecom_runtime.auth import ROLE_CUSTOMER
from ecom_runtime.db import Database, UnitOfWork
from ecom_runtime.errors import AlreadyExists, InvalidArgument, Unauthenticated
from ecom_runtime.validation import Violations
from ecommerce.events.v1 import events_pb2
from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from auth_service import errors
from auth_service.config import AuthSettings
from auth_service.keys import TokenSigner
from auth_service.passwords import PasswordHasher, password_problem
from auth_service.rules import canonical_email, check_email, check_name, digest
from auth_service.store import refresh_tokens, users


@dataclass(frozen=True)
class Session:
    user: Row[Any]
    access_token: str
    refresh_token: str
    expires_in: int


class Sessions:
    def __init__(
        self, db: Database, settings: AuthSettings, signer: TokenSigner, hasher: PasswordHasher
    ) -> None:
        self._db = db
        self._settings = settings
        self._signer = signer
        self._hasher = hasher

    async def register(self, email: str, password: str, name: str) -> Session:
        violations = Violations()
        email = check_email("email", email, violations)
        if problem := password_problem(password):
            violations.add("password", problem)
        name = check_name("name", name, violations)
        violations.raise_if_any()
        password_hash = await self._hasher.hash(password)
        user_id = uuid.uuid4()
        try:
            async with self._db.begin() as tx:
                await tx.conn.execute(
                    insert(users).values(
                        id=user_id,
                        email=email,
                        name=name,
                        password_hash=password_hash,
                        role=ROLE_CUSTOMER,
                    )
                )
                tx.add(events_pb2.UserRegistered(user_id=str(user_id), email=email, name=name))
                return await self._open(tx, user_id, family_id=uuid.uuid4())
        except IntegrityError:
            raise AlreadyExists(
                {"email": "is already registered"}, reason=errors.EMAIL_TAKEN
            ) from None

    async def login(self, email: str, password: str) -> Session:
        violations = Violations()
        violations.require("email", email)
        violations.require("password", password)
        violations.raise_if_any()
        canonical = canonical_email(email)
        user = None
        if canonical is not None:
            async with self._db.connect() as conn:
                user = (await conn.execute(select(users).where(users.c.email == canonical))).first()
        # Same work and the same answer whether the email is unknown or the password wrong.
        if not await self._hasher.verify(password, user.password_hash if user else None):
            raise Unauthenticated(
                "email or password is incorrect", reason=errors.INVALID_CREDENTIALS
            )
        assert user is not None
        async with self._db.begin() as tx:
            return await self._open(tx, user.id, family_id=uuid.uuid4())

    async def _open(self, tx: UnitOfWork, user_id: uuid.UUID, family_id: uuid.UUID) -> Session:
        # FOR SHARE: a role change or deletion in flight commits first, so the token issued
        # here carries the role as it is after it (and its iat is after the change's event).
        user = (
            await tx.conn.execute(
                select(users).where(users.c.id == user_id).with_for_update(read=True)
            )
        ).first()
        if user is None:
            raise Unauthenticated("this account no longer exists", reason=errors.ACCOUNT_GONE)
        refresh_token = "rt_" + secrets.token_urlsafe(32)
        ttl = timedelta(seconds=self._settings.auth_refresh_token_ttl_seconds)
        await tx.conn.execute(
            insert(refresh_tokens).values(
                id=uuid.uuid4(),
                user_id=user.id,
                family_id=family_id,
                token_hash=digest(refresh_token),
                expires_at=datetime.now(UTC) + ttl,
            )
        )
        return Session(
            user=user,
            access_token=self._signer.issue(user.id, user.role),
            refresh_token=refresh_token,
            expires_in=self._signer.ttl_seconds,
        )

    async def refresh(self, token: str) -> Session:
        if not token.strip():
            raise InvalidArgument({"refresh_token": "is required"})
        rt = refresh_tokens
        async with self._db.begin() as tx:
            # One conditional UPDATE spends the token: of two racing refreshes only one wins.
            spent = (
                await tx.conn.execute(
                    update(rt)
                    .where(
                        rt.c.token_hash == digest(token),
                        rt.c.spent_at.is_(None),
                        rt.c.revoked_at.is_(None),
                        rt.c.expires_at > func.now(),
                    )
                    .values(spent_at=func.now())
                    .returning(rt.c.user_id, rt.c.family_id)
                )
            ).first()
            if spent is not None:
                return await self._open(tx, spent.user_id, family_id=spent.family_id)
            known = (
                await tx.conn.execute(
                    select(rt.c.family_id, rt.c.spent_at).where(rt.c.token_hash == digest(token))
                )
            ).first()
            reused = known is not None and known.spent_at is not None
            if known is not None and reused:
                await revoke_family(tx, known.family_id)
        # Raised after the commit above, so the revocation sticks.
        if reused:
            raise Unauthenticated(
                "refresh token was already used; this sign-in is revoked",
                reason=errors.REFRESH_TOKEN_REUSED,
            )
        raise Unauthenticated(
            "refresh token invalid, expired or revoked", reason=errors.REFRESH_TOKEN_INVALID
        )

    async def logout(self, token: str) -> None:
        """Revokes the token's family. An unknown token is not an error: logout is idempotent."""
        if not token.strip():
            raise InvalidArgument({"refresh_token": "is required"})
        async with self._db.begin() as tx:
            family = (
                await tx.conn.execute(
                    select(refresh_tokens.c.family_id).where(
                        refresh_tokens.c.token_hash == digest(token)
                    )
                )
            ).scalar()
            if family is not None:
                await revoke_family(tx, family)

    async def purge_expired(self) -> int:
        """Deletes refresh tokens that expired over a day ago (they can never be used again;
        the day keeps recent ones around for support questions)."""
        async with self._db.begin() as tx:
            result = await tx.conn.execute(
                delete(refresh_tokens).where(
                    refresh_tokens.c.expires_at < func.now() - timedelta(days=1)
                )
            )
        return int(result.rowcount)


async def revoke_family(tx: UnitOfWork, family_id: uuid.UUID) -> None:
    await tx.conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )


async def end_all_sessions(tx: UnitOfWork, user_id: uuid.UUID) -> None:
    """Revokes every refresh token of the user (a password reset)."""
    await tx.conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )


def announce_access_change(tx: UnitOfWork, user_id: uuid.UUID, role: str) -> None:
    """Every service stops accepting the user's access tokens issued before now."""
    tx.add(events_pb2.UserAccessChanged(user_id=str(user_id), role=role))
