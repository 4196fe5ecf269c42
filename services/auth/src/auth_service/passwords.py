"""Password hashing with bcrypt, off the event loop (a hash costs tens of milliseconds)."""

from __future__ import annotations

import asyncio

import bcrypt

MIN_LENGTH = 8
MAX_BYTES = 72  # bcrypt ignores (bcrypt 5 refuses) anything longer


def password_problem(password: str) -> str | None:
    """Why `password` is not acceptable, or None."""
    if not password.strip():
        return "is required"
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password.encode()) > MAX_BYTES:
        return f"must be at most {MAX_BYTES} bytes"
    return None


class PasswordHasher:
    def __init__(self, cost: int) -> None:
        self._cost = cost
        # Compared against when an email is unknown, so that login costs the same either way.
        self._decoy = bcrypt.hashpw(b"decoy-password", bcrypt.gensalt(cost))

    async def hash(self, password: str) -> str:
        hashed = await asyncio.to_thread(
            bcrypt.hashpw, password.encode(), bcrypt.gensalt(self._cost)
        )
        return hashed.decode()

    async def verify(self, password: str, hashed: str | None) -> bool:
        """True if `password` matches; with `hashed` None, burns the same time and says False."""
        candidate = password.encode()[:MAX_BYTES]
        target = hashed.encode() if hashed else self._decoy
        matches = await asyncio.to_thread(bcrypt.checkpw, candidate, target)
        return matches and hashed is not None
