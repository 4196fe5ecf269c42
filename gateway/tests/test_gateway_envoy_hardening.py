"""Integration: the hardened edge (JWT, CORS, headers, limits, TLS) with a real Envoy in front
of a grpc.aio auth server that serves a JWKS and answers GetMe.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import random
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from ecom_gateway.envoy import render_config
from ecom_gateway.hardening import REQUEST_HEADERS_TIMEOUT, EdgeOptions
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from conftest import free_port, wait_for

ENVOY = Path(sys.executable).with_name("envoy")
ORIGIN = "http://app.example"
KEY = ed25519.Ed25519PrivateKey.generate()
KID = "k1"


def token(key: Any = KEY, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": "ecommerce-auth", "aud": "ecommerce", "sub": "u1", "iat": now}
    payload |= {"exp": now + 900, **claims}
    return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": KID})


class Auth(auth_pb2_grpc.AuthServiceServicer):
    async def GetJwks(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raw = KEY.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        key = auth_pb2.JsonWebKey(kty="OKP", crv="Ed25519", x=x, kid=KID, alg="EdDSA", use="sig")
        return auth_pb2.GetJwksResponse(keys=[key])

    async def GetMe(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return auth_pb2.GetMeResponse()

    async def Login(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return auth_pb2.AuthSession()


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.grpc_port, self.http_port, self.admin_port = free_port(), free_port(), free_port()
        self.tls_port = free_port()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.cert, key = self_signed(tmp)
        edge = EdgeOptions((ORIGIN,), self.tls_port, self.cert, key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = render_config(
                self.http_port,
                self.admin_port,
                {"auth": ("127.0.0.1", self.grpc_port)},
                edge=edge,
            )
        (tmp / "envoy.yaml").write_text(config)
        self.log = tmp / "envoy.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [ENVOY, "-c", tmp / "envoy.yaml", "--base-id", str(random.randint(1, 2**30))],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}", timeout=10)
        # Ready once the JWKS is fetched: a valid token then passes.
        wait_for(lambda: self._get_me(token()) == 200, "the edge to verify tokens")

    async def _start(self) -> grpc.aio.Server:
        server = grpc.aio.server()
        health_servicer = health.aio.HealthServicer()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        auth_pb2_grpc.add_AuthServiceServicer_to_server(Auth(), server)  # type: ignore[abstract]
        server.add_insecure_port(f"127.0.0.1:{self.grpc_port}")
        await server.start()
        return server

    def _get_me(self, bearer: str) -> int:
        if self.process.poll() is not None:
            raise AssertionError(f"envoy exited:\n{self.log.read_text()}")
        try:
            return self.http.get("/api/auth/me", headers=auth(bearer)).status_code
        except httpx.TransportError:
            return 0

    def denied(self) -> int:
        stats = httpx.get(f"http://127.0.0.1:{self.admin_port}/stats?filter=jwt_authn").text
        return sum(
            int(line.rsplit(":", 1)[1])
            for line in stats.splitlines()
            if line.startswith("http.edge.jwt_authn.denied")
        )

    def close(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(timeout=10)
        asyncio.run_coroutine_threadsafe(self._server.stop(None), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def auth(bearer: str) -> dict[str, str]:
    return {"authorization": f"Bearer {bearer}"}


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("hardened"))
    try:
        yield stack
    finally:
        stack.close()


def test_a_valid_token_passes_to_the_service(edge: Stack) -> None:
    response = edge.http.get("/api/auth/me", headers=auth(token()))
    assert response.status_code == 200
    assert "x-edge-auth" not in response.headers


def alg_none() -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": "ecommerce-auth", "aud": "ecommerce", "sub": "u1", "exp": now + 900}
    return f"{part({'alg': 'none', 'kid': KID})}.{part(claims)}."


@pytest.mark.parametrize(
    ("bearer", "reason"),
    [
        (lambda: token(exp=int(time.time()) - 120), "TOKEN_EXPIRED"),
        (lambda: token()[:-4] + ("AAAA" if not token().endswith("AAAA") else "BBBB"), None),
        (lambda: token(ed25519.Ed25519PrivateKey.generate()), "TOKEN_INVALID"),
        (alg_none, "TOKEN_INVALID"),
        (lambda: token(aud="someone-else"), "TOKEN_INVALID"),
        (lambda: token(iss="someone-else"), "TOKEN_INVALID"),
    ],
    ids=["expired", "tampered", "other-key", "alg-none", "audience", "issuer"],
)
def test_bad_tokens_are_refused_at_the_edge(
    edge: Stack, bearer: Callable[[], str], reason: str | None
) -> None:
    before = edge.denied()
    response = edge.http.get("/api/auth/me", headers=auth(bearer()))
    assert response.status_code == 401
    assert response.headers["x-edge-auth"] == "denied"
    assert edge.denied() == before + 1  # the edge's jwt_authn, not the service
    body = response.json()
    assert body["code"] == 16
    info = body["details"][0]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert info["reason"] in ("TOKEN_INVALID", "TOKEN_EXPIRED") if reason is None else reason


def test_no_token_on_a_user_route_is_sign_in_required(edge: Stack) -> None:
    response = edge.http.get("/api/auth/me")
    assert response.status_code == 401
    assert response.json()["details"][0]["reason"] == "SIGN_IN_REQUIRED"


def test_native_grpc_without_a_token_is_refused_at_the_edge(edge: Stack) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{edge.http_port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.GetMe(auth_pb2.GetMeRequest(), timeout=5)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stub.GetMe(
            auth_pb2.GetMeRequest(),
            timeout=5,
            metadata=[("authorization", auth(token())["authorization"])],
        )


def test_public_routes_stay_open_even_with_a_bad_token(edge: Stack) -> None:
    response = edge.http.post("/api/auth/login", json={}, headers=auth("garbage"))
    assert response.status_code == 200
    assert edge.http.get("/.well-known/jwks.json", headers=auth("x.y.z")).status_code == 200


def test_security_headers_on_service_and_envoy_replies(edge: Stack) -> None:
    for response in (edge.http.get("/api/auth/me", headers=auth(token())), edge.http.get("/nope")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in response.headers  # plain HTTP
        assert "server" not in response.headers
        assert not [name for name in response.headers if name.startswith("x-envoy")]


def test_token_replies_are_not_stored(edge: Stack) -> None:
    assert edge.http.post("/api/auth/login", json={}).headers["cache-control"] == "no-store"
    assert "cache-control" not in edge.http.get("/.well-known/jwks.json").headers


def preflight(edge: Stack, origin: str) -> httpx.Response:
    headers = {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    return edge.http.options("/api/auth/login", headers=headers)


def test_cors_preflight_of_a_configured_origin(edge: Stack) -> None:
    response = preflight(edge, ORIGIN)
    assert response.headers["access-control-allow-origin"] == ORIGIN
    allowed = response.headers["access-control-allow-headers"]
    for header in ("authorization", "x-api-key", "idempotency-key", "x-cart-token", "x-grpc-web"):
        assert header in allowed
    assert "POST" in response.headers["access-control-allow-methods"]
    actual = edge.http.get("/.well-known/jwks.json", headers={"origin": ORIGIN})
    exposed = actual.headers["access-control-expose-headers"]
    for header in ("x-ratelimit-limit", "retry-after", "grpc-status", "grpc-message"):
        assert header in exposed


def test_cors_preflight_of_an_unknown_origin_gets_no_allow_origin(edge: Stack) -> None:
    assert "access-control-allow-origin" not in preflight(edge, "http://evil.example").headers


def test_headers_sent_byte_by_byte_are_cut_off(edge: Stack) -> None:
    limit = float(REQUEST_HEADERS_TIMEOUT.removesuffix("s"))
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", edge.http_port), timeout=limit + 5) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\n")
        try:
            for byte in b"X-Slow: " + b"a" * 1000:
                conn.sendall(bytes([byte]))
                conn.settimeout(0.2)
                try:
                    if conn.recv(4096) == b"":
                        break  # closed by the edge
                except TimeoutError:
                    pass
                if time.monotonic() - started > limit + 5:
                    pytest.fail("the edge kept waiting for headers")
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert limit - 0.5 <= time.monotonic() - started <= limit + 5


def test_https_with_hsts_on_the_tls_listener(edge: Stack) -> None:
    context = ssl.create_default_context(cafile=str(edge.cert))
    with httpx.Client(verify=context, timeout=10) as client:
        response = client.get(
            f"https://localhost:{edge.tls_port}/api/auth/me", headers=auth(token())
        )
    assert response.status_code == 200
    assert response.headers["strict-transport-security"].startswith("max-age=")
