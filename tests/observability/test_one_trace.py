"""One request, one trace: a checkout through the edge is a single trace from Envoy through
orders, cart, catalog and payments, their SQL and Redis calls, down to the event it publishes
and the notifications service applying it; and the services export RED metrics per RPC and
their outbox backlog. Against a stack of its own that exports to our OTLP receiver."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from ecom_stack.stack import LocalStack

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, tag, unique_email, wait_for
from tests.observability.otlp_receiver import OtlpReceiver, Point, Span, render

ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}
CHECKOUT = "/ecommerce.orders.v1.OrderService/Checkout"
PASSWORD = "long enough pw"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def traced_stack(receiver: OtlpReceiver) -> Iterator[LocalStack]:
    state_dir = Path(tempfile.mkdtemp(prefix="ecom-traced-"))
    env = {
        "AUTH_ADMIN_EMAIL": ADMIN_EMAIL,
        "AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        # Export often, so the test waits seconds rather than the default minute.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    }
    stack = LocalStack(state_dir, free_ports=True, ephemeral=True, extra_env=env)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def api(traced_stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=traced_stack.http_url, timeout=20, trust_env=False) as client:
        yield client


def bearer(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@dataclass(frozen=True)
class Placed:
    order: dict
    users: list[dict[str, str]]  # the Authorization headers used, the admin's and the customer's


@pytest.fixture(scope="module")
def checkout(api: httpx.Client) -> Placed:
    """A customer checks out one product."""
    admin = bearer(
        api.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    )
    product = api.post(
        "/api/products",
        headers=admin,
        json={"sku": f"TRACE-{tag()}", "name": "Traced mug", "price_cents": 1250, "stock": 5},
    ).json()
    user = bearer(
        api.post(
            "/api/auth/register",
            json={"email": unique_email("traced"), "password": PASSWORD, "name": "Tia"},
        )
    )
    added = api.post(
        "/api/cart/items", headers=user, json={"product_id": product["id"], "quantity": 2}
    )
    assert added.status_code == 200, added.text
    placed = api.post(
        "/api/orders/checkout",
        headers={**user, "Idempotency-Key": str(uuid.uuid4())},
        json={"shipping_address": ADDRESS},
    )
    assert placed.status_code == 200, placed.text
    return Placed(placed.json()["order"], [admin, user])


def checkout_trace(receiver: OtlpReceiver) -> list[Span]:
    """Every span of the trace holding orders' Checkout span (empty until it arrives)."""
    spans = receiver.spans()
    ids = {s.trace_id for s in spans if s.service == "orders" and s.name == CHECKOUT}
    assert len(ids) <= 1, "one checkout, one trace"
    return [s for s in spans if s.trace_id in ids]


def complete(spans: list[Span]) -> bool:
    """The checkout's trace down to notifications applying the order_created event."""
    return any(s.service == "notifications" and s.kind == "CONSUMER" for s in spans) and any(
        s.service == "edge" and not s.parent_id for s in spans
    )


