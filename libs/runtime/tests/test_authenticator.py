"""The token verifier every service runs, against keys made here (no server needed)."""

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ecom_runtime.auth import Authenticator, Principal
from ecom_runtime.errors import Unauthenticated, Unavailable
from jwt.algorithms import OKPAlgorithm

ISSUER, AUDIENCE = "ecommerce-auth", "ecommerce"


def _jwk(key: Ed25519PrivateKey, kid: str) -> dict:
    public = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**public, "kid": kid, "alg": "EdDSA", "use": "sig"}


class Keys:
    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.fetches = 0

    async def fetch(self) -> list[dict]:
        self.fetches += 1
        return [_jwk(self.key, "k1")]

    def token(self, key: Ed25519PrivateKey | None = None, kid: str = "k1", **claims) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "role": "customer", "iat": now}
        body |= {"exp": now + 60} | claims
        return jwt.encode(body, key or self.key, algorithm="EdDSA", headers={"kid": kid})


async def _no_api_keys(key: str) -> Principal | None:
    return Principal(subject="api_key:1", role="admin", api_key_id="1") if key == "good" else None


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def authenticator(keys: Keys) -> Authenticator:
    return Authenticator(keys.fetch, _no_api_keys, issuer=ISSUER, audience=AUDIENCE)


async def test_valid_token_gives_the_user(keys: Keys, authenticator: Authenticator) -> None:
    principal = await authenticator.authenticate({"authorization": f"Bearer {keys.token()}"})
    assert principal.user_id == "u1" and principal.role == "customer"
    await authenticator.authenticate({"authorization": f"bearer {keys.token()}"})
    assert keys.fetches == 1  # JWKS cached


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda k: k.token(exp=int(time.time()) - 5), "access token expired"),
        (lambda k: k.token(key=Ed25519PrivateKey.generate()), "access token invalid"),
        (lambda k: k.token(aud="someone-else"), "access token invalid"),
        (lambda k: k.token(iss="someone-else"), "access token invalid"),
        (lambda k: k.token()[:-4] + "AAAA", "access token invalid"),
        (lambda k: k.token(kid="unknown"), "access token signed by an unknown key"),
        (lambda k: "not-a-jwt", "access token invalid"),
    ],
)
async def test_bad_tokens_are_unauthenticated(
    keys: Keys, authenticator: Authenticator, make, message: str
) -> None:
    with pytest.raises(Unauthenticated, match=message):
        await authenticator.authenticate({"authorization": f"Bearer {make(keys)}"})


async def test_hs256_token_signed_with_the_public_key_is_refused(
    keys: Keys, authenticator: Authenticator
) -> None:
    # The classic algorithm-confusion attack: only EdDSA is accepted.
    forged = jwt.encode(
        {"sub": "u1", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60, "iat": 0},
        "k" * 32,
        algorithm="HS256",
        headers={"kid": "k1"},
    )
    with pytest.raises(Unauthenticated):
        await authenticator.authenticate({"authorization": f"Bearer {forged}"})


async def test_missing_or_malformed_header(authenticator: Authenticator) -> None:
    for metadata in ({}, {"authorization": "Basic abc"}, {"authorization": "Bearer "}):
        with pytest.raises(Unauthenticated, match="sign in required"):
            await authenticator.authenticate(metadata)


async def test_api_key_header_wins_and_is_checked(authenticator: Authenticator) -> None:
    assert (await authenticator.authenticate({"x-api-key": "good"})).is_admin
    with pytest.raises(Unauthenticated, match="API key"):
        await authenticator.authenticate({"x-api-key": "bad"})


async def test_auth_service_down_is_unavailable_not_unauthenticated(keys: Keys) -> None:
    async def down() -> list[dict]:
        raise ConnectionError("auth is down")

    authenticator = Authenticator(down, _no_api_keys, issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(Unavailable):
        await authenticator.authenticate({"authorization": f"Bearer {keys.token()}"})


async def test_known_keys_keep_working_while_jwks_refetch_fails(keys: Keys) -> None:
    calls = 0

    async def flaky() -> list[dict]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise ConnectionError("auth is down")
        return [_jwk(keys.key, "k1")]

    authenticator = Authenticator(
        flaky, _no_api_keys, issuer=ISSUER, audience=AUDIENCE, jwks_ttl_seconds=0
    )
    for _ in range(3):  # every call finds the cache stale, but only one refetch is tried
        await authenticator.authenticate({"authorization": f"Bearer {keys.token()}"})
    assert calls == 2
