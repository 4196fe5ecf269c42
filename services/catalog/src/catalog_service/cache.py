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
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as redis
from ecom_runtime.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
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


# The sort a request without one gets, by request type (as the servicer defaults it).
_DEFAULT_SORTS = {
    "ecommerce.catalog.v1.ListProductsRequest": "newest",
    "ecommerce.catalog.v1.ListCategoryProductsRequest": "newest",
    "ecommerce.catalog.v1.SearchProductsRequest": "relevance",
}
_ID_FIELDS = ("id", "category_id")  # parsed as UUIDs: any spelling uuid.UUID takes is one id


def normalized_request(request: Message) -> Message:
    """A copy of `request` with what the answer does not depend on put one way.

    So variants of one question share a cache entry, and nobody can fill Redis with them:
    page_size 0 is the default and anything above the maximum is the maximum (AIP-158); an
    empty sort is the RPC's default sort; ids are in canonical form; the search words are
    trimmed, lower-cased and single-spaced (both backends ignore case and spacing); fields
    this server does not know are dropped. Accents are kept: PostgreSQL's unaccent rules and
    Elasticsearch's asciifolding each fold their own set of characters, neither is Unicode's
    decomposition, so folding here could give two different answers one key.

    Only for requests that passed validation: an invalid one is never cached anyway.
    """
    normal: Any = type(request)()  # Any: the fields depend on the request type
    normal.CopyFrom(request)
    normal.DiscardUnknownFields()
    fields = normal.DESCRIPTOR.fields_by_name
    if "page_size" in fields:
        size = normal.page_size
        if size == 0:
            normal.page_size = DEFAULT_PAGE_SIZE
        elif size > MAX_PAGE_SIZE:
            normal.page_size = MAX_PAGE_SIZE
    default_sort = _DEFAULT_SORTS.get(normal.DESCRIPTOR.full_name)
    if default_sort and "sort" in fields and not normal.sort:
        normal.sort = default_sort
    for name in _ID_FIELDS:
        if name in fields and fields[name].type == FieldDescriptor.TYPE_STRING:
            value = getattr(normal, name)
            with contextlib.suppress(ValueError):
                setattr(normal, name, str(uuid.UUID(value)) if value else value)
    if "q" in fields:
        normal.q = " ".join(normal.q.split()).lower()
    return normal


def normalized_key(kind: str, request: Message) -> str:
    """cache_key of the request once normalized: one key per distinct answer."""
    return cache_key(kind, normalized_request(request).SerializeToString(deterministic=True))


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
