"""Crafted input through the Envoy edge is a 4xx naming what is wrong, never a 500.

Page tokens are opaque to clients but only base64url JSON underneath: every list that pages
must refuse a token it did not issue with 400 and a `page_token` field violation, whatever
is inside (services/catalog/tests/test_page_tokens.py tries every decoder with many more).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, tag, unique_email

ID = "0b0f2c55-8a0e-4b6e-9d39-0f6a9e4c1d2a"
WHEN = "2026-01-02T03:04:05.000006+00:00"


def token(position: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def raw(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# Whatever the list: not a token at all.
MALFORMED = {
    "not base64": "not base64 !!",
    "not utf-8": raw(b"\xff\xfe{}"),
    "json array": raw(b'["a","b"]'),
    "json string": token("eyJ4IjoxfQ"),
    "NaN": raw(b"NaN"),
    "nested 1,500 arrays": raw(b"[" * 1_500 + b"]" * 1_500),  # RecursionError in json.loads
    "nested 2,500 arrays": raw(b"[" * 2_500 + b"]" * 2_500),  # over the length cap
    "5 KB": "A" * 5_000,
}


def search_token(sort: str, key: Any, row: Any = ID, fuzzy: Any = False) -> str:
    return token({"s": sort, "k": [key, row], "f": fuzzy})


# (sort, token): tokens of the product lists' own shape with a value that cannot be.
PRODUCT_TOKENS = {
    "price as a string": ("price_asc", search_token("price_asc", "1250")),
    "price as a float": ("price_asc", search_token("price_asc", 12.5)),
    "price as a dict": ("price_desc", search_token("price_desc", {"$gt": 0})),
    "price beyond bigint": ("price_asc", search_token("price_asc", 2**64)),
    "price of 100 digits": ("price_desc", search_token("price_desc", 10**100)),
    "price is true": ("price_asc", search_token("price_asc", True)),
    "timestamp as a number": ("newest", search_token("newest", 1_767_323_045)),
    "timestamp without offset": ("newest", search_token("newest", "2026-01-02T03:04:05")),
    "timestamp out of range in UTC": ("newest", search_token("newest", "0001-01-01T00:00+14:00")),
    "name as a list": ("name", search_token("name", ["mug"])),
    "name with NUL": ("name", search_token("name", "mu\x00g")),
    "name with a lone surrogate": ("name", search_token("name", "mu\ud800g")),
    "id as a number": ("newest", search_token("newest", WHEN, 42)),
    "id as a list": ("name", search_token("name", "mug", [ID])),
    "id not a uuid": ("price_asc", search_token("price_asc", 100, "x")),
    "fuzzy as a string": ("newest", search_token("newest", WHEN, ID, "yes")),
    "keyset not a list": ("newest", token({"s": "newest", "k": WHEN, "f": False})),
    "sort as a list": ("newest", token({"s": ["newest"], "k": [WHEN, ID], "f": False})),
    "price_asc token for newest": ("newest", search_token("price_asc", 1250)),
    "newest token for price_asc": ("price_asc", search_token("newest", WHEN)),
    "another list's token": ("newest", token({"c": WHEN, "i": ID})),
}
SEARCH_TOKENS = {
    "rank as a string": ("relevance", search_token("relevance", "0.5")),
    "rank NaN": ("relevance", raw(f'{{"s":"relevance","k":[NaN,"{ID}"],"f":false}}'.encode())),
    "rank Infinity": (
        "relevance",
        raw(f'{{"s":"relevance","k":[1e999,"{ID}"],"f":true}}'.encode()),
    ),
    "rank as a dict": ("relevance", search_token("relevance", {})),
    "newest token for relevance": ("relevance", search_token("newest", WHEN)),
    **PRODUCT_TOKENS,
}
# Admin lists: low stock pages on (available, id), users and API keys on (created_at, id).
LOW_STOCK_TOKENS = {
    "available as a string": token({"a": "3", "i": ID}),
    "available negative": token({"a": -1, "i": ID}),
    "available beyond int4": token({"a": 2**31, "i": ID}),
    "available as a float": token({"a": 3.0, "i": ID}),
    "id as a number": token({"a": 3, "i": 7}),
    "id as a dict": token({"a": 3, "i": {"id": ID}}),
    "a search token": search_token("newest", WHEN),
}
KEYSET_TOKENS = {
    "created_at as a number": token({"c": 1_767_323_045, "i": ID}),
    "created_at as a list": token({"c": [WHEN], "i": ID}),
    "created_at without offset": token({"c": "2026-01-02T03:04:05", "i": ID}),
    "created_at out of range in UTC": token({"c": "9999-12-31T23:59:59-14:00", "i": ID}),
    "id as a number": token({"c": WHEN, "i": 12345}),
    "id as a list": token({"c": WHEN, "i": [ID]}),
    "id as null": token({"c": WHEN, "i": None}),
    "id is true": token({"c": WHEN, "i": True}),
    "a low-stock token": token({"a": 3, "i": ID}),
}


@pytest.fixture(scope="session")
async def api(stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=20, trust_env=False) as client:
        yield client


@pytest.fixture(scope="session")
async def admin_headers(api) -> dict[str, str]:
    response = await api.post(
        "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="session")
async def customer_headers(api) -> dict[str, str]:
    response = await api.post(
        "/api/auth/register",
        json={"email": unique_email("bad-input"), "password": "long enough pw", "name": "C"},
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="session")
async def category_id(api, admin_headers) -> str:
    response = await api.post(
        "/api/categories",
        headers=admin_headers,
        json={"name": "Bad Input", "slug": f"bad-input-{tag()}"},
    )
    assert response.status_code == 200, response.text
    return response.json()["id"]


def assert_page_token_refused(response: httpx.Response) -> None:
    assert response.status_code == 400, (response.status_code, response.text[:500])
    body = response.json()
    assert body["code"] == 3, body
    fields = {
        v["field"]
        for detail in body["details"]
        for v in detail.get("field_violations", detail.get("fieldViolations", []))
    }
    assert fields == {"page_token"}, body


@pytest.mark.parametrize("bad", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_page_tokens_are_400_on_every_list(
    api, admin_headers, category_id, bad: str
) -> None:
    for path, params, headers in [
        ("/api/products", {}, {}),
        ("/api/products/search", {"q": "mug"}, {}),
        (f"/api/categories/{category_id}/products", {}, {}),
        ("/api/inventory/low-stock", {}, admin_headers),
        ("/api/users", {}, admin_headers),
        ("/api/auth/api-keys", {}, admin_headers),
    ]:
        response = await api.get(path, params={**params, "page_token": bad}, headers=headers)
        assert_page_token_refused(response)


async def test_a_url_too_long_for_the_edge_is_a_4xx(api, admin_headers) -> None:
    # Tokens of 10,000 nested arrays (27 KB) never reach a decoder: the URL travels to the
    # service as gRPC metadata (x-envoy-original-path), over gRPC's 16 KB limit.
    for bad in (raw(b"[" * 10_000 + b"]" * 10_000), "A" * 20_000):
        for path in ("/api/products", "/api/users"):
            response = await api.get(path, params={"page_token": bad}, headers=admin_headers)
            assert 400 <= response.status_code < 500, response.text[:300]


@pytest.mark.parametrize(("sort", "bad"), PRODUCT_TOKENS.values(), ids=PRODUCT_TOKENS.keys())
async def test_product_list_tokens_of_the_wrong_type_are_400(
    api, category_id, sort: str, bad: str
) -> None:
    params = {"sort": sort, "page_token": bad}
    assert_page_token_refused(await api.get("/api/products", params=params))
    path = f"/api/categories/{category_id}/products"
    assert_page_token_refused(await api.get(path, params=params))


@pytest.mark.parametrize(("sort", "bad"), SEARCH_TOKENS.values(), ids=SEARCH_TOKENS.keys())
async def test_search_tokens_of_the_wrong_type_are_400(api, sort: str, bad: str) -> None:
    params = {"q": "mug", "sort": sort, "page_token": bad}
    assert_page_token_refused(await api.get("/api/products/search", params=params))


@pytest.mark.parametrize("bad", LOW_STOCK_TOKENS.values(), ids=LOW_STOCK_TOKENS.keys())
async def test_low_stock_tokens_of_the_wrong_type_are_400(api, admin_headers, bad: str) -> None:
    response = await api.get(
        "/api/inventory/low-stock", params={"page_token": bad}, headers=admin_headers
    )
    assert_page_token_refused(response)


@pytest.mark.parametrize("bad", KEYSET_TOKENS.values(), ids=KEYSET_TOKENS.keys())
async def test_user_and_api_key_tokens_of_the_wrong_type_are_400(
    api, admin_headers, bad: str
) -> None:
    for path in ("/api/users", "/api/auth/api-keys"):
        response = await api.get(path, params={"page_token": bad}, headers=admin_headers)
        assert_page_token_refused(response)


async def test_issued_tokens_still_page(api, admin_headers, customer_headers) -> None:
    """The checks refuse only what the API did not issue: real next_page_tokens still work."""
    for name in ("Crème Mug", "\U0001f375 Tea Mug"):
        body = {"sku": f"PAGE-{tag()}", "name": name, "price_cents": 10**12, "stock": 1}
        created = await api.post("/api/products", headers=admin_headers, json=body)
        assert created.status_code == 200, created.text
    for path, extra in [("/api/products", {}), ("/api/products/search", {"q": "mug"})]:
        for sort in ("relevance", "newest", "price_asc", "price_desc", "name"):
            if sort == "relevance" and not extra:
                continue
            params = {**extra, "sort": sort, "page_size": 1}
            first = await api.get(path, params=params)
            assert first.status_code == 200, first.text
            following = first.json()["next_page_token"]
            assert following, (path, sort)
            second = await api.get(path, params={**params, "page_token": following})
            assert second.status_code == 200, second.text
            assert second.json()["products"][0]["id"] != first.json()["products"][0]["id"]
    users = await api.get("/api/users", params={"page_size": 1}, headers=admin_headers)
    assert users.status_code == 200 and users.json()["next_page_token"]
    params = {"page_size": 1, "page_token": users.json()["next_page_token"]}
    assert (await api.get("/api/users", params=params, headers=admin_headers)).status_code == 200


# --- a missing or hidden product is 404 for everyone but an admin ---------------------------


@pytest.fixture(scope="session")
async def inactive_product(api, admin_headers) -> dict:
    body = {"sku": f"HIDDEN-{tag()}", "name": "Hidden", "price_cents": 100, "active": False}
    response = await api.post("/api/products", headers=admin_headers, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    return response.json()


async def test_a_customer_asking_for_a_hidden_product_gets_404(
    api, customer_headers, inactive_product
) -> None:
    # Not 403: that would tell a customer the id exists (and is hidden).
    response = await api.get(f"/api/products/{inactive_product['id']}", headers=customer_headers)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == 5


async def test_a_customer_asking_for_an_unknown_product_gets_404(api, customer_headers) -> None:
    response = await api.get(f"/api/products/{uuid.uuid4()}", headers=customer_headers)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == 5


async def test_an_anonymous_caller_gets_404_for_hidden_and_unknown(api, inactive_product) -> None:
    for product_id in (inactive_product["id"], str(uuid.uuid4())):
        response = await api.get(f"/api/products/{product_id}")
        assert response.status_code == 404, response.text


async def test_an_admin_still_sees_a_hidden_product(api, admin_headers, inactive_product) -> None:
    response = await api.get(f"/api/products/{inactive_product['id']}", headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == inactive_product["id"]
    assert response.json()["active"] is False


# --- NUL characters: PostgreSQL cannot store them; each is a 400 naming the field --------


def violation_fields(response: httpx.Response) -> set[str]:
    return {
        v["field"]
        for detail in response.json()["details"]
        for v in detail.get("field_violations", [])
    }


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/auth/login", {"email": "a\u0000@example.com", "password": "pw"}, "email"),
        (
            "/api/auth/register",
            {"email": "nul@example.com", "password": "long enough pw", "name": "A\u0000"},
            "name",
        ),
        ("/api/auth/forgot-password", {"email": "x\u0000@example.com"}, "email"),
    ],
)
async def test_nul_in_a_public_string_field_is_400(api, sql, path, body, field) -> None:
    users_before = sql("select count(*) from auth.users")
    response = await api.post(path, json=body)
    assert response.status_code == 400, response.text
    assert field in violation_fields(response)
    assert sql("select count(*) from auth.users") == users_before  # nothing changed


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/products", {"sku": "NUL-1", "name": "Mug\u0000", "price_cents": 100}, "name"),
        (
            "/api/products",
            {"sku": "NUL-2", "name": "Mug", "price_cents": 100, "image_urls": ["http://x/\u0000"]},
            "image_urls[0]",
        ),
        ("/api/categories", {"name": "Cups\u0000", "slug": "cups-nul"}, "name"),
    ],
)
async def test_nul_in_an_admin_string_field_is_400(
    api, admin_headers, sql, path, body, field
) -> None:
    response = await api.post(path, json=body, headers=admin_headers)
    assert response.status_code == 400, response.text
    assert field in violation_fields(response)
    assert sql("select count(*) from catalog.products where sku like 'NUL-%%'") == [(0,)]


# --- headers HTTP allows but gRPC metadata does not ------------------------------------------


async def test_header_names_grpc_cannot_carry_are_dropped_at_the_edge(api) -> None:
    weird = {"a|b": "x", "x!": "y", "c*d": "z", "q'r": "1"}
    response = await api.get("/api/categories", headers=weird)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("value", ["a\tb", "é".encode()])
async def test_an_api_key_grpc_cannot_carry_is_401_not_500(api, category_id, value) -> None:
    response = await api.put(
        f"/api/categories/{category_id}", json={"name": "x"}, headers={"X-API-Key": value}
    )
    assert response.status_code == 401, response.text


async def test_a_stale_token_on_a_public_read_is_ignored(api) -> None:
    stale = {"Authorization": "Bearer not.a.token"}
    missing = await api.get(f"/api/products/{uuid.uuid4()}", headers=stale)
    assert missing.status_code == 404
    assert (await api.get("/api/categories", headers=stale)).status_code == 200
