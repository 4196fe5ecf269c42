"""The service-client helper against a real grpc.aio server behind the runtime's interceptor:
deadlines, retries only where the proto allows them, what travels along, errors mapped back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from ecom_runtime.auth import Authenticator, ServiceCredentials, bind_call
from ecom_runtime.clients import ServiceClient
from ecom_runtime.errors import InvalidArgument, Unauthenticated, Unavailable
from ecom_runtime.interceptors import RequestInterceptor
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from conftest import free_port

CREDENTIAL = "test-credential"


class FlakyAuth(auth_pb2_grpc.AuthServiceServicer, auth_pb2_grpc.AuthInternalServiceServicer):
    """Answers UNAVAILABLE `failures` times per method, then succeeds; records what it got."""

    def __init__(self) -> None:
        self.failures = 0
        self.calls: dict[str, int] = {}
        self.metadata: dict[str, str] = {}
        self.delay = 0.0

    async def _enter(self, name: str, context: Any) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        self.metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        await asyncio.sleep(self.delay)
        if self.calls[name] <= self.failures:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "briefly down")

    async def GetJwks(self, request: Any, context: Any) -> Any:  # NO_SIDE_EFFECTS
        await self._enter("GetJwks", context)
        return auth_pb2.GetJwksResponse()

    async def Register(self, request: Any, context: Any) -> Any:  # no idempotency level
        await self._enter("Register", context)
        if not request.email:
            raise InvalidArgument({"email": "is required"}, reason="EMAIL_REQUIRED")
        return auth_pb2.AuthSession()

    async def AuthenticateApiKey(self, request: Any, context: Any) -> Any:
        await self._enter("AuthenticateApiKey", context)
        return auth_pb2.AuthenticateApiKeyResponse(api_key_id="k1")


async def while_serving(metadata: dict[str, str], deadline: float | None, work: Any) -> Any:
    """Runs `work()` as inside an RPC being served with this metadata and deadline (in a task
    of its own, so the binding does not outlive it)."""

    async def inside() -> Any:
        bind_call(Authenticator(None, None, issuer="i", audience="a"), metadata, deadline)  # type: ignore[arg-type]
        return await work()

    return await asyncio.create_task(inside())


@pytest.fixture
async def server() -> AsyncIterator[tuple[FlakyAuth, str]]:
    async def no_keys() -> list[dict]:
        return []

    async def no_api_keys(key: str) -> None:
        return None

    interceptor = RequestInterceptor(
        Authenticator(no_keys, no_api_keys, issuer="i", audience="a"),
        ServiceCredentials(f"{CREDENTIAL},previous-credential"),
    )
    grpc_server = grpc.aio.server(interceptors=[interceptor])
    servicer = FlakyAuth()
    auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, grpc_server)
    auth_pb2_grpc.add_AuthInternalServiceServicer_to_server(servicer, grpc_server)
    address = f"127.0.0.1:{free_port()}"
    grpc_server.add_insecure_port(address)
    await grpc_server.start()
    yield servicer, address
    await grpc_server.stop(0)


@pytest.fixture
async def client(server) -> AsyncIterator[ServiceClient]:
    _, address = server
    client = ServiceClient("auth", address, credential=CREDENTIAL, timeout=2.0, backoff=0.01)
    yield client
    await client.close()


async def test_methods_the_proto_marks_idempotent_are_retried(server, client) -> None:
    servicer, _ = server
    servicer.failures = 2
    await client.stub(auth_pb2_grpc.AuthServiceStub).GetJwks(auth_pb2.GetJwksRequest())
    assert servicer.calls["GetJwks"] == 3


async def test_other_methods_are_never_retried(server, client) -> None:
    servicer, _ = server
    servicer.failures = 1
    with pytest.raises(Unavailable):
        await client.stub(auth_pb2_grpc.AuthServiceStub).Register(
            auth_pb2.RegisterRequest(email="a@b.c")
        )
    assert servicer.calls["Register"] == 1  # a second Register could make a second account


async def test_every_call_has_a_deadline(server, client) -> None:
    servicer, _ = server
    servicer.delay = 30  # hangs
    async with asyncio.timeout(5):  # the client's own 0.2 s deadline ends it, not this
        with pytest.raises(Unavailable):
            await client.stub(auth_pb2_grpc.AuthServiceStub).GetJwks(
                auth_pb2.GetJwksRequest(), within=0.2
            )


async def test_the_served_rpcs_deadline_bounds_calls_it_makes(server, client) -> None:
    servicer, _ = server
    servicer.delay = 30
    stub = client.stub(auth_pb2_grpc.AuthServiceStub)
    async with asyncio.timeout(5):  # the client's default is 2 s; the served RPC has 0.2 s left
        with pytest.raises(Unavailable):
            await while_serving(
                {}, time.monotonic() + 0.2, lambda: stub.GetJwks(auth_pb2.GetJwksRequest())
            )


async def test_credential_caller_identity_idempotency_key_and_trace_travel(server, client) -> None:
    servicer, _ = server
    metadata = {"authorization": "Bearer user-token", "idempotency-key": "k-123"}
    internal = client.stub(auth_pb2_grpc.AuthInternalServiceStub)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("checkout"):
        trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
        await while_serving(
            metadata,
            None,
            lambda: internal.AuthenticateApiKey(auth_pb2.AuthenticateApiKeyRequest(key="ek_x")),
        )
    got = servicer.metadata
    assert got["x-service-credential"] == CREDENTIAL
    assert got["authorization"] == "Bearer user-token"
    assert got["idempotency-key"] == "k-123"
    assert got["traceparent"].split("-")[1] == trace_id


async def test_errors_come_back_as_domain_errors_with_their_details(server, client) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await client.stub(auth_pb2_grpc.AuthServiceStub).Register(auth_pb2.RegisterRequest())
    assert caught.value.violations == [("email", "is required")]
    assert caught.value.reason == "EMAIL_REQUIRED"


async def test_internal_rpcs_refuse_callers_without_the_credential(server) -> None:
    _, address = server
    async with grpc.aio.insecure_channel(address) as channel:
        internal = auth_pb2_grpc.AuthInternalServiceStub(channel)
        request = auth_pb2.AuthenticateApiKeyRequest(key="ek_x")
        for metadata in ((), (("x-service-credential", "guessed"),)):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await internal.AuthenticateApiKey(request, metadata=metadata)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # During a rotation the previous credential is still accepted.
        rotated = (("x-service-credential", "previous-credential"),)
        assert (await internal.AuthenticateApiKey(request, metadata=rotated)).api_key_id == "k1"
        # Public RPCs need none.
        await auth_pb2_grpc.AuthServiceStub(channel).GetJwks(auth_pb2.GetJwksRequest())


async def test_a_client_without_credential_is_refused_too(server) -> None:
    _, address = server
    anonymous = ServiceClient("auth", address, credential="")
    with pytest.raises(Unauthenticated):
        await anonymous.stub(auth_pb2_grpc.AuthInternalServiceStub).AuthenticateApiKey(
            auth_pb2.AuthenticateApiKeyRequest(key="ek_x")
        )
    await anonymous.close()
