"""(admin) Sales analytics: aggregates over orders' own rows, one query per answer, plus the
copies of auth's UserRegistered events and the catalog's low-stock count.

A range is half-open, [from, to), on `created_at`. Buckets are cut in UTC by PostgreSQL's
`date_trunc` (its weeks start on Monday, as ISO weeks do); the list of bucket starts is built
here with the same rules, so empty buckets come out as zeros and the 400-bucket cap is checked
before any SQL runs.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import grpc
from ecom_runtime.auth import require_admin
from ecom_runtime.db import Database, UnitOfWork
from ecom_runtime.errors import InvalidArgument
from ecom_runtime.validation import Violations
from ecommerce.events.v1 import events_pb2
from ecommerce.orders.v1 import orders_pb2, orders_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import ColumnElement, FromClause, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from orders_service.partners import Catalog
from orders_service.store import REVENUE_STATUSES, order_items, orders, registrations

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

INTERVALS = ("day", "week", "month")
MAX_BUCKETS = 400
DEFAULT_SPAN = timedelta(days=30)
DEFAULT_LIMIT, MAX_LIMIT = 10, 100
# What a google.protobuf.Timestamp may hold: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST, _LATEST = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)


# The requests that carry `from_time` / `to_time`.
TimeRange: TypeAlias = (
    orders_pb2.GetSalesReportRequest
    | orders_pb2.GetTopProductsRequest
    | orders_pb2.GetSalesSummaryRequest
)


@dataclass(frozen=True)
class Span:
    start: datetime  # inclusive
    end: datetime  # exclusive


@dataclass(frozen=True)
class ProductSales:
    product_id: uuid.UUID
    name: str
    quantity: int
    revenue_cents: int


# -- the range and the buckets -------------------------------------------------------------


def _instant(field: str, value: Timestamp, violations: Violations) -> datetime | None:
    """The timestamp rounded up to the microsecond PostgreSQL keeps: a row at microsecond m is
    at or after t exactly when m >= ceil(t), so both ends of [from, to) stay exact."""
    if not (_MIN_SECONDS <= value.seconds <= _MAX_SECONDS and 0 <= value.nanos < 10**9):
        violations.add(field, "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
        return None
    try:
        return _EPOCH + timedelta(seconds=value.seconds, microseconds=-(-value.nanos // 1000))
    except OverflowError:  # the last nanosecond of year 9999
        return _LATEST


def _span(request: TimeRange, violations: Violations) -> Span | None:
    """[from, to) as the client meant it (defaults: to = now, from = to - 30 days), named in
    violations as the client spells the fields (`from`, `to`); None when invalid."""
    end: datetime | None = datetime.now(UTC)
    if request.HasField("to_time"):
        end = _instant("to", request.to_time, violations)
    if request.HasField("from_time"):
        start = _instant("from", request.from_time, violations)
    elif end is not None:
        start = end - DEFAULT_SPAN if end - _EARLIEST > DEFAULT_SPAN else _EARLIEST
    if end is None or start is None:
        return None
    if start >= end:
        violations.add("from", "must be before to")
        return None
    return Span(start, end)


def _truncate(moment: datetime, interval: str) -> datetime:
    """The start of the UTC day, Monday or 1st holding `moment` (as `date_trunc` does)."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def _following(start: datetime, interval: str) -> datetime | None:
    """The next bucket's start; None past year 9999."""
    try:
        if interval == "month":
            return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
        return start + timedelta(days=7 if interval == "week" else 1)
    except (OverflowError, ValueError):
        return None


def bucket_starts(span: Span, interval: str) -> list[datetime] | None:
    """Every bucket's first instant, from the one holding `from` up to `to`; None when there
    would be more than MAX_BUCKETS (counted without building a long list)."""
    starts: list[datetime] = []
    start: datetime | None = _truncate(span.start, interval)
    while start is not None and start < span.end:
        if len(starts) == MAX_BUCKETS:
            return None
        starts.append(start)
        start = _following(start, interval)
    return starts


# -- the queries ---------------------------------------------------------------------------


