"""What the auth service is made of; ecom_runtime.server runs it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ecom_runtime.auth import Authenticator, Principal, api_key_principal
from ecom_runtime.db import Database
from ecom_runtime.jobs import ScheduledJob
from ecom_runtime.server import App

from auth_service.api_keys import ApiKeys
from auth_service.config import AuthSettings
from auth_service.events import PUBLISHED
from auth_service.keys import (
    TokenSigner,
    derive_secret,
    load_or_create_key,
    load_published_keys,
)
from auth_service.password_reset import PasswordResets
from auth_service.passwords import PasswordHasher
from auth_service.servicer import AuthInternalServicer, AuthServicer, UserServicer
from auth_service.sessions import Sessions
from auth_service.store import inbox, outbox
from auth_service.users import Users

log = logging.getLogger("auth")


@dataclass
class Parts:
    db: Database
    sessions: Sessions
    resets: PasswordResets
    users: Users
    api_keys: ApiKeys


def build_parts(settings: AuthSettings, signer: TokenSigner, *, pool_size: int = 0) -> Parts:
    db = Database.for_service(
        settings, outbox=outbox, inbox=inbox, subjects=PUBLISHED, pool_size=pool_size
    )
    hasher = PasswordHasher(settings.auth_bcrypt_cost)
    return Parts(
        db=db,
        sessions=Sessions(db, settings, signer, hasher),
        resets=PasswordResets(
            db, settings, hasher, derive_secret(signer.key, "password-reset-tokens")
        ),
        users=Users(db, hasher),
        api_keys=ApiKeys(db),
    )


def token_signer(settings: AuthSettings, key: Ed25519PrivateKey | None = None) -> TokenSigner:
    return TokenSigner(
        key=key
        or load_or_create_key(settings.auth_jwt_private_key, settings.auth_jwt_private_key_file),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.auth_access_token_ttl_seconds,
        published=load_published_keys(settings.auth_jwt_published_keys_file),
    )


def build_app(settings: AuthSettings | None = None) -> App:
    settings = settings or AuthSettings()
    signer = token_signer(settings)
    parts = build_parts(settings, signer)

    async def jwks() -> list[dict[str, str]]:
        return signer.jwks

    async def resolve_api_key(key: str) -> Principal | None:
        row = await parts.api_keys.find(key)
        return api_key_principal(str(row.id)) if row else None

    async def bootstrap_admin() -> None:
        if settings.auth_admin_email and settings.auth_admin_password:
            await parts.users.bootstrap_admin(
                settings.auth_admin_email, settings.auth_admin_password
            )

    async def purge_expired() -> None:
        if removed := await parts.sessions.purge_expired() + await parts.resets.purge_expired():
            log.info("expired tokens removed", extra={"count": removed})

    return App(
        name="auth",
        settings=settings,
        db=parts.db,
        # Keys and API keys are ours: no network hop, no API key cache to go stale.
        authenticator=Authenticator(
            jwks,
            resolve_api_key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            api_key_cache_seconds=0,
        ),
        servicers=[
            AuthServicer(parts.sessions, parts.resets, parts.users, parts.api_keys, signer),
            UserServicer(parts.users),
            AuthInternalServicer(parts.api_keys, parts.resets, parts.users),
        ],
        jobs=[ScheduledJob("purge-expired", 3600, purge_expired)],
        startup=[bootstrap_admin],
    )
