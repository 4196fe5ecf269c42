"""Who is calling: access tokens verified locally against the auth service's JWKS, and admin
API keys resolved by the auth service. Verification is lazy: an RPC that needs a caller asks
for one (`require_user`, `require_admin`), so public RPCs ignore a stale token a client sends."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt

from ecom_runtime.errors import PermissionDenied, Unauthenticated, Unavailable

ROLE_ADMIN = "admin"
ROLE_CUSTOMER = "customer"


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str  # a user id, or "api_key:<id>"
    role: str
    user_id: str | None = None
    api_key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == ROLE_ADMIN


JwksFetcher = Callable[[], Awaitable[list[dict[str, Any]]]]
ApiKeyResolver = Callable[[str], Awaitable[Principal | None]]


class Authenticator:
    """Verifies credentials; JWKS cached and refetched (rate limited) on an unknown `kid`."""

    def __init__(
        self,
        fetch_jwks: JwksFetcher,
        resolve_api_key: ApiKeyResolver,
        *,
        issuer: str,
        audience: str,
        jwks_ttl_seconds: float = 300.0,
    ) -> None:
        self._fetch_jwks = fetch_jwks
        self._resolve_api_key = resolve_api_key
        self._issuer = issuer
        self._audience = audience
        self._ttl = jwks_ttl_seconds
        self._keys: dict[str, Any] = {}
        self._fetched_at = -1e9
        self._lock = asyncio.Lock()

    async def _key(self, kid: str) -> Any:
        now = time.monotonic()
        stale = now - self._fetched_at > self._ttl
        # An unknown kid may mean the keys rotated; refetch at most every 10 s.
        if stale or (kid not in self._keys and now - self._fetched_at > 10):
            async with self._lock:
                if self._fetched_at < now:
                    try:
                        jwks = await self._fetch_jwks()
                        self._keys = {k["kid"]: jwt.PyJWK(k).key for k in jwks}
                        self._fetched_at = time.monotonic()
                    except Exception:
                        if not self._keys:
                            raise Unavailable("cannot verify tokens right now") from None
                        # Keep the known keys; try again in 10 s, not on every request.
                        self._fetched_at = time.monotonic() - self._ttl + 10
        key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("access token signed by an unknown key")
        return key

    async def verify_access_token(self, token: str) -> Principal:
        try:
            kid = jwt.get_unverified_header(token).get("kid", "")
            claims = jwt.decode(
                token,
                await self._key(kid),
                algorithms=["EdDSA"],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("access token expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated("access token invalid") from None
        return Principal(subject=claims["sub"], role=claims.get("role", ""), user_id=claims["sub"])

    async def authenticate(self, metadata: dict[str, str]) -> Principal:
        api_key = metadata.get("x-api-key")
        if api_key:
            principal = await self._resolve_api_key(api_key)
            if principal is None:
                raise Unauthenticated("API key invalid or revoked")
            return principal
        header = metadata.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("sign in required: send Authorization: Bearer <access_token>")
        return await self.verify_access_token(token.strip())


@dataclass(slots=True)
class _CallCredentials:
    authenticator: Authenticator
    metadata: dict[str, str]
    principal: Principal | None = None


_current: contextvars.ContextVar[_CallCredentials | None] = contextvars.ContextVar(
    "ecom_call_credentials", default=None
)


def bind_call(authenticator: Authenticator, metadata: dict[str, str]) -> None:
    """Called by the server interceptor for each RPC."""
    _current.set(_CallCredentials(authenticator, metadata))


def sent_credentials() -> bool:
    """Whether the current caller sent a token or API key at all (valid or not)."""
    call = _current.get()
    return call is not None and any(k in call.metadata for k in ("authorization", "x-api-key"))


async def require_user() -> Principal:
    """The caller (a user or an API key), or UNAUTHENTICATED."""
    call = _current.get()
    if call is None:
        raise Unauthenticated("sign in required")
    if call.principal is None:
        call.principal = await call.authenticator.authenticate(call.metadata)
    return call.principal


async def require_admin() -> Principal:
    principal = await require_user()
    if not principal.is_admin:
        raise PermissionDenied("this needs the admin role")
    return principal


def remote_authenticator(auth_grpc_addr: str, *, issuer: str, audience: str) -> Authenticator:
    """For services other than auth: JWKS and API keys come from the auth service over gRPC."""
    import grpc
    from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
    from google.protobuf.json_format import MessageToDict

    channel: grpc.aio.Channel | None = None
    api_key_cache: dict[str, tuple[float, Principal | None]] = {}

    def _channel() -> grpc.aio.Channel:
        nonlocal channel
        if channel is None:  # created lazily, inside the running event loop
            channel = grpc.aio.insecure_channel(auth_grpc_addr)
        return channel

    async def fetch_jwks() -> list[dict[str, Any]]:
        stub = auth_pb2_grpc.AuthServiceStub(_channel())
        response = await stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=3)
        return [MessageToDict(k, preserving_proto_field_name=True) for k in response.keys]

    async def resolve_api_key(key: str) -> Principal | None:
        # A revoked key may keep working here for up to 30 s: the price of not asking auth on
        # every request.
        cached = api_key_cache.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        stub = auth_pb2_grpc.AuthInternalServiceStub(_channel())
        try:
            found = await stub.AuthenticateApiKey(
                auth_pb2.AuthenticateApiKeyRequest(key=key), timeout=3
            )
            principal: Principal | None = api_key_principal(found.api_key_id)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise Unavailable("cannot verify API keys right now") from None
            principal = None
        if len(api_key_cache) > 10_000:
            api_key_cache.clear()
        api_key_cache[key] = (time.monotonic() + 30.0, principal)
        return principal

    return Authenticator(fetch_jwks, resolve_api_key, issuer=issuer, audience=audience)


def api_key_principal(api_key_id: str) -> Principal:
    """Admin API keys act with the admin role."""
    return Principal(subject=f"api_key:{api_key_id}", role=ROLE_ADMIN, api_key_id=api_key_id)
