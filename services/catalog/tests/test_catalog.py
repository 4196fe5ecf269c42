"""Products, categories, lists and search over gRPC against the real stack."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from ecommerce.catalog.v1 import catalog_pb2 as pb

from conftest import rpc_error, tag, violations

# --- create, validate, read ------------------------------------------------------------------


async def test_admin_creates_and_reads_a_product(products, make_tree, make_product) -> None:
    tree = await make_tree()
    created = await make_product(
        name="  Trail Tent 2P ",
        description="Light and dry.",
        price_cents=19999,
        currency="eur",
        category_id=tree["leaf"].id,
        stock=7,
        image_urls=["https://img.example.com/tent.jpg"],
    )
    assert (created.name, created.currency, created.stock, created.active) == (
        "Trail Tent 2P",
        "EUR",
        7,
        True,
    )
    fetched = await products.GetProduct(pb.GetProductRequest(id=created.id))
    assert fetched == created


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": ""}, {"name"}),
        ({"name": "x" * 201}, {"name"}),
        ({"price_cents": -1}, {"price_cents"}),
        ({"currency": "XXQ"}, {"currency"}),
        ({"sku": "has space"}, {"sku"}),
        ({"stock": -5}, {"stock"}),
        ({"image_urls": ["ftp://nope"]}, {"image_urls[0]"}),
        ({"category_id": "not-a-uuid"}, {"category_id"}),
        ({"name": "", "price_cents": -1, "currency": "??"}, {"name", "price_cents", "currency"}),
    ],
)
async def test_invalid_products_are_refused_naming_fields(sql, make_product, fields, expected):
    before = sql("select count(*) from catalog.products")[0][0]
    error = await rpc_error(make_product(**fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(error)) == expected
    assert sql("select count(*) from catalog.products")[0][0] == before


async def test_unknown_category_is_invalid_argument_on_category_id(make_product) -> None:
    error = await rpc_error(make_product(category_id=str(uuid.uuid4())))
    assert violations(error) == {"category_id": "no such category"}


async def test_duplicate_sku_is_already_exists_until_the_product_is_deleted(
    products, admin, make_product
):
    first = await make_product()
    error = await rpc_error(make_product(sku=first.sku))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert set(violations(error)) == {"sku"}
    await products.DeleteProduct(pb.DeleteProductRequest(id=first.id), metadata=admin)
    assert (await make_product(sku=first.sku)).sku == first.sku


async def test_customers_and_anonymous_callers_cannot_write(products, customer) -> None:
    request = pb.CreateProductRequest(sku=f"S-{tag()}", name="x", price_cents=1)
    denied = await rpc_error(products.CreateProduct(request, metadata=customer))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    anonymous = await rpc_error(products.CreateProduct(request))
    assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_inactive_products_are_hidden_except_from_admins(
    products, admin, make_product
) -> None:
    hidden = await make_product(active=False)
    missing = await rpc_error(products.GetProduct(pb.GetProductRequest(id=hidden.id)))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    seen = await products.GetProduct(pb.GetProductRequest(id=hidden.id), metadata=admin)
    assert seen.active is False


async def test_update_changes_only_given_fields_and_reads_see_it_at_once(
    products, admin, make_product
):
    product = await make_product(name="Kettle", price_cents=2500)
    await products.GetProduct(pb.GetProductRequest(id=product.id))  # now cached
    updated = await products.UpdateProduct(
        pb.UpdateProductRequest(id=product.id, price_cents=1999), metadata=admin
    )
    assert (updated.name, updated.price_cents) == ("Kettle", 1999)
    assert (await products.GetProduct(pb.GetProductRequest(id=product.id))).price_cents == 1999


async def test_deleted_product_leaves_reads_and_lists_at_once(
    products, admin, make_tree, make_product
):
    tree = await make_tree()
    product = await make_product(category_id=tree["leaf"].id)
    listing = pb.ListProductsRequest(category_id=tree["root"].id)
    assert [p.id for p in (await products.ListProducts(listing)).products] == [product.id]
    await products.DeleteProduct(pb.DeleteProductRequest(id=product.id), metadata=admin)
    gone = await rpc_error(products.GetProduct(pb.GetProductRequest(id=product.id)))
    assert gone.code() == grpc.StatusCode.NOT_FOUND
    assert list((await products.ListProducts(listing)).products) == []
    again = await rpc_error(
        products.DeleteProduct(pb.DeleteProductRequest(id=product.id), metadata=admin)
    )
    assert again.code() == grpc.StatusCode.NOT_FOUND


async def test_bad_ids_are_invalid_argument(products) -> None:
    error = await rpc_error(products.GetProduct(pb.GetProductRequest(id="42")))
    assert violations(error) == {"id": "must be a UUID"}


# --- lists -----------------------------------------------------------------------------------


async def test_category_filter_includes_descendants_and_paging_is_complete(
    products, make_tree, make_product
) -> None:
    tree = await make_tree()
    made = [
        await make_product(category_id=tree[level].id, price_cents=100 * i)
        for i, level in enumerate(["root", "mid", "leaf", "leaf", "mid"], start=1)
    ]
    await make_product(category_id=tree["other"].id)
    seen, token = [], ""
    while True:
        page = await products.ListProducts(
            pb.ListProductsRequest(
                category_id=tree["root"].id, page_size=2, page_token=token, sort="price_asc"
            )
        )
        assert page.total_size == 5
        seen += [p.id for p in page.products]
        token = page.next_page_token
        if not token:
            break
    assert seen == [p.id for p in made]  # price_asc, each once
    leaf_only = await products.ListProducts(pb.ListProductsRequest(category_id=tree["leaf"].id))
    assert {p.id for p in leaf_only.products} == {made[2].id, made[3].id}


async def test_sorts_price_range_and_in_stock(products, make_tree, make_product) -> None:
    tree = await make_tree()
    cat = tree["leaf"].id
    a = await make_product(category_id=cat, name="Banana", price_cents=300)
    b = await make_product(category_id=cat, name="apple", price_cents=500, stock=0)
    c = await make_product(category_id=cat, name="Cherry", price_cents=100)

    async def ids(**kw) -> list[str]:
        response = await products.ListProducts(pb.ListProductsRequest(category_id=cat, **kw))
        return [p.id for p in response.products]

    assert await ids() == [c.id, b.id, a.id]  # newest first
    assert await ids(sort="price_asc") == [c.id, a.id, b.id]
    assert await ids(sort="price_desc") == [b.id, a.id, c.id]
    assert await ids(sort="name") == [b.id, a.id, c.id]  # case-insensitive: apple, Banana, Cherry
    assert await ids(min_price_cents=200, max_price_cents=400) == [a.id]
    assert await ids(min_price_cents=0, max_price_cents=100) == [c.id]
    assert await ids(in_stock=True, sort="price_asc") == [c.id, a.id]


async def test_paging_is_stable_while_products_are_added(products, make_tree, make_product) -> None:
    tree = await make_tree()
    cat = tree["leaf"].id
    originals = [await make_product(category_id=cat) for _ in range(6)]
    first = await products.ListProducts(pb.ListProductsRequest(category_id=cat, page_size=3))
    await asyncio.gather(*(make_product(category_id=cat) for _ in range(4)))
    second = await products.ListProducts(
        pb.ListProductsRequest(category_id=cat, page_size=3, page_token=first.next_page_token)
    )
    seen = [p.id for p in first.products] + [p.id for p in second.products]
    assert seen == [p.id for p in reversed(originals)]  # nothing repeated, nothing skipped


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"sort": "cheapest"}, "sort"),
        ({"min_price_cents": -1}, "min_price_cents"),
        ({"min_price_cents": 500, "max_price_cents": 100}, "max_price_cents"),
        ({"page_size": -1}, "page_size"),
        ({"page_token": "bogus!"}, "page_token"),
        ({"category_id": "nope"}, "category_id"),
    ],
)
async def test_bad_list_parameters_name_the_field(products, request_fields, field) -> None:
    error = await rpc_error(products.ListProducts(pb.ListProductsRequest(**request_fields)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(error)


async def test_page_token_from_another_sort_is_refused(products, make_tree, make_product) -> None:
    tree = await make_tree()
    for _ in range(3):
        await make_product(category_id=tree["leaf"].id)
    page = await products.ListProducts(
        pb.ListProductsRequest(category_id=tree["leaf"].id, page_size=1, sort="name")
    )
    error = await rpc_error(
        products.ListProducts(
            pb.ListProductsRequest(
                category_id=tree["leaf"].id, page_token=page.next_page_token, sort="price_asc"
            )
        )
    )
    assert set(violations(error)) == {"page_token"}


async def test_include_inactive_is_for_admins(products, customer) -> None:
    error = await rpc_error(
        products.ListProducts(pb.ListProductsRequest(include_inactive=True), metadata=customer)
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


# --- category tree ---------------------------------------------------------------------------


async def test_tree_comes_back_nested(categories, make_tree) -> None:
    tree = await make_tree()
    roots = {
        c.id: c for c in (await categories.ListCategories(pb.ListCategoriesRequest())).categories
    }
    root = roots[tree["root"].id]
    assert [c.id for c in root.children] == [tree["mid"].id]
    assert [c.id for c in root.children[0].children] == [tree["leaf"].id]
    assert root.children[0].children[0].parent_id == tree["mid"].id


async def test_no_cycles_unique_slugs_valid_slugs(categories, admin, make_tree) -> None:
    tree = await make_tree()
    for target in ("root", "leaf"):
        error = await rpc_error(
            categories.UpdateCategory(
                pb.UpdateCategoryRequest(id=tree["root"].id, parent_id=tree[target].id),
                metadata=admin,
            )
        )
        assert set(violations(error)) == {"parent_id"}
    taken = await rpc_error(
        categories.CreateCategory(
            pb.CreateCategoryRequest(name="X", slug=tree["leaf"].slug), metadata=admin
        )
    )
    assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
    bad = await rpc_error(
        categories.CreateCategory(
            pb.CreateCategoryRequest(name="X", slug="Bad Slug"), metadata=admin
        )
    )
    assert set(violations(bad)) == {"slug"}
    # A legal move: the leaf becomes a root, and the tree shows it at once.
    moved = await categories.UpdateCategory(
        pb.UpdateCategoryRequest(id=tree["leaf"].id, parent_id=""), metadata=admin
    )
    assert moved.parent_id == ""
    roots = (await categories.ListCategories(pb.ListCategoriesRequest())).categories
    assert tree["leaf"].id in {c.id for c in roots}


async def test_category_products_of_unknown_category_is_not_found(categories) -> None:
    error = await rpc_error(
        categories.ListCategoryProducts(pb.ListCategoryProductsRequest(id=str(uuid.uuid4())))
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_category_products_lists_the_subtree(categories, make_tree, make_product) -> None:
    tree = await make_tree()
    deep = await make_product(category_id=tree["leaf"].id)
    page = await categories.ListCategoryProducts(pb.ListCategoryProductsRequest(id=tree["root"].id))
    assert [p.id for p in page.products] == [deep.id] and page.total_size == 1


# --- internal batch read -----------------------------------------------------------------------


async def test_get_products_keeps_order_and_lists_unknown_ids(internal, make_product) -> None:
    a = await make_product()
    b = await make_product(active=False)
    unknown = str(uuid.uuid4())
    response = await internal.GetProducts(pb.GetProductsRequest(ids=[b.id, unknown, a.id, b.id]))
    assert [p.id for p in response.products] == [b.id, a.id]
    assert list(response.not_found_ids) == [unknown]
    error = await rpc_error(internal.GetProducts(pb.GetProductsRequest(ids=[])))
    assert set(violations(error)) == {"ids"}
