"""The Elasticsearch search backend.

Query and document building, page tokens and response handling are tested without a server.
The live tests (marker `elasticsearch`) need one; run them with, for example:

    ELASTICSEARCH_URL=http://localhost:9200 .venv/bin/python -m pytest \
        services/catalog/tests/test_search_elasticsearch.py -m elasticsearch -p no:cacheprovider
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from catalog_service.search import PRICE_BAND_EDGES, SORTS, ProductQuery, price_band
from catalog_service.search_elasticsearch import (
    INDEX_MAPPINGS,
    INDEX_SETTINGS,
    ElasticsearchSearch,
    build_document,
    build_query,
    decode_page_token,
    encode_page_token,
)
from ecom_runtime.errors import InvalidArgument
from ecom_runtime.paging import encode_token
from ecommerce.events.v1 import events_pb2
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import ApiError, AsyncElasticsearch, ConflictError, NotFoundError
from elasticsearch import BadRequestError as EsBadRequest
from google.protobuf.timestamp_pb2 import Timestamp

BASE_TIME = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def ts(when: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def product_event(
    name: str = "Thing",
    *,
    product_id: str | None = None,
    version: int = 1,
    kind: int = events_pb2.PRODUCT_CHANGE_KIND_UPDATED,
    description: str = "",
    sku: str | None = None,
    price_cents: int = 1_500,
    category_id: str = "",
    ancestors: tuple[str, ...] = (),
    stock: int = 3,
    active: bool = True,
    created_at: datetime = BASE_TIME,
) -> events_pb2.ProductChanged:
    product_id = product_id or str(uuid.uuid4())
    return events_pb2.ProductChanged(
        event_id=str(uuid.uuid4()),
        occurred_at=ts(created_at),
        product_id=product_id,
        kind=kind,  # type: ignore[arg-type]
        version=version,
        sku=sku or f"SKU-{product_id[:8]}",
        name=name,
        description=description,
        price_cents=price_cents,
        currency="USD",
        category_id=category_id,
        category_ancestor_ids=list(ancestors),
        stock=stock,
        image_urls=["https://img.example.com/1.png"],
        active=active,
        created_at=ts(created_at),
        updated_at=ts(created_at + timedelta(minutes=5)),
    )


def filters_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body["query"]["bool"]["filter"]


# --- build_query -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("relevance", [{"_score": "desc"}, {"id": "desc"}]),
        ("newest", [{"created_at": "desc"}, {"id": "desc"}]),
        ("price_asc", [{"price_cents": "asc"}, {"id": "asc"}]),
        ("price_desc", [{"price_cents": "desc"}, {"id": "desc"}]),
        ("name", [{"name.sort": "asc"}, {"id": "asc"}]),
    ],
)
def test_every_sort_ends_with_the_id_tiebreak(sort: str, expected: list[dict[str, str]]) -> None:
    assert build_query(ProductQuery(sort=sort), None)["sort"] == expected


def test_every_port_sort_is_supported() -> None:
    for sort in SORTS:
        assert build_query(ProductQuery(sort=sort), None)["sort"][-1].keys() == {"id"}


def test_page_size_plus_one_exact_total_and_ids_only() -> None:
    body = build_query(ProductQuery(page_size=7), None)
    assert body["size"] == 8
    assert body["track_total_hits"] is True
    assert body["_source"] is False


def test_search_after_is_passed_through_only_when_given() -> None:
    assert "search_after" not in build_query(ProductQuery(), None)
    after = [1_500, "3f1c0d9e-0000-4000-8000-000000000000"]
    assert build_query(ProductQuery(sort="price_asc"), after)["search_after"] == after


def test_no_text_matches_all_active_products() -> None:
    body = build_query(ProductQuery(), None)
    assert body["query"]["bool"]["must"] == [{"match_all": {}}]
    assert filters_of(body) == [{"term": {"active": True}}]


def test_text_is_fuzzy_on_name_sku_description_with_name_boosted_plus_name_prefixes() -> None:
    body = build_query(ProductQuery(text="wireles headph", sort="relevance"), None)
    [text_query] = body["query"]["bool"]["must"]
    should = text_query["bool"]["should"]
    assert text_query["bool"]["minimum_should_match"] == 1
    words = should[0]["multi_match"]
    assert words["query"] == "wireles headph"
    assert words["fuzziness"] == "AUTO"
    assert words["operator"] == "and"
    assert set(words["fields"]) == {"name^3", "sku^3", "description"}
    prefix = should[1]["match"]["name.prefix"]
    assert prefix["query"] == "wireles headph"
    assert "fuzziness" not in prefix


def test_include_inactive_drops_the_active_filter() -> None:
    assert filters_of(build_query(ProductQuery(include_inactive=True), None)) == []


def test_category_filter_matches_the_category_and_its_descendants() -> None:
    ids = (uuid.uuid4(), uuid.uuid4())
    body = build_query(ProductQuery(category_ids=ids, include_inactive=True), None)
    assert filters_of(body) == [{"terms": {"category_id": [str(ids[0]), str(ids[1])]}}]


def test_unknown_category_filters_everything_out() -> None:
    body = build_query(ProductQuery(category_ids=(), include_inactive=True), None)
    assert filters_of(body) == [{"terms": {"category_id": []}}]


def test_price_bounds_are_inclusive_and_zero_is_a_real_bound() -> None:
    def price_filter(**bounds: int) -> list[dict[str, Any]]:
        return filters_of(build_query(ProductQuery(include_inactive=True, **bounds), None))  # type: ignore[arg-type]

    assert price_filter(min_price_cents=0) == [{"range": {"price_cents": {"gte": 0}}}]
    assert price_filter(max_price_cents=999) == [{"range": {"price_cents": {"lte": 999}}}]
    assert price_filter(min_price_cents=100, max_price_cents=200) == [
        {"range": {"price_cents": {"gte": 100, "lte": 200}}}
    ]


def test_in_stock_means_stock_above_zero() -> None:
    body = build_query(ProductQuery(in_stock=True, include_inactive=True), None)
    assert filters_of(body) == [{"range": {"stock": {"gt": 0}}}]


def test_facets_count_own_category_and_the_fixed_price_bands() -> None:
    aggs = build_query(ProductQuery(), None)["aggs"]
    assert aggs["categories"]["terms"]["field"] == "category_id"
    assert aggs["categories"]["terms"]["size"] >= 1_000
    assert aggs["price_bands"]["range"]["field"] == "price_cents"
    ranges = aggs["price_bands"]["range"]["ranges"]
    assert [r["key"] for r in ranges] == [str(i) for i in range(len(PRICE_BAND_EDGES))]
    assert [r["from"] for r in ranges] == list(PRICE_BAND_EDGES)
    assert [r.get("to") for r in ranges] == [*PRICE_BAND_EDGES[1:], None]
    assert "to" not in ranges[-1]


# --- build_document --------------------------------------------------------------------------


def test_document_of_a_product_snapshot() -> None:
    root, child = str(uuid.uuid4()), str(uuid.uuid4())
    event = product_event(
        "Café Crème",
        version=4,
        description="A mug",
        sku="MUG-1",
        price_cents=1_299,
        category_id=child,
        ancestors=(root,),
        stock=0,
        active=False,
    )
    assert build_document(event) == {
        "id": event.product_id,
        "sku": "MUG-1",
        "name": "Café Crème",
        "description": "A mug",
        "price_cents": 1_299,
        "currency": "USD",
        "category_id": child,
        "category_ancestor_ids": [root],
        "stock": 0,
        "active": False,
        "created_at": "2025-03-01T12:00:00.123456+00:00",
        "updated_at": "2025-03-01T12:05:00.123456+00:00",
    }


def test_document_without_category_or_dates() -> None:
    event = product_event()
    event.ClearField("created_at")
    event.ClearField("updated_at")
    document = build_document(event)
    assert document["category_id"] is None
    assert document["category_ancestor_ids"] == []
    assert document["created_at"] is None and document["updated_at"] is None


def test_document_has_only_mapped_fields() -> None:
    # The mapping is strict: an unmapped field would make every write fail.
    assert INDEX_MAPPINGS["dynamic"] == "strict"
    assert set(build_document(product_event())) == set(INDEX_MAPPINGS["properties"])


# --- page tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "values"),
    [
        ("relevance", [3.1415927, "a"]),
        ("newest", [1_740_830_400_123, "b"]),
        ("price_asc", [0, "c"]),
        ("price_desc", [99_999, "d"]),
        ("name", ["cafe creme", "e"]),
    ],
)
def test_page_token_round_trip(sort: str, values: list[Any]) -> None:
    token = encode_page_token(sort, values)
    assert decode_page_token(token, sort) == values
    assert decode_page_token("", sort) is None


@pytest.mark.parametrize(
    ("token", "sort"),
    [
        ("not a token!", "newest"),
        (encode_token({"c": "2025-01-01", "i": "x"}), "newest"),  # another list's token
        (encode_page_token("price_asc", [1, "a"]), "price_desc"),  # sort changed
        (encode_token({"s": "newest", "k": ["2025-03-01T12:00:00+00:00", "a"]}), "newest"),
        (encode_token({"s": "name", "k": "abc"}), "name"),
        (encode_token({"s": "price_asc", "k": [1, 2, "a"]}), "price_asc"),
        (encode_token({"s": "price_asc", "k": [True, "a"]}), "price_asc"),
        (encode_token({"s": "price_asc", "k": [1, 2]}), "price_asc"),
    ],
)
def test_foreign_page_token_is_invalid_argument(token: str, sort: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        decode_page_token(token, sort)
    assert [field for field, _ in caught.value.violations] == ["page_token"]


# --- the adapter against a stand-in client ---------------------------------------------------


class FakeClient:
    """Answers _search with a canned response and records requests."""

    def __init__(self, response: dict[str, Any] | None = None) -> None:
        self.response = response
        self.requests: list[tuple[str, dict[str, Any]]] = []

    async def search(self, *, index: str, body: dict[str, Any]) -> dict[str, Any]:
        self.requests.append((index, body))
        assert self.response is not None, "no request expected"
        return self.response


def canned_response(ids: list[uuid.UUID], total: int, category: uuid.UUID) -> dict[str, Any]:
    return {
        "hits": {
            "total": {"value": total, "relation": "eq"},
            "hits": [
                {"_id": str(i), "_score": None, "sort": [100 * n, str(i)]}
                for n, i in enumerate(ids)
            ],
        },
        "aggregations": {
            "categories": {"buckets": [{"key": str(category), "doc_count": total}]},
            # Keyed by band: order in the response does not matter.
            "price_bands": {
                "buckets": [
                    {"key": "1", "from": 1_000.0, "to": 2_500.0, "doc_count": 2},
                    {"key": "0", "from": 0.0, "to": 1_000.0, "doc_count": total - 2},
                ]
                + [
                    {"key": str(i), "from": float(edge), "doc_count": 0}
                    for i, edge in enumerate(PRICE_BAND_EDGES)
                    if i > 1
                ]
            },
        },
    }


def adapter(client: FakeClient, index: str = "products") -> ElasticsearchSearch:
    return ElasticsearchSearch(client, index)  # type: ignore[arg-type]


async def test_search_reads_one_page_the_next_token_and_facets() -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    category = uuid.uuid4()
    client = FakeClient(canned_response(ids, total=5, category=category))
    query = ProductQuery(sort="price_asc", page_size=2)

    hits = await adapter(client).search(query)

    [(index, body)] = client.requests
    assert index == "products"
    assert body == build_query(query, None)
    assert hits.product_ids == ids[:2]
    assert hits.total == 5
    assert hits.category_counts == {category: 5}
    assert hits.price_band_counts == [3, 2, 0, 0, 0, 0, 0]
    assert decode_page_token(hits.next_page_token, "price_asc") == [100, str(ids[1])]

    await adapter(client).search(replace(query, page_token=hits.next_page_token))
    assert client.requests[-1][1]["search_after"] == [100, str(ids[1])]


async def test_last_page_has_no_token() -> None:
    ids = [uuid.uuid4() for _ in range(2)]
    client = FakeClient(canned_response(ids, total=2, category=uuid.uuid4()))
    hits = await adapter(client).search(ProductQuery(sort="price_asc", page_size=2))
    assert hits.product_ids == ids
    assert hits.next_page_token == ""


async def test_foreign_token_is_refused_before_any_request() -> None:
    client = FakeClient()
    query = ProductQuery(sort="newest", page_token=encode_page_token("name", ["a", "b"]))
    with pytest.raises(InvalidArgument):
        await adapter(client).search(query)
    assert client.requests == []


def api_error(kind: type[ApiError], status: int, body: dict[str, Any]) -> ApiError:
    meta = ApiResponseMeta(
        status=status,
        http_version="1.1",
        headers=HttpHeaders(),
        duration=0.0,
        node=NodeConfig("http", "localhost", 9200),
    )
    error = body.get("error")
    message = error["type"] if isinstance(error, dict) else str(body)
    return kind(message, meta, body)


class FakeIndices:
    """The index-admin calls ensure_index and the alias swap make, recorded."""

    def __init__(self, *, aliases: dict[str, list[str]] | None = None, plain: bool = False) -> None:
        self.aliases = aliases or {}  # alias -> indices behind it
        self.plain = plain  # a plain index holds the alias's name
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.create_error: Exception | None = None

    async def exists(self, *, index: str) -> bool:
        return index in self.aliases or self.plain

    async def exists_alias(self, *, name: str) -> bool:
        return name in self.aliases

    async def get_alias(self, *, name: str) -> Any:
        return SimpleNamespace(body={i: {"aliases": {name: {}}} for i in self.aliases[name]})

    async def create(self, **kwargs: Any) -> None:
        self.calls.append(("create", kwargs))
        if self.create_error:
            raise self.create_error

    async def update_aliases(self, **kwargs: Any) -> None:
        self.calls.append(("update_aliases", kwargs))


class WritingClient:
    """Records index/delete calls and raises what it is told to."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.indices = FakeIndices(aliases={"products": ["products-initial"]})

    async def index(self, **kwargs: Any) -> None:
        self.calls.append(("index", kwargs))
        if self.error:
            raise self.error

    async def delete(self, **kwargs: Any) -> None:
        self.calls.append(("delete", kwargs))
        if self.error:
            raise self.error


