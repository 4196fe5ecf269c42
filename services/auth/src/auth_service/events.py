"""The subjects the auth service publishes and consumes (NATS JetStream, protobuf payloads)."""

from __future__ import annotations

from ecom_runtime.server import API_KEY_REVOKED, USER_ACCESS_CHANGED
from ecommerce.events.v1 import events_pb2

USER_REGISTERED = "ecom.auth.user_registered"
PASSWORD_RESET_REQUESTED = "ecom.auth.password_reset_requested"  # noqa: S105 (a subject)

PUBLISHED = {
    events_pb2.UserRegistered: USER_REGISTERED,
    events_pb2.PasswordResetRequested: PASSWORD_RESET_REQUESTED,
    # Every service (this one too) applies these to its authenticator (ecom_runtime.server).
    events_pb2.UserAccessChanged: USER_ACCESS_CHANGED,
    events_pb2.ApiKeyRevoked: API_KEY_REVOKED,
}

# Nothing is consumed here: the notifications service mails resets (IssuePasswordResetToken).
