"""Notifications service settings (environment variables; see the README's configuration
table). Outgoing SMTP is configured by the shared SMTP_* and EMAIL_FROM settings."""

from __future__ import annotations

from typing import Literal

from ecom_runtime.config import ServiceSettings
from ecom_runtime.email import EmailSettings
from pydantic import Field


class NotificationsSettings(ServiceSettings, EmailSettings):
    grpc_port: int = 50056
    # "smtp" (the SMTP_* settings) or "sendgrid" (SendGrid's v3 mail send API).
    notifications_email_backend: Literal["smtp", "sendgrid"] = "smtp"
    # Deliveries of an event before its notification is kept as a dead letter; between them
    # JetStream redelivers after 1, 2, 4, 8 ... (at most 30) seconds.
    notifications_max_attempts: int = Field(default=5, ge=1)
    # Where the reset email's link points; the token is appended.
    notifications_password_reset_url: str = "http://127.0.0.1:8080/reset-password?token="  # noqa: S105
    sendgrid_api_key: str = ""
    # SendGrid's API address; empty means the SDK's own.
    sendgrid_api_host: str = ""
