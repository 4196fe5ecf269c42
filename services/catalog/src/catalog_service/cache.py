"""Read-through cache of serialized responses in Redis, invalidated by a version counter.

Every cached value lives under the catalog's current version; a write bumps the version after
its transaction commits, which retires every cached page at once in O(1). Reading the version
and the value is one round trip (a Lua script). A reader that saw the old version may still
store a page it built from old rows, but only under the old version, where nobody looks again.

Redis is an optimisation, never a dependency: when it fails the service answers from
PostgreSQL and leaves Redis alone for a few seconds. A version bump that failed is retried
until it succeeds, so a cache that comes back cannot serve pages older than the outage.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger("catalog.cache")

VERSION_KEY = "catalog:cache:version"
# KEYS[1] = version key, ARGV[1] = the entry's name. Builds the versioned key server-side.
_READ = """
local version = redis.call('GET', KEYS[1]) or '0'
return {version, redis.call('GET', 'catalog:cache:' .. version .. ':' .. ARGV[1])}
"""


def cache_key(kind: str, request: bytes) -> str:
    """A short name for a request: its kind and a digest of its deterministic encoding."""
    return f"{kind}:{hashlib.blake2b(request, digest_size=16).hexdigest()}"


class CatalogCache:
    def __init__(self, url: str, ttl_seconds: int, *, retry_after_seconds: float = 3.0) -> None:
        # Short timeouts: a slow Redis must cost a request milliseconds, not seconds.
        self._redis = redis.Redis.from_url(
            url, socket_timeout=0.25, socket_connect_timeout=0.25, health_check_interval=0
        )
        self._read = self._redis.register_script(_READ)
        self._ttl = ttl_seconds
        self._retry_after = retry_after_seconds
        self._down_until = 0.0
        self._bump_pending = False

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, error: Exception) -> None:
        if self._available():
            log.warning("redis unavailable, serving from PostgreSQL: %s", error)
        self._down_until = time.monotonic() + self._retry_after

    async def get_or_build(self, key: str, build: Callable[[], Awaitable[bytes]]) -> bytes:
        """The cached bytes for `key`, or `build()`'s result, stored for next time."""
        if not self._available() or self._bump_pending:
            return await build()
        try:
            version, cached = await self._read(keys=[VERSION_KEY], args=[key])
        except RedisError as error:
            self._failed(error)
            return await build()
        if cached is not None:
            return bytes(cached)
        value = await build()
        try:
            await self._redis.set(f"catalog:cache:{version.decode()}:{key}", value, ex=self._ttl)
        except RedisError as error:
            self._failed(error)
        return value

    async def invalidate(self) -> None:
        """Retire every cached entry. Call after the write's transaction has committed."""
        try:
            await self._redis.incr(VERSION_KEY)
            self._bump_pending = False
        except RedisError as error:
            self._failed(error)
            self._bump_pending = True  # reads bypass the cache until a bump succeeds

    async def retry_pending_invalidation(self, interval_seconds: float = 0.5) -> None:
        """Background loop: finish a version bump that failed while Redis was down."""
        while True:
            await asyncio.sleep(interval_seconds)
            if self._bump_pending:
                await self.invalidate()

    async def close(self) -> None:
        await self._redis.aclose()
