"""How fast are the admin analytics over a year of orders?

    .venv/bin/python tests/load/bench_analytics.py [--orders 100000] [--repeat 20]

Starts its own throw-away stack (auth, catalog and orders, no edge) on free loopback ports,
seeds `--orders` orders over the last 365 days straight into PostgreSQL (1 to 4 lines each,
2.5 on average, over 2,000 products; mixed statuses, 65 % of them counted as revenue) and
20,000 registrations, runs ANALYZE, then calls each AnalyticsService RPC over gRPC as an admin:
once to warm up, then `--repeat` times one after another, and prints p50/p95/max latency per
case with the date and the machine. Bounded: seeding takes seconds, each case `--repeat` calls;
stops the stack at the end and on Ctrl-C. Compare runs made on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg
from bench_catalog import _interrupt, machine_facts
from ecom_stack.procs import StackError
from ecom_stack.stack import LocalStack
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
from ecommerce.orders.v1 import orders_pb2 as pb
from ecommerce.orders.v1 import orders_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

ADMIN_EMAIL, ADMIN_PASSWORD = "bench-admin@example.com", "bench-admin-password"
PRODUCTS = 2_000
REGISTRATIONS = 20_000
# Weights out of 20: PAID 4, FULFILLED 4, DELIVERED 5 (revenue: 13/20 = 65 %), the rest 7.
STATUSES = ["PAID"] * 4 + ["FULFILLED"] * 4 + ["DELIVERED"] * 5
STATUSES += ["PENDING_PAYMENT", "PAYMENT_FAILED"] * 2 + ["CANCELLED"] * 2 + ["REFUNDED"]

# Lines are a function of (order n, position j), so the orders' subtotals match their lines.
SEED = [
    """
    CREATE TEMP TABLE seed_lines AS
    SELECT n, j, p, 199 + (p * 37) %% 9800 AS price, 1 + (n + j) %% 3 AS qty
    FROM generate_series(1, %(orders)s) n
    CROSS JOIN LATERAL generate_series(1, 1 + n %% 4) j
    CROSS JOIN LATERAL (SELECT abs(hashint4(n * 4 + j)) %% %(products)s AS p) a
    """,
    """
    INSERT INTO orders.orders (id, number, user_id, status, currency, subtotal_cents, tax_cents,
        shipping_cents, total_cents, shipping_address, expires_at, created_at, updated_at)
    SELECT md5('order' || n)::uuid, 'BENCH-' || n, md5('user' || n %% 20000)::uuid, status,
        'USD', subtotal, 0, 599, subtotal + 599, '{}', t + interval '15 minutes', t, t
    FROM (
        SELECT n, sum(price * qty) AS subtotal, now() - random() * interval '365 days' AS t,
            (%(statuses)s::text[])[1 + floor(random() * 20)::int] AS status
        FROM seed_lines GROUP BY n
    ) o
    """,
    """
    INSERT INTO orders.order_items (order_id, position, product_id, name, unit_price_cents,
        quantity, line_total_cents)
    SELECT md5('order' || n)::uuid, j, md5('product' || p)::uuid, 'Product ' || p, price, qty,
        price * qty
    FROM seed_lines
    """,
    """
    INSERT INTO orders.registrations (user_id, registered_at)
    SELECT md5('registered' || n)::uuid, now() - random() * interval '365 days'
    FROM generate_series(1, %(registrations)s) n
    """,
]


@dataclass
class Case:
    label: str
    call: Callable[[Any], Any]  # metadata -> awaitable reply


def timestamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def seed(stack: LocalStack, orders: int) -> tuple[float, int]:
    """Seeds and analyzes; returns the seconds it took and the order lines made."""
    began = time.monotonic()
    params = {
        "orders": orders,
        "products": PRODUCTS,
        "statuses": STATUSES,
        "registrations": REGISTRATIONS,
    }
    with psycopg.connect(stack.postgres_dsn) as conn:
        for statement in SEED:
            conn.execute(statement, params)  # type: ignore[call-overload]
        [(lines,)] = conn.execute("SELECT count(*) FROM seed_lines").fetchall()
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE orders.orders, orders.order_items, orders.registrations")
    return time.monotonic() - began, lines


def cases(stub: orders_pb2_grpc.AnalyticsServiceStub) -> list[Case]:
    now = datetime.now(UTC)
    year = {"from_time": timestamp(now - timedelta(days=365)), "to_time": timestamp(now)}
    month = {"from_time": timestamp(now - timedelta(days=30)), "to_time": timestamp(now)}

    def sales(interval: str) -> Callable[[Any], Any]:
        request = pb.GetSalesReportRequest(interval=interval, **year)
        return lambda md: stub.GetSalesReport(request, metadata=md)

    def top(limit: int) -> Callable[[Any], Any]:
        request = pb.GetTopProductsRequest(limit=limit, **year)
        return lambda md: stub.GetTopProducts(request, metadata=md)

    def summary(span: dict[str, Timestamp]) -> Callable[[Any], Any]:
        request = pb.GetSalesSummaryRequest(**span)
        return lambda md: stub.GetSalesSummary(request, metadata=md)

    return [
        Case("GetSalesReport, 365 days by day", sales("day")),
        Case("GetSalesReport, 365 days by week", sales("week")),
        Case("GetSalesReport, 365 days by month", sales("month")),
        Case("GetTopProducts, 365 days, limit 10", top(10)),
        Case("GetTopProducts, 365 days, limit 100", top(100)),
        Case("GetSalesSummary, 30 days", summary(month)),
        Case("GetSalesSummary, 365 days", summary(year)),
    ]


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest rank."""
    return sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)]


