"""Product lists and full-text search in Elasticsearch (the optional search backend).

The index is fed from ProductChanged events (`apply`) and rebuilt from PostgreSQL (`reindex`).
Searches always go through the alias `<index>`; every physical index is `<index>-<suffix>`, so a
reindex builds a fresh index aside and swaps the alias in one atomic step (zero downtime).

Words match name, SKU and description with typo tolerance, name prefixes match too ("lapt"
finds "laptop"), and accents and case never matter. Paging uses `search_after` on the sort
key plus id, like the PostgreSQL backend's keyset.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from ecom_runtime.errors import InvalidArgument
from ecom_runtime.paging import (
    decode_token,
    encode_token,
    position_float,
    position_int,
    position_str,
)
from ecommerce.events.v1 import events_pb2
from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError, helpers
from elasticsearch import BadRequestError as EsBadRequest
from google.protobuf.timestamp_pb2 import Timestamp

from catalog_service.search import PRICE_BAND_EDGES, ProductQuery, SearchHits

# More than any shop has categories, so the facet lists every category with hits.
CATEGORY_FACET_SIZE = 10_000

INDEX_SETTINGS: dict[str, Any] = {
    "analysis": {
        "filter": {
            # Every leading part of a word, so a word being typed matches already.
            "prefixes": {"type": "edge_ngram", "min_gram": 1, "max_gram": 20},
        },
        "analyzer": {
            "folded": {
                "type": "custom",
                "tokenizer": "standard",
                "filter": ["lowercase", "asciifolding"],
            },
            "folded_prefixes": {
                "type": "custom",
                "tokenizer": "standard",
                "filter": ["lowercase", "asciifolding", "prefixes"],
            },
        },
        "normalizer": {
            "folded": {"type": "custom", "filter": ["lowercase", "asciifolding"]},
        },
    },
}

INDEX_MAPPINGS: dict[str, Any] = {
    # A field build_document does not know about is a bug, not something to guess a type for.
    "dynamic": "strict",
    "properties": {
        "id": {"type": "keyword"},
        "sku": {"type": "keyword", "normalizer": "folded"},
        "name": {
            "type": "text",
            "analyzer": "folded",
            "fields": {
                # Edge n-grams at index time only: the query's words must not be cut up too.
                "prefix": {
                    "type": "text",
                    "analyzer": "folded_prefixes",
                    "search_analyzer": "folded",
                },
                "sort": {"type": "keyword", "normalizer": "folded"},
            },
        },
        "description": {"type": "text", "analyzer": "folded"},
        "price_cents": {"type": "long"},
        "currency": {"type": "keyword"},
        "category_id": {"type": "keyword"},
        "category_ancestor_ids": {"type": "keyword"},
        "stock": {"type": "integer"},
        "active": {"type": "boolean"},
        "created_at": {"type": "date"},
        "updated_at": {"type": "date"},
    },
}

# The id tiebreak goes the same way as the main key, as in the PostgreSQL backend.
_SORTS: dict[str, list[dict[str, str]]] = {
    "relevance": [{"_score": "desc"}, {"id": "desc"}],
    "newest": [{"created_at": "desc"}, {"id": "desc"}],
    "price_asc": [{"price_cents": "asc"}, {"id": "asc"}],
    "price_desc": [{"price_cents": "desc"}, {"id": "desc"}],
    "name": [{"name.sort": "asc"}, {"id": "asc"}],
}
# What the first sort value of a hit is (dates come back as epoch milliseconds).
_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "relevance": (float, int),
    "newest": (int,),
    "price_asc": (int,),
    "price_desc": (int,),
    "name": (str,),
}


def _iso(ts: Timestamp) -> str:
    return ts.ToDatetime(tzinfo=UTC).isoformat()


def build_document(event: events_pb2.ProductChanged) -> dict[str, Any]:
    """The indexed document of a product snapshot (not for a DELETED event)."""
    return {
        "id": event.product_id,
        "sku": event.sku,
        "name": event.name,
        "description": event.description,
        "price_cents": event.price_cents,
        "currency": event.currency,
        "category_id": event.category_id or None,
        "category_ancestor_ids": list(event.category_ancestor_ids),
        "stock": event.stock,  # sellable units; only its crossing of 0 is sure to be current
        "active": event.active,
        "created_at": _iso(event.created_at) if event.HasField("created_at") else None,
        "updated_at": _iso(event.updated_at) if event.HasField("updated_at") else None,
    }


def _text_query(text: str) -> dict[str, Any]:
    return {
        "bool": {
            "should": [
                # Whole words, typos allowed; every word must be in the field, as in Postgres.
                {
                    "multi_match": {
                        "query": text,
                        "fields": ["name^3", "sku^3", "description"],
                        "fuzziness": "AUTO",
                        "operator": "and",
                    }
                },
                # Prefixes of name words, without fuzziness: a fuzzy prefix matches nearly
                # anything ("cab" would find "car..." and "cat...").
                {"match": {"name.prefix": {"query": text, "operator": "and", "boost": 2}}},
            ],
            "minimum_should_match": 1,
        }
    }


def _filters(query: ProductQuery) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = []
    if not query.include_inactive:
        filters.append({"term": {"active": True}})
    if query.category_ids is not None:
        # The service hands over the category with all its descendants (from the live tree),
        # so matching the product's own category is exact. An empty list matches nothing.
        filters.append({"terms": {"category_id": [str(c) for c in query.category_ids]}})
    price: dict[str, int] = {}
    if query.min_price_cents is not None:
        price["gte"] = query.min_price_cents
    if query.max_price_cents is not None:
        price["lte"] = query.max_price_cents
    if price:
        filters.append({"range": {"price_cents": price}})
    if query.in_stock:
        filters.append({"range": {"stock": {"gt": 0}}})
    return filters


def _price_ranges() -> list[dict[str, Any]]:
    """One range per band of PRICE_BAND_EDGES (`to` is exclusive); the last has no end."""
    ends: list[int | None] = [*PRICE_BAND_EDGES[1:], None]
    ranges = []
    for i, (start, end) in enumerate(zip(PRICE_BAND_EDGES, ends, strict=True)):
        band: dict[str, Any] = {"key": str(i), "from": start}
        if end is not None:
            band["to"] = end
        ranges.append(band)
    return ranges


def build_query(query: ProductQuery, search_after: list[Any] | None) -> dict[str, Any]:
    """The _search request body: one page (plus one hit, to know if more follow) and facets."""
    body: dict[str, Any] = {
        "query": {
            "bool": {
                "must": [_text_query(query.text) if query.text else {"match_all": {}}],
                "filter": _filters(query),
            }
        },
        "sort": _SORTS[query.sort],
        "size": query.page_size + 1,
        "track_total_hits": True,  # an exact total_size, not "10,000 or more"
        "_source": False,  # the ids are all the service needs; it loads products from Postgres
        # Aggregations ignore search_after: they count every page.
        "aggs": {
            "categories": {"terms": {"field": "category_id", "size": CATEGORY_FACET_SIZE}},
            "price_bands": {"range": {"field": "price_cents", "ranges": _price_ranges()}},
        },
    }
    if search_after is not None:
        body["search_after"] = search_after
    return body


def encode_page_token(sort: str, sort_values: list[Any]) -> str:
    return encode_token({"s": sort, "k": sort_values})


def decode_page_token(token: str, sort: str) -> list[Any] | None:
    """The search_after values a token carries, or None for the first page."""
    position = decode_token(token, keys=("s", "k"))
    if position is None:
        return None
    values = position["k"]
    if position["s"] != sort:
        raise InvalidArgument({"page_token": "belongs to another query (sort changed?)"})
    if (
        not isinstance(values, list)
        or len(values) != 2
        or isinstance(values[0], bool)
        or not isinstance(values[0], _KEY_TYPES[sort])
    ):
        raise InvalidArgument({"page_token": "is not a token this API issued"})
    # Within what the fields hold, so Elasticsearch cannot refuse the search_after instead.
    if sort == "relevance":
        position_float(values[0])
    elif sort == "name":
        position_str(values[0], max_length=1_000)
    else:  # epoch milliseconds or cents: an Elasticsearch long
        position_int(values[0], low=-(2**63), high=2**63 - 1)
    position_str(values[1], max_length=64)
    return values


class ElasticsearchSearch:
    """The search port over an Elasticsearch alias, plus what keeps the index current."""

    def __init__(self, client: AsyncElasticsearch, index: str) -> None:
        self._client = client
        self._alias = index
        self._ensured = False

    async def search(self, query: ProductQuery) -> SearchHits:
        # Decoded before any request: a foreign token is the caller's error, not ours.
        after = decode_page_token(query.page_token, query.sort)
        response = await self._client.search(index=self._alias, body=build_query(query, after))
        hits = response["hits"]["hits"]
        next_token = ""
        if len(hits) > query.page_size:
            next_token = encode_page_token(query.sort, hits[query.page_size - 1]["sort"])
        aggs = response["aggregations"]
        bands = [0] * len(PRICE_BAND_EDGES)
        for bucket in aggs["price_bands"]["buckets"]:
            bands[int(bucket["key"])] = bucket["doc_count"]
        return SearchHits(
            product_ids=[uuid.UUID(hit["_id"]) for hit in hits[: query.page_size]],
            total=response["hits"]["total"]["value"],
            next_page_token=next_token,
            category_counts={
                uuid.UUID(b["key"]): b["doc_count"] for b in aggs["categories"]["buckets"]
            },
            price_band_counts=bands,
        )

    async def ensure_index(self) -> None:
        """Creates the first physical index behind the alias, unless the alias exists."""
        if await self._client.indices.exists(index=self._alias):
            self._ensured = True
            return
        try:
            # A fixed name: two processes starting at once cannot both create one.
            await self._client.indices.create(
                index=f"{self._alias}-initial",
                settings=INDEX_SETTINGS,
                mappings=INDEX_MAPPINGS,
                aliases={self._alias: {}},
            )
        except EsBadRequest as error:
            if error.error != "resource_already_exists_exception":
                raise
        self._ensured = True

    async def apply(self, event: events_pb2.ProductChanged) -> None:
        """Indexes or deletes one product; an event older than what is indexed changes nothing.

        Elasticsearch keeps the product's `version` (external versioning) and refuses a write
        that does not raise it, so redelivered and out-of-order events are harmless. The
        version of a deleted document is remembered for `index.gc_deletes` (60 s by default).
        """
        if not self._ensured:
            # An external-version write to a missing alias would auto-create a plain index.
            await self.ensure_index()
        try:
            if event.kind == events_pb2.PRODUCT_CHANGE_KIND_DELETED:
                await self._client.delete(
                    index=self._alias,
                    id=event.product_id,
                    version=event.version,
                    version_type="external",
                )
            else:
                await self._client.index(
                    index=self._alias,
                    id=event.product_id,
                    document=build_document(event),
                    version=event.version,
                    version_type="external",
                    require_alias=True,
                )
        except ConflictError as error:
            # Elasticsearch holds this version or a newer one: a repeat or an older event.
            if error.error != "version_conflict_engine_exception":
                raise
        except NotFoundError as error:
            # Deleting a product that was never indexed is fine; a missing index is not.
            if not (isinstance(error.body, dict) and error.body.get("result") == "not_found"):
                raise

    async def reindex(
        self, rows: AsyncIterator[events_pb2.ProductChanged], batch: int = 1000
    ) -> int:
        """Builds a fresh index from `rows`, swaps the alias onto it, drops the old one.

        Returns how many documents were indexed. Searches keep using the old index until the
        swap. Changes applied while this runs land in the old index only, so afterwards replay
        (with `apply`) the products changed since the start: versions make repeats harmless.
        """
        index = f"{self._alias}-{datetime.now(UTC):%Y%m%d%H%M%S%f}"
        # No refreshes during the load: faster, and nobody searches this index yet.
        await self._client.indices.create(
            index=index,
            settings={**INDEX_SETTINGS, "refresh_interval": "-1"},
            mappings=INDEX_MAPPINGS,
        )
        try:
            indexed, _ = await helpers.async_bulk(
                self._client,
                _bulk_actions(rows, index),
                chunk_size=batch,
                ignore_status=(409,),  # the same product twice in `rows`: the newer one wins
            )
            await self._client.indices.put_settings(
                index=index, settings={"refresh_interval": None}
            )
            await self._client.indices.refresh(index=index)
        except BaseException:
            await self._client.indices.delete(index=index, ignore_unavailable=True)
            raise
        # Not cleaned up on failure: the swap may have happened even if its answer was lost.
        old = await self._swap_alias(index)
        for name in old:
            await self._client.indices.delete(index=name, ignore_unavailable=True)
        self._ensured = True
        return indexed

    async def _swap_alias(self, index: str) -> list[str]:
        """Points the alias at `index` alone, atomically; returns the indices it left."""
        alias = self._alias
        actions: list[dict[str, Any]] = [{"add": {"index": index, "alias": alias}}]
        old: list[str] = []
        if await self._client.indices.exists_alias(name=alias):
            old = list((await self._client.indices.get_alias(name=alias)).body)
            actions += [{"remove": {"index": name, "alias": alias}} for name in old]
        elif await self._client.indices.exists(index=alias):
            # A plain index holds the alias's name (auto-created): drop it in the same step.
            actions.append({"remove_index": {"index": alias}})
        await self._client.indices.update_aliases(actions=actions)
        return old


async def _bulk_actions(
    rows: AsyncIterator[events_pb2.ProductChanged], index: str
) -> AsyncIterator[dict[str, Any]]:
    async for event in rows:
        if event.kind == events_pb2.PRODUCT_CHANGE_KIND_DELETED:
            continue  # a fresh index has nothing to delete
        yield {
            "_index": index,
            "_id": event.product_id,
            "_version": event.version,
            "_version_type": "external",
            "_source": build_document(event),
        }