def writer(client: WritingClient) -> ElasticsearchSearch:
    return ElasticsearchSearch(client, "products")  # type: ignore[arg-type]


def with_indices(indices: FakeIndices) -> ElasticsearchSearch:
    return ElasticsearchSearch(SimpleNamespace(indices=indices), "products")  # type: ignore[arg-type]


async def test_ensure_index_creates_the_first_index_behind_the_alias() -> None:
    indices = FakeIndices()
    await with_indices(indices).ensure_index()
    assert indices.calls == [
        (
            "create",
            {
                "index": "products-initial",
                "settings": INDEX_SETTINGS,
                "mappings": INDEX_MAPPINGS,
                "aliases": {"products": {}},
            },
        )
    ]


async def test_ensure_index_leaves_an_existing_alias_alone_and_tolerates_a_race() -> None:
    existing = FakeIndices(aliases={"products": ["products-1"]})
    await with_indices(existing).ensure_index()
    assert existing.calls == []

    racing = FakeIndices()
    racing.create_error = api_error(
        EsBadRequest, 400, {"error": {"type": "resource_already_exists_exception"}}
    )
    await with_indices(racing).ensure_index()


async def test_alias_swap_is_one_atomic_request() -> None:
    indices = FakeIndices(aliases={"products": ["products-a", "products-b"]})
    old = await with_indices(indices)._swap_alias("products-new")
    assert old == ["products-a", "products-b"]
    assert indices.calls == [
        (
            "update_aliases",
            {
                "actions": [
                    {"add": {"index": "products-new", "alias": "products"}},
                    {"remove": {"index": "products-a", "alias": "products"}},
                    {"remove": {"index": "products-b", "alias": "products"}},
                ]
            },
        )
    ]


