"""Who may do what, tried from outside over REST and gRPC: revocation reaches every service in
seconds, API keys cannot mint keys, internal RPCs need the service credential, one form of an
email address, and the bootstrap admin variables only while no admin exists."""

from __future__ import annotations

import asyncio
import unicodedata
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import httpx
import pytest
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
from ecommerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, service_process, tag, unique_email

PASSWORD = "long enough pw"
# Revocation travels as an event (outbox -> NATS -> every service): "seconds", not the 15
# minutes an access token lives or the 30 s an API key stays cached.
WITHIN_SECONDS = 10


@pytest.fixture(scope="session")
async def api(stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=20, trust_env=False) as client:
        yield client


async def sign_in(api: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await api.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="session")
async def admin_headers(api) -> dict[str, str]:
    return await sign_in(api, ADMIN_EMAIL, ADMIN_PASSWORD)


async def new_admin(api: httpx.AsyncClient, admin_headers: dict[str, str]) -> tuple[str, dict]:
    """A second admin (registered, then promoted) and their signed-in headers."""
    email = unique_email("admin2")
    registered = await api.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Second"}
    )
    user_id = registered.json()["user"]["id"]
    promoted = await api.put(
        f"/api/users/{user_id}", json={"role": "ROLE_ADMIN"}, headers=admin_headers
    )
    assert promoted.status_code == 200, promoted.text
    return user_id, await sign_in(api, email, PASSWORD)


async def until(status: Callable[[], Awaitable[int]], expected: int) -> None:
    """Polls until `status()` gives `expected`, at most WITHIN_SECONDS."""
    async with asyncio.timeout(WITHIN_SECONDS):
        while True:  # the change arrives by event: nothing here to wait on but its effect
            if await status() == expected:
                return
            await asyncio.sleep(0.1)


def admin_routes(api: httpx.AsyncClient, headers: dict[str, str]) -> list[Callable]:
    """One admin route in each of two services: auth (users) and catalog (low stock)."""

    async def auth_route() -> int:
        return (await api.get("/api/users?page_size=1", headers=headers)).status_code

    async def catalog_route() -> int:
        return (await api.get("/api/inventory/low-stock", headers=headers)).status_code

    return [auth_route, catalog_route]


async def test_a_demoted_admin_loses_admin_rights_everywhere_within_seconds(
    api, admin_headers
) -> None:
    user_id, headers = await new_admin(api, admin_headers)
    routes = admin_routes(api, headers)
    assert [await route() for route in routes] == [200, 200]
    demoted = await api.put(
        f"/api/users/{user_id}", json={"role": "ROLE_CUSTOMER"}, headers=admin_headers
    )
    assert demoted.status_code == 200
    for route in routes:  # the old token still says "admin" and has 15 minutes to live
        await until(route, 401)
    # Signing in again gives a token for what the account now is: a customer.
    email = demoted.json()["email"]
    fresh = await sign_in(api, email, PASSWORD)
    assert [await route() for route in admin_routes(api, fresh)] == [403, 403]
    assert (await api.get("/api/auth/me", headers=fresh)).status_code == 200


async def test_a_deleted_users_tokens_stop_working_everywhere(api, admin_headers) -> None:
    user_id, headers = await new_admin(api, admin_headers)
    deleted = await api.delete(f"/api/users/{user_id}", headers=admin_headers)
    assert deleted.status_code == 200
    for route in admin_routes(api, headers):
        await until(route, 401)


async def test_a_revoked_api_key_stops_working_everywhere_within_seconds(
    api, admin_headers
) -> None:
    created = await api.post("/api/auth/api-keys", json={"name": "ci"}, headers=admin_headers)
    assert created.status_code == 200, created.text
    key = {"X-API-Key": created.json()["key"]}
    routes = admin_routes(api, key)
    assert [await route() for route in routes] == [200, 200]  # now cached in catalog for 30 s
    key_id = created.json()["api_key"]["id"]
    revoked = await api.delete(f"/api/auth/api-keys/{key_id}", headers=admin_headers)
    assert revoked.status_code == 200
    for route in routes:
        await until(route, 401)


