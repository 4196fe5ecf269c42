"""Integration: a real Envoy with the rendered config in front of a tiny grpc.aio server.

The gRPC server runs on an event loop in a background thread so the tests stay synchronous.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import threading
import warnings
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import pytest
from ecom_gateway.envoy import docs_bodies, render_config, write_docs
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from conftest import free_port, wait_for

ENVOY = Path(sys.executable).with_name("envoy")
T = TypeVar("T")


class Auth(auth_pb2_grpc.AuthServiceServicer):
    """Every RPC is UNIMPLEMENTED (the generated base) except Register, which fails validation."""

    async def Register(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field="email", description="must be an email address"
        )
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        status = status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message="invalid register request", details=[detail]
        )
        await context.abort_with_status(rpc_status.to_status(status))


class Backend:
    """A grpc.aio server with the standard health service (SERVING) and the auth servicer."""

    def __init__(self) -> None:
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self._run(self._start())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _start(self) -> grpc.aio.Server:
        server = grpc.aio.server()
        health_servicer = health.aio.HealthServicer()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        # The stubs declare the base abstract; at run time its methods answer UNIMPLEMENTED.
        auth_pb2_grpc.add_AuthServiceServicer_to_server(Auth(), server)  # type: ignore[abstract]
        server.add_insecure_port(f"127.0.0.1:{self.port}")
        await server.start()
        return server

    def close(self) -> None:
        self._run(self._server.stop(grace=None))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


class Envoy:
    def __init__(self, tmp: Path, services: dict[str, tuple[str, int]], **options: Any) -> None:
        self.http_port, self.admin_port = free_port(), free_port()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # public services of clusters we do not start
            config = render_config(self.http_port, self.admin_port, services, **options)
        (tmp / "envoy.yaml").write_text(config)
        self.log = tmp / "envoy.log"
        with self.log.open("wb") as log:
            base_id = str(random.randint(1, 2**30))  # two Envoys on one machine need distinct ids
            self.process = subprocess.Popen(
                [ENVOY, "-c", tmp / "envoy.yaml", "--base-id", base_id, "--log-level", "warn"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}", timeout=10)
        wait_for(self._live, "Envoy to be LIVE")

    def _live(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"envoy exited:\n{self.log.read_text()}")
        try:
            ready = httpx.get(f"http://127.0.0.1:{self.admin_port}/ready", timeout=1)
        except httpx.TransportError:
            return False
        return ready.text.strip() == "LIVE"

    def healthz(self) -> int:
        return self.http.get("/healthz").status_code

    def close(self) -> None:
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Envoy]:
    backend = Backend()
    try:
        proxy = Envoy(tmp_path_factory.mktemp("envoy"), {"auth": ("127.0.0.1", backend.port)})
        try:
            yield proxy
        finally:
            proxy.close()
    finally:
        backend.close()


def error_body(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    body = json.loads(response.content)
    assert set(body) == {"code", "message", "details"}
    return body


def test_healthz_is_200_when_every_service_is_serving(edge: Envoy) -> None:
    wait_for(lambda: edge.healthz() == 200, "/healthz to pass")


def test_unimplemented_rpc_is_501_with_code_12(edge: Envoy) -> None:
    response = edge.http.post("/api/auth/login", json={"email": "a@b.example", "password": "x"})
    assert response.status_code == 501
    assert error_body(response)["code"] == 12


def test_service_errors_pass_through_with_their_details(edge: Envoy) -> None:
    response = edge.http.post("/api/auth/register", json={"email": "nope"})
    assert response.status_code == 400
    assert error_body(response) == {
        "code": 3,
        "message": "invalid register request",  # not rewritten by the local reply mappers
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "field_violations": [
                    {"field": "email", "description": "must be an email address", "reason": ""}
                ],
            }
        ],
    }


def test_malformed_json_is_400_with_code_3(edge: Envoy) -> None:
    response = edge.http.post(
        "/api/auth/login", content=b'{"email": x', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    body = error_body(response)
    assert body["code"] == 3
    assert body["message"].startswith("Unexpected token")
    assert body["details"] == []


def test_unknown_path_is_404_json(edge: Envoy) -> None:
    response = edge.http.get("/api/nope", params={"token": "secret"})
    assert response.status_code == 404
    assert error_body(response) == {
        "code": 5,
        "message": "no route for GET /api/nope",  # the query string is not echoed
        "details": [],
    }


def test_body_over_1_mib_is_413_json(edge: Envoy) -> None:
    body = json.dumps({"email": "a" * (2 * 1024 * 1024), "password": "x"})
    response = edge.http.post(
        "/api/auth/login", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert error_body(response) == {
        "code": 3,
        "message": "request body exceeds 1 MiB",
        "details": [],
    }


def test_unknown_query_parameter_is_ignored(edge: Envoy) -> None:
    response = edge.http.post("/api/auth/login", params={"utm_source": "x"}, json={})
    assert response.status_code == 501


def test_native_grpc_reaches_public_services_but_not_internal_ones(edge: Envoy) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{edge.http_port}") as channel:
        with pytest.raises(grpc.RpcError) as public:
            auth_pb2_grpc.AuthServiceStub(channel).GetJwks(auth_pb2.GetJwksRequest(), timeout=5)
        with pytest.raises(grpc.RpcError) as internal:
            auth_pb2_grpc.AuthInternalServiceStub(channel).AuthenticateApiKey(
                auth_pb2.AuthenticateApiKeyRequest(), timeout=5
            )
    assert public.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "Method not implemented" in str(public.value.details())  # answered by the service
    assert internal.value.code() == grpc.StatusCode.UNIMPLEMENTED  # Envoy's 404
    assert "no route for" in str(internal.value.details())


def test_docs_can_be_served_from_files_as_the_edge_image_does(tmp_path: Path) -> None:
    # The Helm chart's config refers to the docs files in the image rather than inlining them.
    write_docs(tmp_path / "docs")
    proxy = Envoy(tmp_path, {"auth": ("127.0.0.1", free_port())}, docs_dir=str(tmp_path / "docs"))
    try:
        assert len((tmp_path / "envoy.yaml").read_text()) < 256 * 1024
        for path, (content_type, body) in docs_bodies().items():
            response = proxy.http.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"] == content_type, path
            assert response.content == body, path
    finally:
        proxy.close()


def test_healthz_turns_503_when_a_service_goes_down(tmp_path: Path) -> None:
    backend = Backend()
    proxy = Envoy(tmp_path, {"auth": ("127.0.0.1", backend.port)})
    try:
        wait_for(lambda: proxy.healthz() == 200, "/healthz to pass")
        backend.close()
        wait_for(lambda: proxy.healthz() == 503, "/healthz to fail")
        response = proxy.http.get("/healthz")
        assert error_body(response) == {
            "code": 14,
            "message": "service unavailable",
            "details": [],
        }
    finally:
        proxy.close()