async def test_alias_swap_replaces_a_plain_index_of_the_same_name() -> None:
    indices = FakeIndices(plain=True)
    assert await with_indices(indices)._swap_alias("products-new") == []
    assert indices.calls[-1][1]["actions"] == [
        {"add": {"index": "products-new", "alias": "products"}},
        {"remove_index": {"index": "products"}},
    ]


async def test_apply_indexes_with_the_event_version_through_the_alias() -> None:
    client = WritingClient()
    event = product_event(version=7)
    await writer(client).apply(event)
    [(call, kwargs)] = client.calls
    assert call == "index"
    assert kwargs == {
        "index": "products",
        "id": event.product_id,
        "document": build_document(event),
        "version": 7,
        "version_type": "external",
        "require_alias": True,
    }


async def test_apply_deletes_with_the_event_version() -> None:
    client = WritingClient()
    event = events_pb2.ProductChanged(
        product_id=str(uuid.uuid4()), kind=events_pb2.PRODUCT_CHANGE_KIND_DELETED, version=9
    )
    await writer(client).apply(event)
    assert client.calls == [
        (
            "delete",
            {"index": "products", "id": event.product_id, "version": 9, "version_type": "external"},
        )
    ]


async def test_apply_ignores_a_stale_event_and_deleting_what_is_not_there() -> None:
    stale = api_error(
        ConflictError, 409, {"error": {"type": "version_conflict_engine_exception"}, "status": 409}
    )
    await writer(WritingClient(stale)).apply(product_event(version=1))
    missing = api_error(NotFoundError, 404, {"_id": "x", "result": "not_found"})
    deleted = product_event(kind=events_pb2.PRODUCT_CHANGE_KIND_DELETED)
    await writer(WritingClient(missing)).apply(deleted)


