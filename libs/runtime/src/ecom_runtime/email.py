"""Outgoing email through SMTP: the local sink in development, any relay in production
(SendGrid, SES and Postmark all accept SMTP), so one adapter serves every environment."""

from __future__ import annotations

from email.message import EmailMessage

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

    async def send(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self._settings.email_from
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
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
