"""Every route of the public REST contract (docs/rest-guide.md) is an annotated RPC in the protos,
and no public RPC goes unrouted. Checked against the descriptor set the edge is built from."""

from __future__ import annotations

import re

from ecom_gateway.envoy import DESCRIPTOR_PATH, load_descriptor, public_services
from google.api import annotations_pb2

# The REST contract, route by route (plus PUT /api/categories/{id}, which moves categories).
# Path variables are written {name}; any variable name matches.
API_ROUTES = """
POST /api/auth/register
POST /api/auth/login
POST /api/auth/refresh
POST /api/auth/logout
POST /api/auth/forgot-password
POST /api/auth/reset-password
GET /api/auth/me
GET /.well-known/jwks.json
POST /api/auth/api-keys
GET /api/auth/api-keys
DELETE /api/auth/api-keys/{id}
GET /api/users
GET /api/users/{id}
PUT /api/users/{id}
DELETE /api/users/{id}
GET /api/products
GET /api/products/{id}
POST /api/products
PUT /api/products/{id}
DELETE /api/products/{id}
GET /api/products/search
POST /api/products/{id}/images
GET /api/categories
GET /api/categories/{id}/products
POST /api/categories
PUT /api/categories/{id}
PUT /api/products/{id}/stock
GET /api/inventory/low-stock
GET /api/cart
POST /api/cart/items
PUT /api/cart/items/{id}
DELETE /api/cart/items/{id}
DELETE /api/cart/clear
POST /api/cart/merge
POST /api/orders/checkout
POST /api/orders/{id}/pay
GET /api/orders
GET /api/orders/{id}
PUT /api/orders/{id}/cancel
GET /api/admin/orders
PUT /api/admin/orders/{id}/status
POST /api/payments/webhook
POST /api/admin/orders/{id}/refund
GET /api/admin/analytics/sales
GET /api/admin/analytics/top-products
GET /api/admin/analytics/summary
GET /api/admin/jobs
GET /api/admin/notifications/dead-letters
POST /api/admin/notifications/dead-letters/{id}/replay
"""


def _normalize(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def annotated_routes() -> dict[tuple[str, str], str]:
    routes = {}
    for file in load_descriptor(DESCRIPTOR_PATH).file:
        for service in file.service:
            for method in service.method:
                if not method.options.HasExtension(annotations_pb2.http):
                    continue
                rule = method.options.Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern")
                key = (verb.upper(), _normalize(getattr(rule, verb)))
                routes[key] = f"{file.package}.{service.name}.{method.name}"
    return routes


def test_every_contract_route_is_an_annotated_rpc() -> None:
    expected = {tuple(line.split()) for line in API_ROUTES.strip().splitlines()}
    expected = {(verb, _normalize(path)) for verb, path in expected}
    missing = expected - set(annotated_routes())
    assert not missing, f"contract routes without an RPC: {sorted(missing)}"


def test_no_public_rpc_outside_the_contract() -> None:
    expected = {
        (verb, _normalize(path))
        for verb, path in (line.split() for line in API_ROUTES.strip().splitlines())
    }
    extra = {route: rpc for route, rpc in annotated_routes().items() if route not in expected}
    assert not extra, f"routes not in API.md: {extra}"


def test_every_public_service_is_served_by_a_known_cluster() -> None:
    clusters = {s.cluster for s in public_services(load_descriptor(DESCRIPTOR_PATH))}
    assert clusters == {"auth", "catalog", "cart", "orders", "payments", "notifications"}
