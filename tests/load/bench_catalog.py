"""How fast are catalog reads through Envoy, next to a trivial RPC through the same Envoy?

    .venv/bin/python tests/load/bench_catalog.py [--products 50000] [--duration 10] \
        [--connections 32]

Starts its own throw-away local stack on free loopback ports, seeds the sample catalog, warms
the cache (one request per URL), then runs `wrk -t1 -c<connections> -d<duration>s --latency`
against each case in turn and prints req/s, p50/p95/p99 and the ratio to the baseline. The
figures come from a Lua `done()` callback (wrk's own text has no p95). Needs wrk (Debian
package `wrk`). Bounded: about (cases x duration) plus start-up; stops the stack at the end
and on Ctrl-C. Compare runs made on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from urllib.parse import quote

import httpx
import psycopg
from catalog_service.seed import SeedSummary, seed_catalog
from ecom_runtime.db import create_engine
from ecom_stack.procs import StackError
from ecom_stack.stack import LocalStack

# One script for every case, so each pays the same Lua cost. `paths` rotate; with `counter`
# the path gets a growing number appended, so every request is a new cache key (a miss).
LUA = """
local paths = {%(paths)s}
local counter = %(counter)s
local i = 0
request = function()
  i = i + 1
  local path = paths[(i - 1) %% #paths + 1]
  if counter then path = path .. tostring(100000 + i) end
  return wrk.format("GET", path)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%d\\n", summary.requests,
    summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


@dataclass
class Case:
    label: str
    paths: list[str]
    counter: bool = False  # append a growing number to defeat the cache


@dataclass
class Result:
    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def machine_facts() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        models = [
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line
        ]
        cpu = models[0].split(":", 1)[1].strip() if models else cpu
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}), load average before the run {load}, {platform.system()}"
    )


def seed(stack: LocalStack, products: int) -> SeedSummary:
    async def run() -> SeedSummary:
        engine = create_engine(stack.database_url, pool_size=1)
        try:
            return await seed_catalog(engine, products, redis_url=stack.redis_url)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cases(stack: LocalStack, department: uuid.UUID, query: str) -> list[Case]:
    with psycopg.connect(stack.postgres_dsn) as conn:
        ids = [
            str(row[0])
            for row in conn.execute(
                "SELECT id FROM catalog.products WHERE active AND deleted_at IS NULL"
                " ORDER BY id LIMIT 1000"
            )
        ]
    listing = (
        f"/api/products?category_id={department}&min_price_cents=1000"
        "&sort=price_asc&page_size=20&max_price_cents="
    )
    search = f"/api/products/search?q={quote(query)}&page_size=20&max_price_cents="
    return [
        Case("GET /.well-known/jwks.json (baseline)", ["/.well-known/jwks.json"]),
        Case("GET /api/products/{id}, one id", [f"/api/products/{ids[0]}"]),
        Case(f"GET /api/products/{{id}}, {len(ids)} ids", [f"/api/products/{i}" for i in ids]),
        Case("GET /api/products?category_id=dept&price&sort", [listing + "50000"]),
        Case("  same, each request a cache miss", [listing], counter=True),
        Case(f"GET /api/products/search?q={query}", [search + "50000"]),
        Case("  same, each request a cache miss", [search], counter=True),
    ]


def check_and_warm(client: httpx.Client, case: Case) -> None:
    """Every URL must answer 200 (abort with the body otherwise); one request each warms it."""
    for path in [p + "100001" for p in case.paths] if case.counter else case.paths:
        response = client.get(path)
        if response.status_code != 200:
            raise SystemExit(f"{path} -> {response.status_code}: {response.text[:2000]}")


def run_wrk(url: str, case: Case, args: argparse.Namespace, workdir: Path) -> Result:
    script = workdir / "bench.lua"
    paths = ", ".join(f'"{p}"' for p in case.paths)
    script.write_text(LUA % {"paths": paths, "counter": "true" if case.counter else "false"})
    argv = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    done = subprocess.run(
        [*argv, "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=args.duration + 60,
        check=False,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    requests, micros, non_2xx, socket_errors, p50, p95, p99 = map(int, line.split()[1:])
    return Result(
        requests,
        requests / (micros / 1e6),
        p50 / 1e3,
        p95 / 1e3,
        p99 / 1e3,
        non_2xx,
        socket_errors,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=50000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per case")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--query", default="creme", help="search words (default: accent-free 'creme')"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk  (Debian/Ubuntu)", file=sys.stderr)
        return 2
    if args.products < 1 or not 1 <= args.duration <= 600 or not 1 <= args.connections <= 1000:
        parser.error("--products must be >= 1, --duration 1..600, --connections 1..1000")

    facts, began = machine_facts(), datetime.now(UTC)  # before our own load
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    # Not a pytest tmp dir: PostgreSQL may run as `nobody` and must traverse it (see the plugin).
    state_dir = Path(tempfile.mkdtemp(prefix="ecom-bench-"))
    stack = LocalStack(state_dir, free_ports=True, ephemeral=True)
    try:
        print(f"starting a throw-away stack in {state_dir} ...", flush=True)
        stack.start()
        print(
            f"stack ready in {stack.startup_seconds:.1f} s; seeding {args.products} products ...",
            flush=True,
        )
        summary = seed(stack, args.products)
        print(f"seeded in {summary.seconds:.1f} s", flush=True)
        with httpx.Client(base_url=stack.http_url, timeout=30, trust_env=False) as client:
            todo = cases(stack, summary.category_ids["electronics"], args.query)
            for case in todo:
                check_and_warm(client, case)
        results = []
        for case in todo:
            print(f"wrk: {case.label.strip()} ...", flush=True)
            results.append((case, run_wrk(stack.http_url, case, args, state_dir)))
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
        f"wrk -t1 -c{args.connections} -d{args.duration}s --latency, loopback, {args.products} "
        "products; ephemeral stack: PostgreSQL with fsync off and bcrypt cost 4 (reads only "
        "here, so neither should matter much); wrk shares the CPU with the stack"
    )
    baseline = results[0][1].rps
    header = f"{'path':<48} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'x base':>7}"
    print(header)
    print("-" * len(header))
    for case, r in results:
        errors = (
            f"  ({r.non_2xx} non-2xx, {r.socket_errors} socket errors)"
            if r.non_2xx or r.socket_errors
            else ""
        )
        print(
            f"{case.label:<48} {r.rps:>8,.0f} {r.p50_ms:>8.1f} {r.p95_ms:>8.1f} "
            f"{r.p99_ms:>8.1f} {r.rps / baseline:>7.2f}{errors}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
