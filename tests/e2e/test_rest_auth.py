"""REST through the Envoy edge, as a web or mobile client calls it (API.md)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, unique_email

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
async def api(stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=10, trust_env=False) as client:
        yield client


async def register(api: httpx.AsyncClient, email: str | None = None) -> dict:
    response = await api.post(
        "/api/auth/register",
        json={"email": email or unique_email(), "password": PASSWORD, "name": "Ada"},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def admin_headers(api: httpx.AsyncClient) -> dict[str, str]:
    response = await api.post(
        "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def user_count(sql) -> int:
    return sql("select count(*) from auth.users")[0][0]


def field_violations(body: dict) -> dict[str, str]:
    return {
        v["field"]: v["description"]
        for detail in body["details"]
        for v in detail.get("field_violations", detail.get("fieldViolations", []))
    }


async def test_register_login_me_walkthrough(api) -> None:
    email = unique_email()
    registered = await register(api, email)
    assert set(registered) == {"user", "access_token", "refresh_token", "token_type", "expires_in"}
    assert registered["token_type"] == "Bearer" and registered["expires_in"] == 900
    user = registered["user"]
    assert set(user) == {"id", "email", "name", "role", "created_at"}
    assert user["role"] == "ROLE_CUSTOMER" and user["created_at"].endswith("Z")

    login = await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200
    token = login.json()["access_token"]
    me = await api.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json() == {"user": user}


async def test_lower_camel_case_fields_are_accepted(api) -> None:
    registered = await register(api)
    refreshed = await api.post(
        "/api/auth/refresh", json={"refreshToken": registered["refresh_token"]}
    )
    assert refreshed.status_code == 200
    assert "refresh_token" in refreshed.json()  # answers stay snake_case


async def test_refresh_reuse_is_401_and_kills_the_family(api) -> None:
    first = await register(api)
    second = await api.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    reuse = await api.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert reuse.json()["code"] == 16
    dead = await api.post(
        "/api/auth/refresh", json={"refresh_token": second.json()["refresh_token"]}
    )
    assert dead.status_code == 401


async def test_logout_then_refresh_is_401(api) -> None:
    session = await register(api)
    assert (
        await api.post("/api/auth/logout", json={"refresh_token": session["refresh_token"]})
    ).status_code == 200
    again = await api.post("/api/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert again.status_code == 401


# --- bad input: clear 4xx, field named, nothing changed ------------------------------------


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"email": "nope", "password": PASSWORD, "name": "A"}, {"email"}),
        ({"email": "a@b.com", "password": "short", "name": "A"}, {"password"}),
        ({"password": PASSWORD, "name": "A"}, {"email"}),
        ({}, {"email", "password", "name"}),
    ],
)
async def test_invalid_registration_is_400_naming_fields(api, sql, body, fields) -> None:
    before = user_count(sql)
    response = await api.post("/api/auth/register", json=body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["code"] == 3
    assert set(field_violations(payload)) == fields
    assert user_count(sql) == before


async def test_malformed_json_is_400_json(api, sql) -> None:
    before = user_count(sql)
    response = await api.post(
        "/api/auth/register",
        content=b'{"email": "a@b.com", "password": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == 3
    assert user_count(sql) == before


async def test_wrong_json_types_are_400(api, sql) -> None:
    before = user_count(sql)
    response = await api.post(
        "/api/auth/register", json={"email": ["a@b.com"], "password": 12345678, "name": {}}
    )
    assert response.status_code == 400
    assert response.json()["code"] == 3
    assert user_count(sql) == before


async def test_duplicate_email_is_409(api, sql) -> None:
    email = unique_email()
    await register(api, email)
    before = user_count(sql)
    response = await api.post(
        "/api/auth/register", json={"email": email.upper(), "password": PASSWORD, "name": "B"}
    )
    assert response.status_code == 409
    assert field_violations(response.json()) == {"email": "is already registered"}
    assert user_count(sql) == before


async def test_oversized_body_is_413(api, sql) -> None:
    before = user_count(sql)
    huge = {"email": unique_email(), "password": PASSWORD, "name": "x" * (1024 * 1024 + 10)}
    response = await api.post("/api/auth/register", json=huge)
    assert response.status_code == 413
    assert response.json()["code"] == 3
    assert user_count(sql) == before


async def test_unknown_route_is_404_json(api) -> None:
    response = await api.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response.json()["code"] == 5


async def test_unknown_query_parameters_are_ignored(api) -> None:
    response = await api.get("/.well-known/jwks.json?utm_source=newsletter")
    assert response.status_code == 200


# --- tokens ---------------------------------------------------------------------------------


async def forge(api, stack, **claims) -> str:
    """A token signed with the stack's real key (its kid from the JWKS), to control expiry."""
    key = serialization.load_pem_private_key(stack.jwt_key_file.read_bytes(), password=None)
    kid = (await api.get("/.well-known/jwks.json")).json()["keys"][0]["kid"]
    now = int(time.time())
    body = {"iss": "ecommerce-auth", "aud": "ecommerce", "sub": "x", "role": "customer"}
    body |= {"iat": now - 3600, "exp": now + 60} | claims
    return jwt.encode(body, key, algorithm="EdDSA", headers={"kid": kid})


