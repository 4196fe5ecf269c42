"""The token verifier every service runs, against keys made here (no server needed)."""

import asyncio
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
        await asyncio.sleep(0.01)  # room for the background refetch to run and fail
    assert calls == 2  # after a failure the next try waits (backoff), known keys still work


async def test_a_slow_auth_service_never_queues_requests_behind_a_refetch(keys: Keys) -> None:
    """Stale keys: requests go on with them while one background fetch runs, however slow."""
    release = asyncio.Event()
    fetches = 0

    async def slow() -> list[dict]:
        nonlocal fetches
        fetches += 1
        if fetches > 1:
            await release.wait()  # auth hangs
        return [_jwk(keys.key, "k1")]

    authenticator = Authenticator(
        slow, _no_api_keys, issuer=ISSUER, audience=AUDIENCE, jwks_ttl_seconds=0
    )
    await authenticator.authenticate({"authorization": f"Bearer {keys.token()}"})  # first fetch
    async with asyncio.timeout(5):  # the refetch hangs until released: waiting on it would hang
        results = await asyncio.gather(
            *(
                authenticator.authenticate({"authorization": f"Bearer {keys.token()}"})
                for _ in range(50)
            )
        )
    assert all(p.user_id == "u1" for p in results)
    assert fetches == 2  # one refetch in flight for all fifty stale lookups
    release.set()


async def test_without_keys_concurrent_requests_share_one_bounded_fetch(keys: Keys) -> None:
    fetches = 0

    async def hanging() -> list[dict]:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(30)
        return []

    authenticator = Authenticator(
        hanging, _no_api_keys, issuer=ISSUER, audience=AUDIENCE, fetch_wait_seconds=0.2
    )
    async with asyncio.timeout(5):  # bounded by fetch_wait_seconds, not by the 30 s fetch
        outcomes = await asyncio.gather(
            *(
                authenticator.authenticate({"authorization": f"Bearer {keys.token()}"})
                for _ in range(20)
            ),
            return_exceptions=True,
        )
    assert all(isinstance(o, Unavailable) for o in outcomes)
    assert fetches == 1


async def test_failed_fetches_back_off_instead_of_retrying_per_request(keys: Keys) -> None:
    fetches = 0

    async def down() -> list[dict]:
        nonlocal fetches
        fetches += 1
        raise ConnectionError("auth is down")

    authenticator = Authenticator(down, _no_api_keys, issuer=ISSUER, audience=AUDIENCE)
    for _ in range(10):
        with pytest.raises(Unavailable):
            await authenticator.authenticate({"authorization": f"Bearer {keys.token()}"})
    assert fetches == 1  # the next try waits for the backoff (0.5 s, doubling)


async def test_a_user_access_change_revokes_tokens_issued_before_it(
    keys: Keys, authenticator: Authenticator
) -> None:
    before = keys.token(iat=time.time() - 1, role="admin")
    authenticator.revoke_user("u1", time.time())
    after = keys.token(iat=time.time() + 0.001, role="customer")
    with pytest.raises(Unauthenticated, match="revoked"):
        await authenticator.authenticate({"authorization": f"Bearer {before}"})
    principal = await authenticator.authenticate({"authorization": f"Bearer {after}"})
    assert principal.role == "customer"
    other = keys.token(sub="u2", iat=time.time() - 1)  # other users are unaffected
    assert (await authenticator.authenticate({"authorization": f"Bearer {other}"})).user_id == "u2"


async def test_a_revoked_api_key_is_forgotten_at_once(keys: Keys) -> None:
    resolved = 0

    async def resolve(key: str) -> Principal | None:
        nonlocal resolved
        resolved += 1
        return (
            Principal(subject="api_key:7", role="admin", api_key_id="7") if resolved == 1 else None
        )

    authenticator = Authenticator(keys.fetch, resolve, issuer=ISSUER, audience=AUDIENCE)
    assert (await authenticator.authenticate({"x-api-key": "ek_x"})).is_admin
    assert (await authenticator.authenticate({"x-api-key": "ek_x"})).is_admin  # cached
    authenticator.revoke_api_key("7")
    with pytest.raises(Unauthenticated):
        await authenticator.authenticate({"x-api-key": "ek_x"})  # asked again: revoked
    assert resolved == 2


async def test_credentials_grpc_cannot_carry_are_refused_without_asking_auth(keys: Keys) -> None:
    asked: list[str] = []

    async def resolve(key: str) -> Principal | None:
        asked.append(key)
        return None

    authenticator = Authenticator(keys.fetch, resolve, issuer=ISSUER, audience=AUDIENCE)
    for metadata in (
        {"x-api-key": "ek_a\tb"},
        {"x-api-key": "ek_é"},
        {"authorization": "Bearer é"},
    ):
        with pytest.raises(Unauthenticated):
            await authenticator.authenticate(metadata)
    assert asked == []
