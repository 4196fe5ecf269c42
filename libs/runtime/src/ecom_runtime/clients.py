"""Calling another service: one helper, so every call between services follows one policy.

    auth = ServiceClient("auth", settings.auth_grpc_addr, credential=settings.service_credential)
    keys = auth.stub(auth_pb2_grpc.AuthInternalServiceStub)
    found = await keys.AuthenticateApiKey(auth_pb2.AuthenticateApiKeyRequest(key=key))

Every call gets a deadline (the caller's remaining deadline if shorter); the service
credential; the W3C trace context; the end user's credentials and `Idempotency-Key` of the RPC
being served, so the callee authorizes and deduplicates as the edge asked. Only methods the
proto marks `idempotency_level = NO_SIDE_EFFECTS` or `IDEMPOTENT` are retried, with jittered
exponential backoff, and only on UNAVAILABLE (never on a deadline: the work may have happened).
A failure comes back as the domain error it stands for (`ecom_runtime.errors.from_status`),
`google.rpc` details included; an unreachable service is `Unavailable`.

grpc's own retry policy (service config) could retry too, but it cannot read the proto's
idempotency option nor turn statuses into our errors, so the policy lives here in one place.
"""

from __future__ import annotations

import asyncio
import importlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf.message import Message
from opentelemetry import propagate, trace

from ecom_runtime.auth import (
    SERVICE_CREDENTIAL_HEADER,
    ServiceCredentials,
    call_deadline,
    forwarded_metadata,
)
from ecom_runtime.config import ServiceSettings
from ecom_runtime.errors import DomainError, Unavailable, from_status

tracer = trace.get_tracer("ecom.clients")

_RETRYABLE_LEVELS = (
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT,
)


class ServiceClient:
    """A channel to one service and the call policy above. Create it inside the event loop
    (or lazily: the channel opens on first use)."""

    def __init__(
        self,
        name: str,
        target: str,
        *,
        credential: str,
        timeout: float = 3.0,
        attempts: int = 3,
        backoff: float = 0.1,
    ) -> None:
        self.name = name
        self._target = target
        self._credential = credential
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._channel: grpc.aio.Channel | None = None

    @classmethod
    def to(cls, name: str, target: str, settings: ServiceSettings, **options: Any) -> ServiceClient:
        """A client to `name` at `target`, sending this service's credential."""
        credential = ServiceCredentials(settings.service_credentials).current
        return cls(name, target, credential=credential, **options)

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self._target)
        return self._channel

    def stub(self, stub_type: type) -> Any:
        """A stand-in for `stub_type(channel)` whose methods apply the policy."""
        return _Stub(self, stub_type)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def _metadata(self) -> list[tuple[str, str]]:
        metadata = [(SERVICE_CREDENTIAL_HEADER, self._credential)] if self._credential else []
        metadata += forwarded_metadata()
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return metadata + list(carrier.items())

    async def call(
        self,
        method: Callable[..., Any],
        request: Message,
        *,
        retryable: bool,
        within: float | None = None,
        rpc: str = "",
    ) -> Any:
        """`rpc` ("package.Service/Method") names the call's span."""
        attributes = {"rpc.system": "grpc", "server.address": self._target}
        with tracer.start_as_current_span(
            rpc or self.name, kind=trace.SpanKind.CLIENT, attributes=attributes
        ):
            return await self._call(method, request, retryable=retryable, within=within)

    async def _call(
        self,
        method: Callable[..., Any],
        request: Message,
        *,
        retryable: bool,
        within: float | None,
    ) -> Any:
        deadline = time.monotonic() + (within or self._timeout)
        served_by = call_deadline()  # never outlive the RPC we are serving
        if served_by is not None:
            deadline = min(deadline, served_by)
        metadata = self._metadata()
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            try:
                return await method(request, timeout=max(remaining, 0.01), metadata=metadata)
            except grpc.aio.AioRpcError as error:
                code = error.code()
                if (
                    retryable
                    and code == grpc.StatusCode.UNAVAILABLE
                    and attempt < self._attempts
                    and deadline - time.monotonic() > self._backoff
                ):
                    pause = self._backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
                    await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
                    continue
                raise self._domain_error(error) from None

    def _domain_error(self, error: grpc.aio.AioRpcError) -> DomainError:
        code = error.code()
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return Unavailable(f"the {self.name} service is unavailable; try again")
        trailers = dict(error.trailing_metadata() or ())
        details = trailers.get("grpc-status-details-bin")
        return from_status(
            code, error.details() or "", details if isinstance(details, bytes) else None
        )


class _Stub:
    def __init__(self, client: ServiceClient, stub_type: type) -> None:
        self._client = client
        self._type = stub_type
        self._stub: Any = None  # made on first call: the channel must open inside the loop
        service = _service_descriptor(stub_type)
        self._service = service.full_name
        self._retryable = {
            m.name: m.GetOptions().idempotency_level in _RETRYABLE_LEVELS for m in service.methods
        }

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        retryable = self._retryable[name]

        async def call(request: Message, *, within: float | None = None) -> Any:
            if self._stub is None:
                self._stub = self._type(self._client.channel)
            method = getattr(self._stub, name)
            return await self._client.call(
                method, request, retryable=retryable, within=within, rpc=f"{self._service}/{name}"
            )

        return call


def _service_descriptor(stub_type: type) -> Any:
    """The proto service of a generated stub class (`XStub` in `..._pb2_grpc`)."""
    module = importlib.import_module(stub_type.__module__.removesuffix("_grpc"))
    return module.DESCRIPTOR.services_by_name[stub_type.__name__.removesuffix("Stub")]
