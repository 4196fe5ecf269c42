"""The daily sales report, the job `daily-sales-report`: one UTC day's figures (analytics'
queries over the orders created that day), a CSV of every product sold that day in S3, and a
DailySalesReport event through the outbox, from which notifications emails the admins.

A run for a day already reported overwrites its CSV and publishes again, with a new event id:
re-running a day is how an operator sends a corrected report, so it is not deduplicated.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re
from datetime import UTC, date, datetime, time, timedelta

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from ecom_runtime.db import Database
from ecommerce.events.v1 import events_pb2

from orders_service.analytics import ProductSales, Span, sales_totals, top_products
from orders_service.config import OrdersSettings

log = logging.getLogger("orders.reports")

TOP_PRODUCTS = 10
CSV_HEADER = ("product_id", "name", "quantity", "revenue_cents")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def report_key(day: date) -> str:
    return f"reports/sales/{day.isoformat()}.csv"


def parse_day(value: object, today: date) -> date | None:
    """The day a trigger asks for: "YYYY-MM-DD" of a day already over in UTC (a day still
    going would be reported in part); None otherwise."""
    if not isinstance(value, str) or not _ISO_DAY.fullmatch(value):
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:  # 2003-02-30
        return None
    return day if day < today else None


def products_csv(products: list[ProductSales]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for p in products:
        writer.writerow((p.product_id, p.name, p.quantity, p.revenue_cents))
    return out.getvalue().encode()


class DailySalesReport:
    def __init__(self, db: Database, settings: OrdersSettings) -> None:
        self._db = db
        self._currency = settings.orders_currency
        self._bucket = settings.orders_reports_bucket
        self._region = settings.s3_region
        self._s3 = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url or None,
            region_name=settings.s3_region,
            config=Config(
                signature_version="s3v4",
                retries={"max_attempts": 2},
                # A hung S3 fails the run (the job retries it) instead of holding it.
                connect_timeout=3,
                read_timeout=10,
            ),
        )

    async def run(self, day: str | None = None) -> None:
        """The job's run: `day` ("YYYY-MM-DD"), by default yesterday (UTC). A bad day is
        logged and runs nothing: retrying it would not make it good."""
        today = datetime.now(UTC).date()
        reported = today - timedelta(days=1) if day is None else parse_day(day, today)
        if reported is None:
            log.warning("daily sales report: %r is not a past day (YYYY-MM-DD), nothing run", day)
            return
        start = datetime.combine(reported, time(), UTC)
        span = Span(start, start + timedelta(days=1))
        totals, products = await asyncio.gather(
            sales_totals(self._db, span), top_products(self._db, span, None)
        )
        key = report_key(reported)
        await self._ensure_bucket()
        await asyncio.to_thread(
            self._s3.put_object,
            Bucket=self._bucket,
            Key=key,
            Body=products_csv(products),
            ContentType="text/csv; charset=utf-8",
        )
        async with self._db.begin() as tx:
            tx.add(
                events_pb2.DailySalesReport(
                    day=reported.isoformat(),
                    revenue_cents=totals.revenue_cents,
                    currency=self._currency,
                    order_count=totals.order_count,
                    average_order_value_cents=totals.average_order_value_cents,
                    orders_by_status=[
                        events_pb2.DailySalesReport.StatusCount(status=status, count=count)
                        for status, count in sorted(totals.by_status.items())
                    ],
                    top_products=[
                        events_pb2.DailySalesReport.ProductSales(
                            product_id=str(p.product_id),
                            name=p.name,
                            quantity=p.quantity,
                            revenue_cents=p.revenue_cents,
                        )
                        for p in products[:TOP_PRODUCTS]
                    ],
                    csv_bucket=self._bucket,
                    csv_key=key,
                )
            )
        log.info("daily sales report for %s written to %s/%s", reported, self._bucket, key)

    async def _ensure_bucket(self) -> None:
        """Creates the bucket when S3 says there is none (the local stack). An existing bucket
        is never changed (its access, encryption and lifecycle are the platform's); any other
        answer to the HEAD (403: it exists, we may not look) is left for the upload to judge.
        """
        try:
            await asyncio.to_thread(self._s3.head_bucket, Bucket=self._bucket)
            return
        except ClientError as error:
            # A HEAD has no body: the status is all there is ("404"); some stores say more.
            missing = error.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket") or (
                error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404
            )
            if not missing:
                return
        where = {} if self._region == "us-east-1" else {"LocationConstraint": self._region}
        try:
            await asyncio.to_thread(
                self._s3.create_bucket,
                Bucket=self._bucket,
                **({"CreateBucketConfiguration": where} if where else {}),
            )
            log.info("S3 bucket %s created for the sales reports", self._bucket)
        except ClientError as error:
            # Another replica, or someone else, made it since our HEAD.
            code = error.response.get("Error", {}).get("Code")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
