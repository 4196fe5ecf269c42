"""The catalog's REST routes through the Envoy edge, as a shop front end calls them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from ecommerce.catalog.v1 import catalog_pb2 as pb
from ecommerce.catalog.v1 import catalog_pb2_grpc

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, tag, unique_email


@pytest.fixture(scope="session")
async def api(stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=10, trust_env=False) as client:
        yield client


@pytest.fixture(scope="session")
async def admin_headers(api) -> dict[str, str]:
    response = await api.post(
        "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="session")
async def customer_headers(api) -> dict[str, str]:
    response = await api.post(
        "/api/auth/register",
        json={"email": unique_email(), "password": "long enough pw", "name": "C"},
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def create_category(api, headers, name: str, parent_id: str = "") -> dict:
    response = await api.post(
        "/api/categories",
        headers=headers,
        json={"name": name, "slug": f"{name.lower()}-{tag()}", "parent_id": parent_id},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def create_product(api, headers, **fields) -> dict:
    body = {"sku": f"SKU-{tag()}", "name": "Thing", "price_cents": 1000, "stock": 3} | fields
    response = await api.post("/api/products", headers=headers, json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_product_json_follows_the_contract(api, admin_headers) -> None:
    product = await create_product(api, admin_headers, name="Mug", price_cents=1250)
    assert set(product) == {
        "id", "sku", "name", "description", "price_cents", "currency", "category_id",
        "stock", "image_urls", "active", "created_at", "updated_at",
    }  # fmt: skip
    assert product["currency"] == "USD" and product["stock"] == 3
    assert product["description"] == "" and product["image_urls"] == []  # defaults printed
    fetched = await api.get(f"/api/products/{product['id']}")
    assert fetched.status_code == 200 and fetched.json() == product


async def test_browse_a_category_tree_and_its_products(api, admin_headers) -> None:
    root = await create_category(api, admin_headers, "Garden")
    child = await create_category(api, admin_headers, "Tools", root["id"])
    cheap = await create_product(api, admin_headers, category_id=child["id"], price_cents=500)
    dear = await create_product(api, admin_headers, category_id=root["id"], price_cents=9000)

    tree = (await api.get("/api/categories")).json()["categories"]
    garden = next(c for c in tree if c["id"] == root["id"])
    assert [c["id"] for c in garden["children"]] == [child["id"]]

    listed = await api.get(
        "/api/products",
        params={"category_id": root["id"], "sort": "price_desc", "page_size": 1, "utm": "x"},
    )
    assert listed.status_code == 200
    page = listed.json()
    assert [p["id"] for p in page["products"]] == [dear["id"]] and page["total_size"] == 2
    rest = await api.get(
        "/api/products",
        params={
            "category_id": root["id"],
            "sort": "price_desc",
            "page_token": page["next_page_token"],
        },
    )
    assert [p["id"] for p in rest.json()["products"]] == [cheap["id"]]
    assert rest.json()["next_page_token"] == ""

    by_category = await api.get(f"/api/categories/{root['id']}/products")
    assert {p["id"] for p in by_category.json()["products"]} == {cheap["id"], dear["id"]}


async def test_search_with_facets_over_rest(api, admin_headers) -> None:
    word = f"qx{tag()}"
    await create_product(api, admin_headers, name=f"{word} Café Table", price_cents=15000)
    found = await api.get("/api/products/search", params={"q": f"{word} cafe"})
    assert found.status_code == 200
    body = found.json()
    assert [p["name"] for p in body["products"]] == [f"{word} Café Table"]
    assert body["total_size"] == 1 and {"categories", "price_bands"} <= set(body["facets"])


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/products?sort=cheapest", 400, 3),
        ("/api/products?min_price_cents=abc", 400, 3),
        (f"/api/products/{uuid.uuid4()}", 404, 5),
        ("/api/products/not-a-uuid", 400, 3),
        ("/api/products/search", 400, 3),
        (f"/api/categories/{uuid.uuid4()}/products", 404, 5),
    ],
)
async def test_bad_requests_are_clear_4xx(api, path, status, code) -> None:
    response = await api.get(path)
    assert response.status_code == status
    assert response.json()["code"] == code


async def test_writes_need_an_admin(api, customer_headers, sql) -> None:
    before = sql("select count(*) from catalog.products")[0][0]
    body = {"sku": f"S-{tag()}", "name": "x", "price_cents": 1}
    assert (await api.post("/api/products", json=body)).status_code == 401
    assert (await api.post("/api/products", json=body, headers=customer_headers)).status_code == 403
    assert (await api.get("/api/inventory/low-stock", headers=customer_headers)).status_code == 403
    assert sql("select count(*) from catalog.products")[0][0] == before


async def test_admin_sets_stock_and_sees_low_stock(api, admin_headers) -> None:
    product = await create_product(api, admin_headers, stock=50)
    response = await api.put(
        f"/api/products/{product['id']}/stock",
        headers=admin_headers,
        json={"on_hand": 2, "low_stock_threshold": 5},
    )
    assert response.status_code == 200
    assert response.json()["available"] == 2
    low = (await api.get("/api/inventory/low-stock?page_size=100", headers=admin_headers)).json()
    assert product["id"] in {level["product_id"] for level in low["stock_levels"]}
    assert (await api.get(f"/api/products/{product['id']}")).json()["stock"] == 2
    missing = await api.put(f"/api/products/{product['id']}/stock", headers=admin_headers, json={})
    assert missing.status_code == 400
    assert missing.json()["details"][0]["field_violations"][0]["field"] == "on_hand"


async def test_an_update_is_visible_on_the_next_get(api, admin_headers) -> None:
    product = await create_product(api, admin_headers, name="Old name")
    assert (await api.get(f"/api/products/{product['id']}")).json()["name"] == "Old name"
    await api.put(f"/api/products/{product['id']}", headers=admin_headers, json={"name": "New"})
    assert (await api.get(f"/api/products/{product['id']}")).json()["name"] == "New"


async def test_internal_catalog_rpcs_are_not_reachable_through_the_edge(stack) -> None:
    async with grpc.aio.insecure_channel(stack.http_url.removeprefix("http://")) as channel:
        stub = catalog_pb2_grpc.CatalogInternalServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ReserveStock(
                pb.ReserveStockRequest(
                    reservation_id=str(uuid.uuid4()),
                    items=[pb.ReservationItem(product_id=str(uuid.uuid4()), quantity=1)],
                )
            )
        assert caught.value.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND)
