"""Forgotten passwords: a request announces itself; the email sender makes a single-use token.

The plain token exists only in that email, never in a table or a stream: `request` publishes
`PasswordResetRequested`, the consumer `send_email` makes the token, stores its hash and mails
it; `reset` spends it, sets the password and ends every session of the user.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

from ecom_runtime.db import Database, UnitOfWork
from ecom_runtime.email import EmailSender
from ecom_runtime.errors import InvalidArgument
from ecom_runtime.validation import Violations
from ecommerce.events.v1 import events_pb2
from sqlalchemy import delete, func, insert, select, update

from auth_service import errors
from auth_service.config import AuthSettings
from auth_service.passwords import PasswordHasher, password_problem
from auth_service.rules import check_email, digest
from auth_service.sessions import announce_access_change, end_all_sessions
from auth_service.store import password_reset_tokens, users


class PasswordResets:
    def __init__(
        self, db: Database, settings: AuthSettings, hasher: PasswordHasher, mailer: EmailSender
    ) -> None:
        self._db = db
        self._settings = settings
        self._hasher = hasher
        self._mailer = mailer

    async def request(self, email: str) -> None:
        """The caller gets the same answer whether or not the address has an account."""
        violations = Violations()
        email = check_email("email", email, violations)
        violations.raise_if_any()
        async with self._db.begin() as tx:
            user = (await tx.conn.execute(select(users).where(users.c.email == email))).first()
            if user is not None:
                tx.add(
                    events_pb2.PasswordResetRequested(
                        user_id=str(user.id), email=user.email, name=user.name
                    )
                )

    async def send_email(self, tx: UnitOfWork, event: events_pb2.PasswordResetRequested) -> None:
        """Event handler: creates a single-use token, stores its hash, emails the token."""
        user = (
            await tx.conn.execute(select(users).where(users.c.id == uuid.UUID(event.user_id)))
        ).first()
        if user is None:
            return  # deleted since
        token = secrets.token_urlsafe(32)
        ttl = timedelta(seconds=self._settings.auth_reset_token_ttl_seconds)
        await tx.conn.execute(
            insert(password_reset_tokens).values(
                id=uuid.uuid4(),
                user_id=user.id,
                token_hash=digest(token),
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
