"""What the notifications service asks auth (AuthInternalService): reset tokens for reset
requests, a user's contact, the admins' contacts."""

from __future__ import annotations

import grpc
import pytest
from ecommerce.auth.v1 import auth_pb2 as pb
from ecommerce.auth.v1 import auth_pb2_grpc

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, internal_channel, rpc_error, unique_email

PASSWORD = "correct horse battery"


@pytest.fixture
async def internal(stack):
    async with internal_channel(stack, "auth") as channel:
        yield auth_pb2_grpc.AuthInternalServiceStub(channel)


@pytest.fixture
def auth(auth_channel) -> auth_pb2_grpc.AuthServiceStub:
    return auth_pb2_grpc.AuthServiceStub(auth_channel)


async def test_a_reset_request_gives_one_token_however_often_asked(auth, internal, sql) -> None:
    email = unique_email("issue")
    session = await auth.Register(pb.RegisterRequest(email=email, password=PASSWORD, name="Ida"))
    await auth.ForgotPassword(pb.ForgotPasswordRequest(email=email))
    [(request_id, stored)] = sql(
        "select id, token_hash from auth.password_reset_tokens where user_id = %s",
        session.user.id,
    )
    ask = pb.IssuePasswordResetTokenRequest(request_id=str(request_id))
    first, again = (
        await internal.IssuePasswordResetToken(ask),
        await internal.IssuePasswordResetToken(ask),
    )
    assert first.token == again.token and len(first.token) >= 43
    assert first.token.encode() not in bytes(stored)  # only its hash is at rest
    assert (first.user.user_id, first.user.email, first.user.name) == (
        session.user.id,
        email,
        "Ida",
    )

    await auth.ResetPassword(
        pb.ResetPasswordRequest(token=first.token, new_password="brand new one")
    )
    spent = await rpc_error(internal.IssuePasswordResetToken(ask))
    assert spent.code() == grpc.StatusCode.NOT_FOUND


async def test_unknown_or_malformed_requests_get_no_token(internal) -> None:
    unknown = pb.IssuePasswordResetTokenRequest(request_id="6f1c2d7e-3b4a-4c5d-8e9f-0a1b2c3d4e5f")
    assert (await rpc_error(internal.IssuePasswordResetToken(unknown))).code() == (
        grpc.StatusCode.NOT_FOUND
    )
    bad = pb.IssuePasswordResetTokenRequest(request_id="42")
    assert (await rpc_error(internal.IssuePasswordResetToken(bad))).code() == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_internal_rpcs_refuse_callers_without_the_service_credential(stack) -> None:
    async with grpc.aio.insecure_channel(stack.grpc_addrs["auth"]) as channel:
        stub = auth_pb2_grpc.AuthInternalServiceStub(channel)
        error = await rpc_error(stub.ListAdminContacts(pb.ListAdminContactsRequest()))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_contacts_are_the_accounts_as_they_are_now(auth, internal, auth_channel) -> None:
    session = await auth.Register(
        pb.RegisterRequest(email=unique_email("contact"), password=PASSWORD, name="Cleo")
    )
    admin = await auth.Login(pb.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))
    users = auth_pb2_grpc.UserServiceStub(auth_channel)
    as_admin = (("authorization", f"Bearer {admin.access_token}"),)
    moved = unique_email("moved")
    await users.UpdateUser(pb.UpdateUserRequest(id=session.user.id, email=moved), metadata=as_admin)

    contact = await internal.GetUserContact(pb.GetUserContactRequest(user_id=session.user.id))
    assert (contact.email, contact.name) == (moved, "Cleo")
    admins = await internal.ListAdminContacts(pb.ListAdminContactsRequest())
    assert ADMIN_EMAIL in [a.email for a in admins.admins]

    await users.DeleteUser(pb.DeleteUserRequest(id=session.user.id), metadata=as_admin)
    gone = await rpc_error(
        internal.GetUserContact(pb.GetUserContactRequest(user_id=session.user.id))
    )
    assert gone.code() == grpc.StatusCode.NOT_FOUND
