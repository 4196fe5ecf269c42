"""The SendGrid adapter against a local server speaking SendGrid's v3 mail send API (the SDK
is pointed at it with SENDGRID_API_HOST): the JSON it posts, the key it sends, and a 5xx
that is retried until the email goes out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
from notifications_service.mailers import SendGridMailer
from notifications_service.templates import Email
from python_http_client.exceptions import HTTPError

from conftest import eventually, mails, service_process, stack_process_frozen, unique_email

KEY = "SG.local-test-key"


@dataclass
class Received:
    status: int
    authorization: str
    body: dict[str, Any]

    @property
    def to(self) -> str:
        return self.body["personalizations"][0]["to"][0]["email"]


@dataclass
class FakeSendGrid:
    """POST /v3/mail/send: 401 without the bearer key, else the JSON is kept and the answer is
    202, or 500 while `failing[recipient]` is above zero."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    failing: dict[str, int] = field(default_factory=dict)

    async def mail_send(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        if authorization != f"Bearer {KEY}":
            return web.json_response({"errors": [{"message": "unauthorized"}]}, status=401)
        body = await request.json()
        to = body["personalizations"][0]["to"][0]["email"]
        status = 500 if self.failing.get(to, 0) > 0 else 202
        if status == 500:
            self.failing[to] -= 1
        self.received.append(Received(status, authorization, body))
        return web.Response(status=status)

    def to(self, email: str) -> list[Received]:
        return [r for r in self.received if r.to == email]


@pytest.fixture
async def sendgrid() -> AsyncIterator[FakeSendGrid]:
    fake = FakeSendGrid()
    app = web.Application()
    app.router.add_post("/v3/mail/send", fake.mail_send)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


EMAIL = Email(to="ada@example.com", subject="Hello", text="Hi Ada", html="<p>Hi Ada</p>")


async def test_the_adapter_posts_the_v3_json_with_the_bearer_key(sendgrid) -> None:
    mailer = SendGridMailer(KEY, "Shop <no-reply@shop.localhost>", sendgrid.url)
    await mailer.send(EMAIL)
    [received] = sendgrid.received
    assert (received.status, received.authorization) == (202, f"Bearer {KEY}")
    assert received.body == {
        "from": {"email": "no-reply@shop.localhost", "name": "Shop"},
        "subject": "Hello",
        "personalizations": [{"to": [{"email": "ada@example.com"}]}],
        "content": [
            {"type": "text/plain", "value": "Hi Ada"},
            {"type": "text/html", "value": "<p>Hi Ada</p>"},
        ],
    }


async def test_the_adapter_raises_on_a_refusal_or_a_server_error(sendgrid) -> None:
    with pytest.raises(HTTPError) as refused:
        await SendGridMailer("SG.wrong", "no-reply@shop.localhost", sendgrid.url).send(EMAIL)
    assert refused.value.status_code == 401
    sendgrid.failing[EMAIL.to] = 1
    with pytest.raises(HTTPError) as failed:
        await SendGridMailer(KEY, "no-reply@shop.localhost", sendgrid.url).send(EMAIL)
    assert failed.value.status_code == 500


async def test_a_server_error_is_retried_until_the_email_is_accepted(
    stack, auth_channel, sendgrid
) -> None:
    email = unique_email("sendgrid")
    sendgrid.failing[email] = 1
    env = {
        "NOTIFICATIONS_EMAIL_BACKEND": "sendgrid",
        "SENDGRID_API_KEY": KEY,
        "SENDGRID_API_HOST": sendgrid.url,
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "no_proxy": "127.0.0.1",
    }
    async with (
        stack_process_frozen(stack, "notifications"),
        service_process(stack, "notifications", **env),
    ):
        auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
        await auth.Register(
            auth_pb2.RegisterRequest(email=email, password="long enough", name="Sam")
        )
        await eventually(lambda: len(sendgrid.to(email)) >= 2, what="a retried delivery")
    [failed, accepted] = sendgrid.to(email)
    assert (failed.status, accepted.status) == (500, 202)
    assert accepted.body["subject"] == "Welcome to the Shop, Sam"
    assert mails(stack.maildir, email) == []  # not through SMTP as well
