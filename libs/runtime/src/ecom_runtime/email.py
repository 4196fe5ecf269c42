"""Outgoing email through SMTP: the local sink in development, any relay in production
(SendGrid, SES and Postmark all accept SMTP), so one adapter serves every environment."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import aiosmtplib
from pydantic_settings import BaseSettings, SettingsConfigDict


class EmailSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    email_from: str = "Shop <no-reply@shop.localhost>"


class EmailSender:
    def __init__(self, settings: EmailSettings) -> None:
        self._settings = settings
        # Message-IDs in the sender's domain; make_msgid would otherwise ask DNS for ours.
        self._domain = parseaddr(settings.email_from)[1].rpartition("@")[2] or "localhost"

    async def send(self, to: str, subject: str, body: str, html: str | None = None) -> None:
        """Sends plain text, with `html` as the alternative part when given. Header values
        with line breaks are refused by the email package (no header injection)."""
        message = EmailMessage()
        message["From"] = self._settings.email_from
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self._domain)
        message.set_content(body)
        if html is not None:
            message.add_alternative(html, subtype="html")
        s = self._settings
        await aiosmtplib.send(
            message,
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=s.smtp_password or None,
            start_tls=s.smtp_starttls,
            timeout=10,
        )