async def test_apply_raises_when_the_index_is_missing() -> None:
    missing_index = api_error(
        NotFoundError, 404, {"error": {"type": "index_not_found_exception"}, "status": 404}
    )
    deleted = product_event(kind=events_pb2.PRODUCT_CHANGE_KIND_DELETED)
    with pytest.raises(NotFoundError):
        await writer(WritingClient(missing_index)).apply(deleted)


# --- live, against a real Elasticsearch ------------------------------------------------------

ELASTICSEARCH_URL = os.environ.get("ELASTICSEARCH_URL", "")
HOW_TO_RUN = (
    "needs a running Elasticsearch 8: ELASTICSEARCH_URL=http://localhost:9200 "
    ".venv/bin/python -m pytest services/catalog/tests/test_search_elasticsearch.py "
    "-m elasticsearch -p no:cacheprovider"
)


@pytest.fixture
async def es() -> AsyncIterator[tuple[AsyncElasticsearch, ElasticsearchSearch, str]]:
    """A client and an adapter on a throwaway alias; every index under it is deleted after."""
    client = AsyncElasticsearch(ELASTICSEARCH_URL)
    alias = f"test-products-{uuid.uuid4().hex[:10]}"
    try:
        search = ElasticsearchSearch(client, alias)
        await search.ensure_index()
        yield client, search, alias
    finally:
        # Wildcard deletes are refused by default (action.destructive_requires_name).
        indices = await client.indices.get(index=f"{alias}*", expand_wildcards="all")
        for name in indices.body:
            await client.indices.delete(index=name, ignore_unavailable=True)
        await client.close()


