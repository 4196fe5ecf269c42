"""Read-through cache of serialized responses in Redis, retired by version counters.

Three counters decide what is current, each bumped after the write's transaction commits:
- the catalog version (`catalog:cache:version`): any admin change (price, name, category,
  activation, a new or deleted product) retires every entry at once, in O(1), so a price is
  never stale;
- a product's stock version (field `<id>` of the hash `catalog:cache:pv`): a stock change (a
  checkout's reservation, its commit or release, an admin's count) retires only that
  product's entry;
- the in-stock version (`catalog:cache:stock`): only when some product goes in or out of stock,
  retiring the pages filtered by `in_stock`, whose membership that changes.

A page (list, search, category) is cached whole, with its product ids and the stock epoch (a
counter every stock change bumps) it was stored at. Each product is also its own entry. While
no stock changed since, a page is one read as before; after a change, its products' stock
versions are checked and only retired products are read from PostgreSQL again, and the page is
stored afresh. Every step is one round trip (a Lua script). So a busy checkout keeps every page
cached and re-reads only the products it touched. A reader that saw an old version may still
store what it built from old rows, but only under that old version, where nobody looks again.

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
# Bumped by every stock change: a page built since the last one is current as a whole.
STOCK_EPOCH_KEY = PREFIX + "stock-epoch"

# KEYS[1] = catalog version key, ARGV[1] = the entry's name.
_READ = """
local version = redis.call('GET', KEYS[1]) or '0'
return {version, redis.call('GET', 'catalog:cache:' .. version .. ':' .. ARGV[1])}
"""
STOCK_VERSIONS_KEY = PREFIX + "pv"  # a hash: product id -> stock version
# Product entries are stored as elements of a repeated field number 1, which is `products` in
# every page response (ListProducts, SearchProducts, ListCategoryProducts): a page's products
# are then the plain concatenation of their entries.
PRODUCTS_FIELD = 1
_ELEMENT_TAG = bytes([PRODUCTS_FIELD << 3 | 2])  # wire type 2: length-delimited

# KEYS[1] = catalog version key, KEYS[2] = stock versions hash, ARGV[1] = product id.
_READ_PRODUCT = """
local version = redis.call('GET', KEYS[1]) or '0'
local pv = redis.call('HGET', KEYS[2], ARGV[1]) or '0'
local key = 'catalog:cache:' .. version .. ':product:' .. ARGV[1] .. ':' .. pv
return {version, pv, redis.call('GET', key)}
"""
# A page entry is "<stock epoch>\n<product ids, comma-separated>\n<skeleton length>\n"
# followed by the page's whole response (skeleton, then its products as the repeated field).
# KEYS: catalog version, in-stock version, stock versions hash, stock epoch; ARGV[1] = page
# name, ARGV[2] = '1' when the page depends on what is in stock. Answers {version, in-stock
# version, epoch, mode, ...}:
# - "miss": no page;
# - "hit", response: no stock changed anywhere since the page was stored (two GETs, as cheap
#   as a whole cached response);
# - "fresh", skeleton, ids, products: stock changed somewhere, every product of the page has
#   a current entry (HMGET of their stock versions, MGET of the entries);
# - "partial", skeleton, ids, pv1, entry1, ...: some entries retired (nil), to load.
_READ_PAGE = """
local version = redis.call('GET', KEYS[1]) or '0'
local stock = '-'
if ARGV[2] == '1' then stock = redis.call('GET', KEYS[2]) or '0' end
local epoch = redis.call('GET', KEYS[4]) or '0'
local prefix = 'catalog:cache:' .. version .. ':'
local page = redis.call('GET', prefix .. stock .. ':' .. ARGV[1])
if not page then return {version, stock, epoch, 'miss'} end
local first = string.find(page, '\\n', 1, true)
local second = string.find(page, '\\n', first + 1, true)
local third = string.find(page, '\\n', second + 1, true)
local body = string.sub(page, third + 1)
if string.sub(page, 1, first - 1) == epoch then return {version, stock, epoch, 'hit', body} end
local id_list = string.sub(page, first + 1, second - 1)
local skeleton = string.sub(body, 1, tonumber(string.sub(page, second + 1, third - 1)))
local ids = {}
for id in string.gmatch(id_list, '[^,]+') do ids[#ids + 1] = id end
if #ids == 0 then return {version, stock, epoch, 'fresh', skeleton, id_list, ''} end
local pvs = redis.call('HMGET', KEYS[3], unpack(ids))
local keys = {}
for i, id in ipairs(ids) do
  pvs[i] = pvs[i] or '0'
  keys[i] = prefix .. 'product:' .. id .. ':' .. pvs[i]
end
local entries = redis.call('MGET', unpack(keys))
for i = 1, #ids do
  if not entries[i] then
    local out = {version, stock, epoch, 'partial', skeleton, id_list}
    for j = 1, #ids do
      out[#out + 1] = pvs[j]
      out[#out + 1] = entries[j]
    end
    return out
  end
end
return {version, stock, epoch, 'fresh', skeleton, id_list, table.concat(entries)}
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
                keys=[VERSION_KEY, STOCK_VERSIONS_KEY], args=[product_id]
            )
        except RedisError as error:
            self._failed(error)
            return await build()
        if cached is not None:
            return _element_value(bytes(cached))
        value = await build()
        key = _product_key(version, product_id, stock_version)
        await self._store({key: _element(value)})
        return value

    async def page(
        self, key: str, *, in_stock_only: bool, build: BuildPage, load: LoadProducts
    ) -> bytes:
        """A page's response, encoded: its skeleton followed by its products as the repeated
        field PRODUCTS_FIELD (see the module docstring and _READ_PAGE)."""
        if not self._available():
            skeleton, _, built = await build()
            return skeleton + b"".join(map(_element, built))
        try:
            found = await self._read_page(
                keys=[VERSION_KEY, IN_STOCK_KEY, STOCK_VERSIONS_KEY, STOCK_EPOCH_KEY],
                args=[key, "1" if in_stock_only else "0"],
            )
        except RedisError as error:
            self._failed(error)
            skeleton, _, built = await build()
            return skeleton + b"".join(map(_element, built))
        version, stock, epoch, mode = (part.decode() for part in found[:4])
        if mode == "hit":
            return bytes(found[4])
        products: bytes
        if mode == "miss":
            skeleton, ids, built = await build()
            products = b"".join(map(_element, built))
        else:
            skeleton, ids = bytes(found[4]), found[5].decode().split(",") if found[5] else []
            if mode == "fresh":
                products = bytes(found[6])
            else:
                products = await self._fill(version, ids, found[6::2], found[7::2], load)
        # Under the epoch read first: a stock change since makes the next read check again.
        header = f"{epoch}\n{','.join(ids)}\n{len(skeleton)}\n".encode()
        await self._store({f"{PREFIX}{version}:{stock}:{key}": header + skeleton + products})
        return skeleton + products

    async def _fill(
        self,
        version: str,
        ids: list[str],
        stock_versions: list[bytes],
        entries: list[bytes | None],
        load: LoadProducts,
    ) -> bytes:
        """The page's products: cached entries, and those retired read again and cached."""
        missing = [i for i, entry in zip(ids, entries, strict=True) if entry is None]
        loaded = {i: _element(value) for i, value in (await load(missing)).items()}
        versions = dict(zip(ids, stock_versions, strict=True))
        # Under the stock versions read before loading: a change since retires them.
        await self._store({_product_key(version, i, versions[i]): v for i, v in loaded.items()})
        return b"".join(
            bytes(entry) if entry is not None else loaded[i]
            for i, entry in zip(ids, entries, strict=True)
            if entry is not None or i in loaded
        )

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
                    pipe.hincrby(STOCK_VERSIONS_KEY, product_id, 1)
                pipe.incr(STOCK_EPOCH_KEY)
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


def _element(product: bytes) -> bytes:
    """A serialized product as an element of the repeated field PRODUCTS_FIELD."""
    return _ELEMENT_TAG + _varint(len(product)) + product


def _element_value(element: bytes) -> bytes:
    """The serialized product inside an element (the inverse of `_element`)."""
    shift, length, position = 0, 0, len(_ELEMENT_TAG)
    while True:
        byte = element[position]
        length |= (byte & 0x7F) << shift
        position += 1
        if byte < 0x80:
            return element[position : position + length]
        shift += 7


def _varint(value: int) -> bytes:
    """Protobuf's base-128 varint (the library keeps its encoder private)."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