async def measure(stack: LocalStack, repeat: int) -> list[tuple[str, list[float]]]:
    async with grpc.aio.insecure_channel(stack.grpc_addrs["auth"]) as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        login = auth_pb2.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD)
        session = await auth.Login(login, timeout=10)
    metadata = (("authorization", f"Bearer {session.access_token}"),)
    results = []
    async with grpc.aio.insecure_channel(stack.grpc_addrs["orders"]) as channel:
        for case in cases(orders_pb2_grpc.AnalyticsServiceStub(channel)):
            await case.call(metadata)  # warm-up: connection, plan, buffers
            timings = []
            for _ in range(repeat):
                began = time.perf_counter()
                await case.call(metadata)
                timings.append((time.perf_counter() - began) * 1000)
            results.append((case.label, sorted(timings)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per case")
    args = parser.parse_args()
    if not 1 <= args.orders <= 2_000_000 or not 1 <= args.repeat <= 1000:
        parser.error("--orders must be 1..2000000, --repeat 1..1000")

    facts, began = machine_facts(), datetime.now(UTC)  # before our own load
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    # Not a pytest tmp dir: PostgreSQL may run as `nobody` and must traverse it (see the plugin).
    state_dir = Path(tempfile.mkdtemp(prefix="ecom-bench-"))
    stack = LocalStack(
        state_dir,
        free_ports=True,
        ephemeral=True,
        services=("auth", "catalog", "orders"),
        edge=False,
        extra_env={"AUTH_ADMIN_EMAIL": ADMIN_EMAIL, "AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    try:
        print(f"starting a throw-away stack in {state_dir} ...", flush=True)
        stack.start()
        print(
            f"stack ready in {stack.startup_seconds:.1f} s; seeding {args.orders} orders ...",
            flush=True,
        )
        seconds, lines = seed(stack, args.orders)
        print(f"seeded {lines} order lines in {seconds:.1f} s (with ANALYZE)", flush=True)
        results = asyncio.run(measure(stack, args.repeat))
    except StackError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let stop() finish
        stack.stop()
        shutil.rmtree(state_dir, ignore_errors=True)

    print()
    print(f"date: {began:%Y-%m-%d %H:%M} UTC; machine: {facts}")
    print(
        f"{args.orders} orders ({lines} lines, {PRODUCTS} products) over 365 days, "
        f"{REGISTRATIONS} registrations; gRPC straight to orders as an admin, one call at a "
        f"time, {args.repeat} timed calls per case after one warm-up; ephemeral stack "
        "(PostgreSQL with fsync off: reads only here, so it should not matter)"
    )
    header = f"{'case':<40} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}"
    print(header)
    print("-" * len(header))
    for label, ms in results:
        print(
            f"{label:<40} {percentile(ms, 0.5):>8.1f} {percentile(ms, 0.95):>8.1f} {ms[-1]:>8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
