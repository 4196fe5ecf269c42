"""The `daily-sales-report` job against the stack: orders are written straight into the orders
schema on days of 1987 (no other test writes orders then; each test takes days of its own), the
job is triggered over the stack's NATS for one day, and its CSV is read from the stack's S3 and
its email from the SMTP sink."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from ecom_runtime.events import connect_jetstream
from ecom_runtime.jobs import trigger

from conftest import ADMIN_EMAIL, eventually, mail_html, mail_text, mails, wait_for_mail

DAYS = iter(random.sample(range(365), 365))
MICRO = timedelta(microseconds=1)
HEADER = ["product_id", "name", "quantity", "revenue_cents"]


@pytest.fixture
def day() -> date:
    """A day of 1987 no other test reports on."""
    return date(1987, 1, 1) + timedelta(days=next(DAYS))


@pytest.fixture
def s3(stack) -> Any:
    env = stack.service_env()
    return boto3.client(
        "s3",
        endpoint_url=stack.s3_url,
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


async def run_report(stack, **params: Any) -> None:
    nc, js = await connect_jetstream(stack.nats_url)
    try:
        await trigger(js, "orders", "daily-sales-report", **params)
    finally:
        await nc.close()


def csv_object(s3, day: date | str) -> str | None:
    """The day's CSV in the reports bucket, None when there is none."""
    try:
        reply = s3.get_object(Bucket="reports", Key=f"reports/sales/{day}.csv")
    except ClientError:
        return None
    return reply["Body"].read().decode()


async def wait_for_csv(s3, day: date, within: float = 30.0) -> list[list[str]]:
    text = await eventually(
        lambda: asyncio.to_thread(csv_object, s3, day), within=within, what=f"a CSV for {day}"
    )
    return list(csv.reader(io.StringIO(text)))


async def test_a_day_is_reported_in_s3_and_to_the_admins(stack, s3, add_order, day) -> None:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    lamp, mug, candle, vase = (uuid.uuid4() for _ in range(4))
    extras = [(uuid.uuid4(), f"Extra {cents}", 1, cents) for cents in range(2, 10)]
    add_order(start, "PAID", lines=[(lamp, "Lamp (old)", 2, 1500), (mug, 'Mug, "big"', 3, 200)])
    add_order(end - MICRO, "DELIVERED", lines=[(lamp, "Lamp", 1, 1500)])
    add_order(start + timedelta(hours=12), "FULFILLED", lines=[(candle, "Candle", 1, 1001)])
    add_order(start + timedelta(hours=13), "PAID", lines=[(vase, "Vase", 1, 1), *extras])
    # Counted by status only: not paid, or paid and undone.
    add_order(start + timedelta(hours=1), "CANCELLED", lines=[(mug, "Mug", 100, 200)])
    add_order(start + timedelta(hours=2), "PENDING_PAYMENT", lines=[(lamp, "Lamp", 5, 1500)])
    add_order(start + timedelta(hours=3), "REFUNDED", lines=[(candle, "Candle", 9, 1001)])
    # Other days.
    add_order(start - MICRO, "PAID", lines=[(lamp, "Lamp", 7, 1500)])
    add_order(end, "PAID", lines=[(mug, "Mug", 7, 200)])

    await run_report(stack, day=day.isoformat())

    rows = await wait_for_csv(s3, day)
    assert rows == [
        HEADER,
        [str(lamp), "Lamp", "3", "4500"],
        [str(candle), "Candle", "1", "1001"],
        [str(mug), 'Mug, "big"', "3", "600"],
        *([str(pid), name, "1", str(cents)] for pid, name, _, cents in reversed(extras)),
        [str(vase), "Vase", "1", "1"],
    ]

    mail = await wait_for_mail(stack.maildir, ADMIN_EMAIL, f"Sales report {day}", within=30)
    # 4 paid orders: 36.00 + 15.00 + 10.01 + 0.45 = 61.46, an average of 15.365 rounded up.
    assert mail["Subject"] == f"Sales report {day}: 61.46 USD"
    text = mail_text(mail)
    for line in (
        "Revenue: 61.46 USD from 4 paid orders",
        "Average order value: 15.37 USD",
        "- cancelled: 1\n- delivered: 1\n- fulfilled: 1\n- paid: 2\n- pending payment: 1\n"
        "- refunded: 1\n",
        "1. Lamp: 3 sold, 45.00 USD\n2. Candle: 1 sold, 10.01 USD\n",
        '3. Mug, "big": 3 sold, 6.00 USD\n',
        "10. Extra 3: 1 sold, 0.03 USD\n\n",  # the top 10 only
        f"in the CSV at s3://reports/reports/sales/{day}.csv.",
    ):
        assert line in text
    assert "Extra 2" not in text and "Vase" not in text
    assert "<td>Mug, &#34;big&#34;</td>" in mail_html(mail)


async def test_a_bad_day_runs_nothing(stack, s3, day) -> None:
    today = datetime.now(UTC).date()
    bad: list[Any] = ["1987-02-30", "yesterday", "1987-2-3", "19870203", str(today), 1987]
    bad.append(str(today + timedelta(days=400)))
    for value in bad:
        await run_report(stack, day=value)
    # Triggers run one after the other: once this day's report is out, the bad ones are done.
    await run_report(stack, day=day.isoformat())
    assert await wait_for_csv(s3, day) == [HEADER]
    mail = await wait_for_mail(stack.maildir, ADMIN_EMAIL, f"Sales report {day}", within=30)
    assert "Revenue: 0.00 USD from 0 paid orders" in mail_text(mail)

    for value in bad:
        assert await asyncio.to_thread(csv_object, s3, value) is None
        assert mails(stack.maildir, ADMIN_EMAIL, f"Sales report {value}:") == []
