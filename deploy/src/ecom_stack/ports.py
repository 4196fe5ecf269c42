"""Ports of the local stack: fixed dev defaults (each overridable by env var) or free ones.

| port               | default | env var                    |
|--------------------|---------|----------------------------|
| Envoy HTTP         | 8080    | `STACK_HTTP_PORT`          |
| Envoy admin        | 9901    | `STACK_ADMIN_PORT`         |
| PostgreSQL         | 5432    | `STACK_POSTGRES_PORT`      |
| Redis              | 6379    | `STACK_REDIS_PORT`         |
| NATS               | 4222    | `STACK_NATS_PORT`          |
| NATS monitor       | 8222    | `STACK_NATS_MONITOR_PORT`  |
| local Stripe       | 8420    | `STACK_STRIPE_PORT`        |
| S3 (moto)          | 5000    | `STACK_S3_PORT`            |
| SMTP sink          | 1025    | `STACK_SMTP_PORT`          |
| auth gRPC          | 50051   | `STACK_AUTH_PORT`          |
| catalog gRPC       | 50052   | `STACK_CATALOG_PORT`       |
| cart gRPC          | 50053   | `STACK_CART_PORT`          |
| orders gRPC        | 50054   | `STACK_ORDERS_PORT`        |
| payments gRPC      | 50055   | `STACK_PAYMENTS_PORT`      |
| notifications gRPC | 50056   | `STACK_NOTIFICATIONS_PORT` |
| rate-limit gRPC    | 50057   | `STACK_RATELIMIT_PORT`     |

The env vars apply to the dev ports only; free ports are picked by the kernel.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping

HOST = "127.0.0.1"

# field name -> (dev default, human label)
DEFAULTS: dict[str, tuple[int, str]] = {
    "http": (8080, "Envoy HTTP"),
    "admin": (9901, "Envoy admin"),
    "postgres": (5432, "PostgreSQL"),
    "redis": (6379, "Redis"),
    "nats": (4222, "NATS"),
    "nats_monitor": (8222, "NATS monitor"),
    "stripe": (8420, "local Stripe"),
    "s3": (5000, "S3 (moto)"),
    "smtp": (1025, "SMTP sink"),
    "auth": (50051, "auth gRPC"),
    "catalog": (50052, "catalog gRPC"),
    "cart": (50053, "cart gRPC"),
    "orders": (50054, "orders gRPC"),
    "payments": (50055, "payments gRPC"),
    "notifications": (50056, "notifications gRPC"),
    "ratelimit": (50057, "rate-limit gRPC"),
}


def env_var(field: str) -> str:
    """The env var overriding a dev port, e.g. `postgres` -> `STACK_POSTGRES_PORT`."""
    return f"STACK_{field.upper()}_PORT"


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that are free on 127.0.0.1 right now.

    All sockets stay open until every port is chosen so the kernel cannot hand out one twice.
    """
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_is_free(port: int) -> bool:
    """True if a server could bind 127.0.0.1:port now (SO_REUSEADDR, like the servers do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


@dataclasses.dataclass(frozen=True)
class Ports:
    http: int
    admin: int
    postgres: int
    redis: int
    nats: int
    nats_monitor: int
    stripe: int
    s3: int
    smtp: int
    auth: int
    catalog: int
    cart: int
    orders: int
    payments: int
    notifications: int
    ratelimit: int

    @classmethod
    def dev(cls, environ: Mapping[str, str] = os.environ) -> Ports:
        """The fixed dev ports, each overridable by its `STACK_*_PORT` env var."""
        values: dict[str, int] = {}
        for field, (default, _label) in DEFAULTS.items():
            raw = environ.get(env_var(field), "").strip()
            if not raw:
                values[field] = default
                continue
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise ValueError(f"{env_var(field)}={raw!r} is not a port number")
            values[field] = int(raw)
        return cls(**values)

    @classmethod
    def free(cls) -> Ports:
        return cls(*free_ports(len(DEFAULTS)))

    def busy(self) -> list[str]:
        """One line per port already taken, naming the env var that moves it."""
        return [
            f"port {port} ({DEFAULTS[field][1]}) is already in use on {HOST}; "
            f"set {env_var(field)} to use another"
            for field, port in dataclasses.asdict(self).items()
            if not port_is_free(port)
        ]