def test_a_checkout_is_one_trace_from_the_edge_to_the_event_consumer(receiver, checkout):
    spans = wait_for(
        lambda: (found := checkout_trace(receiver)) and complete(found) and found,
        "the checkout's spans from the edge to notifications",
        timeout=30,
    )
    by_id = {s.span_id: s for s in spans}

    def parent(span: Span) -> Span:
        assert span.parent_id in by_id, f"{span.service} {span.name}: parent not in the trace"
        return by_id[span.parent_id]

    # Envoy started the trace: its server span is the only root, and every span hangs below it.
    roots = [s for s in spans if not s.parent_id]
    assert [(s.service, s.kind) for s in roots] == [("edge", "SERVER")], render(spans)
    assert "/api/orders/checkout" in str(roots[0].attributes.get("http.url", ""))
    for span in spans:
        if span.parent_id:
            parent(span)

    # The edge calls orders; orders calls cart, catalog and payments, each over gRPC: every
    # service's span hangs below its caller's client span.
    (checkout,) = [s for s in spans if s.name == CHECKOUT]
    assert parent(checkout).service == "edge" and parent(parent(checkout)) == roots[0]
    calls = {
        (parent(s).service, s.service)
        for s in spans
        if s.kind == "SERVER" and s.service != "edge" and parent(s).kind == "CLIENT"
    }
    assert {("orders", "cart"), ("orders", "catalog"), ("orders", "payments")} <= calls
    assert ("edge", "ratelimit") in calls  # the edge's rate limit check, in the same trace

    # Each service's SQL runs in its own RPC's span tree; the catalog's cache is Redis.
    def services_with(system: str) -> set[str]:
        return {s.service for s in spans if s.attributes.get("db.system") == system}

    assert {"orders", "catalog", "payments"} <= services_with("postgresql")
    assert {"catalog", "ratelimit"} <= services_with("redis")
    # Payments' call to Stripe (the local stand-in) is a span of the payments RPC.
    http = {"http.method", "http.request.method"}  # the old and the new semantic conventions
    stripe = [s for s in spans if s.service == "payments" and http & set(s.attributes)]
    assert stripe and all(parent(s).service == "payments" for s in stripe)

    # NATS: orders publishes order_created from its outbox (a child of the RPC that wrote it);
    # notifications applies it as a child of that publish.
    (publish,) = [s for s in spans if s.kind == "PRODUCER" and "order_created" in s.name]
    assert publish.service == "orders"
    consumed = [s for s in spans if s.kind == "CONSUMER" and "order_created" in s.name]
    assert consumed and all(parent(c) == publish for c in consumed)
    assert {c.service for c in consumed} >= {"notifications"}


def test_no_span_carries_a_password_or_a_token(receiver, checkout) -> None:
    # Statements are recorded with placeholders, Redis commands without arguments, URLs
    # without credentials, and no request header holding a credential.
    secrets = [PASSWORD, ADMIN_PASSWORD, *(h["Authorization"].split()[1] for h in checkout.users)]
    recorded = " ".join(str(s.attributes) for s in receiver.spans())
    assert receiver.spans() and not [s for s in secrets if s in recorded]


def points(receiver: OtlpReceiver, metric: str, service: str) -> list[Point]:
    return [p for p in receiver.points() if p.metric == metric and p.service == service]


def test_services_export_red_metrics_per_rpc_and_their_outbox_backlog(receiver, checkout, api):
    def checkouts() -> list[Point]:
        return [
            p
            for p in points(receiver, "rpc.server.duration", "orders")
            if p.attributes.get("rpc.method") == "Checkout"
        ]

    # Cumulative histograms: the latest point counts every call so far, by status code.
    recorded = wait_for(checkouts, "orders' Checkout in rpc.server.duration")
    assert recorded[-1].attributes["rpc.grpc.status_code"] == 0
    assert recorded[-1].value >= 1
    assert recorded[-1].attributes["rpc.service"] == "ecommerce.orders.v1.OrderService"

    # Errors are told apart by status: a product that does not exist is NOT_FOUND (5).
    assert api.get(f"/api/products/{uuid.uuid4()}").status_code == 404
    wait_for(
        lambda: any(
            p.attributes.get("rpc.method") == "GetProduct"
            and p.attributes.get("rpc.grpc.status_code") == 5
            for p in points(receiver, "rpc.server.duration", "catalog")
        ),
        "catalog's NOT_FOUND in rpc.server.duration",
    )

    # The outbox backlog of every service with an outbox; nothing is stuck here.
    for service in ("auth", "catalog", "orders", "payments"):
        backlog = wait_for(
            lambda service=service: points(receiver, "outbox.backlog", service),
            f"{service}'s outbox.backlog",
        )
        assert backlog[-1].value >= 0
        assert points(receiver, "outbox.oldest_age", service)
