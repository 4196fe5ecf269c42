"""Fixed windows in Redis, shared by every replica of the service and so by every edge."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("ecom.ratelimit")

# One round trip, atomic: count the hits; the first hit of a window starts its expiry. A key
# without expiry (never expected) gets one too, so no client stays limited forever.
WINDOW_SCRIPT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {count, ttl}
"""


@dataclass(frozen=True)
class Budget:
    name: str  # "auth" or "default": the descriptor's `budget` entry
    limit: int
    window_seconds: int


@dataclass(frozen=True)
class Usage:
    count: int  # hits in the current window, this request's included
    reset_ms: int  # until the window ends


class FixedWindows:
    """Counts hits per key in windows of a budget's length, starting at a key's first hit.

    Redis errors and timeouts are not raised: `hit` returns None (the caller lets the request
    through) and `fail_open_total` counts them, logged at most once per `log_every` seconds.
    """

    def __init__(self, client: aioredis.Redis, timeout: float, log_every: float = 10.0) -> None:
        self._client = client
        self._script = client.register_script(WINDOW_SCRIPT)
        self._timeout = timeout
        self._log_every = log_every
        self._last_log = float("-inf")
        self.fail_open_total = 0

    async def hit(self, key: str, budget: Budget, hits: int) -> Usage | None:
        try:
            async with asyncio.timeout(self._timeout * 2):
                count, ttl = await self._script(
                    keys=[key], args=[hits, budget.window_seconds * 1000]
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return None
        return Usage(int(count), int(ttl))

    def _failed(self, exc: BaseException) -> None:
        self.fail_open_total += 1
        now = time.monotonic()
        if now - self._last_log >= self._log_every:
            self._last_log = now
            log.warning(
                "rate-limit store unavailable; allowing requests (fail open)",
                extra={"fail_open_total": self.fail_open_total, "error": repr(exc)},
            )
