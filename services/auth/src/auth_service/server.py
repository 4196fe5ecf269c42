"""Wiring: settings → engine, keys, hasher, mailer → servicers, relay and email consumer."""

from __future__ import annotations

import asyncio
import logging

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ecom_runtime.auth import Authenticator, Principal, api_key_principal
from ecom_runtime.db import create_engine
from ecom_runtime.email import EmailSender
from ecom_runtime.events import EventConsumer, OutboxRelay, connect_jetstream, prune_inbox
from ecom_runtime.server import App, Registration
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
from ecommerce.events.v1 import events_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.config import AuthSettings
from auth_service.domain import SUBJECT_PASSWORD_RESET_REQUESTED, Accounts
from auth_service.keys import TokenSigner, load_or_create_key
from auth_service.passwords import PasswordHasher
from auth_service.servicer import AuthInternalServicer, AuthServicer, UserServicer
from auth_service.store import inbox, outbox

log = logging.getLogger("auth")


def build_accounts(
    settings: AuthSettings,
    engine: AsyncEngine,
    relay: OutboxRelay | None = None,
    *,
    signing_key: Ed25519PrivateKey | None = None,
) -> tuple[Accounts, TokenSigner]:
    signer = TokenSigner(
        key=signing_key
        or load_or_create_key(settings.auth_jwt_private_key, settings.auth_jwt_private_key_file),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.auth_access_token_ttl_seconds,
    )
    accounts = Accounts(
        engine,
        settings,
        signer,
        PasswordHasher(settings.auth_bcrypt_cost),
        EmailSender(settings),
        events_committed=relay.wake if relay else lambda: None,
    )
    return accounts, signer


def build_app(settings: AuthSettings | None = None) -> App:
    settings = settings or AuthSettings()
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    relay = OutboxRelay(engine, outbox, settings.outbox_poll_seconds)
    accounts, signer = build_accounts(settings, engine, relay)

    async def fetch_jwks() -> list[dict[str, str]]:
        return [signer.public_jwk]

    async def resolve_api_key(key: str) -> Principal | None:
        row = await accounts.find_api_key(key)
        return api_key_principal(str(row.id)) if row else None

    async def events() -> None:
        nc, js = await connect_jetstream(settings.nats_url)
        reset_emails = EventConsumer(
            engine=engine,
            inbox=inbox,
            js=js,
            durable="auth-password-reset-email",
            subject=SUBJECT_PASSWORD_RESET_REQUESTED,
            message_type=events_pb2.PasswordResetRequested,
            handler=accounts.send_reset_email,
        )
        try:
            await asyncio.gather(relay.run(js), reset_emails.run())
        finally:
            await nc.close()

    async def housekeeping() -> None:
        while True:
            removed = await accounts.purge_expired()
            removed += await prune_inbox(engine, inbox, keep_seconds=8 * 24 * 3600)
            if removed:
                log.info("housekeeping removed %d expired rows", removed)
            await asyncio.sleep(3600)

    async def bootstrap_admin() -> None:
        if settings.auth_admin_email and settings.auth_admin_password:
            await accounts.ensure_admin(settings.auth_admin_email, settings.auth_admin_password)
            log.info("admin account ensured", extra={"email": settings.auth_admin_email})

    async def close() -> None:
        await engine.dispose()

    authenticator = Authenticator(
        fetch_jwks, resolve_api_key, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    descriptor = auth_pb2.DESCRIPTOR.services_by_name
    return App(
        name="auth",
        settings=settings,
        authenticator=authenticator,
        services=[
            Registration(
                auth_pb2_grpc.add_AuthServiceServicer_to_server,
                AuthServicer(accounts, signer),
                descriptor["AuthService"].full_name,
            ),
            Registration(
                auth_pb2_grpc.add_UserServiceServicer_to_server,
                UserServicer(accounts),
                descriptor["UserService"].full_name,
            ),
            Registration(
                auth_pb2_grpc.add_AuthInternalServiceServicer_to_server,
                AuthInternalServicer(accounts),
                descriptor["AuthInternalService"].full_name,
            ),
        ],
        background=[events, housekeeping],
        startup=[bootstrap_admin],
        on_shutdown=[close],
    )