async def test_an_api_key_cannot_mint_or_revoke_api_keys(api, admin_headers, sql) -> None:
    created = await api.post("/api/auth/api-keys", json={"name": "leaky"}, headers=admin_headers)
    key = {"X-API-Key": created.json()["key"]}
    keys_before = sql("select count(*) from auth.api_keys")
    minted = await api.post("/api/auth/api-keys", json={"name": "successor"}, headers=key)
    assert minted.status_code == 403
    reasons = [d.get("reason") for d in minted.json()["details"]]
    assert "API_KEY_CANNOT_MANAGE_KEYS" in reasons
    assert sql("select count(*) from auth.api_keys") == keys_before
    # Nor revoke the keys that would replace it.
    own_id = created.json()["api_key"]["id"]
    revoking = await api.delete(f"/api/auth/api-keys/{own_id}", headers=key)
    assert revoking.status_code == 403
    # It still does admin work it is meant for.
    assert (await api.get("/api/inventory/low-stock", headers=key)).status_code == 200


async def test_internal_rpcs_refuse_callers_without_the_service_credential(stack) -> None:
    """Even from localhost: the network is not trusted."""
    calls = [
        (
            "catalog",
            lambda ch, md: catalog_pb2_grpc.CatalogInternalServiceStub(ch).GetProducts(
                catalog_pb2.GetProductsRequest(ids=[str(uuid.uuid4())]), metadata=md
            ),
        ),
        (
            "auth",
            lambda ch, md: auth_pb2_grpc.AuthInternalServiceStub(ch).AuthenticateApiKey(
                auth_pb2.AuthenticateApiKeyRequest(key="ek_guess"), metadata=md
            ),
        ),
    ]
    for service, call in calls:
        async with grpc.aio.insecure_channel(stack.grpc_addrs[service]) as channel:
            for metadata in ((), (("x-service-credential", "guessed"),)):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call(channel, metadata)
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, service
            with_credential = (("x-service-credential", stack.service_credential),)
            try:
                await call(channel, with_credential)
            except grpc.aio.AioRpcError as error:  # auth: that key is unknown, as it should be
                assert error.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "API key" in (error.details() or "")


async def test_one_form_of_an_email_for_register_login_and_forgotten_passwords(api, sql) -> None:
    local = f"jose{tag()}"
    decomposed = unicodedata.normalize("NFD", f"{local}\u00e9@example.com")  # e + U+0301
    composed = unicodedata.normalize("NFC", decomposed)
    assert decomposed != composed
    registered = await api.post(
        "/api/auth/register", json={"email": decomposed, "password": PASSWORD, "name": "José"}
    )
    assert registered.status_code == 200, registered.text
    for spelling in (decomposed, composed, composed.upper(), f"  {decomposed} "):
        response = await api.post("/api/auth/login", json={"email": spelling, "password": PASSWORD})
        assert response.status_code == 200, (spelling, response.text)
    again = await api.post(
        "/api/auth/register", json={"email": composed.upper(), "password": PASSWORD, "name": "J"}
    )
    assert again.status_code == 409  # the same address, however it is spelled
    before = (
        sql("select count(*) from auth.outbox")[0][0]
        + sql("select count(*) from auth.password_reset_tokens")[0][0]
    )
    forgot = await api.post("/api/auth/forgot-password", json={"email": decomposed.upper()})
    assert forgot.status_code == 200

    async def reset_requested() -> int:  # the event, or the token it led to, exists
        now = (
            sql("select count(*) from auth.outbox")[0][0]
            + sql("select count(*) from auth.password_reset_tokens")[0][0]
        )
        return 1 if now > before else 0

    await until(reset_requested, 1)


async def test_bootstrap_admin_variables_create_no_admin_once_one_exists(stack, sql) -> None:
    """A second auth process with other bootstrap variables: the stack's admin exists, so the
    variables are ignored (a leaked old value cannot re-create or re-promote anyone)."""
    email = unique_email("late-admin")
    customer = unique_email("promote-me")
    sql(
        "insert into auth.users (id, email, name, password_hash, role) "
        "values (%s, %s, 'C', 'x', 'customer')",
        uuid.uuid4(),
        customer,
    )
    for bootstrap in (email, customer):
        # SERVING only after its start-up work, the bootstrap step included.
        async with service_process(
            stack,
            "auth",
            AUTH_ADMIN_EMAIL=bootstrap,
            AUTH_ADMIN_PASSWORD="bootstrap-password-1",
            SHUTDOWN_DRAIN_SECONDS="0",
        ):
            pass
    assert sql("select count(*) from auth.users where email = %s", email) == [(0,)]
    assert sql("select role from auth.users where email = %s", customer) == [("customer",)]
