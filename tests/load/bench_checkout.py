"""How fast is checkout, and what does checkout traffic do to browsing?

    .venv/bin/python tests/load/bench_checkout.py [--products 2000] [--duration 10] \
        [--shoppers 16] [--connections 32] [--traced [PERCENT]]

Starts its own throw-away stack on free loopback ports, seeds the sample catalog (every product
given ample stock), registers `--shoppers` customers, then runs three measurements through
Envoy, each `--duration` seconds:

1. checkouts: each shopper in a loop empties its cart, adds one random product and checks out
   (`POST /api/orders/checkout`: cart, prices, stock reservation, order, Stripe PaymentIntent
   on the local Stripe server); checkouts/s and the checkout's latency percentiles;
2. browsing alone: `wrk` over 200 product pages, 4 list pages and 3 searches;
3. the same browsing while the shoppers check out as in 1.

For both browsing runs it prints req/s, p50/p99 and the catalog cache's hit rate, counted from
Redis: every cache miss stores what it built (one SET per entry), so 1 - SETs / browsing
requests is the share of requests answered from the cache (a lower bound: a page refilled for
changed stock stores the page and each refilled product). `--traced` runs the same with
OpenTelemetry on (docs/observability.md): the edge and the services export every span and
metric to an OTLP receiver in this process, which only counts them, for PERCENT of the
requests (100 if not given: the edge's sampling); compare with a run without, to see what
tracing costs. Needs wrk (Debian package `wrk`).
Bounded: three runs plus start-up; stops the stack at the end and on Ctrl-C. The shoppers'
HTTP client shares the two CPUs with the stack: compare runs made on the same machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import redis
from bench_browse_under_checkout import browsing
from bench_catalog import Result, _interrupt, check_and_warm, machine_facts, run_wrk, seed
from ecom_stack.procs import StackError
from ecom_stack.stack import LocalStack

ADDRESS = {"line1": "1 Bench Road", "city": "Berlin", "postal_code": "10115", "country": "DE"}


@dataclass
class CheckoutFigures:
    latencies: list[float] = field(default_factory=list)  # seconds, successful checkouts
    failures: dict[int, int] = field(default_factory=dict)  # status -> count
    seconds: float = 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    def line(self, label: str) -> str:
        if not self.latencies:
            return f"{label:<34} no successful checkout; failures {self.failures}"
        rate = len(self.latencies) / self.seconds
        return (
            f"{label:<34} {rate:>8,.1f} {self.percentile(50):>8.1f} {self.percentile(95):>8.1f}"
            f" {self.percentile(99):>8.1f} {statistics.fmean(self.latencies) * 1000:>8.1f}"
            f"  {len(self.latencies):>6,} ok, failed {sum(self.failures.values())}"
        )


class Shoppers(threading.Thread):
    """`tokens` shoppers checking out in a loop until stopped (their own event loop)."""

    def __init__(self, base_url: str, tokens: list[str], product_ids: list[str]) -> None:
        super().__init__(daemon=True)
        self._base_url, self._tokens, self._ids = base_url, tokens, product_ids
        self._stopping = threading.Event()
        self.figures = CheckoutFigures()

    def run(self) -> None:
        asyncio.run(self._all())

    def stop(self) -> CheckoutFigures:
        self._stopping.set()
        self.join(timeout=60)
        return self.figures

    async def _all(self) -> None:
        limits = httpx.Limits(max_connections=len(self._tokens))
        async with httpx.AsyncClient(
            base_url=self._base_url, timeout=30, trust_env=False, limits=limits
        ) as client:
            began = time.monotonic()
            await asyncio.gather(*(self._shop(client, token) for token in self._tokens))
            self.figures.seconds = time.monotonic() - began

    async def _shop(self, client: httpx.AsyncClient, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        while not self._stopping.is_set():
            await client.delete("/api/cart/clear", headers=headers)
            item = {"product_id": random.choice(self._ids), "quantity": 1}
            await client.post("/api/cart/items", headers=headers, json=item)
            started = time.monotonic()
            response = await client.post(
                "/api/orders/checkout",
                headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
                json={"shipping_address": ADDRESS},
            )
            if response.status_code == 200:
                self.figures.latencies.append(time.monotonic() - started)
            else:
                code = response.status_code
                self.figures.failures[code] = self.figures.failures.get(code, 0) + 1


def shoppers(client: httpx.Client, count: int) -> list[str]:
    tokens = []
    for _ in range(count):
        response = client.post(
            "/api/auth/register",
            json={
                "email": f"bench-{uuid.uuid4().hex[:12]}@example.com",
                "password": "bench password",
                "name": "Bench",
            },
        )
        response.raise_for_status()
        tokens.append(response.json()["access_token"])
    return tokens


def checkouts_for(stack: LocalStack, tokens: list[str], ids: list[str], seconds: int):
    crowd = Shoppers(stack.http_url, tokens, ids)
    crowd.start()
    time.sleep(seconds)  # the measurement's length, not a readiness wait
    return crowd.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--shoppers", type=int, default=16)
    parser.add_argument("--connections", type=int, default=32, help="wrk's, for browsing")
    parser.add_argument(
        "--traced", type=float, nargs="?", const=100.0, metavar="PERCENT",
        help="with OpenTelemetry exporting, PERCENT of requests traced (100)",
    )  # fmt: skip
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk  (Debian/Ubuntu)", file=sys.stderr)
        return 2
    if not 1 <= args.duration <= 600 or not 1 <= args.shoppers <= 200:
        parser.error("--duration 1..600, --shoppers 1..200")

    facts, began = machine_facts(), datetime.now(UTC)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    state_dir = Path(tempfile.mkdtemp(prefix="ecom-bench-"))
    receiver = None
    env = {}
    if args.traced is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from tests.observability.otlp_receiver import OtlpReceiver

        receiver = OtlpReceiver(keep=False)
        receiver.start()
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_TRACES_SAMPLER_ARG": str(args.traced / 100),
        }
    stack = LocalStack(state_dir, free_ports=True, ephemeral=True, extra_env=env)
    browse: list[tuple[str, Result, float]] = []
    try:
        print(f"starting a throw-away stack in {state_dir} ...", flush=True)
        stack.start()
        summary = seed(stack, args.products)
        with psycopg.connect(stack.postgres_dsn, autocommit=True) as conn:
            conn.execute("UPDATE catalog.products SET on_hand = 1000000")  # never sold out
        cache = redis.Redis.from_url(stack.redis_url)
        cache.flushdb()  # the cached stock figures changed under it
        case, ids = browsing(stack, summary.category_ids["electronics"])
        with httpx.Client(base_url=stack.http_url, timeout=30, trust_env=False) as client:
            check_and_warm(client, case)
            tokens = shoppers(client, args.shoppers)

        print("checkouts alone ...", flush=True)
        alone = checkouts_for(stack, tokens, ids, args.duration)

        def sets() -> int:
            return int(cache.info("commandstats").get("cmdstat_set", {}).get("calls", 0))

        def measured(label: str) -> None:
            before = sets()
            result = run_wrk(stack.http_url, case, args, state_dir)
            stored = sets() - before
            browse.append((label, result, 1 - stored / max(result.requests, 1)))

        print("wrk: browsing alone ...", flush=True)
        measured("browsing alone")
        crowd = Shoppers(stack.http_url, tokens, ids)
        crowd.start()
        print("wrk: browsing while the shoppers check out ...", flush=True)
        measured("browsing during checkouts")
        during = crowd.stop()
    except StackError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
        if receiver is not None:
            receiver.stop()

    print()
    print(f"date: {began:%Y-%m-%d %H:%M} UTC; machine: {facts}")
    print(
        f"{args.products} products, {args.shoppers} shoppers, {args.duration} s per run,"
        f" wrk -t1 -c{args.connections} for browsing, loopback through Envoy"
    )
    if receiver is not None:
        print(
            f"traced ({args.traced:g} % of requests): {receiver.span_count:,} spans exported"
            " to the OTLP receiver"
        )
    header = f"{'checkouts':<34} {'per s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean':>8}"
    print(header)
    print("-" * len(header))
    print(alone.line("checkouts alone"))
    print(during.line("checkouts during browsing"))
    print()
    header = f"{'browsing':<34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cache hits':>11}"
    print(header)
    print("-" * len(header))
    for label, r, hit_rate in browse:
        print(f"{label:<34} {r.rps:>8,.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {hit_rate:>10.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
