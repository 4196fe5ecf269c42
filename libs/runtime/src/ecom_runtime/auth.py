"""Who is calling: access tokens verified locally against the auth service's JWKS, admin API
keys resolved by the auth service, and the service credential internal RPCs require.

Verification is lazy: an RPC that needs a caller asks for one (`require_user`, `require_admin`),
so public RPCs ignore a stale token a client sends. Revocation is pushed, not waited out: auth
publishes `UserAccessChanged` and `ApiKeyRevoked`, every service applies them (`revoke_user`,
`revoke_api_key`), and tokens or keys they cover stop working within seconds.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from ecom_runtime.errors import PermissionDenied, Unauthenticated, Unavailable

log = logging.getLogger("ecom.auth")

ROLE_ADMIN = "admin"
ROLE_CUSTOMER = "customer"
SERVICE_CREDENTIAL_HEADER = "x-service-credential"

# google.rpc.ErrorInfo reasons of every service's authentication refusals.
SIGN_IN_REQUIRED = "SIGN_IN_REQUIRED"
TOKEN_EXPIRED = "TOKEN_EXPIRED"  # noqa: S105 (reasons, not secrets)
TOKEN_INVALID = "TOKEN_INVALID"  # noqa: S105
TOKEN_REVOKED = "TOKEN_REVOKED"  # noqa: S105
API_KEY_INVALID = "API_KEY_INVALID"
ADMIN_REQUIRED = "ADMIN_REQUIRED"
SERVICE_CREDENTIAL_REQUIRED = "SERVICE_CREDENTIAL_REQUIRED"
# Metadata of the RPC being served that calls to other services carry on (clients.py).
FORWARDED_HEADERS = ("authorization", "x-api-key", "idempotency-key")


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
    """Verifies credentials.

    JWKS: cached for `jwks_ttl_seconds`. Refetches are single-flight and never make a request
    wait when keys are known: a stale set keeps verifying while one background fetch runs. Only
    an unknown `kid` (keys rotated) or no keys at all waits, for that same one fetch, at most
    `fetch_wait_seconds`. Failed fetches back off exponentially (0.5 s doubling to 60 s); an
    unknown kid refetches at most every 10 s.
    API keys: resolved results cached `api_key_cache_seconds` (0: not cached); revocation
    events drop them at once.
    """

    def __init__(
        self,
        fetch_jwks: JwksFetcher,
        resolve_api_key: ApiKeyResolver,
        *,
        issuer: str,
        audience: str,
        jwks_ttl_seconds: float = 300.0,
        fetch_wait_seconds: float = 3.0,
        api_key_cache_seconds: float = 30.0,
    ) -> None:
        self._fetch_jwks = fetch_jwks
        self._resolve_api_key = resolve_api_key
        self._issuer = issuer
        self._audience = audience
        self._ttl = jwks_ttl_seconds
        self._fetch_wait = fetch_wait_seconds
        self._keys: dict[str, Any] = {}
        self._fetched_at = -1e9
        self._next_fetch_at = 0.0
        self._failures = 0
        self._fetching: asyncio.Task[None] | None = None
        self._api_key_ttl = api_key_cache_seconds
        self._api_keys: dict[bytes, tuple[float, Principal | None]] = {}
        # user id -> epoch seconds: that user's tokens issued earlier no longer count.
        self._users_changed: dict[str, float] = {}

    # -- JWKS ------------------------------------------------------------------------------

    def _refresh(self) -> asyncio.Task[None] | None:
        """The one fetch in flight, started if none is and the backoff allows it."""
        if self._fetching is None and time.monotonic() >= self._next_fetch_at:
            self._fetching = asyncio.create_task(self._fetch())
        return self._fetching

    async def _fetch(self) -> None:
        try:
            jwks = await self._fetch_jwks()
            self._keys = {k["kid"]: jwt.PyJWK(k).key for k in jwks}
            self._fetched_at = time.monotonic()
            self._failures = 0
        except Exception as error:
            self._failures += 1
            delay = min(60.0, 0.5 * 2 ** (self._failures - 1))
            self._next_fetch_at = time.monotonic() + delay
            log.warning("JWKS fetch failed (retry in %.1f s): %s", delay, error or type(error))
        finally:
            self._fetching = None

    async def _key(self, kid: str) -> Any:
        key = self._keys.get(kid)
        if key is not None:
            if time.monotonic() - self._fetched_at > self._ttl:
                self._refresh()  # in the background: this request goes on with known keys
            return key
        # An unknown kid may mean the keys rotated, or a forged header: refetch at most every
        # 10 s for it.
        recent = time.monotonic() - self._fetched_at < 10.0
        fetch = None if recent else self._refresh()
        if fetch is not None:
            try:
                await asyncio.wait_for(asyncio.shield(fetch), self._fetch_wait)
            except TimeoutError:
                pass
        key = self._keys.get(kid)
        if key is None:
            if not self._keys:
                raise Unavailable("cannot verify tokens right now")
            raise Unauthenticated("access token signed by an unknown key", reason=TOKEN_INVALID)
        return key

    # -- credentials -----------------------------------------------------------------------

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
            raise Unauthenticated("access token expired", reason=TOKEN_EXPIRED) from None
        except jwt.PyJWTError:
            raise Unauthenticated("access token invalid", reason=TOKEN_INVALID) from None
        subject = str(claims["sub"])
        changed_at = self._users_changed.get(subject)
        if changed_at is not None and float(claims["iat"]) < changed_at:
            raise Unauthenticated(
                "access token revoked: sign in again or refresh it", reason=TOKEN_REVOKED
            )
        return Principal(subject=subject, role=claims.get("role", ""), user_id=subject)

    async def resolve_api_key(self, key: str) -> Principal | None:
        digest = hashlib.sha256(key.encode()).digest()
        cached = self._api_keys.get(digest)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        principal = await self._resolve_api_key(key)
        if self._api_key_ttl > 0:
            if len(self._api_keys) > 10_000:
                self._api_keys.clear()
            self._api_keys[digest] = (time.monotonic() + self._api_key_ttl, principal)
        return principal

    async def authenticate(self, metadata: dict[str, str]) -> Principal:
        api_key = metadata.get("x-api-key")
        if api_key:
            # Keys are printable ASCII; anything else cannot be one (nor travel on to auth).
            principal = await self.resolve_api_key(api_key) if _printable(api_key) else None
            if principal is None:
                raise Unauthenticated("API key invalid or revoked", reason=API_KEY_INVALID)
            return principal
        header = metadata.get("authorization", "")
        if not _printable(header):
            raise Unauthenticated("access token invalid", reason=TOKEN_INVALID)
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "sign in required: send Authorization: Bearer <access_token>",
                reason=SIGN_IN_REQUIRED,
            )
        return await self.verify_access_token(token.strip())

    # -- revocation (from auth's events) ---------------------------------------------------

    def revoke_user(self, user_id: str, changed_at: float) -> None:
        """Tokens of `user_id` issued before `changed_at` (epoch seconds) stop counting."""
        self._users_changed[user_id] = max(changed_at, self._users_changed.get(user_id, 0.0))
        # Only as long as a token can live matters; forget older entries.
        horizon = time.time() - 24 * 3600
        if len(self._users_changed) > 10_000:
            self._users_changed = {u: t for u, t in self._users_changed.items() if t > horizon}

    def revoke_api_key(self, api_key_id: str) -> None:
        self._api_keys = {
            digest: entry
            for digest, entry in self._api_keys.items()
            if entry[1] is None or entry[1].api_key_id != api_key_id
        }


class ServiceCredentials:
    """The shared secrets internal RPCs carry (`SERVICE_CREDENTIALS`, comma-separated).

    A stand-in for mTLS where no mesh provides workload identity: the first is sent, any is
    accepted. A rotation is three rollouts, none needing every service restarted at once:
    "old,new" (accept the new one), then "new,old" (send it), then "new" (retire the old).
    """

    def __init__(self, configured: str) -> None:
        self.accepted: Sequence[bytes] = [
            c.strip().encode() for c in configured.split(",") if c.strip()
        ]

    @property
    def current(self) -> str:
        return self.accepted[0].decode() if self.accepted else ""

    def check(self, presented: str | None) -> None:
        if not presented:
            raise Unauthenticated(
                "internal RPC: send a service credential", reason=SERVICE_CREDENTIAL_REQUIRED
            )
        given = presented.encode()
        # Compare with every accepted one, in constant time each.
        if not any(hmac.compare_digest(given, secret) for secret in self.accepted):
            raise Unauthenticated(
                "internal RPC: service credential not accepted", reason=SERVICE_CREDENTIAL_REQUIRED
            )


@dataclass(slots=True)
class _CallCredentials:
    authenticator: Authenticator
    metadata: dict[str, str]
    deadline: float | None = None  # time.monotonic() by which the caller wants an answer
    principal: Principal | None = None


_current: contextvars.ContextVar[_CallCredentials | None] = contextvars.ContextVar(
    "ecom_call_credentials", default=None
)


def bind_call(
    authenticator: Authenticator, metadata: dict[str, str], deadline: float | None = None
) -> None:
    """Called by the server interceptor for each RPC."""
    _current.set(_CallCredentials(authenticator, metadata, deadline))


def sent_credentials() -> bool:
    """Whether the current caller sent a token or API key at all (valid or not)."""
    call = _current.get()
    return call is not None and any(k in call.metadata for k in ("authorization", "x-api-key"))


def forwarded_metadata() -> list[tuple[str, str]]:
    """The current RPC's caller credentials and Idempotency-Key, to pass on to another service
    (values gRPC cannot carry are not: no valid credential or key contains them)."""
    call = _current.get()
    if call is None:
        return []
    return [
        (k, call.metadata[k])
        for k in FORWARDED_HEADERS
        if k in call.metadata and _printable(call.metadata[k])
    ]


def _printable(value: str) -> bool:
    return value.isascii() and value.isprintable()


def call_header(name: str) -> str:
    """A header of the RPC being served that RPCs may read (e.g. `x-cart-token`), or ""."""
    call = _current.get()
    return call.metadata.get(name, "") if call is not None else ""


def call_deadline() -> float | None:
    """When (time.monotonic()) the RPC being served must be answered, if the caller said."""
    call = _current.get()
    return call.deadline if call is not None else None


async def current_principal() -> Principal | None:
    """The caller, for a public RPC whose answer depends on who asks: None for anonymous
    callers and for credentials that do not check out (a stale token must not turn a public
    answer into a 401)."""
    if not sent_credentials():
        return None
    try:
        return await require_user()
    except Unauthenticated:
        return None


async def require_user() -> Principal:
    """The caller (a user or an API key), or UNAUTHENTICATED."""
    call = _current.get()
    if call is None:
        raise Unauthenticated("sign in required", reason=SIGN_IN_REQUIRED)
    if call.principal is None:
        call.principal = await call.authenticator.authenticate(call.metadata)
    return call.principal


async def require_admin() -> Principal:
    principal = await require_user()
    if not principal.is_admin:
        raise PermissionDenied("this needs the admin role", reason=ADMIN_REQUIRED)
    return principal


def remote_authenticator(
    auth: Any, *, issuer: str, audience: str, api_key_cache_seconds: float = 30.0
) -> Authenticator:
    """For services other than auth: JWKS and API keys come from the auth service, through
    `auth`, an `ecom_runtime.clients.ServiceClient` to it."""
    from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
    from google.protobuf.json_format import MessageToDict

    from ecom_runtime.errors import Unauthenticated as KeyRefused

    async def fetch_jwks() -> list[dict[str, Any]]:
        public = auth.stub(auth_pb2_grpc.AuthServiceStub)
        response = await public.GetJwks(auth_pb2.GetJwksRequest())
        return [MessageToDict(k, preserving_proto_field_name=True) for k in response.keys]

    async def resolve_api_key(key: str) -> Principal | None:
        internal = auth.stub(auth_pb2_grpc.AuthInternalServiceStub)
        try:
            found = await internal.AuthenticateApiKey(auth_pb2.AuthenticateApiKeyRequest(key=key))
        except KeyRefused:
            return None
        return api_key_principal(found.api_key_id)

    return Authenticator(
        fetch_jwks,
        resolve_api_key,
        issuer=issuer,
        audience=audience,
        api_key_cache_seconds=api_key_cache_seconds,
    )


def api_key_principal(api_key_id: str) -> Principal:
    """Admin API keys act with the admin role."""
    return Principal(subject=f"api_key:{api_key_id}", role=ROLE_ADMIN, api_key_id=api_key_id)
