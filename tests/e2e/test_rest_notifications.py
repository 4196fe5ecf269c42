"""Emails the shop sends, read from the SMTP sink's Maildir: on registration, password reset,
payment, decline, cancellation and refund, low stock; hostile names; an SMTP outage that loses
nothing; dead letters listed and replayed by an admin; the jobs view.

Outage tests freeze the stack's notifications process and run one of their own in its place
(same durable consumers) whose SMTP goes through a TcpProxy they control.
"""

from __future__ import annotations

import re

import grpc
import httpx
import nats
from ecom_runtime.events import STREAM
from ecommerce.events.v1 import events_pb2
from ecommerce.notifications.v1 import notifications_pb2, notifications_pb2_grpc

from conftest import (
    ADMIN_EMAIL,
    TcpProxy,
    eventually,
    mail_html,
    mail_text,
    mails,
    rpc_error,
    service_process,
    stack_process_frozen,
    tag,
    unique_email,
    wait_for_mail,
)

PASSWORD = "long enough pw"
ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}
CONFIRMED = "Your order is confirmed"


async def register(api: httpx.AsyncClient, name: str = "Cara") -> tuple[str, dict[str, str]]:
    email = unique_email("mail")
    response = await api.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "name": name}
    )
    assert response.status_code == 200, response.text
    return email, {"Authorization": f"Bearer {response.json()['access_token']}"}


async def order(api, user: dict, product: dict, quantity: int = 1) -> dict:
    added = await api.post(
        "/api/cart/items", headers=user, json={"product_id": product["id"], "quantity": quantity}
    )
    assert added.status_code == 200, added.text
    response = await api.post(
        "/api/orders/checkout", headers=user, json={"shipping_address": ADDRESS}
    )
    assert response.status_code == 200, response.text
    return response.json()["order"]


async def pay(api, user: dict, order_id: str, method: str = "pm_card_visa") -> httpx.Response:
    return await api.post(
        f"/api/orders/{order_id}/pay", headers=user, json={"payment_method_id": method}
    )


# --- what is sent when ---------------------------------------------------------------------


async def test_a_new_account_is_welcomed(api, stack) -> None:
    email, _ = await register(api, "Wendy")
    message = await wait_for_mail(stack.maildir, email, "Welcome")
    assert message["Subject"] == "Welcome to the Shop, Wendy"
    assert "Hello Wendy," in mail_text(message) and "Hello Wendy," in mail_html(message)
    assert message["Message-ID"] and message["Date"]


async def test_password_reset_from_the_email_end_to_end(api, stack) -> None:
    email, _ = await register(api)
    assert (await api.post("/api/auth/forgot-password", json={"email": email})).status_code == 200
    message = await wait_for_mail(stack.maildir, email, "Reset your password")
    token = re.search(r"reset token: (\S+)", mail_text(message)).group(1)
    assert f"reset-password?token={token}" in mail_html(message)

    reset = await api.post(
        "/api/auth/reset-password", json={"token": token, "new_password": "a brand new one"}
    )
    assert reset.status_code == 200, reset.text
    login = await api.post("/api/auth/login", json={"email": email, "password": "a brand new one"})
    assert login.status_code == 200
    again = await api.post(
        "/api/auth/reset-password", json={"token": token, "new_password": "yet another one"}
    )
    assert again.status_code == 400


async def test_paying_sends_the_order_confirmation_with_its_lines(api, stack, product) -> None:
    email, user = await register(api)
    mug, plate = await product(price_cents=1250), await product(price_cents=800)
    await order(api, user, plate, 1)
    placed = await order(api, user, mug, 2)  # the cart holds both products by now
    assert (await pay(api, user, placed["id"])).status_code == 200

    message = await wait_for_mail(stack.maildir, email, CONFIRMED)
    text, html = mail_text(message), mail_html(message)
    assert placed["id"] in text
    assert f"2 x {mug['name']} at 12.50 USD: 25.00 USD" in text
    assert f"1 x {plate['name']} at 8.00 USD: 8.00 USD" in text
    total = int(placed["total_cents"])
    assert f"Total paid: {total // 100}.{total % 100:02d} USD" in text
    assert f"<td>{mug['name']}</td>" in html


