"""Does checkout traffic hurt browsing? Catalog browsing through Envoy, alone and while stock is
reserved and released at a steady rate, as checkouts do.

    .venv/bin/python tests/load/bench_browse_under_checkout.py [--products 5000] \
        [--duration 10] [--connections 32] [--reservations-per-second 50]

Starts its own throw-away stack on free loopback ports, seeds the sample catalog, then runs
`wrk` over a rotation of product pages, list pages and searches twice: once alone, once while
a second thread reserves one unit of a browsed product and releases it again, at the given
rate, through CatalogInternalService (what the orders service's checkout calls). Prints req/s
and latency percentiles of the browsing for both runs and the reservations made. Bounded:
two runs of `--duration` seconds plus start-up; stops the stack at the end and on Ctrl-C.
Compare runs made on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import signal
import sys
import tempfile
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import grpc
import httpx
import psycopg
from bench_catalog import Case, _interrupt, check_and_warm, machine_facts, run_wrk, seed
from ecom_stack.procs import StackError
from ecom_stack.stack import LocalStack
from ecommerce.catalog.v1 import catalog_pb2 as pb
from ecommerce.catalog.v1 import catalog_pb2_grpc


def browsing(stack: LocalStack, department: uuid.UUID) -> tuple[Case, list[str]]:
    with psycopg.connect(stack.postgres_dsn) as conn:
        ids = [
            str(row[0])
            for row in conn.execute(
                "SELECT id FROM catalog.products WHERE active AND deleted_at IS NULL"
                " AND on_hand > 100 ORDER BY id LIMIT 200"
            )
        ]
    paths = [f"/api/products/{i}" for i in ids]
    paths += [f"/api/products?page_size=20&sort={s}" for s in ("newest", "price_asc", "name")]
    paths += [f"/api/products?category_id={department}&in_stock=true&page_size=20"]
    paths += [f"/api/products/search?q={q}&page_size=20" for q in ("mug", "lamp", "creme")]
    return Case("browse: 200 products, 4 lists, 3 searches", paths), ids


class Checkouts(threading.Thread):
    """Reserves one unit of a random product and releases it, `rate` times a second."""

    def __init__(self, address: str, credential: str, product_ids: list[str], rate: float):
        super().__init__(daemon=True)
        self._address, self._credential, self._ids, self._rate = (
            address,
            credential,
            product_ids,
            rate,
        )
        self._stopping = threading.Event()
        self.done = 0

    def run(self) -> None:
        asyncio.run(self._loop())

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=30)

    async def _loop(self) -> None:
        metadata = (("x-service-credential", self._credential),)
        async with grpc.aio.insecure_channel(self._address) as channel:
            stub = catalog_pb2_grpc.CatalogInternalServiceStub(channel)
            while not self._stopping.is_set():
                rid = str(uuid.uuid4())
                item = pb.ReservationItem(product_id=random.choice(self._ids), quantity=1)
                await stub.ReserveStock(
                    pb.ReserveStockRequest(reservation_id=rid, items=[item]),
                    metadata=metadata,
                    timeout=10,
                )
                await stub.ReleaseReservation(
                    pb.ReleaseReservationRequest(reservation_id=rid), metadata=metadata, timeout=10
                )
                self.done += 1
                await asyncio.sleep(1 / self._rate)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--reservations-per-second", type=float, default=50.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk  (Debian/Ubuntu)", file=sys.stderr)
        return 2
    if not 1 <= args.duration <= 600 or not 0 < args.reservations_per_second <= 1000:
        parser.error("--duration 1..600, --reservations-per-second 0..1000")

    facts, began = machine_facts(), datetime.now(UTC)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    state_dir = Path(tempfile.mkdtemp(prefix="ecom-bench-"))
    stack = LocalStack(state_dir, free_ports=True, ephemeral=True)
    results = []
    try:
        print(f"starting a throw-away stack in {state_dir} ...", flush=True)
        stack.start()
        summary = seed(stack, args.products)
        case, ids = browsing(stack, summary.category_ids["electronics"])
        with httpx.Client(base_url=stack.http_url, timeout=30, trust_env=False) as client:
            check_and_warm(client, case)
        print("wrk: browsing alone ...", flush=True)
        results.append(("browsing alone", run_wrk(stack.http_url, case, args, state_dir), 0))
        checkouts = Checkouts(
            stack.grpc_addrs["catalog"],
            getattr(stack, "service_credential", ""),  # none before credentials existed
            ids,
            args.reservations_per_second,
        )
        checkouts.start()
        print("wrk: browsing while stock is reserved and released ...", flush=True)
        busy = run_wrk(stack.http_url, case, args, state_dir)
        checkouts.stop()
        results.append(("browsing during checkouts", busy, checkouts.done))
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

    print()
    print(f"date: {began:%Y-%m-%d %H:%M} UTC; machine: {facts}")
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration}s, loopback, {args.products} products; "
        f"checkout stand-in: reserve + release 1 unit, target {args.reservations_per_second:g}/s"
    )
    header = (
        f"{'run':<28} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'reservations':>13}"
    )
    print(header)
    print("-" * len(header))
    for label, r, reservations in results:
        print(
            f"{label:<28} {r.rps:>8,.0f} {r.p50_ms:>8.1f} {r.p95_ms:>8.1f} {r.p99_ms:>8.1f} "
            f"{reservations:>13,}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
