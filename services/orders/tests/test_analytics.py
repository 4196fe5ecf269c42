"""AnalyticsService against the stack: orders are written straight into orders.orders and
orders.order_items at chosen instants, each test in a year of its own long past (the stack's
database is new for each run, so no other test has orders there), and read back as an admin
through gRPC or, for the REST shape, through Envoy."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
from ecommerce.orders.v1 import orders_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from conftest import eventually, rpc_error, unique_email, violations

YEARS = itertools.count(2001)
DAY, MICRO = timedelta(days=1), timedelta(microseconds=1)


@pytest.fixture
def year() -> int:
    """A year no other test writes orders in."""
    return next(YEARS)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def ts(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def span(start: datetime, end: datetime) -> dict[str, Timestamp]:
    return {"from_time": ts(start), "to_time": ts(end)}


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def buckets(reply: pb.GetSalesReportResponse) -> list[tuple[datetime, int, int]]:
    return [(b.start.ToDatetime(tzinfo=UTC), b.revenue_cents, b.order_count) for b in reply.buckets]


def statuses(reply: pb.GetSalesSummaryResponse) -> list[tuple[str, int]]:
    return [(pb.OrderStatus.Name(s.status), s.count) for s in reply.orders_by_status]


# --- sales report --------------------------------------------------------------------------


async def test_sales_by_day_count_paid_orders_in_the_half_open_range_with_empty_days(
    analytics, admin, add_order, year
) -> None:
    day = utc(year, 6, 10)
    add_order(day - MICRO, "PAID", 7000)  # before `from`
    add_order(day, "PAID", 1000)
    add_order(day + DAY - MICRO, "FULFILLED", 500)
    add_order(day + DAY + timedelta(hours=12), "CANCELLED", 9999)  # the second day stays empty
    add_order(day + 2 * DAY + timedelta(hours=12), "DELIVERED", 250)
    for status in ("PENDING_PAYMENT", "PAYMENT_FAILED", "CANCELLED", "REFUNDED"):
        add_order(day + 2 * DAY + timedelta(hours=13), status, 8888)
    add_order(day + 3 * DAY, "PAID", 4000)  # at `to`: outside

    reply = await analytics.GetSalesReport(
        pb.GetSalesReportRequest(**span(day, day + 3 * DAY)), metadata=admin
    )
    assert reply.currency == "USD"
    assert buckets(reply) == [(day, 1500, 2), (day + DAY, 0, 0), (day + 2 * DAY, 250, 1)]

    # A range starting mid-day still reports that day from midnight, with only what is in range;
    # one ending at noon leaves out the order placed at noon.
    reply = await analytics.GetSalesReport(
        pb.GetSalesReportRequest(
            interval="day", **span(day + timedelta(hours=12), day + 2 * DAY + timedelta(hours=12))
        ),
        metadata=admin,
    )
    assert buckets(reply) == [(day, 500, 1), (day + DAY, 0, 0), (day + 2 * DAY, 0, 0)]


async def test_weeks_start_on_monday(analytics, admin, add_order, year) -> None:
    monday = utc(year, 6, 1) + timedelta(days=-utc(year, 6, 1).weekday() + 7)
    wednesday = monday + 2 * DAY
    add_order(monday + timedelta(hours=8), "PAID", 100)  # in the first week but before `from`
    add_order(wednesday, "PAID", 200)
    add_order(monday + 7 * DAY - MICRO, "DELIVERED", 300)  # Sunday, last microsecond
    add_order(monday + 7 * DAY, "PAID", 400)  # the next Monday
    add_order(monday + 14 * DAY + timedelta(minutes=30), "FULFILLED", 800)

    reply = await analytics.GetSalesReport(
        pb.GetSalesReportRequest(
            interval="week", **span(wednesday, monday + 14 * DAY + timedelta(hours=1))
        ),
        metadata=admin,
    )
    assert buckets(reply) == [
        (monday, 500, 2),
        (monday + 7 * DAY, 400, 1),
        (monday + 14 * DAY, 800, 1),
    ]
    assert {b.start.ToDatetime().weekday() for b in reply.buckets} == {0}


async def test_months_start_on_the_first(analytics, admin, add_order, year) -> None:
    add_order(utc(year, 3, 15) - MICRO, "PAID", 9000)  # before `from`
    add_order(utc(year, 3, 15), "PAID", 100)
    add_order(utc(year, 4, 1) - MICRO, "FULFILLED", 200)
    add_order(utc(year, 5, 1), "DELIVERED", 300)
    add_order(utc(year, 5, 31, 12), "REFUNDED", 7000)
    add_order(utc(year, 6, 1), "PAID", 999)  # at `to`

    reply = await analytics.GetSalesReport(
        pb.GetSalesReportRequest(interval="month", **span(utc(year, 3, 15), utc(year, 6, 1))),
        metadata=admin,
    )
    assert buckets(reply) == [
        (utc(year, 3, 1), 300, 2),
        (utc(year, 4, 1), 0, 0),
        (utc(year, 5, 1), 300, 1),
    ]


@pytest.mark.parametrize(
    ("interval", "step"),
    [("day", timedelta(days=400)), ("week", timedelta(weeks=400))],
)
async def test_at_most_400_buckets(analytics, admin, interval, step) -> None:
    start = utc(1901, 1, 7)  # a Monday
    reply = await analytics.GetSalesReport(
        pb.GetSalesReportRequest(interval=interval, **span(start, start + step)), metadata=admin
    )
    assert len(reply.buckets) == 400
    error = await rpc_error(
        analytics.GetSalesReport(
            pb.GetSalesReportRequest(interval=interval, **span(start, start + step + MICRO)),
            metadata=admin,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(error)) == {"from"}


async def test_400_months_fit_and_401_do_not(analytics, admin) -> None:
    request = pb.GetSalesReportRequest(interval="month", **span(utc(1700, 1, 1), utc(1733, 5, 1)))
    assert len((await analytics.GetSalesReport(request, metadata=admin)).buckets) == 400
    request.to_time.CopyFrom(ts(utc(1733, 5, 1, 0, 0, 1)))
    error = await rpc_error(analytics.GetSalesReport(request, metadata=admin))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_default_range_is_the_30_days_before_to(analytics, admin, year) -> None:
    reply = await analytics.GetSalesReport(pb.GetSalesReportRequest(), metadata=admin)
    starts = [start for start, _, _ in buckets(reply)]
    assert len(starts) == 31  # 30 days back from now, the first one begun before `from`
    assert all(b - a == DAY for a, b in itertools.pairwise(starts))
    assert starts[-1] <= datetime.now(UTC) < starts[-1] + DAY

    reply = await analytics.GetSalesReport(
        pb.GetSalesReportRequest(to_time=ts(utc(year, 7, 1))), metadata=admin
    )
    assert [start for start, _, _ in buckets(reply)] == [
        utc(year, 6, 1) + n * DAY for n in range(30)
    ]


# --- top products --------------------------------------------------------------------------


async def test_top_products_by_revenue_then_quantity_then_id(
    analytics, admin, add_order, year
) -> None:
    start = utc(year, 4, 1)
    lamp, mug, candle, dish, vase = (uuid.uuid4() for _ in range(5))
    add_order(start, "PAID", lines=[(lamp, "Lamp (old name)", 1, 1000), (mug, "Mug", 5, 200)])
    add_order(start + DAY, "DELIVERED", lines=[(lamp, "Lamp", 2, 1000), (mug, "Mug", 10, 200)])
    add_order(
        start + 2 * DAY, "FULFILLED", lines=[(candle, "Candle", 2, 500), (dish, "Dish", 1, 1000)]
    )
    add_order(start + 2 * DAY, "PAID", lines=[(dish, "Dish", 1, 0)])
    # Not counted: not paid, refunded, or outside the range.
    add_order(start + 3 * DAY, "CANCELLED", lines=[(vase, "Vase", 100, 1000)])
    add_order(start + 3 * DAY, "REFUNDED", lines=[(lamp, "Lamp (refunded)", 50, 1000)])
    add_order(start - MICRO, "PAID", lines=[(candle, "Candle", 10, 1000)])
    add_order(start + 10 * DAY, "PAID", lines=[(lamp, "Lamp (later)", 10, 1000)])
    # Eight more products, less revenue than any of the above.
    small = [uuid.uuid4() for _ in range(8)]
    add_order(
        start + DAY, "PAID", lines=[(p, f"Small {n}", 1, 10 + n) for n, p in enumerate(small)]
    )

    async def top(limit: int) -> list[tuple[str, str, int, int]]:
        reply = await analytics.GetTopProducts(
            pb.GetTopProductsRequest(limit=limit, **span(start, start + 10 * DAY)), metadata=admin
        )
        assert reply.currency == "USD"
        return [(p.product_id, p.name, p.quantity, p.revenue_cents) for p in reply.products]

    # Mug and Lamp tie on revenue (Mug sold more units); Candle and Dish tie on both.
    tied = sorted([(str(candle), "Candle", 2, 1000), (str(dish), "Dish", 2, 1000)])
    leaders = [(str(mug), "Mug", 15, 3000), (str(lamp), "Lamp", 3, 3000), *tied]
    smalls = [(str(p), f"Small {n}", 1, 10 + n) for n, p in reversed(list(enumerate(small)))]
    assert await top(3) == leaders[:3]
    assert await top(0) == (leaders + smalls)[:10]  # 10 by default
    assert await top(100) == leaders + smalls


async def test_a_product_is_named_as_on_its_latest_counted_line(
    analytics, admin, add_order, year
) -> None:
    start, lamp = utc(year, 5, 1), uuid.uuid4()
    add_order(start + 2 * DAY, "PAID", lines=[(lamp, "Desk lamp", 1, 100)])
    add_order(start, "PAID", lines=[(lamp, "Lamp", 1, 100)])
    add_order(start + DAY, "PAID", lines=[(lamp, "Old lamp", 1, 100), (lamp, "Reading lamp", 1, 5)])
    add_order(start + 3 * DAY, "CANCELLED", lines=[(lamp, "Cancelled lamp", 1, 100)])

    async def name(end: datetime) -> str:
        reply = await analytics.GetTopProducts(
            pb.GetTopProductsRequest(**span(start, end)), metadata=admin
        )
        [product] = reply.products
        return product.name

    assert await name(start + 4 * DAY) == "Desk lamp"
    assert await name(start + 2 * DAY) == "Reading lamp"  # the later line of that order


# --- summary -------------------------------------------------------------------------------


async def test_summary_of_a_week(analytics, admin, add_order, sql, api, year) -> None:
    start, end = utc(year, 9, 1), utc(year, 9, 8)
    for status, total in [
        ("PAID", 300),
        ("PENDING_PAYMENT", 5000),
        ("REFUNDED", 5000),
        ("CANCELLED", 5000),
        ("FULFILLED", 400),
        ("CANCELLED", 5000),
        ("PAID", 300),
    ]:
        add_order(start + timedelta(hours=total % 7), status, total)
    add_order(start - MICRO, "PAID", 10_000)
    add_order(end, "PAID", 10_000)
    for at in (start - MICRO, start, end - MICRO, end):
        sql(
            "insert into orders.registrations (user_id, registered_at) values (%s, %s)",
            uuid.uuid4(),
            at,
        )
    # At least one low-stock product, so the count is not 0 by chance.
    sql(
        "insert into catalog.products (id, sku, name, price_cents, on_hand, low_stock_threshold)"
        " values (%s, %s, 'Nearly gone', 100, 1, 5)",
        uuid.uuid4(),
        f"low-{uuid.uuid4().hex[:12]}",
    )

    reply = await analytics.GetSalesSummary(
        pb.GetSalesSummaryRequest(**span(start, end)), metadata=admin
    )
    low_stock = await api.get("/api/inventory/low-stock", headers=dict(admin))
    assert low_stock.status_code == 200, low_stock.text
    assert reply.low_stock_count == low_stock.json()["total_size"] >= 1
    assert (reply.revenue_cents, reply.currency) == (1000, "USD")
    assert statuses(reply) == [  # in the enum's order; DELIVERED and PAYMENT_FAILED have none
        ("ORDER_STATUS_PENDING_PAYMENT", 1),
        ("ORDER_STATUS_PAID", 2),
        ("ORDER_STATUS_FULFILLED", 1),
        ("ORDER_STATUS_CANCELLED", 2),
        ("ORDER_STATUS_REFUNDED", 1),
    ]
    assert reply.average_order_value_cents == 333  # 1000 / 3
    assert reply.new_user_count == 2


@pytest.mark.parametrize(
    ("orders", "revenue", "average"),
    [
        ([("PAID", 500), ("DELIVERED", 501)], 1001, 501),  # 500.5 rounds up
        ([("PAID", 1000), ("PAID", 1000), ("FULFILLED", 1001)], 3001, 1000),  # 1000.33
        ([("PAID", 1), ("PAID", 0), ("PAID", 0)], 1, 0),  # 0.33
        ([("PAID", 1), ("PAID", 0)], 1, 1),  # 0.5
        ([("CANCELLED", 700), ("REFUNDED", 300)], 0, 0),  # none counted
        ([], 0, 0),
    ],
)
async def test_average_order_value_rounds_half_up(
    analytics, admin, add_order, year, orders, revenue, average
) -> None:
    start = utc(year, 2, 1)
    for status, total in orders:
        add_order(start, status, total)
    reply = await analytics.GetSalesSummary(
        pb.GetSalesSummaryRequest(**span(start, start + DAY)), metadata=admin
    )
    assert (reply.revenue_cents, reply.average_order_value_cents) == (revenue, average)
    assert sum(s.count for s in reply.orders_by_status) == len(orders)


async def test_a_registration_through_auth_counts_as_a_new_user(
    analytics, admin, auth_channel
) -> None:
    began = datetime.now(UTC)
    auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
    await auth.Register(
        auth_pb2.RegisterRequest(email=unique_email("new"), password="long enough pw", name="N")
    )
    request = pb.GetSalesSummaryRequest(**span(began, began + timedelta(hours=1)))

    # The event travels auth -> NATS -> orders: poll until it is in, within a deadline.
    async def counted() -> pb.GetSalesSummaryResponse | None:
        reply = await analytics.GetSalesSummary(request, metadata=admin)
        return reply if reply.new_user_count >= 1 else None

    reply = await eventually(counted, what="the registration in orders' analytics")
    assert reply.new_user_count == 1


# --- validation and access ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        (pb.GetSalesReportRequest(interval="year"), {"interval"}),
        (pb.GetSalesReportRequest(interval="Day"), {"interval"}),
        (pb.GetSalesReportRequest(**span(utc(2001, 1, 2), utc(2001, 1, 1))), {"from"}),
        (pb.GetSalesReportRequest(**span(utc(2001, 1, 1), utc(2001, 1, 1))), {"from"}),
        (pb.GetSalesReportRequest(from_time=Timestamp(seconds=-62_135_596_801)), {"from"}),
        (pb.GetSalesReportRequest(to_time=Timestamp(seconds=0, nanos=-1)), {"to"}),
        (
            pb.GetSalesReportRequest(interval="hour", from_time=ts(datetime.now(UTC) + DAY)),
            {"from", "interval"},
        ),
        (pb.GetTopProductsRequest(limit=101), {"limit"}),
        (pb.GetTopProductsRequest(limit=-1), {"limit"}),
        (
            pb.GetTopProductsRequest(limit=1000, **span(utc(2001, 1, 2), utc(2001, 1, 1))),
            {"from", "limit"},
        ),
        (pb.GetSalesSummaryRequest(to_time=Timestamp(seconds=253_402_300_800)), {"to"}),
        (pb.GetSalesSummaryRequest(from_time=ts(datetime.now(UTC) + DAY)), {"from"}),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_fields(
    analytics, admin, request_, fields
) -> None:
    call = getattr(analytics, type(request_).__name__.removesuffix("Request"))
    error = await rpc_error(call(request_, metadata=admin))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(error)) == fields


async def test_only_admins_see_analytics(analytics, customer) -> None:
    requests: list[tuple[str, Any]] = [
        ("GetSalesReport", pb.GetSalesReportRequest(interval="bad")),
        ("GetTopProducts", pb.GetTopProductsRequest(limit=-1)),
        ("GetSalesSummary", pb.GetSalesSummaryRequest()),
    ]
    for method, request in requests:
        call = getattr(analytics, method)
        assert (await rpc_error(call(request))).code() == grpc.StatusCode.UNAUTHENTICATED
        denied = await rpc_error(call(request, metadata=customer))
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED


# --- REST through Envoy --------------------------------------------------------------------


async def test_rest_routes_take_from_and_to_and_print_int64_as_strings(
    api, admin, customer, add_order, year
) -> None:
    start, product = utc(year, 8, 3), uuid.uuid4()
    add_order(start + timedelta(hours=1), "PAID", lines=[(product, "Kettle", 3, 500)])
    add_order(start + timedelta(hours=2), "PENDING_PAYMENT", 700)
    headers = dict(admin)
    window = {"from": rfc3339(start), "to": rfc3339(start + 2 * DAY)}

    sales = await api.get(
        "/api/admin/analytics/sales", params={**window, "interval": "day"}, headers=headers
    )
    assert sales.status_code == 200, sales.text
    assert sales.json() == {
        "buckets": [
            {"start": rfc3339(start), "revenue_cents": "1500", "order_count": 1},
            {"start": rfc3339(start + DAY), "revenue_cents": "0", "order_count": 0},
        ],
        "currency": "USD",
    }
    # The proto field names bind too.
    by_field = {"from_time": window["from"], "to_time": window["to"]}
    same = await api.get("/api/admin/analytics/sales", params=by_field, headers=headers)
    assert same.json() == sales.json()

    top = await api.get("/api/admin/analytics/top-products", params=window, headers=headers)
    assert top.status_code == 200, top.text
    assert top.json() == {
        "products": [
            {"product_id": str(product), "name": "Kettle", "quantity": "3", "revenue_cents": "1500"}
        ],
        "currency": "USD",
    }

    summary = await api.get("/api/admin/analytics/summary", params=window, headers=headers)
    assert summary.status_code == 200, summary.text
    body = summary.json()
    assert isinstance(body.pop("low_stock_count"), int)
    assert body == {
        "revenue_cents": "1500",
        "currency": "USD",
        "orders_by_status": [
            {"status": "ORDER_STATUS_PENDING_PAYMENT", "count": 1},
            {"status": "ORDER_STATUS_PAID", "count": 1},
        ],
        "average_order_value_cents": "1500",
        "new_user_count": 0,
    }

    for path, params, field in [
        ("sales", {**window, "interval": "fortnight"}, "interval"),
        ("sales", {"from": window["to"], "to": window["from"]}, "from"),
        ("top-products", {**window, "limit": "101"}, "limit"),
        ("summary", {"from": rfc3339(datetime.now(UTC) + DAY)}, "from"),
    ]:
        bad = await api.get(f"/api/admin/analytics/{path}", params=params, headers=headers)
        assert bad.status_code == 400, bad.text
        [detail] = bad.json()["details"]
        assert [v["field"] for v in detail["field_violations"]] == [field]

    for path in ("sales", "top-products", "summary"):
        assert (await api.get(f"/api/admin/analytics/{path}")).status_code == 401
        forbidden = await api.get(f"/api/admin/analytics/{path}", headers=dict(customer))
        assert forbidden.status_code == 403
