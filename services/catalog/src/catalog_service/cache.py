"""Read-through cache of serialized responses in Redis, retired by version counters.

Three counters decide what is current, each bumped after the write's transaction commits:
- the catalog version (`catalog:cache:version`): any admin change (price, name, category,
  activation, a new or deleted product) retires every entry at once, in O(1), so a price is
  never stale;
- a product's stock version (`catalog:cache:pv:<id>`): a stock change (a checkout's
  reservation, its commit or release, an admin's count) retires only that product's entry;
- the in-stock version (`catalog:cache:stock`): only when some product goes in or out of stock,
  retiring the pages filtered by `in_stock`, whose membership that changes.

A page (list, search, category) is cached as its skeleton (order, totals, facets, token) plus
its product ids; each product is a separate entry. Reading a page, its products and all the
versions involved is one round trip (a Lua script); products whose entry was retired are read
from PostgreSQL and cached again. So a busy checkout keeps every page cached and re-reads only
the products it touched. A reader that saw an old version may still store what it built from
old rows, but only under that old version, where nobody looks again.

Counters carry no TTL and entries do: with `maxmemory-policy volatile-lru` Redis evicts entries,
never counters (an evicted counter would read as 0 again and could resurrect old entries).

Redis is an optimisation, never a dependency: when it fails the service answers from
PostgreSQL and leaves Redis alone for a few seconds. A bump that failed is retried (as a bump
of the catalog version) until it succeeds, so a cache that comes back cannot serve entries
older than the outage.
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

PREFIX = "catalog:cache:"
VERSION_KEY = PREFIX + "version"
IN_STOCK_KEY = PREFIX + "stock"
PAGE_SEPARATOR = b"|"  # between a page's comma-separated product ids and its skeleton

# KEYS[1] = catalog version key, ARGV[1] = the entry's name.
_READ = """
local version = redis.call('GET', KEYS[1]) or '0'
return {version, redis.call('GET', 'catalog:cache:' .. version .. ':' .. ARGV[1])}
"""
# KEYS[1] = catalog version key, ARGV[1] = product id.
_READ_PRODUCT = """
local version = redis.call('GET', KEYS[1]) or '0'
local pv = redis.call('GET', 'catalog:cache:pv:' .. ARGV[1]) or '0'
local key = 'catalog:cache:' .. version .. ':product:' .. ARGV[1] .. ':' .. pv
return {version, pv, redis.call('GET', key)}
"""
# KEYS[1] = catalog version key, KEYS[2] = in-stock version key; ARGV[1] = page name,
# ARGV[2] = '1' when the page depends on what is in stock. Returns the versions, the page and,
# per product of the page, its stock version and its entry (nil when retired).
_READ_PAGE = """
local version = redis.call('GET', KEYS[1]) or '0'
local stock = '-'
if ARGV[2] == '1' then stock = redis.call('GET', KEYS[2]) or '0' end
local prefix = 'catalog:cache:' .. version .. ':'
local page = redis.call('GET', prefix .. stock .. ':' .. ARGV[1])
local out = {version, stock, page or false}
if page then
  local ids = string.sub(page, 1, string.find(page, '|', 1, true) - 1)
  for id in string.gmatch(ids, '[^,]+') do
    local pv = redis.call('GET', 'catalog:cache:pv:' .. id) or '0'
    table.insert(out, pv)
    table.insert(out, redis.call('GET', prefix .. 'product:' .. id .. ':' .. pv) or false)
  end
end
return out
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


def _product_key(version: bytes | str, product_id: str, stock_version: bytes | str) -> str:
    def text(value: bytes | str) -> str:
        return value.decode() if isinstance(value, bytes) else value

    return f"{PREFIX}{text(version)}:product:{product_id}:{text(stock_version)}"


Build = Callable[[], Awaitable[bytes]]
# A page built from PostgreSQL: (skeleton, product ids in order, each product serialized).
BuildPage = Callable[[], Awaitable[tuple[bytes, list[str], list[bytes]]]]
# Products read from PostgreSQL by id: id -> serialized product (absent if gone).
LoadProducts = Callable[[list[str]], Awaitable[dict[str, bytes]]]