def _created_in(span: Span) -> list[ColumnElement[bool]]:
    return [orders.c.created_at >= span.start, orders.c.created_at < span.end]


def _counted(table: FromClause) -> ColumnElement[bool]:
    """The order counts in revenue (paid, not cancelled or refunded)."""
    return table.c.status.in_(REVENUE_STATUSES)


async def sales_by_bucket(
    db: Database, span: Span, interval: str
) -> dict[datetime, tuple[int, int]]:
    """Bucket start -> (revenue_cents, order count) for buckets that have revenue orders."""
    # Literals, not bound parameters: the GROUP BY must repeat the very same expression, and
    # `interval` is one of INTERVALS.
    assert interval in INTERVALS
    utc = func.timezone(literal_column("'UTC'"), orders.c.created_at)
    bucket = func.date_trunc(literal_column(f"'{interval}'"), utc)
    query = (
        select(bucket, func.sum(orders.c.total_cents), func.count())
        .where(*_created_in(span), _counted(orders))
        .group_by(bucket)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {start.replace(tzinfo=UTC): (int(revenue), count) for start, revenue, count in rows}


async def top_products(db: Database, span: Span, limit: int | None) -> list[ProductSales]:
    """Most revenue first, ties by quantity then product id; each product named as on its most
    recent counted line (latest order, then the later line of that order). `limit` None: every
    product sold in the range (the daily report's CSV).

    The name is looked up for the top `limit` only, by the time of the product's latest order
    (index probes): ordering every line of the range for it would cost a sort of them all.
    """
    i, o = order_items.c, orders.c
    revenue = func.sum(i.line_total_cents).label("revenue")
    quantity = func.sum(i.quantity).label("quantity")
    top = (
        select(i.product_id, quantity, revenue, func.max(o.created_at).label("latest"))
        .select_from(order_items.join(orders, o.id == i.order_id))
        .where(*_created_in(span), _counted(orders))
        .group_by(i.product_id)
        .order_by(revenue.desc(), quantity.desc(), i.product_id)
        .limit(limit)
        .cte("top")
    )
    line, order = order_items.alias("line"), orders.alias("latest_order")
    name = (
        select(line.c.name)
        .select_from(line.join(order, order.c.id == line.c.order_id))
        .where(
            order.c.created_at == top.c.latest,
            line.c.product_id == top.c.product_id,
            _counted(order),
        )
        .order_by(order.c.id.desc(), line.c.position.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = select(top.c.product_id, name, top.c.quantity, top.c.revenue).order_by(
        top.c.revenue.desc(), top.c.quantity.desc(), top.c.product_id
    )
    async with db.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [ProductSales(pid, name, int(qty), int(cents)) for pid, name, qty, cents in rows]


async def orders_by_status(db: Database, span: Span) -> dict[str, tuple[int, int]]:
    """Status -> (order count, total_cents) of every order created in the range."""
    query = (
        select(orders.c.status, func.count(), func.sum(orders.c.total_cents))
        .where(*_created_in(span))
        .group_by(orders.c.status)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {status: (count, int(total)) for status, count, total in rows}


@dataclass(frozen=True)
class SalesTotals:
    revenue_cents: int
    order_count: int  # the orders counted in revenue
    by_status: dict[str, int]  # every order created in the range

    @property
    def average_order_value_cents(self) -> int:
        return average_cents(self.revenue_cents, self.order_count)


async def sales_totals(db: Database, span: Span) -> SalesTotals:
    """Revenue and its orders, and every order by status, of the orders created in the range:
    one query, shared by the summary and the daily report."""
    counts = await orders_by_status(db, span)
    counted = [counts[s] for s in REVENUE_STATUSES if s in counts]
    return SalesTotals(
        revenue_cents=sum(total for _, total in counted),
        order_count=sum(n for n, _ in counted),
        by_status={status: n for status, (n, _) in counts.items()},
    )


async def registrations_in(db: Database, span: Span) -> int:
    r = registrations.c
    query = select(func.count()).where(r.registered_at >= span.start, r.registered_at < span.end)
    async with db.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


def average_cents(revenue_cents: int, count: int) -> int:
    """revenue / count rounded half up, in integers (amounts are never floats); 0 for none."""
    return (2 * revenue_cents + count) // (2 * count) if count else 0


async def record_registration(tx: UnitOfWork, event: events_pb2.UserRegistered) -> None:
    """Keeps a copy of auth's UserRegistered for the new-user count; a replay changes nothing."""
    await tx.conn.execute(
        pg_insert(registrations)
        .values(
            user_id=uuid.UUID(event.user_id),
            registered_at=event.occurred_at.ToDatetime(tzinfo=UTC),
        )
        .on_conflict_do_nothing()
    )


# -- the service ---------------------------------------------------------------------------


def _timestamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def _status_enum(name: str) -> orders_pb2.OrderStatus.ValueType:
    return orders_pb2.OrderStatus.Value(f"ORDER_STATUS_{name}")


class AnalyticsServicer(orders_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, db: Database, catalog: Catalog, currency: str) -> None:
        self._db = db
        self._catalog = catalog
        self._currency = currency

    async def GetSalesReport(
        self, request: orders_pb2.GetSalesReportRequest, context: Context
    ) -> Any:
        await require_admin()
        violations = Violations()
        span = _span(request, violations)
        interval = request.interval or "day"
        if interval not in INTERVALS:
            violations.add("interval", "must be day, week or month")
        violations.raise_if_any()
        assert span is not None
        starts = bucket_starts(span, interval)
        if starts is None:
            raise InvalidArgument(
                {"from": f"the range holds more than {MAX_BUCKETS} {interval}s; shorten it or "
                 "choose a longer interval"}
            )  # fmt: skip
        sales = await sales_by_bucket(self._db, span, interval)
        buckets = []
        for start in starts:
            revenue, count = sales.get(start, (0, 0))
            buckets.append(
                orders_pb2.SalesBucket(
                    start=_timestamp(start), revenue_cents=revenue, order_count=count
                )
            )
        return orders_pb2.GetSalesReportResponse(buckets=buckets, currency=self._currency)

    async def GetTopProducts(
        self, request: orders_pb2.GetTopProductsRequest, context: Context
    ) -> Any:
        await require_admin()
        violations = Violations()
        span = _span(request, violations)
        if not 0 <= request.limit <= MAX_LIMIT:
            violations.add("limit", f"must be 1 to {MAX_LIMIT} (or 0 for {DEFAULT_LIMIT})")
        violations.raise_if_any()
        assert span is not None
        best = await top_products(self._db, span, request.limit or DEFAULT_LIMIT)
        return orders_pb2.GetTopProductsResponse(
            products=[
                orders_pb2.TopProduct(
                    product_id=str(p.product_id),
                    name=p.name,
                    quantity=p.quantity,
                    revenue_cents=p.revenue_cents,
                )
                for p in best
            ],
            currency=self._currency,
        )

    async def GetSalesSummary(
        self, request: orders_pb2.GetSalesSummaryRequest, context: Context
    ) -> Any:
        await require_admin()
        violations = Violations()
        span = _span(request, violations)
        violations.raise_if_any()
        assert span is not None
        # The catalog is asked while the database counts (gather, not a TaskGroup: the
        # catalog's error must reach the interceptor as itself, not in an ExceptionGroup).
        totals, new_users, low_stock = await asyncio.gather(
            sales_totals(self._db, span),
            registrations_in(self._db, span),
            self._catalog.count_low_stock(),
        )
        return orders_pb2.GetSalesSummaryResponse(
            revenue_cents=totals.revenue_cents,
            currency=self._currency,
            orders_by_status=[
                orders_pb2.OrderStatusCount(status=status, count=count)
                for status, count in sorted(
                    (_status_enum(s), n) for s, n in totals.by_status.items()
                )
            ],
            average_order_value_cents=totals.average_order_value_cents,
            new_user_count=new_users,
            low_stock_count=low_stock,
        )
