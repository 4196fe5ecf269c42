"""What notifications asks auth (AuthInternalService): where to write to a user, who the
admins are, and the token of a password reset request. Asked at send time rather than copied
from events, so an email goes to the address the account has now, and never to a deleted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ecom_runtime.clients import ServiceClient
from ecom_runtime.errors import NotFound
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc


@dataclass(frozen=True)
class Contact:
    user_id: str
    email: str
    name: str


@dataclass(frozen=True)
class ResetToken:
    token: str
    expires_at: datetime
    user: Contact


def _contact(message: auth_pb2.UserContact) -> Contact:
    return Contact(message.user_id, message.email, message.name)


class Accounts:
    def __init__(self, client: ServiceClient) -> None:
        self._auth = client.stub(auth_pb2_grpc.AuthInternalServiceStub)

    async def contact(self, user_id: str) -> Contact | None:
        """None when the account is gone."""
        try:
            reply = await self._auth.GetUserContact(auth_pb2.GetUserContactRequest(user_id=user_id))
        except NotFound:
            return None
        return _contact(reply)

    async def admins(self) -> list[Contact]:
        reply = await self._auth.ListAdminContacts(auth_pb2.ListAdminContactsRequest())
        return [_contact(admin) for admin in reply.admins]

    async def reset_token(self, request_id: str) -> ResetToken | None:
        """None when the request is no longer live (used, expired, account deleted)."""
        try:
            reply = await self._auth.IssuePasswordResetToken(
                auth_pb2.IssuePasswordResetTokenRequest(request_id=request_id)
            )
        except NotFound:
            return None
        return ResetToken(reply.token, reply.expires_at.ToDatetime(UTC), _contact(reply.user))