class CatalogCache:
    def __init__(self, url: str, ttl_seconds: int, *, retry_after_seconds: float = 3.0) -> None:
        # Short timeouts: a slow Redis must cost a request milliseconds, not seconds.
        self._redis = redis.Redis.from_url(
            url, socket_timeout=0.25, socket_connect_timeout=0.25, health_check_interval=0
        )
        self._read = self._redis.register_script(_READ)
        self._read_product = self._redis.register_script(_READ_PRODUCT)
        self._read_page = self._redis.register_script(_READ_PAGE)
        self._ttl = ttl_seconds
        self._retry_after = retry_after_seconds
        self._down_until = 0.0
        self._bump_pending = False

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until and not self._bump_pending

    def _failed(self, error: Exception) -> None:
        if time.monotonic() >= self._down_until:
            log.warning("redis unavailable, serving from PostgreSQL: %s", error)
        self._down_until = time.monotonic() + self._retry_after

    async def _store(self, entries: dict[str, bytes]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value in entries.items():
                    pipe.set(key, value, ex=self._ttl)
                await pipe.execute()
        except RedisError as error:
            self._failed(error)

    async def get_or_build(self, key: str, build: Build) -> bytes:
        """The cached bytes for `key` (retired by the catalog version only), or `build()`'s
        result, stored for next time."""
        if not self._available():
            return await build()
        try:
            version, cached = await self._read(keys=[VERSION_KEY], args=[key])
        except RedisError as error:
            self._failed(error)
            return await build()
        if cached is not None:
            return bytes(cached)
        value = await build()
        await self._store({f"{PREFIX}{version.decode()}:{key}": value})
        return value

    async def product(self, product_id: str, build: Build) -> bytes:
        """One product, retired by the catalog version and its own stock version."""
        if not self._available():
            return await build()
        try:
            version, stock_version, cached = await self._read_product(
                keys=[VERSION_KEY], args=[product_id]
            )
        except RedisError as error:
            self._failed(error)
            return await build()
        if cached is not None:
            return bytes(cached)
        value = await build()
        key = _product_key(version, product_id, stock_version)
        await self._store({key: value})
        return value

    async def page(
        self, key: str, *, in_stock_only: bool, build: BuildPage, load: LoadProducts
    ) -> tuple[bytes, list[bytes]]:
        """A page's skeleton and its products, in order (see the module docstring)."""
        if not self._available():
            skeleton, _, products = await build()
            return skeleton, products
        try:
            found = await self._read_page(
                keys=[VERSION_KEY, IN_STOCK_KEY], args=[key, "1" if in_stock_only else "0"]
            )
        except RedisError as error:
            self._failed(error)
            skeleton, _, products = await build()
            return skeleton, products
        version, stock, cached = found[0].decode(), found[1].decode(), found[2]
        if cached is None:
            skeleton, ids, products = await build()
            body = ",".join(ids).encode() + PAGE_SEPARATOR + skeleton
            await self._store({f"{PREFIX}{version}:{stock}:{key}": body})
            return skeleton, products
        ids_part, _, skeleton = bytes(cached).partition(PAGE_SEPARATOR)
        ids = ids_part.decode().split(",") if ids_part else []
        stock_versions = dict(zip(ids, found[3::2], strict=True))
        entries = found[4::2]
        missing = [i for i, entry in zip(ids, entries, strict=True) if entry is None]
        loaded = await load(missing) if missing else {}
        if loaded:
            # Under the stock versions read before loading: a change since retires them.
            await self._store(
                {_product_key(version, i, stock_versions[i]): v for i, v in loaded.items()}
            )
        products = [
            bytes(entry) if entry is not None else loaded[i]
            for i, entry in zip(ids, entries, strict=True)
            if entry is not None or i in loaded
        ]
        return skeleton, products

    async def invalidate(self) -> None:
        """Retire every cached entry (an admin change). Call after the commit."""
        try:
            await self._redis.incr(VERSION_KEY)
            self._bump_pending = False
        except RedisError as error:
            self._failed(error)
            self._bump_pending = True  # reads bypass the cache until a bump succeeds

    async def stock_changed(self, product_ids: list[str], crossed: bool) -> None:
        """Retire the entries of these products (their stock changed); with `crossed`, some
        went in or out of stock, so pages filtered by `in_stock` go too. After the commit."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for product_id in product_ids:
                    pipe.incr(f"{PREFIX}pv:{product_id}")
                if crossed:
                    pipe.incr(IN_STOCK_KEY)
                await pipe.execute()
        except RedisError as error:
            self._failed(error)
            self._bump_pending = True  # retried as a catalog version bump: retires all

    async def retry_pending_invalidation(self, interval_seconds: float = 0.5) -> None:
        """Background loop: finish a version bump that failed while Redis was down."""
        while True:
            await asyncio.sleep(interval_seconds)
            if self._bump_pending:
                await self.invalidate()

    async def close(self) -> None:
        await self._redis.aclose()
