"""Accounts, sessions, password resets and API keys: the auth service's rules."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ecom_runtime.auth import ROLE_ADMIN, ROLE_CUSTOMER
from ecom_runtime.email import EmailSender
from ecom_runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unauthenticated,
)
from ecom_runtime.events import enqueue
from ecom_runtime.paging import decode_created_keyset, encode_created_keyset, page_size
from ecom_runtime.validation import Violations
from ecommerce.events.v1 import events_pb2
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Row, delete, func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auth_service.config import AuthSettings
from auth_service.keys import TokenSigner
from auth_service.passwords import PasswordHasher, password_problem
from auth_service.store import api_keys, outbox, password_reset_tokens, refresh_tokens, users

ROLES = (ROLE_CUSTOMER, ROLE_ADMIN)
SUBJECT_USER_REGISTERED = "ecom.auth.user_registered"
SUBJECT_PASSWORD_RESET_REQUESTED = "ecom.auth.password_reset_requested"  # noqa: S105


def _digest(secret: str) -> bytes:
    # Refresh, reset and API keys are 256-bit random values: a fast hash is enough at rest.
    return hashlib.sha256(secret.encode()).digest()


def normalize_email(field: str, email: str, violations: Violations) -> str:
    if not email.strip():
        violations.add(field, "is required")
        return ""
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        violations.add(field, "is not a valid email address")
        return ""


def check_name(field: str, name: str, violations: Violations) -> str:
    violations.check_length(field, name, 1, 100)
    return name.strip()


@dataclass(frozen=True)
class Session:
    user: Row[Any]
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class Page:
    rows: list[Row[Any]]
    next_page_token: str
    total_size: int = 0


class Accounts:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: AuthSettings,
        signer: TokenSigner,
        hasher: PasswordHasher,
        mailer: EmailSender,
        events_committed: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._signer = signer
        self._hasher = hasher
        self._mailer = mailer
        self._events_committed = events_committed

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    # --- sign-up, sign-in, sessions -------------------------------------------------------

    async def register(self, email: str, password: str, name: str) -> Session:
        violations = Violations()
        email = normalize_email("email", email, violations)
        if problem := password_problem(password):
            violations.add("password", problem)
        name = check_name("name", name, violations)
        violations.raise_if_any()
        password_hash = await self._hasher.hash(password)
        user_id = uuid.uuid4()
        try:
            async with self._engine.begin() as conn:
                user = (
                    await conn.execute(
                        insert(users)
                        .values(
                            id=user_id,
                            email=email,
                            name=name,
                            password_hash=password_hash,
                            role=ROLE_CUSTOMER,
                        )
                        .returning(*users.c)
                    )
                ).one()
                await enqueue(
                    conn,
                    outbox,
                    SUBJECT_USER_REGISTERED,
                    events_pb2.UserRegistered(user_id=str(user_id), email=email, name=name),
                )
                session = await self._open_session(conn, user, family_id=uuid.uuid4())
        except IntegrityError:
            raise AlreadyExists({"email": "is already registered"}) from None
        self._events_committed()
        return session

    async def login(self, email: str, password: str) -> Session:
        violations = Violations()
        violations.require("email", email)
        violations.require("password", password)
        violations.raise_if_any()
        async with self._engine.connect() as conn:
            user = (
                await conn.execute(select(users).where(users.c.email == email.strip().lower()))
            ).first()
        # Same work and the same answer whether the email is unknown or the password wrong.
        if not await self._hasher.verify(password, user.password_hash if user else None):
            raise Unauthenticated("email or password is incorrect")
        assert user is not None
        async with self._engine.begin() as conn:
            return await self._open_session(conn, user, family_id=uuid.uuid4())

    async def _open_session(
        self, conn: AsyncConnection, user: Row[Any], family_id: uuid.UUID
    ) -> Session:
        refresh_token = "rt_" + secrets.token_urlsafe(32)
        ttl = timedelta(seconds=self._settings.auth_refresh_token_ttl_seconds)
        await conn.execute(
            insert(refresh_tokens).values(
                id=uuid.uuid4(),
                user_id=user.id,
                family_id=family_id,
                token_hash=_digest(refresh_token),
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
        async with self._engine.begin() as conn:
            # One conditional UPDATE spends the token: of two racing refreshes only one wins.
            spent = (
                await conn.execute(
                    update(rt)
                    .where(
                        rt.c.token_hash == _digest(token),
                        rt.c.spent_at.is_(None),
                        rt.c.revoked_at.is_(None),
                        rt.c.expires_at > func.now(),
                    )
                    .values(spent_at=func.now())
                    .returning(rt.c.user_id, rt.c.family_id)
                )
            ).first()
            if spent is not None:
                user = (await conn.execute(select(users).where(users.c.id == spent.user_id))).one()
                return await self._open_session(conn, user, family_id=spent.family_id)
            known = (
                await conn.execute(
                    select(rt.c.family_id, rt.c.spent_at).where(rt.c.token_hash == _digest(token))
                )
            ).first()
            reused = known is not None and known.spent_at is not None
            if known is not None and reused:
                await self._revoke_family(conn, known.family_id)
        # Raised after the commit above, so the revocation sticks.
        if reused:
            raise Unauthenticated("refresh token was already used; this sign-in is revoked")
        raise Unauthenticated("refresh token invalid, expired or revoked")

    async def _revoke_family(self, conn: AsyncConnection, family_id: uuid.UUID) -> None:
        await conn.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )

    async def logout(self, token: str) -> None:
        """Revokes the token's family. An unknown token is not an error: logout is idempotent."""
        if not token.strip():
            raise InvalidArgument({"refresh_token": "is required"})
        async with self._engine.begin() as conn:
            family = (
                await conn.execute(
                    select(refresh_tokens.c.family_id).where(
                        refresh_tokens.c.token_hash == _digest(token)
                    )
                )
            ).scalar()
            if family is not None:
                await self._revoke_family(conn, family)

    # --- password reset -------------------------------------------------------------------

    async def forgot_password(self, email: str) -> None:
        """Announces a reset request; the email (and its token) is made by `send_reset_email`.

        The plain token therefore exists only in that email, never in a table or a stream.
        """
        violations = Violations()
        email = normalize_email("email", email, violations)
        violations.raise_if_any()
        async with self._engine.begin() as conn:
            user = (await conn.execute(select(users).where(users.c.email == email))).first()
            if user is None:
                return  # the caller gets the same answer either way
            await enqueue(
                conn,
                outbox,
                SUBJECT_PASSWORD_RESET_REQUESTED,
                events_pb2.PasswordResetRequested(
                    user_id=str(user.id), email=user.email, name=user.name
                ),
            )
        self._events_committed()

    async def send_reset_email(
        self, conn: AsyncConnection, event: events_pb2.PasswordResetRequested
    ) -> None:
        """Event handler: creates a single-use token, stores its hash, emails the token."""
        user = (
            await conn.execute(select(users).where(users.c.id == uuid.UUID(event.user_id)))
        ).first()
        if user is None:
            return  # deleted since
        token = secrets.token_urlsafe(32)
        ttl = timedelta(seconds=self._settings.auth_reset_token_ttl_seconds)
        await conn.execute(
            insert(password_reset_tokens).values(
                id=uuid.uuid4(),
                user_id=user.id,
                token_hash=_digest(token),
                expires_at=datetime.now(UTC) + ttl,
            )
        )
        minutes = self._settings.auth_reset_token_ttl_seconds // 60
        await self._mailer.send(
            user.email,
            "Reset your password",
            f"Hello {user.name},\n\n"
            f"Someone asked to reset the password of this account. To choose a new one, open\n"
            f"{self._settings.auth_password_reset_url}{token}\n\n"
            f"or use this reset token: {token}\n\n"
            f"It works once, within {minutes} minutes. If it was not you, ignore this email.\n",
        )

    async def reset_password(self, token: str, new_password: str) -> None:
        violations = Violations()
        violations.require("token", token)
        if problem := password_problem(new_password):
            violations.add("new_password", problem)
        violations.raise_if_any()
        password_hash = await self._hasher.hash(new_password)
        prt = password_reset_tokens
        async with self._engine.begin() as conn:
            used = (
                await conn.execute(
                    update(prt)
                    .where(
                        prt.c.token_hash == _digest(token),
                        prt.c.used_at.is_(None),
                        prt.c.expires_at > func.now(),
                    )
                    .values(used_at=func.now())
                    .returning(prt.c.user_id)
                )
            ).first()
            if used is None:
                raise InvalidArgument({"token": "is invalid, expired or already used"})
            await conn.execute(
                update(users)
                .where(users.c.id == used.user_id)
                .values(password_hash=password_hash, updated_at=func.now())
            )
            # Every other outstanding reset token and every session of the user ends here.
            await conn.execute(
                update(prt)
                .where(prt.c.user_id == used.user_id, prt.c.used_at.is_(None))
                .values(used_at=func.now())
            )
            await conn.execute(
                update(refresh_tokens)
                .where(
                    refresh_tokens.c.user_id == used.user_id, refresh_tokens.c.revoked_at.is_(None)
                )
                .values(revoked_at=func.now())
            )

    async def purge_expired(self) -> int:
        """Deletes refresh and reset tokens that expired over a day ago (they can never be
        used again; the day keeps recent ones around for support questions)."""
        removed = 0
        async with self._engine.begin() as conn:
            for table in (refresh_tokens, password_reset_tokens):
                result = await conn.execute(
                    delete(table).where(table.c.expires_at < func.now() - timedelta(days=1))
                )
                removed += int(result.rowcount)
        return removed

    # --- users ----------------------------------------------------------------------------

    async def get_user(self, user_id: uuid.UUID) -> Row[Any]:
        async with self._engine.connect() as conn:
            user = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        if user is None:
            raise NotFound("user not found")
        return user

    async def list_users(self, size: int, token: str) -> Page:
        limit = page_size(size)
        after = decode_created_keyset(token)
        query = select(users).order_by(users.c.created_at.desc(), users.c.id.desc())
        if after is not None:
            query = query.where(tuple_(users.c.created_at, users.c.id) < tuple_(*after))
        async with self._engine.connect() as conn:
            rows = list((await conn.execute(query.limit(limit + 1))).all())
            total = (await conn.execute(select(func.count()).select_from(users))).scalar_one()
        return _page(rows, limit, total)

    async def update_user(
        self, user_id: uuid.UUID, name: str | None, email: str | None, role: str | None
    ) -> Row[Any]:
        violations = Violations()
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = check_name("name", name, violations)
        if email is not None:
            changes["email"] = normalize_email("email", email, violations)
        if role is not None:
            changes["role"] = role
        violations.raise_if_any()
        try:
            async with self._engine.begin() as conn:
                current = await self._lock_user(conn, user_id)
                if role is not None and role != ROLE_ADMIN and current.role == ROLE_ADMIN:
                    await self._keep_an_admin(conn, user_id)
                if not changes:
                    return current
                return (
                    await conn.execute(
                        update(users)
                        .where(users.c.id == user_id)
                        .values(**changes, updated_at=func.now())
                        .returning(*users.c)
                    )
                ).one()
        except IntegrityError:
            raise AlreadyExists({"email": "is already registered"}) from None

    async def delete_user(self, user_id: uuid.UUID) -> None:
        async with self._engine.begin() as conn:
            current = await self._lock_user(conn, user_id)
            if current.role == ROLE_ADMIN:
                await self._keep_an_admin(conn, user_id)
            # Sessions, reset tokens go with it (ON DELETE CASCADE). Orders keep snapshots.
            await conn.execute(delete(users).where(users.c.id == user_id))

    async def _lock_user(self, conn: AsyncConnection, user_id: uuid.UUID) -> Row[Any]:
        user = (
            await conn.execute(select(users).where(users.c.id == user_id).with_for_update())
        ).first()
        if user is None:
            raise NotFound("user not found")
        return user

    async def _keep_an_admin(self, conn: AsyncConnection, leaving: uuid.UUID) -> None:
        # Locking every admin row serialises concurrent demotions of the last two admins.
        admins = (
            await conn.execute(
                select(users.c.id).where(users.c.role == ROLE_ADMIN).with_for_update()
            )
        ).all()
        if all(row.id == leaving for row in admins):
            raise FailedPrecondition("the last admin cannot be removed or demoted")

    async def ensure_admin(self, email: str, password: str, name: str = "Admin") -> Row[Any]:
        """Creates the admin account, or promotes an existing one (its password unchanged)."""
        violations = Violations()
        email = normalize_email("email", email, violations)
        if problem := password_problem(password):
            violations.add("password", problem)
        violations.raise_if_any()
        password_hash = await self._hasher.hash(password)
        async with self._engine.begin() as conn:
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
            return (await conn.execute(stmt)).one()

    # --- API keys -------------------------------------------------------------------------

    async def create_api_key(self, name: str, created_by: str) -> tuple[Row[Any], str]:
        violations = Violations()
        name = check_name("name", name, violations)
        violations.raise_if_any()
        key = "ek_" + secrets.token_urlsafe(32)
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    insert(api_keys)
                    .values(
                        id=uuid.uuid4(),
                        name=name,
                        prefix=key[:10],
                        key_hash=_digest(key),
                        created_by=created_by,
                    )
                    .returning(*api_keys.c)
                )
            ).one()
        return row, key

    async def list_api_keys(self, size: int, token: str) -> Page:
        limit = page_size(size)
        after = decode_created_keyset(token)
        query = (
            select(api_keys)
            .where(api_keys.c.revoked_at.is_(None))
            .order_by(api_keys.c.created_at.desc(), api_keys.c.id.desc())
        )
        if after is not None:
            query = query.where(tuple_(api_keys.c.created_at, api_keys.c.id) < tuple_(*after))
        async with self._engine.connect() as conn:
            rows = list((await conn.execute(query.limit(limit + 1))).all())
        return _page(rows, limit)

    async def revoke_api_key(self, key_id: uuid.UUID) -> None:
        async with self._engine.begin() as conn:
            revoked = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=func.now())
            )
        if revoked.rowcount == 0:
            raise NotFound("API key not found")

    async def find_api_key(self, key: str) -> Row[Any, Any] | None:
        async with self._engine.connect() as conn:
            return (
                await conn.execute(
                    select(api_keys.c.id, api_keys.c.name).where(
                        api_keys.c.key_hash == _digest(key), api_keys.c.revoked_at.is_(None)
                    )
                )
            ).first()


def _page(rows: list[Row[Any]], limit: int, total: int = 0) -> Page:
    if len(rows) <= limit:
        return Page(rows, "", total)
    last = rows[limit - 1]
    return Page(rows[:limit], encode_created_keyset(last.created_at, last.id), total)
