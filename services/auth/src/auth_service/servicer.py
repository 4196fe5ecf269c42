"""gRPC servicers: proto messages in and out; the rules live in sessions, password_reset,
users and api_keys."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from ecom_runtime.auth import ROLE_ADMIN, ROLE_CUSTOMER, Principal, require_admin, require_user
from ecom_runtime.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from ecom_runtime.validation import parse_uuid
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
from sqlalchemy import Row

from auth_service import errors
from auth_service.api_keys import ApiKeys
from auth_service.keys import TokenSigner
from auth_service.password_reset import PasswordResets
from auth_service.sessions import Session, Sessions
from auth_service.users import Users

_ROLE_TO_PROTO = {ROLE_CUSTOMER: auth_pb2.ROLE_CUSTOMER, ROLE_ADMIN: auth_pb2.ROLE_ADMIN}
_ROLE_FROM_PROTO = {v: k for k, v in _ROLE_TO_PROTO.items()}

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def user_message(row: Row[Any]) -> auth_pb2.User:
    user = auth_pb2.User(
        id=str(row.id), email=row.email, name=row.name, role=_ROLE_TO_PROTO[row.role]
    )
    user.created_at.FromDatetime(row.created_at)
    return user


def contact_message(row: Row[Any]) -> auth_pb2.UserContact:
    return auth_pb2.UserContact(user_id=str(row.id), email=row.email, name=row.name)


def api_key_message(row: Row[Any]) -> auth_pb2.ApiKey:
    key = auth_pb2.ApiKey(id=str(row.id), name=row.name, prefix=row.prefix)
    key.created_at.FromDatetime(row.created_at)
    return key


def session_message(session: Session) -> auth_pb2.AuthSession:
    return auth_pb2.AuthSession(
        user=user_message(session.user),
        access_token=session.access_token,
        refresh_token=session.refresh_token,
        token_type="Bearer",  # noqa: S106
        expires_in=session.expires_in,
    )


async def require_signed_in_admin() -> Principal:
    """An admin user, not an API key: a leaked key must not mint its successors or revoke the
    keys that would replace it."""
    admin = await require_admin()
    if admin.user_id is None:
        raise PermissionDenied(
            "API keys cannot create or revoke API keys; sign in as an admin",
            reason=errors.API_KEY_CANNOT_MANAGE_KEYS,
        )
    return admin


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        sessions: Sessions,
        resets: PasswordResets,
        users: Users,
        api_keys: ApiKeys,
        signer: TokenSigner,
    ) -> None:
        self._sessions = sessions
        self._resets = resets
        self._users = users
        self._api_keys = api_keys
        self._jwks = auth_pb2.GetJwksResponse(
            keys=[auth_pb2.JsonWebKey(**jwk) for jwk in signer.jwks]
        )

    async def Register(self, request: auth_pb2.RegisterRequest, context: Context) -> Any:
        session = await self._sessions.register(request.email, request.password, request.name)
        return session_message(session)

    async def Login(self, request: auth_pb2.LoginRequest, context: Context) -> Any:
        return session_message(await self._sessions.login(request.email, request.password))

    async def Refresh(self, request: auth_pb2.RefreshRequest, context: Context) -> Any:
        return session_message(await self._sessions.refresh(request.refresh_token))

    async def Logout(self, request: auth_pb2.LogoutRequest, context: Context) -> Any:
        await self._sessions.logout(request.refresh_token)
        return auth_pb2.LogoutResponse()

    async def ForgotPassword(
        self, request: auth_pb2.ForgotPasswordRequest, context: Context
    ) -> Any:
        await self._resets.request(request.email)
        return auth_pb2.ForgotPasswordResponse()

    async def ResetPassword(self, request: auth_pb2.ResetPasswordRequest, context: Context) -> Any:
        await self._resets.reset(request.token, request.new_password)
        return auth_pb2.ResetPasswordResponse()

    async def GetMe(self, request: auth_pb2.GetMeRequest, context: Context) -> Any:
        principal = await require_user()
        if principal.user_id is None:
            raise PermissionDenied("an API key has no user profile")
        try:
            user = await self._users.get(parse_uuid("sub", principal.user_id))
        except NotFound:
            raise Unauthenticated(
                "this account no longer exists", reason=errors.ACCOUNT_GONE
            ) from None
        return auth_pb2.GetMeResponse(user=user_message(user))

    async def GetJwks(self, request: auth_pb2.GetJwksRequest, context: Context) -> Any:
        return self._jwks

    async def CreateApiKey(self, request: auth_pb2.CreateApiKeyRequest, context: Context) -> Any:
        admin = await require_signed_in_admin()
        row, key = await self._api_keys.create(request.name, created_by=admin.subject)
        return auth_pb2.CreateApiKeyResponse(api_key=api_key_message(row), key=key)

    async def ListApiKeys(self, request: auth_pb2.ListApiKeysRequest, context: Context) -> Any:
        await require_admin()
        page = await self._api_keys.list(request.page_size, request.page_token)
        return auth_pb2.ListApiKeysResponse(
            api_keys=[api_key_message(r) for r in page.rows],
            next_page_token=page.next_page_token,
        )

    async def DeleteApiKey(self, request: auth_pb2.DeleteApiKeyRequest, context: Context) -> Any:
        await require_signed_in_admin()
        await self._api_keys.revoke(parse_uuid("id", request.id))
        return auth_pb2.DeleteApiKeyResponse()


class UserServicer(auth_pb2_grpc.UserServiceServicer):
    def __init__(self, users: Users) -> None:
        self._users = users

    async def ListUsers(self, request: auth_pb2.ListUsersRequest, context: Context) -> Any:
        await require_admin()
        page = await self._users.list(request.page_size, request.page_token)
        return auth_pb2.ListUsersResponse(
            users=[user_message(r) for r in page.rows],
            next_page_token=page.next_page_token,
            total_size=page.total_size,
        )

    async def GetUser(self, request: auth_pb2.GetUserRequest, context: Context) -> Any:
        await require_admin()
        return user_message(await self._users.get(parse_uuid("id", request.id)))

    async def UpdateUser(self, request: auth_pb2.UpdateUserRequest, context: Context) -> Any:
        await require_admin()
        if request.role not in (auth_pb2.ROLE_UNSPECIFIED, *_ROLE_FROM_PROTO):
            raise InvalidArgument({"role": "must be ROLE_CUSTOMER or ROLE_ADMIN"})
        user = await self._users.update(
            parse_uuid("id", request.id),
            name=request.name if request.HasField("name") else None,
            email=request.email if request.HasField("email") else None,
            role=_ROLE_FROM_PROTO.get(request.role),
        )
        return user_message(user)

    async def DeleteUser(self, request: auth_pb2.DeleteUserRequest, context: Context) -> Any:
        await require_admin()
        await self._users.delete(parse_uuid("id", request.id))
        return auth_pb2.DeleteUserResponse()


class AuthInternalServicer(auth_pb2_grpc.AuthInternalServiceServicer):
    def __init__(self, api_keys: ApiKeys, resets: PasswordResets, users: Users) -> None:
        self._api_keys = api_keys
        self._resets = resets
        self._users = users

    async def AuthenticateApiKey(
        self, request: auth_pb2.AuthenticateApiKeyRequest, context: Context
    ) -> Any:
        row = await self._api_keys.find(request.key) if request.key else None
        if row is None:
            raise Unauthenticated("API key invalid or revoked")
        return auth_pb2.AuthenticateApiKeyResponse(api_key_id=str(row.id), name=row.name)

    async def IssuePasswordResetToken(
        self, request: auth_pb2.IssuePasswordResetTokenRequest, context: Context
    ) -> Any:
        issued = await self._resets.issue(parse_uuid("request_id", request.request_id))
        reply = auth_pb2.IssuePasswordResetTokenResponse(
            token=issued.token, user=contact_message(issued.user)
        )
        reply.expires_at.FromDatetime(issued.expires_at)
        return reply

    async def GetUserContact(
        self, request: auth_pb2.GetUserContactRequest, context: Context
    ) -> Any:
        return contact_message(await self._users.get(parse_uuid("user_id", request.user_id)))

    async def ListAdminContacts(
        self, request: auth_pb2.ListAdminContactsRequest, context: Context
    ) -> Any:
        admins = await self._users.admins()
        return auth_pb2.ListAdminContactsResponse(admins=[contact_message(a) for a in admins])