async def apply_all(
    client: AsyncElasticsearch, search: ElasticsearchSearch, alias: str, *events: Any
) -> None:
    for event in events:
        await search.apply(event)
    await client.indices.refresh(index=alias)


async def ids_of(search: ElasticsearchSearch, **query: Any) -> list[str]:
    hits = await search.search(ProductQuery(**query))
    return [str(i) for i in hits.product_ids]


async def all_pages(search: ElasticsearchSearch, **query: Any) -> tuple[list[str], int]:
    ids: list[str] = []
    token, pages = "", 0
    while True:
        hits = await search.search(ProductQuery(**query, page_token=token))
        ids += [str(i) for i in hits.product_ids]
        pages += 1
        token = hits.next_page_token
        if not token:
            return ids, pages


@pytest.mark.elasticsearch
@pytest.mark.skipif(not ELASTICSEARCH_URL, reason=HOW_TO_RUN)
class TestLive:
    async def test_typos_prefixes_and_accents(self, es: Any) -> None:
        client, search, alias = es
        mug = product_event("Café Crème Mug", description="Stoneware, 350 ml", sku="MUG-350")
        phones = product_event("Wireless Headphones", description="Noise cancelling")
        stand = product_event("Laptop Stand", description="Aluminium stand for notebooks")
        await apply_all(client, search, alias, mug, phones, stand)

        assert await ids_of(search, text="cafe creme", sort="relevance") == [mug.product_id]
        assert await ids_of(search, text="CAFÉ", sort="relevance") == [mug.product_id]
        assert await ids_of(search, text="headphnes", sort="relevance") == [phones.product_id]
        assert await ids_of(search, text="lapt", sort="relevance") == [stand.product_id]
        assert await ids_of(search, text="wirel headph", sort="relevance") == [phones.product_id]
        assert await ids_of(search, text="mug-350", sort="relevance") == [mug.product_id]
        assert await ids_of(search, text="notebooks", sort="relevance") == [stand.product_id]
        assert await ids_of(search, text="zebra", sort="relevance") == []

    async def test_name_ranks_above_description(self, es: Any) -> None:
        client, search, alias = es
        in_description = product_event("Desk Organizer", description="Holds a lamp and pens")
        in_name = product_event("Desk Lamp", description="LED, dimmable")
        await apply_all(client, search, alias, in_description, in_name)
        assert await ids_of(search, text="lamp", sort="relevance") == [
            in_name.product_id,
            in_description.product_id,
        ]

    async def test_filters_and_facets(self, es: Any) -> None:
        client, search, alias = es
        root, child, other = (str(uuid.uuid4()) for _ in range(3))
        in_root = product_event("Root item", category_id=root, price_cents=500)
        in_child = product_event(
            "Child item", category_id=child, ancestors=(root,), price_cents=1_500
        )
        sold_out = product_event(
            "Sold out", category_id=child, ancestors=(root,), price_cents=2_500, stock=0
        )
        elsewhere = product_event("Elsewhere", category_id=other, price_cents=60_000)
        hidden = product_event("Hidden", category_id=root, price_cents=700, active=False)
        await apply_all(client, search, alias, in_root, in_child, sold_out, elsewhere, hidden)

        subtree = (uuid.UUID(root), uuid.UUID(child))
        hits = await search.search(ProductQuery(category_ids=subtree, sort="price_asc"))
        assert [str(i) for i in hits.product_ids] == [
            in_root.product_id,
            in_child.product_id,
            sold_out.product_id,
        ]
        assert hits.total == 3
        assert hits.category_counts == {uuid.UUID(root): 1, uuid.UUID(child): 2}
        expected_bands = [0] * len(PRICE_BAND_EDGES)
        for price in (500, 1_500, 2_500):
            expected_bands[price_band(price)] += 1
        assert hits.price_band_counts == expected_bands

        assert await ids_of(search, category_ids=(), sort="newest") == []
        assert await ids_of(search, category_ids=(uuid.UUID(child),), in_stock=True) == [
            in_child.product_id
        ]
        assert await ids_of(
            search, min_price_cents=1_500, max_price_cents=2_500, sort="price_asc"
        ) == [in_child.product_id, sold_out.product_id]
        assert await ids_of(search, max_price_cents=700, sort="price_asc") == [in_root.product_id]
        assert await ids_of(
            search, max_price_cents=700, sort="price_asc", include_inactive=True
        ) == [in_root.product_id, hidden.product_id]

        everything = await search.search(ProductQuery())
        assert everything.total == 4
        assert everything.price_band_counts[-1] == 1  # 600 dollars: the open-ended top band

    async def test_paging_through_every_sort(self, es: Any) -> None:
        client, search, alias = es
        events = [
            product_event(
                f"Widget {name}",
                price_cents=price,
                created_at=BASE_TIME + timedelta(seconds=n % 3),  # ties on purpose
            )
            for n, (name, price) in enumerate(
                [("delta", 300), ("alpha", 100), ("echo", 300), ("bravo", 200), ("charlie", 100)]
            )
        ]
        await apply_all(client, search, alias, *events)

        for sort in ("newest", "price_asc", "price_desc", "name", "relevance"):
            text = "widget" if sort == "relevance" else ""
            one_page = await ids_of(search, sort=sort, text=text, page_size=100)
            assert len(one_page) == 5
            paged, pages = await all_pages(search, sort=sort, text=text, page_size=2)
            assert (paged, pages) == (one_page, 3), sort

        by_price, _ = await all_pages(search, sort="price_asc", page_size=2)
        prices = {e.product_id: e.price_cents for e in events}
        assert [prices[i] for i in by_price] == [100, 100, 200, 300, 300]
        assert await ids_of(search, sort="name", page_size=2) == [
            events[1].product_id,
            events[3].product_id,
        ]

    async def test_out_of_order_and_repeated_events_are_ignored(self, es: Any) -> None:
        client, search, alias = es
        product_id = str(uuid.uuid4())
        newer = product_event("Newer name", product_id=product_id, version=2)
        older = product_event("Older name", product_id=product_id, version=1)
        await apply_all(client, search, alias, newer, older, newer)
        assert await ids_of(search, text="newer", sort="relevance") == [product_id]
        assert await ids_of(search, text="older", sort="relevance") == []

        deleted = events_pb2.ProductChanged(
            product_id=product_id, kind=events_pb2.PRODUCT_CHANGE_KIND_DELETED, version=3
        )
        never_indexed = events_pb2.ProductChanged(
            product_id=str(uuid.uuid4()), kind=events_pb2.PRODUCT_CHANGE_KIND_DELETED, version=1
        )
        await apply_all(client, search, alias, deleted, never_indexed, newer)  # newer is stale now
        assert await ids_of(search) == []

    async def test_reindex_swaps_the_alias_to_a_fresh_index(self, es: Any) -> None:
        client, search, alias = es
        gone = product_event("Gone from the database")
        await apply_all(client, search, alias, gone)
        [first] = (await client.indices.get_alias(name=alias)).body

        kept = product_event("Kept", version=5)
        rows = [
            kept,
            product_event("Kept", product_id=kept.product_id, version=4),  # older duplicate
            product_event("Also kept"),
            product_event("Deleted", kind=events_pb2.PRODUCT_CHANGE_KIND_DELETED),
        ]

        async def stream() -> AsyncIterator[events_pb2.ProductChanged]:
            for row in rows:
                yield row

        assert await search.reindex(stream(), batch=2) == 2
        [second] = (await client.indices.get_alias(name=alias)).body
        assert second != first and second.startswith(f"{alias}-")
        assert not await client.indices.exists(index=first)
        assert sorted(await ids_of(search)) == sorted([kept.product_id, rows[2].product_id])

        # Versions carry over: an event older than the reindexed row changes nothing.
        await apply_all(client, search, alias, rows[1])
        assert await ids_of(search, text="also", sort="relevance") == [rows[2].product_id]
        hits = await search.search(ProductQuery(text="kept", sort="relevance"))
        assert hits.total == 2  # "Kept" and "Also kept", not a second copy of either

    async def test_reindex_replaces_a_plain_index_holding_the_name(self, es: Any) -> None:
        client, search, alias = es
        # As if something had written to the name before the alias existed.
        await client.indices.delete(index=f"{alias}-initial")
        await client.indices.create(index=alias)
        assert await search.reindex(_one(product_event("Only one"))) == 1
        assert await client.indices.exists_alias(name=alias)
        assert len(await ids_of(search)) == 1


async def _one(event: events_pb2.ProductChanged) -> AsyncIterator[events_pb2.ProductChanged]:
    yield event