async def test_a_declined_card_and_a_cancellation_with_refund_are_told(api, stack, product) -> None:
    email, user = await register(api)
    placed = await order(api, user, await product())
    declined = await pay(api, user, placed["id"], "pm_card_chargeCustomerFail")
    assert declined.status_code == 400
    failed = await wait_for_mail(stack.maildir, email, "did not go through")
    assert placed["id"] in mail_text(failed)

    assert (await pay(api, user, placed["id"])).status_code == 200
    cancelled = await api.put(f"/api/orders/{placed['id']}/cancel", headers=user, json={})
    assert cancelled.status_code == 200, cancelled.text
    told = await wait_for_mail(stack.maildir, email, "was cancelled")
    assert "being refunded" in mail_text(told)
    refunded = await wait_for_mail(stack.maildir, email, "has been refunded")
    assert placed["id"] in mail_text(refunded)


async def test_admins_hear_of_low_stock(api, stack, product) -> None:
    _, user = await register(api)
    mug = await product(stock=10, low_stock_threshold=5, sku=f"LOW-{tag()}")
    await order(api, user, mug, 6)
    alert = await wait_for_mail(stack.maildir, ADMIN_EMAIL, mug["sku"])
    assert alert["Subject"] == f"Low stock: {mug['name']} ({mug['sku']})"
    assert "4 can still be sold" in mail_text(alert)


async def test_a_hostile_name_can_inject_neither_markup_nor_headers(api, stack) -> None:
    name = "<script>alert(1)</script>\r\nBcc: evil@example.com"
    email, _ = await register(api, name)
    message = await wait_for_mail(stack.maildir, email, "Welcome")
    assert message["Bcc"] is None and message["X-RcptTo"] == email
    assert (
        message["Subject"] == "Welcome to the Shop, <script>alert(1)</script> Bcc: evil@example.com"
    )
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail_html(message)
    assert "<script>" not in mail_html(message)
    assert not any(line.startswith("Bcc:") for line in mail_text(message).splitlines())
    assert mails(stack.maildir, "evil@example.com") == []


# --- outages, dead letters, the jobs view --------------------------------------------------


