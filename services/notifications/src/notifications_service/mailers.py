"""Where emails leave us, chosen by NOTIFICATIONS_EMAIL_BACKEND: SMTP (the local sink, or any
relay) or SendGrid's v3 mail send API through its SDK. A failure raises: the event is then
redelivered with backoff and, after the last attempt, dead-lettered."""

from __future__ import annotations

import asyncio
from email.utils import parseaddr
from typing import Protocol

from ecom_runtime.email import EmailSender, EmailSettings
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import From, Mail, To

from notifications_service.config import NotificationsSettings
from notifications_service.templates import Email

TIMEOUT_SECONDS = 10.0


class Mailer(Protocol):
    async def send(self, email: Email) -> None: ...


class SmtpMailer:
    def __init__(self, settings: EmailSettings) -> None:
        self._sender = EmailSender(settings)

    async def send(self, email: Email) -> None:
        await self._sender.send(email.to, email.subject, email.text, html=email.html)


class SendGridMailer:
    """POST /v3/mail/send with the API key as bearer token; any answer but 2xx raises (the SDK
    turns 4xx/5xx into `python_http_client.exceptions.HTTPError`)."""

    def __init__(self, api_key: str, sender: str, host: str = "") -> None:
        self._client = SendGridAPIClient(api_key, **({"host": host} if host else {}))
        name, address = parseaddr(sender)
        self._from = From(address, name or None)

    async def send(self, email: Email) -> None:
        mail = Mail(
            from_email=self._from,
            to_emails=To(email.to),
            subject=email.subject,
            plain_text_content=email.text,
            html_content=email.html,
        )
        # The SDK is synchronous (urllib); its fluent client takes the timeout `send` lacks.
        await asyncio.to_thread(
            self._client.client.mail.send.post, request_body=mail.get(), timeout=TIMEOUT_SECONDS
        )


def mailer_from(settings: NotificationsSettings) -> Mailer:
    if settings.notifications_email_backend == "sendgrid":
        if not settings.sendgrid_api_key:
            raise SystemExit("NOTIFICATIONS_EMAIL_BACKEND=sendgrid needs SENDGRID_API_KEY")
        return SendGridMailer(
            settings.sendgrid_api_key, settings.email_from, settings.sendgrid_api_host
        )
    return SmtpMailer(settings)
