"""REST fixtures shared by the end-to-end tests: a client on the edge, an admin, new
customers, products."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, tag, unique_email

PASSWORD = "long enough pw"


@pytest.fixture(scope="session")
async def api(stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=20, trust_env=False) as client:
        yield client


@pytest.fixture(scope="session")
async def admin(api) -> dict[str, str]:
    response = await api.post(
        "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def new_user(api) -> Callable[[], Awaitable[dict[str, str]]]:
    """Registers a customer; returns their Authorization header."""

    async def register() -> dict[str, str]:
        response = await api.post(
            "/api/auth/register",
            json={"email": unique_email("shopper"), "password": PASSWORD, "name": "Cara"},
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    return register


@pytest.fixture
def product(api, admin):
    """Creates a product as admin (any product field can be given)."""

    async def make(price_cents: int = 1250, stock: int = 10, **extra) -> dict:
        body = {"sku": f"E2E-{tag()}", "name": f"Mug {tag()}", "price_cents": price_cents}
        response = await api.post(
            "/api/products", headers=admin, json={**body, "stock": stock, **extra}
        )
        assert response.status_code == 200, response.text
        return response.json()

    return make
