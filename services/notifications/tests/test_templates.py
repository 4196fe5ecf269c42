"""The email templates: every email renders, values cannot inject markup, headers or lines."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from ecommerce.events.v1 import events_pb2
from jinja2 import UndefinedError
from notifications_service.templates import Templates, money, one_line

HOSTILE = "<script>alert(1)</script>\r\nBcc: evil@example.com\u2028X-Spam: 1"
ITEMS = [
    events_pb2.OrderLine(name="Blue Mug", unit_price_cents=1250, quantity=2, line_total_cents=2500)
]
EVERY_EMAIL = {
    "welcome": {},
    "password_reset": {"token": "t0k", "reset_url": "http://x/?t=t0k", "expires_at": "soon"},
    "order_paid": {"order_id": "o1", "items": ITEMS, "total_cents": 3099, "currency": "USD"},
    "order_cancelled": {
        "order_id": "o1",
        "total_cents": 3099,
        "currency": "USD",
        "refund_requested": True,
        "cancelled_by": "customer",
        "reason": HOSTILE,
    },
    "order_refunded": {"order_id": "o1", "amount_cents": 3099, "currency": "USD"},
    "payment_failed": {
        "order_id": "o1",
        "amount_cents": 3099,
        "currency": "USD",
        "failure_message": HOSTILE,
    },
    "daily_sales_report": {
        "day": "2003-01-02",
        "revenue_cents": 123456,
        "currency": "USD",
        "order_count": 3,
        "average_cents": 41152,
        "orders_by_status": [events_pb2.DailySalesReport.StatusCount(status="PAID", count=3)],
        "top_products": [
            events_pb2.DailySalesReport.ProductSales(name=HOSTILE, quantity=2, revenue_cents=500)
        ],
        "csv_location": "s3://reports/reports/sales/2003-01-02.csv",
    },
    "stock_low": {
        "product_id": "p1",
        "product_name": HOSTILE,
        "sku": "MUG-1",
        "available": 2,
        "on_hand": 3,
        "threshold": 5,
    },
}


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates()


@pytest.mark.parametrize("template", sorted(EVERY_EMAIL))
def test_every_email_renders_and_no_value_can_inject(templates, template) -> None:
    email = templates.render(template, "ada@example.com", name=HOSTILE, **EVERY_EMAIL[template])
    # One short line of subject, accepted as a header as it is.
    assert "\n" not in email.subject and "\r" not in email.subject and len(email.subject) <= 150
    message = EmailMessage()
    message["Subject"] = email.subject
    # Markup is escaped in HTML; in text the value stays on its own line.
    assert "<script>" not in email.html and "&lt;script&gt;" in email.html
    assert "<script>" in email.text
    lines = email.text.splitlines()
    assert not any(line.startswith(("Bcc:", "X-Spam:")) for line in lines)
    assert email.html.lstrip().startswith("<!doctype html>")


def test_the_order_confirmation_lists_each_line(templates) -> None:
    email = templates.render("order_paid", "a@b.c", name="Ada", **EVERY_EMAIL["order_paid"])
    assert "2 x Blue Mug at 12.50 USD: 25.00 USD" in email.text
    assert "Total paid: 30.99 USD" in email.text
    assert "<td>Blue Mug</td>" in email.html


def test_a_missing_value_fails_the_email_rather_than_blanking_it(templates) -> None:
    with pytest.raises(UndefinedError):
        templates.render("order_paid", "a@b.c", name="Ada")


def test_long_subjects_are_cut(templates) -> None:
    context = {**EVERY_EMAIL["stock_low"], "product_name": "Mug " * 100}
    email = templates.render("stock_low", "a@b.c", name="Ada", **context)
    assert len(email.subject) == 150 and email.subject.endswith("…")


def test_helpers() -> None:
    assert one_line(" a\r\n\tb\x0bc\u2029 d ") == "a b c d"
    assert money(123456789, "EUR") == "1,234,567.89 EUR"
    assert money(5, "USD") == "0.05 USD"
