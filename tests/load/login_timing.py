"""Does a failed login take the same time for an unknown email as for a wrong password?

Run against the local stack (`make dev` in another terminal):

    .venv/bin/python tests/load/login_timing.py [--url http://127.0.0.1:8080] [--rounds 60]

Prints the latency distribution of both failures, interleaved so that load drift hits both
alike. Bounded: 2 x rounds requests to loopback, then it stops.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import httpx


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    if not args.url.startswith(("http://127.", "http://localhost")):
        raise SystemExit("load tests target loopback only")

    email = f"timing-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=args.url, timeout=10, trust_env=False) as client:
        client.post(
            "/api/auth/register", json={"email": email, "password": "right password", "name": "T"}
        ).raise_for_status()
        timings: dict[str, list[float]] = {"wrong password": [], "unknown email": []}
        for _ in range(args.rounds):
            for label, body in (
                ("wrong password", {"email": email, "password": "wrong password"}),
                ("unknown email", {"email": f"x{uuid.uuid4().hex}@example.com", "password": "p"}),
            ):
                started = time.perf_counter()
                response = client.post("/api/auth/login", json=body)
                timings[label].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 401, response.text

    print(f"{'case':<16} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for label, values in timings.items():
        print(
            f"{label:<16} {len(values):>4} {statistics.median(values):>8.2f} "
            f"{percentile(values, 0.95):>8.2f} {statistics.fmean(values):>8.2f}"
        )


if __name__ == "__main__":
    main()
