"""How every service but auth checks callers: JWKS and API keys fetched from the running auth
service over gRPC (the real one, in the stack)."""

from __future__ import annotations

import grpc
import pytest
from ecom_runtime.auth import remote_authenticator
from ecom_runtime.clients import ServiceClient
from ecom_runtime.errors import Unauthenticated
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, unique_email


@pytest.fixture
async def authenticator(stack):
    auth = ServiceClient("auth", stack.grpc_addrs["auth"], credential=stack.service_credential)
    yield remote_authenticator(auth, issuer="ecommerce-auth", audience="ecommerce")
    await auth.close()


async def test_access_token_from_auth_is_verified_with_its_jwks(
    authenticator, auth_channel: grpc.aio.Channel
) -> None:
    auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
    session = await auth.Register(
        auth_pb2.RegisterRequest(email=unique_email(), password="long enough pw", name="R")
    )
    principal = await authenticator.authenticate(
        {"authorization": f"Bearer {session.access_token}"}
    )
    assert principal.user_id == session.user.id and principal.role == "customer"


async def test_api_keys_are_resolved_by_auth(authenticator, auth_channel) -> None:
    auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
    admin = await auth.Login(auth_pb2.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))
    created = await auth.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="remote check"),
        metadata=(("authorization", f"Bearer {admin.access_token}"),),
    )
    principal = await authenticator.authenticate({"x-api-key": created.key})
    assert principal.is_admin and principal.api_key_id == created.api_key.id
    with pytest.raises(Unauthenticated):
        await authenticator.authenticate({"x-api-key": "ek_not_a_key"})