@pytest.fixture
async def signed_in(api) -> dict:
    return await register(api)


async def test_expired_token_is_401(api, stack, signed_in) -> None:
    expired = await forge(api, stack, sub=signed_in["user"]["id"], exp=int(time.time()) - 10)
    response = await api.get("/api/auth/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert response.json()["message"] == "access token expired"


async def test_tampered_token_is_401(api, signed_in) -> None:
    header, payload, signature = signed_in["access_token"].split(".")
    claims = jwt.utils.base64url_decode(payload).replace(b'"customer"', b'"admin"')
    tampered = ".".join([header, jwt.utils.base64url_encode(claims).decode(), signature])
    response = await api.get("/api/users", headers={"Authorization": f"Bearer {tampered}"})
    assert response.status_code == 401


async def test_missing_token_is_401(api) -> None:
    response = await api.get("/api/auth/me")
    assert response.status_code == 401
    assert response.json()["code"] == 16


async def test_customer_on_admin_route_is_403(api, signed_in) -> None:
    headers = {"Authorization": f"Bearer {signed_in['access_token']}"}
    for method, path in [("GET", "/api/users"), ("POST", "/api/auth/api-keys")]:
        response = await api.request(method, path, headers=headers, json={"name": "x"})
        assert response.status_code == 403, (method, path)
        assert response.json()["code"] == 7


async def test_jwks_verifies_issued_tokens(api, signed_in) -> None:
    jwks = (await api.get("/.well-known/jwks.json")).json()
    key = jwt.PyJWK(jwks["keys"][0])
    claims = jwt.decode(
        signed_in["access_token"], key.key, algorithms=["EdDSA"], audience="ecommerce"
    )
    assert claims["sub"] == signed_in["user"]["id"]
    assert 899 < claims["exp"] - claims["iat"] <= 900  # iat has milliseconds


# --- admin: users and API keys --------------------------------------------------------------


async def test_admin_api_key_flow_over_rest(api) -> None:
    admin = await admin_headers(api)
    created = await api.post("/api/auth/api-keys", headers=admin, json={"name": "warehouse"})
    assert created.status_code == 200
    body = created.json()
    assert set(body["api_key"]) == {"id", "name", "prefix", "created_at"}
    key = {"X-API-Key": body["key"]}

    listed = await api.get("/api/users?page_size=2", headers=key)
    assert listed.status_code == 200
    assert len(listed.json()["users"]) == 2 and listed.json()["next_page_token"]
    keys = (await api.get("/api/auth/api-keys", headers=admin)).json()["api_keys"]
    assert body["key"] not in str(keys)

    deleted = await api.delete(f"/api/auth/api-keys/{body['api_key']['id']}", headers=admin)
    assert deleted.status_code == 200
    refused = await api.get("/api/users", headers=key)
    assert refused.status_code == 401


async def test_admin_manages_users_over_rest(api) -> None:
    admin = await admin_headers(api)
    target = (await register(api))["user"]
    updated = await api.put(
        f"/api/users/{target['id']}", headers=admin, json={"name": "Grace", "role": "ROLE_ADMIN"}
    )
    assert updated.status_code == 200
    assert updated.json()["role"] == "ROLE_ADMIN" and updated.json()["name"] == "Grace"
    bad = await api.put(f"/api/users/{target['id']}", headers=admin, json={"role": "ROLE_KING"})
    assert bad.status_code == 400
    assert (await api.get(f"/api/users/{target['id']}", headers=admin)).json()["role"] == (
        "ROLE_ADMIN"
    )
    assert (await api.delete(f"/api/users/{target['id']}", headers=admin)).status_code == 200
    assert (await api.get(f"/api/users/{target['id']}", headers=admin)).status_code == 404
    assert (await api.get("/api/users/not-a-uuid", headers=admin)).status_code == 400


async def test_forgot_password_answers_alike(api) -> None:
    known = unique_email()
    await register(api, known)
    a = await api.post("/api/auth/forgot-password", json={"email": known})
    b = await api.post("/api/auth/forgot-password", json={"email": unique_email()})
    assert a.status_code == b.status_code == 200
    assert a.json() == b.json() == {}


# --- the edge -------------------------------------------------------------------------------


async def test_healthz_is_200_when_every_service_answers(api) -> None:
    assert (await api.get("/healthz")).status_code == 200
