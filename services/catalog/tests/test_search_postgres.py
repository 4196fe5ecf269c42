"""Full-text search with the PostgreSQL backend, through the catalog service."""

from __future__ import annotations

import uuid

import grpc
import pytest
from ecommerce.catalog.v1 import catalog_pb2 as pb

from conftest import rpc_error, tag, violations


@pytest.fixture
async def shelf(make_tree, make_product):
    """A small catalog with a unique made-up word in every name, so searches only see it."""
    word = f"zq{tag()}"
    tree = await make_tree()
    items = {
        "tent": await make_product(
            name=f"{word} Trail Tent",
            description="A light shelter",
            price_cents=19900,
            category_id=tree["leaf"].id,
        ),
        "lamp": await make_product(
            name=f"{word} Camping Lamp",
            description="Bright enough for any tent",
            price_cents=2900,
            category_id=tree["mid"].id,
            stock=0,
        ),
        "creme": await make_product(
            name=f"{word} Crème Brûlée Torch",
            description="For the kitchen",
            price_cents=4500,
            category_id=tree["other"].id,
        ),
        "laptop": await make_product(
            name=f"{word} Laptop Stand",
            description="Aluminium",
            price_cents=60000,
            category_id=tree["other"].id,
        ),
    }
    return word, tree, items


async def search(products, q: str, **kw) -> pb.SearchProductsResponse:
    return await products.SearchProducts(pb.SearchProductsRequest(q=q, **kw))


async def test_name_matches_rank_above_description_matches(products, shelf) -> None:
    word, _, items = shelf
    found = await search(products, f"{word} tent")
    assert [p.id for p in found.products] == [items["tent"].id, items["lamp"].id]


async def test_prefixes_typos_and_accents_still_find(products, shelf) -> None:
    word, _, items = shelf
    assert [p.id for p in (await search(products, f"{word} lapt")).products] == [items["laptop"].id]
    assert items["laptop"].id in [p.id for p in (await search(products, f"{word} labtop")).products]
    creme = (await search(products, f"{word} creme brulee")).products
    assert [p.id for p in creme] == [items["creme"].id]
    assert [p.id for p in (await search(products, f"{word.upper()} CRÈME")).products] == [
        items["creme"].id
    ]


async def test_filters_sorts_and_paging_match_the_list(products, shelf) -> None:
    word, tree, items = shelf
    in_tree = await search(products, word, category_id=tree["root"].id, sort="price_asc")
    assert [p.id for p in in_tree.products] == [items["lamp"].id, items["tent"].id]
    priced = await search(products, word, min_price_cents=3000, max_price_cents=50000)
    assert {p.id for p in priced.products} == {items["tent"].id, items["creme"].id}
    stocked = await search(products, word, in_stock=True)
    assert items["lamp"].id not in {p.id for p in stocked.products}

    seen, token = [], ""
    while True:
        page = await search(products, word, page_size=1, page_token=token, sort="price_desc")
        assert page.total_size == 4
        seen += [p.id for p in page.products]
        token = page.next_page_token
        if not token:
            break
    assert seen == [items[k].id for k in ("laptop", "tent", "creme", "lamp")]


async def test_relevance_paging_visits_every_hit_once(products, shelf) -> None:
    word, _, items = shelf
    seen, token = [], ""
    while True:
        page = await search(products, word, page_size=3, page_token=token)
        seen += [p.id for p in page.products]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(p.id for p in items.values())


async def test_facets_count_categories_and_price_bands(products, shelf) -> None:
    word, tree, _ = shelf
    facets = (await search(products, word)).facets
    by_category = {f.category_id: (f.name, f.count) for f in facets.categories}
    assert by_category == {
        tree["other"].id: ("Kitchen", 2),
        tree["leaf"].id: ("Tents", 1),
        tree["mid"].id: ("Camping", 1),
    }
    assert facets.categories[0].category_id == tree["other"].id  # most hits first
    bands = [(b.min_price_cents, b.count) for b in facets.price_bands]
    assert sum(count for _, count in bands) == 4
    assert dict(bands)[2500] == 2  # $29 and $45 fall in [25, 50)
    assert not facets.price_bands[-1].HasField("max_price_cents")


async def test_deleted_and_inactive_products_are_not_found(products, admin, shelf) -> None:
    word, _, items = shelf
    await products.DeleteProduct(pb.DeleteProductRequest(id=items["tent"].id), metadata=admin)
    await products.UpdateProduct(
        pb.UpdateProductRequest(id=items["lamp"].id, active=False), metadata=admin
    )
    hits = (await search(products, word)).products
    assert {p.id for p in hits} == {items["creme"].id, items["laptop"].id}


async def test_a_renamed_product_is_found_by_its_new_name_at_once(products, admin, shelf) -> None:
    word, _, items = shelf
    await search(products, f"{word} kettle")  # cache the empty answer
    await products.UpdateProduct(
        pb.UpdateProductRequest(id=items["laptop"].id, name=f"{word} Kettle"), metadata=admin
    )
    assert [p.id for p in (await search(products, f"{word} kettle")).products] == [
        items["laptop"].id
    ]


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"q": ""}, "q"), ({"q": "x" * 201}, "q"), ({"q": "a", "sort": "best"}, "sort")],
)
async def test_bad_search_parameters_name_the_field(products, fields, field) -> None:
    error = await rpc_error(products.SearchProducts(pb.SearchProductsRequest(**fields)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(error)


async def test_query_with_only_punctuation_finds_nothing_without_error(products) -> None:
    found = await search(products, "&|!():*")
    assert found.total_size >= 0 and uuid  # answered, no 500


# One quarter, one half, modifier letters (turned comma, triangular colon, double prime,
# circumflex, grave): unaccent spells them "1/4", "'", ":", '"', "^", "`".
@pytest.mark.parametrize(
    "q",
    [
        "\u00f2\u00fcj\u00bc q \U0002c41d",
        "\u00bd",
        "\u02bbokina",
        "a\u02d0b",
        "\u02bax\u02ba \u02c6 \u02cb",
    ],
)
async def test_characters_unaccent_spells_with_punctuation_break_nothing(products, q) -> None:
    found = await search(products, q)
    assert found.total_size >= 0  # answered, no 500 from to_tsquery