def admin_metadata(admin: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return (("authorization", admin["Authorization"]),)


async def test_an_smtp_outage_delays_emails_and_loses_none(api, stack, product, admin) -> None:
    smtp = TcpProxy(stack.smtp_port)
    await smtp.start()
    smtp.mode = "refuse"
    try:
        async with (
            stack_process_frozen(stack, "notifications"),
            service_process(
                stack,
                "notifications",
                SMTP_PORT=str(smtp.port),
                NOTIFICATIONS_MAX_ATTEMPTS="20",
                SHUTDOWN_DRAIN_SECONDS="0",
            ) as (_, address),
        ):
            email, user = await register(api)
            placed = await order(api, user, await product())
            assert (await pay(api, user, placed["id"])).status_code == 200

            async with grpc.aio.insecure_channel(address) as channel:
                jobs = notifications_pb2_grpc.NotificationAdminServiceStub(channel)

                async def retrying():
                    listed = await jobs.ListJobs(
                        notifications_pb2.ListJobsRequest(), metadata=admin_metadata(admin)
                    )
                    state = {job.name: job for job in listed.jobs}
                    paid = state["notifications-order-paid"]
                    return paid.redelivered >= 1 and paid.ack_pending >= 1

                await eventually(retrying)
            assert mails(stack.maildir, email) == []

            smtp.mode = "forward"
            await wait_for_mail(stack.maildir, email, "Welcome")
            await wait_for_mail(stack.maildir, email, CONFIRMED)
    finally:
        await smtp.close()
    assert len(mails(stack.maildir, email, "Welcome")) == 1
    assert len(mails(stack.maildir, email, CONFIRMED)) == 1


async def test_orders_completed_while_notifications_is_down_are_all_told(
    api, stack, product
) -> None:
    """No notifications process runs while a customer registers, orders and pays; once it is
    back, every email goes out, once."""
    async with stack_process_frozen(stack, "notifications"):
        email, user = await register(api)
        placed = await order(api, user, await product())
        assert (await pay(api, user, placed["id"])).status_code == 200
        assert mails(stack.maildir, email) == []
    await wait_for_mail(stack.maildir, email, "Welcome")
    await wait_for_mail(stack.maildir, email, CONFIRMED)
    assert len(mails(stack.maildir, email, "Welcome")) == 1
    assert len(mails(stack.maildir, email, CONFIRMED)) == 1


async def test_a_dead_letter_is_listed_and_replayed_by_an_admin(api, stack, admin, sql) -> None:
    smtp = TcpProxy(stack.smtp_port)
    await smtp.start()
    smtp.mode = "refuse"
    nc = await nats.connect(stack.nats_url)
    try:
        async with (
            stack_process_frozen(stack, "notifications"),
            service_process(
                stack,
                "notifications",
                SMTP_PORT=str(smtp.port),
                NOTIFICATIONS_MAX_ATTEMPTS="2",
                SHUTDOWN_DRAIN_SECONDS="0",
            ) as (_, address),
        ):
            email, _ = await register(api)

            async def dead_lettered():
                return sql(
                    "select id, attempts, error from notifications.dead_letters "
                    "where job = 'notifications-welcome' and position(%s in payload) > 0",
                    email.encode(),
                )

            [(letter_id, attempts, error)] = await eventually(dead_lettered)
            assert attempts == 2 and "SMTP" in error
            announced = await nc.jetstream().get_last_msg(
                STREAM, "ecom.notifications.dead_lettered"
            )
            event = events_pb2.NotificationDeadLettered.FromString(announced.data)
            assert (event.dead_letter_id, event.job) == (str(letter_id), "notifications-welcome")

            # Replayed while SMTP is still down: it stays, with one more attempt.
            async with grpc.aio.insecure_channel(address) as channel:
                admin_api = notifications_pb2_grpc.NotificationAdminServiceStub(channel)
                failed = await rpc_error(
                    admin_api.ReplayDeadLetter(
                        notifications_pb2.ReplayDeadLetterRequest(id=str(letter_id)),
                        metadata=admin_metadata(admin),
                    )
                )
            assert failed.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "DELIVERY_FAILED" in str(failed.trailing_metadata())
    finally:
        await nc.close()
        await smtp.close()
    assert mails(stack.maildir, email) == []

    # The stack's own process is back, with SMTP: an admin sees the letter and replays it.
    listed = await api.get("/api/admin/notifications/dead-letters", headers=admin)
    assert listed.status_code == 200, listed.text
    [letter] = [d for d in listed.json()["dead_letters"] if d["id"] == str(letter_id)]
    assert (letter["job"], letter["subject"], letter["attempts"]) == (
        "notifications-welcome",
        "ecom.auth.user_registered",
        3,
    )
    jobs = (await api.get("/api/admin/jobs", headers=admin)).json()["jobs"]
    welcome = next(job for job in jobs if job["name"] == "notifications-welcome")
    assert welcome["subject"] == "ecom.auth.user_registered"
    assert int(welcome["dead_lettered"]) >= 1

    replay = f"/api/admin/notifications/dead-letters/{letter_id}/replay"
    replayed = await api.post(replay, headers=admin, json={})
    assert replayed.status_code == 200, replayed.text
    await wait_for_mail(stack.maildir, email, "Welcome")
    assert (await api.post(replay, headers=admin, json={})).status_code == 404
    assert len(mails(stack.maildir, email, "Welcome")) == 1


async def test_the_jobs_view_lists_every_durable_consumer_for_admins_only(api, admin) -> None:
    response = await api.get("/api/admin/jobs", headers=admin)
    assert response.status_code == 200, response.text
    jobs = {job["name"]: job for job in response.json()["jobs"]}
    assert {"notifications-order-paid", "cart-order-paid", "orders-payment-failed"} <= set(jobs)
    assert jobs["cart-order-paid"]["subject"] == "ecom.orders.order_paid"
    # Scheduled jobs (run by JetStream) are there too.
    assert jobs["payments-job-reconcile"]["subject"] == "jobs.run.payments.reconcile"
    assert "cart-job-purge-guest-carts" in jobs
    assert set(jobs["cart-order-paid"]) >= {
        "pending",
        "ack_pending",
        "redelivered",
        "dead_lettered",
    }

    _, customer = await register(api)
    for path in ("/api/admin/jobs", "/api/admin/notifications/dead-letters"):
        assert (await api.get(path, headers=customer)).status_code == 403
        assert (await api.get(path)).status_code == 401
