"""Cache keys: variants of one question share a key, different questions never do."""

from __future__ import annotations

import itertools

import pytest
from catalog_service.cache import normalized_key, normalized_request
from ecommerce.catalog.v1 import catalog_pb2 as pb
from google.protobuf.message import Message

CAT = "6f1c1e9a-2b0d-4f57-a7a4-0c1f9d3b2e11"
PRODUCT = "0b0f2c55-8a0e-4b6e-9d39-0f6a9e4c1d2a"
TOKEN = "eyJzIjoibmV3ZXN0In0"


def with_unknown_field(request: Message) -> Message:
    """The request as a client built on a newer contract sends it (field 999, a varint)."""
    return type(request).FromString(request.SerializeToString() + b"\xb8\x3e\x01")


# Each group: (kind, requests that must share one key).
SAME: list[tuple[str, list[Message]]] = [
    (
        "list",
        [
            pb.ListProductsRequest(),
            pb.ListProductsRequest(page_size=20),
            pb.ListProductsRequest(sort="newest"),
            pb.ListProductsRequest(page_size=0, sort="newest"),
            with_unknown_field(pb.ListProductsRequest()),
        ],
    ),
    (
        "list",
        [
            pb.ListProductsRequest(page_size=100, sort="price_asc", category_id=CAT),
            pb.ListProductsRequest(page_size=101, sort="price_asc", category_id=CAT.upper()),
            pb.ListProductsRequest(page_size=500, sort="price_asc", category_id="{" + CAT + "}"),
            pb.ListProductsRequest(
                page_size=2**31 - 1, sort="price_asc", category_id=CAT.replace("-", "")
            ),
        ],
    ),
    (
        "search",
        [
            pb.SearchProductsRequest(q="mug"),
            pb.SearchProductsRequest(q="Mug"),
            pb.SearchProductsRequest(q=" mug "),
            pb.SearchProductsRequest(q="\tMUG\n", sort="relevance"),
            pb.SearchProductsRequest(q="mug", page_size=20, sort=""),
            with_unknown_field(pb.SearchProductsRequest(q="mug")),
        ],
    ),
    (
        "search",
        [
            pb.SearchProductsRequest(q="blue mug", page_size=100, sort="newest"),
            pb.SearchProductsRequest(q="  Blue   MUG ", page_size=1000, sort="newest"),
            pb.SearchProductsRequest(q="blue\u00a0\u2003mug", page_size=101, sort="newest"),
        ],
    ),
    (
        "category-products",
        [
            pb.ListCategoryProductsRequest(id=CAT),
            pb.ListCategoryProductsRequest(id=CAT.upper(), page_size=20),
            pb.ListCategoryProductsRequest(id=CAT, sort="newest"),
            pb.ListCategoryProductsRequest(id=f"urn:uuid:{CAT}", page_size=0, sort="newest"),
        ],
    ),
    (
        "product",
        [
            pb.GetProductRequest(id=PRODUCT),
            pb.GetProductRequest(id=PRODUCT.upper()),
            with_unknown_field(pb.GetProductRequest(id=PRODUCT)),
        ],
    ),
    ("categories", [pb.ListCategoriesRequest(), with_unknown_field(pb.ListCategoriesRequest())]),
]


@pytest.mark.parametrize(
    ("kind", "requests"), SAME, ids=[f"{kind}-{i}" for i, (kind, _) in enumerate(SAME)]
)
def test_variants_of_one_question_share_a_key(kind: str, requests: list[Message]) -> None:
    keys = {normalized_key(kind, request) for request in requests}
    assert len(keys) == 1


