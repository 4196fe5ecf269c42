"""Integration: the edge's global rate limits through a real Envoy, the service and Redis.

Each test sends from its own loopback source address: Envoy keys the budgets by the peer IP,
so the tests do not share counters (the `edge` stack is shared by the module).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:  # the fixtures' type; pytest's importlib mode cannot import conftest
    from conftest import Edge

# As in conftest.py (Edge.auth_budget, Edge.default_budget).
AUTH_BUDGET = 100
DEFAULT_BUDGET = 20

LOGIN = "/api/auth/login"
LOGIN_BODY = {"email": "someone@example.com", "password": "not-checked"}
WEBHOOK = "/api/payments/webhook"
JWKS = "/.well-known/jwks.json"


def login(client: httpx.Client) -> httpx.Response:
    return client.post(LOGIN, json=LOGIN_BODY)


def assert_rate_limited(response: httpx.Response, limit: int, window: int) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= window
    assert response.headers["x-ratelimit-limit"].split(",")[0] == str(limit)
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert 0 <= int(response.headers["x-ratelimit-reset"]) <= window
    assert "x-envoy-ratelimited" not in response.headers  # names Envoy
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == 8  # RESOURCE_EXHAUSTED
    assert "Retry-After" in body["message"]
    [detail] = body["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert detail["reason"] == "RATE_LIMITED"


def test_budgets_match_the_stack(edge: Edge) -> None:
    assert (edge.auth_budget, edge.default_budget) == (AUTH_BUDGET, DEFAULT_BUDGET)


def test_envoy_sees_another_loopback_source_as_another_ip(edge: Edge) -> None:
    # Precondition of the per-IP tests: Envoy (bound to 127.0.0.1) accepts from 127.0.0.2.
    with edge.client("127.0.0.2") as client:
        assert client.get("/healthz").status_code == 200


def test_auth_budget_trips_at_the_101st_call_from_one_ip(edge: Edge) -> None:
    with edge.client("127.0.0.3") as client:
        first = login(client)
        # The stub backend answers UNIMPLEMENTED: the request went through the limiter.
        assert first.status_code == 501, first.text
        assert first.headers["x-ratelimit-limit"].split(",")[0] == str(AUTH_BUDGET)
        assert first.headers["x-ratelimit-remaining"] == str(AUTH_BUDGET - 1)
        for n in range(2, AUTH_BUDGET + 1):
            response = login(client)
            assert response.status_code == 501, (n, response.text)
        assert response.headers["x-ratelimit-remaining"] == "0"
        assert_rate_limited(login(client), AUTH_BUDGET, 900)
        # Every /api/auth/* route shares the budget; the JWKS is not an auth-budget route.
        assert_rate_limited(client.get("/api/auth/me"), AUTH_BUDGET, 900)
        jwks = client.get(JWKS)
        assert jwks.status_code == 501, jwks.text
        assert jwks.headers["x-ratelimit-limit"].split(",")[0] == str(DEFAULT_BUDGET)

    # Another client IP has its own budget.
    with edge.client("127.0.0.4") as other:
        response = login(other)
        assert response.status_code == 501, response.text
        assert response.headers["x-ratelimit-remaining"] == str(AUTH_BUDGET - 1)


def test_default_budget_trips_too(edge: Edge) -> None:
    with edge.client("127.0.0.5") as client:
        for n in range(DEFAULT_BUDGET):
            assert client.get(JWKS).status_code == 501, n
        assert_rate_limited(client.get(JWKS), DEFAULT_BUDGET, 60)
        # The auth budget is a separate counter.
        assert login(client).status_code == 501


def test_webhook_and_healthz_are_exempt(edge: Edge) -> None:
    with edge.client("127.0.0.6") as client:
        for n in range(DEFAULT_BUDGET * 2):
            webhook = client.post(
                WEBHOOK, content=b"{}", headers={"content-type": "application/json"}
            )
            assert webhook.status_code != 429, (n, webhook.text)
            assert "x-ratelimit-limit" not in webhook.headers  # no descriptor sent
            assert client.get("/healthz").status_code == 200, n
        # Same client, a limited route: its default budget is untouched by the above.
        response = client.get(JWKS)
        assert response.status_code == 501
        assert response.headers["x-ratelimit-remaining"] == str(DEFAULT_BUDGET - 1)


def test_redis_down_fails_open_and_is_counted(edge_without_redis: Edge) -> None:
    edge = edge_without_redis
    with edge.client("127.0.0.7") as client:
        for n in range(AUTH_BUDGET + 5):
            response = login(client)
            assert response.status_code == 501, (n, response.text)
    assert edge.stat("ratelimit.over_limit") == 0
    log = edge.rls_log.read_text()
    assert "fail open" in log
    edge.stop_rls()  # its last line reports the count
    [stopped] = [json.loads(line) for line in edge.rls_log.read_text().splitlines()
                 if '"stopped"' in line]  # fmt: skip
    assert stopped["fail_open_total"] == AUTH_BUDGET + 5


def test_rate_limit_service_down_lets_requests_through(edge_without_redis: Edge) -> None:
    edge = edge_without_redis
    edge.stop_rls()
    with edge.client("127.0.0.8") as client:
        for n in range(AUTH_BUDGET + 5):
            response = login(client)
            assert response.status_code == 501, (n, response.text)
            assert "x-ratelimit-limit" not in response.headers
    # Envoy counts each request it let through without an answer (failure_mode_deny: false).
    edge.wait_for(
        lambda: edge.stat("ratelimit.failure_mode_allowed") == AUTH_BUDGET + 5,
        "Envoy's failure_mode_allowed counter",
    )
