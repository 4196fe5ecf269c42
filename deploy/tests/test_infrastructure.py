"""The plugin's session stack: every infrastructure server answers a real request."""

import mailbox
import smtplib
import socket
import time
from email.message import EmailMessage

import httpx
import psutil
import psycopg
from ecom_stack import LocalStack


def test_postgres_answers_sql_and_is_tuned_for_tests(stack: LocalStack) -> None:
    with psycopg.connect(stack.postgres_dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SHOW fsync").fetchone() == ("off",)
        assert conn.execute("SELECT current_database()").fetchone() == ("ecommerce",)
        assert conn.execute("SELECT upper('crème')").fetchone() == ("CRÈME",)


def test_redis_pongs(stack: LocalStack) -> None:
    with socket.create_connection((stack.smtp_host, stack.ports.redis), timeout=2) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(16) == b"+PONG\r\n"


def test_nats_has_jetstream(stack: LocalStack) -> None:
    url = f"{stack.nats_monitor_url}/healthz?js-enabled-only=true"
    assert httpx.get(url, trust_env=False).json() == {"status": "ok"}


def test_local_stripe_lists_customers(stack: LocalStack) -> None:
    response = httpx.get(
        f"{stack.stripe_url}/v1/customers",
        headers={"Authorization": "Bearer sk_test_x"},
        trust_env=False,
    )
    assert response.status_code == 200
    assert response.json()["object"] == "list"


def test_moto_s3_api(stack: LocalStack) -> None:
    assert httpx.get(f"{stack.s3_url}/moto-api/", trust_env=False).status_code == 200


def test_smtp_mail_lands_in_maildir(stack: LocalStack) -> None:
    message = EmailMessage()
    message["From"] = "shop@example.com"
    message["To"] = "buyer@example.com"
    message["Subject"] = "Order confirmed"
    message.set_content("Thanks!")
    with smtplib.SMTP(stack.smtp_host, stack.smtp_port, timeout=5) as smtp:
        smtp.send_message(message)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        subjects = [m["Subject"] for m in mailbox.Maildir(stack.maildir, create=False)]
        if "Order confirmed" in subjects:
            return
        time.sleep(0.05)
    raise AssertionError(f"no mail in {stack.maildir}: {subjects}")


def test_every_server_listens_on_loopback_only(stack: LocalStack) -> None:
    procs = [psutil.Process(pid) for pid in stack.pids().values()]
    procs += [child for proc in procs for child in proc.children(recursive=True)]
    listening = [
        conn.laddr
        for proc in procs
        for conn in proc.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert len(listening) >= 7  # postgres, redis, nats x2, stripe, s3, smtp
    assert {addr.ip for addr in listening} == {"127.0.0.1"}


def test_service_env(stack: LocalStack) -> None:
    env = stack.service_env()
    assert env["DATABASE_URL"] == (
        f"postgresql+psycopg://postgres@127.0.0.1:{stack.ports.postgres}/ecommerce"
    )
    assert env["REDIS_URL"] == f"redis://127.0.0.1:{stack.ports.redis}/0"
    assert env["NATS_URL"] == f"nats://127.0.0.1:{stack.ports.nats}"
    assert env["ORDERS_GRPC_ADDR"] == f"127.0.0.1:{stack.ports.orders}"
    assert env["STRIPE_API_BASE"] == stack.stripe_url
    assert env["STRIPE_WEBHOOK_SECRET"] == stack.stripe_webhook_secret  # made per stack
    assert env["S3_ENDPOINT_URL"] == stack.s3_url
    assert env["SMTP_PORT"] == str(stack.smtp_port)
    assert env["AUTH_BCRYPT_COST"] == "4"  # ephemeral only
    assert env["AUTH_JWT_PRIVATE_KEY_FILE"].startswith(str(stack.state_dir))
    assert len(set(stack.ports.__dict__.values())) == 16  # all distinct


def test_redis_has_a_memory_cap_and_evicts_least_recently_used(stack: LocalStack) -> None:
    # The catalog's cache entries are disposable: full Redis must evict, never refuse writes.
    import redis

    client = redis.Redis.from_url(stack.redis_url, socket_timeout=2)
    try:
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}
        assert int(client.config_get("maxmemory")["maxmemory"]) == 256 * 1024 * 1024
    finally:
        client.close()