# Requests whose answers differ: every one must have a key of its own.
DIFFERENT: list[tuple[str, Message]] = [
    ("list", pb.ListProductsRequest()),
    ("list", pb.ListProductsRequest(page_size=19)),
    ("list", pb.ListProductsRequest(page_size=21)),
    ("list", pb.ListProductsRequest(page_size=99)),
    ("list", pb.ListProductsRequest(page_size=1)),
    ("list", pb.ListProductsRequest(sort="price_asc")),
    ("list", pb.ListProductsRequest(sort="price_desc")),
    ("list", pb.ListProductsRequest(sort="name")),
    ("list", pb.ListProductsRequest(page_token=TOKEN)),
    ("list", pb.ListProductsRequest(category_id=CAT)),
    ("list", pb.ListProductsRequest(category_id=PRODUCT)),
    ("list", pb.ListProductsRequest(min_price_cents=0)),  # present 0 is a real bound
    ("list", pb.ListProductsRequest(min_price_cents=1)),
    ("list", pb.ListProductsRequest(max_price_cents=0)),
    ("list", pb.ListProductsRequest(in_stock=True)),
    ("list", pb.ListProductsRequest(include_inactive=True)),
    ("search", pb.SearchProductsRequest(q="mug")),
    ("search", pb.SearchProductsRequest(q="mugs")),
    ("search", pb.SearchProductsRequest(q="blue mug")),
    ("search", pb.SearchProductsRequest(q="bluemug")),
    ("search", pb.SearchProductsRequest(q="mug blue")),  # same words; relevance may differ
    ("search", pb.SearchProductsRequest(q="café")),  # accents are the backends' business
    ("search", pb.SearchProductsRequest(q="cafe")),
    ("search", pb.SearchProductsRequest(q="mug", sort="newest")),
    ("search", pb.SearchProductsRequest(q="mug", page_size=5)),
    ("search", pb.SearchProductsRequest(q="mug", page_token=TOKEN)),
    ("search", pb.SearchProductsRequest(q="mug", category_id=CAT)),
    ("search", pb.SearchProductsRequest(q="mug", in_stock=True)),
    ("search", pb.SearchProductsRequest(q="mug", max_price_cents=1000)),
    ("category-products", pb.ListCategoryProductsRequest(id=CAT)),
    ("category-products", pb.ListCategoryProductsRequest(id=PRODUCT)),
    ("category-products", pb.ListCategoryProductsRequest(id=CAT, sort="name")),
    ("category-products", pb.ListCategoryProductsRequest(id=CAT, page_size=10)),
    ("category-products", pb.ListCategoryProductsRequest(id=CAT, page_token=TOKEN)),
    ("product", pb.GetProductRequest(id=PRODUCT)),
    ("product", pb.GetProductRequest(id=CAT)),
    ("categories", pb.ListCategoriesRequest()),
]


def test_different_questions_have_different_keys() -> None:
    keys = [normalized_key(kind, request) for kind, request in DIFFERENT]
    for (a, key_a), (b, key_b) in itertools.combinations(zip(DIFFERENT, keys, strict=True), 2):
        assert key_a != key_b, (a, b)


def test_the_kind_is_part_of_the_key() -> None:
    # An empty ListProductsRequest and ListCategoriesRequest both encode to few bytes.
    assert normalized_key("list", pb.ListCategoriesRequest()) != normalized_key(
        "categories", pb.ListCategoriesRequest()
    )


def test_normalizing_leaves_the_request_alone_and_is_idempotent() -> None:
    request = pb.SearchProductsRequest(q="  Blue  MUG ", page_size=500, category_id=CAT.upper())
    before = request.SerializeToString()
    normal = normalized_request(request)
    assert request.SerializeToString() == before
    assert normal == pb.SearchProductsRequest(
        q="blue mug", page_size=100, sort="relevance", category_id=CAT
    )
    assert normalized_request(normal) == normal


def test_values_validation_refuses_are_left_as_they_are() -> None:
    # Never cached (the servicer refuses them first), so nothing to fold; nothing breaks.
    assert normalized_request(pb.ListProductsRequest(page_size=-1)).page_size == -1
    assert normalized_request(pb.ListProductsRequest(category_id="nope")).category_id == "nope"
    assert normalized_request(pb.ListProductsRequest(sort="NEWEST")).sort == "NEWEST"


def test_many_spellings_collapse_to_few_keys() -> None:
    """What an attacker gets from varying size, sort, case and spacing: one key per answer."""
    spellings = [
        pb.SearchProductsRequest(q=f"{pad}{word}{pad}", page_size=size, sort=sort)
        for pad in ("", " ", "  ", "\t")
        for word in ("mug", "MUG", "Mug", "mUg")
        for size in (0, 20, 100, 101, 5000)
        for sort in ("", "relevance")
    ]
    keys = {normalized_key("search", request) for request in spellings}
    assert len(spellings) == 160 and len(keys) == 2  # page size 20 and 100
